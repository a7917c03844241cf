//! Redemptions: points for rewards, one commit for stock, charge and shipment request,
//! delivered to a real fulfilment emulator until it answers, followed to the door.

use std::net::TcpListener;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    base_args, eventually, spawn_app_with, with_flags, Backend, TestAccrual, TestApp, TestDb,
    TestUser, ADMIN_TOKEN,
};
use crate::process::ServiceProcess;
use crate::shipping::{CountingWarehouse, Fault};
use gophermart::warehouse::{run, WarehouseSettings};

crate::on_both_backends!(
    a_redemption_charges_takes_stock_and_is_delivered_to_the_door,
    the_same_idempotency_key_charges_once_and_another_body_is_422,
    a_refused_shipment_is_cancelled_and_refunded_with_its_stock,
    bad_redemptions_change_nothing,
    concurrent_redemptions_never_oversell,
    a_shopper_with_points_for_two_of_five_concurrent_redemptions_gets_two,
    transient_failures_are_retried_until_the_parcel_arrives,
    faults_and_hangs_never_cancel_and_every_redemption_ships_once,
    a_kill_9_while_requests_are_delivered_ships_each_redemption_once,
    a_request_made_while_the_warehouse_is_down_is_delivered_after_a_restart,
);

/// A fulfilment emulator on a port of its own.
pub(crate) struct Warehouse {
    pub(crate) url: String,
    client: reqwest::Client,
}

pub(crate) fn warehouse(shipping_delay: Duration, fail_rate: f64) -> Warehouse {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let settings = WarehouseSettings {
        shipping_delay,
        fail_rate,
        stop_on_signals: false,
    };
    actix_web::rt::spawn(run(listener, settings).unwrap());
    Warehouse {
        url,
        client: reqwest::Client::new(),
    }
}

impl Warehouse {
    pub(crate) async fn set_stock(&self, sku: &str, quantity: u64) {
        let response = self
            .client
            .post(format!("{}/api/stock", self.url))
            .body(json!({"sku": sku, "quantity": quantity}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

/// The service asking `fulfilment`, with a fast backoff.
async fn app_shipping_to(backend: Backend, fulfilment: &str) -> TestApp {
    let accrual = TestAccrual::instant();
    let db = TestDb::create(backend).await;
    let args = with_flags(
        base_args(&db, &accrual.url),
        &[
            ("--fulfilment-address", fulfilment),
            ("--fulfilment-retry-min", "20ms"),
            ("--fulfilment-retry-max", "200ms"),
        ],
    );
    spawn_app_with(db, args, Some(accrual)).await
}

async fn add_reward(app: &TestApp, sku: &str, price: Value, stock: i64) {
    let response = app
        .client
        .post(format!("{}/api/admin/rewards", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .body(json!({"sku": sku, "title": sku, "price": price, "stock": stock}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn stock_of(app: &TestApp, sku: &str) -> Value {
    let all = app.admin_json("/api/admin/rewards").await;
    all.as_array()
        .unwrap()
        .iter()
        .find(|r| r["sku"] == sku)
        .unwrap()["stock"]
        .clone()
}

async fn redeem(
    app: &TestApp,
    user: &TestUser,
    key: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key));
    }
    app.post_raw(
        "/api/user/redemptions",
        Some(&user.token),
        body.to_string().into_bytes(),
        &headers,
    )
    .await
}

async fn redemption(app: &TestApp, user: &TestUser, id: &str) -> Value {
    let response = app
        .get(&format!("/api/user/redemptions/{id}"), Some(&user.token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// The statuses of a redemption's timeline, oldest first.
fn timeline(redemption: &Value) -> Vec<&str> {
    redemption["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect()
}

async fn wait_for(app: &TestApp, user: &TestUser, id: &str, status: &str) -> Value {
    eventually(Duration::from_secs(15), || async {
        let found = redemption(app, user, id).await;
        (found["status"] == status).then_some(found)
    })
    .await
    .unwrap_or_else(|| panic!("redemption {id} did not become {status}"))
}

/// The `fulfilment` binary as a child process; killed when dropped.
struct FulfilmentProcess {
    url: String,
    child: std::process::Child,
}

impl FulfilmentProcess {
    async fn start(args: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_fulfilment"))
            .args(["-a", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the fulfilment binary");
        eventually(Duration::from_secs(10), || async move {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        })
        .await
        .expect("the fulfilment binary listens");
        Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
        }
    }
}

impl Drop for FulfilmentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn a_redemption_charges_takes_stock_and_is_delivered_to_the_door(backend: Backend) {
    // End to end against the `fulfilment` binary itself.
    let warehouse = FulfilmentProcess::start(&["--shipping-delay", "300ms"]).await;
    let app = app_shipping_to(backend, &warehouse.url).await;
    add_reward(&app, "shampoo-500", json!(25.5), 5).await;
    let user = app.register_user().await;
    app.fund(&user, json!(100)).await;

    let body = json!({"reward": "shampoo-500", "quantity": 2, "address": "1 Gopher Lane"});
    let response = redeem(&app, &user, None, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["status"], "REQUESTED");
    assert_eq!(created["points"], json!(51));
    assert_eq!(created["reward"], "shampoo-500");
    assert!(created.get("tracking").is_none());
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(app.balance(&user).await, ("49".into(), "0".into()));
    assert_eq!(stock_of(&app, "shampoo-500").await, json!(3));

    let delivered = wait_for(&app, &user, &id, "DELIVERED").await;
    assert_eq!(
        timeline(&delivered),
        ["REQUESTED", "ACCEPTED", "SHIPPED", "DELIVERED"]
    );
    assert!(delivered["tracking"].as_str().unwrap().starts_with("TRK"));
    let list: Value = app
        .get("/api/user/redemptions", Some(&user.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["id"], json!(id));

    let history: Value = app
        .get("/api/user/history?limit=1", Some(&user.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        history[0],
        json!({"id": history[0]["id"], "at": history[0]["at"], "kind": "redemption",
               "amount": -51, "balance": 49, "reference": id})
    );
    let types: Vec<String> = app
        .all_events()
        .await
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("redemption"))
        .map(|e| {
            format!(
                "{} {}",
                e["type"].as_str().unwrap(),
                e["data"]["status"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            "redemption.requested ",
            "redemption.status_changed ACCEPTED",
            "redemption.status_changed SHIPPED",
            "redemption.status_changed DELIVERED"
        ]
    );
    // Another shopper cannot see it.
    let other = app.register_user().await;
    let foreign = app
        .get(&format!("/api/user/redemptions/{id}"), Some(&other.token))
        .await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
}

async fn the_same_idempotency_key_charges_once_and_another_body_is_422(backend: Backend) {
    let warehouse = warehouse(Duration::from_secs(60), 0.0);
    let app = app_shipping_to(backend, &warehouse.url).await;
    add_reward(&app, "cap", json!(10), 100).await;
    let user = app.register_user().await;
    app.fund(&user, json!(100)).await;
    let body = json!({"reward": "cap", "quantity": 1, "address": "here"});
    let replies = join_all((0..5).map(|_| redeem(&app, &user, Some("order-42"), &body))).await;
    let mut ids = Vec::new();
    for reply in replies {
        assert_eq!(reply.status(), StatusCode::CREATED);
        let body: Value = reply.json().await.unwrap();
        assert_eq!(
            body["status"], "REQUESTED",
            "the answer as it was first given"
        );
        ids.push(body["id"].clone());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(app.balance(&user).await, ("90".into(), "0".into()));
    let other_body = json!({"reward": "cap", "quantity": 2, "address": "here"});
    let reused = redeem(&app, &user, Some("order-42"), &other_body).await;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Keys are the shopper's own.
    let someone = app.register_user().await;
    app.fund(&someone, json!(10)).await;
    assert_eq!(
        redeem(&app, &someone, Some("order-42"), &body)
            .await
            .status(),
        StatusCode::CREATED
    );
    for key in ["k".repeat(129), "has space".to_owned(), "ключ".to_owned()] {
        let response = app
            .client
            .post(format!("{}/api/user/redemptions", app.address))
            .bearer_auth(&user.token)
            .header("Idempotency-Key", key.as_bytes())
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{key}");
    }
    assert_eq!(app.balance(&user).await, ("90".into(), "0".into()));
    assert_eq!(stock_of(&app, "cap").await, json!(98));
}

async fn a_refused_shipment_is_cancelled_and_refunded_with_its_stock(backend: Backend) {
    let warehouse = warehouse(Duration::from_secs(60), 0.0);
    warehouse.set_stock("vase", 0).await;
    let app = app_shipping_to(backend, &warehouse.url).await;
    add_reward(&app, "vase", json!(30), 4).await;
    let user = app.register_user().await;
    app.fund(&user, json!(50)).await;
    let body = json!({"reward": "vase", "quantity": 1, "address": "here"});
    let created: Value = redeem(&app, &user, None, &body).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let cancelled = wait_for(&app, &user, &id, "CANCELLED").await;
    assert!(cancelled.get("tracking").is_none());
    assert_eq!(app.balance(&user).await, ("50".into(), "0".into()));
    assert_eq!(stock_of(&app, "vase").await, json!(4));
    let history: Value = app
        .get("/api/user/history", Some(&user.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history[0]["kind"], "refund");
    assert_eq!(history[0]["amount"], json!(30));
    assert_eq!(history[0]["balance"], json!(50));
    assert_eq!(history[1]["kind"], "redemption");
    let refunds = eventually(Duration::from_secs(5), || async {
        let n = app
            .all_events()
            .await
            .iter()
            .filter(|e| e["type"] == "points.refunded")
            .count();
        (n >= 1).then_some(n)
    })
    .await;
    assert_eq!(refunds, Some(1));
    let summary = app.admin_json("/api/admin/stats/summary").await;
    assert_eq!(summary["redemptions"]["CANCELLED"], json!(1));
    assert_eq!(summary["points_redeemed"], json!(30));
    assert_eq!(summary["points_refunded"], json!(30));
    assert_eq!(summary["fulfilment_backlog"], json!(0));
    assert_eq!(
        app.admin_json("/api/admin/audit").await["mismatched"],
        json!([]),
        "balance = ledger"
    );
}

async fn bad_redemptions_change_nothing(backend: Backend) {
    let warehouse = warehouse(Duration::from_secs(60), 0.0);
    let app = app_shipping_to(backend, &warehouse.url).await;
    add_reward(&app, "cap", json!(10), 2).await;
    add_reward(&app, "hidden", json!(1), 2).await;
    let hide = app
        .client
        .patch(format!("{}/api/admin/rewards/hidden", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .body(json!({"active": false}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(hide.status(), StatusCode::OK);
    let user = app.register_user().await;
    app.fund(&user, json!(15)).await;
    let cases = [
        (
            json!({"reward": "cap", "quantity": 0, "address": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"reward": "cap", "quantity": 101, "address": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"reward": "cap", "quantity": 1.5, "address": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"reward": "cap", "quantity": "1", "address": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"reward": "cap", "quantity": 1, "address": " "}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"reward": "cap", "quantity": 1, "address": "a".repeat(1001)}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"reward": "cap", "quantity": 1, "address": "bell\u{7}"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"reward": "cap", "quantity": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"reward": "cap", "quantity": 1, "address": "x", "gift": true}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"reward": "nope", "quantity": 1, "address": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"reward": "hidden", "quantity": 1, "address": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"reward": "cap", "quantity": 3, "address": "x"}),
            StatusCode::CONFLICT,
        ),
        (
            json!({"reward": "cap", "quantity": 2, "address": "x"}),
            StatusCode::PAYMENT_REQUIRED,
        ),
    ];
    for (body, status) in &cases {
        let response = redeem(&app, &user, None, body).await;
        assert_eq!(response.status(), *status, "{body}");
        assert!(
            !response.text().await.unwrap().is_empty(),
            "{body}: a reason"
        );
    }
    assert_eq!(app.balance(&user).await, ("15".into(), "0".into()));
    assert_eq!(stock_of(&app, "cap").await, json!(2));
    let none = app.get("/api/user/redemptions", Some(&user.token)).await;
    assert_eq!(none.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/user/redemptions", None).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Without a fulfilment service, outside demo mode, nothing is charged.
    let accrual = TestAccrual::instant();
    let db = TestDb::create(backend).await;
    let args = base_args(&db, &accrual.url);
    let bare = spawn_app_with(db, args, Some(accrual)).await;
    add_reward(&bare, "cap", json!(1), 1).await;
    let shopper = bare.register_user().await;
    bare.fund(&shopper, json!(5)).await;
    let refused = redeem(
        &bare,
        &shopper,
        None,
        &json!({"reward": "cap", "quantity": 1, "address": "x"}),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("fulfilment not configured"));
    assert_eq!(bare.balance(&shopper).await, ("5".into(), "0".into()));
}

async fn concurrent_redemptions_never_oversell(backend: Backend) {
    let warehouse = warehouse(Duration::from_secs(60), 0.0);
    let app = app_shipping_to(backend, &warehouse.url).await;
    add_reward(&app, "rare", json!(3.5), 10).await;
    let mut users = Vec::new();
    for _ in 0..30 {
        let user = app.register_user().await;
        app.fund(&user, json!(100)).await;
        users.push(user);
    }
    let body = json!({"reward": "rare", "quantity": 1, "address": "x"});
    let attempts = (0..90).map(|i| redeem(&app, &users[i % users.len()], None, &body));
    let statuses: Vec<StatusCode> = join_all(attempts)
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 10, "{statuses:?}");
    assert!(statuses
        .iter()
        .all(|s| [StatusCode::CREATED, StatusCode::CONFLICT].contains(s)));
    assert_eq!(stock_of(&app, "rare").await, json!(0));
    let mut spent_cents = 0;
    for user in &users {
        let (current, _) = app.balance(user).await;
        let current: f64 = current.parse().unwrap();
        spent_cents += 10_000 - (current * 100.0).round() as i64;
    }
    assert_eq!(spent_cents, 3_500, "ten charged, 3.5 points each");
    crate::balance::assert_ledger_matches(&app).await;
    let summary = app.admin_json("/api/admin/stats/summary").await;
    assert_eq!(summary["points_redeemed"], json!(35));
}

async fn a_shopper_with_points_for_two_of_five_concurrent_redemptions_gets_two(backend: Backend) {
    let warehouse = warehouse(Duration::from_secs(60), 0.0);
    let app = app_shipping_to(backend, &warehouse.url).await;
    add_reward(&app, "mug", json!(40), 100).await;
    let user = app.register_user().await;
    app.fund(&user, json!(99.99)).await;
    let body = json!({"reward": "mug", "quantity": 1, "address": "x"});
    let statuses: Vec<StatusCode> = join_all((0..5).map(|_| redeem(&app, &user, None, &body)))
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let short = statuses
        .iter()
        .filter(|s| **s == StatusCode::PAYMENT_REQUIRED)
        .count();
    assert_eq!((created, short), (2, 3), "{statuses:?}");
    assert_eq!(app.balance(&user).await, ("19.99".into(), "0".into()));
    assert_eq!(stock_of(&app, "mug").await, json!(98));
    crate::balance::assert_ledger_matches(&app).await;
}

async fn transient_failures_are_retried_until_the_parcel_arrives(backend: Backend) {
    // Every other request fails; the redemption still ends DELIVERED, shipped once.
    let warehouse = warehouse(Duration::from_millis(200), 0.5);
    let app = app_shipping_to(backend, &warehouse.url).await;
    add_reward(&app, "cap", json!(1), 10).await;
    let user = app.register_user().await;
    app.fund(&user, json!(10)).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let body = json!({"reward": "cap", "quantity": 1, "address": "x"});
        let created: Value = redeem(&app, &user, None, &body).await.json().await.unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let mut trackings = Vec::new();
    for id in &ids {
        let delivered = wait_for(&app, &user, id, "DELIVERED").await;
        trackings.push(delivered["tracking"].clone());
    }
    trackings.sort_by_key(|t| t.to_string());
    trackings.dedup();
    assert_eq!(trackings.len(), 3, "one shipment each");
    assert_eq!(app.balance(&user).await, ("7".into(), "0".into()));
}

async fn a_request_made_while_the_warehouse_is_down_is_delivered_after_a_restart(backend: Backend) {
    // Nothing listens here yet.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = format!("http://127.0.0.1:{port}");
    let app = app_shipping_to(backend, &down).await;
    add_reward(&app, "cap", json!(2), 3).await;
    let user = app.register_user().await;
    app.fund(&user, json!(10)).await;
    let body = json!({"reward": "cap", "quantity": 1, "address": "x"});
    let created: Value = redeem(&app, &user, None, &body).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(redemption(&app, &user, &id).await["status"], "REQUESTED");

    let db = app.stop().await;
    let warehouse = warehouse(Duration::from_millis(100), 0.0);
    let accrual = TestAccrual::instant();
    let args = with_flags(
        base_args(&db, &accrual.url),
        &[
            ("--fulfilment-address", warehouse.url.as_str()),
            ("--fulfilment-retry-min", "20ms"),
        ],
    );
    let app = spawn_app_with(db, args, Some(accrual)).await;
    let delivered = wait_for(&app, &user, &id, "DELIVERED").await;
    let statuses = timeline(&delivered);
    // This warehouse keeps a parcel SHIPPED for 50 ms: on a busy machine the next
    // question may come after that, and the parcel is seen DELIVERED straight away.
    assert!(
        statuses == ["REQUESTED", "ACCEPTED", "SHIPPED", "DELIVERED"]
            || statuses == ["REQUESTED", "ACCEPTED", "DELIVERED"],
        "{statuses:?}"
    );
    assert_eq!(app.balance(&user).await, ("8".into(), "0".into()));
}

async fn faults_and_hangs_never_cancel_and_every_redemption_ships_once(backend: Backend) {
    // Three requests in ten fail: a 500, a garbage body, a hang past the timeout.
    let faults = [
        Fault::None,
        Fault::ServerError,
        Fault::None,
        Fault::None,
        Fault::Garbage,
        Fault::None,
        Fault::None,
        Fault::Hang,
        Fault::None,
        Fault::None,
    ];
    let server = CountingWarehouse::start(faults.to_vec(), Duration::from_millis(1500));
    let accrual = TestAccrual::instant();
    let db = TestDb::create(backend).await;
    let args = with_flags(
        base_args(&db, &accrual.url),
        &[
            ("--fulfilment-address", server.url.as_str()),
            ("--fulfilment-retry-min", "20ms"),
            ("--fulfilment-retry-max", "200ms"),
            ("--fulfilment-timeout", "500ms"),
        ],
    );
    let app = spawn_app_with(db, args, Some(accrual)).await;
    add_reward(&app, "cap", json!(1), 100).await;
    let user = app.register_user().await;
    app.fund(&user, json!(50)).await;
    let mut ids = Vec::new();
    for _ in 0..8 {
        let body = json!({"reward": "cap", "quantity": 1, "address": "x"});
        let created: Value = redeem(&app, &user, None, &body).await.json().await.unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        wait_for(&app, &user, id, "DELIVERED").await;
    }
    let created = server.created();
    assert_eq!(created.len(), ids.len());
    assert!(
        ids.iter().all(|id| created.get(id) == Some(&1)),
        "{created:?}"
    );
    assert_eq!(app.balance(&user).await, ("42".into(), "0".into()));
}

async fn a_kill_9_while_requests_are_delivered_ships_each_redemption_once(backend: Backend) {
    let server = CountingWarehouse::start(vec![Fault::None], Duration::ZERO);
    let accrual = TestAccrual::instant();
    let db = TestDb::create(backend).await;
    let args = with_flags(
        base_args(&db, &accrual.url),
        &[
            ("--fulfilment-address", server.url.as_str()),
            ("--fulfilment-retry-min", "20ms"),
            ("--fulfilment-retry-max", "200ms"),
        ],
    );
    let first = ServiceProcess::start(args.clone()).await;
    let client = reqwest::Client::new();
    let reward = client
        .post(format!("{}/api/admin/rewards", first.address))
        .bearer_auth(ADMIN_TOKEN)
        .body(json!({"sku": "cap", "title": "Cap", "price": 1, "stock": 100}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(reward.status(), StatusCode::CREATED);
    let user = first.register_user().await;
    let order = crate::helpers::order_number();
    accrual.add_order_worth(&order, json!(100)).await;
    first.post_order(&user, &order).await;
    eventually(Duration::from_secs(15), || async {
        let orders = first.orders(&user).await;
        (orders.first()?["status"] == "PROCESSED").then_some(())
    })
    .await
    .expect("funded");
    let mut ids = Vec::new();
    for _ in 0..30 {
        let response = client
            .post(format!("{}/api/user/redemptions", first.address))
            .bearer_auth(&user.token)
            .body(json!({"reward": "cap", "quantity": 1, "address": "x"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let created: Value = response.json().await.unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    // Killed while the dispatcher is still delivering the last of them.
    first.kill();
    let second = ServiceProcess::start(args).await;
    let delivered = eventually(Duration::from_secs(30), || async {
        let list: Vec<Value> = client
            .get(format!("{}/api/user/redemptions", second.address))
            .bearer_auth(&user.token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        list.iter()
            .all(|r| r["status"] == "DELIVERED")
            .then_some(list.len())
    })
    .await
    .expect("every redemption delivered after the restart");
    assert_eq!(delivered, 30);
    let created = server.created();
    assert_eq!(created.len(), 30, "one shipment per redemption");
    assert!(
        ids.iter().all(|id| created.get(id) == Some(&1)),
        "{created:?}"
    );
    assert_eq!(
        second.balance_text(&user).await,
        r#"{"current":70,"withdrawn":0}"#
    );
}
