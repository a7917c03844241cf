//! Liveness: answers once the server accepts requests.

use actix_web::HttpResponse;

/// `GET /health`.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}
