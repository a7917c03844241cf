//! The operator's endpoints: the event feed and the figures. The whole scope is guarded
//! by the operator's token (`roles::admin_only`).

use std::collections::BTreeMap;

use actix::Addr;
use actix_web::{get, web, HttpRequest, HttpResponse};
use gophermart_actors::domain::Cents;
use gophermart_actors::events::{CountUnpublished, EventRelay, EventView, ListEvents};
use gophermart_actors::figures::{Figures, GetDaily, GetSummary, GetTop, RunAudit};
use serde::Serialize;

use super::query::{day_range, Params};
use super::{json, json_list};
use crate::error::ApiError;

/// `GET /api/admin/events?after=&limit=`: numbered events, ascending `seq`.
#[utoipa::path(
    operation_id = "listEvents",
    tag = "operator",
    security(("operator" = [])),
    params(
        ("after" = Option<i64>, Query, description = "Only events with a greater `seq` (default 0)", minimum = 0),
        ("limit" = Option<i64>, Query, description = "At most this many, 1–1000 (default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "Events in ascending `seq`", body = Vec<EventView>),
        (status = 204, description = "None after that position"),
        (status = 400, description = "A bad, unknown or repeated parameter", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid operator token", body = String, content_type = "text/plain"),
        (status = 403, description = "The operator API is disabled: ADMIN_TOKEN is not set", body = String, content_type = "text/plain"),
    )
)]
#[get("/events")]
pub async fn events(
    req: HttpRequest,
    relay: web::Data<Addr<EventRelay>>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::read(&req, &["after", "limit"])?;
    let after = params.integer("after", 0..=i64::MAX, Some(0))?.unwrap_or(0);
    let limit = params.integer("limit", 1..=1000, Some(100))?.unwrap_or(100);
    let page = relay
        .send(ListEvents {
            after,
            limit: limit.unsigned_abs(),
        })
        .await
        .map_err(ApiError::internal)??;
    json_list(&page)
}

/// The programme at a glance.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Summary)]
struct SummaryBody {
    users: i64,
    points_outstanding: Cents,
    points_accrued: Cents,
    points_withdrawn: Cents,
    points_redeemed: Cents,
    points_refunded: Cents,
    /// Orders per status.
    #[schema(value_type = BTreeMap<String, i64>)]
    orders: BTreeMap<&'static str, i64>,
    /// Redemptions per status.
    #[schema(value_type = BTreeMap<String, i64>)]
    redemptions: BTreeMap<&'static str, i64>,
    coupons: Coupons,
    accrual_backlog: i64,
    fulfilment_backlog: i64,
    events_unpublished: u64,
}

/// Coupons claimed and used.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CouponCounts)]
struct Coupons {
    issued: i64,
    redeemed: i64,
}

/// `GET /api/admin/stats/summary`.
#[utoipa::path(
    operation_id = "getSummary",
    tag = "operator",
    security(("operator" = [])),
    responses(
        (status = 200, description = "The programme's totals", body = SummaryBody),
        (status = 401, description = "No valid operator token", body = String, content_type = "text/plain"),
        (status = 403, description = "The operator API is disabled: ADMIN_TOKEN is not set", body = String, content_type = "text/plain"),
    )
)]
#[get("/stats/summary")]
pub async fn summary(
    figures: web::Data<Addr<Figures>>,
    relay: web::Data<Addr<EventRelay>>,
) -> Result<HttpResponse, ApiError> {
    let totals = figures
        .send(GetSummary)
        .await
        .map_err(ApiError::internal)??;
    let unpublished = relay
        .send(CountUnpublished)
        .await
        .map_err(ApiError::internal)??;
    json(&SummaryBody {
        users: totals.users,
        points_outstanding: totals.points_outstanding,
        points_accrued: totals.points_accrued,
        points_withdrawn: totals.points_withdrawn,
        points_redeemed: totals.points_redeemed,
        points_refunded: totals.points_refunded,
        orders: totals.orders,
        redemptions: totals.redemptions,
        coupons: Coupons {
            issued: totals.coupons_issued,
            redeemed: totals.coupons_redeemed,
        },
        accrual_backlog: totals.accrual_backlog,
        fulfilment_backlog: totals.fulfilment_backlog,
        events_unpublished: unpublished,
    })
}

/// One UTC day of the programme.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Day)]
struct DayBody {
    day: String,
    accrued: Cents,
    withdrawn: Cents,
    redeemed: Cents,
    refunded: Cents,
    new_users: i64,
    orders_uploaded: i64,
    orders_processed: i64,
}

/// `GET /api/admin/stats/daily?from=&to=`: every UTC day of the range, zeros included.
#[utoipa::path(
    operation_id = "getDailyFigures",
    tag = "operator",
    security(("operator" = [])),
    params(
        ("from" = String, Query, format = Date, description = "First UTC day, YYYY-MM-DD"),
        ("to" = String, Query, format = Date, description = "Last UTC day, included; at most 366 days after `from`"),
    ),
    responses(
        (status = 200, description = "One row per day, zeros included", body = Vec<DayBody>),
        (status = 400, description = "A missing or bad date, `to` before `from`, a range over 366 days", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid operator token", body = String, content_type = "text/plain"),
        (status = 403, description = "The operator API is disabled: ADMIN_TOKEN is not set", body = String, content_type = "text/plain"),
    )
)]
#[get("/stats/daily")]
pub async fn daily(
    req: HttpRequest,
    figures: web::Data<Addr<Figures>>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::read(&req, &["from", "to"])?;
    let (from, to) = day_range(&params)?;
    let days = figures
        .send(GetDaily { from, to })
        .await
        .map_err(ApiError::internal)??;
    let days: Vec<DayBody> = days
        .into_iter()
        .map(|day| DayBody {
            day: day.day.format("%Y-%m-%d").to_string(),
            accrued: day.accrued,
            withdrawn: day.withdrawn,
            redeemed: day.redeemed,
            refunded: day.refunded,
            new_users: day.new_users,
            orders_uploaded: day.orders_uploaded,
            orders_processed: day.orders_processed,
        })
        .collect();
    json(&days)
}

/// A shopper by points accrued.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TopShopper)]
struct TopBody {
    user: i64,
    login: String,
    accrued: Cents,
}

/// `GET /api/admin/stats/top?from=&to=&limit=`: shoppers by points accrued in the range.
#[utoipa::path(
    operation_id = "getTopShoppers",
    tag = "operator",
    security(("operator" = [])),
    params(
        ("from" = String, Query, format = Date, description = "First UTC day, YYYY-MM-DD"),
        ("to" = String, Query, format = Date, description = "Last UTC day, included; at most 366 days after `from`"),
        ("limit" = Option<i64>, Query, description = "1–100 (default 10)", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, description = "Shoppers by points accrued in the range", body = Vec<TopBody>),
        (status = 204, description = "Nobody accrued points in the range"),
        (status = 400, description = "A missing or bad parameter", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid operator token", body = String, content_type = "text/plain"),
        (status = 403, description = "The operator API is disabled: ADMIN_TOKEN is not set", body = String, content_type = "text/plain"),
    )
)]
#[get("/stats/top")]
pub async fn top(
    req: HttpRequest,
    figures: web::Data<Addr<Figures>>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::read(&req, &["from", "to", "limit"])?;
    let (from, to) = day_range(&params)?;
    let limit = params.integer("limit", 1..=100, Some(10))?.unwrap_or(10);
    let shoppers = figures
        .send(GetTop {
            from,
            to,
            limit: limit.unsigned_abs(),
        })
        .await
        .map_err(ApiError::internal)??;
    let shoppers: Vec<TopBody> = shoppers
        .into_iter()
        .map(|shopper| TopBody {
            user: shopper.user,
            login: shopper.login,
            accrued: shopper.accrued,
        })
        .collect();
    json_list(&shoppers)
}

/// Every balance recomputed from the ledger.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Audit)]
struct AuditBody {
    accounts: i64,
    mismatched: Vec<AuditEntry>,
    negative: Vec<AuditEntry>,
}

/// A balance that disagrees with its ledger, or is negative.
#[derive(Serialize, utoipa::ToSchema)]
struct AuditEntry {
    user: i64,
    current: Cents,
    ledger: Cents,
}

/// `GET /api/admin/audit`: every balance recomputed from the ledger.
#[utoipa::path(
    operation_id = "runAudit",
    tag = "operator",
    security(("operator" = [])),
    responses(
        (status = 200, description = "The audit: `mismatched` and `negative` are empty when every balance holds", body = AuditBody),
        (status = 401, description = "No valid operator token", body = String, content_type = "text/plain"),
        (status = 403, description = "The operator API is disabled: ADMIN_TOKEN is not set", body = String, content_type = "text/plain"),
    )
)]
#[get("/audit")]
pub async fn audit(figures: web::Data<Addr<Figures>>) -> Result<HttpResponse, ApiError> {
    let result = figures.send(RunAudit).await.map_err(ApiError::internal)??;
    let entries = |list: Vec<gophermart_actors::figures::Mismatch>| {
        list.into_iter()
            .map(|m| AuditEntry {
                user: m.user,
                current: m.current,
                ledger: m.ledger,
            })
            .collect()
    };
    json(&AuditBody {
        accounts: result.accounts,
        mismatched: entries(result.mismatched),
        negative: entries(result.negative),
    })
}
