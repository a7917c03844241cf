//! The balance, withdrawals and their list.

use actix_web::{web, HttpRequest, HttpResponse};
use gophermart_actors::account::{Accounts, GetBalance, ListWithdrawals, Withdraw};
use gophermart_actors::domain::{JsonDecimal, OrderNumber, Points};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::{json, json_list, rfc3339};
use crate::auth::AuthUser;
use crate::body;
use crate::error::ApiError;

#[derive(Serialize)]
struct BalanceView {
    current: Points,
    withdrawn: Points,
}

/// `GET /api/user/balance`.
#[instrument(skip_all, fields(user = %user.0))]
pub async fn get(user: AuthUser, accounts: web::Data<Accounts>) -> Result<HttpResponse, ApiError> {
    let balance = accounts.ask(user.0, GetBalance).await?;
    json(&BalanceView {
        current: balance.current,
        withdrawn: balance.withdrawn,
    })
}

#[derive(Deserialize)]
struct WithdrawRequest {
    order: String,
    sum: JsonDecimal,
}

/// `POST /api/user/balance/withdraw`.
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

#[derive(Serialize)]
struct WithdrawalItem {
    order: String,
    sum: Points,
    processed_at: String,
}

/// `GET /api/user/withdrawals` and `GET /api/user/balance/withdrawals`: oldest first.
#[instrument(skip_all, fields(user = %user.0))]
pub async fn withdrawals(
    user: AuthUser,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
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
