//! The order registry: decides who owns an uploaded number and hands new orders to the
//! accrual pipeline at once.

mod lists;
mod messages;
pub mod store;

pub use lists::OrderLists;

use actix::prelude::*;

pub use messages::*;
use store::Acceptance;

use crate::accrual::OrderAccepted;
use crate::batch::{self, Batched, GroupCommit};
use crate::db::Db;
use crate::error::OrderError;

/// Accepts uploads. Uploads waiting while a commit is in flight are committed together
/// (see [`crate::batch`]); the unique index on the number stays the arbiter between
/// instances, and the registry turns the loser of a race into a clean `TakenByOther`. It
/// tells the accrual supervisor about every accepted order once it is committed.
pub struct OrderRegistry {
    db: Db,
    accepted: Option<Recipient<OrderAccepted>>,
    queue: GroupCommit<RegisterOrder, Result<Registration, OrderError>>,
}

impl OrderRegistry {
    /// A registry that reports accepted orders to `accepted`, when given.
    pub fn new(db: Db, accepted: Option<Recipient<OrderAccepted>>) -> Self {
        Self {
            db,
            accepted,
            queue: GroupCommit::default(),
        }
    }
}

impl Actor for OrderRegistry {
    type Context = Context<Self>;
}

impl Batched for OrderRegistry {
    type Op = RegisterOrder;
    type Out = Result<Registration, OrderError>;

    fn queue(&mut self) -> &mut GroupCommit<Self::Op, Self::Out> {
        &mut self.queue
    }

    fn commit(&mut self, ops: Vec<RegisterOrder>) -> ResponseActFuture<Self, Vec<Self::Out>> {
        let (db, accepted) = (self.db.clone(), self.accepted.clone());
        let uploads: Vec<_> = ops.into_iter().map(|op| (op.user, op.number)).collect();
        Box::pin(
            async move {
                let answers = store::accept_all(&db, &uploads).await;
                answers
                    .into_iter()
                    .map(|answer| {
                        Ok(match answer? {
                            Acceptance::Accepted(order) => {
                                // Fire and forget: the schedule is durable, a lost notice
                                // only delays the first question until the next start.
                                if let Some(accepted) = &accepted {
                                    accepted.do_send(OrderAccepted { order });
                                }
                                Registration::Accepted
                            }
                            Acceptance::AlreadyYours => Registration::AlreadyYours,
                            Acceptance::TakenByOther => Registration::TakenByOther,
                        })
                    })
                    .collect()
            }
            .into_actor(self),
        )
    }
}

impl Handler<RegisterOrder> for OrderRegistry {
    type Result = ResponseFuture<Result<Registration, OrderError>>;

    fn handle(&mut self, msg: RegisterOrder, ctx: &mut Self::Context) -> Self::Result {
        let answered = batch::submit(self, ctx, msg);
        Box::pin(async move {
            answered
                .await
                .unwrap_or(Err(OrderError::Unavailable(MailboxError::Closed)))
        })
    }
}

impl Handler<ListOrders> for OrderRegistry {
    type Result = ResponseFuture<Result<std::sync::Arc<Vec<store::OrderView>>, OrderError>>;

    fn handle(&mut self, msg: ListOrders, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { Ok(store::list(&db, msg.user).await?) })
    }
}
