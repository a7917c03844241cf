//! Abuse from outside: slow bodies, guessing storms, floods of sign-ins and uploads,
//! requests forged by other sites, hostile accrual systems, files other local users could
//! read, settings that would open the service up.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{
    base_args, bearer, order_number, spawn_app_asking, spawn_app_flagged, spawn_app_with, Backend,
    TestAccrual, TestApp, TestDb,
};
use crate::scripted::{Reply, ScriptedAccrual};

crate::on_both_backends!(
    slow_bodies_are_cut_off_at_the_deadline_while_other_requests_stay_fast,
    a_guessing_storm_gets_429s_and_another_login_completes_meanwhile,
    sign_ins_are_limited_per_client_address_and_proxies_count_only_when_trusted,
    a_full_hashing_queue_refuses_at_once_with_503,
    uploads_are_limited_per_shopper,
    state_changing_requests_from_other_sites_are_refused,
    a_redirect_from_the_accrual_system_is_not_followed,
    an_oversized_accrual_answer_is_refused_without_reading_it_whole,
    a_quiet_shoppers_order_goes_before_a_noisy_shoppers_backlog,
);

/// `Retry-After` in seconds, when present.
fn retry_after(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

async fn slow_bodies_are_cut_off_at_the_deadline_while_other_requests_stay_fast(backend: Backend) {
    const CONNECTIONS: usize = 200;
    let deadline = Duration::from_secs(1);
    let app = spawn_app_flagged(backend, &[("--body-timeout", "1s")]).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    // Each connection declares a 65 000-byte login body and sends it a byte every 300 ms.
    let slow = (0..CONNECTIONS).map(|_| {
        let address = address.clone();
        async move {
            let mut stream = TcpStream::connect(&address).await.expect("connect");
            let head = format!(
                "POST /api/user/login HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 65000\r\n\r\n{{"
            );
            stream.write_all(head.as_bytes()).await.expect("send the head");
            let (mut reader, mut writer) = stream.into_split();
            let trickle = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if writer.write_all(b" ").await.is_err() {
                        return;
                    }
                }
            });
            let mut answer = Vec::new();
            let closed = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answer))
                .await
                .is_ok();
            trickle.abort();
            (closed, started.elapsed(), String::from_utf8_lossy(&answer).into_owned())
        }
    });
    let slow = tokio::spawn(join_all(slow));
    // Meanwhile ordinary requests are answered as usual.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let at = Instant::now();
        let response = app.get("/health", None).await;
        latencies.push(at.elapsed());
        assert_eq!(response.status(), StatusCode::OK);
    }
    let user = app.register_user().await;
    assert_eq!(app.get_balance(&user).await.status(), StatusCode::OK);
    latencies.sort();
    assert!(
        latencies[latencies.len() / 2] < Duration::from_millis(50),
        "median /health latency with {CONNECTIONS} slow bodies open: {latencies:?}"
    );

    let results = slow.await.expect("the slow clients finish");
    for (closed, after, answer) in &results {
        assert!(closed, "a slow body was still open after 10 s");
        assert!(
            *after < deadline + Duration::from_secs(3),
            "closed only after {after:?}"
        );
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
}

async fn a_guessing_storm_gets_429s_and_another_login_completes_meanwhile(backend: Backend) {
    let app = spawn_app_flagged(
        backend,
        &[("--bcrypt-cost", "10"), ("--auth-rate-per-login", "10")],
    )
    .await;
    let victim = app.register_user().await;
    let other = app.register_user().await;
    // One login alone, for this machine's hashing time at this moment.
    let at = Instant::now();
    let login = json!({"login": other.login, "password": other.password});
    assert_eq!(app.post_login(&login).await.status(), StatusCode::OK);
    let alone = at.elapsed();
    let guesses = (0..200).map(|i| {
        let body = json!({"login": victim.login, "password": format!("guess {i}")});
        let app = &app;
        async move { app.post_login(&body).await }
    });
    let legitimate = async {
        // Let the storm start first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let at = Instant::now();
        let response = app
            .post_login(&json!({"login": other.login, "password": other.password}))
            .await;
        (response.status(), at.elapsed())
    };
    let (answers, (status, took)) = tokio::join!(join_all(guesses), legitimate);
    assert_eq!(status, StatusCode::OK);
    // At most the ten guesses let through can be hashed ahead of it: a storm that were
    // not throttled would keep it waiting for two hundred.
    let bound = (alone * 12).max(Duration::from_secs(1));
    assert!(
        took < bound,
        "a login during the storm took {took:?}, one alone {alone:?}"
    );
    let throttled: Vec<_> = answers
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    let wrong = answers
        .iter()
        .filter(|r| r.status() == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(throttled.len() + wrong, 200);
    assert!(wrong <= 10, "{wrong} guesses were checked");
    assert!(throttled
        .iter()
        .all(|r| retry_after(r).is_some_and(|s| (1..=60).contains(&s))));
}

async fn sign_ins_are_limited_per_client_address_and_proxies_count_only_when_trusted(
    backend: Backend,
) {
    async fn register(app: &TestApp, forwarded: &str) -> reqwest::Response {
        let body =
            json!({"login": format!("u-{}", uuid::Uuid::new_v4().simple()), "password": "p"});
        app.post_raw(
            "/api/user/register",
            None,
            body.to_string().into_bytes(),
            &[("X-Forwarded-For", forwarded)],
        )
        .await
    }
    // Behind a trusted proxy, each forwarded client has its own allowance.
    let proxied = spawn_app_flagged(
        backend,
        &[
            ("--auth-rate-per-ip", "3"),
            ("--trusted-proxies", "127.0.0.1"),
        ],
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            register(&proxied, "203.0.113.7").await.status(),
            StatusCode::OK
        );
    }
    let refused = register(&proxied, "203.0.113.7").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&refused).is_some_and(|s| s >= 1));
    assert!(refused.text().await.expect("a reason").contains("too many"));
    assert_eq!(
        register(&proxied, "203.0.113.8").await.status(),
        StatusCode::OK
    );
    // Without trusted proxies the header is the client's own word, and ignored.
    let direct = spawn_app_flagged(backend, &[("--auth-rate-per-ip", "3")]).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(register(&direct, &format!("198.51.100.{i}")).await.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

async fn a_full_hashing_queue_refuses_at_once_with_503(backend: Backend) {
    let app = spawn_app_flagged(backend, &[("--bcrypt-cost", "9")]).await;
    let logins = (0..100).map(|i| {
        let body = json!({"login": format!("nobody-{i}"), "password": "secret"});
        let app = &app;
        async move {
            let at = Instant::now();
            let response = app.post_login(&body).await;
            (response.status(), retry_after(&response), at.elapsed())
        }
    });
    let answers = join_all(logins).await;
    let busy: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    let checked = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(busy.len() + checked, 100, "{answers:?}");
    assert!(!busy.is_empty(), "nothing was refused: {answers:?}");
    assert!(busy.iter().all(|(_, retry, _)| *retry == Some(1)));
    // Refusals do not wait for the queue.
    let slowest_refusal = busy.iter().map(|(_, _, took)| *took).max();
    assert!(
        slowest_refusal < Some(Duration::from_secs(1)),
        "{slowest_refusal:?}"
    );
}

async fn uploads_are_limited_per_shopper(backend: Backend) {
    let app = spawn_app_flagged(backend, &[("--upload-rate-per-user", "5")]).await;
    let (noisy, quiet) = (app.register_user().await, app.register_user().await);
    for _ in 0..5 {
        assert_eq!(
            app.post_order(&noisy, &order_number()).await.status(),
            StatusCode::ACCEPTED
        );
    }
    let number = order_number();
    let refused = app.post_order(&noisy, &number).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&refused).is_some_and(|s| s >= 1));
    assert_eq!(
        app.post_order(&quiet, &number).await.status(),
        StatusCode::ACCEPTED,
        "another shopper has an allowance of their own, and the refused number was not taken"
    );
}

async fn state_changing_requests_from_other_sites_are_refused(backend: Backend) {
    let app = spawn_app_flagged(backend, &[]).await;
    let user = app.register_user().await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let pair = json!({"login": user.login, "password": user.password})
        .to_string()
        .into_bytes();
    let login = |headers: Vec<(&'static str, String)>| {
        let (app, pair) = (&app, pair.clone());
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let mut all = vec![("Content-Type", "text/plain")];
            all.extend(headers);
            app.post_raw("/api/user/login", None, pair, &all).await
        }
    };
    for headers in [
        vec![("Origin", "https://evil.example".to_owned())],
        vec![("Sec-Fetch-Site", "cross-site".to_owned())],
        vec![("Sec-Fetch-Site", "same-site".to_owned())],
        vec![("Origin", "null".to_owned())],
        vec![
            ("Origin", format!("http://{host}")),
            ("Sec-Fetch-Site", "cross-site".to_owned()),
        ],
    ] {
        let response = login(headers.clone()).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert!(response.headers().get("set-cookie").is_none());
        assert!(bearer(&response).is_none());
    }
    // Cross-site upload with a bearer token is refused too: the check is by method.
    let forged = app
        .post_raw(
            "/api/user/orders",
            Some(&user.token),
            order_number().into_bytes(),
            &[("Origin", "https://evil.example")],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    for headers in [
        vec![],
        vec![("Sec-Fetch-Site", "same-origin".to_owned())],
        vec![("Sec-Fetch-Site", "none".to_owned())],
        vec![("Origin", format!("http://{host}"))],
    ] {
        let response = login(headers.clone()).await;
        assert_eq!(response.status(), StatusCode::OK, "{headers:?}");
        assert_eq!(
            response
                .headers()
                .get("cache-control")
                .map(|v| v.as_bytes()),
            Some(&b"no-store"[..]),
            "an answer carrying a token is never cached"
        );
    }
    let balance = app.get_balance(&user).await;
    assert_eq!(
        balance.headers().get("cache-control").map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
}

async fn a_redirect_from_the_accrual_system_is_not_followed(backend: Backend) {
    let server = ScriptedAccrual::start();
    let internal = ScriptedAccrual::start();
    let number = order_number();
    server.script(
        &number,
        vec![Reply::redirect(&format!(
            "{}/api/orders/{number}",
            internal.url
        ))],
    );
    internal.script(&number, vec![Reply::processed("1000000")]);
    let app = spawn_app_asking(backend, &server.url, &[]).await;
    let user = app.register_user().await;
    assert_eq!(
        app.post_order(&user, &number).await.status(),
        StatusCode::ACCEPTED
    );
    // Asked again and again: every redirect is a failure.
    server
        .wait_for_requests(&number, 3)
        .await
        .expect("the order is asked about again after a redirect");
    assert!(internal.requests().is_empty(), "the redirect was followed");
    assert_eq!(app.balance(&user).await, ("0".into(), "0".into()));
    let orders: Vec<Value> = app.get_orders(&user).await.json().await.expect("a list");
    assert_eq!(orders[0]["status"], "NEW");
}

async fn an_oversized_accrual_answer_is_refused_without_reading_it_whole(backend: Backend) {
    let server = ScriptedAccrual::start();
    let number = order_number();
    // Valid JSON after 8 MiB of spaces: read whole, it would be credited.
    server.script(&number, vec![Reply::processed("10").padded(8 << 20)]);
    let app = spawn_app_asking(backend, &server.url, &[]).await;
    let user = app.register_user().await;
    assert_eq!(
        app.post_order(&user, &number).await.status(),
        StatusCode::ACCEPTED
    );
    server
        .wait_for_requests(&number, 2)
        .await
        .expect("the order is asked about again after an oversized answer");
    assert_eq!(app.balance(&user).await, ("0".into(), "0".into()));
    // The same answer at a normal size is credited: the size alone was refused.
    server.script(&number, vec![Reply::processed("10")]);
    app.wait_for_status(&user, &number, "PROCESSED").await;
    assert_eq!(app.balance(&user).await, ("10".into(), "0".into()));
}

async fn a_quiet_shoppers_order_goes_before_a_noisy_shoppers_backlog(backend: Backend) {
    const JUNK: usize = 200;
    let server = ScriptedAccrual::start();
    // The first question is throttled: the limit (60 a minute) is learned at once and
    // everything waits 3 s, long enough for every upload below to arrive meanwhile.
    server.on_request(1, Reply::too_many("3", 60));
    let app = spawn_app_asking(backend, &server.url, &[]).await;
    let (noisy, quiet) = (app.register_user().await, app.register_user().await);
    let junk: Vec<String> = (0..JUNK).map(|_| order_number()).collect();
    let uploads = junk.iter().map(|number| app.post_order(&noisy, number));
    for response in join_all(uploads).await {
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let real = order_number();
    server.script(&real, vec![Reply::processed("25")]);
    let uploaded = Instant::now();
    assert_eq!(
        app.post_order(&quiet, &real).await.status(),
        StatusCode::ACCEPTED
    );
    app.wait_for_status(&quiet, &real, "PROCESSED").await;
    let took = uploaded.elapsed();
    // The window allows 60 questions a minute: without fairness the real order waits
    // behind the junk uploaded before it, into the next minute.
    assert!(took < Duration::from_secs(10), "PROCESSED after {took:?}");
    let asked_before = server
        .requests()
        .iter()
        .take_while(|r| r.order != real)
        .count();
    assert!(
        asked_before < 10,
        "{asked_before} questions went before the quiet shopper's"
    );
    assert_eq!(app.balance(&quiet).await, ("25".into(), "0".into()));
}

#[actix_web::test]
async fn database_files_are_readable_by_their_owner_only() {
    let db = TestDb::create(Backend::Sqlite).await;
    let path = db
        .url
        .trim_start_matches("sqlite://")
        .trim_end_matches("?mode=rwc")
        .to_owned();
    let accrual = TestAccrual::instant();
    let args = base_args(&db, &accrual.url);
    let app = spawn_app_with(db, args.clone(), Some(accrual)).await;
    app.register_user().await;
    let mode = |file: &str| {
        std::fs::metadata(file)
            .map(|m| m.permissions().mode() & 0o777)
            .ok()
    };
    for file in [path.clone(), format!("{path}-wal"), format!("{path}-shm")] {
        assert_eq!(mode(&file), Some(0o600), "{file}");
    }
    // A file left readable by an older start is restricted at the next one.
    let db = app.stop().await;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let app = spawn_app_with(db, args, Some(TestAccrual::instant())).await;
    assert_eq!(mode(&path), Some(0o600));
    drop(app);
}

#[actix_web::test]
async fn unsafe_settings_stop_the_binary_with_a_reason() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gophermart"));
        command
            .args([
                "-a",
                "127.0.0.1:0",
                "-d",
                "sqlite:///nonexistent/dir/never.db",
            ])
            .args(args)
            .env_remove("ACCRUAL_SYSTEM_ADDRESS")
            .env_remove("TOKEN_SECRET");
        for (name, value) in env {
            command.env(name, value);
        }
        let output = command.output().expect("run the binary");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, stderr) = run(&["--token-secret", "a"], &[]);
    assert!(!ok && stderr.contains("at least 32 bytes"), "{stderr}");
    let (ok, stderr) = run(&[], &[("ACCRUAL_SYSTEM_ADDRESS", "")]);
    assert!(!ok && stderr.contains("the address is empty"), "{stderr}");
    let (ok, stderr) = run(&["--emulator-address", "0.0.0.0:8081"], &[]);
    assert!(!ok && stderr.contains("loopback only"), "{stderr}");
}
