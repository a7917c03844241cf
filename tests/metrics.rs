//! The operators' windows: `/metrics` parsed as the Prometheus text format, `/ready`
//! following the database, and `X-Request-Id` on every answer.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};

use crate::helpers::{
    eventually, order_number, postgres_admin_url, spawn_app, spawn_app_asking, Backend, TestApp,
};
use crate::on_both_backends;
use crate::scripted::{Reply, ScriptedAccrual};

/// One sample: its labels and value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A scrape: the declared type of each family and every sample.
#[derive(Debug, Default)]
pub struct Scrape {
    pub types: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the text exposition format; panics on a line it does not understand.
    pub fn parse(text: &str) -> Self {
        let mut scrape = Self::default();
        for line in text.lines() {
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                scrape.types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(!line.starts_with('#'), "unknown comment: {line}");
            scrape.samples.push(parse_sample(line));
        }
        scrape
    }

    /// The value of the sample `name` whose labels include `labels`; `None` when absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }

    /// Every value of label `label` among the samples of `name`.
    pub fn label_values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter_map(|s| s.labels.get(label).cloned())
            .collect()
    }
}

fn parse_sample(line: &str) -> Sample {
    let (name, rest) = match line.find('{') {
        Some(brace) => (&line[..brace], &line[brace + 1..]),
        None => {
            let (name, value) = line.split_once(' ').expect("name value");
            return Sample {
                name: name.to_owned(),
                labels: BTreeMap::new(),
                value: value.trim().parse().expect("a number"),
            };
        }
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "a quoted label value in {line}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => panic!("dangling escape in {line}"),
                },
                '"' => break,
                other => value.push(other),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        match chars.next() {
            Some(',') if chars.peek() == Some(&'}') => {
                chars.next();
                break;
            }
            Some(',') => continue,
            Some('}') => break,
            other => panic!("unexpected {other:?} in {line}"),
        }
    }
    let value: String = chars.collect();
    Sample {
        name: name.to_owned(),
        labels,
        value: value.trim().parse().expect("a number"),
    }
}

/// `GET /metrics`, parsed.
pub async fn scrape(app: &TestApp) -> Scrape {
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    Scrape::parse(&response.text().await.unwrap())
}

async fn every_family_is_present_with_its_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.get_balance(&user).await;
    let scrape = scrape(&app).await;
    for (family, kind) in [
        ("gophermart_http_requests_total", "counter"),
        ("gophermart_http_request_duration_seconds", "histogram"),
        ("gophermart_accrual_requests_total", "counter"),
        ("gophermart_accrual_paused", "gauge"),
        ("gophermart_accrual_rate_limit_per_minute", "gauge"),
        ("gophermart_accrual_backlog", "gauge"),
        ("gophermart_accrual_pollers_busy", "gauge"),
        ("gophermart_account_actors", "gauge"),
        ("gophermart_fulfilment_backlog", "gauge"),
        ("gophermart_events_unpublished", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
    ] {
        assert_eq!(
            scrape.types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
    }
    let outcomes = scrape.label_values("gophermart_accrual_requests_total", "outcome");
    let expected: BTreeSet<String> = [
        "processed",
        "invalid",
        "registered",
        "processing",
        "unknown",
        "rate_limited",
        "error",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(outcomes, expected);
    let balance = [
        ("method", "GET"),
        ("route", "/api/user/balance"),
        ("status", "200"),
    ];
    assert_eq!(
        scrape.value("gophermart_http_requests_total", &balance),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(
            "gophermart_http_request_duration_seconds_count",
            &balance[..2]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("gophermart_account_actors", &[]),
        Some(1.0),
        "the account just read is live"
    );
    assert_eq!(scrape.value("gophermart_accrual_paused", &[]), Some(0.0));
    assert_eq!(
        scrape.value("gophermart_accrual_rate_limit_per_minute", &[]),
        Some(0.0)
    );
}

async fn route_labels_are_patterns_never_raw_paths(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let number = order_number();
    assert_eq!(
        app.post_order(&user, &number).await.status(),
        StatusCode::ACCEPTED
    );
    app.get_orders(&user).await;
    let redemption = app
        .get(
            &format!("/api/user/redemptions/{number}"),
            Some(&user.token),
        )
        .await;
    assert_eq!(redemption.status(), StatusCode::NOT_FOUND);
    let unknown = app
        .get(&format!("/api/user/orders/{number}"), Some(&user.token))
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    app.get(&format!("/nothing/{number}"), None).await;
    let scrape = scrape(&app).await;
    let routes = scrape.label_values("gophermart_http_requests_total", "route");
    for route in &routes {
        assert!(
            !route.contains(&number),
            "a route label holds the order number: {route}"
        );
    }
    for expected in [
        "/api/user/orders",
        "/api/user/register",
        "/api/user/redemptions/{id}",
        "unmatched",
    ] {
        assert!(
            routes.contains(expected),
            "{expected} missing in {routes:?}"
        );
    }
    assert_eq!(
        scrape.value(
            "gophermart_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        Some(2.0),
        "both unknown paths counted under one label"
    );
    let durations = scrape.label_values("gophermart_http_request_duration_seconds_bucket", "route");
    assert!(durations.iter().all(|route| !route.contains(&number)));
}

async fn the_paused_gauge_follows_a_429_pause(backend: Backend) {
    let accrual = ScriptedAccrual::start();
    let number = order_number();
    accrual.script(
        &number,
        vec![Reply::too_many("2", 45), Reply::processed("10")],
    );
    let app = spawn_app_asking(backend, &accrual.url, &[]).await;
    let user = app.register_user().await;
    assert_eq!(
        app.post_order(&user, &number).await.status(),
        StatusCode::ACCEPTED
    );
    let paused = eventually(Duration::from_secs(5), || async {
        let scrape = scrape(&app).await;
        (scrape.value("gophermart_accrual_paused", &[]) == Some(1.0)).then_some(scrape)
    })
    .await
    .expect("the pause shows while it lasts");
    assert_eq!(
        paused.value("gophermart_accrual_rate_limit_per_minute", &[]),
        Some(45.0)
    );
    assert_eq!(paused.value("gophermart_accrual_backlog", &[]), Some(1.0));
    assert_eq!(
        paused.value(
            "gophermart_accrual_requests_total",
            &[("outcome", "rate_limited")]
        ),
        Some(1.0)
    );
    let resumed = eventually(Duration::from_secs(10), || async {
        let scrape = scrape(&app).await;
        (scrape.value("gophermart_accrual_paused", &[]) == Some(0.0)
            && scrape.value("gophermart_accrual_backlog", &[]) == Some(0.0))
        .then_some(scrape)
    })
    .await
    .expect("the pause ends and the order is final");
    assert_eq!(
        resumed.value(
            "gophermart_accrual_requests_total",
            &[("outcome", "processed")]
        ),
        Some(1.0)
    );
    app.wait_for_status(&user, &number, "PROCESSED").await;
}

async fn outcome_counters_match_what_the_accrual_system_answered(backend: Backend) {
    let accrual = ScriptedAccrual::start();
    let (a, b, c) = (order_number(), order_number(), order_number());
    accrual.script(
        &a,
        vec![
            Reply::status("REGISTERED"),
            Reply::status("PROCESSING"),
            Reply::processed("1.5"),
        ],
    );
    accrual.script(&b, vec![Reply::no_content(), Reply::status("INVALID")]);
    accrual.script(
        &c,
        vec![
            Reply::server_error(),
            Reply::too_many("1", 600),
            Reply::processed("2"),
        ],
    );
    let app = spawn_app_asking(backend, &accrual.url, &[]).await;
    let user = app.register_user().await;
    for number in [&a, &b, &c] {
        assert_eq!(
            app.post_order(&user, number).await.status(),
            StatusCode::ACCEPTED
        );
    }
    app.wait_for_status(&user, &a, "PROCESSED").await;
    app.wait_for_status(&user, &b, "INVALID").await;
    app.wait_for_status(&user, &c, "PROCESSED").await;
    let scrape = scrape(&app).await;
    let counted = |outcome: &str| {
        scrape
            .value("gophermart_accrual_requests_total", &[("outcome", outcome)])
            .unwrap_or(-1.0)
    };
    let expected = [
        ("processed", 2.0),
        ("registered", 1.0),
        ("processing", 1.0),
        ("unknown", 1.0),
        ("invalid", 1.0),
        ("error", 1.0),
        ("rate_limited", 1.0),
    ];
    for (outcome, n) in expected {
        assert_eq!(counted(outcome), n, "{outcome}");
    }
    let total: f64 = expected.iter().map(|(_, n)| n).sum();
    assert_eq!(
        accrual.requests().len() as f64,
        total,
        "every request the accrual system got is counted once"
    );
    assert_eq!(scrape.value("gophermart_accrual_backlog", &[]), Some(0.0));
    assert_eq!(
        scrape.value("gophermart_accrual_pollers_busy", &[]),
        Some(0.0)
    );
}

async fn ready_follows_the_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let ready = app.get("/ready", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.text().await.unwrap(), "ready");
    if backend != Backend::Postgres {
        return;
    }
    let name = app
        .db_url()
        .rsplit_once('/')
        .map(|(_, name)| name.to_owned())
        .unwrap();
    let admin = Database::connect(&postgres_admin_url()).await.unwrap();
    // The database goes away: no new connections, and every open one is cut.
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS false"
        ))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .unwrap();
    let down = eventually(Duration::from_secs(10), || async {
        let response = app.get("/ready", None).await;
        (response.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(response)
    })
    .await
    .expect("/ready goes 503 without the database");
    let reason = down.text().await.unwrap();
    assert!(reason.starts_with("not ready: "), "{reason}");
    assert!(
        !reason.contains("SQL") && !reason.contains(&name),
        "{reason}"
    );
    assert_eq!(
        app.get("/health", None).await.status(),
        StatusCode::OK,
        "liveness does not depend on the database"
    );
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS true"
        ))
        .await
        .unwrap();
    let _ = admin.close().await;
    let up = eventually(Duration::from_secs(10), || async {
        (app.get("/ready", None).await.status() == StatusCode::OK).then_some(())
    })
    .await;
    assert!(up.is_some(), "/ready comes back with the database");
}

async fn every_answer_carries_a_request_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let with_id = |path: &str, id: Option<&str>| {
        let mut request = app.client.get(format!("{}{path}", app.address));
        if let Some(id) = id {
            request = request.header("X-Request-Id", id);
        }
        request.send()
    };
    let echoed = |response: &reqwest::Response| {
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let taken = with_id("/api/user/balance", Some("trace-7f3a/b.c_d-9"))
        .await
        .unwrap();
    assert_eq!(taken.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(echoed(&taken), "trace-7f3a/b.c_d-9");
    let unknown = with_id("/no/such/path", Some("abc")).await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(echoed(&unknown), "abc");
    let first = echoed(&with_id("/health", None).await.unwrap());
    let second = echoed(&with_id("/health", None).await.unwrap());
    assert_eq!(first.len(), 32, "{first}");
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(first, second, "a fresh id per request");
    let long = "x".repeat(129);
    for refused in [long.as_str(), "has space", "tab\there"] {
        let id = echoed(&with_id("/health", Some(refused)).await.unwrap());
        assert_ne!(id, refused);
        assert_eq!(id.len(), 32, "a generated id replaces {refused:?}");
    }
}

on_both_backends!(
    every_family_is_present_with_its_type,
    route_labels_are_patterns_never_raw_paths,
    the_paused_gauge_follows_a_429_pause,
    outcome_counters_match_what_the_accrual_system_answered,
    ready_follows_the_database,
    every_answer_carries_a_request_id,
);
