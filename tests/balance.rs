//! Balance, withdrawals and their invariants.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{json, Value};

use crate::helpers::{
    base_args, eventually, order_number, spawn_app, Backend, TestAccrual, TestApp, TestDb,
};
use crate::process::ServiceProcess;

crate::on_both_backends!(
    a_new_user_has_a_zero_balance,
    credited_points_and_withdrawals_are_exact,
    withdraw_answers_402_when_points_are_short_and_charges_nothing,
    withdraw_answers_422_for_bad_order_numbers,
    withdraw_answers_400_for_bad_sums_and_wrong_types,
    a_replayed_withdrawal_answers_200_and_charges_once,
    a_replay_answers_200_even_when_the_balance_no_longer_covers_it,
    reusing_a_withdrawal_number_differently_answers_409,
    withdrawals_are_listed_oldest_first_on_both_paths,
    fifty_concurrent_withdrawals_never_overdraw,
    concurrent_replays_of_one_withdrawal_charge_once,
    a_crowd_of_withdrawals_on_one_account_is_decided_as_one_by_one,
    a_kill_9_amid_many_accounts_writing_loses_no_answered_withdrawal,
);

async fn a_new_user_has_a_zero_balance(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let response = app.get_balance(&user).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"current":0,"withdrawn":0}"#
    );
    let withdrawals = app.get_withdrawals(&user).await;
    assert_eq!(withdrawals.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        withdrawals.headers().get("content-type").unwrap(),
        "application/json"
    );
}

async fn credited_points_and_withdrawals_are_exact(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.fund(&user, json!(500.5)).await;
    app.fund(&user, json!(229.48)).await;
    assert_eq!(app.balance(&user).await, ("729.98".into(), "0".into()));
    let spend = app
        .post_withdraw(&user, &json!({"order": order_number(), "sum": 42}))
        .await;
    assert_eq!(spend.status(), StatusCode::OK);
    let cents = app
        .post_withdraw(&user, &json!({"order": order_number(), "sum": 0.1}))
        .await;
    assert_eq!(cents.status(), StatusCode::OK);
    assert_eq!(app.balance(&user).await, ("687.88".into(), "42.1".into()));
    assert_ledger_matches(&app).await;
}

async fn withdraw_answers_402_when_points_are_short_and_charges_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.fund(&user, json!(10)).await;
    let order = order_number();
    let short = app
        .post_withdraw(&user, &json!({"order": order, "sum": 10.01}))
        .await;
    assert_eq!(short.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(app.balance(&user).await, ("10".into(), "0".into()));
    assert_eq!(
        app.get_withdrawals(&user).await.status(),
        StatusCode::NO_CONTENT
    );
    // The number was not spent by the refused attempt.
    let exact = app
        .post_withdraw(&user, &json!({"order": order, "sum": 10}))
        .await;
    assert_eq!(exact.status(), StatusCode::OK);
    assert_eq!(app.balance(&user).await, ("0".into(), "10".into()));
}

async fn withdraw_answers_422_for_bad_order_numbers(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.fund(&user, json!(100)).await;
    for order in ["12345", "abc", "", "2377225625", "2377 225624"] {
        let response = app
            .post_withdraw(&user, &json!({"order": order, "sum": 1}))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{order:?}"
        );
    }
    assert_eq!(app.balance(&user).await, ("100".into(), "0".into()));
}

async fn withdraw_answers_400_for_bad_sums_and_wrong_types(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.fund(&user, json!(100)).await;
    let order = order_number();
    for body in [
        json!({"order": order, "sum": 0}),
        json!({"order": order, "sum": -5}),
        json!({"order": order, "sum": 1.001}),
        json!({"order": order, "sum": "10"}),
        json!({"order": order, "sum": null}),
        json!({"order": order, "sum": true}),
        json!({"order": order}),
        json!({"sum": 10}),
        json!({"order": 2377225624u64, "sum": 10}),
        json!({"order": [order], "sum": 10}),
        json!({"order": order, "sum": 1e30}),
        json!("withdraw"),
    ] {
        let response = app.post_withdraw(&user, &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    for raw in [
        format!(r#"{{"order":"{order}","sum":99999999999999999999}}"#),
        format!(r#"{{"order":"{order}","sum":NaN}}"#),
        format!(r#"{{"order":"{order}","sum":Infinity}}"#),
        format!(r#"{{"order":"{order}","sum":10,"sum":20}}"#),
        format!(r#"{{"order":"{order}","sum":1e-400}}"#),
        format!(r#"{{"order":"{order}","sum":10}} trailing"#),
        format!(r#"["{order}", 10]"#),
    ] {
        let response = app
            .post_raw(
                "/api/user/balance/withdraw",
                Some(&user.token),
                raw.clone().into_bytes(),
                &[],
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{raw}");
    }
    // Precedence: a bad sum is a 400 even when the order number is bad too.
    let both = app
        .post_withdraw(&user, &json!({"order": "12345", "sum": 0}))
        .await;
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.balance(&user).await, ("100".into(), "0".into()));
    assert_eq!(
        app.get_withdrawals(&user).await.status(),
        StatusCode::NO_CONTENT
    );
}

async fn a_replayed_withdrawal_answers_200_and_charges_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.fund(&user, json!(100)).await;
    let body = json!({"order": order_number(), "sum": 30.5});
    for _ in 0..3 {
        assert_eq!(
            app.post_withdraw(&user, &body).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(app.balance(&user).await, ("69.5".into(), "30.5".into()));
    let list: Vec<Value> = app.get_withdrawals(&user).await.json().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_ledger_matches(&app).await;
}

async fn a_replay_answers_200_even_when_the_balance_no_longer_covers_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.fund(&user, json!(50)).await;
    let body = json!({"order": order_number(), "sum": 40});
    assert_eq!(
        app.post_withdraw(&user, &body).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.post_withdraw(&user, &body).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.balance(&user).await, ("10".into(), "40".into()));
}

async fn reusing_a_withdrawal_number_differently_answers_409(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob) = (app.register_user().await, app.register_user().await);
    app.fund(&alice, json!(100)).await;
    app.fund(&bob, json!(100)).await;
    let order = order_number();
    let first = app
        .post_withdraw(&alice, &json!({"order": order, "sum": 10}))
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let other_sum = app
        .post_withdraw(&alice, &json!({"order": order, "sum": 11}))
        .await;
    assert_eq!(other_sum.status(), StatusCode::CONFLICT);
    let other_user = app
        .post_withdraw(&bob, &json!({"order": order, "sum": 10}))
        .await;
    assert_eq!(other_user.status(), StatusCode::CONFLICT);
    // 409 wins over 402: the number is spent, whatever the funds.
    let too_much = app
        .post_withdraw(&bob, &json!({"order": order, "sum": 1000}))
        .await;
    assert_eq!(too_much.status(), StatusCode::CONFLICT);
    assert_eq!(app.balance(&alice).await, ("90".into(), "10".into()));
    assert_eq!(app.balance(&bob).await, ("100".into(), "0".into()));
}

async fn withdrawals_are_listed_oldest_first_on_both_paths(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.fund(&user, json!(100)).await;
    let orders = [order_number(), order_number(), order_number()];
    for (order, sum) in orders.iter().zip([1, 2, 3]) {
        let response = app
            .post_withdraw(&user, &json!({"order": order, "sum": sum}))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let short = app.get("/api/user/withdrawals", Some(&user.token)).await;
    assert_eq!(
        short.headers().get("content-type").unwrap(),
        "application/json"
    );
    let short = short.text().await.unwrap();
    let long = app
        .get("/api/user/balance/withdrawals", Some(&user.token))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(short, long);
    let list: Vec<Value> = serde_json::from_str(&short).unwrap();
    let listed: Vec<&str> = list.iter().map(|w| w["order"].as_str().unwrap()).collect();
    assert_eq!(
        listed,
        orders.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(list[2]["sum"], json!(3));
    chrono::DateTime::parse_from_rfc3339(list[0]["processed_at"].as_str().unwrap()).unwrap();
}

async fn fifty_concurrent_withdrawals_never_overdraw(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.fund(&user, json!(100)).await;
    let requests = (0..50).map(|_| {
        let body = json!({"order": order_number(), "sum": 7});
        let (app, user) = (&app, &user);
        async move { app.post_withdraw(user, &body).await.status() }
    });
    let statuses = join_all(requests).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let short = statuses
        .iter()
        .filter(|s| **s == StatusCode::PAYMENT_REQUIRED)
        .count();
    assert_eq!((ok, short), (14, 36), "{statuses:?}");
    assert_eq!(app.balance(&user).await, ("2".into(), "98".into()));
    assert_ledger_matches(&app).await;
}

async fn concurrent_replays_of_one_withdrawal_charge_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.fund(&user, json!(100)).await;
    let body = json!({"order": order_number(), "sum": 60});
    let statuses = join_all((0..20).map(|_| app.post_withdraw(&user, &body))).await;
    assert!(statuses.iter().all(|r| r.status() == StatusCode::OK));
    assert_eq!(app.balance(&user).await, ("40".into(), "60".into()));
    assert_ledger_matches(&app).await;
}

/// Sixty-four withdrawals at once on one account — new numbers, numbers sent twice, a
/// number sent with two sums, more than the balance covers — are committed in groups;
/// each answer, the statement, the events and the version must be what one-by-one gives.
async fn a_crowd_of_withdrawals_on_one_account_is_decided_as_one_by_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.fund(&user, json!(100)).await;
    let numbers: Vec<String> = (0..40).map(|_| order_number()).collect();
    let mut bodies: Vec<Value> = numbers
        .iter()
        .map(|n| json!({"order": n, "sum": 3}))
        .collect();
    // Sent twice with the same sum, and once with another.
    bodies.extend(numbers[..20].iter().map(|n| json!({"order": n, "sum": 3})));
    bodies.extend(
        numbers[20..24]
            .iter()
            .map(|n| json!({"order": n, "sum": 4})),
    );
    let answers = join_all(bodies.iter().map(|body| {
        let (app, user) = (&app, &user);
        async move { (body.clone(), app.post_withdraw(user, body).await.status()) }
    }))
    .await;

    // Per number: charged once at most; every 200 for the sum charged, 409 for another.
    let listed: Vec<Value> = app.get_withdrawals(&user).await.json().await.unwrap();
    let charged: std::collections::HashMap<&str, i64> = listed
        .iter()
        .map(|w| (w["order"].as_str().unwrap(), w["sum"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        charged.len(),
        listed.len(),
        "a number charged twice: {listed:?}"
    );
    let spent: i64 = charged.values().sum();
    let current = 100 - spent;
    assert!(current >= 0);
    for (body, status) in &answers {
        let (number, sum) = (
            body["order"].as_str().unwrap(),
            body["sum"].as_i64().unwrap(),
        );
        let expected = match charged.get(number) {
            Some(&paid) if paid == sum => StatusCode::OK,
            Some(_) => StatusCode::CONFLICT,
            // Refused for funds: the balance left cannot cover it (it only went down).
            None => {
                assert!(current < sum, "{body} refused with {current} left");
                StatusCode::PAYMENT_REQUIRED
            }
        };
        assert_eq!(*status, expected, "{body}");
    }
    assert!(charged.len() >= 32, "{} charged", charged.len());
    assert_eq!(
        app.balance(&user).await,
        (current.to_string(), spent.to_string())
    );

    // The statement: one entry per charge, each balance the previous one minus the sum.
    let statement: Vec<Value> = app
        .get("/api/user/history?limit=200", Some(&user.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(statement.len(), charged.len() + 1);
    let mut balance = 0;
    for entry in statement.iter().rev() {
        balance += cents(&entry["amount"]);
        assert_eq!(cents(&entry["balance"]), balance, "{entry}");
    }
    assert_eq!(balance, current * 100);

    // One event per charge, and the version advanced once per change.
    let db = Database::connect(app.db_url()).await.unwrap();
    let backend = db.get_database_backend();
    let count = |sql: &str| {
        let db = &db;
        let sql = sql.to_owned();
        async move {
            let row = db
                .query_one_raw(Statement::from_string(backend, sql))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        }
    };
    let events = count("SELECT COUNT(*) FROM events WHERE kind = 'points.withdrawn'").await;
    assert_eq!(events, charged.len() as i64);
    let version = count("SELECT MAX(version) FROM accounts").await;
    assert_eq!(version, charged.len() as i64 + 1);
    let _ = db.close().await;
    assert_ledger_matches(&app).await;
}

/// A JSON amount of points in hundredths, read from its text.
/// Many shoppers withdraw and are credited at once, so that their writes share commits;
/// the process is killed in the middle. Each withdrawal answered `200` is already
/// committed when the answer arrives (another connection sees it at once), every one of
/// them is there after the kill, and every balance still equals its ledger.
async fn a_kill_9_amid_many_accounts_writing_loses_no_answered_withdrawal(backend: Backend) {
    let accrual = TestAccrual::instant();
    let test_db = TestDb::create(backend).await;
    let args = base_args(&test_db, &accrual.url);
    let first = ServiceProcess::start(args.clone()).await;
    let users = first.funded_users(&accrual, 16, json!(1000)).await;
    let client = reqwest::Client::new();
    let watch = Database::connect(&test_db.url).await.unwrap();
    let charged = Arc::new(AtomicUsize::new(0));
    let withdrawals = users.iter().cycle().take(3200).map(|user| {
        let (client, address, token) = (client.clone(), first.address.clone(), user.token.clone());
        let (watch, charged) = (watch.clone(), Arc::clone(&charged));
        async move {
            let number = order_number();
            let answer = client
                .post(format!("{address}/api/user/balance/withdraw"))
                .bearer_auth(token)
                .json(&json!({"order": number, "sum": 0.5}))
                .send()
                .await;
            if !matches!(&answer, Ok(answer) if answer.status() == StatusCode::OK) {
                return None;
            }
            charged.fetch_add(1, Ordering::Relaxed);
            let seen = watch
                .query_one_raw(Statement::from_sql_and_values(
                    watch.get_database_backend(),
                    match watch.get_database_backend() {
                        sea_orm::DbBackend::Postgres => {
                            "SELECT 1 AS one FROM withdrawals WHERE order_number = $1"
                        }
                        _ => "SELECT 1 AS one FROM withdrawals WHERE order_number = ?",
                    },
                    [number.clone().into()],
                ))
                .await;
            // Unreadable after the kill says nothing either way.
            let committed = !matches!(seen, Ok(None));
            Some((number, committed))
        }
    });
    let mut credits = Vec::new();
    for user in users.iter().cycle().take(200) {
        let order = order_number();
        accrual.add_order_worth(&order, json!(1.25)).await;
        credits.push((user.token.clone(), order));
    }
    let uploads = credits.into_iter().map(|(token, order)| {
        let (client, address) = (client.clone(), first.address.clone());
        async move {
            let _ = client
                .post(format!("{address}/api/user/orders"))
                .bearer_auth(token)
                .header("Content-Type", "text/plain")
                .body(order)
                .send()
                .await;
        }
    });
    let withdrawals = tokio::spawn(join_all(withdrawals));
    let uploads = tokio::spawn(join_all(uploads));
    // Killed in the middle: some hundreds answered, the rest still coming.
    eventually(Duration::from_secs(30), || async {
        (charged.load(Ordering::Relaxed) >= 300).then_some(())
    })
    .await
    .expect("withdrawals go through");
    first.kill();
    let answered: Vec<(String, bool)> = withdrawals.await.unwrap().into_iter().flatten().collect();
    let _ = uploads.await;
    watch.close().await.unwrap();
    assert!(answered.len() < 3200, "the kill came after the storm");
    let unseen: Vec<&String> = answered
        .iter()
        .filter_map(|(number, committed)| (!committed).then_some(number))
        .collect();
    assert!(
        unseen.is_empty(),
        "{} of {} withdrawals were answered before they were committed: {unseen:?}",
        unseen.len(),
        answered.len()
    );
    let answered: Vec<String> = answered.into_iter().map(|(number, _)| number).collect();

    let db = Database::connect(&test_db.url).await.unwrap();
    let stored: HashSet<String> = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT order_number FROM withdrawals",
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.try_get::<String>("", "order_number").unwrap())
        .collect();
    db.close().await.unwrap();
    let lost: Vec<&String> = answered.iter().filter(|n| !stored.contains(*n)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered withdrawals are gone after the kill: {lost:?}",
        lost.len(),
        answered.len()
    );
    assert_ledger_matches_in(&test_db.url).await;
    // And the service comes back on what was kept.
    let second = ServiceProcess::start(args).await;
    for user in &users {
        let balance: Value = serde_json::from_str(&second.balance_text(user).await).unwrap();
        assert!(cents(&balance["current"]) >= 0);
    }
}

fn cents(amount: &Value) -> i64 {
    let text = amount.to_string();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest.to_owned()),
        None => (1, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((&digits, ""));
    let fraction = format!("{fraction:0<2}");
    sign * (whole.parse::<i64>().unwrap() * 100 + fraction[..2].parse::<i64>().unwrap())
}

/// Reads the database behind the service: every balance equals its ledger summed.
pub async fn assert_ledger_matches(app: &TestApp) {
    assert_ledger_matches_in(app.db_url()).await;
}

/// [`assert_ledger_matches`] for the database at `db_url` (e.g. of a service process).
pub async fn assert_ledger_matches_in(db_url: &str) {
    let db = Database::connect(db_url).await.unwrap();
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT a.user_id, a.current, a.withdrawn, \
             CAST(COALESCE((SELECT SUM(delta) FROM ledger l WHERE l.user_id = a.user_id), 0) AS BIGINT) AS total, \
             CAST(COALESCE((SELECT -SUM(delta) FROM ledger l WHERE l.user_id = a.user_id AND cause = 'withdrawal'), 0) AS BIGINT) AS spent, \
             CAST(COALESCE((SELECT SUM(sum) FROM withdrawals w WHERE w.user_id = a.user_id), 0) AS BIGINT) AS listed \
             FROM accounts a",
        ))
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let get = |column: &str| row.try_get::<i64>("", column).unwrap();
        assert_eq!(get("current"), get("total"), "current equals the ledger");
        assert_eq!(
            get("withdrawn"),
            get("spent"),
            "withdrawn equals the ledger"
        );
        assert_eq!(
            get("withdrawn"),
            get("listed"),
            "withdrawn equals the withdrawals"
        );
        assert!(get("current") >= 0);
    }
    let _ = db.close().await;
}
