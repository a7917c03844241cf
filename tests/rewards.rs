//! The rewards catalogue: the operator's endpoints and what shoppers see.

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend, TestApp, ADMIN_TOKEN};

crate::on_both_backends!(
    the_operator_creates_changes_and_lists_rewards,
    stock_moves_by_deltas_under_concurrency_and_never_below_zero,
    bad_rewards_are_refused_with_400_and_change_nothing,
);

async fn admin_send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn create(app: &TestApp, body: &Value) -> reqwest::Response {
    admin_send(app, reqwest::Method::POST, "/api/admin/rewards", body).await
}

async fn patch(app: &TestApp, sku: &str, body: &Value) -> reqwest::Response {
    admin_send(
        app,
        reqwest::Method::PATCH,
        &format!("/api/admin/rewards/{sku}"),
        body,
    )
    .await
}

async fn the_operator_creates_changes_and_lists_rewards(backend: Backend) {
    let app = spawn_app(backend).await;
    let shopper = app.register_user().await;
    let none = app.get("/api/rewards", Some(&shopper.token)).await;
    assert_eq!(none.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/rewards", None).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let shampoo =
        json!({"sku": "shampoo-500", "title": "Shampoo, 500 ml", "price": 2000, "stock": 100});
    let created = create(&app, &shampoo).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(
        created.json::<Value>().await.unwrap(),
        json!({"sku": "shampoo-500", "title": "Shampoo, 500 ml", "price": 2000, "stock": 100, "active": true})
    );
    assert_eq!(create(&app, &shampoo).await.status(), StatusCode::CONFLICT);
    let mug = json!({"sku": "Mug_1.0", "title": "Кружка\n«Gopher»", "price": 149.99, "stock": 0});
    assert_eq!(create(&app, &mug).await.status(), StatusCode::CREATED);

    let changed = patch(
        &app,
        "shampoo-500",
        &json!({"price": 1999.5, "stock_delta": -30}),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(
        changed.json::<Value>().await.unwrap(),
        json!({"sku": "shampoo-500", "title": "Shampoo, 500 ml", "price": 1999.5, "stock": 70, "active": true})
    );
    let refused = patch(
        &app,
        "shampoo-500",
        &json!({"stock_delta": -71, "title": "Gone"}),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(
        patch(&app, "no-such", &json!({"active": false}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        patch(&app, &"x".repeat(300), &json!({"active": false}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let hidden = patch(&app, "Mug_1.0", &json!({"active": false})).await;
    assert_eq!(hidden.status(), StatusCode::OK);

    let all = app.admin_json("/api/admin/rewards").await;
    assert_eq!(
        all,
        json!([
            {"sku": "Mug_1.0", "title": "Кружка\n«Gopher»", "price": 149.99, "stock": 0, "active": false},
            {"sku": "shampoo-500", "title": "Shampoo, 500 ml", "price": 1999.5, "stock": 70, "active": true},
        ])
    );
    let offered: Value = app
        .get("/api/rewards", Some(&shopper.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        offered,
        json!([{"sku": "shampoo-500", "title": "Shampoo, 500 ml", "price": 1999.5, "stock": 70}])
    );
    // A shopper is no operator.
    let forged = app
        .client
        .post(format!("{}/api/admin/rewards", app.address))
        .bearer_auth(&shopper.token)
        .body(json!({"sku": "free", "title": "Free", "price": 1, "stock": 1}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    // Each change is an event, with the reward as it became.
    let events = crate::helpers::eventually(std::time::Duration::from_secs(5), || async {
        let changes: Vec<Value> = app
            .all_events()
            .await
            .into_iter()
            .filter(|e| e["type"] == "reward.changed")
            .map(|e| e["data"].clone())
            .collect();
        (changes.len() >= 4).then_some(changes)
    })
    .await
    .expect("four reward.changed events");
    assert_eq!(events.len(), 4, "a refused change writes no event");
    assert_eq!(events[2]["stock"], json!(70));
    assert_eq!(events[3]["active"], json!(false));
}

async fn stock_moves_by_deltas_under_concurrency_and_never_below_zero(backend: Backend) {
    let app = spawn_app(backend).await;
    let reward = json!({"sku": "cap", "title": "Cap", "price": 10, "stock": 10});
    assert_eq!(create(&app, &reward).await.status(), StatusCode::CREATED);
    let (plus, minus) = (json!({"stock_delta": 1}), json!({"stock_delta": -1}));
    let restocks = (0..50).map(|_| patch(&app, "cap", &plus));
    assert!(join_all(restocks)
        .await
        .iter()
        .all(|r| r.status() == StatusCode::OK));
    let takes = (0..100).map(|_| patch(&app, "cap", &minus));
    let statuses: Vec<StatusCode> = join_all(takes).await.iter().map(|r| r.status()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        60
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        40
    );
    assert_eq!(
        app.admin_json("/api/admin/rewards").await[0]["stock"],
        json!(0)
    );
}

async fn bad_rewards_are_refused_with_400_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let good = json!({"sku": "ok", "title": "Fine", "price": 5, "stock": 1});
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let mut bodies = vec![
        with("sku", json!("")),
        with("sku", json!("x".repeat(65))),
        with("sku", json!("has space")),
        with("sku", json!("café")),
        with("sku", json!(7)),
        with("title", json!("")),
        with("title", json!("t".repeat(201))),
        with("title", json!("bell\u{7}")),
        with("price", json!(0)),
        with("price", json!(-1)),
        with("price", json!(1.001)),
        with("price", json!("5")),
        with("stock", json!(-1)),
        with("stock", json!(1.5)),
        with("stock", json!("3")),
        with("stock", json!(1_000_000_001)),
        with("colour", json!("red")),
    ];
    for field in ["sku", "title", "price", "stock"] {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(field);
        bodies.push(body);
    }
    for body in &bodies {
        let response = create(&app, body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        assert!(
            !response.text().await.unwrap().is_empty(),
            "{body}: a reason"
        );
    }
    assert_eq!(
        app.admin_get("/api/admin/rewards").await.status(),
        StatusCode::NO_CONTENT,
        "nothing was created"
    );
    assert_eq!(create(&app, &good).await.status(), StatusCode::CREATED);
    for body in [
        json!({}),
        json!({"stock_delta": 1.5}),
        json!({"stock_delta": "1"}),
        json!({"stock_delta": 1_000_000_001}),
        json!({"price": 0}),
        json!({"title": ""}),
        json!({"active": "no"}),
        json!({"sku": "renamed"}),
    ] {
        let response = patch(&app, "ok", &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    // The body is judged before the sku: 400 wins over 404.
    assert_eq!(
        patch(&app, "missing", &json!({})).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.admin_json("/api/admin/rewards").await,
        json!([{"sku": "ok", "title": "Fine", "price": 5, "stock": 1, "active": true}])
    );
}
