//! An HTTP emulator of the warehouse's fulfilment service: shipments idempotent by key,
//! their statuses over a shipping delay, a stock per sku, and failures on demand.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::Server;
use actix_web::http::header::ContentType;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// The largest body accepted.
const MAX_BODY: usize = 64 * 1024;

/// The most shipments kept in memory.
pub const MAX_SHIPMENTS: usize = 100_000;

/// The longest idempotency key.
const MAX_KEY: usize = 128;

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct WarehouseSettings {
    /// From acceptance to delivery; the first half `ACCEPTED`, the second `SHIPPED`.
    pub shipping_delay: Duration,
    /// The share of requests answered `500`, from 0 to 1.
    pub fail_rate: f64,
    /// Whether SIGINT/SIGTERM stop it (off when embedded in another program).
    pub stop_on_signals: bool,
}

/// A shipment request, as the service sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShipmentRequest {
    redemption: String,
    sku: String,
    quantity: u32,
    address: String,
}

#[derive(Debug)]
struct Shipment {
    request: ShipmentRequest,
    tracking: String,
    accepted_at: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// Shipments by idempotency key.
    shipments: HashMap<String, Shipment>,
    /// Idempotency keys by tracking number.
    tracked: HashMap<String, String>,
    /// Units left per sku; skus never set are unlimited.
    stock: HashMap<String, u64>,
}

#[derive(Debug)]
struct Warehouse {
    settings: WarehouseSettings,
    state: Mutex<State>,
}

impl Warehouse {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held, so poisoned data is sound.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn status(&self, accepted_at: Instant) -> &'static str {
        let elapsed = accepted_at.elapsed();
        if elapsed < self.settings.shipping_delay / 2 {
            "ACCEPTED"
        } else if elapsed < self.settings.shipping_delay {
            "SHIPPED"
        } else {
            "DELIVERED"
        }
    }

    /// Whether this request is to fail, by the configured rate.
    fn fails(&self) -> bool {
        self.settings.fail_rate > 0.0 && rand::rng().random_bool(self.settings.fail_rate.min(1.0))
    }
}

/// Starts the emulator on `listener`.
pub fn run(listener: TcpListener, settings: WarehouseSettings) -> std::io::Result<Server> {
    tracing::info!(address = ?listener.local_addr()?, ?settings, "fulfilment emulator listening");
    let stop_on_signals = settings.stop_on_signals;
    let state = web::Data::new(Warehouse {
        settings,
        state: Mutex::default(),
    });
    crate::emulator::serve(listener, stop_on_signals, MAX_BODY, move |routes| {
        routes
            .app_data(state.clone())
            .route("/api/shipments", web::post().to(ship))
            .route("/api/shipments/{tracking}", web::get().to(track))
            .route("/api/stock", web::post().to(set_stock));
    })
}

#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("{0}")]
    Unprocessable(&'static str),
    #[error("the warehouse failed, try again")]
    Failure,
    #[error("the emulator holds {MAX_SHIPMENTS} shipments already")]
    Full,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Failure => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Full => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .insert_header(ContentType::plaintext())
            .body(self.to_string())
    }
}

#[derive(Serialize)]
struct Tracked<'a> {
    tracking: &'a str,
    status: &'static str,
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let mut reason = format!("malformed request: {e}");
        reason.truncate(200);
        ApiError::BadRequest(reason)
    })
}

/// A tracking number: `TRK` and 12 random characters.
fn tracking_number() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut rng = rand::rng();
    let code: String = (0..12)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("TRK{code}")
}

/// `POST /api/shipments` with `Idempotency-Key`: `201` a new shipment, `200` the same
/// request again, `422` the key with another request, `409` not enough stock.
async fn ship(
    req: HttpRequest,
    body: web::Bytes,
    warehouse: web::Data<Warehouse>,
) -> Result<HttpResponse, ApiError> {
    if warehouse.fails() {
        return Err(ApiError::Failure);
    }
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| (1..=MAX_KEY).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key is required (1-128 visible characters)".into())
        })?
        .to_owned();
    let request: ShipmentRequest = parse(&body)?;
    if request.quantity == 0
        || request.sku.trim().is_empty()
        || request.address.trim().is_empty()
        || request.redemption.trim().is_empty()
    {
        return Err(ApiError::BadRequest(
            "redemption, sku and address must not be empty, quantity at least 1".into(),
        ));
    }
    let mut state = warehouse.lock();
    if let Some(shipment) = state.shipments.get(&key) {
        if shipment.request != request {
            return Err(ApiError::Unprocessable(
                "this Idempotency-Key was used for another shipment",
            ));
        }
        let body = Tracked {
            tracking: &shipment.tracking,
            status: warehouse.status(shipment.accepted_at),
        };
        return Ok(HttpResponse::Ok().json(body));
    }
    if state.shipments.len() >= MAX_SHIPMENTS {
        return Err(ApiError::Full);
    }
    if let Some(left) = state.stock.get_mut(&request.sku) {
        *left = left
            .checked_sub(u64::from(request.quantity))
            .ok_or(ApiError::Conflict("not enough stock in the warehouse"))?;
    }
    let tracking = tracking_number();
    tracing::info!(%key, %tracking, sku = %request.sku, "shipment accepted");
    state.tracked.insert(tracking.clone(), key.clone());
    state.shipments.insert(
        key,
        Shipment {
            request,
            tracking: tracking.clone(),
            accepted_at: Instant::now(),
        },
    );
    Ok(HttpResponse::Created().json(Tracked {
        tracking: &tracking,
        status: "ACCEPTED",
    }))
}

/// `GET /api/shipments/{tracking}`: where the parcel is.
async fn track(
    tracking: web::Path<String>,
    warehouse: web::Data<Warehouse>,
) -> Result<HttpResponse, ApiError> {
    if warehouse.fails() {
        return Err(ApiError::Failure);
    }
    let state = warehouse.lock();
    let shipment = state
        .tracked
        .get(tracking.as_str())
        .and_then(|key| state.shipments.get(key))
        .ok_or(ApiError::NotFound("no such shipment"))?;
    Ok(HttpResponse::Ok().json(Tracked {
        tracking: &shipment.tracking,
        status: warehouse.status(shipment.accepted_at),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StockLevel {
    sku: String,
    quantity: u64,
}

/// `POST /api/stock` `{"sku", "quantity"}`: sets the warehouse's own stock of a sku.
async fn set_stock(
    body: web::Bytes,
    warehouse: web::Data<Warehouse>,
) -> Result<HttpResponse, ApiError> {
    let level: StockLevel = parse(&body)?;
    if level.sku.trim().is_empty() {
        return Err(ApiError::BadRequest("sku must not be empty".into()));
    }
    warehouse.lock().stock.insert(level.sku, level.quantity);
    Ok(HttpResponse::Ok().finish())
}
