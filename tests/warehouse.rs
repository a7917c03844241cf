//! Black-box tests of the fulfilment-service emulator over real HTTP on 127.0.0.1.

use std::net::TcpListener;
use std::time::Duration;

use gophermart::warehouse::{run, WarehouseSettings};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

/// A running emulator and a client for it.
struct TestWarehouse {
    base: String,
    client: reqwest::Client,
}

fn spawn_warehouse(shipping_delay: Duration, fail_rate: f64) -> TestWarehouse {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let settings = WarehouseSettings {
        shipping_delay,
        fail_rate,
        stop_on_signals: false,
    };
    actix_web::rt::spawn(run(listener, settings).unwrap());
    TestWarehouse {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
    }
}

fn shipment(redemption: &str, sku: &str, quantity: u32) -> Value {
    json!({"redemption": redemption, "sku": sku, "quantity": quantity, "address": "1 Gopher Lane"})
}

impl TestWarehouse {
    async fn ship(&self, key: Option<&str>, body: &Value) -> Response {
        let mut request = self
            .client
            .post(format!("{}/api/shipments", self.base))
            .body(body.to_string());
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    async fn track(&self, tracking: &str) -> Response {
        self.client
            .get(format!("{}/api/shipments/{tracking}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn set_stock(&self, sku: &str, quantity: u64) -> StatusCode {
        self.client
            .post(format!("{}/api/stock", self.base))
            .body(json!({"sku": sku, "quantity": quantity}).to_string())
            .send()
            .await
            .unwrap()
            .status()
    }
}

#[actix_web::test]
async fn a_shipment_is_created_once_per_key() {
    let warehouse = spawn_warehouse(Duration::from_secs(60), 0.0);
    let body = shipment("r-1", "shampoo-500", 2);
    let first = warehouse.ship(Some("r-1"), &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["status"], "ACCEPTED");
    let tracking = first["tracking"].as_str().unwrap().to_owned();
    assert!(
        tracking.starts_with("TRK") && tracking.len() == 15,
        "{tracking}"
    );

    let again = warehouse.ship(Some("r-1"), &body).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        first,
        "the same answer"
    );
    let other = warehouse
        .ship(Some("r-1"), &shipment("r-1", "shampoo-500", 3))
        .await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let second = warehouse.ship(Some("r-2"), &body).await;
    assert_eq!(second.status(), StatusCode::CREATED);
    assert_ne!(
        second.json::<Value>().await.unwrap()["tracking"],
        json!(tracking)
    );
}

#[actix_web::test]
async fn bad_shipment_requests_are_400() {
    let warehouse = spawn_warehouse(Duration::from_secs(60), 0.0);
    let good = shipment("r-1", "cap", 1);
    assert_eq!(
        warehouse.ship(None, &good).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        warehouse.ship(Some(&"k".repeat(129)), &good).await.status(),
        StatusCode::BAD_REQUEST
    );
    for body in [
        shipment("r-1", "cap", 0),
        shipment("", "cap", 1),
        json!({"redemption": "r-1", "sku": "cap", "quantity": -1, "address": "x"}),
        json!({"redemption": "r-1", "sku": "cap", "quantity": 1}),
        json!({"redemption": "r-1", "sku": "cap", "quantity": 1, "address": "x", "extra": 1}),
        json!([1, 2]),
    ] {
        let response = warehouse.ship(Some("k"), &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    // None of them was stored: the key is still free.
    assert_eq!(
        warehouse.ship(Some("k"), &good).await.status(),
        StatusCode::CREATED
    );
}

#[actix_web::test]
async fn a_parcel_goes_accepted_shipped_delivered_over_the_delay() {
    let warehouse = spawn_warehouse(Duration::from_millis(600), 0.0);
    let created: Value = warehouse
        .ship(Some("r-1"), &shipment("r-1", "cap", 1))
        .await
        .json()
        .await
        .unwrap();
    let tracking = created["tracking"].as_str().unwrap().to_owned();
    let mut seen: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while seen.last().map(String::as_str) != Some("DELIVERED") {
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered: {seen:?}"
        );
        let status: Value = warehouse.track(&tracking).await.json().await.unwrap();
        let status = status["status"].as_str().unwrap().to_owned();
        if seen.last() != Some(&status) {
            seen.push(status);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, ["ACCEPTED", "SHIPPED", "DELIVERED"]);
    assert_eq!(
        warehouse.track("TRKUNKNOWN").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn the_warehouse_stock_refuses_what_it_cannot_ship() {
    let warehouse = spawn_warehouse(Duration::from_secs(60), 0.0);
    assert_eq!(warehouse.set_stock("cap", 3).await, StatusCode::OK);
    assert_eq!(
        warehouse
            .ship(Some("a"), &shipment("a", "cap", 2))
            .await
            .status(),
        StatusCode::CREATED
    );
    let refused = warehouse.ship(Some("b"), &shipment("b", "cap", 2)).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(refused.text().await.unwrap().contains("stock"));
    assert_eq!(
        warehouse
            .ship(Some("c"), &shipment("c", "cap", 1))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        warehouse
            .ship(Some("d"), &shipment("d", "mug", 1000))
            .await
            .status(),
        StatusCode::CREATED,
        "a sku never stocked is unlimited"
    );
}

#[actix_web::test]
async fn the_fail_rate_answers_500_and_stores_nothing() {
    let broken = spawn_warehouse(Duration::from_secs(60), 1.0);
    assert_eq!(
        broken
            .ship(Some("a"), &shipment("a", "cap", 1))
            .await
            .status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let flaky = spawn_warehouse(Duration::from_secs(60), 0.5);
    let mut statuses = Vec::new();
    for _ in 0..60 {
        statuses.push(
            flaky
                .ship(Some("k"), &shipment("k", "cap", 1))
                .await
                .status(),
        );
    }
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let failed = statuses
        .iter()
        .filter(|s| **s == StatusCode::INTERNAL_SERVER_ERROR)
        .count();
    let repeated = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(
        created, 1,
        "one shipment, whatever failed around it: {statuses:?}"
    );
    assert!(failed > 0 && repeated > 0, "{statuses:?}");
}
