//! The order registry: decides who owns an uploaded number and hands new orders to the
//! accrual pipeline at once.

mod messages;
pub mod store;

use actix::prelude::*;

pub use messages::*;
use store::Acceptance;

use crate::accrual::OrderAccepted;
use crate::db::Db;
use crate::error::OrderError;

/// Accepts uploads. The unique index on the number is the arbiter between concurrent
/// uploads; the registry turns the loser of a race into a clean `TakenByOther` and tells
/// the accrual supervisor about every accepted order.
pub struct OrderRegistry {
    db: Db,
    accepted: Option<Recipient<OrderAccepted>>,
}

impl OrderRegistry {
    /// A registry that reports accepted orders to `accepted`, when given.
    pub fn new(db: Db, accepted: Option<Recipient<OrderAccepted>>) -> Self {
        Self { db, accepted }
    }
}

impl Actor for OrderRegistry {
    type Context = Context<Self>;
}

impl Handler<RegisterOrder> for OrderRegistry {
    type Result = ResponseFuture<Result<Registration, OrderError>>;

    fn handle(&mut self, msg: RegisterOrder, _: &mut Self::Context) -> Self::Result {
        let (db, accepted) = (self.db.clone(), self.accepted.clone());
        Box::pin(async move {
            Ok(match store::accept(&db, msg.user, &msg.number).await? {
                Acceptance::Accepted(order) => {
                    // Fire and forget: the schedule is durable, a lost notice only delays
                    // the first question until the next start.
                    if let Some(accepted) = accepted {
                        accepted.do_send(OrderAccepted { order });
                    }
                    Registration::Accepted
                }
                Acceptance::AlreadyYours => Registration::AlreadyYours,
                Acceptance::TakenByOther => Registration::TakenByOther,
            })
        })
    }
}

impl Handler<ListOrders> for OrderRegistry {
    type Result = ResponseFuture<Result<Vec<store::OrderView>, OrderError>>;

    fn handle(&mut self, msg: ListOrders, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { Ok(store::list(&db, msg.user).await?) })
    }
}
