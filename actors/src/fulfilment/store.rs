//! Redemptions in storage: the one transaction that takes stock, charges points and
//! records the shipment request; the refund that undoes it; the status timeline the
//! fulfilment pipeline writes; and the shopper's view.

use chrono::{DateTime, FixedOffset};
use gophermart_entities::{redemption_events, redemptions, rewards};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder,
};
use serde::Serialize;

use crate::account::store::{post, reload_after_race, AccountState, Change, VERSION_RETRIES};
use crate::db::{now, stored_points, Db};
use crate::domain::{Points, UserId};
use crate::error::AccountError;
use crate::events::store::{self as events, EventKind, NewEvent};
use crate::idempotency;

/// Ledger causes of redemptions.
pub const CAUSE_REDEMPTION: &str = "redemption";
/// Ledger causes of refunds.
pub const CAUSE_REFUND: &str = "refund";

/// Where a redemption stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RedemptionStatus {
    /// Charged; the fulfilment service has not acknowledged it yet.
    Requested,
    /// Acknowledged, with a tracking number.
    Accepted,
    /// On its way.
    Shipped,
    /// At the door. Final.
    Delivered,
    /// Refused by the fulfilment service; points and stock given back. Final.
    Cancelled,
}

impl RedemptionStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "REQUESTED",
            Self::Accepted => "ACCEPTED",
            Self::Shipped => "SHIPPED",
            Self::Delivered => "DELIVERED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Reads a name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Requested,
            Self::Accepted,
            Self::Shipped,
            Self::Delivered,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }

    /// The statuses a parcel passes before this one.
    fn before(self) -> Vec<&'static str> {
        [Self::Requested, Self::Accepted, Self::Shipped]
            .into_iter()
            .filter(|earlier| *earlier < self)
            .map(Self::as_str)
            .collect()
    }
}

/// A redemption as its shopper sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedemptionView {
    /// UUID v7.
    pub id: String,
    /// The reward's sku.
    pub reward: String,
    /// Units.
    pub quantity: u32,
    /// Points charged.
    pub points: Points,
    /// Where it stands.
    pub status: RedemptionStatus,
    /// Where it goes.
    pub address: String,
    /// The carrier's number, once known.
    pub tracking: Option<String>,
    /// When it was made.
    pub created_at: DateTime<FixedOffset>,
    /// Every status it reached, and when.
    pub events: Vec<(RedemptionStatus, DateTime<FixedOffset>)>,
}

/// A redemption to make.
#[derive(Debug, Clone)]
pub struct RedeemRequest {
    /// The reward's sku.
    pub sku: String,
    /// Units, 1–100.
    pub quantity: u32,
    /// Where to ship, validated by the caller.
    pub address: String,
    /// The shopper's `Idempotency-Key`, if sent.
    pub key: Option<String>,
    /// A digest of the request, to tell a retry from another request under the same key.
    pub fingerprint: String,
}

/// What a redemption request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// Charged now; the redemption as created.
    Created(RedemptionView),
    /// The same key and request came before: the redemption they made, charged once.
    Replayed(RedemptionView),
}

/// Work for the fulfilment pipeline: a shipment to request or a parcel to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    /// The redemption's id, the request's idempotency key.
    pub id: String,
    /// Whose.
    pub user: UserId,
    /// What.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// Where to.
    pub address: String,
    /// Where it stands.
    pub status: RedemptionStatus,
    /// The carrier's number, once accepted.
    pub tracking: Option<String>,
    /// Questions asked so far.
    pub attempts: u32,
    /// When to ask next.
    pub next_attempt_at: DateTime<FixedOffset>,
}

#[derive(Serialize)]
struct Requested<'a> {
    id: &'a str,
    reward: &'a str,
    quantity: u32,
    points: Points,
    balance: Points,
}

#[derive(Serialize)]
struct StatusChanged<'a> {
    id: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracking: Option<&'a str>,
}

#[derive(Serialize)]
struct Refunded<'a> {
    redemption: &'a str,
    amount: Points,
    balance: Points,
}

/// Takes the stock, charges the points (a `redemption` ledger entry), stores the
/// redemption, its shipment request and its first status, and the key — one commit, or
/// nothing. Called by the shopper's account actor, which holds `state`.
pub async fn redeem(
    db: &Db,
    mut state: AccountState,
    user: UserId,
    request: &RedeemRequest,
) -> Result<(Redeemed, AccountState), AccountError> {
    for _ in 0..VERSION_RETRIES {
        let earlier = match &request.key {
            Some(key) => idempotency::recall(&db.writer, user, key).await?,
            None => None,
        };
        if let Some(earlier) = &earlier {
            if earlier.fingerprint == request.fingerprint {
                let first = view(&db.writer, user, &earlier.response)
                    .await?
                    .ok_or(AccountError::RewardNotFound)?;
                return Ok((Redeemed::Replayed(as_created(first)), state));
            }
        }
        let reward = rewards::Entity::find_by_id(request.sku.as_str())
            .one(&db.writer)
            .await?
            .filter(|reward| reward.active)
            .ok_or(AccountError::RewardNotFound)?;
        if earlier.is_some() {
            return Err(AccountError::KeyReused);
        }
        let points = stored_points(reward.price)?
            .checked_mul(request.quantity)
            .ok_or(AccountError::Overflow)?;
        let txn = db.write().await?;
        // The database decides the stock: never below zero, whoever else is redeeming.
        let quantity = i64::from(request.quantity);
        let taken = rewards::Entity::update_many()
            .col_expr(
                rewards::Column::Stock,
                Expr::col(rewards::Column::Stock).sub(quantity),
            )
            .filter(rewards::Column::Sku.eq(request.sku.as_str()))
            .filter(rewards::Column::Active.eq(true))
            .filter(rewards::Column::Stock.gte(quantity))
            .exec(&txn)
            .await?;
        if taken.rows_affected == 0 {
            txn.rollback().await?;
            return Err(AccountError::OutOfStock);
        }
        let Some(current) = state.current.checked_sub(points) else {
            txn.rollback().await?;
            return Err(AccountError::InsufficientFunds);
        };
        let id = uuid::Uuid::now_v7().to_string();
        let at = now();
        redemptions::Entity::insert(redemptions::ActiveModel {
            id: Set(id.clone()),
            user_id: Set(user.0),
            sku: Set(request.sku.clone()),
            quantity: Set(i32::try_from(request.quantity).unwrap_or(i32::MAX)),
            points: Set(points.cents()),
            address: Set(request.address.clone()),
            status: Set(RedemptionStatus::Requested.as_str().to_owned()),
            tracking: Set(None),
            attempts: Set(0),
            next_attempt_at: Set(Some(at)),
            created_at: Set(at),
        })
        .exec_without_returning(&txn)
        .await?;
        timeline(&txn, &id, RedemptionStatus::Requested).await?;
        if let Some(key) = &request.key {
            let key = (key.as_str(), request.fingerprint.as_str());
            if !idempotency::remember(&txn, user, key, &id, at).await? {
                // The same key is being used at this moment: the other one wins, and
                // this one answers as its replay (or 422) on the next round.
                txn.rollback().await?;
                continue;
            }
        }
        let change = Change {
            current,
            withdrawn: state.withdrawn,
            delta: -points.cents(),
            cause: CAUSE_REDEMPTION,
        };
        match post(&txn, user, state, change, &id).await? {
            Some(next) => {
                let requested = Requested {
                    id: &id,
                    reward: &request.sku,
                    quantity: request.quantity,
                    points,
                    balance: next.current,
                };
                events::record(&txn, EventKind::RedemptionRequested, Some(user), &requested)
                    .await?;
                txn.commit().await?;
                let created = view(&db.writer, user, &id)
                    .await?
                    .ok_or(AccountError::RewardNotFound)?;
                return Ok((Redeemed::Created(created), next));
            }
            None => {
                txn.rollback().await?;
                state = reload_after_race(db, user).await?;
            }
        }
    }
    Err(AccountError::Contended)
}

/// The first answer's view of a redemption: as created, before anything happened to it.
fn as_created(mut view: RedemptionView) -> RedemptionView {
    view.status = RedemptionStatus::Requested;
    view.tracking = None;
    view.events.truncate(1);
    view
}

/// Cancels a redemption the fulfilment service refused: gives the points back (one
/// `refund` ledger entry) and the stock, in one commit. `false` when it was no longer
/// waiting for the fulfilment service (cancelled or accepted already).
pub async fn refund(
    db: &Db,
    mut state: AccountState,
    user: UserId,
    id: &str,
) -> Result<(bool, AccountState), AccountError> {
    for _ in 0..VERSION_RETRIES {
        let txn = db.write().await?;
        let cancelled = redemptions::Entity::update_many()
            .col_expr(
                redemptions::Column::Status,
                Expr::value(RedemptionStatus::Cancelled.as_str()),
            )
            .col_expr(
                redemptions::Column::NextAttemptAt,
                Expr::value(Option::<DateTime<FixedOffset>>::None),
            )
            .filter(redemptions::Column::Id.eq(id))
            .filter(redemptions::Column::UserId.eq(user.0))
            .filter(redemptions::Column::Status.eq(RedemptionStatus::Requested.as_str()))
            .exec(&txn)
            .await?;
        if cancelled.rows_affected == 0 {
            txn.rollback().await?;
            return Ok((false, state));
        }
        let row = redemptions::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("redemption {id}")))?;
        let points = stored_points(row.points)?;
        rewards::Entity::update_many()
            .col_expr(
                rewards::Column::Stock,
                Expr::col(rewards::Column::Stock).add(i64::from(row.quantity)),
            )
            .filter(rewards::Column::Sku.eq(row.sku.as_str()))
            .exec(&txn)
            .await?;
        timeline(&txn, id, RedemptionStatus::Cancelled).await?;
        let current = state
            .current
            .checked_add(points)
            .ok_or(AccountError::Overflow)?;
        let change = Change {
            current,
            withdrawn: state.withdrawn,
            delta: points.cents(),
            cause: CAUSE_REFUND,
        };
        match post(&txn, user, state, change, id).await? {
            Some(next) => {
                let refunded = Refunded {
                    redemption: id,
                    amount: points,
                    balance: next.current,
                };
                let changed = StatusChanged {
                    id,
                    status: RedemptionStatus::Cancelled.as_str(),
                    tracking: None,
                };
                events::record_all(
                    &txn,
                    [
                        NewEvent::new(EventKind::RedemptionStatusChanged, Some(user), &changed)?,
                        NewEvent::new(EventKind::PointsRefunded, Some(user), &refunded)?,
                    ],
                )
                .await?;
                txn.commit().await?;
                return Ok((true, next));
            }
            None => {
                txn.rollback().await?;
                state = reload_after_race(db, user).await?;
            }
        }
    }
    Err(AccountError::Contended)
}

async fn timeline(
    txn: &DatabaseTransaction,
    id: &str,
    status: RedemptionStatus,
) -> Result<(), DbErr> {
    redemption_events::Entity::insert(redemption_events::ActiveModel {
        redemption_id: Set(id.to_owned()),
        status: Set(status.as_str().to_owned()),
        at: Set(now()),
        ..Default::default()
    })
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// Moves a redemption forward to `status` (with `tracking` when it is first accepted),
/// writing the timeline and the event in the same commit, and schedules the next
/// question (`None` once delivered). `false`, changing nothing, when it is already there
/// or past it.
pub async fn advance(
    db: &Db,
    shipment: &Shipment,
    status: RedemptionStatus,
    tracking: Option<&str>,
    next_attempt_at: Option<DateTime<FixedOffset>>,
) -> Result<bool, DbErr> {
    let txn = db.write().await?;
    let mut update = redemptions::Entity::update_many()
        .col_expr(redemptions::Column::Status, Expr::value(status.as_str()))
        .col_expr(redemptions::Column::Attempts, Expr::value(0))
        .col_expr(
            redemptions::Column::NextAttemptAt,
            Expr::value(next_attempt_at),
        )
        .filter(redemptions::Column::Id.eq(shipment.id.as_str()))
        .filter(redemptions::Column::Status.is_in(status.before()));
    if let Some(tracking) = tracking {
        update = update.col_expr(redemptions::Column::Tracking, Expr::value(tracking));
    }
    if update.exec(&txn).await?.rows_affected == 0 {
        txn.rollback().await?;
        return Ok(false);
    }
    timeline(&txn, &shipment.id, status).await?;
    let changed = StatusChanged {
        id: &shipment.id,
        status: status.as_str(),
        tracking,
    };
    events::record(
        &txn,
        EventKind::RedemptionStatusChanged,
        Some(shipment.user),
        &changed,
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// Records a question that changed nothing: the attempt and when to ask next.
pub async fn reschedule(
    db: &Db,
    id: &str,
    attempts: u32,
    next_attempt_at: DateTime<FixedOffset>,
) -> Result<(), DbErr> {
    redemptions::Entity::update_many()
        .col_expr(
            redemptions::Column::Attempts,
            Expr::value(i32::try_from(attempts).unwrap_or(i32::MAX)),
        )
        .col_expr(
            redemptions::Column::NextAttemptAt,
            Expr::value(Some(next_attempt_at)),
        )
        .filter(redemptions::Column::Id.eq(id))
        .filter(redemptions::Column::NextAttemptAt.is_not_null())
        .exec(&db.writer)
        .await?;
    Ok(())
}

/// Every redemption the fulfilment pipeline still has work for, soonest first.
pub async fn pending(db: &Db) -> Result<Vec<Shipment>, DbErr> {
    redemptions::Entity::find()
        .filter(redemptions::Column::NextAttemptAt.is_not_null())
        .order_by_asc(redemptions::Column::NextAttemptAt)
        .all(&db.reader)
        .await?
        .into_iter()
        .filter_map(|row| {
            let status = RedemptionStatus::parse(&row.status)?;
            Some(Shipment {
                next_attempt_at: row.next_attempt_at?,
                id: row.id,
                user: UserId(row.user_id),
                sku: row.sku,
                quantity: u32::try_from(row.quantity).unwrap_or(0),
                address: row.address,
                status,
                tracking: row.tracking,
                attempts: u32::try_from(row.attempts).unwrap_or(0),
            })
        })
        .map(Ok)
        .collect()
}

/// How many shipment requests the fulfilment service has not acknowledged yet.
pub async fn count_unacknowledged(db: &Db) -> Result<u64, DbErr> {
    redemptions::Entity::find()
        .filter(redemptions::Column::Status.eq(RedemptionStatus::Requested.as_str()))
        .count(&db.reader)
        .await
}

/// A shopper's redemptions, oldest first.
pub async fn list(db: &Db, user: UserId) -> Result<Vec<RedemptionView>, DbErr> {
    let rows = redemptions::Entity::find()
        .filter(redemptions::Column::UserId.eq(user.0))
        .order_by_asc(redemptions::Column::CreatedAt)
        .order_by_asc(redemptions::Column::Id)
        .all(&db.reader)
        .await?;
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        let events = history(&db.reader, &row.id).await?;
        views.push(to_view(row, events)?);
    }
    Ok(views)
}

/// One of a shopper's redemptions; `None` when unknown or someone else's.
pub async fn view(
    conn: &impl ConnectionTrait,
    user: UserId,
    id: &str,
) -> Result<Option<RedemptionView>, DbErr> {
    let Some(row) = redemptions::Entity::find_by_id(id)
        .filter(redemptions::Column::UserId.eq(user.0))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let events = history(conn, id).await?;
    to_view(row, events).map(Some)
}

async fn history(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Vec<(RedemptionStatus, DateTime<FixedOffset>)>, DbErr> {
    Ok(redemption_events::Entity::find()
        .filter(redemption_events::Column::RedemptionId.eq(id))
        .order_by_asc(redemption_events::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .filter_map(|row| Some((RedemptionStatus::parse(&row.status)?, row.at)))
        .collect())
}

fn to_view(
    row: redemptions::Model,
    events: Vec<(RedemptionStatus, DateTime<FixedOffset>)>,
) -> Result<RedemptionView, DbErr> {
    Ok(RedemptionView {
        points: stored_points(row.points)?,
        status: RedemptionStatus::parse(&row.status)
            .ok_or_else(|| DbErr::Custom(format!("unknown redemption status {}", row.status)))?,
        id: row.id,
        reward: row.sku,
        quantity: u32::try_from(row.quantity).unwrap_or(0),
        address: row.address,
        tracking: row.tracking,
        created_at: row.created_at,
        events,
    })
}
