//! The operator's and the shop's credentials.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{
    base_args, spawn_app, spawn_app_with, Backend, TestAccrual, TestDb, ADMIN_TOKEN, SHOP_TOKEN,
};

crate::on_both_backends!(
    operator_endpoints_admit_the_operator_token_only,
    an_unset_token_disables_its_api_with_403,
);

async fn operator_endpoints_admit_the_operator_token_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let shopper = app.register_user().await;
    for path in [
        "/api/admin/stats/summary",
        "/api/admin/audit",
        "/api/admin/nowhere",
    ] {
        for token in [
            None,
            Some("wrong-token-0123456789"),
            Some(shopper.token.as_str()),
            Some(SHOP_TOKEN),
        ] {
            let response = app.get(path, token).await;
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{path} with {token:?}"
            );
            assert!(!response.text().await.unwrap().is_empty(), "a reason");
        }
    }
    assert_eq!(
        app.admin_get("/api/admin/stats/summary").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.admin_get("/api/admin/nowhere").await.status(),
        StatusCode::NOT_FOUND
    );
    // The shop's scope: the shop's token, and nothing else, gets past the door.
    assert_eq!(
        app.get("/api/shop/nowhere", Some(ADMIN_TOKEN))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/shop/nowhere", Some(SHOP_TOKEN))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // And the operator's token is no shopper's.
    assert_eq!(
        app.get("/api/user/balance", Some(ADMIN_TOKEN))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn an_unset_token_disables_its_api_with_403(backend: Backend) {
    let accrual = TestAccrual::instant();
    let db = TestDb::create(backend).await;
    let mut args = base_args(&db, &accrual.url);
    for flag in ["--admin-token", "--shop-token"] {
        let at = args.iter().position(|a| a == flag).unwrap();
        args.drain(at..at + 2);
    }
    let app = spawn_app_with(db, args, Some(accrual)).await;
    let response = app.admin_get("/api/admin/stats/summary").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.text().await.unwrap().contains("set ADMIN_TOKEN"));
    let response = app.get("/api/shop/coupons/X", Some(SHOP_TOKEN)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.text().await.unwrap().contains("set SHOP_TOKEN"));
}

#[actix_web::test]
async fn demo_mode_generates_both_tokens_and_prints_a_line_to_copy() {
    let db = TestDb::create(Backend::Sqlite).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_gophermart"))
        .args([
            "-a",
            "127.0.0.1:0",
            "-d",
            &db.url,
            "--emulator-address",
            "127.0.0.1:0",
            "--fulfilment-emulator-address",
            "127.0.0.1:0",
        ])
        .env_remove("ACCRUAL_SYSTEM_ADDRESS")
        .env_remove("ADMIN_TOKEN")
        .env_remove("SHOP_TOKEN")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut curl, mut port) = (None, None);
    while curl.is_none() || port.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("start-up log");
        if line.contains("try: curl") {
            curl = line.split("try: ").nth(1).map(str::to_owned);
        }
        if line.contains("listening") {
            port = line
                .split("port=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned);
        }
    }
    let curl = curl.unwrap();
    let token = curl
        .split("Bearer ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap()
        .to_owned();
    assert!(token.len() >= 16, "{curl}");
    let url = format!("http://127.0.0.1:{}/api/admin/stats/summary", port.unwrap());
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let _ = child.kill();
    let _ = child.wait();
}
