//! The accrual system's HTTP protocol: one question about one order, and what the answer
//! means.

use std::time::{Duration, SystemTime};

use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::domain::{OrderNumber, Points};
use crate::http::{describe, parse_retry_after, read_capped};

/// What the accrual system said about an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `REGISTERED`: known, calculation not started.
    Registered,
    /// `PROCESSING`: being calculated.
    Processing,
    /// `INVALID`: refused. Final.
    Invalid,
    /// `PROCESSED` with the accrual (zero when absent). Final.
    Processed(Points),
    /// `204`: not known (yet).
    Unknown,
    /// `429`: asked too often.
    TooManyRequests {
        /// How long to wait, when the header was usable.
        retry_after: Option<Duration>,
        /// The limit announced in the body (`No more than N requests per minute allowed`).
        per_minute: Option<u32>,
    },
    /// A `5xx`, a timeout, a refused connection, an unexpected status or a body we cannot read.
    Failed(String),
}

/// Asks the accrual system, through one shared connection pool.
#[derive(Debug, Clone)]
pub struct AccrualClient {
    http: reqwest::Client,
    base: String,
}

#[derive(Deserialize)]
struct Reply {
    order: String,
    status: String,
    accrual: Option<Box<serde_json::value::RawValue>>,
}

impl AccrualClient {
    /// A client for the accrual system at `base` (`http://host:port`), each request
    /// bounded by `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = crate::http::client(timeout)?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// `GET {base}/api/orders/{number}`.
    pub async fn ask(&self, order: &OrderNumber) -> Answer {
        let url = format!("{}/api/orders/{order}", self.base);
        let response = match self.http.get(&url).send().await {
            Ok(response) => response,
            Err(e) => return Answer::Failed(describe(&e)),
        };
        match response.status() {
            StatusCode::OK => match read_capped(response).await {
                Ok(body) => parse_reply(order, &body),
                Err(reason) => Answer::Failed(reason),
            },
            StatusCode::NO_CONTENT => Answer::Unknown,
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| parse_retry_after(value, SystemTime::now()));
                let body = read_capped(response).await.unwrap_or_default();
                Answer::TooManyRequests {
                    retry_after,
                    per_minute: parse_limit(&String::from_utf8_lossy(&body)),
                }
            }
            status => Answer::Failed(format!("answered {status}")),
        }
    }
}

/// Reads a `200` body; anything unexpected is a failure, never a guess.
pub fn parse_reply(order: &OrderNumber, body: &[u8]) -> Answer {
    let reply: Reply = match serde_json::from_slice(body) {
        Ok(reply) => reply,
        Err(e) => return Answer::Failed(format!("unreadable body: {e}")),
    };
    if reply.order.trim() != order.as_str() {
        return Answer::Failed(format!("answer is about order {:?}", reply.order));
    }
    match reply.status.as_str() {
        "REGISTERED" => Answer::Registered,
        "PROCESSING" => Answer::Processing,
        "INVALID" => Answer::Invalid,
        "PROCESSED" => match reply.accrual.map(|a| Points::parse_accrual(a.get())) {
            None => Answer::Processed(Points::ZERO),
            Some(Ok(points)) => Answer::Processed(points),
            Some(Err(e)) => Answer::Failed(format!("unusable accrual: {e}")),
        },
        other => Answer::Failed(format!("unknown status {other:?}")),
    }
}

/// The `N` of `No more than N requests per minute allowed`.
pub fn parse_limit(body: &str) -> Option<u32> {
    let rest = body.trim().strip_prefix("No more than ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number() -> OrderNumber {
        OrderNumber::parse("79927398713").expect("valid")
    }

    #[test]
    fn replies_map_to_answers() {
        let answer = |body: &str| parse_reply(&number(), body.as_bytes());
        assert_eq!(
            answer(r#"{"order":"79927398713","status":"PROCESSED","accrual":729.975}"#),
            Answer::Processed(Points::from_cents(72998).expect("valid"))
        );
        assert_eq!(
            answer(r#"{"order":"79927398713","status":"PROCESSED"}"#),
            Answer::Processed(Points::ZERO)
        );
        assert_eq!(
            answer(r#"{"order":"79927398713","status":"REGISTERED"}"#),
            Answer::Registered
        );
        assert!(matches!(answer("garbage"), Answer::Failed(_)));
        assert!(matches!(
            answer(r#"{"order":"1","status":"PROCESSED","accrual":5}"#),
            Answer::Failed(_)
        ));
        assert!(matches!(
            answer(r#"{"order":"79927398713","status":"PROCESSED","accrual":"5"}"#),
            Answer::Failed(_)
        ));
        assert!(matches!(
            answer(r#"{"order":"79927398713","status":"PROCESSED","accrual":-5}"#),
            Answer::Failed(_)
        ));
    }

    #[test]
    fn the_limit_is_read_from_the_body() {
        assert_eq!(
            parse_limit("No more than 60 requests per minute allowed"),
            Some(60)
        );
        assert_eq!(parse_limit("slow down"), None);
        assert_eq!(
            parse_limit("No more than 0 requests per minute allowed"),
            None
        );
    }
}
