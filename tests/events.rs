//! Business events: written in the commit of each change, numbered gap-free in the order
//! they became visible, served by the feed and relayed to NATS JetStream.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures_util::future::join_all;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    base_args, eventually, nats_available, nats_server_binary, order_number, spawn_app,
    spawn_app_asking, spawn_app_with, with_flag, Backend, TestAccrual, TestApp, TestDb,
};
use crate::process::ServiceProcess;
use crate::scripted::ScriptedAccrual;

crate::on_both_backends!(
    every_change_writes_its_event_in_seq_order,
    a_reader_following_the_feed_misses_nothing_while_eight_writers_commit,
    concurrent_withdrawals_write_one_event_per_charge,
    events_reach_jetstream_once_each_across_a_kill_9,
    with_nats_down_the_api_works_on_and_the_backlog_drains_when_it_returns,
    while_nats_is_unreachable_the_relay_backs_off,
);

/// The NATS server the relay tests publish to.
fn nats_url() -> String {
    "nats://127.0.0.1:4222".to_owned()
}

async fn every_change_writes_its_event_in_seq_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let order = app.fund(&user, json!(729.98)).await;
    let spent = order_number();
    let response = app
        .post_withdraw(&user, &json!({"order": spent, "sum": 29.98}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let events = eventually(Duration::from_secs(5), || async {
        let events = app.all_events().await;
        (events.len() >= 5).then_some(events)
    })
    .await
    .expect("five events");
    let user_id = events[0]["user"].clone();
    let shape: Vec<(Value, Value)> = events
        .iter()
        .map(|e| (e["type"].clone(), e["data"].clone()))
        .collect();
    assert_eq!(
        shape,
        vec![
            (json!("user.registered"), json!({"login": user.login})),
            (json!("order.uploaded"), json!({"order": order})),
            (
                json!("order.status_changed"),
                json!({"order": order, "status": "PROCESSED", "accrual": 729.98})
            ),
            (
                json!("points.credited"),
                json!({"order": order, "amount": 729.98, "balance": 729.98})
            ),
            (
                json!("points.withdrawn"),
                json!({"order": spent, "sum": 29.98, "balance": 700, "withdrawn": 29.98})
            ),
        ]
    );
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["seq"], json!(i + 1));
        assert_eq!(event["user"], user_id);
        let id = uuid::Uuid::parse_str(event["id"].as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 7, "{event}");
        let at = event["at"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(at).is_ok() && at.len() == 24,
            "{at}: RFC 3339 with milliseconds"
        );
    }
    let page = app.admin_json("/api/admin/events?after=2&limit=2").await;
    assert_eq!(page, json!(events[2..4]));
    let none = app.admin_get("/api/admin/events?after=5").await;
    assert_eq!(none.status(), StatusCode::NO_CONTENT);
}

async fn a_reader_following_the_feed_misses_nothing_while_eight_writers_commit(backend: Backend) {
    const WRITERS: usize = 8;
    const EACH: usize = 500;
    // An accrual system that knows no order: each upload is one event, nothing follows.
    let server = ScriptedAccrual::start();
    let db = TestDb::create(backend).await;
    let args = base_args(&db, &server.url);
    let app = spawn_app_with(db, args, None).await;
    let mut users = Vec::new();
    for _ in 0..WRITERS {
        users.push(app.register_user().await);
    }
    let writers = join_all(users.iter().map(|user| {
        let app = &app;
        async move {
            for _ in 0..EACH {
                let response = app.post_order(user, &order_number()).await;
                assert_eq!(response.status(), StatusCode::ACCEPTED);
            }
        }
    }));
    let expected = WRITERS * (EACH + 1);
    let reader = async {
        let mut seen: Vec<Value> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(240);
        while seen.len() < expected && Instant::now() < deadline {
            let after = seen.last().map_or(0, |e| e["seq"].as_i64().unwrap());
            let response = app
                .admin_get(&format!("/api/admin/events?after={after}&limit=1000"))
                .await;
            match response.status() {
                StatusCode::OK => seen.extend(response.json::<Vec<Value>>().await.unwrap()),
                StatusCode::NO_CONTENT => tokio::time::sleep(Duration::from_millis(5)).await,
                other => panic!("the feed answered {other}"),
            }
        }
        seen
    };
    let (_, seen) = tokio::join!(writers, reader);
    let seqs: Vec<i64> = seen.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=expected as i64).collect::<Vec<_>>(),
        "gap-free, no repeat"
    );
    let ids: HashSet<&str> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), expected);
    assert_eq!(
        seen,
        app.all_events().await,
        "what the reader saw is the final table"
    );
}

async fn concurrent_withdrawals_write_one_event_per_charge(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.fund(&user, json!(100)).await;
    let attempts = (0..50).map(|_| {
        let body = json!({"order": order_number(), "sum": 7});
        let (app, user) = (&app, &user);
        async move { app.post_withdraw(user, &body).await.status() }
    });
    let statuses = join_all(attempts).await;
    let charged = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(charged, 14);
    let withdrawn = eventually(Duration::from_secs(5), || async {
        let events = app.all_events().await;
        let withdrawn: Vec<Value> = events
            .into_iter()
            .filter(|e| e["type"] == "points.withdrawn")
            .collect();
        (withdrawn.len() >= charged).then_some(withdrawn)
    })
    .await
    .expect("an event per charge");
    assert_eq!(withdrawn.len(), charged);
    let mut balances: Vec<String> = withdrawn
        .iter()
        .map(|e| e["data"]["balance"].to_string())
        .collect();
    balances.sort();
    let mut expected: Vec<String> = (0..14).map(|i| (2 + 7 * i).to_string()).collect();
    expected.sort();
    assert_eq!(
        balances, expected,
        "each charge saw the balance of the one before"
    );
}

/// The sequence the next message of stream `GOPHERMART` on `url` will get (1 when the
/// stream does not exist yet).
async fn next_sequence(url: &str) -> u64 {
    let client = async_nats::connect(url).await.expect("connect to NATS");
    match jetstream::new(client).get_stream("GOPHERMART").await {
        Ok(mut stream) => {
            stream
                .info()
                .await
                .expect("stream info")
                .state
                .last_sequence
                + 1
        }
        Err(_) => 1,
    }
}

/// Every message of stream `GOPHERMART` on `url` from sequence `since` on, as
/// (`Nats-Msg-Id`, payload), in stream order.
async fn stream_since(url: &str, since: u64) -> Vec<(String, Value)> {
    let client = async_nats::connect(url).await.expect("connect to NATS");
    let js = jetstream::new(client);
    let Ok(stream) = js.get_stream("GOPHERMART").await else {
        return Vec::new();
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: since,
            },
            ..Default::default()
        })
        .await
        .expect("a consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut found = Vec::new();
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_secs(2), messages.next()).await
    {
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        let payload: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
        let pending = message.info().map(|info| info.pending).unwrap_or(0);
        found.push((id, payload));
        if pending == 0 {
            break;
        }
    }
    found
}

/// Waits until every event of the feed is in the stream, then checks each is there
/// exactly once, with the feed's own JSON as its payload.
async fn assert_stream_holds_each_once(url: &str, since: u64, feed: &[Value]) {
    let wanted: HashMap<&str, &Value> = feed
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e))
        .collect();
    let counted = eventually(Duration::from_secs(30), || async {
        let mut counts: HashMap<String, (usize, Value)> = HashMap::new();
        for (id, payload) in stream_since(url, since).await {
            if wanted.contains_key(id.as_str()) {
                counts.entry(id).or_insert((0, payload)).0 += 1;
            }
        }
        (counts.len() == wanted.len()).then_some(counts)
    })
    .await
    .expect("every event reaches the stream");
    for (id, (count, payload)) in counted {
        assert_eq!(count, 1, "event {id} is in the stream {count} times");
        assert_eq!(
            &payload,
            wanted[id.as_str()],
            "the payload is the feed's JSON"
        );
    }
}

async fn events_reach_jetstream_once_each_across_a_kill_9(backend: Backend) {
    if !nats_available() {
        return;
    }
    let since = next_sequence(&nats_url()).await;
    let server = ScriptedAccrual::start();
    let db = TestDb::create(backend).await;
    let args = with_flag(base_args(&db, &server.url), "--nats-url", &nats_url());
    let first = ServiceProcess::start(args.clone()).await;
    let user = first.register_user().await;
    for _ in 0..100 {
        first.post_order(&user, &order_number()).await;
    }
    // Killed at once: the relay is still at work on the last of them.
    first.kill();
    let second = ServiceProcess::start(args).await;
    for _ in 0..99 {
        second.post_order(&user, &order_number()).await;
    }
    let feed = eventually(Duration::from_secs(10), || async {
        let events = second.admin_events().await;
        (events.len() == 200).then_some(events)
    })
    .await
    .expect("200 events in the feed");
    assert_stream_holds_each_once(&nats_url(), since, &feed).await;
}

/// A private NATS server with JetStream on a port of its own, stopped when dropped.
struct PrivateNats {
    url: String,
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl PrivateNats {
    fn new() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("gophermart-nats-{}", uuid::Uuid::new_v4().simple()));
        Self {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            dir,
            child: None,
        }
    }

    async fn start(&mut self) {
        let child = Command::new(nats_server_binary().expect("nats-server is installed"))
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let port = self.port;
        eventually(Duration::from_secs(10), || async move {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        })
        .await
        .expect("nats-server listens");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn unpublished(app: &TestApp) -> i64 {
    app.admin_json("/api/admin/stats/summary").await["events_unpublished"]
        .as_i64()
        .unwrap()
}

async fn with_nats_down_the_api_works_on_and_the_backlog_drains_when_it_returns(backend: Backend) {
    if !nats_available() {
        return;
    }
    let mut nats = PrivateNats::new();
    nats.start().await;
    let since = 1;
    let accrual = TestAccrual::instant();
    let db = TestDb::create(backend).await;
    let args = with_flag(base_args(&db, &accrual.url), "--nats-url", &nats.url);
    let app = spawn_app_with(db, args, Some(accrual)).await;
    let user = app.register_user().await;
    app.fund(&user, json!(10)).await;
    eventually(Duration::from_secs(10), || async {
        (unpublished(&app).await == 0).then_some(())
    })
    .await
    .expect("relayed while NATS is up");

    nats.stop();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let at = Instant::now();
        let response = app.post_order(&user, &order_number()).await;
        slowest = slowest.max(at.elapsed());
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    assert!(
        slowest < Duration::from_millis(500),
        "an upload took {slowest:?} with NATS down"
    );
    let waiting = eventually(Duration::from_secs(5), || async {
        let n = unpublished(&app).await;
        (n >= 20).then_some(n)
    })
    .await
    .expect("a backlog while NATS is down");
    assert!(waiting >= 20);

    nats.start().await;
    eventually(Duration::from_secs(30), || async {
        (unpublished(&app).await == 0).then_some(())
    })
    .await
    .expect("the backlog drains when NATS returns");
    let feed = app.all_events().await;
    assert_stream_holds_each_once(&nats.url, since, &feed).await;
}

async fn while_nats_is_unreachable_the_relay_backs_off(backend: Backend) {
    // Something listens where NATS should be, and hangs up at once: every attempt to
    // connect fails, and each one is counted.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("nats://{}", listener.local_addr().unwrap());
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = attempts.clone();
    let doorman = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });
    let app = spawn_app_asking(
        backend,
        &TestAccrual::instant().url,
        &[("--nats-url", &url)],
    )
    .await;
    app.register_user().await;
    eventually(Duration::from_secs(5), || async {
        (attempts.load(std::sync::atomic::Ordering::SeqCst) >= 1).then_some(())
    })
    .await
    .expect("the relay tries to connect");
    let first = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tried = attempts.load(std::sync::atomic::Ordering::SeqCst);
    // 200 ms doubling: at most about five attempts in three seconds, where a relay
    // without backoff would try every 50 ms tick (sixty).
    assert!(
        (2..=8).contains(&tried),
        "{tried} connection attempts in {:?}",
        first.elapsed()
    );
    assert!(unpublished(&app).await >= 1);
    doorman.abort();
}
