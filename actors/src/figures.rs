//! The operator's figures: the programme's totals, day by day, the top shoppers and an
//! audit of every balance against the ledger — each computed by the database in one
//! query over exact integer hundredths.

use std::collections::BTreeMap;

use actix::prelude::*;
use chrono::NaiveDate;
use sea_orm::{DbBackend, DbErr, FromQueryResult, Statement, Value};

use crate::db::Db;
use crate::domain::Cents;
use crate::error::FiguresError;

/// The programme at a glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Registered shoppers.
    pub users: i64,
    /// Σ current balances: what the programme owes.
    pub points_outstanding: Cents,
    /// Σ accruals credited.
    pub points_accrued: Cents,
    /// Σ withdrawals.
    pub points_withdrawn: Cents,
    /// Σ points spent on rewards.
    pub points_redeemed: Cents,
    /// Σ points given back for cancelled redemptions.
    pub points_refunded: Cents,
    /// Orders per status.
    pub orders: BTreeMap<&'static str, i64>,
    /// Orders not final yet.
    pub accrual_backlog: i64,
    /// Redemptions per status.
    pub redemptions: BTreeMap<&'static str, i64>,
    /// Shipment requests the fulfilment service has not acknowledged yet.
    pub fulfilment_backlog: i64,
    /// Coupons claimed.
    pub coupons_issued: i64,
    /// Coupons used at checkout.
    pub coupons_redeemed: i64,
}

/// One UTC day of the programme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    /// The day.
    pub day: NaiveDate,
    /// Points credited.
    pub accrued: Cents,
    /// Points withdrawn.
    pub withdrawn: Cents,
    /// Points spent on rewards.
    pub redeemed: Cents,
    /// Points refunded.
    pub refunded: Cents,
    /// Shoppers registered.
    pub new_users: i64,
    /// Orders uploaded.
    pub orders_uploaded: i64,
    /// Orders that became PROCESSED.
    pub orders_processed: i64,
}

/// A shopper by points accrued in a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopShopper {
    /// The shopper's id.
    pub user: i64,
    /// Their login.
    pub login: String,
    /// Points accrued in the range.
    pub accrued: Cents,
}

/// A balance that disagrees with its ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The shopper's id.
    pub user: i64,
    /// The balance row's `current`.
    pub current: Cents,
    /// The ledger's sum.
    pub ledger: Cents,
}

/// Every balance recomputed from the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// Accounts checked (one per registered shopper).
    pub accounts: i64,
    /// Accounts whose `current` differs from their ledger's sum.
    pub mismatched: Vec<Mismatch>,
    /// Accounts whose `current` is below zero.
    pub negative: Vec<Mismatch>,
}

/// The totals.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Summary, FiguresError>")]
pub struct GetSummary;

/// Every day from `from` to `to`, both included, zeros included.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<Day>, FiguresError>")]
pub struct GetDaily {
    /// The first day.
    pub from: NaiveDate,
    /// The last day.
    pub to: NaiveDate,
}

/// Shoppers by points accrued from `from` to `to`, most first.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<TopShopper>, FiguresError>")]
pub struct GetTop {
    /// The first day.
    pub from: NaiveDate,
    /// The last day.
    pub to: NaiveDate,
    /// At most this many.
    pub limit: u64,
}

/// Recomputes every balance from the ledger.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Audit, FiguresError>")]
pub struct RunAudit;

/// Answers the operator's questions; reads only.
pub struct Figures {
    db: Db,
}

impl Figures {
    /// Figures over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl Actor for Figures {
    type Context = Context<Self>;
}

impl Handler<GetSummary> for Figures {
    type Result = ResponseFuture<Result<Summary, FiguresError>>;

    fn handle(&mut self, _: GetSummary, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { Ok(summary(&db).await?) })
    }
}

impl Handler<GetDaily> for Figures {
    type Result = ResponseFuture<Result<Vec<Day>, FiguresError>>;

    fn handle(&mut self, msg: GetDaily, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { Ok(daily(&db, msg.from, msg.to).await?) })
    }
}

impl Handler<GetTop> for Figures {
    type Result = ResponseFuture<Result<Vec<TopShopper>, FiguresError>>;

    fn handle(&mut self, msg: GetTop, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { Ok(top(&db, msg.from, msg.to, msg.limit).await?) })
    }
}

impl Handler<RunAudit> for Figures {
    type Result = ResponseFuture<Result<Audit, FiguresError>>;

    fn handle(&mut self, _: RunAudit, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { Ok(audit(&db).await?) })
    }
}

/// `text` with `?` placeholders, bound to `values`, for the connection's backend.
fn statement(db: &Db, text: &str, values: Vec<Value>) -> Statement {
    let backend = db.reader.get_database_backend();
    let text = match backend {
        DbBackend::Postgres => {
            let mut numbered = String::with_capacity(text.len() + 8);
            let mut n = 0;
            for c in text.chars() {
                if c == '?' {
                    n += 1;
                    numbered.push_str(&format!("${n}"));
                } else {
                    numbered.push(c);
                }
            }
            numbered
        }
        _ => text.to_owned(),
    };
    Statement::from_sql_and_values(backend, text, values)
}

/// The UTC day of a stored time, as `YYYY-MM-DD` text. Times are stored in UTC: on
/// SQLite as RFC 3339 text, on PostgreSQL as `timestamptz`.
fn day_of(db: &Db, column: &str) -> String {
    match db.reader.get_database_backend() {
        DbBackend::Postgres => format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
        _ => format!("substr({column}, 1, 10)"),
    }
}

#[derive(FromQueryResult)]
struct SummaryRow {
    users: i64,
    outstanding: i64,
    accrued: i64,
    withdrawn: i64,
    redeemed: i64,
    refunded: i64,
    new_orders: i64,
    processing: i64,
    invalid: i64,
    processed: i64,
    requested: i64,
    accepted: i64,
    shipped: i64,
    delivered: i64,
    cancelled: i64,
    coupons_issued: i64,
    coupons_redeemed: i64,
}

async fn summary(db: &Db) -> Result<Summary, DbErr> {
    let sum_of = |cause: &str, sign: &str| {
        format!(
            "(SELECT CAST(COALESCE(SUM({sign}delta), 0) AS BIGINT) FROM ledger WHERE cause = '{cause}')"
        )
    };
    let orders_in = |status: &str| {
        format!("(SELECT CAST(COUNT(*) AS BIGINT) FROM orders WHERE status = '{status}')")
    };
    let redemptions_in = |status: &str| {
        format!("(SELECT CAST(COUNT(*) AS BIGINT) FROM redemptions WHERE status = '{status}')")
    };
    let text = format!(
        "SELECT (SELECT CAST(COUNT(*) AS BIGINT) FROM users) AS users,
                (SELECT CAST(COALESCE(SUM(current), 0) AS BIGINT) FROM accounts) AS outstanding,
                {} AS accrued, {} AS withdrawn, {} AS redeemed, {} AS refunded,
                {} AS new_orders, {} AS processing, {} AS invalid, {} AS processed,
                {} AS requested, {} AS accepted, {} AS shipped, {} AS delivered, {} AS cancelled,
                (SELECT CAST(COUNT(user_id) AS BIGINT) FROM coupons) AS coupons_issued,
                (SELECT CAST(COUNT(redeemed_at) AS BIGINT) FROM coupons) AS coupons_redeemed",
        sum_of("accrual", ""),
        sum_of("withdrawal", "-"),
        sum_of("redemption", "-"),
        sum_of("refund", ""),
        orders_in("NEW"),
        orders_in("PROCESSING"),
        orders_in("INVALID"),
        orders_in("PROCESSED"),
        redemptions_in("REQUESTED"),
        redemptions_in("ACCEPTED"),
        redemptions_in("SHIPPED"),
        redemptions_in("DELIVERED"),
        redemptions_in("CANCELLED"),
    );
    let row = SummaryRow::find_by_statement(statement(db, &text, Vec::new()))
        .one(&db.reader)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the summary".to_owned()))?;
    Ok(Summary {
        users: row.users,
        points_outstanding: Cents(row.outstanding),
        points_accrued: Cents(row.accrued),
        points_withdrawn: Cents(row.withdrawn),
        points_redeemed: Cents(row.redeemed),
        points_refunded: Cents(row.refunded),
        orders: BTreeMap::from([
            ("NEW", row.new_orders),
            ("PROCESSING", row.processing),
            ("INVALID", row.invalid),
            ("PROCESSED", row.processed),
        ]),
        accrual_backlog: row.new_orders + row.processing,
        redemptions: BTreeMap::from([
            ("REQUESTED", row.requested),
            ("ACCEPTED", row.accepted),
            ("SHIPPED", row.shipped),
            ("DELIVERED", row.delivered),
            ("CANCELLED", row.cancelled),
        ]),
        fulfilment_backlog: row.requested,
        coupons_issued: row.coupons_issued,
        coupons_redeemed: row.coupons_redeemed,
    })
}

#[derive(FromQueryResult)]
struct DayRow {
    day: String,
    accrued: i64,
    withdrawn: i64,
    redeemed: i64,
    refunded: i64,
    new_users: i64,
    orders_uploaded: i64,
    orders_processed: i64,
}

async fn daily(db: &Db, from: NaiveDate, to: NaiveDate) -> Result<Vec<Day>, DbErr> {
    let text = format!(
        "SELECT day,
                CAST(SUM(accrued) AS BIGINT) AS accrued,
                CAST(SUM(withdrawn) AS BIGINT) AS withdrawn,
                CAST(SUM(redeemed) AS BIGINT) AS redeemed,
                CAST(SUM(refunded) AS BIGINT) AS refunded,
                CAST(SUM(new_users) AS BIGINT) AS new_users,
                CAST(SUM(orders_uploaded) AS BIGINT) AS orders_uploaded,
                CAST(SUM(orders_processed) AS BIGINT) AS orders_processed
         FROM (
             SELECT {ledger_day} AS day,
                    CASE WHEN cause = 'accrual' THEN delta ELSE 0 END AS accrued,
                    CASE WHEN cause = 'withdrawal' THEN -delta ELSE 0 END AS withdrawn,
                    CASE WHEN cause = 'redemption' THEN -delta ELSE 0 END AS redeemed,
                    CASE WHEN cause = 'refund' THEN delta ELSE 0 END AS refunded,
                    0 AS new_users, 0 AS orders_uploaded, 0 AS orders_processed
             FROM ledger
             UNION ALL SELECT {user_day}, 0, 0, 0, 0, 1, 0, 0 FROM users
             UNION ALL SELECT {upload_day}, 0, 0, 0, 0, 0, 1, 0 FROM orders
             UNION ALL SELECT {final_day}, 0, 0, 0, 0, 0, 0, 1 FROM orders
                       WHERE status = 'PROCESSED' AND final_at IS NOT NULL
         ) AS changes
         WHERE day BETWEEN ? AND ?
         GROUP BY day",
        ledger_day = day_of(db, "created_at"),
        user_day = day_of(db, "created_at"),
        upload_day = day_of(db, "uploaded_at"),
        final_day = day_of(db, "final_at"),
    );
    let values = vec![day_text(from).into(), day_text(to).into()];
    let mut found: BTreeMap<String, DayRow> =
        DayRow::find_by_statement(statement(db, &text, values))
            .all(&db.reader)
            .await?
            .into_iter()
            .map(|row| (row.day.clone(), row))
            .collect();
    Ok(from
        .iter_days()
        .take_while(|day| *day <= to)
        .map(|day| match found.remove(&day_text(day)) {
            Some(row) => Day {
                day,
                accrued: Cents(row.accrued),
                withdrawn: Cents(row.withdrawn),
                redeemed: Cents(row.redeemed),
                refunded: Cents(row.refunded),
                new_users: row.new_users,
                orders_uploaded: row.orders_uploaded,
                orders_processed: row.orders_processed,
            },
            None => Day {
                day,
                accrued: Cents(0),
                withdrawn: Cents(0),
                redeemed: Cents(0),
                refunded: Cents(0),
                new_users: 0,
                orders_uploaded: 0,
                orders_processed: 0,
            },
        })
        .collect())
}

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

#[derive(FromQueryResult)]
struct TopRow {
    user_id: i64,
    login: String,
    accrued: i64,
}

async fn top(
    db: &Db,
    from: NaiveDate,
    to: NaiveDate,
    limit: u64,
) -> Result<Vec<TopShopper>, DbErr> {
    let text = format!(
        "SELECT ledger.user_id AS user_id, users.login AS login,
                CAST(SUM(ledger.delta) AS BIGINT) AS accrued
         FROM ledger JOIN users ON users.id = ledger.user_id
         WHERE ledger.cause = 'accrual' AND {day} BETWEEN ? AND ?
         GROUP BY ledger.user_id, users.login
         ORDER BY accrued DESC, ledger.user_id
         LIMIT ?",
        day = day_of(db, "ledger.created_at"),
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let values = vec![day_text(from).into(), day_text(to).into(), limit.into()];
    Ok(TopRow::find_by_statement(statement(db, &text, values))
        .all(&db.reader)
        .await?
        .into_iter()
        .map(|row| TopShopper {
            user: row.user_id,
            login: row.login,
            accrued: Cents(row.accrued),
        })
        .collect())
}

#[derive(FromQueryResult)]
struct CountRow {
    n: i64,
}

#[derive(FromQueryResult)]
struct AuditRow {
    user_id: i64,
    current: i64,
    ledger: i64,
}

async fn audit(db: &Db) -> Result<Audit, DbErr> {
    let accounts = CountRow::find_by_statement(statement(
        db,
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM accounts",
        Vec::new(),
    ))
    .one(&db.reader)
    .await?
    .map_or(0, |row| row.n);
    let suspicious = AuditRow::find_by_statement(statement(
        db,
        "SELECT accounts.user_id AS user_id, accounts.current AS current,
                CAST(COALESCE(SUM(ledger.delta), 0) AS BIGINT) AS ledger
         FROM accounts LEFT JOIN ledger ON ledger.user_id = accounts.user_id
         GROUP BY accounts.user_id, accounts.current
         HAVING accounts.current <> COALESCE(SUM(ledger.delta), 0) OR accounts.current < 0
         ORDER BY accounts.user_id",
        Vec::new(),
    ))
    .all(&db.reader)
    .await?;
    let entry = |row: &AuditRow| Mismatch {
        user: row.user_id,
        current: Cents(row.current),
        ledger: Cents(row.ledger),
    };
    Ok(Audit {
        accounts,
        mismatched: suspicious
            .iter()
            .filter(|row| row.current != row.ledger)
            .map(entry)
            .collect(),
        negative: suspicious
            .iter()
            .filter(|row| row.current < 0)
            .map(entry)
            .collect(),
    })
}
