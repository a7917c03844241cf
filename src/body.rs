//! Reading request bodies: gzip or identity, at most 64 KiB after decompression, whole
//! within a deadline.

use std::io::Read;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use bytes::{Bytes, BytesMut};
use flate2::read::MultiGzDecoder;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest body accepted, counted after decompression.
pub const MAX_BODY: usize = 64 * 1024;

/// How much larger than its content a gzip stream may be (headers, stored blocks).
const GZIP_SLACK: usize = 1024;

/// How long a whole request body may take to arrive, shared with every handler.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Duration);

/// Reads the whole body, decompressing gzip, refusing other encodings (415), anything
/// over [`MAX_BODY`] (413) and a body that is not complete within the [`BodyDeadline`]
/// (408, and the connection is closed).
pub async fn read(req: &HttpRequest, payload: web::Payload) -> Result<Bytes, ApiError> {
    let deadline = req
        .app_data::<web::Data<BodyDeadline>>()
        .ok_or_else(|| ApiError::internal("the body deadline is not configured"))?
        .0;
    tokio::time::timeout(deadline, read_within(req, payload))
        .await
        .map_err(|_| ApiError::RequestTimeout)?
}

async fn read_within(req: &HttpRequest, mut payload: web::Payload) -> Result<Bytes, ApiError> {
    let gzip = match req.headers().get(header::CONTENT_ENCODING) {
        None => false,
        Some(value) => match value.to_str().map(|v| v.trim().to_ascii_lowercase()) {
            Ok(v) if v.is_empty() || v == "identity" => false,
            Ok(v) if v == "gzip" || v == "x-gzip" => true,
            _ => return Err(ApiError::UnsupportedEncoding),
        },
    };
    let limit = if gzip {
        MAX_BODY + GZIP_SLACK
    } else {
        MAX_BODY
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut raw = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::BadRequest("could not read the body".into()))?;
        if raw.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        raw.extend_from_slice(&chunk);
    }
    if !gzip {
        return Ok(raw.freeze());
    }
    let mut plain = Vec::new();
    // Read one byte past the limit to tell "exactly at the limit" from "over it".
    MultiGzDecoder::new(&raw[..])
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|_| ApiError::BadRequest("the body is not valid gzip".into()))?;
    if plain.len() > MAX_BODY {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(plain.into())
}

/// Parses a JSON object body whatever the `Content-Type` says. Arrays are refused even
/// where serde would map them onto a struct's fields by position.
pub fn json_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::BadRequest("expected a JSON object".into()));
    }
    serde_json::from_slice(body).map_err(|e| {
        let reason = match e.classify() {
            serde_json::error::Category::Data => {
                let mut reason = format!("malformed request: {e}");
                reason.truncate(200);
                reason
            }
            _ => "malformed JSON".to_owned(),
        };
        ApiError::BadRequest(reason)
    })
}
