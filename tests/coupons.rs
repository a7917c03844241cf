//! Coupons: claims that never over-issue, per-shopper limits, priced claims paid in the
//! same commit, checkout that uses a code once, expiry, and a kill -9 in a claim storm.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{json, Value};

use crate::helpers::{
    base_args, eventually, order_number, spawn_app, Backend, TestAccrual, TestApp, TestDb,
    TestUser, ADMIN_TOKEN, SHOP_TOKEN,
};
use crate::process::ServiceProcess;

crate::on_both_backends!(
    a_claim_storm_never_over_issues,
    one_shopper_gets_no_more_than_per_user,
    priced_claims_racing_a_thin_balance_charge_exactly,
    a_code_is_used_once_at_checkout,
    checkout_answers_with_exact_discounts_and_clear_refusals,
    an_ended_campaigns_codes_show_expired_and_cannot_be_used,
    the_same_idempotency_key_claims_once,
    a_kill_9_in_a_claim_storm_leaves_codes_payments_and_counts_consistent,
);

async fn campaign(app: &TestApp, body: Value) {
    let response = app
        .client
        .post(format!("{}/api/admin/campaigns", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{body}");
}

fn basic(id: &str, quantity: u32, per_user: u32, price: Value) -> Value {
    json!({"id": id, "title": id, "kind": "fixed", "value": 300, "quantity": quantity,
           "per_user": per_user, "price": price, "prefix": "T"})
}

async fn claim(
    app: &TestApp,
    user: &TestUser,
    campaign: &str,
    key: Option<&str>,
) -> reqwest::Response {
    let mut headers = vec![];
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key));
    }
    app.post_raw(
        "/api/user/coupons",
        Some(&user.token),
        json!({"campaign": campaign}).to_string().into_bytes(),
        &headers,
    )
    .await
}

async fn shop(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(SHOP_TOKEN);
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    request.send().await.unwrap()
}

async fn issued_code(app: &TestApp, campaign: &str) -> (TestUser, String) {
    let user = app.register_user().await;
    let response = claim(app, &user, campaign, None).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    (user, body["code"].as_str().unwrap().to_owned())
}

async fn a_claim_storm_never_over_issues(backend: Backend) {
    let app = spawn_app(backend).await;
    campaign(&app, basic("storm", 100, 1000, json!(0))).await;
    let mut users = Vec::new();
    for _ in 0..20 {
        users.push(app.register_user().await);
    }
    let claims = (0..1000).map(|i| claim(&app, &users[i % 20], "storm", None));
    let replies = join_all(claims).await;
    let mut codes = HashSet::new();
    let mut gone = 0;
    for reply in replies {
        match reply.status() {
            StatusCode::CREATED => {
                let body: Value = reply.json().await.unwrap();
                assert_eq!(body["status"], "ISSUED");
                codes.insert(body["code"].as_str().unwrap().to_owned());
            }
            StatusCode::GONE => gone += 1,
            other => panic!("a claim answered {other}"),
        }
    }
    assert_eq!((codes.len(), gone), (100, 900));
    let view = app.admin_json("/api/admin/campaigns/storm").await;
    assert_eq!(
        (view["issued"].clone(), view["remaining"].clone()),
        (json!(100), json!(0))
    );
}

async fn one_shopper_gets_no_more_than_per_user(backend: Backend) {
    let app = spawn_app(backend).await;
    campaign(&app, basic("three", 50, 3, json!(0))).await;
    let user = app.register_user().await;
    let statuses: Vec<StatusCode> = join_all((0..20).map(|_| claim(&app, &user, "three", None)))
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (3, 17), "{statuses:?}");
    let held: Value = app
        .get("/api/user/coupons", Some(&user.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(held.as_array().unwrap().len(), 3);
}

async fn priced_claims_racing_a_thin_balance_charge_exactly(backend: Backend) {
    let app = spawn_app(backend).await;
    campaign(&app, basic("priced", 100, 100, json!(10))).await;
    let user = app.register_user().await;
    app.fund(&user, json!(35)).await;
    let statuses: Vec<StatusCode> = join_all((0..10).map(|_| claim(&app, &user, "priced", None)))
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
    assert_eq!((created, short), (3, 7), "{statuses:?}");
    assert_eq!(app.balance(&user).await, ("5".into(), "0".into()));
    let history: Value = app
        .get("/api/user/history", Some(&user.token))
        .await
        .json()
        .await
        .unwrap();
    let paid: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "coupon")
        .collect();
    assert_eq!(paid.len(), 3);
    let held: Value = app
        .get("/api/user/coupons", Some(&user.token))
        .await
        .json()
        .await
        .unwrap();
    let held: HashSet<&str> = held
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    let paid: HashSet<&str> = paid
        .iter()
        .map(|e| e["reference"].as_str().unwrap())
        .collect();
    assert_eq!(held, paid, "every code paid for, every payment a code");
    crate::balance::assert_ledger_matches(&app).await;
}

async fn a_code_is_used_once_at_checkout(backend: Backend) {
    let app = spawn_app(backend).await;
    campaign(&app, basic("once", 5, 1, json!(0))).await;
    let (_, code) = issued_code(&app, "once").await;
    let path = format!("/api/shop/coupons/{code}/redeem");
    let attempts = (0..20).map(|_| {
        let body = json!({"order": order_number(), "amount": 1500});
        shop(&app, reqwest::Method::POST, &path, Some(body))
    });
    let replies = join_all(attempts).await;
    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status()).collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let taken = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((ok, taken), (1, 19), "{statuses:?}");
    let winner = replies
        .into_iter()
        .find(|r| r.status() == StatusCode::OK)
        .unwrap();
    let used: Value = winner.json().await.unwrap();
    assert_eq!(used["discount"], json!(300));
    let again = shop(
        &app,
        reqwest::Method::POST,
        &path,
        Some(json!({"order": used["order"], "amount": 1500})),
    )
    .await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "the same order and amount: the same answer"
    );
    assert_eq!(again.json::<Value>().await.unwrap(), used);
    let view = app.admin_json("/api/admin/campaigns/once").await;
    assert_eq!(view["redeemed"], json!(1));
}

async fn checkout_answers_with_exact_discounts_and_clear_refusals(backend: Backend) {
    let app = spawn_app(backend).await;
    campaign(&app, basic("fixed", 5, 5, json!(0))).await;
    campaign(
        &app,
        json!({"id": "pct", "title": "pct", "kind": "percent", "value": 12.5, "quantity": 5,
               "per_user": 5, "min_order": 100, "prefix": "P"}),
    )
    .await;
    let (_, fixed) = issued_code(&app, "fixed").await;
    let (_, pct) = issued_code(&app, "pct").await;
    let preview = |code: &str, amount: &str| {
        let path = format!("/api/shop/coupons/{code}?amount={amount}");
        let app = &app;
        async move { shop(app, reqwest::Method::GET, &path, None).await }
    };
    let discount = |response: reqwest::Response| async move {
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap()["discount"].clone()
    };
    assert_eq!(discount(preview(&fixed, "1500").await).await, json!(300));
    assert_eq!(
        discount(preview(&fixed, "120.5").await).await,
        json!(120.5),
        "capped"
    );
    // 12.5 % of 100.04 is 12.505: half-up to 12.51.
    assert_eq!(discount(preview(&pct, "100.04").await).await, json!(12.51));
    assert_eq!(
        discount(preview(&pct.to_lowercase(), "1000").await).await,
        json!(125),
        "codes in any case"
    );
    assert_eq!(
        preview(&pct, "99.99").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    for amount in ["0", "-5", "1.001", "abc"] {
        assert_eq!(
            preview(&fixed, amount).await.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{amount}"
        );
    }
    assert_eq!(
        shop(
            &app,
            reqwest::Method::GET,
            &format!("/api/shop/coupons/{fixed}"),
            None
        )
        .await
        .status(),
        StatusCode::BAD_REQUEST
    );
    for code in [
        "T-20260101-0000000000",
        "%00",
        "..%2F..",
        &"A".repeat(5000),
        "abc%0Adef",
    ] {
        let response = preview(code, "100").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{code}");
    }
    // A code in the pool nobody claimed is unknown to the shop.
    let db = Database::connect(app.db_url()).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT code FROM coupons WHERE user_id IS NULL AND campaign_id = 'fixed' LIMIT 1",
        ))
        .await
        .unwrap()
        .unwrap();
    let free: String = row.try_get("", "code").unwrap();
    db.close().await.unwrap();
    assert_eq!(preview(&free, "100").await.status(), StatusCode::NOT_FOUND);
    let path = format!("/api/shop/coupons/{fixed}/redeem");
    let redeem = |body: Value| shop(&app, reqwest::Method::POST, &path, Some(body));
    assert_eq!(
        redeem(json!({"order": "12a", "amount": 10})).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        redeem(json!({"order": "79927398710", "amount": 10}))
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        redeem(json!({"order": "79927398713", "amount": "10"}))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        redeem(json!({"order": "79927398713"})).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get(
            &format!("/api/shop/coupons/{fixed}?amount=1"),
            Some(ADMIN_TOKEN)
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
    let used = redeem(json!({"order": "79927398713", "amount": 10})).await;
    assert_eq!(used.status(), StatusCode::OK);
    assert_eq!(used.json::<Value>().await.unwrap()["discount"], json!(10));
}

async fn an_ended_campaigns_codes_show_expired_and_cannot_be_used(backend: Backend) {
    let app = spawn_app(backend).await;
    let ends = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    campaign(
        &app,
        json!({"id": "brief", "title": "brief", "kind": "fixed", "value": 1, "quantity": 5,
               "per_user": 2, "prefix": "B", "ends_at": ends}),
    )
    .await;
    let (user, code) = issued_code(&app, "brief").await;
    let listed: Value = app
        .get("/api/user/coupons", Some(&user.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["status"], "ISSUED");
    let expired = eventually(Duration::from_secs(10), || async {
        let listed: Value = app
            .get("/api/user/coupons", Some(&user.token))
            .await
            .json()
            .await
            .ok()?;
        (listed[0]["status"] == "EXPIRED").then_some(listed)
    })
    .await
    .expect("EXPIRED after ends_at");
    assert_eq!(expired[0]["code"], json!(code));
    let used = shop(
        &app,
        reqwest::Method::POST,
        &format!("/api/shop/coupons/{code}/redeem"),
        Some(json!({"order": order_number(), "amount": 10})),
    )
    .await;
    assert_eq!(used.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        claim(&app, &user, "brief", None).await.status(),
        StatusCode::GONE
    );
    assert_eq!(
        claim(&app, &user, "nope", None).await.status(),
        StatusCode::NOT_FOUND
    );
    campaign(
        &app,
        json!({"id": "later", "title": "later", "kind": "fixed", "value": 1, "quantity": 5,
               "prefix": "L", "starts_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        claim(&app, &user, "later", None).await.status(),
        StatusCode::GONE
    );
}

async fn the_same_idempotency_key_claims_once(backend: Backend) {
    let app = spawn_app(backend).await;
    campaign(&app, basic("keyed", 10, 10, json!(1))).await;
    campaign(&app, basic("other", 10, 10, json!(1))).await;
    let user = app.register_user().await;
    app.fund(&user, json!(10)).await;
    let replies = join_all((0..5).map(|_| claim(&app, &user, "keyed", Some("k-1")))).await;
    let mut codes = HashSet::new();
    for reply in replies {
        assert!([StatusCode::CREATED, StatusCode::CONFLICT].contains(&reply.status()));
        if reply.status() == StatusCode::CREATED {
            let body: Value = reply.json().await.unwrap();
            codes.insert(body["code"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(codes.len(), 1, "{codes:?}");
    let again = claim(&app, &user, "keyed", Some("k-1")).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(app.balance(&user).await, ("9".into(), "0".into()));
    assert_eq!(
        claim(&app, &user, "other", Some("k-1")).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn a_kill_9_in_a_claim_storm_leaves_codes_payments_and_counts_consistent(backend: Backend) {
    let accrual = TestAccrual::instant();
    let test_db = TestDb::create(backend).await;
    let args = base_args(&test_db, &accrual.url);
    let first = ServiceProcess::start(args.clone()).await;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/api/admin/campaigns", first.address))
        .bearer_auth(ADMIN_TOKEN)
        .body(basic("crash", 500, 500, json!(1)).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let users = first.funded_users(&accrual, 5, json!(100)).await;
    let storm = users.iter().cycle().take(400).map(|user| {
        let (client, address, token) = (client.clone(), first.address.clone(), user.token.clone());
        async move {
            let _ = client
                .post(format!("{address}/api/user/coupons"))
                .bearer_auth(token)
                .body(json!({"campaign": "crash"}).to_string())
                .send()
                .await;
        }
    });
    let storm = tokio::spawn(join_all(storm));
    // Killed in the middle: once some claims are through, with the rest still coming.
    let watch = Database::connect(&test_db.url).await.unwrap();
    eventually(Duration::from_secs(20), || async {
        let row = watch
            .query_one_raw(Statement::from_string(
                watch.get_database_backend(),
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM coupons WHERE user_id IS NOT NULL",
            ))
            .await
            .ok()??;
        (row.try_get::<i64>("", "n").ok()? >= 20).then_some(())
    })
    .await
    .expect("claims go through");
    watch.close().await.unwrap();
    first.kill();
    let _ = storm.await;
    let second = ServiceProcess::start(args).await;
    let db = Database::connect(&test_db.url).await.unwrap();
    let count = |sql: &'static str| {
        let db = &db;
        async move {
            db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .unwrap()
                .unwrap()
                .try_get::<i64>("", "n")
                .unwrap()
        }
    };
    let bound =
        count("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM coupons WHERE user_id IS NOT NULL").await;
    let paid =
        count("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ledger WHERE cause = 'coupon'").await;
    let paid_for_bound = count(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ledger JOIN coupons ON coupons.code = ledger.reference
         WHERE ledger.cause = 'coupon' AND coupons.user_id = ledger.user_id",
    )
    .await;
    assert!(bound > 0, "some claims went through before the kill");
    assert_eq!((bound, paid, paid_for_bound), (bound, bound, bound));
    let view: Value = client
        .get(format!("{}/api/admin/campaigns/crash", second.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["issued"], json!(bound));
    assert_eq!(view["remaining"], json!(500 - bound));
    // Claims go on after the restart from where the pool stands.
    let after = client
        .post(format!("{}/api/user/coupons", second.address))
        .bearer_auth(&users[0].token)
        .body(json!({"campaign": "crash"}).to_string())
        .send()
        .await
        .unwrap();
    assert!([StatusCode::CREATED, StatusCode::PAYMENT_REQUIRED].contains(&after.status()));
    db.close().await.unwrap();
    crate::balance::assert_ledger_matches_in(&test_db.url).await;
}
