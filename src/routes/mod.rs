//! HTTP routes: each handler parses, authenticates and asks an actor.

mod admin;
mod balance;
mod campaigns;
mod coupons;
mod health;
mod history;
mod openapi;
mod orders;
mod query;
mod redemptions;
mod rewards;
mod users;

use actix_web::http::header::ContentType;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa_actix_web::scope;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::ApiError;
use crate::roles;

pub use openapi::{openapi, Document};

/// Mounts every route. Those of the API are mounted through `utoipa_actix_web`, so that
/// the OpenAPI document holds exactly what is mounted; the operators' windows are not
/// part of it.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/health", web::get().to(health::health))
        .route("/ready", web::get().to(health::ready))
        .route("/metrics", web::get().to(crate::metrics::scrape))
        .route("/api/openapi.json", web::get().to(openapi::document))
        .service(rewards::on_offer)
        .service(campaigns::open)
        .service(
            scope("/api/user")
                .service(users::register)
                .service(users::login)
                .service(users::logout)
                .service(orders::upload)
                .service(orders::list)
                .service(balance::get)
                .service(balance::withdraw)
                .service(balance::withdrawals)
                .service(balance::balance_withdrawals)
                .service(history::history)
                .service(redemptions::redeem)
                .service(redemptions::list)
                .service(redemptions::one)
                .service(coupons::claim)
                .service(coupons::list),
        )
        .service(
            // Guarded whole: unknown paths under it answer 404 only to the operator.
            scope("/api/admin")
                .service(admin::events)
                .service(admin::summary)
                .service(admin::daily)
                .service(admin::top)
                .service(admin::audit)
                .service(rewards::create)
                .service(rewards::all)
                .service(rewards::change)
                .service(campaigns::create)
                .service(campaigns::get)
                .default_service(web::to(not_found))
                .wrap(from_fn(roles::admin_only)),
        )
        .service(
            scope("/api/shop")
                .service(coupons::preview)
                .service(coupons::redeem)
                .default_service(web::to(not_found))
                .wrap(from_fn(roles::shop_only)),
        );
    crate::pages::configure(cfg);
}

/// Anything no route matches: `404` with a reason.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("no such endpoint")
}

/// `200` with the JSON of `value`.
fn json(value: &impl Serialize) -> Result<HttpResponse, ApiError> {
    let body = serde_json::to_string(value).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body))
}

/// A JSON list: `200` with the items, or `204` (still `application/json`) when empty.
fn json_list(items: &[impl Serialize]) -> Result<HttpResponse, ApiError> {
    if items.is_empty() {
        return Ok(HttpResponse::NoContent()
            .content_type(ContentType::json())
            .finish());
    }
    json(&items)
}

/// RFC 3339 in UTC, to the second: `2020-12-10T12:15:45Z`.
fn rfc3339(time: chrono::DateTime<chrono::FixedOffset>) -> String {
    time.to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
