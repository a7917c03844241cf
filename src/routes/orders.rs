//! Uploading order numbers and listing them.

use actix::Addr;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use gophermart_actors::domain::{OrderNumber, OrderNumberError, Points};
use gophermart_actors::orders::{ListOrders, OrderRegistry, RegisterOrder, Registration};
use serde::Serialize;
use tracing::instrument;

use super::{json_list, rfc3339};
use crate::auth::AuthUser;
use crate::body;
use crate::error::ApiError;
use crate::throttle::Throttles;

/// `POST /api/user/orders`: a `text/plain` order number.
#[utoipa::path(
    operation_id = "uploadOrder",
    tag = "account",
    security(("shopper" = []), ("shopper_cookie" = [])),
    request_body(content = String, content_type = "text/plain", description = "The order number: digits passing the Luhn check", example = "79927398713"),
    responses(
        (status = 202, description = "A new number, accepted for processing", body = String, content_type = "text/plain"),
        (status = 200, description = "This shopper uploaded it already", body = String, content_type = "text/plain"),
        (status = 400, description = "An empty or unreadable body", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid token", body = String, content_type = "text/plain"),
        (status = 409, description = "Another shopper uploaded it", body = String, content_type = "text/plain"),
        (status = 422, description = "Not digits, or fails the Luhn check", body = String, content_type = "text/plain"),
        (status = 429, description = "Too many uploads from this shopper; see `Retry-After`", body = String, content_type = "text/plain"),
    )
)]
#[post("/orders")]
#[instrument(skip_all, fields(user = %user.0))]
pub async fn upload(
    user: AuthUser,
    req: HttpRequest,
    payload: web::Payload,
    registry: web::Data<Addr<OrderRegistry>>,
    throttles: web::Data<Throttles>,
) -> Result<HttpResponse, ApiError> {
    throttles.uploads.check(&user.0)?;
    let bytes = body::read(&req, payload).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::BadRequest("the body is not valid UTF-8".into()))?;
    let number = OrderNumber::parse(text).map_err(|e| match e {
        OrderNumberError::Empty => ApiError::BadRequest(e.to_string()),
        _ => ApiError::Unprocessable(e.to_string()),
    })?;
    let registration = registry
        .send(RegisterOrder {
            user: user.0,
            number,
        })
        .await
        .map_err(ApiError::internal)??;
    Ok(match registration {
        Registration::Accepted => HttpResponse::Accepted()
            .content_type("text/plain")
            .body("accepted"),
        Registration::AlreadyYours => HttpResponse::Ok()
            .content_type("text/plain")
            .body("already uploaded"),
        Registration::TakenByOther => {
            return Err(ApiError::Conflict("uploaded by another user"));
        }
    })
}

/// An uploaded order.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Order)]
struct OrderItem {
    number: String,
    /// `NEW`, `PROCESSING`, `INVALID` or `PROCESSED`.
    #[schema(value_type = String, examples("PROCESSED"))]
    status: &'static str,
    /// Points credited; only once `PROCESSED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    accrual: Option<Points>,
    /// RFC 3339.
    uploaded_at: String,
}

/// `GET /api/user/orders`: oldest upload first.
#[utoipa::path(
    operation_id = "listOrders",
    tag = "account",
    security(("shopper" = []), ("shopper_cookie" = [])),
    responses(
        (status = 200, description = "The shopper's orders, oldest upload first", body = Vec<OrderItem>),
        (status = 204, description = "No orders yet"),
        (status = 401, description = "No valid token", body = String, content_type = "text/plain"),
    )
)]
#[get("/orders")]
#[instrument(skip_all, fields(user = %user.0))]
pub async fn list(
    user: AuthUser,
    registry: web::Data<Addr<OrderRegistry>>,
) -> Result<HttpResponse, ApiError> {
    let orders = registry
        .send(ListOrders { user: user.0 })
        .await
        .map_err(ApiError::internal)??;
    let items: Vec<OrderItem> = orders
        .iter()
        .map(|order| OrderItem {
            number: order.number.to_string(),
            status: order.status.as_str(),
            accrual: order.accrual,
            uploaded_at: rfc3339(order.uploaded_at),
        })
        .collect();
    json_list(&items)
}
