//! HTTP routes: each handler parses, authenticates and asks an actor.

mod admin;
mod balance;
mod campaigns;
mod coupons;
mod health;
mod history;
mod orders;
mod query;
mod redemptions;
mod rewards;
mod users;

use actix_web::http::header::ContentType;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::error::ApiError;
use crate::roles;

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health::health))
        .route("/api/rewards", web::get().to(rewards::on_offer))
        .route("/api/campaigns", web::get().to(campaigns::open))
        .service(
            web::scope("/api/user")
                .route("/register", web::post().to(users::register))
                .route("/login", web::post().to(users::login))
                .route("/logout", web::post().to(users::logout))
                .route("/orders", web::post().to(orders::upload))
                .route("/orders", web::get().to(orders::list))
                .route("/balance", web::get().to(balance::get))
                .route("/balance/withdraw", web::post().to(balance::withdraw))
                .route("/withdrawals", web::get().to(balance::withdrawals))
                .route("/balance/withdrawals", web::get().to(balance::withdrawals))
                .route("/history", web::get().to(history::history))
                .route("/redemptions", web::post().to(redemptions::redeem))
                .route("/redemptions", web::get().to(redemptions::list))
                .route("/redemptions/{id}", web::get().to(redemptions::one))
                .route("/coupons", web::post().to(coupons::claim))
                .route("/coupons", web::get().to(coupons::list)),
        )
        .service(
            // Guarded whole: unknown paths under it answer 404 only to the operator.
            web::scope("/api/admin")
                .wrap(from_fn(roles::admin_only))
                .route("/events", web::get().to(admin::events))
                .route("/stats/summary", web::get().to(admin::summary))
                .route("/stats/daily", web::get().to(admin::daily))
                .route("/stats/top", web::get().to(admin::top))
                .route("/audit", web::get().to(admin::audit))
                .route("/rewards", web::post().to(rewards::create))
                .route("/rewards", web::get().to(rewards::all))
                .route("/rewards/{sku}", web::patch().to(rewards::change))
                .route("/campaigns", web::post().to(campaigns::create))
                .route("/campaigns/{id}", web::get().to(campaigns::get))
                .default_service(web::to(not_found)),
        )
        .service(
            web::scope("/api/shop")
                .wrap(from_fn(roles::shop_only))
                .route("/coupons/{code}", web::get().to(coupons::preview))
                .route("/coupons/{code}/redeem", web::post().to(coupons::redeem))
                .default_service(web::to(not_found)),
        )
        .configure(crate::pages::configure);
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
