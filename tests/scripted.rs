//! A scripted accrual system: a real HTTP server that answers `GET …/api/orders/{number}`
//! from a per-order script of replies and records every request it gets.
//!
//! Each order has a sequence of replies; the last one repeats once the sequence is used
//! up. Unknown numbers get the default reply (`204`). A reply can also be pinned to the
//! n-th request overall, whatever the order (`on_request`), e.g. "the 6th request gets a
//! `429`". Anything before `/api/orders/` in the path is recorded as `via`, so that two
//! services pointed at `{url}/a` and `{url}/b` can be told apart.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

/// One answer of the scripted server.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    /// The body; `{order}` is replaced by the order number asked about.
    body: String,
    /// How long to wait before answering.
    delay: Duration,
    /// Spaces sent before the body (JSON allows them): an answer of any size.
    padding: usize,
}

impl Reply {
    /// `200` `PROCESSED` with `accrual` (written into the JSON as is, e.g. `"729.98"`).
    pub fn processed(accrual: &str) -> Self {
        Self::ok(format!(
            r#"{{"order":"{{order}}","status":"PROCESSED","accrual":{accrual}}}"#
        ))
    }

    /// `200` with a status and no accrual: `REGISTERED`, `PROCESSING`, `INVALID`, …
    pub fn status(status: &str) -> Self {
        Self::ok(format!(r#"{{"order":"{{order}}","status":"{status}"}}"#))
    }

    /// `204`: the accrual system does not know the order.
    pub fn no_content() -> Self {
        Self::raw(204, "")
    }

    /// `429` with `Retry-After: retry_after` (no header when empty) and the course's body.
    pub fn too_many(retry_after: &str, per_minute: u32) -> Self {
        let mut reply = Self::raw(
            429,
            &format!("No more than {per_minute} requests per minute allowed"),
        );
        if !retry_after.is_empty() {
            reply
                .headers
                .push(("Retry-After".to_owned(), retry_after.to_owned()));
        }
        reply
    }

    /// `500`.
    pub fn server_error() -> Self {
        Self::raw(500, "internal error")
    }

    /// `200` with a body that is not JSON.
    pub fn garbage() -> Self {
        Self::ok("{not json".to_owned())
    }

    /// `302` to `location`.
    pub fn redirect(location: &str) -> Self {
        let mut reply = Self::raw(302, "");
        reply
            .headers
            .push(("Location".to_owned(), location.to_owned()));
        reply
    }

    /// The same reply preceded by `bytes` spaces.
    pub fn padded(self, bytes: usize) -> Self {
        Self {
            padding: bytes,
            ..self
        }
    }

    /// Answers only after `delay` (then `500`): a hanging accrual system.
    pub fn hang(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::server_error()
        }
    }

    fn ok(body: String) -> Self {
        Self {
            body,
            headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
            ..Self::raw(200, "")
        }
    }

    fn raw(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
            delay: Duration::ZERO,
            padding: 0,
        }
    }
}

/// One request the server got.
#[derive(Debug, Clone)]
pub struct Request {
    /// The order number asked about.
    pub order: String,
    /// The path before `/api/orders/` (`""` for the plain URL, `"/a"` for `{url}/a`).
    pub via: String,
    /// When it arrived.
    pub at: Instant,
    /// The status it was answered with.
    pub status: u16,
}

#[derive(Debug)]
struct State {
    /// Per order: its replies and how many of them were used.
    scripts: HashMap<String, (Vec<Reply>, usize)>,
    /// Replies pinned to the n-th request overall (1-based).
    pinned: HashMap<usize, Reply>,
    default: Reply,
    requests: Vec<Request>,
}

/// The running server; stopped when dropped.
pub struct ScriptedAccrual {
    /// `http://127.0.0.1:port`.
    pub url: String,
    state: Arc<Mutex<State>>,
    handle: ServerHandle,
}

impl ScriptedAccrual {
    /// Starts a server on a free port that answers `204` to every order until scripted.
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            scripts: HashMap::new(),
            pinned: HashMap::new(),
            default: Reply::no_content(),
            requests: Vec::new(),
        }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("local address").port();
        let shared = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(answer))
        })
        .workers(1)
        .shutdown_timeout(0)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}"),
            state,
            handle,
        }
    }

    /// Sets (or replaces, at any time) the replies for `order`, starting from the first.
    pub fn script(&self, order: &str, replies: Vec<Reply>) {
        assert!(!replies.is_empty(), "a script needs at least one reply");
        self.lock().scripts.insert(order.to_owned(), (replies, 0));
    }

    /// Answers the `n`-th request overall (1-based) with `reply`, whatever the order. The
    /// order's own script does not advance for it.
    pub fn on_request(&self, n: usize, reply: Reply) {
        self.lock().pinned.insert(n, reply);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// Arrival times of the requests about `order`.
    pub fn times_for(&self, order: &str) -> Vec<Instant> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.order == order)
            .map(|r| r.at)
            .collect()
    }

    /// Waits (up to 10 s) until `order` has been asked about at least `n` times.
    pub async fn wait_for_requests(&self, order: &str, n: usize) -> Option<()> {
        crate::helpers::eventually(Duration::from_secs(10), || async {
            (self.times_for(order).len() >= n).then_some(())
        })
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("scripted state")
    }
}

impl Drop for ScriptedAccrual {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn answer(request: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
    let at = Instant::now();
    let path = request.path().to_owned();
    let Some((via, order)) = path.split_once("/api/orders/") else {
        return HttpResponse::NotFound().body("not an order question");
    };
    let reply = {
        let mut state = state.lock().expect("scripted state");
        let index = state.requests.len() + 1;
        let reply = match state.pinned.remove(&index) {
            Some(reply) => reply,
            None => match state.scripts.get_mut(order) {
                Some((replies, used)) => {
                    let reply = replies[(*used).min(replies.len() - 1)].clone();
                    *used += 1;
                    reply
                }
                None => state.default.clone(),
            },
        };
        state.requests.push(Request {
            order: order.to_owned(),
            via: via.to_owned(),
            at,
            status: reply.status,
        });
        reply
    };
    if !reply.delay.is_zero() {
        actix_web::rt::time::sleep(reply.delay).await;
    }
    let mut response =
        HttpResponse::build(StatusCode::from_u16(reply.status).expect("a valid status"));
    for (name, value) in &reply.headers {
        response.insert_header((name.as_str(), value.as_str()));
    }
    let body = reply.body.replace("{order}", order);
    response.body(format!("{}{body}", " ".repeat(reply.padding)))
}
