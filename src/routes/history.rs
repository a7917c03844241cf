//! The statement of account.

use actix_web::{get, web};
use actix_web::{HttpRequest, HttpResponse};
use gophermart_actors::account::{Accounts, ListHistory};
use gophermart_actors::domain::Cents;
use serde::Serialize;
use tracing::instrument;

use super::query::Params;
use super::{json_list, rfc3339};
use crate::auth::AuthUser;
use crate::error::ApiError;

/// The most entries one page holds.
const MAX_LIMIT: i64 = 500;
/// Entries per page unless asked otherwise.
const DEFAULT_LIMIT: i64 = 100;

/// One balance change.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = StatementEntry)]
struct Entry {
    id: i64,
    /// RFC 3339.
    at: String,
    /// `accrual`, `withdrawal`, `redemption`, `refund` or `coupon`.
    kind: String,
    /// Signed: what the change did to the balance.
    amount: Cents,
    /// The balance right after this change.
    balance: Cents,
    /// The order number, redemption id or coupon code.
    reference: String,
}

/// `GET /api/user/history?limit=&before=`: every balance change, newest first.
#[utoipa::path(
    operation_id = "getStatement",
    tag = "account",
    security(("shopper" = []), ("shopper_cookie" = [])),
    params(
        ("limit" = Option<i64>, Query, description = "Entries per page, 1–500 (default 100)", minimum = 1, maximum = 500),
        ("before" = Option<i64>, Query, description = "Only entries older than this id", minimum = 1),
    ),
    responses(
        (status = 200, description = "The statement, newest first", body = Vec<Entry>),
        (status = 204, description = "No entries (on this page)"),
        (status = 400, description = "A bad, unknown or repeated parameter", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid token", body = String, content_type = "text/plain"),
    )
)]
#[get("/history")]
#[instrument(skip_all, fields(user = %user.0))]
pub async fn history(
    user: AuthUser,
    req: HttpRequest,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::read(&req, &["limit", "before"])?;
    let limit = params
        .integer("limit", 1..=MAX_LIMIT, Some(DEFAULT_LIMIT))?
        .unwrap_or(DEFAULT_LIMIT);
    let before = params.integer("before", 1..=i64::MAX, None)?;
    let entries = accounts
        .ask(
            user.0,
            ListHistory {
                before,
                limit: limit.unsigned_abs(),
            },
        )
        .await?;
    let items: Vec<Entry> = entries
        .into_iter()
        .map(|entry| Entry {
            id: entry.id,
            at: rfc3339(entry.at),
            kind: entry.kind,
            amount: entry.amount,
            balance: entry.balance,
            reference: entry.reference,
        })
        .collect();
    json_list(&items)
}
