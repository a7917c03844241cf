//! An HTTP emulator of the accrual system: reward rules, orders, statuses and a rate limit.

mod limiter;
mod rules;
mod store;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::header::{ContentType, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer, ResponseError};
use serde::de::DeserializeOwned;

use self::limiter::RateLimiter;
use self::rules::{OrderBody, RuleBody};
use self::store::{RuleRefusal, Store, MAX_RULES};
use gophermart_actors::domain::OrderNumber;

/// The largest request body read, in bytes.
const MAX_BODY: usize = 1 << 20;

/// The most goods one order may list.
const MAX_GOODS: usize = 1_000;

/// Settings of the emulator.
#[derive(Debug, Clone)]
pub struct EmulatorSettings {
    /// Admitted `GET /api/orders/{number}` per sliding minute, all clients together; `0` = unlimited.
    pub rate_limit: u32,
    /// From registration to the final status: half `REGISTERED`, half `PROCESSING`.
    pub processing_delay: Duration,
    /// Whether SIGINT/SIGTERM stop it. Off when it runs inside the service, which stops
    /// it itself after its own accrual work has settled.
    pub stop_on_signals: bool,
}

/// The state all workers share.
#[derive(Debug)]
struct Emulator {
    rate_limit: u32,
    limiter: RateLimiter,
    store: Store,
}

/// Starts the emulator on an already bound listener; the caller awaits or spawns the Server.
pub fn run(listener: TcpListener, settings: EmulatorSettings) -> std::io::Result<Server> {
    tracing::info!(address = ?listener.local_addr()?, ?settings, "accrual emulator listening");
    let state = web::Data::new(Emulator {
        rate_limit: settings.rate_limit,
        limiter: RateLimiter::new(settings.rate_limit),
        store: Store::new(settings.processing_delay),
    });
    serve(
        listener,
        settings.stop_on_signals,
        MAX_BODY,
        move |routes| {
            routes
                .app_data(state.clone())
                .route("/api/goods", web::post().to(register_rule))
                .route("/api/orders", web::post().to(register_order))
                .route("/api/orders/{number}", web::get().to(get_order));
        },
    )
}

/// Serves an emulator's `routes` on `listener`, bodies up to `max_body` bytes. State sits
/// behind short locks; two workers are plenty for an emulator.
pub(crate) fn serve(
    listener: TcpListener,
    stop_on_signals: bool,
    max_body: usize,
    routes: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
) -> std::io::Result<Server> {
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(web::PayloadConfig::new(max_body))
            .configure(routes.clone())
    })
    .workers(2)
    .shutdown_timeout(1);
    if !stop_on_signals {
        server = server.disable_signals();
    }
    Ok(server.listen(listener)?.run())
}

/// Why a request is refused; the body is the reason as plain text.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    /// A malformed body or a refused value.
    #[error("{0}")]
    BadRequest(String),
    /// The rule or order is already registered.
    #[error("{0}")]
    Conflict(&'static str),
    /// The rate limit is reached; the wording is what clients parse the limit from.
    #[error("No more than {limit} requests per minute allowed")]
    TooManyRequests { limit: u32, retry_after_secs: u64 },
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn error_response(&self) -> HttpResponse {
        tracing::debug!(status = %self.status_code(), reason = %self, "request refused");
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header(ContentType::plaintext());
        if let Self::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            response.insert_header((RETRY_AFTER, retry_after_secs.to_string()));
        }
        response.body(self.to_string())
    }
}

/// Parses a JSON body whatever its Content-Type says.
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))
}

/// `POST /api/goods`: registers a reward rule.
async fn register_rule(
    state: web::Data<Emulator>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (pattern, reward) = parse_json::<RuleBody>(&body)?
        .validate()
        .map_err(|reason| ApiError::BadRequest(reason.to_owned()))?;
    tracing::info!(%pattern, ?reward, "registering a reward rule");
    match state.store.add_rule(pattern, reward) {
        Ok(()) => Ok(HttpResponse::Ok().finish()),
        Err(RuleRefusal::Taken) => Err(ApiError::Conflict("the match is already registered")),
        Err(RuleRefusal::Full) => Err(ApiError::BadRequest(format!(
            "no more than {MAX_RULES} rules can be registered"
        ))),
    }
}

/// `POST /api/orders`: registers an order for calculation.
async fn register_order(
    state: web::Data<Emulator>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: OrderBody = parse_json(&body)?;
    if body.goods.len() > MAX_GOODS {
        return Err(ApiError::BadRequest(format!(
            "an order has at most {MAX_GOODS} goods"
        )));
    }
    let number =
        OrderNumber::parse(&body.order).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // A negative price is no purchase; it would also make a percent reward negative.
    if body
        .goods
        .iter()
        .any(|good| good.price.0.is_sign_negative())
    {
        return Err(ApiError::BadRequest(
            "a price cannot be negative".to_owned(),
        ));
    }
    tracing::info!(order = %number, goods = body.goods.len(), "registering an order");
    if !state.store.add_order(number, &body.goods) {
        return Err(ApiError::Conflict("the order is already registered"));
    }
    Ok(HttpResponse::Accepted().finish())
}

/// `GET /api/orders/{number}`: the order's status and accrual, `204` when unknown.
async fn get_order(
    state: web::Data<Emulator>,
    number: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // The limit counts every admitted GET, known order or not, as clients see it.
    state
        .limiter
        .admit()
        .map_err(|throttled| ApiError::TooManyRequests {
            limit: state.rate_limit,
            retry_after_secs: throttled.retry_after_secs,
        })?;
    let view = OrderNumber::parse(&number)
        .ok()
        .and_then(|number| state.store.view(&number));
    Ok(match view {
        Some(view) => HttpResponse::Ok().json(view),
        None => HttpResponse::NoContent().finish(),
    })
}
