//! The rewards catalogue: the operator creates and changes rewards, shoppers list the
//! active ones.

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewReward {
    sku: String,
    title: String,
    price: JsonDecimal,
    stock: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RewardChange {
    title: Option<String>,
    price: Option<JsonDecimal>,
    stock_delta: Option<i64>,
    active: Option<bool>,
}

/// A reward as shoppers see it.
#[derive(Serialize)]
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
pub async fn all(catalogue: web::Data<Addr<Catalogue>>) -> Result<HttpResponse, ApiError> {
    let rewards: Vec<Reward> = catalogue
        .send(ListRewards { active_only: false })
        .await
        .map_err(ApiError::internal)??;
    json_list(&rewards)
}

/// `GET /api/rewards`: what shoppers can redeem, by sku.
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
