//! Redemptions: points exchanged for a reward, shipped to the shopper's door.

use actix::Addr;
use actix_web::http::header::ContentType;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use gophermart_actors::account::{Accounts, GetRedemption, ListRedemptions, Redeem};
use gophermart_actors::domain::Points;
use gophermart_actors::fulfilment::store::{
    RedeemRequest, Redeemed, RedemptionStatus, RedemptionView, Shipment,
};
use gophermart_actors::fulfilment::{FulfilmentDispatcher, ShipmentRequested};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::instrument;

use super::{json, json_list, rfc3339};
use crate::auth::AuthUser;
use crate::body;
use crate::error::ApiError;

/// The most units one redemption takes.
const MAX_QUANTITY: u32 = 100;
/// The longest address, in characters.
const MAX_ADDRESS_CHARS: usize = 1000;
/// The longest idempotency key.
const MAX_KEY: usize = 128;

/// Points exchanged for a reward, shipped to an address.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RedemptionRequest, example = json!({"reward": "shampoo-500", "quantity": 1, "address": "1 Main St, Springfield"}))]
struct RedeemBody {
    /// The reward's sku.
    reward: String,
    /// 1–100.
    #[schema(minimum = 1, maximum = 100)]
    quantity: i64,
    /// 1–1000 characters.
    address: String,
}

/// A status the redemption reached, and when.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = RedemptionEvent)]
struct Event {
    #[schema(value_type = String)]
    status: &'static str,
    /// RFC 3339.
    at: String,
}

/// A redemption and its way to the door.
#[derive(Serialize, utoipa::ToSchema)]
struct Redemption {
    id: String,
    reward: String,
    quantity: u32,
    points: Points,
    /// `REQUESTED`, `ACCEPTED`, `SHIPPED`, `DELIVERED` or `CANCELLED`.
    #[schema(value_type = String, examples("REQUESTED"))]
    status: &'static str,
    address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracking: Option<String>,
    created_at: String,
    events: Vec<Event>,
}

impl From<RedemptionView> for Redemption {
    fn from(view: RedemptionView) -> Self {
        Self {
            id: view.id,
            reward: view.reward,
            quantity: view.quantity,
            points: view.points,
            status: view.status.as_str(),
            address: view.address,
            tracking: view.tracking,
            created_at: rfc3339(view.created_at),
            events: view
                .events
                .into_iter()
                .map(|(status, at)| Event {
                    status: status.as_str(),
                    at: rfc3339(at),
                })
                .collect(),
        }
    }
}

/// The `Idempotency-Key` header: absent, or 1–128 visible ASCII characters.
pub(super) fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|key| {
            (1..=MAX_KEY).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_owned()))
}

fn address(text: String) -> Result<String, ApiError> {
    let length = text.chars().count();
    if text.trim().is_empty() || length > MAX_ADDRESS_CHARS {
        return Err(ApiError::BadRequest(format!(
            "address must be 1 to {MAX_ADDRESS_CHARS} characters"
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::BadRequest(
            "address must not contain control characters".into(),
        ));
    }
    Ok(text)
}

/// `POST /api/user/redemptions`: `201` the redemption, charged once per idempotency key.
#[utoipa::path(
    operation_id = "redeemReward",
    tag = "rewards",
    security(("shopper" = []), ("shopper_cookie" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1–128 visible ASCII characters: the same key and body answer the first result again and charge nothing more")),
    request_body = RedeemBody,
    responses(
        (status = 201, description = "Charged; the shipment is requested", body = Redemption),
        (status = 400, description = "Malformed JSON, a quantity not 1–100, an empty or over-long address, a bad key", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid token", body = String, content_type = "text/plain"),
        (status = 402, description = "Not enough points", body = String, content_type = "text/plain"),
        (status = 404, description = "No such reward on offer", body = String, content_type = "text/plain"),
        (status = 409, description = "Not enough stock, or the same key is in flight", body = String, content_type = "text/plain"),
        (status = 422, description = "The key was used with another body", body = String, content_type = "text/plain"),
        (status = 503, description = "No fulfilment service is configured; nothing is charged", body = String, content_type = "text/plain"),
    )
)]
#[post("/redemptions")]
#[instrument(skip_all, fields(user = %user.0))]
pub async fn redeem(
    user: AuthUser,
    req: HttpRequest,
    payload: web::Payload,
    accounts: web::Data<Accounts>,
    dispatcher: web::Data<Option<Addr<FulfilmentDispatcher>>>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let request: RedeemBody = body::json_object(&body::read(&req, payload).await?)?;
    let quantity = u32::try_from(request.quantity)
        .ok()
        .filter(|quantity| (1..=MAX_QUANTITY).contains(quantity))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "quantity must be an integer from 1 to {MAX_QUANTITY}"
            ))
        })?;
    let address = address(request.address)?;
    let Some(dispatcher) = dispatcher.get_ref() else {
        return Err(ApiError::Unavailable("fulfilment not configured"));
    };
    // What makes two requests the same one: the reward, the quantity, the address.
    let fingerprint: String = Sha256::digest(
        serde_json::to_vec(&(&request.reward, quantity, &address)).map_err(ApiError::internal)?,
    )
    .iter()
    .map(|byte| format!("{byte:02x}"))
    .collect();
    let redeemed = accounts
        .ask(
            user.0,
            Redeem {
                request: RedeemRequest {
                    sku: request.reward,
                    quantity,
                    address,
                    key,
                    fingerprint,
                },
            },
        )
        .await?;
    let redemption = match redeemed {
        Redeemed::Created(view) => {
            dispatcher.do_send(ShipmentRequested {
                shipment: Shipment {
                    id: view.id.clone(),
                    user: user.0,
                    sku: view.reward.clone(),
                    quantity: view.quantity,
                    address: view.address.clone(),
                    status: RedemptionStatus::Requested,
                    tracking: None,
                    attempts: 0,
                    next_attempt_at: view.created_at,
                },
            });
            view
        }
        Redeemed::Replayed(view) => view,
    };
    let body = serde_json::to_string(&Redemption::from(redemption)).map_err(ApiError::internal)?;
    Ok(HttpResponse::Created()
        .content_type(ContentType::json())
        .body(body))
}

/// `GET /api/user/redemptions`: oldest first.
#[utoipa::path(
    operation_id = "listRedemptions",
    tag = "rewards",
    security(("shopper" = []), ("shopper_cookie" = [])),
    responses(
        (status = 200, description = "The shopper's redemptions, oldest first", body = Vec<Redemption>),
        (status = 204, description = "No redemptions yet"),
        (status = 401, description = "No valid token", body = String, content_type = "text/plain"),
    )
)]
#[get("/redemptions")]
#[instrument(skip_all, fields(user = %user.0))]
pub async fn list(user: AuthUser, accounts: web::Data<Accounts>) -> Result<HttpResponse, ApiError> {
    let views = accounts.ask(user.0, ListRedemptions).await?;
    let items: Vec<Redemption> = views.into_iter().map(Redemption::from).collect();
    json_list(&items)
}

/// `GET /api/user/redemptions/{id}`: one of the shopper's own.
#[utoipa::path(
    operation_id = "getRedemption",
    tag = "rewards",
    security(("shopper" = []), ("shopper_cookie" = [])),
    params(("id" = String, Path, description = "The redemption's id")),
    responses(
        (status = 200, description = "The redemption", body = Redemption),
        (status = 401, description = "No valid token", body = String, content_type = "text/plain"),
        (status = 404, description = "Unknown, or another shopper's", body = String, content_type = "text/plain"),
    )
)]
#[get("/redemptions/{id}")]
#[instrument(skip_all, fields(user = %user.0))]
pub async fn one(
    user: AuthUser,
    id: web::Path<String>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let view = accounts
        .ask(
            user.0,
            GetRedemption {
                id: id.into_inner(),
            },
        )
        .await?
        .ok_or(ApiError::NotFound("no such redemption"))?;
    json(&Redemption::from(view))
}
