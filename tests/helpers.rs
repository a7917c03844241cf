//! Spawning the real service over a fresh database (SQLite or PostgreSQL) on a random
//! port, a real accrual system beside it, and typed helpers to talk to them over HTTP.

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use clap::Parser;
use gophermart::emulator::{self, EmulatorSettings};
use gophermart::{Application, Settings};
use reqwest::{Response, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{json, Value};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file in the temp directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server of `TEST_POSTGRES_URL`.
    Postgres,
}

/// Generates one `#[actix_web::test]` per backend for each named `async fn(Backend)`.
/// PostgreSQL tests skip (with a note) when no server is reachable, except under
/// `CI=true`, where they fail instead.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    if $crate::helpers::postgres_available() {
                        super::$name($crate::helpers::Backend::Postgres).await
                    }
                }
            )+
        }
    };
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Whether PostgreSQL tests should run. Panics under `CI=true` when the server is down.
pub fn postgres_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    let available = *AVAILABLE.get_or_init(|| {
        let url = postgres_admin_url();
        let host_port = url
            .split('@')
            .next_back()
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("127.0.0.1:5432")
            .to_owned();
        let host_port = if host_port.contains(':') {
            host_port
        } else {
            format!("{host_port}:5432")
        };
        std::net::ToSocketAddrs::to_socket_addrs(&host_port)
            .ok()
            .and_then(|mut addrs| addrs.next())
            .is_some_and(|addr| {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
            })
    });
    if !available {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "PostgreSQL is not reachable at {} under CI",
                postgres_admin_url()
            );
        }
        eprintln!(
            "skipped: PostgreSQL not reachable at {}",
            postgres_admin_url()
        );
    }
    available
}

/// Whether the tests of the event relay can run: a NATS server with JetStream at
/// `127.0.0.1:4222` and the `nats-server` binary for private servers. Panics under
/// `CI=true` when either is missing; elsewhere the tests say `skipped` and pass.
pub fn nats_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    let available = *AVAILABLE.get_or_init(|| {
        let reachable = std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], 4222).into(),
            Duration::from_secs(2),
        )
        .is_ok();
        reachable && nats_server_binary().is_some()
    });
    if !available {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("NATS (127.0.0.1:4222 and the nats-server binary) is required under CI");
        }
        eprintln!("skipped: NATS not reachable at 127.0.0.1:4222 or nats-server not installed");
    }
    available
}

/// The `nats-server` binary, where installed.
pub fn nats_server_binary() -> Option<&'static str> {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|path| std::path::Path::new(path).exists())
}

/// A fresh, empty database that is removed when dropped.
pub struct TestDb {
    /// The URL the service connects with.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Database { admin: String, name: String },
}

impl TestDb {
    /// Creates a fresh database.
    pub async fn create(backend: Backend) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("gophermart-test-{id}.db"));
                Self {
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    cleanup: Cleanup::File(path),
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("gophermart_test_{id}");
                let conn = Database::connect(&admin)
                    .await
                    .expect("connect to PostgreSQL");
                conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create a test database");
                let _ = conn.close().await;
                let base = admin
                    .rsplit_once('/')
                    .map_or(admin.as_str(), |(base, _)| base);
                Self {
                    url: format!("{base}/{name}"),
                    cleanup: Cleanup::Database { admin, name },
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm", ".lock"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            Cleanup::Database { admin, name } => {
                let (admin, name) = (admin.clone(), name.clone());
                // Drop runs inside the test's runtime; a thread of its own may block.
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime");
                    runtime.block_on(async {
                        if let Ok(conn) = Database::connect(&admin).await {
                            let _ = conn
                                .execute_unprepared(&format!(
                                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                                ))
                                .await;
                            let _ = conn.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// A running accrual emulator on a random port.
pub struct TestAccrual {
    /// `http://127.0.0.1:port`.
    pub url: String,
    client: reqwest::Client,
    handle: ServerHandle,
}

impl TestAccrual {
    /// Starts an emulator whose orders are final at once, without a rate limit.
    pub fn instant() -> Self {
        Self::start(0, Duration::ZERO)
    }

    /// Starts an emulator with the given limit and processing delay.
    pub fn start(rate_limit: u32, processing_delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("local address").port();
        let server = emulator::run(
            listener,
            EmulatorSettings {
                rate_limit,
                processing_delay,
                stop_on_signals: false,
            },
        )
        .expect("start the emulator");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            handle,
        }
    }

    /// Registers a reward rule.
    pub async fn add_rule(&self, pattern: &str, reward: Value, kind: &str) {
        let response = self
            .client
            .post(format!("{}/api/goods", self.url))
            .json(&json!({"match": pattern, "reward": reward, "reward_type": kind}))
            .send()
            .await
            .expect("register a rule");
        assert_eq!(response.status(), StatusCode::OK, "rule {pattern}");
    }

    /// Registers an order with its goods (`[(description, price)]`).
    pub async fn add_order(&self, number: &str, goods: &[(&str, Value)]) {
        let goods: Vec<Value> = goods
            .iter()
            .map(|(description, price)| json!({"description": description, "price": price}))
            .collect();
        let response = self
            .client
            .post(format!("{}/api/orders", self.url))
            .json(&json!({"order": number, "goods": goods}))
            .send()
            .await
            .expect("register an order");
        assert_eq!(response.status(), StatusCode::ACCEPTED, "order {number}");
    }

    /// Registers an order that earns exactly `points` (a JSON number, e.g. `json!(12.5)`).
    pub async fn add_order_worth(&self, number: &str, points: Value) {
        let pattern = format!("good-{}", uuid::Uuid::new_v4().simple());
        self.add_rule(&pattern, points, "pt").await;
        self.add_order(number, &[(pattern.as_str(), json!(1))])
            .await;
    }
}

impl Drop for TestAccrual {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// A registered user and their token.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// The login.
    pub login: String,
    /// The password.
    pub password: String,
    /// The bearer token.
    pub token: String,
}

/// The service under test.
pub struct TestApp {
    /// `http://127.0.0.1:port`.
    pub address: String,
    /// A client without a cookie store.
    pub client: reqwest::Client,
    /// The accrual emulator it asks, when the test did not bring its own server.
    pub accrual: Option<TestAccrual>,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The database; dropped after the server.
    db: Option<TestDb>,
}

/// The operator's token of every test server.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// The shop checkout's token of every test server.
pub const SHOP_TOKEN: &str = "test-shop-token-0123456789";

/// The arguments every test server gets: random port, fast bcrypt, and no rate limits on
/// sign-ins and uploads (tests register and upload in bulk; the limits have tests of
/// their own).
pub fn base_args(db: &TestDb, accrual_url: &str) -> Vec<String> {
    [
        "gophermart",
        "-a",
        "127.0.0.1:0",
        "-d",
        &db.url,
        "-r",
        accrual_url,
        "--bcrypt-cost",
        "4",
        "--accrual-retry-min",
        "20ms",
        "--accrual-retry-max",
        "200ms",
        "--accrual-unknown-retry-max",
        "500ms",
        "--token-secret",
        "test-secret-test-secret-test-secret",
        "--auth-rate-per-ip",
        "0",
        "--auth-rate-per-login",
        "0",
        "--upload-rate-per-user",
        "0",
        "--admin-token",
        ADMIN_TOKEN,
        "--shop-token",
        SHOP_TOKEN,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Starts the service over a fresh database with an instant accrual emulator.
pub async fn spawn_app(backend: Backend) -> TestApp {
    let accrual = TestAccrual::instant();
    let db = TestDb::create(backend).await;
    let args = base_args(&db, &accrual.url);
    spawn_app_with(db, args, Some(accrual)).await
}

/// Starts the service over a fresh database with an instant emulator, `flags` overriding
/// `base_args`.
pub async fn spawn_app_flagged(backend: Backend, flags: &[(&str, &str)]) -> TestApp {
    let accrual = TestAccrual::instant();
    let db = TestDb::create(backend).await;
    let args = with_flags(base_args(&db, &accrual.url), flags);
    spawn_app_with(db, args, Some(accrual)).await
}

/// Starts the service over a fresh database asking the accrual system at `accrual_url`,
/// `flags` overriding `base_args`.
pub async fn spawn_app_asking(
    backend: Backend,
    accrual_url: &str,
    flags: &[(&str, &str)],
) -> TestApp {
    let db = TestDb::create(backend).await;
    let args = with_flags(base_args(&db, accrual_url), flags);
    spawn_app_with(db, args, None).await
}

/// Starts the service with explicit arguments.
pub async fn spawn_app_with(
    db: TestDb,
    args: Vec<String>,
    accrual: Option<TestAccrual>,
) -> TestApp {
    let settings = Settings::try_parse_from(args).expect("valid test settings");
    // The service runs in an actix System of its own, on its own thread, as in
    // production: stopping it drains its actors before its runtime goes away, whatever
    // the test's own runtime is doing.
    let (started, ready) = tokio::sync::oneshot::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            match Application::build(settings).await {
                Ok(app) => {
                    let app = app.stop_on_signals(false);
                    let _ = started.send(Ok((app.port(), app.handle())));
                    let _ = app.run_until_stopped().await;
                }
                Err(error) => {
                    let _ = started.send(Err(format!("{error:#}")));
                }
            }
        });
    });
    let (port, handle) = ready
        .await
        .expect("the app thread reports")
        .unwrap_or_else(|error| panic!("build the app: {error}"));
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client"),
        accrual,
        handle,
        thread: Some(thread),
        db: Some(db),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sending the stop command needs no polling; then wait for the app to wind down.
        drop(self.handle.stop(true));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl TestApp {
    /// The URL of the database the app runs on.
    pub fn db_url(&self) -> &str {
        self.db.as_ref().map_or("", |db| db.url.as_str())
    }

    /// Stops the server gracefully and hands back its database for a restart.
    pub async fn stop(mut self) -> TestDb {
        self.handle.stop(true).await;
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .expect("join the app thread")
                .expect("the app thread ended cleanly");
        }
        self.db.take().expect("the database is still there")
    }

    /// The emulator this app asks.
    pub fn emulator(&self) -> &TestAccrual {
        self.accrual
            .as_ref()
            .expect("this app runs with an emulator")
    }

    /// `POST /api/user/register` with a raw JSON body.
    pub async fn post_register(&self, body: &Value) -> Response {
        self.post_raw(
            "/api/user/register",
            None,
            body.to_string().into_bytes(),
            &[],
        )
        .await
    }

    /// `POST /api/user/login` with a raw JSON body.
    pub async fn post_login(&self, body: &Value) -> Response {
        self.post_raw("/api/user/login", None, body.to_string().into_bytes(), &[])
            .await
    }

    /// Registers a fresh user.
    pub async fn register_user(&self) -> TestUser {
        let login = format!("user-{}", uuid::Uuid::new_v4().simple());
        let password = "correct horse battery staple".to_owned();
        let response = self
            .post_register(&json!({"login": login, "password": password}))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        TestUser {
            token: bearer(&response).expect("a bearer token"),
            login,
            password,
        }
    }

    /// `POST /api/user/orders` with a text body.
    pub async fn post_order(&self, user: &TestUser, number: &str) -> Response {
        self.post_raw(
            "/api/user/orders",
            Some(&user.token),
            number.as_bytes().to_vec(),
            &[("Content-Type", "text/plain")],
        )
        .await
    }

    /// `GET /api/user/orders`.
    pub async fn get_orders(&self, user: &TestUser) -> Response {
        self.get("/api/user/orders", Some(&user.token)).await
    }

    /// `GET /api/user/balance`.
    pub async fn get_balance(&self, user: &TestUser) -> Response {
        self.get("/api/user/balance", Some(&user.token)).await
    }

    /// The balance as `(current, withdrawn)` in the exact text the service wrote.
    pub async fn balance(&self, user: &TestUser) -> (String, String) {
        let response = self.get_balance(user).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("balance JSON");
        (body["current"].to_string(), body["withdrawn"].to_string())
    }

    /// `POST /api/user/balance/withdraw` with a JSON body.
    pub async fn post_withdraw(&self, user: &TestUser, body: &Value) -> Response {
        self.post_raw(
            "/api/user/balance/withdraw",
            Some(&user.token),
            body.to_string().into_bytes(),
            &[("Content-Type", "application/json")],
        )
        .await
    }

    /// `GET /api/user/withdrawals`.
    pub async fn get_withdrawals(&self, user: &TestUser) -> Response {
        self.get("/api/user/withdrawals", Some(&user.token)).await
    }

    /// A GET of an operator endpoint with the operator's token.
    pub async fn admin_get(&self, path: &str) -> Response {
        self.get(path, Some(ADMIN_TOKEN)).await
    }

    /// A `200` JSON answer of an operator endpoint.
    pub async fn admin_json(&self, path: &str) -> Value {
        let response = self.admin_get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.expect("JSON")
    }

    /// The whole event feed, in `seq` order.
    pub async fn all_events(&self) -> Vec<Value> {
        let mut events: Vec<Value> = Vec::new();
        loop {
            let after = events.last().map_or(0, |e| e["seq"].as_i64().unwrap());
            let response = self
                .admin_get(&format!("/api/admin/events?after={after}&limit=1000"))
                .await;
            if response.status() == StatusCode::NO_CONTENT {
                return events;
            }
            assert_eq!(response.status(), StatusCode::OK);
            let page: Vec<Value> = response.json().await.expect("events JSON");
            events.extend(page);
        }
    }

    /// A GET with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("GET reaches the server")
    }

    /// A POST of raw bytes with an optional bearer token and extra headers.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("POST reaches the server")
    }

    /// Gives `user` exactly `points` through the real pipeline: an order worth that much
    /// in the emulator, uploaded and waited for until credited.
    pub async fn fund(&self, user: &TestUser, points: Value) -> String {
        let number = order_number();
        self.emulator().add_order_worth(&number, points).await;
        assert_eq!(
            self.post_order(user, &number).await.status(),
            StatusCode::ACCEPTED
        );
        self.wait_for_status(user, &number, "PROCESSED").await;
        number
    }

    /// Polls the order list until `number` has `status`.
    pub async fn wait_for_status(&self, user: &TestUser, number: &str, status: &str) -> Value {
        eventually(Duration::from_secs(15), || async {
            let response = self.get_orders(user).await;
            if response.status() != StatusCode::OK {
                return None;
            }
            let orders: Vec<Value> = response.json().await.ok()?;
            orders
                .into_iter()
                .find(|o| o["number"] == number && o["status"] == status)
        })
        .await
        .unwrap_or_else(|| panic!("order {number} did not become {status}"))
    }
}

/// The bearer token of a sign-in response.
pub fn bearer(response: &Response) -> Option<String> {
    response
        .headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

/// Polls `probe` until it yields something or `deadline` passes.
pub async fn eventually<T, F, Fut>(deadline: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A fresh random order number that passes the Luhn check.
pub fn order_number() -> String {
    let seed = uuid::Uuid::new_v4().as_u128();
    let body = format!("{}", seed % 10u128.pow(15) + 10u128.pow(15));
    with_luhn_digit(&body)
}

/// Appends the Luhn check digit to `body`.
pub fn with_luhn_digit(body: &str) -> String {
    for check in 0..10 {
        let candidate = format!("{body}{check}");
        if gophermart_actors::domain::luhn_valid(&candidate) {
            return candidate;
        }
    }
    unreachable!("one of ten check digits always fits")
}

/// [`with_flag`] for each pair.
pub fn with_flags(mut args: Vec<String>, flags: &[(&str, &str)]) -> Vec<String> {
    for (flag, value) in flags {
        args = with_flag(args, flag, value);
    }
    args
}

/// Sets `flag` to `value` in `args`: replaces the value when the flag is there (clap
/// refuses a single-value flag given twice), appends the pair otherwise.
pub fn with_flag(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    match args.iter().position(|arg| arg == flag) {
        Some(at) if at + 1 < args.len() => args[at + 1] = value.to_owned(),
        _ => args.extend([flag.to_owned(), value.to_owned()]),
    }
    args
}
