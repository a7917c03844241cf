//! Liveness and readiness: `/health` answers once the server accepts requests; `/ready`
//! also needs the database to answer.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use gophermart_actors::Db;

/// How long readiness waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /health`.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// `GET /ready`: `200` after one round trip to the database (the connection writes go
/// to) within two seconds, `503` with the reason otherwise.
pub async fn ready(db: web::Data<Db>) -> HttpResponse {
    let reason = match tokio::time::timeout(READY_TIMEOUT, db.writer.ping()).await {
        Ok(Ok(())) => {
            return HttpResponse::Ok()
                .content_type("text/plain; charset=utf-8")
                .body("ready")
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "not ready: the database failed a round trip");
            "not ready: the database did not answer"
        }
        Err(_) => {
            tracing::warn!("not ready: the database did not answer in time");
            "not ready: the database did not answer within 2 s"
        }
    };
    HttpResponse::ServiceUnavailable()
        .content_type("text/plain; charset=utf-8")
        .insert_header(("Retry-After", "1"))
        .body(reason)
}
