//! The service's life: graceful stop on SIGTERM, and account actors that stop when idle
//! and come back with the committed balance.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    base_args, order_number, spawn_app_with, with_flag, Backend, TestAccrual, TestDb,
};
use crate::process::ServiceProcess;

crate::on_both_backends!(
    sigterm_stops_the_service_with_exit_code_0_and_keeps_pending_work,
    sigint_lets_a_request_in_flight_finish_before_exiting,
    idle_account_actors_stop_and_come_back_with_the_committed_balance,
);

async fn sigterm_stops_the_service_with_exit_code_0_and_keeps_pending_work(backend: Backend) {
    let accrual = TestAccrual::instant();
    let db = TestDb::create(backend).await;
    let args = base_args(&db, &accrual.url);
    let service = ServiceProcess::start(args.clone()).await;
    let user = service.register_user().await;
    let pending = order_number();
    assert_eq!(
        service.post_order(&user, &pending).await,
        StatusCode::ACCEPTED
    );

    let status = service.stop_with("TERM", Duration::from_secs(8)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exit 0 within 8 s, got {status:?}"
    );

    // The order the accrual system did not know yet is still scheduled after a restart.
    let service = ServiceProcess::start(args).await;
    accrual.add_order_worth(&pending, json!(12.5)).await;
    let credited = crate::helpers::eventually(Duration::from_secs(15), || async {
        (service.balance_text(&user).await == r#"{"current":12.5,"withdrawn":0}"#).then_some(())
    })
    .await;
    assert!(credited.is_some(), "{}", service.balance_text(&user).await);
}

async fn idle_account_actors_stop_and_come_back_with_the_committed_balance(backend: Backend) {
    let accrual = TestAccrual::instant();
    let db = TestDb::create(backend).await;
    let args = with_flag(base_args(&db, &accrual.url), "--account-idle", "30ms");
    let app = spawn_app_with(db, args, Some(accrual)).await;
    let user = app.register_user().await;
    app.fund(&user, json!(100)).await;
    // Withdrawals spaced around the idle period: some reach a live actor, some one that
    // has just stopped, some a fresh one.
    for i in 0..30u64 {
        tokio::time::sleep(Duration::from_millis(i % 4 * 15)).await;
        let body = json!({"order": order_number(), "sum": 1});
        assert_eq!(
            app.post_withdraw(&user, &body).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(app.balance(&user).await, ("70".into(), "30".into()));
    crate::balance::assert_ledger_matches(&app).await;
}

async fn sigint_lets_a_request_in_flight_finish_before_exiting(backend: Backend) {
    let accrual = TestAccrual::instant();
    let db = TestDb::create(backend).await;
    // A slow hash keeps the registration in flight while the signal arrives.
    let args = with_flag(base_args(&db, &accrual.url), "--bcrypt-cost", "13");
    let service = ServiceProcess::start(args).await;
    // A connection the server has already accepted, so that the next request on it is
    // read at once rather than waiting in the listen queue when the signal comes.
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/health", service.address))
        .send()
        .await;
    assert_eq!(health.unwrap().status(), StatusCode::OK);
    let register = client
        .post(format!("{}/api/user/register", service.address))
        .body(r#"{"login":"slow","password":"hash me slowly"}"#)
        .send();
    let in_flight = tokio::spawn(register);
    // Observing, not synchronising: give the request time to reach the hashing pool.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = service.stop_with("INT", Duration::from_secs(10)).await;
    let response = in_flight
        .await
        .expect("the request task")
        .expect("an answer");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the request in flight was finished"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "exit 0, got {status:?}"
    );
}

#[actix_web::test]
async fn a_second_instance_on_one_sqlite_file_refuses_to_start() {
    let accrual = TestAccrual::instant();
    let db = TestDb::create(Backend::Sqlite).await;
    let args = base_args(&db, &accrual.url);
    let first = ServiceProcess::start(args.clone()).await;
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_gophermart"))
        .args(&with_flag(args.clone(), "-a", "127.0.0.1:0")[1..])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run a second gophermart");
    assert!(!second.status.success(), "the second instance started");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another gophermart instance is using")
            && stderr.contains("run several instances on PostgreSQL"),
        "{stderr}"
    );
    // The first one serves on, and the file is free again once it is gone.
    let user = first.register_user().await;
    first.kill();
    let third = ServiceProcess::start(args).await;
    assert_eq!(
        third.post_order(&user, &order_number()).await,
        StatusCode::ACCEPTED
    );
    third.kill();
}
