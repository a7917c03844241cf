//! Campaigns in storage: creation with the whole pool generated in batches and inserted
//! in multi-row statements, and the campaigns with their counters.

use chrono::{DateTime, FixedOffset, SubsecRound};
use gophermart_entities::{campaigns, coupons};
use rand::Rng;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Statement, TryInsertResult,
};
use serde::Serialize;

use crate::db::{now, stored_points, Db};
use crate::domain::Points;
use crate::error::CampaignError;
use crate::events::store::{self as events, EventKind};

/// Codes inserted per statement: three values each, well inside SQLite's and
/// PostgreSQL's limits on bound values.
const BATCH: usize = 2000;

/// Crockford's base32: no I, L, O, U.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// What a code takes off an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CampaignKind {
    /// A fixed number of points, capped at the order's amount.
    Fixed,
    /// A percent of the order's amount.
    Percent,
}

impl CampaignKind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::Percent => "percent",
        }
    }

    /// Reads a name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "fixed" => Some(Self::Fixed),
            "percent" => Some(Self::Percent),
            _ => None,
        }
    }
}

/// A campaign to create, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NewCampaign {
    /// The operator's identifier.
    pub id: String,
    /// What it is called.
    pub title: String,
    /// Fixed or percent.
    pub kind: CampaignKind,
    /// Points, or a percent (up to 100), exact to 2 decimals.
    pub value: Points,
    /// Codes in the pool, 1 – 1 000 000.
    pub quantity: u32,
    /// Codes one shopper may hold, at least 1.
    pub per_user: u32,
    /// Points a claim costs (0: free).
    pub price: Points,
    /// The smallest order amount a code applies to.
    pub min_order: Points,
    /// When claims open; `None`: at once.
    #[serde(serialize_with = "serialize_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starts_at: Option<DateTime<FixedOffset>>,
    /// When the campaign ends; `None`: never.
    #[serde(serialize_with = "serialize_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<DateTime<FixedOffset>>,
    /// The codes' prefix: 1–16 of `[A-Z0-9]`.
    pub prefix: String,
}

fn serialize_time<S: serde::Serializer>(
    time: &Option<DateTime<FixedOffset>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serializer.serialize_str(
            &time
                .to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        None => serializer.serialize_none(),
    }
}

/// A campaign with its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    /// As created.
    pub campaign: NewCampaign,
    /// When it was created.
    pub created_at: DateTime<FixedOffset>,
    /// Codes claimed.
    pub issued: i64,
    /// Codes used at checkout.
    pub redeemed: i64,
}

impl Campaign {
    /// Codes still to claim.
    pub fn remaining(&self) -> i64 {
        i64::from(self.campaign.quantity) - self.issued
    }
}

/// A code: `PREFIX-YYYYMMDD-` and 10 Crockford base32 characters (50 bits) from the
/// thread's cryptographically secure generator.
fn code(prefix: &str, day: &str, rng: &mut impl Rng) -> String {
    let mut code = String::with_capacity(prefix.len() + 20);
    code.push_str(prefix);
    code.push('-');
    code.push_str(day);
    code.push('-');
    for _ in 0..10 {
        code.push(char::from(CROCKFORD[rng.random_range(0..32)]));
    }
    code
}

/// Creates the campaign and every code of its pool in one transaction: the answer comes
/// only once all are stored. A code that collides with one stored before is generated
/// again.
pub async fn create(db: &Db, campaign: NewCampaign) -> Result<Campaign, CampaignError> {
    let created_at = now();
    let txn = db.write().await?;
    let inserted = campaigns::Entity::insert(campaigns::ActiveModel {
        id: Set(campaign.id.clone()),
        title: Set(campaign.title.clone()),
        kind: Set(campaign.kind.as_str().to_owned()),
        value: Set(campaign.value.cents()),
        quantity: Set(i64::from(campaign.quantity)),
        per_user: Set(i32::try_from(campaign.per_user).unwrap_or(i32::MAX)),
        price: Set(campaign.price.cents()),
        min_order: Set(campaign.min_order.cents()),
        starts_at: Set(campaign.starts_at),
        ends_at: Set(campaign.ends_at),
        prefix: Set(campaign.prefix.clone()),
        created_at: Set(created_at),
    })
    .on_conflict_do_nothing_on([campaigns::Column::Id])
    .exec_without_returning(&txn)
    .await?;
    if !matches!(inserted, TryInsertResult::Inserted(1)) {
        txn.rollback().await?;
        return Err(CampaignError::IdTaken);
    }
    let day = created_at.to_utc().format("%Y%m%d").to_string();
    let quantity = i64::from(campaign.quantity);
    let mut start = 1;
    while start <= quantity {
        let end = (start + BATCH as i64 - 1).min(quantity);
        fill(&txn, &campaign, &day, start, end).await?;
        start = end + 1;
    }
    events::record(&txn, EventKind::CampaignCreated, None, &campaign).await?;
    txn.commit().await?;
    if db.writer.get_database_backend() == sea_orm::DbBackend::Postgres {
        // A pool of up to a million rows arrived at once: give the planner its numbers
        // now, not when autovacuum gets round to it, or a claim's next-free-code lookup
        // is planned as a scan of the whole table.
        db.writer.execute_unprepared("ANALYZE coupons").await?;
    }
    Ok(Campaign {
        campaign,
        created_at,
        issued: 0,
        redeemed: 0,
    })
}

/// Stores codes for positions `start..=end`, generating again for any position whose
/// code collided, until every position has one.
async fn fill(
    txn: &DatabaseTransaction,
    campaign: &NewCampaign,
    day: &str,
    start: i64,
    end: i64,
) -> Result<(), DbErr> {
    let mut missing: Vec<i64> = (start..=end).collect();
    while !missing.is_empty() {
        let rows: Vec<coupons::ActiveModel> = {
            let mut rng = rand::rng();
            missing
                .iter()
                .map(|pos| coupons::ActiveModel {
                    code: Set(code(&campaign.prefix, day, &mut rng)),
                    campaign_id: Set(campaign.id.clone()),
                    pos: Set(*pos),
                    ..Default::default()
                })
                .collect()
        };
        let inserted = coupons::Entity::insert_many(rows)
            .on_conflict_do_nothing_on([coupons::Column::Code])
            .exec_without_returning(txn)
            .await?;
        if matches!(inserted, TryInsertResult::Inserted(n) if n as usize == missing.len()) {
            return Ok(());
        }
        // Rare beyond measure (50 random bits), and never shown: find who is missing.
        let stored: Vec<i64> = coupons::Entity::find()
            .select_only()
            .column(coupons::Column::Pos)
            .filter(coupons::Column::CampaignId.eq(campaign.id.as_str()))
            .filter(coupons::Column::Pos.between(start, end))
            .into_tuple()
            .all(txn)
            .await?;
        missing.retain(|pos| !stored.contains(pos));
    }
    Ok(())
}

#[derive(FromQueryResult)]
struct Counts {
    issued: i64,
    redeemed: i64,
}

async fn counts(conn: &impl ConnectionTrait, id: &str) -> Result<Counts, DbErr> {
    let backend = conn.get_database_backend();
    let placeholder = if backend == sea_orm::DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    Counts::find_by_statement(Statement::from_sql_and_values(
        backend,
        format!(
            "SELECT CAST(COUNT(user_id) AS BIGINT) AS issued,
                    CAST(COUNT(redeemed_at) AS BIGINT) AS redeemed
             FROM coupons WHERE campaign_id = {placeholder}"
        ),
        [id.into()],
    ))
    .one(conn)
    .await
    .map(|counts| {
        counts.unwrap_or(Counts {
            issued: 0,
            redeemed: 0,
        })
    })
}

fn from_row(row: campaigns::Model, counts: Counts) -> Result<Campaign, DbErr> {
    let kind = CampaignKind::parse(&row.kind)
        .ok_or_else(|| DbErr::Custom(format!("unknown campaign kind {}", row.kind)))?;
    Ok(Campaign {
        campaign: NewCampaign {
            id: row.id,
            title: row.title,
            kind,
            value: stored_points(row.value)?,
            quantity: u32::try_from(row.quantity).unwrap_or(0),
            per_user: u32::try_from(row.per_user).unwrap_or(0),
            price: stored_points(row.price)?,
            min_order: stored_points(row.min_order)?,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            prefix: row.prefix,
        },
        created_at: row.created_at,
        issued: counts.issued,
        redeemed: counts.redeemed,
    })
}

/// A campaign with its counters, if it exists.
pub async fn get(db: &Db, id: &str) -> Result<Option<Campaign>, DbErr> {
    let Some(row) = campaigns::Entity::find_by_id(id).one(&db.reader).await? else {
        return Ok(None);
    };
    let counts = counts(&db.reader, id).await?;
    from_row(row, counts).map(Some)
}

/// Campaigns started, not ended, with codes left, by id.
pub async fn open(db: &Db) -> Result<Vec<Campaign>, DbErr> {
    let at = now();
    let rows = campaigns::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(campaigns::Column::StartsAt.is_null())
                .add(campaigns::Column::StartsAt.lte(at)),
        )
        .filter(
            sea_orm::Condition::any()
                .add(campaigns::Column::EndsAt.is_null())
                .add(campaigns::Column::EndsAt.gt(at)),
        )
        .order_by_asc(campaigns::Column::Id)
        .all(&db.reader)
        .await?;
    let mut open = Vec::with_capacity(rows.len());
    for row in rows {
        let counts = counts(&db.reader, &row.id).await?;
        let campaign = from_row(row, counts)?;
        if campaign.remaining() > 0 {
            open.push(campaign);
        }
    }
    Ok(open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_prefix_date_and_ten_crockford_characters() {
        let mut rng = rand::rng();
        let code = code("SPRING", "20261202", &mut rng);
        let (head, random) = code.split_at("SPRING-20261202-".len());
        assert_eq!(head, "SPRING-20261202-");
        assert_eq!(random.len(), 10);
        assert!(random.bytes().all(|b| CROCKFORD.contains(&b)), "{code}");
    }
}

/// A coupon as its holder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponView {
    /// The code.
    pub code: String,
    /// Its campaign.
    pub campaign: NewCampaign,
    /// When it was claimed.
    pub issued_at: DateTime<FixedOffset>,
    /// When it was used at checkout.
    pub redeemed_at: Option<DateTime<FixedOffset>>,
}

impl CouponView {
    /// `ISSUED`, `REDEEMED`, or `EXPIRED` once its campaign has ended unused.
    pub fn status(&self, at: DateTime<FixedOffset>) -> &'static str {
        if self.redeemed_at.is_some() {
            "REDEEMED"
        } else if self.campaign.ends_at.is_some_and(|ends| ends <= at) {
            "EXPIRED"
        } else {
            "ISSUED"
        }
    }
}

/// A claim to bind, decided by the campaign's actor and paid through the shopper's.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The free code the campaign's actor picked.
    pub code: String,
    /// Its campaign, as the campaign's actor read it.
    pub campaign: NewCampaign,
    /// Points it costs.
    pub price: Points,
    /// Which of the shopper's codes of this campaign it becomes.
    pub slot: u32,
    /// The shopper's `Idempotency-Key`, if sent, and the request's digest.
    pub key: Option<(String, String)>,
}

#[derive(Serialize)]
struct Issued<'a> {
    code: &'a str,
    campaign: &'a str,
    price: Points,
    balance: Points,
}

/// Binds the code to the shopper and charges its price (a `coupon` ledger entry), in one
/// commit: a code is never bound without payment, nor a payment made without a code. The
/// bind is conditional on the code being free, whatever any actor's memory says.
pub async fn bind(
    db: &Db,
    mut state: crate::account::store::AccountState,
    user: crate::domain::UserId,
    binding: &Binding,
) -> Result<(CouponView, crate::account::store::AccountState), crate::error::AccountError> {
    use crate::account::store::{post, reload_after_race, Change, VERSION_RETRIES};
    use crate::error::AccountError;
    use sea_orm::sea_query::Expr;
    for _ in 0..VERSION_RETRIES {
        // As stored (PostgreSQL keeps microseconds), so that the answer reads as the list.
        let at = now().trunc_subsecs(6);
        let txn = db.write().await?;
        let bound = coupons::Entity::update_many()
            .col_expr(coupons::Column::UserId, Expr::value(Some(user.0)))
            .col_expr(
                coupons::Column::Slot,
                Expr::value(Some(i32::try_from(binding.slot).unwrap_or(i32::MAX))),
            )
            .col_expr(coupons::Column::IssuedAt, Expr::value(Some(at)))
            .filter(coupons::Column::Code.eq(binding.code.as_str()))
            .filter(coupons::Column::UserId.is_null())
            .exec(&txn)
            .await;
        let bound = match bound {
            Ok(bound) => bound,
            Err(error) => {
                let _ = txn.rollback().await;
                return Err(match error.sql_err() {
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                        AccountError::LimitReached
                    }
                    _ => error.into(),
                });
            }
        };
        if bound.rows_affected == 0 {
            txn.rollback().await?;
            return Err(AccountError::CodeTaken);
        }
        if let Some((key, fingerprint)) = &binding.key {
            let key = (key.as_str(), fingerprint.as_str());
            if !crate::idempotency::remember(&txn, user, key, &binding.code, at).await? {
                txn.rollback().await?;
                return Err(AccountError::KeyRace);
            }
        }
        let mut next = state;
        if !binding.price.is_zero() {
            let Some(current) = state.current.checked_sub(binding.price) else {
                txn.rollback().await?;
                return Err(AccountError::InsufficientFunds);
            };
            let change = Change {
                current,
                withdrawn: state.withdrawn,
                delta: -binding.price.cents(),
                cause: CAUSE_COUPON,
            };
            match post(&txn, user, state, change, &binding.code).await? {
                Some(posted) => next = posted,
                None => {
                    txn.rollback().await?;
                    state = reload_after_race(db, user).await?;
                    continue;
                }
            }
        }
        let issued = Issued {
            code: &binding.code,
            campaign: &binding.campaign.id,
            price: binding.price,
            balance: next.current,
        };
        events::record(&txn, EventKind::CouponIssued, Some(user), &issued).await?;
        txn.commit().await?;
        // What was just written; a campaign's terms never change.
        let view = CouponView {
            code: binding.code.clone(),
            campaign: binding.campaign.clone(),
            issued_at: at,
            redeemed_at: None,
        };
        return Ok((view, next));
    }
    Err(AccountError::Contended)
}

/// Ledger cause of points paid for a coupon.
pub const CAUSE_COUPON: &str = "coupon";

/// A claimed coupon with its campaign, if the code exists and is claimed.
pub async fn coupon(conn: &impl ConnectionTrait, code: &str) -> Result<Option<CouponView>, DbErr> {
    let Some(row) = coupons::Entity::find_by_id(code).one(conn).await? else {
        return Ok(None);
    };
    let Some(issued_at) = row.issued_at else {
        return Ok(None);
    };
    let Some(campaign) = campaigns::Entity::find_by_id(row.campaign_id.as_str())
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let campaign = from_row(
        campaign,
        Counts {
            issued: 0,
            redeemed: 0,
        },
    )?
    .campaign;
    Ok(Some(CouponView {
        code: row.code,
        campaign,
        issued_at,
        redeemed_at: row.redeemed_at,
    }))
}

/// The campaign a code belongs to, whether claimed or not.
pub async fn campaign_of(db: &Db, code: &str) -> Result<Option<String>, DbErr> {
    Ok(coupons::Entity::find_by_id(code)
        .one(&db.reader)
        .await?
        .map(|row| row.campaign_id))
}

/// How many codes of `campaign` the shopper holds, as committed. Read off the writer: on
/// SQLite it is busy with the claims' own commits, and every bind is conditional on the
/// code being free and the shopper's slot unused, so the database decides anyway.
pub async fn held(db: &Db, campaign: &str, user: i64) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    coupons::Entity::find()
        .filter(coupons::Column::CampaignId.eq(campaign))
        .filter(coupons::Column::UserId.eq(user))
        .count(&db.reader)
        .await
}

/// The first free code of `campaign` at or after position `from`.
pub async fn next_free(db: &Db, campaign: &str, from: i64) -> Result<Option<(String, i64)>, DbErr> {
    Ok(free_codes(db, campaign, from, 1).await?.pop())
}

/// The first `count` free codes of `campaign` at or after position `from`, in pool order,
/// as committed (off the writer, as [`held`]).
pub async fn free_codes(
    db: &Db,
    campaign: &str,
    from: i64,
    count: usize,
) -> Result<Vec<(String, i64)>, DbErr> {
    Ok(coupons::Entity::find()
        .filter(coupons::Column::CampaignId.eq(campaign))
        .filter(coupons::Column::Pos.gte(from))
        .filter(coupons::Column::UserId.is_null())
        .order_by_asc(coupons::Column::Pos)
        .limit(u64::try_from(count).unwrap_or(u64::MAX))
        .all(&db.reader)
        .await?
        .into_iter()
        .map(|row| (row.code, row.pos))
        .collect())
}

/// What a campaign is, without its counters.
pub async fn definition(db: &Db, id: &str) -> Result<Option<NewCampaign>, DbErr> {
    let Some(row) = campaigns::Entity::find_by_id(id).one(&db.reader).await? else {
        return Ok(None);
    };
    from_row(
        row,
        Counts {
            issued: 0,
            redeemed: 0,
        },
    )
    .map(|c| Some(c.campaign))
}

/// A shopper's coupons, oldest claim first.
pub async fn held_by(db: &Db, user: i64) -> Result<Vec<CouponView>, DbErr> {
    let rows = coupons::Entity::find()
        .filter(coupons::Column::UserId.eq(user))
        .order_by_asc(coupons::Column::IssuedAt)
        .order_by_asc(coupons::Column::Code)
        .all(&db.reader)
        .await?;
    let mut views = Vec::with_capacity(rows.len());
    let mut campaigns_seen: std::collections::HashMap<String, NewCampaign> =
        std::collections::HashMap::new();
    for row in rows {
        let Some(issued_at) = row.issued_at else {
            continue;
        };
        let campaign = match campaigns_seen.get(&row.campaign_id) {
            Some(campaign) => campaign.clone(),
            None => {
                let Some(found) = campaigns::Entity::find_by_id(row.campaign_id.as_str())
                    .one(&db.reader)
                    .await?
                else {
                    continue;
                };
                let campaign = from_row(
                    found,
                    Counts {
                        issued: 0,
                        redeemed: 0,
                    },
                )?
                .campaign;
                campaigns_seen.insert(row.campaign_id.clone(), campaign.clone());
                campaign
            }
        };
        views.push(CouponView {
            code: row.code,
            campaign,
            issued_at,
            redeemed_at: row.redeemed_at,
        });
    }
    Ok(views)
}

/// A coupon's use at checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    /// The code.
    pub code: String,
    /// The order it paid towards.
    pub order: String,
    /// The order's amount.
    pub amount: Points,
    /// What it took off.
    pub discount: Points,
    /// When.
    pub redeemed_at: DateTime<FixedOffset>,
}

/// The discount a campaign gives on `amount`: a fixed value capped at the amount, or the
/// percent of the amount rounded half-up to 2 decimals.
pub fn discount(campaign: &NewCampaign, amount: Points) -> Points {
    let off = match campaign.kind {
        CampaignKind::Fixed => campaign.value,
        CampaignKind::Percent => {
            let exact = amount.to_decimal() * campaign.value.to_decimal()
                / rust_decimal::Decimal::ONE_HUNDRED;
            let rounded = exact
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
            let cents = (rounded * rust_decimal::Decimal::ONE_HUNDRED)
                .trunc()
                .try_into()
                .unwrap_or(i64::MAX);
            Points::from_cents(cents).unwrap_or(amount)
        }
    };
    off.min(amount)
}

#[derive(Serialize)]
struct Used<'a> {
    code: &'a str,
    campaign: &'a str,
    order: &'a str,
    amount: Points,
    discount: Points,
}

/// Marks a claimed code used for `order` and `amount`, with its event, unless it was
/// used before: then the earlier use, for the caller to compare.
pub async fn redeem(
    db: &Db,
    coupon: &CouponView,
    holder: Option<i64>,
    order: &str,
    amount: Points,
) -> Result<Result<Redemption, Redemption>, DbErr> {
    use sea_orm::sea_query::Expr;
    let off = discount(&coupon.campaign, amount);
    let at = now();
    let txn = db.write().await?;
    let used = coupons::Entity::update_many()
        .col_expr(coupons::Column::OrderNumber, Expr::value(Some(order)))
        .col_expr(coupons::Column::Amount, Expr::value(Some(amount.cents())))
        .col_expr(coupons::Column::Discount, Expr::value(Some(off.cents())))
        .col_expr(coupons::Column::RedeemedAt, Expr::value(Some(at)))
        .filter(coupons::Column::Code.eq(coupon.code.as_str()))
        .filter(coupons::Column::UserId.is_not_null())
        .filter(coupons::Column::RedeemedAt.is_null())
        .exec(&txn)
        .await?;
    if used.rows_affected == 0 {
        txn.rollback().await?;
        let earlier = used_before(db, &coupon.code)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(coupon.code.clone()))?;
        return Ok(Err(earlier));
    }
    let event = Used {
        code: &coupon.code,
        campaign: &coupon.campaign.id,
        order,
        amount,
        discount: off,
    };
    events::record(
        &txn,
        EventKind::CouponRedeemed,
        holder.map(crate::domain::UserId),
        &event,
    )
    .await?;
    txn.commit().await?;
    Ok(Ok(Redemption {
        code: coupon.code.clone(),
        order: order.to_owned(),
        amount,
        discount: off,
        redeemed_at: at,
    }))
}

/// How a code was used, if it was.
pub async fn used_before(db: &Db, code: &str) -> Result<Option<Redemption>, DbErr> {
    let Some(row) = coupons::Entity::find_by_id(code).one(&db.writer).await? else {
        return Ok(None);
    };
    let (Some(order), Some(amount), Some(off), Some(at)) =
        (row.order_number, row.amount, row.discount, row.redeemed_at)
    else {
        return Ok(None);
    };
    Ok(Some(Redemption {
        code: row.code,
        order,
        amount: stored_points(amount)?,
        discount: stored_points(off)?,
        redeemed_at: at,
    }))
}

/// Who holds a code.
pub async fn holder(db: &Db, code: &str) -> Result<Option<i64>, DbErr> {
    Ok(coupons::Entity::find_by_id(code)
        .one(&db.reader)
        .await?
        .and_then(|row| row.user_id))
}
