//! The account actor, one per user: the only writer of that user's balance.

mod messages;
mod registry;
pub mod store;

use std::time::{Duration, Instant};

use actix::prelude::*;

pub use messages::*;
pub use registry::{AccountRegistry, Accounts, Committed};
use store::AccountState;

use crate::batch::{self, Batched, GroupCommit};
use crate::db::Db;
use crate::domain::UserId;
use crate::error::AccountError;
use crate::fulfilment::{self, store::Redeemed};

/// Holds one user's balance. Mutations are queued and committed in groups (see
/// [`crate::batch`]): each group is decided in arrival order against the cached state and
/// committed before anyone in it is answered; the cached state changes only after the
/// commit. Stops itself after an idle period; the registry starts it again on the next
/// message.
pub struct AccountActor {
    user: UserId,
    db: Db,
    state: Option<AccountState>,
    idle: Duration,
    last_used: Instant,
    queue: GroupCommit<Mutation, Done>,
    committed: Committed,
}

/// A mutation waiting in the account's queue.
pub enum Mutation {
    /// Load the state, when cold (a balance read or an existence check).
    Load,
    /// [`Withdraw`].
    Withdraw(Withdraw),
    /// [`Credit`].
    Credit(Credit),
    /// [`Redeem`].
    Redeem(Redeem),
    /// [`PayForCoupon`].
    Pay(PayForCoupon),
    /// [`Refund`].
    Refund(Refund),
}

/// How a queued mutation ended, as its caller is answered.
pub enum Done {
    /// After [`Mutation::Load`].
    Loaded(Result<Balance, AccountError>),
    /// After [`Mutation::Withdraw`].
    Withdrawn(Result<store::WithdrawOutcome, AccountError>),
    /// After [`Mutation::Credit`].
    Credited(Result<store::CreditOutcome, AccountError>),
    /// After [`Mutation::Redeem`].
    Redeemed(Result<Redeemed, AccountError>),
    /// After [`Mutation::Pay`].
    Paid(Result<crate::coupons::store::CouponView, AccountError>),
    /// After [`Mutation::Refund`].
    Refunded(Result<bool, AccountError>),
}

impl AccountActor {
    /// An actor for `user` that stops after `idle` without messages and publishes what
    /// it commits to `committed`.
    pub fn new(user: UserId, db: Db, idle: Duration, committed: Committed) -> Self {
        Self {
            user,
            db,
            state: None,
            idle,
            last_used: Instant::now(),
            queue: GroupCommit::default(),
            committed,
        }
    }

    fn touch(&mut self) {
        self.last_used = Instant::now();
    }

    /// Queues `mutation` and answers with what `pick` finds in its outcome.
    fn enqueue<T: 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        mutation: Mutation,
        pick: fn(Done) -> Option<Result<T, AccountError>>,
    ) -> ResponseFuture<Result<T, AccountError>> {
        self.touch();
        let answered = batch::submit(self, ctx, mutation);
        Box::pin(async move {
            match answered.await {
                Ok(done) => {
                    pick(done).unwrap_or(Err(AccountError::Unavailable(MailboxError::Closed)))
                }
                // The actor stopped before the commit ended: nothing is known.
                Err(_) => Err(AccountError::Unavailable(MailboxError::Closed)),
            }
        })
    }
}

impl Batched for AccountActor {
    type Op = Mutation;
    type Out = Done;

    fn queue(&mut self) -> &mut GroupCommit<Mutation, Done> {
        &mut self.queue
    }

    fn commit(&mut self, ops: Vec<Mutation>) -> ResponseActFuture<Self, Vec<Done>> {
        let (db, user, cached) = (self.db.clone(), self.user, self.state);
        Box::pin(
            commit(db, user, cached, ops)
                .into_actor(self)
                .map(|(state, outs), actor, _| {
                    actor.state = state;
                    // Published before anyone in the group is answered; alone on the
                    // database only, where the cache is the truth.
                    let balance = state.filter(|_| !actor.db.shared);
                    actor.committed.set(balance.map(AccountState::balance));
                    outs
                }),
        )
    }
}

/// Decides and commits one group of mutations in order: runs of withdrawals are charged
/// in one transaction, any other mutation commits alone in its turn. Returns the state
/// to keep — `None` after a failure, so that what follows reads the committed truth —
/// and one answer per mutation.
async fn commit(
    db: Db,
    user: UserId,
    cached: Option<AccountState>,
    ops: Vec<Mutation>,
) -> (Option<AccountState>, Vec<Done>) {
    // Alone on the database, every write of this balance went through this actor: the
    // cache is the truth. Otherwise each group starts from the committed row, and the
    // versioned update of the balance decides between instances.
    let mut state = cached.filter(|_| !db.shared);
    let mut outs = Vec::with_capacity(ops.len());
    let mut ops = ops.into_iter().peekable();
    while let Some(op) = ops.next() {
        let now = match state {
            Some(now) => now,
            // Cold, or after a failure: the committed row, which holds every write
            // acknowledged so far, whichever instance made it.
            None => match store::load(&db.reader, user).await {
                Ok(now) => now,
                Err(error) => {
                    outs.push(refused(op, error));
                    continue;
                }
            },
        };
        state = match op {
            Mutation::Load => {
                outs.push(Done::Loaded(Ok(now.balance())));
                Some(now)
            }
            Mutation::Withdraw(first) => {
                let mut run = vec![first];
                while let Some(Mutation::Withdraw(_)) = ops.peek() {
                    if let Some(Mutation::Withdraw(next)) = ops.next() {
                        run.push(next);
                    }
                }
                let (results, next) = store::withdraw_all(&db, now, user, &run).await;
                outs.extend(results.into_iter().map(Done::Withdrawn));
                next
            }
            Mutation::Credit(msg) => settle(
                store::credit(&db, now, user, &msg.order, msg.amount).await,
                &mut outs,
                Done::Credited,
            ),
            Mutation::Redeem(msg) => settle(
                fulfilment::store::redeem(&db, now, user, &msg.request).await,
                &mut outs,
                Done::Redeemed,
            ),
            Mutation::Pay(msg) => settle(
                crate::coupons::store::bind(&db, now, user, &msg.binding).await,
                &mut outs,
                Done::Paid,
            ),
            Mutation::Refund(msg) => settle(
                fulfilment::store::refund(&db, now, user, &msg.redemption).await,
                &mut outs,
                Done::Refunded,
            ),
        };
    }
    (state, outs)
}

/// Answers a mutation that committed alone; the state it left, or `None` after an error
/// — even a refusal may have been decided on a balance reloaded after losing a version
/// race.
fn settle<T>(
    result: Result<(T, AccountState), AccountError>,
    outs: &mut Vec<Done>,
    answer: fn(Result<T, AccountError>) -> Done,
) -> Option<AccountState> {
    match result {
        Ok((value, next)) => {
            outs.push(answer(Ok(value)));
            Some(next)
        }
        Err(error) => {
            outs.push(answer(Err(error)));
            None
        }
    }
}

/// The answer to a mutation that could not be decided.
fn refused(op: Mutation, error: AccountError) -> Done {
    match op {
        Mutation::Load => Done::Loaded(Err(error)),
        Mutation::Withdraw(_) => Done::Withdrawn(Err(error)),
        Mutation::Credit(_) => Done::Credited(Err(error)),
        Mutation::Redeem(_) => Done::Redeemed(Err(error)),
        Mutation::Pay(_) => Done::Paid(Err(error)),
        Mutation::Refund(_) => Done::Refunded(Err(error)),
    }
}

impl Actor for AccountActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let tick = (self.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        ctx.run_interval(tick, |actor, ctx| {
            if actor.last_used.elapsed() >= actor.idle && !actor.queue.busy() {
                ctx.stop();
            }
        });
    }
}

impl Handler<GetBalance> for AccountActor {
    type Result = ResponseFuture<Result<Balance, AccountError>>;

    fn handle(&mut self, _: GetBalance, ctx: &mut Self::Context) -> Self::Result {
        match self.state.filter(|_| !self.db.shared) {
            Some(state) => {
                self.touch();
                Box::pin(std::future::ready(Ok(state.balance())))
            }
            None => self.enqueue(ctx, Mutation::Load, |done| match done {
                Done::Loaded(result) => Some(result),
                _ => None,
            }),
        }
    }
}

impl Handler<CheckAccount> for AccountActor {
    type Result = ResponseFuture<Result<(), AccountError>>;

    fn handle(&mut self, _: CheckAccount, ctx: &mut Self::Context) -> Self::Result {
        // A warm account answers from memory, even when other instances write its balance:
        // users are never deleted, so an account once loaded exists. A cold one loads, or
        // is `UnknownUser`.
        if self.state.is_some() {
            self.touch();
            return Box::pin(std::future::ready(Ok(())));
        }
        self.enqueue(ctx, Mutation::Load, |done| match done {
            Done::Loaded(result) => Some(result.map(|_| ())),
            _ => None,
        })
    }
}

impl Handler<Withdraw> for AccountActor {
    type Result = ResponseFuture<Result<store::WithdrawOutcome, AccountError>>;

    fn handle(&mut self, msg: Withdraw, ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(ctx, Mutation::Withdraw(msg), |done| match done {
            Done::Withdrawn(result) => Some(result),
            _ => None,
        })
    }
}

impl Handler<Credit> for AccountActor {
    type Result = ResponseFuture<Result<store::CreditOutcome, AccountError>>;

    fn handle(&mut self, msg: Credit, ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(ctx, Mutation::Credit(msg), |done| match done {
            Done::Credited(result) => Some(result),
            _ => None,
        })
    }
}

impl Handler<Redeem> for AccountActor {
    type Result = ResponseFuture<Result<Redeemed, AccountError>>;

    fn handle(&mut self, msg: Redeem, ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(ctx, Mutation::Redeem(msg), |done| match done {
            Done::Redeemed(result) => Some(result),
            _ => None,
        })
    }
}

impl Handler<PayForCoupon> for AccountActor {
    type Result = ResponseFuture<Result<crate::coupons::store::CouponView, AccountError>>;

    fn handle(&mut self, msg: PayForCoupon, ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(ctx, Mutation::Pay(msg), |done| match done {
            Done::Paid(result) => Some(result),
            _ => None,
        })
    }
}

impl Handler<Refund> for AccountActor {
    type Result = ResponseFuture<Result<bool, AccountError>>;

    fn handle(&mut self, msg: Refund, ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(ctx, Mutation::Refund(msg), |done| match done {
            Done::Refunded(result) => Some(result),
            _ => None,
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
