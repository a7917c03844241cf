//! Registration, login and authentication.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    base_args, bearer, spawn_app, spawn_app_with, Backend, TestAccrual, TestApp, TestDb,
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
    let balance = app.get("/api/user/balance", Some(&token)).await;
    assert_eq!(balance.status(), StatusCode::UNAUTHORIZED);
    assert_writes_get_401(&app, Some(&token)).await;
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
