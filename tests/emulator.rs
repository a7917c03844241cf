//! Black-box tests of the accrual emulator over real HTTP on 127.0.0.1.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use gophermart::emulator::{run, EmulatorSettings};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

/// A running emulator and a client for it.
struct TestEmulator {
    base: String,
    client: reqwest::Client,
}

/// Starts an emulator on a free port with the given settings.
fn spawn_emulator(rate_limit: u32, processing_delay: Duration) -> TestEmulator {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().unwrap().port();
    let settings = EmulatorSettings {
        rate_limit,
        processing_delay,
        stop_on_signals: false,
    };
    actix_web::rt::spawn(run(listener, settings).expect("start the emulator"));
    TestEmulator {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
    }
}

/// An emulator whose orders are final at once, without a rate limit.
fn spawn_instant() -> TestEmulator {
    spawn_emulator(0, Duration::ZERO)
}

impl TestEmulator {
    async fn post_raw(&self, path: &str, body: &str) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    async fn post_goods(&self, body: Value) -> StatusCode {
        self.post_raw("/api/goods", &body.to_string())
            .await
            .status()
    }

    async fn post_order(&self, body: Value) -> StatusCode {
        self.post_raw("/api/orders", &body.to_string())
            .await
            .status()
    }

    async fn get_order(&self, number: &str) -> Response {
        self.client
            .get(format!("{}/api/orders/{number}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// The raw text of a `200` answer about an order.
    async fn order_text(&self, number: &str) -> String {
        let response = self.get_order(number).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }

    /// The parsed `200` answer about an order.
    async fn order_json(&self, number: &str) -> Value {
        serde_json::from_str(&self.order_text(number).await).unwrap()
    }
}

/// `prefix` followed by its Luhn check digit.
fn luhn(prefix: &str) -> String {
    let sum: u32 = prefix
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            // The check digit will sit at position 0, so the prefix's last digit is doubled.
            if i % 2 == 0 {
                (d * 2) / 10 + (d * 2) % 10
            } else {
                d
            }
        })
        .sum();
    format!("{prefix}{}", (10 - sum % 10) % 10)
}

fn order(number: &str, goods: Value) -> Value {
    json!({ "order": number, "goods": goods })
}

#[actix_web::test]
async fn goods_answer_200_then_409_for_the_same_match() {
    let app = spawn_instant();
    let rule = json!({"match": "Bork", "reward": 10, "reward_type": "%"});
    assert_eq!(app.post_goods(rule.clone()).await, StatusCode::OK);
    assert_eq!(app.post_goods(rule).await, StatusCode::CONFLICT);
    let other = json!({"match": "Bork", "reward": 3, "reward_type": "pt"});
    assert_eq!(app.post_goods(other).await, StatusCode::CONFLICT);
}

#[actix_web::test]
async fn goods_refuse_malformed_rules_with_400() {
    let app = spawn_instant();
    for body in [
        json!({"match": "Bork", "reward": "10", "reward_type": "%"}),
        json!({"match": "Bork", "reward": 0, "reward_type": "%"}),
        json!({"match": "Bork", "reward": -1, "reward_type": "pt"}),
        json!({"match": "Bork", "reward": 10, "reward_type": "points"}),
        json!({"match": "", "reward": 10, "reward_type": "%"}),
        json!({"reward": 10, "reward_type": "%"}),
    ] {
        assert_eq!(
            app.post_goods(body.clone()).await,
            StatusCode::BAD_REQUEST,
            "{body}"
        );
    }
    let garbage = app.post_raw("/api/goods", "{not json").await;
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn bodies_are_read_whatever_the_content_type() {
    let app = spawn_instant();
    let response = app
        .client
        .post(format!("{}/api/goods", app.base))
        .header("Content-Type", "text/plain")
        .body(r#"{"match": "Bork", "reward": 10, "reward_type": "%"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[actix_web::test]
async fn orders_answer_202_then_409_and_400_for_a_bad_luhn() {
    let app = spawn_instant();
    let goods = json!([{"description": "Стул", "price": 7000}]);
    let number = luhn("1234567890");
    assert_eq!(
        app.post_order(order(&number, goods.clone())).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        app.post_order(order(&number, goods.clone())).await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.post_order(order("79927398710", goods.clone())).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.post_order(order("12a4", goods)).await,
        StatusCode::BAD_REQUEST
    );
    let string_price = order(&luhn("42"), json!([{"description": "x", "price": "1"}]));
    assert_eq!(app.post_order(string_price).await, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.post_raw("/api/orders", "[]").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[actix_web::test]
async fn an_order_lists_at_most_1000_goods() {
    let app = spawn_instant();
    let goods = |n: usize| json!(vec![json!({"description": "x", "price": 1}); n]);
    assert_eq!(
        app.post_order(order(&luhn("1000"), goods(1000))).await,
        StatusCode::ACCEPTED
    );
    let too_many = app
        .post_raw(
            "/api/orders",
            &order(&luhn("1001"), goods(1001)).to_string(),
        )
        .await;
    assert_eq!(too_many.status(), StatusCode::BAD_REQUEST);
    assert!(too_many
        .text()
        .await
        .unwrap()
        .contains("at most 1000 goods"));
}

#[actix_web::test]
async fn an_unknown_or_malformed_order_answers_204_with_an_empty_body() {
    let app = spawn_instant();
    for number in [luhn("555"), "abc".to_owned()] {
        let response = app.get_order(&number).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(response.text().await.unwrap().is_empty());
    }
}

#[actix_web::test]
async fn the_bork_example_accrues_exactly_729_98() {
    let app = spawn_instant();
    let rule = json!({"match": "Bork", "reward": 5, "reward_type": "%"});
    assert_eq!(app.post_goods(rule).await, StatusCode::OK);
    let number = luhn("9278923470");
    // Raw text so that 14599.50 reaches the server exactly as written.
    let body = format!(
        r#"{{"order": "{number}", "goods": [{{"description": "Чайник Bork", "price": 14599.50}}]}}"#
    );
    assert_eq!(
        app.post_raw("/api/orders", &body).await.status(),
        StatusCode::ACCEPTED
    );

    let response = app.get_order(&number).await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    assert!(text.contains(r#""accrual":729.98"#), "{text}");
    assert!(text.contains(r#""status":"PROCESSED""#), "{text}");
    assert!(text.contains(&format!(r#""order":"{number}""#)), "{text}");
}

#[actix_web::test]
async fn point_rules_give_fixed_points_per_matching_good() {
    let app = spawn_instant();
    let rule = json!({"match": "Bork", "reward": 42, "reward_type": "pt"});
    assert_eq!(app.post_goods(rule).await, StatusCode::OK);
    let number = luhn("100");
    let goods = json!([
        {"description": "Чайник Bork", "price": 1},
        {"description": "Утюг Bork", "price": 99999},
        {"description": "Стул", "price": 500},
    ]);
    assert_eq!(
        app.post_order(order(&number, goods)).await,
        StatusCode::ACCEPTED
    );
    assert!(app.order_text(&number).await.contains(r#""accrual":84}"#));
}

#[actix_web::test]
async fn every_matching_rule_is_summed_and_rounded_once() {
    let app = spawn_instant();
    for rule in [
        json!({"match": "Bork", "reward": 10, "reward_type": "%"}),
        json!({"match": "Чайник", "reward": 0.5, "reward_type": "pt"}),
        json!({"match": "Утюг", "reward": 0.125, "reward_type": "%"}),
    ] {
        assert_eq!(app.post_goods(rule).await, StatusCode::OK);
    }
    let number = luhn("200");
    // 10% of 1000 + 0.5 + 10% of 10 + 0.125% of 10 = 100 + 0.5 + 1 + 0.0125 = 101.5125
    let goods = json!([
        {"description": "Чайник Bork", "price": 1000},
        {"description": "Утюг Bork", "price": 10},
    ]);
    assert_eq!(
        app.post_order(order(&number, goods)).await,
        StatusCode::ACCEPTED
    );
    let text = app.order_text(&number).await;
    assert!(text.contains(r#""accrual":101.51}"#), "{text}");
}

#[actix_web::test]
async fn a_rule_registered_after_the_order_does_not_apply() {
    let app = spawn_instant();
    let number = luhn("300");
    let goods = json!([{"description": "Чайник Bork", "price": 1000}]);
    assert_eq!(
        app.post_order(order(&number, goods)).await,
        StatusCode::ACCEPTED
    );
    let rule = json!({"match": "Bork", "reward": 10, "reward_type": "%"});
    assert_eq!(app.post_goods(rule).await, StatusCode::OK);
    let view = app.order_json(&number).await;
    assert_eq!(view, json!({"order": number, "status": "PROCESSED"}));
}

#[actix_web::test]
async fn an_order_without_goods_ends_invalid() {
    let app = spawn_instant();
    let number = luhn("400");
    assert_eq!(
        app.post_order(order(&number, json!([]))).await,
        StatusCode::ACCEPTED
    );
    let view = app.order_json(&number).await;
    assert_eq!(view, json!({"order": number, "status": "INVALID"}));
}

#[actix_web::test]
async fn goods_matching_no_rule_are_processed_without_an_accrual() {
    let app = spawn_instant();
    let rule = json!({"match": "Bork", "reward": 10, "reward_type": "%"});
    assert_eq!(app.post_goods(rule).await, StatusCode::OK);
    let number = luhn("500");
    let goods = json!([{"description": "Стул", "price": 7000}]);
    assert_eq!(
        app.post_order(order(&number, goods)).await,
        StatusCode::ACCEPTED
    );
    let view = app.order_json(&number).await;
    assert_eq!(view, json!({"order": number, "status": "PROCESSED"}));
}

#[actix_web::test]
async fn a_total_rounding_to_zero_is_processed_without_an_accrual() {
    let app = spawn_instant();
    let rule = json!({"match": "Bork", "reward": 0.001, "reward_type": "pt"});
    assert_eq!(app.post_goods(rule).await, StatusCode::OK);
    let number = luhn("600");
    let goods = json!([{"description": "Bork", "price": 1}]);
    assert_eq!(
        app.post_order(order(&number, goods)).await,
        StatusCode::ACCEPTED
    );
    let view = app.order_json(&number).await;
    assert_eq!(view, json!({"order": number, "status": "PROCESSED"}));
}

#[actix_web::test]
async fn status_goes_registered_then_processing_then_processed() {
    let delay = Duration::from_millis(400);
    let app = spawn_emulator(0, delay);
    let rule = json!({"match": "Bork", "reward": 42, "reward_type": "pt"});
    assert_eq!(app.post_goods(rule).await, StatusCode::OK);
    let number = luhn("700");
    let started = Instant::now();
    let goods = json!([{"description": "Bork", "price": 1}]);
    assert_eq!(
        app.post_order(order(&number, goods)).await,
        StatusCode::ACCEPTED
    );

    let deadline = started + Duration::from_secs(10);
    let mut seen: Vec<String> = Vec::new();
    let last = loop {
        assert!(
            Instant::now() < deadline,
            "not processed in time; saw {seen:?}"
        );
        let view = app.order_json(&number).await;
        let status = view["status"].as_str().unwrap().to_owned();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "PROCESSED" {
            break view;
        }
        assert!(
            view.get("accrual").is_none(),
            "accrual before processed: {view}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(started.elapsed() >= delay, "processed early");
    assert_eq!(seen, ["REGISTERED", "PROCESSING", "PROCESSED"]);
    assert_eq!(last["accrual"], json!(42));
}

#[actix_web::test]
async fn the_fourth_get_in_a_minute_answers_429_when_the_limit_is_3() {
    let app = spawn_emulator(3, Duration::ZERO);
    let number = luhn("800");
    for _ in 0..3 {
        assert_eq!(
            app.get_order(&number).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    let response = app.get_order(&number).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert_eq!(
        response.text().await.unwrap(),
        "No more than 3 requests per minute allowed"
    );
}

#[actix_web::test]
async fn posts_are_not_rate_limited() {
    let app = spawn_emulator(3, Duration::ZERO);
    for _ in 0..3 {
        assert_eq!(app.get_order("0").await.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(
        app.get_order("0").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    for i in 0..5 {
        let rule = json!({"match": format!("rule {i}"), "reward": 1, "reward_type": "pt"});
        assert_eq!(app.post_goods(rule).await, StatusCode::OK);
        let goods = json!([{"description": "x", "price": 1}]);
        let number = luhn(&format!("90{i}"));
        assert_eq!(
            app.post_order(order(&number, goods)).await,
            StatusCode::ACCEPTED
        );
    }
}
