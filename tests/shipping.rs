//! A fulfilment service for tests: a real HTTP server, idempotent by key like the real
//! one, that counts the shipments it creates and misbehaves on request — `500`s, garbage
//! bodies and hangs — in a fixed rotation.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

/// How a request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// As the real service would.
    None,
    /// `500`.
    ServerError,
    /// `200` with a body that is not JSON.
    Garbage,
    /// No answer for longer than the service's timeout.
    Hang,
}

#[derive(Default)]
struct State {
    /// Per key: the tracking number and the request it came with.
    shipments: HashMap<String, (String, Value)>,
    /// How many shipments were created per key (more than one is a double shipment).
    created: HashMap<String, usize>,
    /// Requests so far, to pick the next fault.
    requests: usize,
    /// Questions per tracking number, to move the parcel on.
    asked: HashMap<String, usize>,
}

/// The running server; stopped when dropped.
pub struct CountingWarehouse {
    /// `http://127.0.0.1:port`.
    pub url: String,
    state: Arc<Mutex<State>>,
    handle: ServerHandle,
}

struct Config {
    faults: Vec<Fault>,
    hang: Duration,
}

impl CountingWarehouse {
    /// Starts a server answering requests in turn with `faults` (cycled), hanging for
    /// `hang` when told to. A parcel is `SHIPPED` at its second question and
    /// `DELIVERED` at its third.
    pub fn start(faults: Vec<Fault>, hang: Duration) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let shared = web::Data::from(Arc::clone(&state));
        let config = web::Data::new(Config { faults, hang });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .app_data(config.clone())
                .route("/api/shipments", web::post().to(ship))
                .route("/api/shipments/{tracking}", web::get().to(track))
        })
        .workers(2)
        .shutdown_timeout(0)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self { url, state, handle }
    }

    /// Shipments created per idempotency key.
    pub fn created(&self) -> HashMap<String, usize> {
        self.state.lock().expect("state").created.clone()
    }
}

impl Drop for CountingWarehouse {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn fault(state: &Mutex<State>, config: &Config) -> Option<HttpResponse> {
    let fault = {
        let mut state = state.lock().expect("state");
        state.requests += 1;
        config.faults[(state.requests - 1) % config.faults.len().max(1)]
    };
    match fault {
        Fault::None => None,
        Fault::ServerError => Some(HttpResponse::InternalServerError().body("down")),
        Fault::Garbage => Some(HttpResponse::Ok().body("{not json")),
        Fault::Hang => {
            actix_web::rt::time::sleep(config.hang).await;
            Some(HttpResponse::InternalServerError().body("late"))
        }
    }
}

async fn ship(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<State>>,
    config: web::Data<Config>,
) -> HttpResponse {
    if let Some(faulty) = fault(&state, &config).await {
        return faulty;
    }
    let Some(key) = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return HttpResponse::BadRequest().body("no key");
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().body("bad body");
    };
    let mut state = state.lock().expect("state");
    if let Some((tracking, earlier)) = state.shipments.get(&key) {
        if *earlier != request {
            return HttpResponse::UnprocessableEntity().body("key reused");
        }
        return HttpResponse::Ok().json(json!({"tracking": tracking, "status": "ACCEPTED"}));
    }
    let tracking = format!("T{}", state.shipments.len() + 1);
    state
        .shipments
        .insert(key.clone(), (tracking.clone(), request));
    *state.created.entry(key).or_default() += 1;
    HttpResponse::Created().json(json!({"tracking": tracking, "status": "ACCEPTED"}))
}

async fn track(
    tracking: web::Path<String>,
    state: web::Data<Mutex<State>>,
    config: web::Data<Config>,
) -> HttpResponse {
    if let Some(faulty) = fault(&state, &config).await {
        return faulty;
    }
    let mut state = state.lock().expect("state");
    let asked = state.asked.entry(tracking.clone()).or_default();
    *asked += 1;
    let status = match *asked {
        1 => "ACCEPTED",
        2 => "SHIPPED",
        _ => "DELIVERED",
    };
    HttpResponse::Ok().json(json!({"tracking": tracking.into_inner(), "status": status}))
}
