//! Defences every request passes: state-changing requests sent by pages of other sites are
//! refused, and answers of the API are never stored by caches.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::ResponseError;

use crate::error::ApiError;

/// Refuses cross-site state-changing requests (`403`) and marks API answers `no-store`.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(reason) = cross_site(&req) {
        let response = ApiError::Forbidden(reason).error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    let api = req.path().starts_with("/api/");
    let mut response = next.call(req).await?;
    if api {
        // Answers carry tokens and account data: no cache on the way may keep them.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response.map_into_left_body())
}

/// Why a request that changes state must be refused as coming from another site, if it
/// must. Browsers say where a request comes from (`Sec-Fetch-Site`, else `Origin`);
/// clients that send neither — scripts, servers, other services — are not browsers
/// carrying someone's cookie, and pass.
fn cross_site(req: &ServiceRequest) -> Option<&'static str> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        // `same-site` includes sibling subdomains, which may be someone else's.
        return match site.as_bytes() {
            b"same-origin" | b"none" => None,
            _ => Some("cross-site requests are refused"),
        };
    }
    let origin = headers.get(header::ORIGIN)?;
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (origin_host, host) {
        (Some(origin), Some(host)) if origin.eq_ignore_ascii_case(&host) => None,
        _ => Some("cross-origin requests are refused"),
    }
}
