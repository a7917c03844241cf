//! The one API error type and its mapping to status codes. Causes of 5xx answers are
//! logged, never shown.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use gophermart_actors::error::{
    AccountError, CampaignError, EventError, FiguresError, OrderError, RewardError,
};

/// Everything a request can end in besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: bad JSON, wrong types, missing or empty fields, bad sums.
    #[error("{0}")]
    BadRequest(String),
    /// Missing, malformed, expired or forged credentials, or a wrong login/password pair.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The balance does not cover the withdrawal.
    #[error("not enough points")]
    PaymentRequired,
    /// The resource belongs to someone else or was used differently before.
    #[error("{0}")]
    Conflict(&'static str),
    /// The thing asked about does not exist.
    #[error("{0}")]
    NotFound(&'static str),
    /// The body is over the limit (after decompression).
    #[error("request body is too large")]
    PayloadTooLarge,
    /// A content encoding other than gzip or identity.
    #[error("unsupported content encoding")]
    UnsupportedEncoding,
    /// The order number is not digits or fails the Luhn check.
    #[error("{0}")]
    Unprocessable(String),
    /// A state-changing request sent by a page of another site.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Over a rate limit; `Retry-After` says when to come back.
    #[error("{reason}")]
    TooManyRequests {
        /// What was limited.
        reason: &'static str,
        /// Seconds until the next request may pass (at least 1).
        retry_after: u64,
    },
    /// The body did not arrive within the deadline.
    #[error("the request body was not received in time")]
    RequestTimeout,
    /// Too much work queued already; `Retry-After` says when to come back.
    #[error("{0}; try again shortly")]
    Busy(&'static str),
    /// It existed, or was to exist, and is over.
    #[error("{0}")]
    Gone(&'static str),
    /// A part the request needs is not set up.
    #[error("{0}")]
    Unavailable(&'static str),
    /// Our own failure; the cause goes to the log only.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A failure of ours, with the cause to log.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Busy(_) | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(%cause, "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        response.content_type("text/plain; charset=utf-8");
        match self {
            ApiError::Unauthorized(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::TooManyRequests { retry_after, .. } => {
                response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            ApiError::Busy(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            // The rest of the body may still be on its way: do not read it.
            ApiError::RequestTimeout => {
                response.insert_header((header::CONNECTION, "close"));
            }
            _ => {}
        }
        response.body(self.to_string())
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::LoginTaken => ApiError::Conflict("login is already taken"),
            AccountError::UnknownUser => ApiError::Unauthorized("unknown user"),
            AccountError::InsufficientFunds => ApiError::PaymentRequired,
            AccountError::OrderAlreadyUsed => {
                ApiError::Conflict("the order number was already used for a withdrawal")
            }
            AccountError::Overflow => ApiError::BadRequest("the balance would overflow".into()),
            AccountError::RewardNotFound => ApiError::NotFound("no such reward on offer"),
            AccountError::OutOfStock => ApiError::Conflict("not enough stock"),
            AccountError::KeyReused => {
                ApiError::Unprocessable("this Idempotency-Key was used with another request".into())
            }
            // Nothing was charged: the client may send the same request again.
            AccountError::Contended => ApiError::Busy("the account is busy, try again"),
            other => ApiError::internal(other),
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(error: OrderError) -> Self {
        match error {
            OrderError::UnknownUser => ApiError::Unauthorized("unknown user"),
            other => ApiError::internal(other),
        }
    }
}

impl From<EventError> for ApiError {
    fn from(error: EventError) -> Self {
        ApiError::internal(error)
    }
}

impl From<FiguresError> for ApiError {
    fn from(error: FiguresError) -> Self {
        ApiError::internal(error)
    }
}

impl From<RewardError> for ApiError {
    fn from(error: RewardError) -> Self {
        match error {
            RewardError::NotFound => ApiError::NotFound("no such reward"),
            RewardError::SkuTaken => ApiError::Conflict("a reward with this sku exists"),
            RewardError::StockOutOfRange => {
                ApiError::Conflict("the stock would go below zero or above the maximum")
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<CampaignError> for ApiError {
    fn from(error: CampaignError) -> Self {
        match error {
            CampaignError::IdTaken => ApiError::Conflict("a campaign with this id exists"),
            other => ApiError::internal(other),
        }
    }
}
