//! The account actor, one per user: the only writer of that user's balance.

mod messages;
mod registry;
pub mod store;

use std::time::{Duration, Instant};

use actix::prelude::*;

pub use messages::*;
pub use registry::{AccountRegistry, Accounts};
use store::AccountState;

use crate::db::Db;
use crate::domain::UserId;
use crate::error::AccountError;
use crate::fulfilment::{self, store::Redeemed};

/// Holds one user's balance. Mutations are handled one at a time (`AtomicResponse`), each
/// in one transaction, and the cached state changes only after the commit. Stops itself
/// after an idle period; the registry starts it again on the next message.
pub struct AccountActor {
    user: UserId,
    db: Db,
    state: Option<AccountState>,
    idle: Duration,
    last_used: Instant,
}

impl AccountActor {
    /// An actor for `user` that stops after `idle` without messages.
    pub fn new(user: UserId, db: Db, idle: Duration) -> Self {
        Self {
            user,
            db,
            state: None,
            idle,
            last_used: Instant::now(),
        }
    }

    fn touch(&mut self) {
        self.last_used = Instant::now();
    }

    /// Runs `op` against the cached state (loading it first when cold), keeping the state
    /// it returns on success. After an error the cache is dropped, so that the next
    /// message reads the committed truth.
    fn mutate<T, F, Fut>(&mut self, op: F) -> AtomicResponse<Self, Result<T, AccountError>>
    where
        T: 'static,
        F: FnOnce(Db, AccountState, UserId) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<(T, AccountState), AccountError>> + 'static,
    {
        self.touch();
        let (db, user, cached) = (self.db.clone(), self.user, self.state);
        AtomicResponse::new(Box::pin(
            async move {
                let state = match cached.filter(|_| !db.shared) {
                    // Alone on the database, every write of this balance went through
                    // this actor: the cache is the truth.
                    Some(state) => state,
                    // Cold, or other instances write too: the committed row, which holds
                    // every write acknowledged so far, whichever instance made it.
                    None => store::load(&db.reader, user).await?,
                };
                op(db, state, user).await
            }
            .into_actor(self)
            .map(|result, actor, _| match result {
                Ok((value, state)) => {
                    actor.state = Some(state);
                    Ok(value)
                }
                Err(error) => {
                    // Even a refusal may have been decided on a balance reloaded after
                    // losing a version race: read the committed truth next time.
                    actor.state = None;
                    Err(error)
                }
            }),
        ))
    }
}

impl Actor for AccountActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let tick = (self.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        ctx.run_interval(tick, |actor, ctx| {
            if actor.last_used.elapsed() >= actor.idle {
                ctx.stop();
            }
        });
    }
}

impl Handler<GetBalance> for AccountActor {
    type Result = AtomicResponse<Self, Result<Balance, AccountError>>;

    fn handle(&mut self, _: GetBalance, _: &mut Self::Context) -> Self::Result {
        self.mutate(|_, state, _| async move {
            let balance = Balance {
                current: state.current,
                withdrawn: state.withdrawn,
            };
            Ok((balance, state))
        })
    }
}

impl Handler<CheckAccount> for AccountActor {
    type Result = AtomicResponse<Self, Result<(), AccountError>>;

    fn handle(&mut self, _: CheckAccount, _: &mut Self::Context) -> Self::Result {
        // A warm account answers from memory, even when other instances write its balance:
        // users are never deleted, so an account once loaded exists. A cold one loads, or
        // is `UnknownUser`.
        if self.state.is_some() {
            self.touch();
            return AtomicResponse::new(Box::pin(fut::ready(Ok(()))));
        }
        self.mutate(|_, state, _| async move { Ok(((), state)) })
    }
}

impl Handler<Withdraw> for AccountActor {
    type Result = AtomicResponse<Self, Result<store::WithdrawOutcome, AccountError>>;

    fn handle(&mut self, msg: Withdraw, _: &mut Self::Context) -> Self::Result {
        self.mutate(move |db, state, user| async move {
            store::withdraw(&db, state, user, &msg.order, msg.sum).await
        })
    }
}

impl Handler<Credit> for AccountActor {
    type Result = AtomicResponse<Self, Result<store::CreditOutcome, AccountError>>;

    fn handle(&mut self, msg: Credit, _: &mut Self::Context) -> Self::Result {
        self.mutate(move |db, state, user| async move {
            store::credit(&db, state, user, &msg.order, msg.amount).await
        })
    }
}

impl Handler<Redeem> for AccountActor {
    type Result = AtomicResponse<Self, Result<Redeemed, AccountError>>;

    fn handle(&mut self, msg: Redeem, _: &mut Self::Context) -> Self::Result {
        self.mutate(move |db, state, user| async move {
            fulfilment::store::redeem(&db, state, user, &msg.request).await
        })
    }
}

impl Handler<PayForCoupon> for AccountActor {
    type Result = AtomicResponse<Self, Result<crate::coupons::store::CouponView, AccountError>>;

    fn handle(&mut self, msg: PayForCoupon, _: &mut Self::Context) -> Self::Result {
        self.mutate(move |db, state, user| async move {
            crate::coupons::store::bind(&db, state, user, &msg.binding).await
        })
    }
}

impl Handler<Refund> for AccountActor {
    type Result = AtomicResponse<Self, Result<bool, AccountError>>;

    fn handle(&mut self, msg: Refund, _: &mut Self::Context) -> Self::Result {
        self.mutate(move |db, state, user| async move {
            fulfilment::store::refund(&db, state, user, &msg.redemption).await
        })
    }
}

impl Handler<ListRedemptions> for AccountActor {
    type Result = ResponseFuture<Result<Vec<fulfilment::store::RedemptionView>, AccountError>>;

    fn handle(&mut self, _: ListRedemptions, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let (db, user) = (self.db.clone(), self.user);
        Box::pin(async move { Ok(fulfilment::store::list(&db, user).await?) })
    }
}

impl Handler<GetRedemption> for AccountActor {
    type Result = ResponseFuture<Result<Option<fulfilment::store::RedemptionView>, AccountError>>;

    fn handle(&mut self, msg: GetRedemption, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let (db, user) = (self.db.clone(), self.user);
        Box::pin(async move { Ok(fulfilment::store::view(&db.reader, user, &msg.id).await?) })
    }
}

impl Handler<ListHistory> for AccountActor {
    type Result = ResponseFuture<Result<Vec<store::HistoryEntry>, AccountError>>;

    fn handle(&mut self, msg: ListHistory, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let (db, user) = (self.db.clone(), self.user);
        Box::pin(async move { store::history(&db, user, msg.before, msg.limit).await })
    }
}

impl Handler<ListWithdrawals> for AccountActor {
    type Result = ResponseFuture<Result<Vec<store::WithdrawalView>, AccountError>>;

    fn handle(&mut self, _: ListWithdrawals, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let (db, user) = (self.db.clone(), self.user);
        Box::pin(async move { store::list_withdrawals(&db, user).await })
    }
}
