//! Coupon campaigns: creation with the whole pool of codes, and what shoppers see.

use std::collections::HashSet;

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend, TestApp, ADMIN_TOKEN};

crate::on_both_backends!(
    a_campaign_is_created_with_every_code_of_its_pool,
    bad_campaigns_are_refused_with_400_and_create_nothing,
    shoppers_see_only_open_campaigns,
);

async fn create(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client
        .post(format!("{}/api/admin/campaigns", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

fn spring() -> Value {
    json!({"id": "spring-27", "title": "Spring", "kind": "fixed", "value": 300, "quantity": 5000,
           "per_user": 1, "price": 0, "min_order": 0, "prefix": "SPRING"})
}

async fn codes_of(app: &TestApp, campaign: &str) -> Vec<String> {
    let db = Database::connect(app.db_url()).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT code FROM coupons WHERE campaign_id = '{campaign}' ORDER BY pos"),
        ))
        .await
        .unwrap();
    let codes = rows
        .iter()
        .map(|row| row.try_get::<String>("", "code").unwrap())
        .collect();
    db.close().await.unwrap();
    codes
}

async fn a_campaign_is_created_with_every_code_of_its_pool(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = create(&app, &spring()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["issued"], json!(0));
    assert_eq!(created["redeemed"], json!(0));
    assert_eq!(created["remaining"], json!(5000));
    assert_eq!(created["value"], json!(300));
    assert_eq!(created["kind"], "fixed");
    assert_eq!(create(&app, &spring()).await.status(), StatusCode::CONFLICT);

    let codes = codes_of(&app, "spring-27").await;
    assert_eq!(codes.len(), 5000);
    assert_eq!(
        codes.iter().collect::<HashSet<_>>().len(),
        5000,
        "every code distinct"
    );
    let day = chrono::Utc::now().format("%Y%m%d").to_string();
    let crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    for code in &codes {
        let random = code
            .strip_prefix(&format!("SPRING-{day}-"))
            .unwrap_or_else(|| panic!("{code}"));
        assert_eq!(random.len(), 10, "{code}");
        assert!(random.chars().all(|c| crockford.contains(c)), "{code}");
    }

    let fetched = app.admin_json("/api/admin/campaigns/spring-27").await;
    assert_eq!(fetched, created);
    for path in [
        "/api/admin/campaigns/nope",
        "/api/admin/campaigns/%00",
        "/api/admin/campaigns/..%2F..%2Fetc",
    ] {
        assert_eq!(
            app.admin_get(path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let long = format!("/api/admin/campaigns/{}", "x".repeat(5000));
    assert_eq!(app.admin_get(&long).await.status(), StatusCode::NOT_FOUND);

    let percent = json!({"id": "half", "title": "Half off", "kind": "percent", "value": 12.5,
                         "quantity": 3, "prefix": "HALF", "price": 9.99, "min_order": 100,
                         "starts_at": "2026-01-01T00:00:00+03:00", "ends_at": "2099-01-01T00:00:00Z"});
    let created: Value = create(&app, &percent).await.json().await.unwrap();
    assert_eq!(created["value"], json!(12.5));
    assert_eq!(created["per_user"], json!(1));
    assert_eq!(created["starts_at"], "2025-12-31T21:00:00Z");
    let events = crate::helpers::eventually(std::time::Duration::from_secs(5), || async {
        let created: Vec<Value> = app
            .all_events()
            .await
            .into_iter()
            .filter(|e| e["type"] == "campaign.created")
            .collect();
        (created.len() == 2).then_some(created)
    })
    .await
    .expect("one campaign.created per campaign");
    assert_eq!(events[0]["data"]["id"], "spring-27");
    assert_eq!(events[1]["data"]["quantity"], json!(3));
}

async fn bad_campaigns_are_refused_with_400_and_create_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let with = |field: &str, value: Value| {
        let mut body = spring();
        body[field] = value;
        body
    };
    let mut bodies = vec![
        with("id", json!("")),
        with("id", json!("has space")),
        with("title", json!("")),
        with("kind", json!("bogus")),
        with("value", json!(0)),
        with("value", json!(-5)),
        with("value", json!(1.005)),
        with("value", json!("300")),
        with("quantity", json!(0)),
        with("quantity", json!(1_000_001)),
        with("quantity", json!(2.5)),
        with("per_user", json!(0)),
        with("price", json!(-1)),
        with("price", json!(0.001)),
        with("min_order", json!(-0.01)),
        with("prefix", json!("")),
        with("prefix", json!("lower")),
        with("prefix", json!("A".repeat(17))),
        with("prefix", json!("SPR-ING")),
        with("starts_at", json!("tomorrow")),
        with("colour", json!("red")),
    ];
    let mut percent = spring();
    percent["kind"] = json!("percent");
    percent["value"] = json!(100.01);
    bodies.push(percent);
    let mut backwards = spring();
    backwards["starts_at"] = json!("2027-01-02T00:00:00Z");
    backwards["ends_at"] = json!("2027-01-01T00:00:00Z");
    bodies.push(backwards);
    for field in ["id", "title", "kind", "value", "quantity", "prefix"] {
        let mut body = spring();
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
    assert!(codes_of(&app, "spring-27").await.is_empty());
    assert_eq!(
        app.admin_get("/api/admin/campaigns/spring-27")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

async fn shoppers_see_only_open_campaigns(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    assert_eq!(
        app.get("/api/campaigns", Some(&user.token)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/campaigns", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let campaign = |id: &str, starts: Option<&str>, ends: Option<&str>| {
        json!({"id": id, "title": id, "kind": "fixed", "value": 5, "quantity": 2,
               "prefix": "P", "starts_at": starts, "ends_at": ends})
    };
    for body in [
        campaign("open", None, None),
        campaign("later", Some("2099-01-01T00:00:00Z"), None),
        campaign(
            "over",
            Some("2020-01-01T00:00:00Z"),
            Some("2021-01-01T00:00:00Z"),
        ),
        campaign(
            "window",
            Some("2020-01-01T00:00:00Z"),
            Some("2099-01-01T00:00:00Z"),
        ),
    ] {
        assert_eq!(
            create(&app, &body).await.status(),
            StatusCode::CREATED,
            "{body}"
        );
    }
    let open: Value = app
        .get("/api/campaigns", Some(&user.token))
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = open
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["open", "window"]);
    assert_eq!(open[0]["remaining"], json!(2));
    assert_eq!(open[1]["ends_at"], "2099-01-01T00:00:00Z");
}
