//! The outbox in storage: recording an event inside the caller's transaction, numbering
//! committed events, and reading them back in `seq` order.

use chrono::{DateTime, FixedOffset, SecondsFormat};
use gophermart_entities::events;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::db::{now, Db};
use crate::domain::UserId;

/// What happened. The name is the event's `type` and the last part of its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A shopper registered.
    UserRegistered,
    /// A shopper uploaded an order number.
    OrderUploaded,
    /// An order's accrual status changed.
    OrderStatusChanged,
    /// An order's accrual was credited.
    PointsCredited,
    /// Points were withdrawn for an order.
    PointsWithdrawn,
    /// A reward was added to the catalogue or changed.
    RewardChanged,
    /// Points were exchanged for a reward; its shipment is requested.
    RedemptionRequested,
    /// A redemption's shipment moved on (or was cancelled).
    RedemptionStatusChanged,
    /// A cancelled redemption's points came back.
    PointsRefunded,
    /// A coupon campaign was created with its pool.
    CampaignCreated,
    /// A shopper claimed a coupon.
    CouponIssued,
    /// A coupon was used at checkout.
    CouponRedeemed,
}

impl EventKind {
    /// The event's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::UserRegistered => "user.registered",
            EventKind::OrderUploaded => "order.uploaded",
            EventKind::OrderStatusChanged => "order.status_changed",
            EventKind::PointsCredited => "points.credited",
            EventKind::PointsWithdrawn => "points.withdrawn",
            EventKind::RewardChanged => "reward.changed",
            EventKind::RedemptionRequested => "redemption.requested",
            EventKind::RedemptionStatusChanged => "redemption.status_changed",
            EventKind::PointsRefunded => "points.refunded",
            EventKind::CampaignCreated => "campaign.created",
            EventKind::CouponIssued => "coupon.issued",
            EventKind::CouponRedeemed => "coupon.redeemed",
        }
    }
}

/// How many events one numbering pass takes at most.
const NUMBER_BATCH: u64 = 1000;

/// An event about to be written: its row, ready to insert.
pub struct NewEvent {
    /// UUID v7.
    pub id: String,
    /// The event's `type`.
    pub kind: EventKind,
    /// The shopper concerned.
    pub user: Option<UserId>,
    /// `data` as JSON text.
    pub data: String,
    /// When it happened.
    pub at: DateTime<FixedOffset>,
}

impl NewEvent {
    /// An event of `kind` about `user` with `data`, happening now.
    pub fn new(
        kind: EventKind,
        user: Option<UserId>,
        data: &impl Serialize,
    ) -> Result<Self, DbErr> {
        Ok(Self {
            id: uuid::Uuid::now_v7().to_string(),
            kind,
            user,
            data: serde_json::to_string(data).map_err(|e| DbErr::Custom(e.to_string()))?,
            at: now(),
        })
    }

    fn into_row(self) -> events::ActiveModel {
        events::ActiveModel {
            id: Set(self.id),
            seq: Set(None),
            kind: Set(self.kind.as_str().to_owned()),
            user_id: Set(self.user.map(|user| user.0)),
            data: Set(self.data),
            at: Set(self.at),
            ..Default::default()
        }
    }
}

/// Records events inside the caller's transaction, in one statement: they become visible
/// exactly when the change they tell of commits, and never otherwise.
pub async fn record_all(
    txn: &impl ConnectionTrait,
    events: impl IntoIterator<Item = NewEvent>,
) -> Result<(), DbErr> {
    events::Entity::insert_many(events.into_iter().map(NewEvent::into_row))
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Records one event inside the caller's transaction.
pub async fn record(
    txn: &impl ConnectionTrait,
    kind: EventKind,
    user: Option<UserId>,
    data: &impl Serialize,
) -> Result<(), DbErr> {
    record_all(txn, [NewEvent::new(kind, user, data)?]).await
}

/// Numbers committed events that have no `seq` yet, in insertion order, continuing from
/// the highest `seq`; returns how many were numbered. Only committed rows can be seen
/// here — on SQLite also rows written earlier in the same shared commit, which becomes
/// durable with them or not at all — and numbering passes run one at a time (one
/// sequencer; on PostgreSQL also an advisory lock), each in one transaction: `seq` values
/// become visible in increasing order with no gap, whatever order the writers committed
/// in.
pub async fn number(db: &Db) -> Result<u64, DbErr> {
    let backend = db.writer.get_database_backend();
    let txn = db.write().await?;
    if backend == DbBackend::Postgres {
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7367746572)")
            .await?;
    }
    let numbered = txn
        .execute_raw(Statement::from_string(
            backend,
            format!(
                "UPDATE events SET seq = numbered.base + numbered.rn
                 FROM (SELECT pos,
                              ROW_NUMBER() OVER (ORDER BY pos) AS rn,
                              (SELECT COALESCE(MAX(seq), 0) FROM events) AS base
                       FROM events WHERE seq IS NULL ORDER BY pos LIMIT {NUMBER_BATCH}) AS numbered
                 WHERE events.pos = numbered.pos"
            ),
        ))
        .await?
        .rows_affected();
    txn.commit().await?;
    Ok(numbered)
}

/// Whether any committed event waits for its number.
pub async fn has_unnumbered(db: &Db) -> Result<bool, DbErr> {
    Ok(events::Entity::find()
        .filter(events::Column::Seq.is_null())
        .limit(1)
        .one(&db.reader)
        .await?
        .is_some())
}

/// One event as the feed and the broker show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Event)]
pub struct EventView {
    /// UUID v7.
    pub id: String,
    /// Position in the feed.
    pub seq: i64,
    /// `points.credited`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339 in UTC with milliseconds.
    pub at: String,
    /// The shopper concerned, if any.
    pub user: Option<i64>,
    /// What a consumer needs to know.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

impl EventView {
    /// The event's JSON, exactly as the feed and the broker carry it.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// The subject it is published on.
    pub fn subject(&self) -> String {
        format!("gophermart.{}", self.kind)
    }
}

/// Numbered events after `after`, ascending, at most `limit`.
pub async fn after(db: &Db, after: i64, limit: u64) -> Result<Vec<EventView>, DbErr> {
    events::Entity::find()
        .filter(events::Column::Seq.gt(after))
        .order_by_asc(events::Column::Seq)
        .limit(limit)
        .all(&db.reader)
        .await?
        .into_iter()
        .map(view)
        .collect()
}

/// Numbered events not yet past `position` (the relay's), counted.
pub async fn count_after(db: &Db, position: i64) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    events::Entity::find()
        .filter(
            Condition::any()
                .add(events::Column::Seq.gt(position))
                .add(events::Column::Seq.is_null()),
        )
        .count(&db.reader)
        .await
}

fn view(row: events::Model) -> Result<EventView, DbErr> {
    let seq = row
        .seq
        .ok_or_else(|| DbErr::Custom(format!("event {} has no seq", row.id)))?;
    let data = RawValue::from_string(row.data)
        .map_err(|e| DbErr::Custom(format!("event {} data: {e}", row.id)))?;
    Ok(EventView {
        id: row.id,
        seq,
        kind: row.kind,
        at: render_time(row.at),
        user: row.user_id,
        data,
    })
}

/// RFC 3339 in UTC with three fractional digits.
pub fn render_time(at: DateTime<FixedOffset>) -> String {
    at.to_utc().to_rfc3339_opts(SecondsFormat::Millis, true)
}
