//! Coupons: shoppers claim codes of a campaign and list theirs; the shop's checkout
//! previews and uses them.

use actix::Addr;
use actix_web::http::header::ContentType;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use gophermart_actors::coupons::{
    CampaignKind, CampaignRegistry, Checkout, Claim, Claimed, CouponError, CouponView, ListCoupons,
    UseCoupon,
};
use gophermart_actors::domain::{JsonDecimal, OrderNumber, Points};
use gophermart_actors::error::AccountError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::instrument;

use super::query::Params;
use super::{json, json_list, rfc3339};
use crate::auth::AuthUser;
use crate::body;
use crate::error::ApiError;

/// The longest code accepted in a path.
const MAX_CODE: usize = 40;

/// The campaign a code is claimed from.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CouponClaim, example = json!({"campaign": "spring-27"}))]
struct ClaimBody {
    campaign: String,
}

/// An order paid with a coupon at the shop's checkout.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CouponUse, example = json!({"order": "2377225624", "amount": 1500}))]
struct RedeemBody {
    /// Luhn-valid digits.
    order: String,
    /// The order's amount: above 0, at most 2 decimals.
    #[schema(value_type = Points)]
    amount: JsonDecimal,
}

/// A code a shopper holds.
#[derive(Serialize, utoipa::ToSchema)]
struct Coupon {
    code: String,
    campaign: String,
    kind: CampaignKind,
    value: Points,
    min_order: Points,
    /// RFC 3339; absent or null: never.
    ends_at: Option<String>,
    /// `ISSUED`, `REDEEMED` or `EXPIRED`.
    #[schema(value_type = String, examples("ISSUED"))]
    status: &'static str,
    /// RFC 3339.
    issued_at: String,
}

impl From<CouponView> for Coupon {
    fn from(view: CouponView) -> Self {
        let status = view.status(chrono::Utc::now().fixed_offset());
        Self {
            status,
            code: view.code,
            campaign: view.campaign.id,
            kind: view.campaign.kind,
            value: view.campaign.value,
            min_order: view.campaign.min_order,
            ends_at: view.campaign.ends_at.map(rfc3339),
            issued_at: rfc3339(view.issued_at),
        }
    }
}

/// The status of a claim's refusal.
fn claim_error(error: CouponError) -> ApiError {
    match error {
        CouponError::NotFound => ApiError::NotFound("no such campaign"),
        CouponError::NotStarted => ApiError::Gone("the campaign has not started"),
        CouponError::Ended => ApiError::Gone("the campaign has ended"),
        CouponError::SoldOut => ApiError::Gone("no code left"),
        CouponError::LimitReached => {
            ApiError::Conflict("you hold as many codes of this campaign as allowed")
        }
        CouponError::KeyReused => {
            ApiError::Unprocessable("this Idempotency-Key was used with another request".into())
        }
        CouponError::InsufficientFunds => ApiError::PaymentRequired,
        CouponError::Account(AccountError::KeyRace) => {
            ApiError::Conflict("the same Idempotency-Key is in use; try again")
        }
        CouponError::Account(AccountError::Contended) => {
            ApiError::Busy("the campaign is busy, try again")
        }
        other => ApiError::internal(other),
    }
}

/// The status of a checkout's refusal.
fn checkout_error(error: CouponError) -> ApiError {
    match error {
        CouponError::NotFound => ApiError::NotFound("no such coupon"),
        CouponError::NotStarted => ApiError::Unprocessable("the campaign has not started".into()),
        CouponError::Ended => ApiError::Unprocessable("the campaign has ended".into()),
        CouponError::BelowMinimum => {
            ApiError::Unprocessable("the order is below the campaign's minimum".into())
        }
        CouponError::Invalid(reason) => ApiError::Unprocessable(reason),
        CouponError::AlreadyUsed => ApiError::Conflict("the code was used for another order"),
        other => ApiError::internal(other),
    }
}

/// `POST /api/user/coupons` `{"campaign"}`, optional `Idempotency-Key`.
#[utoipa::path(
    operation_id = "claimCoupon",
    tag = "coupons",
    security(("shopper" = []), ("shopper_cookie" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1–128 visible ASCII characters: the same key and body answer the first result again and charge nothing more")),
    request_body = ClaimBody,
    responses(
        (status = 201, description = "A code of the campaign, now the shopper's", body = Coupon),
        (status = 400, description = "Malformed JSON or a bad key", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid token", body = String, content_type = "text/plain"),
        (status = 402, description = "The campaign's price is above the balance", body = String, content_type = "text/plain"),
        (status = 404, description = "No such campaign", body = String, content_type = "text/plain"),
        (status = 409, description = "The shopper holds `per_user` codes of it already, or the same key is in flight", body = String, content_type = "text/plain"),
        (status = 410, description = "Not started, ended, or no code left", body = String, content_type = "text/plain"),
        (status = 422, description = "The key was used with another body", body = String, content_type = "text/plain"),
    )
)]
#[post("/coupons")]
#[instrument(skip_all, fields(user = %user.0))]
pub async fn claim(
    user: AuthUser,
    req: HttpRequest,
    payload: web::Payload,
    registry: web::Data<Addr<CampaignRegistry>>,
) -> Result<HttpResponse, ApiError> {
    let key = super::redemptions::idempotency_key(&req)?;
    let body: ClaimBody = body::json_object(&body::read(&req, payload).await?)?;
    let fingerprint: String = Sha256::digest(format!("coupon:{}", body.campaign).as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let claimed = registry
        .send(Claim {
            campaign: body.campaign,
            user: user.0,
            key: key.map(|key| (key, fingerprint)),
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(claim_error)?;
    let view = match claimed {
        Claimed::Created(view) | Claimed::Replayed(view) => view,
    };
    let body = serde_json::to_string(&Coupon::from(view)).map_err(ApiError::internal)?;
    Ok(HttpResponse::Created()
        .content_type(ContentType::json())
        .body(body))
}

/// `GET /api/user/coupons`: oldest claim first.
#[utoipa::path(
    operation_id = "listCoupons",
    tag = "coupons",
    security(("shopper" = []), ("shopper_cookie" = [])),
    responses(
        (status = 200, description = "The shopper's codes, oldest claim first", body = Vec<Coupon>),
        (status = 204, description = "No codes yet"),
        (status = 401, description = "No valid token", body = String, content_type = "text/plain"),
    )
)]
#[get("/coupons")]
#[instrument(skip_all, fields(user = %user.0))]
pub async fn list(
    user: AuthUser,
    registry: web::Data<Addr<CampaignRegistry>>,
) -> Result<HttpResponse, ApiError> {
    let coupons = registry
        .send(ListCoupons { user: user.0 })
        .await
        .map_err(ApiError::internal)?
        .map_err(claim_error)?;
    let coupons: Vec<Coupon> = coupons.into_iter().map(Coupon::from).collect();
    json_list(&coupons)
}

/// A code from the path, upper case; anything that cannot be a code is unknown.
fn code(path: &str) -> Result<String, ApiError> {
    let code = path.to_ascii_uppercase();
    if (1..=MAX_CODE).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
    {
        Ok(code)
    } else {
        Err(ApiError::NotFound("no such coupon"))
    }
}

/// An amount at checkout: above zero, exact to 2 decimals.
fn amount(value: JsonDecimal) -> Result<Points, String> {
    Points::parse_sum(value.0).map_err(|e| format!("amount: {e}"))
}

/// What a code would take off.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CouponPreview)]
struct Preview {
    code: String,
    discount: Points,
    valid: bool,
}

/// `GET /api/shop/coupons/{code}?amount=`: what the code takes off, or the error its use
/// would give.
#[utoipa::path(
    operation_id = "previewCoupon",
    tag = "shop",
    security(("shop" = [])),
    params(
        ("code" = String, Path, description = "The code, any case"),
        ("amount" = f64, Query, description = "The order's amount: above 0, at most 2 decimals"),
    ),
    responses(
        (status = 200, description = "What the code takes off the amount", body = Preview),
        (status = 400, description = "`amount` missing, or a bad or unknown parameter", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid shop token", body = String, content_type = "text/plain"),
        (status = 403, description = "The shop API is disabled: SHOP_TOKEN is not set", body = String, content_type = "text/plain"),
        (status = 404, description = "Unknown or never issued", body = String, content_type = "text/plain"),
        (status = 409, description = "Used for another order already", body = String, content_type = "text/plain"),
        (status = 422, description = "A bad amount, below the campaign's minimum, not started or ended", body = String, content_type = "text/plain"),
    )
)]
#[get("/coupons/{code}")]
pub async fn preview(
    req: HttpRequest,
    path: web::Path<String>,
    registry: web::Data<Addr<CampaignRegistry>>,
) -> Result<HttpResponse, ApiError> {
    let code = code(&path)?;
    let params = Params::read(&req, &["amount"])?;
    let text = params
        .text("amount")
        .ok_or_else(|| ApiError::BadRequest("amount is required".into()))?;
    let (amount, invalid) = match JsonDecimal::parse(text)
        .ok_or("amount must be a number".to_owned())
        .and_then(amount)
    {
        Ok(amount) => (amount, None),
        Err(reason) => (Points::ZERO, Some(reason)),
    };
    let checkout = use_coupon(&registry, code, None, amount, invalid).await?;
    json(&Preview {
        code: checkout.code,
        discount: checkout.discount,
        valid: true,
    })
}

/// A code used on an order.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CouponUsed)]
struct Used {
    code: String,
    order: String,
    amount: Points,
    discount: Points,
    /// RFC 3339.
    redeemed_at: String,
}

/// `POST /api/shop/coupons/{code}/redeem` `{"order", "amount"}`: the same order and
/// amount again answer the same.
#[utoipa::path(
    operation_id = "useCoupon",
    tag = "shop",
    security(("shop" = [])),
    params(("code" = String, Path, description = "The code, any case")),
    request_body = RedeemBody,
    responses(
        (status = 200, description = "Used; the same order and amount again answer the same", body = Used),
        (status = 400, description = "Malformed JSON", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid shop token", body = String, content_type = "text/plain"),
        (status = 403, description = "The shop API is disabled: SHOP_TOKEN is not set", body = String, content_type = "text/plain"),
        (status = 404, description = "Unknown or never issued", body = String, content_type = "text/plain"),
        (status = 409, description = "Used for another order or amount", body = String, content_type = "text/plain"),
        (status = 422, description = "A bad order number or amount, below the campaign's minimum, not started or ended", body = String, content_type = "text/plain"),
    )
)]
#[post("/coupons/{code}/redeem")]
#[instrument(skip_all)]
pub async fn redeem(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    registry: web::Data<Addr<CampaignRegistry>>,
) -> Result<HttpResponse, ApiError> {
    let code = code(&path)?;
    let body: RedeemBody = body::json_object(&body::read(&req, payload).await?)?;
    let order = OrderNumber::parse(&body.order).map_err(|e| e.to_string());
    let amount = amount(body.amount);
    let (order, amount, invalid) = match (order, amount) {
        (Ok(order), Ok(amount)) => (order.to_string(), amount, None),
        (Err(reason), _) | (_, Err(reason)) => (String::new(), Points::ZERO, Some(reason)),
    };
    let checkout = use_coupon(&registry, code, Some(order), amount, invalid).await?;
    let used = checkout
        .redemption
        .ok_or_else(|| ApiError::internal("a used coupon without its use"))?;
    json(&Used {
        code: used.code,
        order: used.order,
        amount: used.amount,
        discount: used.discount,
        redeemed_at: rfc3339(used.redeemed_at),
    })
}

async fn use_coupon(
    registry: &Addr<CampaignRegistry>,
    code: String,
    order: Option<String>,
    amount: Points,
    invalid: Option<String>,
) -> Result<Checkout, ApiError> {
    registry
        .send(UseCoupon {
            code,
            order,
            amount,
            invalid,
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(checkout_error)
}
