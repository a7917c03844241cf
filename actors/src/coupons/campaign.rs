//! The campaign actor: the write path of one campaign's pool. Claims waiting while a group
//! is decided make up the next group (see [`crate::batch`]): the actor hands each a free
//! code from its cursor and each shopper's account actor binds it and charges for it in
//! one commit; the database decides whether the code was still free. The shop's checkout uses codes through it too.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::join_all;
use sea_orm::DbErr;

use super::store::{self, Binding, CouponView, Redemption};
use super::{Claim, UseCoupon};
use crate::account::{Accounts, PayForCoupon};
use crate::batch::{self, Batched, GroupCommit};
use crate::db::{now, Db};
use crate::domain::Points;
use crate::error::AccountError;

/// How often a claim tries the next code when other instances keep taking them first.
const TAKEN_RETRIES: usize = 64;

/// What can go wrong with a claim or at checkout.
#[derive(Debug, thiserror::Error)]
pub enum CouponError {
    /// No such campaign, or no such (claimed) code.
    #[error("not found")]
    NotFound,
    /// The campaign has not started.
    #[error("the campaign has not started")]
    NotStarted,
    /// The campaign has ended.
    #[error("the campaign has ended")]
    Ended,
    /// Every code is claimed.
    #[error("no code left")]
    SoldOut,
    /// The shopper holds as many codes of the campaign as allowed.
    #[error("the limit per shopper is reached")]
    LimitReached,
    /// The idempotency key came before with another request.
    #[error("the idempotency key was used for another request")]
    KeyReused,
    /// The balance does not cover the price.
    #[error("not enough points")]
    InsufficientFunds,
    /// The code was used for another order or amount.
    #[error("the code was used for another order")]
    AlreadyUsed,
    /// The order is below the campaign's minimum.
    #[error("the order is below the campaign's minimum")]
    BelowMinimum,
    /// The order number or the amount is unusable.
    #[error("{0}")]
    Invalid(String),
    /// Another failure of the account actor.
    #[error("account: {0}")]
    Account(AccountError),
    /// An actor could not be reached.
    #[error("unavailable: {0}")]
    Unavailable(#[from] MailboxError),
    /// The database failed.
    #[error("storage failure: {0}")]
    Storage(#[from] DbErr),
}

/// What a claim did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// A code is the shopper's now.
    Created(CouponView),
    /// The same key and request came before: the code they got.
    Replayed(CouponView),
}

/// What a code does to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// The code.
    pub code: String,
    /// What it takes off.
    pub discount: Points,
    /// The use, when the code was used (now, or before for the same order and amount).
    pub redemption: Option<Redemption>,
}

/// The actor of one campaign; see the module docs.
pub struct CampaignActor {
    id: String,
    db: Db,
    accounts: Accounts,
    /// The pool position before which every code is taken.
    cursor: i64,
    idle: Duration,
    last_used: Instant,
    queue: GroupCommit<Claim, Result<Claimed, CouponError>>,
}

impl CampaignActor {
    /// The actor of campaign `id`, stopping after `idle` without messages.
    pub fn new(id: String, db: Db, accounts: Accounts, idle: Duration) -> Self {
        Self {
            id,
            db,
            accounts,
            cursor: 1,
            idle,
            last_used: Instant::now(),
            queue: GroupCommit::default(),
        }
    }
}

impl Actor for CampaignActor {
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

/// The first answer to the claim's key, when the key was used before: its coupon for the
/// same request, `KeyReused` for another.
async fn replayed(db: &Db, msg: &Claim) -> Result<Option<Claimed>, CouponError> {
    let Some((key, fingerprint)) = &msg.key else {
        return Ok(None);
    };
    let Some(earlier) = crate::idempotency::recall(&db.writer, msg.user, key).await? else {
        return Ok(None);
    };
    if earlier.fingerprint != *fingerprint {
        return Err(CouponError::KeyReused);
    }
    let view = store::coupon(&db.writer, &earlier.response)
        .await?
        .ok_or(CouponError::NotFound)?;
    Ok(Some(Claimed::Replayed(view)))
}

/// Decides one claim: the window, the key, the shopper's limit, then a free code — `code`
/// when given, else the next one — bound and paid for through the shopper's account
/// actor. Returns the new cursor.
async fn claim(
    db: Db,
    accounts: Accounts,
    id: String,
    mut cursor: i64,
    msg: Claim,
    mut code: Option<(String, i64)>,
) -> (i64, Result<Claimed, CouponError>) {
    let result = async {
        // What a campaign is never changes: read it once per claim from the row alone;
        // its counters are never counted on a claim's path.
        let campaign = store::definition(&db, &id)
            .await?
            .ok_or(CouponError::NotFound)?;
        if let Some(replay) = replayed(&db, &msg).await? {
            return Ok(replay);
        }
        let at = now();
        let c = &campaign;
        if c.starts_at.is_some_and(|starts| at < starts) {
            return Err(CouponError::NotStarted);
        }
        if c.ends_at.is_some_and(|ends| at >= ends) {
            return Err(CouponError::Ended);
        }
        let mut held = store::held(&db, &id, msg.user.0).await?;
        if held >= u64::from(c.per_user) {
            // The code that reached the limit may be this request's, sent twice at once.
            if let Some(replay) = replayed(&db, &msg).await? {
                return Ok(replay);
            }
            return Err(CouponError::LimitReached);
        }
        for _ in 0..TAKEN_RETRIES {
            let free = match code.take() {
                Some(given) => Some(given),
                None => store::next_free(&db, &id, cursor).await?,
            };
            let Some((code, pos)) = free else {
                return Err(CouponError::SoldOut);
            };
            let binding = Binding {
                code,
                campaign: c.clone(),
                price: c.price,
                slot: u32::try_from(held + 1).unwrap_or(u32::MAX),
                key: msg.key.clone(),
            };
            match accounts.ask(msg.user, PayForCoupon { binding }).await {
                Ok(view) => {
                    cursor = pos + 1;
                    return Ok(Claimed::Created(view));
                }
                // Taken meanwhile (another instance): the next one.
                Err(AccountError::CodeTaken) => cursor = pos + 1,
                Err(AccountError::LimitReached) => {
                    // Another instance gave this shopper the same slot at the same moment
                    // — perhaps for this very request, sent twice: then this is its
                    // replay. Otherwise count again, and take the next slot while the
                    // limit allows one.
                    if let Some(replay) = replayed(&db, &msg).await? {
                        return Ok(replay);
                    }
                    held = store::held(&db, &id, msg.user.0).await?;
                    if held >= u64::from(c.per_user) {
                        return Err(CouponError::LimitReached);
                    }
                }
                Err(AccountError::InsufficientFunds) => return Err(CouponError::InsufficientFunds),
                Err(AccountError::KeyRace) => {
                    // The same key was stored meanwhile, by a request that committed:
                    // this one is its replay (or, for another request, `KeyReused`).
                    if let Some(replay) = replayed(&db, &msg).await? {
                        return Ok(replay);
                    }
                    return Err(CouponError::Account(AccountError::KeyRace));
                }
                Err(other) => return Err(CouponError::Account(other)),
            }
        }
        // Every code looked at was taken first by other instances: sold out only when
        // the pool says so.
        match store::next_free(&db, &id, 0).await? {
            Some(_) => Err(CouponError::Account(AccountError::Contended)),
            None => Err(CouponError::SoldOut),
        }
    }
    .await;
    (cursor, result)
}

/// Decides a group of claims. Each round takes the earliest claim left of every shopper
/// in the group: one shopper's claims are decided one after another, in order, and
/// different shoppers' side by side, each with a free code of its own handed out in pool
/// order. Returns the new cursor and one answer per claim.
async fn claim_all(
    db: Db,
    accounts: Accounts,
    id: String,
    mut cursor: i64,
    claims: Vec<Claim>,
) -> (i64, Vec<Result<Claimed, CouponError>>) {
    let mut answers: Vec<Option<Result<Claimed, CouponError>>> =
        claims.iter().map(|_| None).collect();
    let mut left: Vec<(usize, Claim)> = claims.into_iter().enumerate().collect();
    while !left.is_empty() {
        let mut shoppers = HashSet::new();
        let (round, later): (Vec<_>, Vec<_>) = left
            .into_iter()
            .partition(|(_, msg)| shoppers.insert(msg.user));
        left = later;
        // When the codes cannot be listed, each claim looks for its own.
        let codes = store::free_codes(&db, &id, cursor, round.len())
            .await
            .unwrap_or_default();
        let positions: Vec<i64> = codes.iter().map(|(_, pos)| *pos).collect();
        let mut codes = codes.into_iter();
        let decided = join_all(round.into_iter().map(|(k, msg)| {
            let work = claim(
                db.clone(),
                accounts.clone(),
                id.clone(),
                cursor,
                msg,
                codes.next(),
            );
            async move { (k, work.await) }
        }))
        .await;
        // The cursor stops before the first code handed out and left free; when every
        // one was taken, after the furthest any claim went.
        let mut taken = HashSet::new();
        let mut furthest = cursor;
        for (k, (reached, answer)) in decided {
            furthest = furthest.max(reached);
            if let Ok(Claimed::Created(_)) = &answer {
                taken.insert(reached - 1);
            }
            answers[k] = Some(answer);
        }
        cursor = positions
            .iter()
            .find(|pos| !taken.contains(pos))
            .copied()
            .unwrap_or(furthest);
    }
    let answers = answers
        .into_iter()
        .map(|answer| answer.unwrap_or(Err(CouponError::Unavailable(MailboxError::Closed))))
        .collect();
    (cursor, answers)
}

impl Batched for CampaignActor {
    type Op = Claim;
    type Out = Result<Claimed, CouponError>;

    fn queue(&mut self) -> &mut GroupCommit<Claim, Self::Out> {
        &mut self.queue
    }

    fn commit(&mut self, claims: Vec<Claim>) -> ResponseActFuture<Self, Vec<Self::Out>> {
        let work = claim_all(
            self.db.clone(),
            self.accounts.clone(),
            self.id.clone(),
            self.cursor,
            claims,
        );
        Box::pin(work.into_actor(self).map(|(cursor, answers), actor, _| {
            actor.cursor = cursor;
            answers
        }))
    }
}

impl Handler<Claim> for CampaignActor {
    type Result = ResponseFuture<Result<Claimed, CouponError>>;

    fn handle(&mut self, msg: Claim, ctx: &mut Self::Context) -> Self::Result {
        self.last_used = Instant::now();
        let answered = batch::submit(self, ctx, msg);
        Box::pin(async move {
            answered
                .await
                .unwrap_or(Err(CouponError::Unavailable(MailboxError::Closed)))
        })
    }
}

/// Previews or uses a code at checkout.
async fn checkout(db: Db, msg: UseCoupon) -> Result<Checkout, CouponError> {
    let coupon = store::coupon(&db.writer, &msg.code)
        .await?
        .ok_or(CouponError::NotFound)?;
    if let Some(reason) = msg.invalid {
        return Err(CouponError::Invalid(reason));
    }
    if let Some(earlier) = store::used_before(&db, &msg.code).await? {
        let same = msg
            .order
            .as_ref()
            .is_some_and(|order| *order == earlier.order && msg.amount == earlier.amount);
        if !same {
            return Err(CouponError::AlreadyUsed);
        }
        return Ok(Checkout {
            code: msg.code,
            discount: earlier.discount,
            redemption: Some(earlier),
        });
    }
    let at = now();
    let c = &coupon.campaign;
    if c.starts_at.is_some_and(|starts| at < starts) {
        return Err(CouponError::NotStarted);
    }
    if c.ends_at.is_some_and(|ends| at >= ends) {
        return Err(CouponError::Ended);
    }
    if msg.amount < c.min_order {
        return Err(CouponError::BelowMinimum);
    }
    let Some(order) = &msg.order else {
        return Ok(Checkout {
            code: msg.code,
            discount: store::discount(c, msg.amount),
            redemption: None,
        });
    };
    let holder = store::holder(&db, &msg.code).await?;
    match store::redeem(&db, &coupon, holder, order, msg.amount).await? {
        Ok(redemption) => Ok(Checkout {
            code: msg.code,
            discount: redemption.discount,
            redemption: Some(redemption),
        }),
        Err(earlier) if earlier.order == *order && earlier.amount == msg.amount => Ok(Checkout {
            code: msg.code,
            discount: earlier.discount,
            redemption: Some(earlier),
        }),
        Err(_) => Err(CouponError::AlreadyUsed),
    }
}

impl Handler<UseCoupon> for CampaignActor {
    type Result = AtomicResponse<Self, Result<Checkout, CouponError>>;

    fn handle(&mut self, msg: UseCoupon, _: &mut Self::Context) -> Self::Result {
        self.last_used = Instant::now();
        AtomicResponse::new(Box::pin(checkout(self.db.clone(), msg).into_actor(self)))
    }
}
