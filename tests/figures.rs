//! The operator's figures, computed by the database over exact hundredths.

use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{json, Value};

use crate::helpers::{eventually, order_number, spawn_app, Backend};

crate::on_both_backends!(
    the_summary_adds_up_the_programme,
    daily_figures_cover_every_day_of_the_range,
    top_shoppers_are_ranked_by_points_accrued,
    the_audit_finds_a_balance_that_disagrees_with_its_ledger,
    figure_parameters_are_validated,
);

fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

async fn the_summary_adds_up_the_programme(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob) = (app.register_user().await, app.register_user().await);
    app.fund(&alice, json!(100.25)).await;
    app.fund(&bob, json!(0.75)).await;
    let response = app
        .post_withdraw(&alice, &json!({"order": order_number(), "sum": 50}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // An order the accrual system refuses, and one it does not know.
    let refused = order_number();
    app.emulator().add_order(&refused, &[]).await;
    app.post_order(&bob, &refused).await;
    app.wait_for_status(&bob, &refused, "INVALID").await;
    app.post_order(&bob, &order_number()).await;

    let summary = eventually(Duration::from_secs(5), || async {
        let summary = app.admin_json("/api/admin/stats/summary").await;
        (summary["events_unpublished"] == 0).then_some(summary)
    })
    .await
    .expect("every event numbered");
    assert_eq!(
        summary,
        json!({
            "users": 2,
            "points_outstanding": 51,
            "points_accrued": 101,
            "points_withdrawn": 50,
            "points_redeemed": 0,
            "points_refunded": 0,
            "orders": {"INVALID": 1, "NEW": 1, "PROCESSED": 2, "PROCESSING": 0},
            "redemptions": {"REQUESTED": 0, "ACCEPTED": 0, "SHIPPED": 0, "DELIVERED": 0, "CANCELLED": 0},
            "coupons": {"issued": 0, "redeemed": 0},
            "accrual_backlog": 1,
            "fulfilment_backlog": 0,
            "events_unpublished": 0
        })
    );
}

async fn daily_figures_cover_every_day_of_the_range(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.fund(&user, json!(12.5)).await;
    app.fund(&user, json!(0.5)).await;
    let response = app
        .post_withdraw(&user, &json!({"order": order_number(), "sum": 3}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (from, to) = (
        today() - chrono::Days::new(2),
        today() + chrono::Days::new(1),
    );
    let days = app
        .admin_json(&format!("/api/admin/stats/daily?from={from}&to={to}"))
        .await;
    let zero = |day: chrono::NaiveDate| {
        json!({"day": day.to_string(), "accrued": 0, "withdrawn": 0, "redeemed": 0,
               "refunded": 0, "new_users": 0, "orders_uploaded": 0, "orders_processed": 0})
    };
    assert_eq!(
        days,
        json!([
            zero(from),
            zero(from + chrono::Days::new(1)),
            {"day": today().to_string(), "accrued": 13, "withdrawn": 3, "redeemed": 0,
             "refunded": 0, "new_users": 1, "orders_uploaded": 2, "orders_processed": 2},
            zero(to),
        ])
    );
    let year = app
        .admin_json(&format!(
            "/api/admin/stats/daily?from={}&to={}",
            today() - chrono::Days::new(365),
            today()
        ))
        .await;
    assert_eq!(year.as_array().unwrap().len(), 366);
}

async fn top_shoppers_are_ranked_by_points_accrued(backend: Backend) {
    let app = spawn_app(backend).await;
    let users = [
        app.register_user().await,
        app.register_user().await,
        app.register_user().await,
    ];
    for (user, points) in users.iter().zip([json!(5), json!(700.01), json!(42)]) {
        app.fund(user, points).await;
    }
    let day = today();
    let top = app
        .admin_json(&format!("/api/admin/stats/top?from={day}&to={day}&limit=2"))
        .await;
    let logins: Vec<&str> = top
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["login"].as_str().unwrap())
        .collect();
    assert_eq!(logins, [users[1].login.as_str(), users[2].login.as_str()]);
    assert_eq!(top[0]["accrued"], json!(700.01));
    let yesterday = day - chrono::Days::new(1);
    let none = app
        .admin_get(&format!(
            "/api/admin/stats/top?from={yesterday}&to={yesterday}"
        ))
        .await;
    assert_eq!(none.status(), StatusCode::NO_CONTENT);
}

async fn the_audit_finds_a_balance_that_disagrees_with_its_ledger(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob) = (app.register_user().await, app.register_user().await);
    app.fund(&alice, json!(10)).await;
    assert_eq!(
        app.admin_json("/api/admin/audit").await,
        json!({"accounts": 2, "mismatched": [], "negative": []})
    );
    // Someone writes the database behind the service's back (a negative balance the
    // schema itself refuses).
    let db = Database::connect(app.db_url()).await.unwrap();
    db.execute_unprepared("UPDATE accounts SET current = 500 WHERE current = 0")
        .await
        .unwrap();
    db.close().await.unwrap();
    let audit = app.admin_json("/api/admin/audit").await;
    let bob_id = audit["mismatched"][0]["user"].clone();
    assert_eq!(
        audit,
        json!({"accounts": 2,
               "mismatched": [{"user": bob_id, "current": 5, "ledger": 0}],
               "negative": []})
    );
    drop(bob);
}

async fn figure_parameters_are_validated(backend: Backend) {
    let app = spawn_app(backend).await;
    let day = today();
    let far = day - chrono::Days::new(366);
    for query in [
        "/api/admin/stats/daily".to_owned(),
        format!("/api/admin/stats/daily?from={day}"),
        format!(
            "/api/admin/stats/daily?from={day}&to={}",
            day - chrono::Days::new(1)
        ),
        format!("/api/admin/stats/daily?from={far}&to={day}"),
        format!("/api/admin/stats/daily?from=2026-13-01&to={day}"),
        format!("/api/admin/stats/daily?from=2026-1-1&to={day}"),
        format!("/api/admin/stats/daily?from={day}&to={day}&x=1"),
        format!("/api/admin/stats/top?from={day}&to={day}&limit=0"),
        format!("/api/admin/stats/top?from={day}&to={day}&limit=101"),
        "/api/admin/events?after=-1".to_owned(),
        "/api/admin/events?limit=0".to_owned(),
        "/api/admin/events?limit=1001".to_owned(),
        "/api/admin/events?after=abc".to_owned(),
    ] {
        let response = app.admin_get(&query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let reason: String = response.text().await.unwrap();
        assert!(!reason.is_empty(), "{query}");
    }
    let ok: Value = app
        .admin_json(&format!("/api/admin/stats/daily?from={day}&to={day}"))
        .await;
    assert_eq!(ok.as_array().unwrap().len(), 1);
}
