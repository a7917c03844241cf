//! The accrual pipeline seen from outside: when the accrual system is asked, how the
//! service backs off, pauses and paces itself, and that every order is credited exactly
//! once — through failures, `429`s, `kill -9` and a second instance on the database.

use std::cell::RefCell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::header::HttpDate;
use futures_util::future::join_all;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{json, Value};

use crate::balance::{assert_ledger_matches, assert_ledger_matches_in};
use crate::helpers::{
    base_args, eventually, order_number, spawn_app, spawn_app_asking, spawn_app_with, with_flag,
    Backend, TestAccrual, TestApp, TestDb, TestUser,
};
use crate::process::ServiceProcess;
use crate::scripted::{Reply, Request, ScriptedAccrual};

crate::on_both_backends!(
    a_new_upload_is_asked_about_at_once,
    non_final_answers_are_asked_again_with_doubling_delays_up_to_the_cap,
    unknown_orders_back_off_to_the_unknown_cap_and_stay_new_until_processed,
    a_429_pauses_every_poller_until_retry_after_has_passed,
    a_429_without_a_usable_retry_after_pauses_for_the_default_pause,
    a_429_with_an_http_date_retry_after_pauses_until_that_date,
    after_a_429_the_service_paces_itself_under_the_announced_limit,
    failures_timeouts_and_garbage_are_retried_without_holding_up_other_orders,
    a_kill_9_during_processing_loses_no_order_and_credits_none_twice,
    orders_unknown_when_the_service_was_killed_are_credited_after_a_restart,
    a_follower_never_asks_and_takes_over_when_the_leader_stops,
    the_courses_end_to_end_flow_credits_729_98_and_spends_it,
);

/// Pollers in the tests that count requests in flight.
const WORKERS: usize = 4;

/// Room for a loaded machine on top of an expected delay.
const SLACK: Duration = Duration::from_millis(300);

/// The order `number` as listed to `user`, if listed.
async fn listed(app: &TestApp, user: &TestUser, number: &str) -> Option<Value> {
    let response = app.get_orders(user).await;
    if response.status() != StatusCode::OK {
        return None;
    }
    let orders: Vec<Value> = response.json().await.ok()?;
    orders.into_iter().find(|o| o["number"] == number)
}

/// Gaps between consecutive instants.
fn gaps(times: &[Instant]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Asserts each gap is at least 85 % of the expected delay (jitter shortens delays by up
/// to 10 %) and none exceeds `cap` plus slack.
fn assert_backoff(gaps: &[Duration], expected_ms: &[u64], cap: Duration) {
    assert_eq!(gaps.len(), expected_ms.len(), "gaps {gaps:?}");
    for (i, (gap, expected)) in gaps.iter().zip(expected_ms).enumerate() {
        let floor = Duration::from_millis(expected * 85 / 100);
        assert!(
            *gap >= floor,
            "gap {i} was {gap:?}, expected about {expected} ms (all: {gaps:?})"
        );
        assert!(
            *gap <= cap + SLACK,
            "gap {i} was {gap:?}, over the cap {cap:?} (all: {gaps:?})"
        );
    }
}

/// Runs a `SELECT` that yields one integer column `n`, straight on the database.
async fn count(db_url: &str, sql: &str) -> i64 {
    let db = Database::connect(db_url).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    let n = row.try_get::<i64>("", "n").unwrap();
    let _ = db.close().await;
    n
}

/// Ledger rows crediting the accrual of `number`.
async fn accrual_rows_for(db_url: &str, number: &str) -> i64 {
    count(
        db_url,
        &format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ledger \
             WHERE cause = 'accrual' AND reference = '{number}'"
        ),
    )
    .await
}

/// Points as the service writes them: `42`, `500.5`, `729.98`.
fn points_text(cents: i64) -> String {
    match cents % 100 {
        0 => format!("{}", cents / 100),
        c if c % 10 == 0 => format!("{}.{}", cents / 100, c / 10),
        c => format!("{}.{c:02}", cents / 100),
    }
}

async fn a_new_upload_is_asked_about_at_once(backend: Backend) {
    // Every re-ask delay is 10 s: only an immediate first question makes it in time.
    let slow = [
        ("--accrual-retry-min", "10s"),
        ("--accrual-retry-max", "10s"),
        ("--accrual-unknown-retry-max", "10s"),
    ];
    let accrual = TestAccrual::instant();
    let app = spawn_app_asking(backend, &accrual.url, &slow).await;
    let user = app.register_user().await;
    let number = order_number();
    accrual.add_order_worth(&number, json!(42)).await;
    assert_eq!(
        app.post_order(&user, &number).await.status(),
        StatusCode::ACCEPTED
    );
    let processed = eventually(Duration::from_secs(2), || async {
        listed(&app, &user, &number)
            .await
            .filter(|o| o["status"] == "PROCESSED")
    })
    .await;
    assert!(
        processed.is_some(),
        "not PROCESSED within 2 s of the upload"
    );

    // The same against a server that counts: exactly one question, at once.
    let server = ScriptedAccrual::start();
    let app = spawn_app_asking(backend, &server.url, &slow).await;
    let user = app.register_user().await;
    let number = order_number();
    server.script(&number, vec![Reply::processed("42")]);
    assert_eq!(
        app.post_order(&user, &number).await.status(),
        StatusCode::ACCEPTED
    );
    let processed = eventually(Duration::from_secs(2), || async {
        listed(&app, &user, &number)
            .await
            .filter(|o| o["status"] == "PROCESSED")
    })
    .await;
    assert!(
        processed.is_some(),
        "not PROCESSED within 2 s of the upload"
    );
    // Observing that no second question follows.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.times_for(&number).len(),
        1,
        "{:?}",
        server.requests()
    );
    assert_eq!(app.balance(&user).await, ("42".into(), "0".into()));
}

async fn non_final_answers_are_asked_again_with_doubling_delays_up_to_the_cap(backend: Backend) {
    let server = ScriptedAccrual::start();
    let app = spawn_app_asking(
        backend,
        &server.url,
        &[
            ("--accrual-retry-min", "50ms"),
            ("--accrual-retry-max", "400ms"),
        ],
    )
    .await;
    let user = app.register_user().await;
    let number = order_number();
    let mut script = vec![Reply::status("PROCESSING"); 5];
    script.push(Reply::processed("12.5"));
    server.script(&number, script);
    assert_eq!(
        app.post_order(&user, &number).await.status(),
        StatusCode::ACCEPTED
    );
    let pending = eventually(Duration::from_secs(3), || async {
        listed(&app, &user, &number)
            .await
            .filter(|o| o["status"] == "PROCESSING")
    })
    .await
    .expect("listed as PROCESSING while the accrual system calculates");
    assert!(pending.get("accrual").is_none(), "{pending}");
    let done = app.wait_for_status(&user, &number, "PROCESSED").await;
    assert_eq!(done["accrual"], json!(12.5));

    // 50, 100, 200, 400, then capped at 400 instead of 800.
    let gaps = gaps(&server.times_for(&number));
    assert_backoff(&gaps, &[50, 100, 200, 400, 400], Duration::from_millis(400));
    assert_eq!(app.balance(&user).await, ("12.5".into(), "0".into()));
    assert_eq!(accrual_rows_for(app.db_url(), &number).await, 1);
    assert_ledger_matches(&app).await;
}

async fn unknown_orders_back_off_to_the_unknown_cap_and_stay_new_until_processed(backend: Backend) {
    let server = ScriptedAccrual::start();
    let app = spawn_app_asking(
        backend,
        &server.url,
        &[
            ("--accrual-retry-min", "25ms"),
            ("--accrual-retry-max", "50ms"),
            ("--accrual-unknown-retry-max", "200ms"),
        ],
    )
    .await;
    let user = app.register_user().await;
    let number = order_number();
    let mut script = vec![Reply::no_content(); 7];
    script.push(Reply::processed("7"));
    server.script(&number, script);
    assert_eq!(
        app.post_order(&user, &number).await.status(),
        StatusCode::ACCEPTED
    );
    let seen = RefCell::new(Vec::new());
    let done = eventually(Duration::from_secs(10), || async {
        let order = listed(&app, &user, &number).await?;
        let status = order["status"].as_str()?.to_owned();
        seen.borrow_mut().push(status.clone());
        (status == "PROCESSED").then_some(order)
    })
    .await
    .expect("PROCESSED once the accrual system knows it");
    assert_eq!(done["accrual"], json!(7));
    let seen = seen.into_inner();
    assert!(
        seen[..seen.len() - 1].iter().all(|s| s == "NEW"),
        "an unknown order stays NEW, never INVALID: {seen:?}"
    );

    // Beyond the 50 ms cap of non-final answers, up to the 200 ms cap of unknown ones.
    let gaps = gaps(&server.times_for(&number));
    assert_backoff(
        &gaps,
        &[25, 50, 100, 200, 200, 200, 200],
        Duration::from_millis(200),
    );
    assert_eq!(app.balance(&user).await, ("7".into(), "0".into()));
    assert_eq!(accrual_rows_for(app.db_url(), &number).await, 1);
}

/// Uploads 8 orders at once to a service with 4 pollers whose first request overall is
/// answered with `throttle()` (built right before the uploads), every other PROCESSED.
/// Waits until all are credited; returns every request and the one answered `429`.
async fn first_request_throttled(
    backend: Backend,
    default_pause: &str,
    throttle: impl FnOnce() -> Reply,
) -> (Vec<Request>, Request) {
    let server = ScriptedAccrual::start();
    let workers = WORKERS.to_string();
    let app = spawn_app_asking(
        backend,
        &server.url,
        &[
            ("--accrual-workers", workers.as_str()),
            ("--accrual-default-pause", default_pause),
        ],
    )
    .await;
    let user = app.register_user().await;
    let numbers: Vec<String> = (0..8).map(|_| order_number()).collect();
    for number in &numbers {
        server.script(number, vec![Reply::processed("1")]);
    }
    server.on_request(1, throttle());
    let uploads = join_all(numbers.iter().map(|n| app.post_order(&user, n))).await;
    assert!(uploads.iter().all(|r| r.status() == StatusCode::ACCEPTED));
    for number in &numbers {
        app.wait_for_status(&user, number, "PROCESSED").await;
    }
    assert_eq!(app.balance(&user).await, ("8".into(), "0".into()));
    assert_ledger_matches(&app).await;
    let requests = server.requests();
    let throttled: Vec<&Request> = requests.iter().filter(|r| r.status == 429).collect();
    assert_eq!(throttled.len(), 1, "{requests:?}");
    let throttled = throttled[0].clone();
    (requests, throttled)
}

/// Asserts that between the `429` and `resume` only requests already in flight arrived
/// (at most workers − 1), and that the throttled order was asked again between `resume`
/// and `resume + late`.
fn assert_paused(
    requests: &[Request],
    throttled: &Request,
    resume: Instant,
    early: Duration,
    late: Duration,
) {
    let during: Vec<&Request> = requests
        .iter()
        .filter(|r| r.at > throttled.at && r.at < resume - early)
        .collect();
    assert!(
        during.len() < WORKERS,
        "{} requests arrived during the pause: {during:?}",
        during.len()
    );
    let again = requests
        .iter()
        .find(|r| r.order == throttled.order && r.at > throttled.at)
        .expect("the throttled order is asked again");
    assert!(
        again.at >= resume - early,
        "asked again {:?} before the pause ended",
        (resume - early).saturating_duration_since(again.at)
    );
    assert!(
        again.at <= resume + late,
        "asked again {:?} after the pause ended",
        again.at.saturating_duration_since(resume)
    );
}

async fn a_429_pauses_every_poller_until_retry_after_has_passed(backend: Backend) {
    // The default pause is long, so only `Retry-After` can end the pause this soon.
    let (requests, throttled) =
        first_request_throttled(backend, "10s", || Reply::too_many("1", 1000)).await;
    let resume = throttled.at + Duration::from_secs(1);
    assert_paused(&requests, &throttled, resume, Duration::ZERO, SLACK);
}

async fn a_429_without_a_usable_retry_after_pauses_for_the_default_pause(backend: Backend) {
    for retry_after in ["", "soon"] {
        let (requests, throttled) =
            first_request_throttled(backend, "700ms", || Reply::too_many(retry_after, 1000)).await;
        let resume = throttled.at + Duration::from_millis(700);
        assert_paused(&requests, &throttled, resume, Duration::ZERO, SLACK);
    }
}

async fn a_429_with_an_http_date_retry_after_pauses_until_that_date(backend: Backend) {
    let mut resume = None;
    let (requests, throttled) = first_request_throttled(backend, "10s", || {
        // A date about 2 s ahead, whole seconds as HTTP dates have: 1–2 s of pause.
        let (now, now_instant) = (SystemTime::now(), Instant::now());
        let ahead = (now + Duration::from_secs(2))
            .duration_since(UNIX_EPOCH)
            .unwrap();
        let date = UNIX_EPOCH + Duration::from_secs(ahead.as_secs());
        resume = Some(now_instant + date.duration_since(now).unwrap());
        Reply::too_many(&HttpDate::from(date).to_string(), 1000)
    })
    .await;
    let resume = resume.unwrap();
    assert!(resume - throttled.at > Duration::from_millis(800));
    // The date has whole seconds and two clocks are read: allow a few milliseconds early.
    assert_paused(
        &requests,
        &throttled,
        resume,
        Duration::from_millis(20),
        SLACK,
    );
}

async fn after_a_429_the_service_paces_itself_under_the_announced_limit(backend: Backend) {
    let server = ScriptedAccrual::start();
    let workers = WORKERS.to_string();
    let app = spawn_app_asking(
        backend,
        &server.url,
        &[("--accrual-workers", workers.as_str())],
    )
    .await;
    let user = app.register_user().await;
    let numbers: Vec<String> = (0..10).map(|_| order_number()).collect();
    for number in &numbers {
        server.script(number, vec![Reply::processed("1")]);
    }
    // Five requests went out; the sixth learns the limit is five a minute.
    server.on_request(6, Reply::too_many("1", 5));
    let uploads = join_all(numbers.iter().map(|n| app.post_order(&user, n))).await;
    assert!(uploads.iter().all(|r| r.status() == StatusCode::ACCEPTED));
    let throttled = eventually(Duration::from_secs(5), || async {
        server.requests().into_iter().find(|r| r.status == 429)
    })
    .await
    .expect("the sixth request is answered 429");

    // Observing: Retry-After (1 s) passes, but five requests of the last minute fill the
    // announced window, so nothing new may leave for about a minute.
    let window = throttled.at + Duration::from_secs(3);
    tokio::time::sleep_until(window.into()).await;
    let requests = server.requests();
    let after: Vec<&Request> = requests
        .iter()
        .filter(|r| r.at > throttled.at && r.at <= window)
        .collect();
    assert!(
        after.len() < WORKERS,
        "{} requests within 3 s of a 429 announcing 5/minute: {after:?}",
        after.len()
    );
    let answered = requests.iter().filter(|r| r.status == 200).count();
    let processed = eventually(Duration::from_secs(5), || async {
        let orders: Vec<Value> = app.get_orders(&user).await.json().await.ok()?;
        let done = orders.iter().filter(|o| o["status"] == "PROCESSED").count();
        (done == answered).then_some(orders)
    })
    .await
    .expect("every PROCESSED answer is credited");
    assert!(
        processed.iter().any(|o| o["status"] == "NEW"),
        "the rest waits for the window: {processed:?}"
    );
    assert_eq!(app.balance(&user).await, (answered.to_string(), "0".into()));
}

async fn failures_timeouts_and_garbage_are_retried_without_holding_up_other_orders(
    backend: Backend,
) {
    let server = ScriptedAccrual::start();
    let app = spawn_app_asking(backend, &server.url, &[("--accrual-timeout", "300ms")]).await;
    let user = app.register_user().await;
    let (sick, healthy) = (order_number(), order_number());
    server.script(
        &sick,
        vec![
            Reply::server_error(),
            Reply::garbage(),
            Reply::hang(Duration::from_secs(2)),
            Reply::processed("10"),
        ],
    );
    server.script(&healthy, vec![Reply::processed("20")]);
    assert_eq!(
        app.post_order(&user, &sick).await.status(),
        StatusCode::ACCEPTED
    );
    eventually(Duration::from_secs(5), || async {
        (server.times_for(&sick).len() >= 3).then_some(())
    })
    .await
    .expect("the sick order is asked a third time (the hanging one)");

    // While the sick order's question hangs, the healthy one goes through.
    assert_eq!(
        app.post_order(&user, &healthy).await.status(),
        StatusCode::ACCEPTED
    );
    let orders = eventually(Duration::from_secs(5), || async {
        let orders: Vec<Value> = app.get_orders(&user).await.json().await.ok()?;
        orders
            .iter()
            .any(|o| o["number"] == healthy.as_str() && o["status"] == "PROCESSED")
            .then_some(orders)
    })
    .await
    .expect("the healthy order is credited");
    let sick_now = orders
        .iter()
        .find(|o| o["number"] == sick.as_str())
        .unwrap();
    assert_eq!(
        sick_now["status"], "NEW",
        "failures change nothing: {orders:?}"
    );

    let done = app.wait_for_status(&user, &sick, "PROCESSED").await;
    assert_eq!(done["accrual"], json!(10));
    let times = server.times_for(&sick);
    assert_eq!(times.len(), 4, "{:?}", server.requests());
    let after_hang = times[3] - times[2];
    assert!(
        after_hang >= Duration::from_millis(300) && after_hang < Duration::from_millis(1500),
        "the hanging question is abandoned after the 300 ms timeout, not 2 s: {after_hang:?}"
    );
    // Still serving, credited once each.
    assert_eq!(
        app.get("/health", None).await.status(),
        StatusCode::OK,
        "the service is alive"
    );
    assert_eq!(app.balance(&user).await, ("30".into(), "0".into()));
    assert_eq!(accrual_rows_for(app.db_url(), &sick).await, 1);
    assert_eq!(accrual_rows_for(app.db_url(), &healthy).await, 1);
    assert_ledger_matches(&app).await;
}

/// Asks the emulator at `url` until `number` is PROCESSED there.
async fn emulator_processed(url: &str, number: &str) -> bool {
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(5), || async {
        let response = client
            .get(format!("{url}/api/orders/{number}"))
            .send()
            .await
            .ok()?;
        let body: Value = response.json().await.ok()?;
        (body["status"] == "PROCESSED").then_some(())
    })
    .await
    .is_some()
}

/// Waits until every one of `numbers` is PROCESSED in the process's list.
async fn all_processed(service: &ServiceProcess, user: &TestUser, numbers: &[String]) {
    let done = eventually(Duration::from_secs(15), || async {
        let orders = service.orders(user).await;
        numbers
            .iter()
            .all(|n| {
                orders
                    .iter()
                    .any(|o| o["number"] == n.as_str() && o["status"] == "PROCESSED")
            })
            .then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "not all PROCESSED: {:?}",
        service.orders(user).await
    );
}

async fn a_kill_9_during_processing_loses_no_order_and_credits_none_twice(backend: Backend) {
    // The first half is final in the accrual system before its upload, and some of it is
    // credited before the kill; the second half is registered there right before its
    // upload and takes a second, so the kill catches it in flight.
    let accrual = TestAccrual::start(0, Duration::from_secs(1));
    let db = TestDb::create(backend).await;
    let args = base_args(&db, &accrual.url);
    let numbers: Vec<String> = (0..30).map(|_| order_number()).collect();
    let cents: Vec<i64> = (0..30).map(|i| 100 * (i + 1) + (i * 37) % 100).collect();
    let worth = |i: usize| serde_json::from_str::<Value>(&points_text(cents[i])).unwrap();
    let (first, second) = numbers.split_at(15);
    for (i, number) in first.iter().enumerate() {
        accrual.add_order_worth(number, worth(i)).await;
    }
    let service = ServiceProcess::start(args.clone()).await;
    let user = service.register_user().await;
    for number in first {
        assert!(emulator_processed(&accrual.url, number).await);
    }
    let uploads = join_all(first.iter().map(|n| service.post_order(&user, n))).await;
    assert!(
        uploads.iter().all(|s| *s == StatusCode::ACCEPTED),
        "{uploads:?}"
    );
    eventually(Duration::from_secs(5), || async {
        let orders = service.orders(&user).await;
        orders
            .iter()
            .any(|o| o["status"] == "PROCESSED")
            .then_some(())
    })
    .await
    .expect("some orders are credited before the kill");
    for (i, number) in second.iter().enumerate() {
        accrual.add_order_worth(number, worth(15 + i)).await;
    }
    let uploads = join_all(second.iter().map(|n| service.post_order(&user, n))).await;
    assert!(
        uploads.iter().all(|s| *s == StatusCode::ACCEPTED),
        "{uploads:?}"
    );
    service.kill();
    let credited = count(
        &db.url,
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM orders WHERE status = 'PROCESSED'",
    )
    .await;
    eprintln!("{credited} of 30 orders were credited before kill -9");
    assert!(
        (1..30).contains(&credited),
        "{credited} of 30 credited before kill -9: the scenario needs a mix"
    );

    let service = ServiceProcess::start(args).await;
    all_processed(&service, &user, &numbers).await;
    let total: i64 = cents.iter().sum();
    assert_eq!(
        service.balance_text(&user).await,
        format!(r#"{{"current":{},"withdrawn":0}}"#, points_text(total))
    );
    let orders = service.orders(&user).await;
    for (i, number) in numbers.iter().enumerate() {
        let order = orders
            .iter()
            .find(|o| o["number"] == number.as_str())
            .unwrap();
        assert_eq!(
            order["accrual"].to_string(),
            points_text(cents[i]),
            "{order}"
        );
    }
    assert_eq!(accrual_rows(&db.url).await, 30);
    assert_ledger_matches_in(&db.url).await;
    drop(service);
}

async fn orders_unknown_when_the_service_was_killed_are_credited_after_a_restart(backend: Backend) {
    let accrual = TestAccrual::instant();
    let db = TestDb::create(backend).await;
    let args = base_args(&db, &accrual.url);
    let service = ServiceProcess::start(args.clone()).await;
    let user = service.register_user().await;
    let numbers: Vec<String> = (0..5).map(|_| order_number()).collect();
    for number in &numbers {
        assert_eq!(
            service.post_order(&user, number).await,
            StatusCode::ACCEPTED
        );
    }
    // Asked at least once, and unknown: still NEW.
    let asked = eventually(Duration::from_secs(5), || async {
        let n = count(
            &db.url,
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM orders \
             WHERE attempts >= 1 AND status = 'NEW'",
        )
        .await;
        (n == 5).then_some(())
    })
    .await;
    assert!(
        asked.is_some(),
        "every order was asked about and is unknown"
    );
    service.kill();

    let service = ServiceProcess::start(args).await;
    for (i, number) in numbers.iter().enumerate() {
        accrual
            .add_order_worth(number, json!(10 * (i + 1) as u64))
            .await;
    }
    all_processed(&service, &user, &numbers).await;
    assert_eq!(
        service.balance_text(&user).await,
        r#"{"current":150,"withdrawn":0}"#
    );
    assert_eq!(accrual_rows(&db.url).await, 5);
    assert_ledger_matches_in(&db.url).await;
    drop(service);
}

async fn a_follower_never_asks_and_takes_over_when_the_leader_stops(backend: Backend) {
    // Instance A in this process, instance B the binary, on one PostgreSQL database (a
    // second instance on one SQLite file is refused: see lifecycle). They ask via
    // different paths, to be told apart. A starts first and leads.
    if backend != Backend::Postgres {
        return;
    }
    let start = Instant::now();
    let server = ScriptedAccrual::start();
    let db = TestDb::create(backend).await;
    let args_a = with_flag(
        base_args(&db, &format!("{}/a", server.url)),
        "--cluster",
        "true",
    );
    let args_b = with_flag(args_a.clone(), "-r", &format!("{}/b", server.url));
    let db_url = db.url.clone();
    let a = spawn_app_with(db, args_a, None).await;
    let b = ServiceProcess::start(args_b).await;
    let user = b.register_user().await;
    let number = order_number();
    let asked_via = |via: &'static str, since: Instant, status: u16| {
        let (server, number) = (&server, &number);
        async move {
            eventually(Duration::from_secs(10), || async {
                server
                    .requests()
                    .into_iter()
                    .find(|r| {
                        r.order == *number && r.via == via && r.at >= since && r.status == status
                    })
                    .map(|_| ())
            })
            .await
            .is_some()
        }
    };
    // Uploaded on the follower: the leader hears of it from the database.
    assert_eq!(b.post_order(&user, &number).await, StatusCode::ACCEPTED);
    assert!(
        asked_via("/a", start, 204).await,
        "the leader asks about it"
    );
    assert!(
        !server.requests().iter().any(|r| r.via == "/b"),
        "the follower asked the accrual system"
    );

    // Stopped, keeping the database.
    let _db = a.stop().await;
    let stopped = Instant::now();
    assert!(
        asked_via("/b", stopped, 204).await,
        "B took over: {:#?}",
        b.log_lines()
    );
    server.script(&number, vec![Reply::processed("100")]);
    let processed = eventually(Duration::from_secs(10), || async {
        (b.orders(&user).await.first()?["status"] == "PROCESSED").then_some(())
    })
    .await;
    assert!(processed.is_some());
    assert_eq!(accrual_rows_for(&db_url, &number).await, 1);
    assert_eq!(
        b.balance_text(&user).await,
        r#"{"current":100,"withdrawn":0}"#
    );
    assert_ledger_matches_in(&db_url).await;
    drop(b);
}

async fn the_courses_end_to_end_flow_credits_729_98_and_spends_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let emulator = app.emulator();
    emulator.add_rule("Bork", json!(5), "%").await;
    let number = order_number();
    emulator
        .add_order(&number, &[("Чайник Bork", json!(14599.50))])
        .await;
    let user = app.register_user().await;
    assert_eq!(
        app.post_order(&user, &number).await.status(),
        StatusCode::ACCEPTED
    );
    app.wait_for_status(&user, &number, "PROCESSED").await;
    let list = app.get_orders(&user).await.text().await.unwrap();
    assert!(list.contains(r#""accrual":729.98"#), "{list}");
    assert_eq!(
        app.get_balance(&user).await.text().await.unwrap(),
        r#"{"current":729.98,"withdrawn":0}"#
    );

    let spent_on = order_number();
    let withdraw = app
        .post_withdraw(&user, &json!({"order": spent_on, "sum": 729.98}))
        .await;
    assert_eq!(withdraw.status(), StatusCode::OK);
    assert_eq!(
        app.get_balance(&user).await.text().await.unwrap(),
        r#"{"current":0,"withdrawn":729.98}"#
    );
    let withdrawals = app.get_withdrawals(&user).await;
    assert_eq!(withdrawals.status(), StatusCode::OK);
    let withdrawals: Vec<Value> = withdrawals.json().await.unwrap();
    assert_eq!(withdrawals.len(), 1);
    assert_eq!(withdrawals[0]["order"], spent_on.as_str());
    assert_eq!(withdrawals[0]["sum"], json!(729.98));
    assert_ledger_matches(&app).await;
}

/// How many accruals the ledger holds, read straight from the database.
async fn accrual_rows(db_url: &str) -> i64 {
    count(
        db_url,
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ledger WHERE cause = 'accrual'",
    )
    .await
}
