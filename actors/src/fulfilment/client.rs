//! The fulfilment service's HTTP protocol: request a shipment (idempotent by the
//! redemption's id), ask where a parcel is.

use std::time::{Duration, SystemTime};

use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::store::{RedemptionStatus, Shipment};
use crate::http::{describe, parse_retry_after, read_capped};

/// What the fulfilment service said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The shipment is accepted under this tracking number.
    Accepted {
        /// The carrier's number.
        tracking: String,
    },
    /// The parcel is here now.
    Status(RedemptionStatus),
    /// `409`/`422` to a shipment request: refused for good.
    Refused(String),
    /// `429`: asked too often.
    Throttled(Option<Duration>),
    /// Anything else: a `5xx`, a timeout, a refused connection, an unreadable body.
    Failed(String),
}

/// Talks to the fulfilment service through one connection pool.
#[derive(Debug, Clone)]
pub struct FulfilmentClient {
    http: reqwest::Client,
    base: String,
}

#[derive(Serialize)]
struct ShipmentRequest<'a> {
    redemption: &'a str,
    sku: &'a str,
    quantity: u32,
    address: &'a str,
}

#[derive(Deserialize)]
struct Tracked {
    tracking: String,
    status: String,
}

impl FulfilmentClient {
    /// A client for the service at `base`, each request bounded by `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: crate::http::client(timeout)?,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// `POST /api/shipments` with the redemption's id as `Idempotency-Key`: asking again
    /// never ships twice.
    pub async fn ship(&self, shipment: &Shipment) -> Answer {
        let request = ShipmentRequest {
            redemption: &shipment.id,
            sku: &shipment.sku,
            quantity: shipment.quantity,
            address: &shipment.address,
        };
        let response = self
            .http
            .post(format!("{}/api/shipments", self.base))
            .header("Idempotency-Key", shipment.id.as_str())
            .json(&request)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(e) => return Answer::Failed(describe(&e)),
        };
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => match read_tracked(response).await {
                Ok(tracked) if valid_tracking(&tracked.tracking) => Answer::Accepted {
                    tracking: tracked.tracking,
                },
                Ok(tracked) => Answer::Failed(format!("unusable tracking {:?}", tracked.tracking)),
                Err(reason) => Answer::Failed(reason),
            },
            StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => {
                let body = read_capped(response).await.unwrap_or_default();
                let mut reason = String::from_utf8_lossy(&body).into_owned();
                reason.truncate(200);
                Answer::Refused(reason)
            }
            StatusCode::TOO_MANY_REQUESTS => Answer::Throttled(retry_after(&response)),
            status => Answer::Failed(format!("answered {status}")),
        }
    }

    /// `GET /api/shipments/{tracking}`.
    pub async fn track(&self, tracking: &str) -> Answer {
        let url = format!("{}/api/shipments/{tracking}", self.base);
        let response = match self.http.get(url).send().await {
            Ok(response) => response,
            Err(e) => return Answer::Failed(describe(&e)),
        };
        match response.status() {
            StatusCode::OK => match read_tracked(response).await {
                Ok(tracked) => match tracked.status.as_str() {
                    "ACCEPTED" => Answer::Status(RedemptionStatus::Accepted),
                    "SHIPPED" => Answer::Status(RedemptionStatus::Shipped),
                    "DELIVERED" => Answer::Status(RedemptionStatus::Delivered),
                    other => Answer::Failed(format!("unknown status {other:?}")),
                },
                Err(reason) => Answer::Failed(reason),
            },
            StatusCode::TOO_MANY_REQUESTS => Answer::Throttled(retry_after(&response)),
            status => Answer::Failed(format!("answered {status}")),
        }
    }
}

async fn read_tracked(response: reqwest::Response) -> Result<Tracked, String> {
    let body = read_capped(response).await?;
    serde_json::from_slice(&body).map_err(|e| format!("unreadable body: {e}"))
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, SystemTime::now()))
}

/// A tracking number we will put in a URL path and show: 1–128 of `[A-Za-z0-9._-]`.
fn valid_tracking(tracking: &str) -> bool {
    (1..=128).contains(&tracking.len())
        && tracking
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
