//! The balance, withdrawals and their list.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use gophermart_actors::account::{Accounts, ListWithdrawals, Withdraw};
use gophermart_actors::domain::{JsonDecimal, OrderNumber, Points};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::{json, json_list, rfc3339};
use crate::auth::AuthUser;
use crate::body;
use crate::error::ApiError;

/// What a shopper has and has spent.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Balance)]
struct BalanceView {
    current: Points,
    withdrawn: Points,
}

/// `GET /api/user/balance`.
#[utoipa::path(
    operation_id = "getBalance",
    tag = "account",
    security(("shopper" = []), ("shopper_cookie" = [])),
    responses(
        (status = 200, description = "The balance", body = BalanceView),
        (status = 401, description = "No valid token", body = String, content_type = "text/plain"),
    )
)]
#[get("/balance")]
#[instrument(skip_all, fields(user = %user.0))]
pub async fn get(user: AuthUser, accounts: web::Data<Accounts>) -> Result<HttpResponse, ApiError> {
    let balance = accounts.balance(user.0).await?;
    json(&BalanceView {
        current: balance.current,
        withdrawn: balance.withdrawn,
    })
}

/// Points spent on an order.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = Withdrawal, example = json!({"order": "2377225624", "sum": 751}))]
struct WithdrawRequest {
    /// The order number the points pay for (Luhn-valid digits).
    order: String,
    /// Above 0, at most 2 decimals, a JSON number.
    #[schema(value_type = Points)]
    sum: JsonDecimal,
}

/// `POST /api/user/balance/withdraw`.
#[utoipa::path(
    operation_id = "withdraw",
    tag = "account",
    security(("shopper" = []), ("shopper_cookie" = [])),
    request_body = WithdrawRequest,
    responses(
        (status = 200, description = "Withdrawn", body = String, content_type = "text/plain"),
        (status = 400, description = "Malformed JSON; a sum ≤ 0, with more than 2 decimals, or not a number", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid token", body = String, content_type = "text/plain"),
        (status = 402, description = "Not enough points", body = String, content_type = "text/plain"),
        (status = 409, description = "The order number was used for another withdrawal", body = String, content_type = "text/plain"),
        (status = 422, description = "The order number is not digits or fails the Luhn check", body = String, content_type = "text/plain"),
    )
)]
#[post("/balance/withdraw")]
#[instrument(skip_all, fields(user = %user.0))]
pub async fn withdraw(
    user: AuthUser,
    req: HttpRequest,
    payload: web::Payload,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let request: WithdrawRequest = body::json_object(&body::read(&req, payload).await?)?;
    let sum = Points::parse_sum(request.sum.0).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let order =
        OrderNumber::parse(&request.order).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    accounts.ask(user.0, Withdraw { order, sum }).await?;
    Ok(HttpResponse::Ok().content_type("text/plain").body("done"))
}

/// A withdrawal made.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = WithdrawalMade)]
struct WithdrawalItem {
    order: String,
    sum: Points,
    /// RFC 3339.
    processed_at: String,
}

/// `GET /api/user/withdrawals`: oldest first.
#[utoipa::path(
    operation_id = "listWithdrawals",
    tag = "account",
    security(("shopper" = []), ("shopper_cookie" = [])),
    responses(
        (status = 200, description = "The shopper's withdrawals, oldest first", body = Vec<WithdrawalItem>),
        (status = 204, description = "No withdrawals yet"),
        (status = 401, description = "No valid token", body = String, content_type = "text/plain"),
    )
)]
#[get("/withdrawals")]
#[instrument(skip_all, fields(user = %user.0))]
pub async fn withdrawals(
    user: AuthUser,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    list_withdrawals(user, &accounts).await
}

/// `GET /api/user/balance/withdrawals`: the same list under the balance.
#[utoipa::path(
    operation_id = "listBalanceWithdrawals",
    tag = "account",
    security(("shopper" = []), ("shopper_cookie" = [])),
    responses(
        (status = 200, description = "The shopper's withdrawals, oldest first", body = Vec<WithdrawalItem>),
        (status = 204, description = "No withdrawals yet"),
        (status = 401, description = "No valid token", body = String, content_type = "text/plain"),
    )
)]
#[get("/balance/withdrawals")]
#[instrument(skip_all, fields(user = %user.0))]
pub async fn balance_withdrawals(
    user: AuthUser,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    list_withdrawals(user, &accounts).await
}

async fn list_withdrawals(user: AuthUser, accounts: &Accounts) -> Result<HttpResponse, ApiError> {
    let list = accounts.ask(user.0, ListWithdrawals).await?;
    let items: Vec<WithdrawalItem> = list
        .into_iter()
        .map(|w| WithdrawalItem {
            order: w.order.to_string(),
            sum: w.sum,
            processed_at: rfc3339(w.processed_at),
        })
        .collect();
    json_list(&items)
}
