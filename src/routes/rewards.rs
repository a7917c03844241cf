//! The rewards catalogue: the operator creates and changes rewards, shoppers list the
//! active ones.

use actix::Addr;
use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use gophermart_actors::domain::{JsonDecimal, Points};
use gophermart_actors::rewards::{
    Catalogue, ChangeReward, CreateReward, ListRewards, Reward, MAX_STOCK,
};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::{json, json_list};
use crate::auth::AuthUser;
use crate::body;
use crate::error::ApiError;

/// The longest title, in characters.
const MAX_TITLE_CHARS: usize = 200;

/// A reward to offer.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sku": "shampoo-500", "title": "Shampoo, 500 ml", "price": 2000, "stock": 100}))]
struct NewReward {
    /// 1–64 of `[A-Za-z0-9._-]`.
    sku: String,
    /// 1–200 characters.
    title: String,
    /// Points per unit: above 0, at most 2 decimals.
    #[schema(value_type = Points)]
    price: JsonDecimal,
    /// Units, 0 or more.
    #[schema(minimum = 0)]
    stock: i64,
}

/// What to change of a reward; at least one field.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"stock_delta": 50}))]
struct RewardChange {
    title: Option<String>,
    #[schema(value_type = Option<Points>)]
    price: Option<JsonDecimal>,
    /// Added to the stock (negative takes away; never below 0).
    stock_delta: Option<i64>,
    active: Option<bool>,
}

/// A reward as shoppers see it.
#[derive(Serialize, utoipa::ToSchema)]
struct OnOffer {
    sku: String,
    title: String,
    price: Points,
    stock: i64,
}

/// Whether `sku` is 1–64 of `[A-Za-z0-9._-]`.
pub(super) fn valid_sku(sku: &str) -> bool {
    (1..=64).contains(&sku.len())
        && sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub(super) fn title(text: String) -> Result<String, ApiError> {
    let length = text.chars().count();
    if !(1..=MAX_TITLE_CHARS).contains(&length) {
        return Err(ApiError::BadRequest(format!(
            "title must be 1 to {MAX_TITLE_CHARS} characters"
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::BadRequest(
            "title must not contain control characters".into(),
        ));
    }
    Ok(text)
}

fn price(value: JsonDecimal) -> Result<Points, ApiError> {
    Points::parse_sum(value.0).map_err(|e| ApiError::BadRequest(format!("price: {e}")))
}

/// `POST /api/admin/rewards`: `201` with the reward.
#[utoipa::path(
    operation_id = "createReward",
    tag = "operator",
    security(("operator" = [])),
    request_body = NewReward,
    responses(
        (status = 201, description = "Created", body = Reward),
        (status = 400, description = "A bad sku, title, price or stock", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid operator token", body = String, content_type = "text/plain"),
        (status = 403, description = "The operator API is disabled: ADMIN_TOKEN is not set", body = String, content_type = "text/plain"),
        (status = 409, description = "The sku exists", body = String, content_type = "text/plain"),
    )
)]
#[post("/rewards")]
#[instrument(skip_all)]
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    catalogue: web::Data<Addr<Catalogue>>,
) -> Result<HttpResponse, ApiError> {
    let new: NewReward = body::json_object(&body::read(&req, payload).await?)?;
    if !valid_sku(&new.sku) {
        return Err(ApiError::BadRequest(
            "sku must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'".into(),
        ));
    }
    let title = title(new.title)?;
    let price = price(new.price)?;
    if !(0..=MAX_STOCK).contains(&new.stock) {
        return Err(ApiError::BadRequest(format!(
            "stock must be an integer from 0 to {MAX_STOCK}"
        )));
    }
    let reward = catalogue
        .send(CreateReward {
            sku: new.sku,
            title,
            price,
            stock: new.stock,
        })
        .await
        .map_err(ApiError::internal)??;
    let body = serde_json::to_string(&reward).map_err(ApiError::internal)?;
    Ok(HttpResponse::Created()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body))
}

/// `PATCH /api/admin/rewards/{sku}`: `200` with the reward as changed.
#[utoipa::path(
    operation_id = "changeReward",
    tag = "operator",
    security(("operator" = [])),
    params(("sku" = String, Path, description = "The reward's sku")),
    request_body = RewardChange,
    responses(
        (status = 200, description = "The reward as changed", body = Reward),
        (status = 400, description = "Nothing to change, or a bad title, price or delta", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid operator token", body = String, content_type = "text/plain"),
        (status = 403, description = "The operator API is disabled: ADMIN_TOKEN is not set", body = String, content_type = "text/plain"),
        (status = 404, description = "No such reward", body = String, content_type = "text/plain"),
        (status = 409, description = "The delta would make the stock negative", body = String, content_type = "text/plain"),
    )
)]
#[patch("/rewards/{sku}")]
#[instrument(skip_all)]
pub async fn change(
    req: HttpRequest,
    sku: web::Path<String>,
    payload: web::Payload,
    catalogue: web::Data<Addr<Catalogue>>,
) -> Result<HttpResponse, ApiError> {
    let change: RewardChange = body::json_object(&body::read(&req, payload).await?)?;
    if change.title.is_none()
        && change.price.is_none()
        && change.stock_delta.is_none()
        && change.active.is_none()
    {
        return Err(ApiError::BadRequest(
            "nothing to change: give title, price, stock_delta or active".into(),
        ));
    }
    let title = change.title.map(title).transpose()?;
    let price = change.price.map(price).transpose()?;
    if change
        .stock_delta
        .is_some_and(|delta| !(-MAX_STOCK..=MAX_STOCK).contains(&delta))
    {
        return Err(ApiError::BadRequest(format!(
            "stock_delta must be an integer from -{MAX_STOCK} to {MAX_STOCK}"
        )));
    }
    let sku = sku.into_inner();
    if !valid_sku(&sku) {
        return Err(ApiError::NotFound("no such reward"));
    }
    let reward = catalogue
        .send(ChangeReward {
            sku,
            title,
            price,
            stock_delta: change.stock_delta,
            active: change.active,
        })
        .await
        .map_err(ApiError::internal)??;
    json(&reward)
}

/// `GET /api/admin/rewards`: every reward, inactive ones included, by sku.
#[utoipa::path(
    operation_id = "listAllRewards",
    tag = "operator",
    security(("operator" = [])),
    responses(
        (status = 200, description = "Every reward, by sku", body = Vec<Reward>),
        (status = 204, description = "No rewards"),
        (status = 401, description = "No valid operator token", body = String, content_type = "text/plain"),
        (status = 403, description = "The operator API is disabled: ADMIN_TOKEN is not set", body = String, content_type = "text/plain"),
    )
)]
#[get("/rewards")]
pub async fn all(catalogue: web::Data<Addr<Catalogue>>) -> Result<HttpResponse, ApiError> {
    let rewards: Vec<Reward> = catalogue
        .send(ListRewards { active_only: false })
        .await
        .map_err(ApiError::internal)??;
    json_list(&rewards)
}

/// `GET /api/rewards`: what shoppers can redeem, by sku.
#[utoipa::path(
    operation_id = "listRewardsOnOffer",
    tag = "rewards",
    security(("shopper" = []), ("shopper_cookie" = [])),
    responses(
        (status = 200, description = "Active rewards, by sku", body = Vec<OnOffer>),
        (status = 204, description = "None on offer"),
        (status = 401, description = "No valid token", body = String, content_type = "text/plain"),
    )
)]
#[get("/api/rewards")]
#[instrument(skip_all, fields(user = %user.0))]
pub async fn on_offer(
    user: AuthUser,
    catalogue: web::Data<Addr<Catalogue>>,
) -> Result<HttpResponse, ApiError> {
    let rewards = catalogue
        .send(ListRewards { active_only: true })
        .await
        .map_err(ApiError::internal)??;
    let rewards: Vec<OnOffer> = rewards
        .into_iter()
        .map(|reward| OnOffer {
            sku: reward.sku,
            title: reward.title,
            price: reward.price,
            stock: reward.stock,
        })
        .collect();
    json_list(&rewards)
}
