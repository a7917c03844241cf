//! The OpenAPI 3.1 document of the API: what no handler carries (title, credentials, tags)
//! is declared here; every path and schema comes from the handlers as they are mounted.

use actix_web::{web, App, HttpResponse};
use bytes::Bytes;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use crate::auth::COOKIE;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gophermart",
        description = "A cumulative loyalty-points service: shoppers hand in order numbers, \
            points are credited once the accrual system has priced them, and spent on \
            orders, rewards and coupons. Amounts are JSON numbers exact to 2 decimals, never \
            strings. Errors answer `text/plain` with the reason.",
        license(name = "MIT", identifier = "MIT"),
    ),
    modifiers(&Credentials),
    tags(
        (name = "account", description = "Sign-up, sign-in, orders, balance and statement (the shopper's token)"),
        (name = "rewards", description = "The catalogue and redemptions shipped to the shopper's door"),
        (name = "coupons", description = "Coupon campaigns: claims by shoppers, use at the shop's checkout"),
        (name = "operator", description = "The operator's figures, feed, rewards and campaigns (ADMIN_TOKEN)"),
        (name = "shop", description = "The shop checkout (SHOP_TOKEN)"),
    )
)]
struct Base;

/// The credentials of the three roles.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str, format: Option<&str>| {
            let mut http = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description));
            if let Some(format) = format {
                http = http.bearer_format(format);
            }
            SecurityScheme::Http(http.build())
        };
        components.add_security_scheme(
            "shopper",
            bearer(
                "The token answered by register and login (also set as a cookie)",
                Some("JWT"),
            ),
        );
        components.add_security_scheme(
            "shopper_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                COOKIE,
                "The HttpOnly cookie set by register and login",
            ))),
        );
        components.add_security_scheme("operator", bearer("ADMIN_TOKEN", None));
        components.add_security_scheme("shop", bearer("SHOP_TOKEN", None));
    }
}

/// The document, built from the routes as [`super::configure`] mounts them.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, document) = App::new()
        .into_utoipa_app()
        .openapi(Base::openapi())
        .configure(super::configure)
        .split_for_parts();
    document
}

/// The document as served, rendered once at start.
pub struct Document(Bytes);

impl Document {
    /// Renders [`openapi`].
    pub fn render() -> Result<Self, serde_json::Error> {
        Ok(Self(Bytes::from(openapi().to_pretty_json()?)))
    }
}

/// `GET /api/openapi.json`.
pub async fn document(document: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone())
}
