//! The statement of account: the ledger itself, newest first, paged by id.

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{json, Value};

use crate::helpers::{
    base_args, order_number, spawn_app, spawn_app_with, Backend, TestAccrual, TestApp, TestDb,
    TestUser,
};

crate::on_both_backends!(
    the_statement_lists_every_change_with_the_balance_after_it,
    statement_pages_go_before_an_id,
    statement_parameters_are_validated,
    the_migration_fills_in_balances_of_earlier_entries,
);

async fn statement(app: &TestApp, user: &TestUser, query: &str) -> Vec<Value> {
    let response = app
        .get(&format!("/api/user/history{query}"), Some(&user.token))
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    response.json().await.unwrap()
}

async fn the_statement_lists_every_change_with_the_balance_after_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let empty = app.get("/api/user/history", Some(&user.token)).await;
    assert_eq!(empty.status(), StatusCode::NO_CONTENT);
    assert_eq!(empty.headers()["content-type"], "application/json");
    assert_eq!(
        app.get("/api/user/history", None).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let first = app.fund(&user, json!(500.5)).await;
    let second = app.fund(&user, json!(751)).await;
    let spent = order_number();
    let response = app
        .post_withdraw(&user, &json!({"order": spent, "sum": 751}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let entries = statement(&app, &user, "").await;
    let summary: Vec<(Value, Value, Value, Value)> = entries
        .iter()
        .map(|e| {
            (
                e["kind"].clone(),
                e["amount"].clone(),
                e["balance"].clone(),
                e["reference"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (json!("withdrawal"), json!(-751), json!(500.5), json!(spent)),
            (json!("accrual"), json!(751), json!(1251.5), json!(second)),
            (json!("accrual"), json!(500.5), json!(500.5), json!(first)),
        ]
    );
    // Read oldest first, each balance is the one before plus the amount; the newest is
    // the current balance.
    let text = |v: &Value| v.to_string();
    assert_eq!(text(&entries[0]["balance"]), app.balance(&user).await.0);
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert!(entries[0]["at"].as_str().unwrap().ends_with('Z'));

    // Another shopper sees only their own.
    let other = app.register_user().await;
    let none = app.get("/api/user/history", Some(&other.token)).await;
    assert_eq!(none.status(), StatusCode::NO_CONTENT);
}

async fn statement_pages_go_before_an_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    for points in 1..=5 {
        app.fund(&user, json!(points)).await;
    }
    let all = statement(&app, &user, "").await;
    assert_eq!(all.len(), 5);
    let mut paged = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let response = app
            .get(&format!("/api/user/history{query}"), Some(&user.token))
            .await;
        if response.status() == StatusCode::NO_CONTENT {
            break;
        }
        let page: Vec<Value> = response.json().await.unwrap();
        assert!(page.len() <= 2);
        let last = page.last().unwrap()["id"].as_i64().unwrap();
        paged.extend(page);
        query = format!("?limit=2&before={last}");
    }
    assert_eq!(paged, all);
}

async fn statement_parameters_are_validated(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    for query in [
        "?limit=0",
        "?limit=501",
        "?limit=abc",
        "?limit=-1",
        "?before=0",
        "?before=x",
        "?before=99999999999999999999",
        "?limit=1&limit=2",
        "?page=2",
        "?limit=%FF",
    ] {
        let response = app
            .get(&format!("/api/user/history{query}"), Some(&user.token))
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(
            !response.text().await.unwrap().is_empty(),
            "{query}: a reason"
        );
    }
    for query in ["?limit=500", "?limit=1&before=1", ""] {
        let response = app
            .get(&format!("/api/user/history{query}"), Some(&user.token))
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{query}");
    }
}

async fn the_migration_fills_in_balances_of_earlier_entries(backend: Backend) {
    use gophermart_migration::{Migrator, MigratorTrait};
    let db = TestDb::create(backend).await;
    // The schema as the first release left it, with a user and two entries.
    let conn = Database::connect(&db.url).await.unwrap();
    Migrator::up(&conn, Some(1)).await.unwrap();
    for sql in [
        "INSERT INTO users (id, login, password_hash, created_at) VALUES (7, 'old', 'x', '2026-11-30T10:00:00+00:00')",
        "INSERT INTO accounts (user_id, current, withdrawn, version) VALUES (7, 2500, 1000, 2)",
        "INSERT INTO ledger (user_id, delta, cause, reference, created_at) VALUES (7, 3500, 'accrual', '79927398713', '2026-11-30T11:00:00+00:00')",
        "INSERT INTO ledger (user_id, delta, cause, reference, created_at) VALUES (7, -1000, 'withdrawal', '2377225624', '2026-11-30T12:00:00+00:00')",
    ] {
        conn.execute_unprepared(sql).await.unwrap();
    }
    conn.close().await.unwrap();
    let accrual = TestAccrual::instant();
    let args = base_args(&db, &accrual.url);
    let app = spawn_app_with(db, args, Some(accrual)).await;
    let conn = Database::connect(app.db_url()).await.unwrap();
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT balance_after FROM ledger ORDER BY id",
        ))
        .await
        .unwrap();
    let balances: Vec<i64> = rows
        .iter()
        .map(|row| row.try_get::<i64>("", "balance_after").unwrap())
        .collect();
    assert_eq!(balances, vec![3500, 2500]);
}
