//! Campaigns in storage: creation with the whole pool generated in batches and inserted
//! in multi-row statements, and the campaigns with their counters.

use chrono::{DateTime, FixedOffset};
use gophermart_entities::{campaigns, coupons};
use rand::Rng;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
    TryInsertResult,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    pub starts_at: Option<DateTime<FixedOffset>>,
    /// When the campaign ends; `None`: never.
    #[serde(serialize_with = "serialize_time")]
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
    let txn = db.writer.begin().await?;
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
