//! Coupon campaigns: the operator creates them with their pool of codes; shoppers see
//! the open ones.

use actix::Addr;
use actix_web::http::header::ContentType;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, FixedOffset};
use gophermart_actors::coupons::{
    Campaign, CampaignKind, CampaignRegistry, CreateCampaign, GetCampaign, ListOpenCampaigns,
    NewCampaign,
};
use gophermart_actors::domain::{JsonDecimal, Points};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::rewards::{title, valid_sku};
use super::{json, json_list, rfc3339};
use crate::auth::AuthUser;
use crate::body;
use crate::error::ApiError;

/// The most codes one campaign may have.
const MAX_QUANTITY: i64 = 1_000_000;

/// A campaign to create, with its pool of codes.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CampaignRequest, example = json!({"id": "spring-27", "title": "Spring", "kind": "fixed", "value": 300, "quantity": 10000, "per_user": 1, "price": 0, "min_order": 0, "prefix": "SPRING"}))]
struct CampaignBody {
    /// 1–64 of `[A-Za-z0-9._-]`.
    id: String,
    /// 1–200 characters.
    title: String,
    /// `fixed` (points off) or `percent` (of the order's amount, at most 100).
    #[schema(examples("fixed", "percent"))]
    kind: String,
    #[schema(value_type = Points)]
    value: JsonDecimal,
    /// Codes in the pool, 1–1 000 000.
    #[schema(minimum = 1, maximum = 1000000)]
    quantity: i64,
    /// Codes one shopper may hold (default 1).
    #[serde(default = "one")]
    #[schema(minimum = 1)]
    per_user: i64,
    /// Points a claim costs (default 0).
    #[schema(value_type = Option<Points>)]
    price: Option<JsonDecimal>,
    /// The smallest order amount a code applies to (default 0).
    #[schema(value_type = Option<Points>)]
    min_order: Option<JsonDecimal>,
    /// RFC 3339; absent: at once.
    #[schema(format = DateTime)]
    starts_at: Option<String>,
    /// RFC 3339, after `starts_at`; absent: never.
    #[schema(format = DateTime)]
    ends_at: Option<String>,
    /// 1–16 of `[A-Z0-9]`, the codes' prefix.
    prefix: String,
}

fn one() -> i64 {
    1
}

/// A campaign as the operator sees it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Campaign)]
struct CampaignView {
    #[serde(flatten)]
    campaign: NewCampaign,
    /// RFC 3339.
    created_at: String,
    issued: i64,
    redeemed: i64,
    remaining: i64,
}

impl From<Campaign> for CampaignView {
    fn from(campaign: Campaign) -> Self {
        Self {
            remaining: campaign.remaining(),
            created_at: rfc3339(campaign.created_at),
            issued: campaign.issued,
            redeemed: campaign.redeemed,
            campaign: campaign.campaign,
        }
    }
}

/// A campaign as shoppers see it.
#[derive(Serialize, utoipa::ToSchema)]
struct OpenCampaign {
    id: String,
    title: String,
    kind: CampaignKind,
    value: Points,
    price: Points,
    min_order: Points,
    starts_at: Option<String>,
    ends_at: Option<String>,
    remaining: i64,
}

/// Points from 0 up, exact to 2 decimals.
fn amount(name: &str, value: Option<JsonDecimal>) -> Result<Points, ApiError> {
    match value {
        None => Ok(Points::ZERO),
        Some(value) if value.0.is_zero() => Ok(Points::ZERO),
        Some(value) => Points::parse_sum(value.0).map_err(|e| {
            ApiError::BadRequest(format!("{name} must be 0 or more, to 2 decimals: {e}"))
        }),
    }
}

fn time(name: &str, text: Option<String>) -> Result<Option<DateTime<FixedOffset>>, ApiError> {
    text.map(|text| {
        DateTime::parse_from_rfc3339(&text)
            .map(|time| time.to_utc().fixed_offset())
            .map_err(|_| ApiError::BadRequest(format!("{name} must be an RFC 3339 time")))
    })
    .transpose()
}

fn validate(body: CampaignBody) -> Result<NewCampaign, ApiError> {
    if !valid_sku(&body.id) {
        return Err(ApiError::BadRequest(
            "id must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'".into(),
        ));
    }
    let title = title(body.title)?;
    let kind = CampaignKind::parse(&body.kind)
        .ok_or_else(|| ApiError::BadRequest("kind must be fixed or percent".into()))?;
    let value = Points::parse_sum(body.value.0)
        .map_err(|e| ApiError::BadRequest(format!("value must be above 0, to 2 decimals: {e}")))?;
    if kind == CampaignKind::Percent && value > Points::from_cents(10_000).unwrap_or(value) {
        return Err(ApiError::BadRequest(
            "a percent value is at most 100".into(),
        ));
    }
    if !(1..=MAX_QUANTITY).contains(&body.quantity) {
        return Err(ApiError::BadRequest(format!(
            "quantity must be an integer from 1 to {MAX_QUANTITY}"
        )));
    }
    if !(1..=MAX_QUANTITY).contains(&body.per_user) {
        return Err(ApiError::BadRequest(
            "per_user must be an integer of at least 1".into(),
        ));
    }
    let prefix = body.prefix;
    if !(1..=16).contains(&prefix.len())
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(ApiError::BadRequest(
            "prefix must be 1 to 16 of A-Z, 0-9".into(),
        ));
    }
    let starts_at = time("starts_at", body.starts_at)?;
    let ends_at = time("ends_at", body.ends_at)?;
    if let (Some(starts_at), Some(ends_at)) = (starts_at, ends_at) {
        if ends_at <= starts_at {
            return Err(ApiError::BadRequest(
                "ends_at must be after starts_at".into(),
            ));
        }
    }
    Ok(NewCampaign {
        id: body.id,
        title,
        kind,
        value,
        quantity: u32::try_from(body.quantity).unwrap_or(0),
        per_user: u32::try_from(body.per_user).unwrap_or(u32::MAX),
        price: amount("price", body.price)?,
        min_order: amount("min_order", body.min_order)?,
        starts_at,
        ends_at,
        prefix,
    })
}

/// `POST /api/admin/campaigns`: `201` once every code is stored.
#[utoipa::path(
    operation_id = "createCampaign",
    tag = "operator",
    security(("operator" = [])),
    request_body = CampaignBody,
    responses(
        (status = 201, description = "Created, every code stored", body = CampaignView),
        (status = 400, description = "A bad field", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid operator token", body = String, content_type = "text/plain"),
        (status = 403, description = "The operator API is disabled: ADMIN_TOKEN is not set", body = String, content_type = "text/plain"),
        (status = 409, description = "The id exists", body = String, content_type = "text/plain"),
    )
)]
#[post("/campaigns")]
#[instrument(skip_all)]
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    registry: web::Data<Addr<CampaignRegistry>>,
) -> Result<HttpResponse, ApiError> {
    let body: CampaignBody = body::json_object(&body::read(&req, payload).await?)?;
    let campaign = validate(body)?;
    let created = registry
        .send(CreateCampaign { campaign })
        .await
        .map_err(ApiError::internal)??;
    let body = serde_json::to_string(&CampaignView::from(created)).map_err(ApiError::internal)?;
    Ok(HttpResponse::Created()
        .content_type(ContentType::json())
        .body(body))
}

/// `GET /api/admin/campaigns/{id}`: with `issued`, `redeemed`, `remaining`.
#[utoipa::path(
    operation_id = "getCampaign",
    tag = "operator",
    security(("operator" = [])),
    params(("id" = String, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "The campaign and its counts", body = CampaignView),
        (status = 401, description = "No valid operator token", body = String, content_type = "text/plain"),
        (status = 403, description = "The operator API is disabled: ADMIN_TOKEN is not set", body = String, content_type = "text/plain"),
        (status = 404, description = "No such campaign", body = String, content_type = "text/plain"),
    )
)]
#[get("/campaigns/{id}")]
pub async fn get(
    id: web::Path<String>,
    registry: web::Data<Addr<CampaignRegistry>>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if !valid_sku(&id) {
        return Err(ApiError::NotFound("no such campaign"));
    }
    let campaign = registry
        .send(GetCampaign { id })
        .await
        .map_err(ApiError::internal)??
        .ok_or(ApiError::NotFound("no such campaign"))?;
    json(&CampaignView::from(campaign))
}

/// `GET /api/campaigns`: started, not ended, with codes left.
#[utoipa::path(
    operation_id = "listOpenCampaigns",
    tag = "coupons",
    security(("shopper" = []), ("shopper_cookie" = [])),
    responses(
        (status = 200, description = "Open campaigns", body = Vec<OpenCampaign>),
        (status = 204, description = "None open"),
        (status = 401, description = "No valid token", body = String, content_type = "text/plain"),
    )
)]
#[get("/api/campaigns")]
#[instrument(skip_all, fields(user = %user.0))]
pub async fn open(
    user: AuthUser,
    registry: web::Data<Addr<CampaignRegistry>>,
) -> Result<HttpResponse, ApiError> {
    let campaigns = registry
        .send(ListOpenCampaigns)
        .await
        .map_err(ApiError::internal)??;
    let campaigns: Vec<OpenCampaign> = campaigns
        .into_iter()
        .map(|campaign| {
            let remaining = campaign.remaining();
            let c = campaign.campaign;
            OpenCampaign {
                id: c.id,
                title: c.title,
                kind: c.kind,
                value: c.value,
                price: c.price,
                min_order: c.min_order,
                starts_at: c.starts_at.map(rfc3339),
                ends_at: c.ends_at.map(rfc3339),
                remaining,
            }
        })
        .collect();
    json_list(&campaigns)
}
