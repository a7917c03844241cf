//! The operator's endpoints: the event feed and the figures. The whole scope is guarded
//! by the operator's token (`roles::admin_only`).

use std::collections::BTreeMap;

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use gophermart_actors::domain::Cents;
use gophermart_actors::events::{CountUnpublished, EventRelay, ListEvents};
use gophermart_actors::figures::{Figures, GetDaily, GetSummary, GetTop, RunAudit};
use serde::Serialize;

use super::query::{day_range, Params};
use super::{json, json_list};
use crate::error::ApiError;

/// `GET /api/admin/events?after=&limit=`: numbered events, ascending `seq`.
pub async fn events(
    req: HttpRequest,
    relay: web::Data<Addr<EventRelay>>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::read(&req, &["after", "limit"])?;
    let after = params.integer("after", 0..=i64::MAX, Some(0))?.unwrap_or(0);
    let limit = params.integer("limit", 1..=1000, Some(100))?.unwrap_or(100);
    let events = relay
        .send(ListEvents {
            after,
            limit: limit.unsigned_abs(),
        })
        .await
        .map_err(ApiError::internal)??;
    json_list(&events)
}

#[derive(Serialize)]
struct SummaryBody {
    users: i64,
    points_outstanding: Cents,
    points_accrued: Cents,
    points_withdrawn: Cents,
    points_redeemed: Cents,
    points_refunded: Cents,
    orders: BTreeMap<&'static str, i64>,
    redemptions: BTreeMap<&'static str, i64>,
    coupons: Coupons,
    accrual_backlog: i64,
    fulfilment_backlog: i64,
    events_unpublished: u64,
}

#[derive(Serialize)]
struct Coupons {
    issued: i64,
    redeemed: i64,
}

/// `GET /api/admin/stats/summary`.
pub async fn summary(
    figures: web::Data<Addr<Figures>>,
    relay: web::Data<Addr<EventRelay>>,
) -> Result<HttpResponse, ApiError> {
    let summary = figures
        .send(GetSummary)
        .await
        .map_err(ApiError::internal)??;
    let unpublished = relay
        .send(CountUnpublished)
        .await
        .map_err(ApiError::internal)??;
    json(&SummaryBody {
        users: summary.users,
        points_outstanding: summary.points_outstanding,
        points_accrued: summary.points_accrued,
        points_withdrawn: summary.points_withdrawn,
        points_redeemed: summary.points_redeemed,
        points_refunded: summary.points_refunded,
        orders: summary.orders,
        redemptions: summary.redemptions,
        coupons: Coupons {
            issued: summary.coupons_issued,
            redeemed: summary.coupons_redeemed,
        },
        accrual_backlog: summary.accrual_backlog,
        fulfilment_backlog: summary.fulfilment_backlog,
        events_unpublished: unpublished,
    })
}

#[derive(Serialize)]
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

#[derive(Serialize)]
struct TopBody {
    user: i64,
    login: String,
    accrued: Cents,
}

/// `GET /api/admin/stats/top?from=&to=&limit=`: shoppers by points accrued in the range.
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

#[derive(Serialize)]
struct AuditBody {
    accounts: i64,
    mismatched: Vec<AuditEntry>,
    negative: Vec<AuditEntry>,
}

#[derive(Serialize)]
struct AuditEntry {
    user: i64,
    current: Cents,
    ledger: Cents,
}

/// `GET /api/admin/audit`: every balance recomputed from the ledger.
pub async fn audit(figures: web::Data<Addr<Figures>>) -> Result<HttpResponse, ApiError> {
    let audit = figures.send(RunAudit).await.map_err(ApiError::internal)??;
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
        accounts: audit.accounts,
        mismatched: entries(audit.mismatched),
        negative: entries(audit.negative),
    })
}
