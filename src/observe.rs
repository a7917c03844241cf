//! What every request leaves behind: its `X-Request-Id` (taken from the client when it is
//! sane, generated otherwise, echoed on the answer), a `request` span carrying that id
//! around every log line written while it is handled, and the HTTP metrics labelled by
//! the route pattern it matched.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::Error;
use tracing::Instrument;

use crate::metrics::{HttpMetrics, UNMATCHED};

/// The header that names a request across services.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client.
const MAX_REQUEST_ID: usize = 128;

/// The request middleware; see the module docs.
pub async fn observe(
    metrics: HttpMetrics,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let id = request_id(&req);
    let method = method_label(req.method());
    // The pattern comes from the route table, whatever the handler then does.
    let route = req.match_pattern();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.path()
    );
    let answered = next.call(req).instrument(span.clone()).await;
    let status = match &answered {
        Ok(response) => response.status(),
        // Rendered by the server after this middleware; counted all the same.
        Err(error) => error.as_response_error().status_code(),
    };
    let elapsed = started.elapsed();
    metrics.observe(
        method,
        route.as_deref().unwrap_or(UNMATCHED),
        status.as_str(),
        elapsed.as_secs_f64(),
    );
    span.in_scope(|| {
        tracing::debug!(
            status = status.as_u16(),
            elapsed_us = elapsed.as_micros() as u64,
            "answered"
        )
    });
    let mut response = answered?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    Ok(response)
}

/// The client's id when it is 1–128 printable ASCII characters without spaces; a fresh
/// one otherwise.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .map(HeaderValue::as_bytes)
        .filter(|id| {
            !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.iter().all(|b| b.is_ascii_graphic())
        })
        .and_then(|id| std::str::from_utf8(id).ok())
        .map_or_else(|| uuid::Uuid::now_v7().simple().to_string(), str::to_owned)
}

/// The method as a label: the standard ones by name, anything else as `OTHER`, so that a
/// client cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
