//! Registration, login and authentication.

use std::time::Instant;

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::json;

use crate::helpers::{
    base_args, bearer, order_number, spawn_app, spawn_app_with, with_flag, Backend, TestAccrual,
    TestApp, TestDb,
};

crate::on_both_backends!(
    register_answers_200_with_a_bearer_header_and_an_httponly_cookie,
    register_answers_409_when_the_login_is_taken,
    register_answers_400_for_missing_or_empty_fields,
    login_answers_200_for_the_right_pair_and_401_otherwise,
    login_answers_400_for_malformed_bodies,
    passwords_count_beyond_72_bytes,
    the_cookie_alone_authenticates,
    missing_malformed_and_forged_tokens_get_401,
    tokens_survive_a_restart_over_the_same_database,
    a_genuine_token_for_a_user_this_database_lacks_gets_401,
    outdated_password_hashes_are_replaced_at_the_next_successful_login,
    a_wrong_password_under_a_cheaper_hash_takes_as_long_as_an_unknown_login,
    the_course_flow_passes_with_the_default_rate_limits,
    logout_answers_204_and_expires_the_cookie,
    after_logout_the_browser_is_signed_out,
);

async fn register_answers_200_with_a_bearer_header_and_an_httponly_cookie(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_register(&json!({"login": "alice", "password": "secret"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let token = bearer(&response).expect("Authorization: Bearer header");
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a cookie")
        .to_owned();
    assert!(cookie.contains(&token), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    let balance = app.get("/api/user/balance", Some(&token)).await;
    assert_eq!(balance.status(), StatusCode::OK);
}

async fn register_answers_409_when_the_login_is_taken(backend: Backend) {
    let app = spawn_app(backend).await;
    let pair = json!({"login": "bob", "password": "one"});
    assert_eq!(app.post_register(&pair).await.status(), StatusCode::OK);
    let again = app
        .post_register(&json!({"login": "bob", "password": "two"}))
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    // The first password still works, the second does not.
    assert_eq!(app.post_login(&pair).await.status(), StatusCode::OK);
    let second = json!({"login": "bob", "password": "two"});
    assert_eq!(
        app.post_login(&second).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn register_answers_400_for_missing_or_empty_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    for body in [
        json!({"login": "carol"}),
        json!({"password": "x"}),
        json!({"login": "", "password": "x"}),
        json!({"login": "carol", "password": ""}),
        json!({"login": 5, "password": "x"}),
        json!({"login": "carol", "password": null}),
        json!(["carol", "x"]),
    ] {
        let response = app.post_register(&body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        assert!(
            !response.text().await.unwrap().is_empty(),
            "a reason for {body}"
        );
    }
    let garbage = app
        .post_raw("/api/user/register", None, b"{not json".to_vec(), &[])
        .await;
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    let login = app
        .post_login(&json!({"login": "carol", "password": "x"}))
        .await;
    assert_eq!(
        login.status(),
        StatusCode::UNAUTHORIZED,
        "nothing was registered"
    );
}

async fn login_answers_200_for_the_right_pair_and_401_otherwise(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let ok = app
        .post_login(&json!({"login": user.login, "password": user.password}))
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let token = bearer(&ok).expect("a token");
    assert_eq!(
        app.get("/api/user/balance", Some(&token)).await.status(),
        StatusCode::OK
    );
    let wrong = app
        .post_login(&json!({"login": user.login, "password": "nope"}))
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let unknown = app
        .post_login(&json!({"login": "nobody-here", "password": "nope"}))
        .await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
}

async fn login_answers_400_for_malformed_bodies(backend: Backend) {
    let app = spawn_app(backend).await;
    for body in [
        json!({"login": "x"}),
        json!({"login": "", "password": "y"}),
        json!({"login": "x", "password": 1}),
    ] {
        assert_eq!(
            app.post_login(&body).await.status(),
            StatusCode::BAD_REQUEST,
            "{body}"
        );
    }
    let garbage = app
        .post_raw("/api/user/login", None, b"login=x&password=y".to_vec(), &[])
        .await;
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
}

async fn passwords_count_beyond_72_bytes(backend: Backend) {
    let app = spawn_app(backend).await;
    let long = "p".repeat(100);
    let registered = app
        .post_register(&json!({"login": "dave", "password": long}))
        .await;
    assert_eq!(registered.status(), StatusCode::OK);
    let same_prefix = format!("{}q", "p".repeat(99));
    let login = app
        .post_login(&json!({"login": "dave", "password": same_prefix}))
        .await;
    assert_eq!(
        login.status(),
        StatusCode::UNAUTHORIZED,
        "byte 100 must count"
    );
    let exact = app
        .post_login(&json!({"login": "dave", "password": long}))
        .await;
    assert_eq!(exact.status(), StatusCode::OK);
}

async fn the_cookie_alone_authenticates(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let response = app
        .client
        .get(format!("{}/api/user/balance", app.address))
        .header("Cookie", format!("token={}", user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn missing_malformed_and_forged_tokens_get_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let forged = {
        let mut parts: Vec<String> = user.token.split('.').map(str::to_owned).collect();
        // Same header and claims, another signature.
        parts[2] = "c2lnbmVkIGJ5IHNvbWVvbmUgZWxzZQ".to_owned();
        parts.join(".")
    };
    let expired = {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let claims = json!({"sub": "1", "iat": 1, "exp": 2});
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"test-secret-test-secret-test-secret"),
        )
        .unwrap()
    };
    for path in [
        "/api/user/orders",
        "/api/user/balance",
        "/api/user/withdrawals",
        "/api/user/balance/withdrawals",
    ] {
        assert_eq!(
            app.get(path, None).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        for token in ["garbage", forged.as_str(), expired.as_str(), ""] {
            let response = app.get(path, Some(token)).await;
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{path} {token}"
            );
        }
        let basic = app
            .client
            .get(format!("{}{path}", app.address))
            .header("Authorization", "Basic dXNlcjpwYXNz")
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    }
    assert_writes_get_401(&app, Some("garbage")).await;
    assert_writes_get_401(&app, None).await;
}

async fn tokens_survive_a_restart_over_the_same_database(backend: Backend) {
    // Without --token-secret the key is generated at first start and kept in the database.
    let without_secret = |mut args: Vec<String>| {
        if let Some(at) = args.iter().position(|a| a == "--token-secret") {
            args.drain(at..at + 2);
        }
        args
    };
    let db = TestDb::create(backend).await;
    let accrual = TestAccrual::instant();
    let args = without_secret(base_args(&db, &accrual.url));
    let first = spawn_app_with(db, args, Some(accrual)).await;
    let user = first.register_user().await;
    let db = first.stop().await;

    let accrual = TestAccrual::instant();
    let args = without_secret(base_args(&db, &accrual.url));
    let second = spawn_app_with(db, args, Some(accrual)).await;
    let response = second.get("/api/user/balance", Some(&user.token)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn a_genuine_token_for_a_user_this_database_lacks_gets_401(backend: Backend) {
    // Signed with the right key (a configured secret outlives a reset database).
    use jsonwebtoken::{encode, EncodingKey, Header};
    let app = spawn_app(backend).await;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"sub": "999999", "iat": now, "exp": now + 3600});
    let token = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(b"test-secret-test-secret-test-secret"),
    )
    .unwrap();
    for path in [
        "/api/user/balance",
        "/api/user/orders",
        "/api/user/withdrawals",
        "/api/user/balance/withdrawals",
    ] {
        let response = app.get(path, Some(&token)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_writes_get_401(&app, Some(&token)).await;
}

/// The password hash stored for `login`.
async fn stored_hash(app: &TestApp, login: &str) -> String {
    let db = Database::connect(app.db_url()).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            match db.get_database_backend() {
                DbBackend::Postgres => "SELECT password_hash FROM users WHERE login = $1",
                _ => "SELECT password_hash FROM users WHERE login = ?",
            },
            [login.into()],
        ))
        .await
        .unwrap()
        .expect("the user exists");
    let hash = row.try_get::<String>("", "password_hash").unwrap();
    db.close().await.unwrap();
    hash
}

/// Overwrites the password hash stored for `login`.
async fn store_hash(app: &TestApp, login: &str, hash: &str) {
    let db = Database::connect(app.db_url()).await.unwrap();
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => "UPDATE users SET password_hash = $1 WHERE login = $2",
        _ => "UPDATE users SET password_hash = ? WHERE login = ?",
    };
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        [hash.into(), login.into()],
    ))
    .await
    .unwrap();
    db.close().await.unwrap();
}

async fn outdated_password_hashes_are_replaced_at_the_next_successful_login(backend: Backend) {
    use sha2::{Digest, Sha256};
    let db = TestDb::create(backend).await;
    let accrual = TestAccrual::instant();
    let args = base_args(&db, &accrual.url);
    let app = spawn_app_with(db, args.clone(), Some(accrual)).await;
    let user = app.register_user().await;
    assert!(stored_hash(&app, &user.login)
        .await
        .starts_with("hmac-sha256$$2b$04$"));

    // A hash of the earlier scheme: bcrypt over the plain SHA-256 of the password, which
    // leaked unsalted SHA-256 hashes from elsewhere could be tried against.
    let digest: String = Sha256::digest(user.password.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let legacy = bcrypt::hash(digest, 4).unwrap();
    store_hash(&app, &user.login, &legacy).await;
    let pair = |password: &str| json!({"login": user.login, "password": password});
    assert_eq!(
        app.post_login(&pair("wrong")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(stored_hash(&app, &user.login).await, legacy);
    assert_eq!(
        app.post_login(&pair(&user.password)).await.status(),
        StatusCode::OK,
        "nobody is locked out by the new scheme"
    );
    let upgraded = stored_hash(&app, &user.login).await;
    assert!(upgraded.starts_with("hmac-sha256$$2b$04$"), "{upgraded}");
    assert_eq!(
        app.post_login(&pair(&user.password)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        stored_hash(&app, &user.login).await,
        upgraded,
        "hashed once"
    );

    // Restarted at another cost: the next sign-in re-hashes at it.
    let db = app.stop().await;
    let app = spawn_app_with(
        db,
        with_flag(args, "--bcrypt-cost", "6"),
        Some(TestAccrual::instant()),
    )
    .await;
    assert_eq!(
        app.post_login(&pair(&user.password)).await.status(),
        StatusCode::OK
    );
    let rehashed = stored_hash(&app, &user.login).await;
    assert!(rehashed.starts_with("hmac-sha256$$2b$06$"), "{rehashed}");
}

async fn a_wrong_password_under_a_cheaper_hash_takes_as_long_as_an_unknown_login(backend: Backend) {
    let db = TestDb::create(backend).await;
    let accrual = TestAccrual::instant();
    let args = base_args(&db, &accrual.url);
    let app = spawn_app_with(db, args.clone(), Some(accrual)).await;
    let user = app.register_user().await;
    let db = app.stop().await;
    let app = spawn_app_with(
        db,
        with_flag(args, "--bcrypt-cost", "10"),
        Some(TestAccrual::instant()),
    )
    .await;
    let median_login = |login: String| {
        let app = &app;
        async move {
            let mut times = Vec::new();
            for _ in 0..5 {
                let at = Instant::now();
                let response = app
                    .post_login(&json!({"login": login, "password": "wrong"}))
                    .await;
                times.push(at.elapsed());
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            }
            times.sort();
            times[2]
        }
    };
    let existing = median_login(user.login.clone()).await;
    let unknown = median_login("nobody-at-all".to_owned()).await;
    assert!(
        existing * 2 >= unknown,
        "an existing login answers in {existing:?}, an unknown one in {unknown:?}"
    );
}

async fn the_course_flow_passes_with_the_default_rate_limits(backend: Backend) {
    let db = TestDb::create(backend).await;
    let accrual = TestAccrual::instant();
    let mut args = base_args(&db, &accrual.url);
    for flag in [
        "--auth-rate-per-ip",
        "--auth-rate-per-login",
        "--upload-rate-per-user",
    ] {
        let at = args.iter().position(|a| a == flag).unwrap();
        args.drain(at..at + 2);
    }
    let app = spawn_app_with(db, args, Some(accrual)).await;
    // As the course's suite does: a handful of shoppers, each registering, signing in
    // twice, uploading, spending and listing.
    for _ in 0..5 {
        let user = app.register_user().await;
        for _ in 0..2 {
            let response = app
                .post_login(&json!({"login": user.login, "password": user.password}))
                .await;
            assert_eq!(response.status(), StatusCode::OK);
        }
        app.fund(&user, json!(729.98)).await;
        let withdraw = app
            .post_withdraw(&user, &json!({"order": order_number(), "sum": 700}))
            .await;
        assert_eq!(withdraw.status(), StatusCode::OK);
        assert_eq!(app.balance(&user).await, ("29.98".into(), "700".into()));
        assert_eq!(app.get_orders(&user).await.status(), StatusCode::OK);
    }
}

/// An upload and a withdrawal with `token` (or none) are both refused with `401`.
async fn assert_writes_get_401(app: &TestApp, token: Option<&str>) {
    let upload = app
        .post_raw("/api/user/orders", token, b"79927398713".to_vec(), &[])
        .await;
    assert_eq!(
        upload.status(),
        StatusCode::UNAUTHORIZED,
        "upload with {token:?}"
    );
    let body = br#"{"order":"2377225624","sum":1}"#.to_vec();
    let withdraw = app
        .post_raw("/api/user/balance/withdraw", token, body, &[])
        .await;
    assert_eq!(
        withdraw.status(),
        StatusCode::UNAUTHORIZED,
        "withdraw with {token:?}"
    );
}

async fn logout_answers_204_and_expires_the_cookie(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_raw("/api/user/logout", None, Vec::new(), &[])
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a cookie")
        .to_owned();
    assert!(cookie.starts_with("token=;"), "{cookie}");
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    // A page of another site cannot sign the shopper out.
    let cross = app
        .post_raw(
            "/api/user/logout",
            None,
            Vec::new(),
            &[("Sec-Fetch-Site", "cross-site")],
        )
        .await;
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
}

async fn after_logout_the_browser_is_signed_out(backend: Backend) {
    let app = spawn_app(backend).await;
    // A client that keeps cookies as a browser does.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let url = |path: &str| format!("{}{path}", app.address);
    let register = browser
        .post(url("/api/user/register"))
        .body(json!({"login": "dora", "password": "secret"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), StatusCode::OK);
    let balance = browser.get(url("/api/user/balance")).send().await.unwrap();
    assert_eq!(balance.status(), StatusCode::OK);
    let logout = browser
        .post(url("/api/user/logout"))
        .header("Sec-Fetch-Site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let balance = browser.get(url("/api/user/balance")).send().await.unwrap();
    assert_eq!(balance.status(), StatusCode::UNAUTHORIZED);
}
