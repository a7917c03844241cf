//! Several instances on one PostgreSQL database, each a real process, requests spread
//! round-robin: money, uploads and coupons stay exact, reads are never stale, one
//! instance asks the accrual system for all and paces for all, and a `kill -9` of the
//! leader hands its work to another within seconds.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{json, Value};

use crate::balance::assert_ledger_matches_in;
use crate::helpers::{
    base_args, eventually, order_number, postgres_available, with_flag, with_flags, Backend,
    TestAccrual, TestDb, TestUser, ADMIN_TOKEN,
};
use crate::metrics::Scrape;
use crate::process::ServiceProcess;
use crate::scripted::{Reply, ScriptedAccrual};

/// How long a new leader may take after the old one died.
const TAKEOVER: Duration = Duration::from_secs(10);

/// Instances of one cluster, and a client that spreads requests over them.
struct Cluster {
    db: TestDb,
    /// The arguments of instance `i`, to start it again after a kill.
    args: Vec<Vec<String>>,
    instances: Vec<Option<ServiceProcess>>,
    client: reqwest::Client,
}

impl Cluster {
    /// `n` instances with `--cluster`, instance `i` asking the accrual system at
    /// `accrual(i)`. The first to start leads.
    async fn start(n: usize, accrual: impl Fn(usize) -> String) -> Self {
        Self::start_with(n, accrual, &[]).await
    }

    /// The same, each instance also given `flags`.
    async fn start_with(
        n: usize,
        accrual: impl Fn(usize) -> String,
        flags: &[(&str, &str)],
    ) -> Self {
        let db = TestDb::create(Backend::Postgres).await;
        let args: Vec<Vec<String>> = (0..n)
            .map(|i| {
                let args = with_flag(base_args(&db, &accrual(i)), "--cluster", "true");
                with_flags(args, flags)
            })
            .collect();
        let mut instances = Vec::new();
        for args in &args {
            instances.push(Some(ServiceProcess::start(args.clone()).await));
        }
        Self {
            db,
            args,
            instances,
            client: reqwest::Client::new(),
        }
    }

    /// The address of instance `i`.
    fn at(&self, i: usize) -> &str {
        let live: Vec<&ServiceProcess> = self.instances.iter().flatten().collect();
        &live[i % live.len()].address
    }

    async fn register(&self, i: usize) -> TestUser {
        let login = format!("user-{}", uuid::Uuid::new_v4().simple());
        let password = "correct horse battery staple".to_owned();
        let response = self
            .client
            .post(format!("{}/api/user/register", self.at(i)))
            .json(&json!({"login": login, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{:?}",
            response.text().await
        );
        TestUser {
            token: crate::helpers::bearer(&response).unwrap(),
            login,
            password,
        }
    }

    async fn upload(&self, i: usize, user: &TestUser, number: &str) -> StatusCode {
        self.client
            .post(format!("{}/api/user/orders", self.at(i)))
            .bearer_auth(&user.token)
            .header("Content-Type", "text/plain")
            .body(number.to_owned())
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn withdraw(&self, i: usize, user: &TestUser, sum: Value) -> StatusCode {
        self.client
            .post(format!("{}/api/user/balance/withdraw", self.at(i)))
            .bearer_auth(&user.token)
            .json(&json!({"order": order_number(), "sum": sum}))
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn balance(&self, i: usize, user: &TestUser) -> String {
        let response = self
            .client
            .get(format!("{}/api/user/balance", self.at(i)))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }

    async fn orders(&self, i: usize, user: &TestUser) -> Vec<Value> {
        let response = self
            .client
            .get(format!("{}/api/user/orders", self.at(i)))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::NO_CONTENT {
            return Vec::new();
        }
        response.json().await.unwrap()
    }

    fn admin(&self, i: usize, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.at(i)))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// The operator's view at `path`, through instance `i`.
    async fn admin_json(&self, i: usize, path: &str) -> Value {
        self.admin(i, reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Creates what `body` describes at the operator's `path`, through instance 0.
    async fn create(&self, path: &str, body: Value) {
        let response = self
            .admin(0, reqwest::Method::POST, path)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{:?}",
            response.text().await
        );
    }

    /// Instance `i`'s metrics, `None` when it does not answer.
    async fn scrape(&self, i: usize) -> Option<Scrape> {
        let process = self.instances[i].as_ref()?;
        let response = self
            .client
            .get(format!("{}/metrics", process.address))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        Some(Scrape::parse(&response.text().await.ok()?))
    }

    /// The instance that says it leads, once exactly one does.
    async fn leader(&self) -> Option<usize> {
        eventually(TAKEOVER, || async {
            let mut leading = Vec::new();
            for i in 0..self.instances.len() {
                if let Some(scrape) = self.scrape(i).await {
                    if scrape.value("gophermart_leader", &[]) == Some(1.0) {
                        leading.push(i);
                    }
                }
            }
            (leading.len() == 1).then(|| leading[0])
        })
        .await
    }

    /// Accrual questions each instance has asked, by outcome label.
    async fn asked(&self, i: usize, outcome: &str) -> f64 {
        match self.scrape(i).await {
            Some(scrape) => scrape
                .value("gophermart_accrual_requests_total", &[("outcome", outcome)])
                .unwrap_or(0.0),
            None => 0.0,
        }
    }

    /// The error lines every instance logged so far.
    fn errors(&self) -> Vec<String> {
        self.instances
            .iter()
            .flatten()
            .flat_map(ServiceProcess::log_lines)
            .filter(|line| line.contains("ERROR"))
            .collect()
    }

    fn kill(&mut self, i: usize) {
        if let Some(process) = self.instances[i].take() {
            process.kill();
        }
    }

    async fn restart(&mut self, i: usize) {
        self.instances[i] = Some(ServiceProcess::start(self.args[i].clone()).await);
    }
}

async fn scalar(db_url: &str, sql: &str) -> i64 {
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

/// Funds `user` with `points` through an order the emulator knows, uploaded on instance 0.
async fn fund(cluster: &Cluster, accrual: &TestAccrual, user: &TestUser, points: u64) {
    let number = order_number();
    accrual.add_order_worth(&number, json!(points)).await;
    assert_eq!(cluster.upload(0, user, &number).await, StatusCode::ACCEPTED);
    let processed = eventually(Duration::from_secs(20), || async {
        let orders = cluster.orders(1, user).await;
        orders
            .iter()
            .any(|o| o["number"] == number.as_str() && o["status"] == "PROCESSED")
            .then_some(())
    })
    .await;
    assert!(processed.is_some(), "the funding order was processed");
}

/// Scripts order `k` of `numbers` to earn `k + 1` points, then checks that every order
/// was processed and credited exactly once: the balance is their sum, the ledger holds one
/// accrual each and matches the accounts.
async fn credited_once(
    cluster: &Cluster,
    server: &ScriptedAccrual,
    user: &TestUser,
    numbers: &[String],
) {
    for (k, number) in numbers.iter().enumerate() {
        server.script(number, vec![Reply::processed(&(k + 1).to_string())]);
    }
    let all = eventually(Duration::from_secs(30), || async {
        let orders = cluster.orders(0, user).await;
        (orders.len() == numbers.len() && orders.iter().all(|o| o["status"] == "PROCESSED"))
            .then_some(())
    })
    .await;
    assert!(all.is_some(), "every order processed");
    let total: usize = (1..=numbers.len()).sum();
    assert_eq!(
        cluster.balance(1, user).await,
        format!(r#"{{"current":{total},"withdrawn":0}}"#)
    );
    assert_eq!(
        scalar(
            &cluster.db.url,
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ledger WHERE cause = 'accrual'"
        )
        .await,
        numbers.len() as i64
    );
    assert_ledger_matches_in(&cluster.db.url).await;
}

macro_rules! postgres_only {
    ($($name:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    if crate::helpers::postgres_available() {
                        super::$name().await
                    }
                }
            )+
        }
    };
}

postgres_only!(
    concurrent_withdrawals_across_instances_are_exact,
    a_withdrawal_on_one_instance_is_read_on_the_next,
    the_same_number_through_two_instances_is_one_202_and_one_409,
    one_instance_asks_for_all_and_paces_for_all,
    killing_leaders_and_followers_in_turn_loses_nothing_and_doubles_nothing,
    a_frozen_leader_is_replaced_and_steps_down_when_it_wakes,
    a_claim_storm_over_three_instances_never_over_issues,
    a_request_repeated_on_every_instance_at_once_takes_effect_once,
);

async fn concurrent_withdrawals_across_instances_are_exact() {
    let accrual = TestAccrual::instant();
    let cluster = Cluster::start(3, |_| accrual.url.clone()).await;
    let user = cluster.register(0).await;
    fund(&cluster, &accrual, &user, 1000).await;
    let statuses: Vec<StatusCode> =
        join_all((0..50).map(|i| cluster.withdraw(i, &user, json!(30)))).await;
    let paid = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::PAYMENT_REQUIRED)
        .count();
    assert_eq!(
        (paid, refused),
        (33, 17),
        "{statuses:?} {:#?}",
        cluster.errors()
    );
    for i in 0..3 {
        assert_eq!(
            cluster.balance(i, &user).await,
            r#"{"current":10,"withdrawn":990}"#
        );
    }
    assert_ledger_matches_in(&cluster.db.url).await;
}

async fn a_withdrawal_on_one_instance_is_read_on_the_next() {
    let accrual = TestAccrual::instant();
    let cluster = Cluster::start(3, |_| accrual.url.clone()).await;
    let user = cluster.register(0).await;
    fund(&cluster, &accrual, &user, 1000).await;
    // Every instance has the balance cached before the first withdrawal.
    for i in 0..3 {
        assert_eq!(
            cluster.balance(i, &user).await,
            r#"{"current":1000,"withdrawn":0}"#
        );
    }
    for i in 0..100 {
        assert_eq!(cluster.withdraw(i, &user, json!(1)).await, StatusCode::OK);
        let read = cluster.balance(i + 1, &user).await;
        assert_eq!(
            read,
            format!(r#"{{"current":{},"withdrawn":{}}}"#, 999 - i, i + 1),
            "read on instance {} after withdrawal {i} on instance {}",
            (i + 1) % 3,
            i % 3
        );
    }
    assert_ledger_matches_in(&cluster.db.url).await;
}

async fn the_same_number_through_two_instances_is_one_202_and_one_409() {
    let accrual = TestAccrual::instant();
    let cluster = Cluster::start(3, |_| accrual.url.clone()).await;
    let (alice, bob) = (cluster.register(0).await, cluster.register(1).await);
    for _ in 0..20 {
        let number = order_number();
        let (a, b) = tokio::join!(
            cluster.upload(1, &alice, &number),
            cluster.upload(2, &bob, &number)
        );
        let mut statuses = [a, b];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::ACCEPTED, StatusCode::CONFLICT],
            "{number}"
        );
    }
}

async fn one_instance_asks_for_all_and_paces_for_all() {
    // 60 a minute, told only in the `429`: the first minute bursts into it once, then
    // the leader paces every instance's uploads under it.
    let accrual = TestAccrual::start(60, Duration::ZERO);
    let cluster = Cluster::start(3, |_| accrual.url.clone()).await;
    let users: Vec<TestUser> = join_all((0..3).map(|i| cluster.register(i))).await;
    let mut numbers = Vec::new();
    for i in 0..90 {
        let number = order_number();
        accrual.add_order_worth(&number, json!(1)).await;
        assert_eq!(
            cluster.upload(i, &users[i % 3], &number).await,
            StatusCode::ACCEPTED
        );
        numbers.push(number);
    }
    let started = Instant::now();
    let all = eventually(Duration::from_secs(150), || async {
        let mut processed = 0;
        for (i, user) in users.iter().enumerate() {
            processed += cluster
                .orders(i, user)
                .await
                .iter()
                .filter(|o| o["status"] == "PROCESSED")
                .count();
        }
        (processed == 90).then_some(())
    })
    .await;
    assert!(all.is_some(), "all 90 orders processed");
    let leader = cluster.leader().await.expect("one leader");
    let mut throttled = 0.0;
    for i in 0..3 {
        let answered = cluster.asked(i, "processed").await;
        throttled += cluster.asked(i, "rate_limited").await;
        if i == leader {
            assert_eq!(answered, 90.0, "the leader asked about every order once");
        } else {
            assert_eq!(answered, 0.0, "follower {i} asked the accrual system");
        }
    }
    assert!(
        (1.0..=3.0).contains(&throttled),
        "429s in all: {throttled} (in {:?})",
        started.elapsed()
    );
    assert_eq!(
        scalar(
            &cluster.db.url,
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ledger WHERE cause = 'accrual'"
        )
        .await,
        90
    );
}

async fn killing_leaders_and_followers_in_turn_loses_nothing_and_doubles_nothing() {
    // Instance i asks through `/i`, so that the scripted server tells who asked.
    let server = ScriptedAccrual::start();
    let cluster_url = server.url.clone();
    let mut cluster = Cluster::start(3, |i| format!("{cluster_url}/{i}")).await;
    let user = cluster.register(0).await;
    let mut numbers = Vec::new();
    let mut takeovers = Vec::new();
    // The leader and a follower by turns, a follower not killed yet when there is one:
    // three leaders and three followers die, every instance at least once.
    let mut killed_ever = HashSet::new();
    for round in 0..6 {
        // Orders uploaded on every instance, pending (the script answers 204).
        for i in 0..6 {
            let number = order_number();
            assert_eq!(
                cluster.upload(i, &user, &number).await,
                StatusCode::ACCEPTED
            );
            numbers.push(number);
        }
        let leader = cluster.leader().await.expect("one leader");
        let via = format!("/{leader}");
        let asked = eventually(Duration::from_secs(5), || async {
            let requests = server.requests();
            numbers
                .iter()
                .all(|n| requests.iter().any(|r| r.order == *n && r.via == via))
                .then_some(())
        })
        .await;
        assert!(
            asked.is_some(),
            "round {round}: the leader asks about every order"
        );
        let victim = if round % 2 == 0 {
            leader
        } else {
            let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
            followers
                .iter()
                .copied()
                .find(|i| !killed_ever.contains(i))
                .unwrap_or(followers[0])
        };
        killed_ever.insert(victim);
        cluster.kill(victim);
        let killed = Instant::now();
        if victim == leader {
            let taken_over = eventually(TAKEOVER, || async {
                let requests = server.requests();
                requests
                    .iter()
                    .any(|r| r.at >= killed && r.via != via && numbers.contains(&r.order))
                    .then_some(())
            })
            .await;
            assert!(
                taken_over.is_some(),
                "round {round}: nobody asked within {TAKEOVER:?} of killing leader {leader}"
            );
            takeovers.push(killed.elapsed());
            let successor = cluster.leader().await.expect("a new leader");
            assert_ne!(successor, leader);
        } else {
            // A follower's death changes nothing: an upload on a live instance is asked
            // about by the same leader at once.
            let number = order_number();
            assert_eq!(
                cluster.upload(round + 1, &user, &number).await,
                StatusCode::ACCEPTED
            );
            let asked = eventually(Duration::from_secs(5), || async {
                server
                    .requests()
                    .iter()
                    .any(|r| r.order == number && r.via == via)
                    .then_some(())
            })
            .await;
            assert!(
                asked.is_some(),
                "round {round}: the leader asks on after follower {victim} died"
            );
            numbers.push(number);
            assert_eq!(cluster.leader().await, Some(leader));
        }
        cluster.restart(victim).await;
    }
    assert_eq!(killed_ever.len(), 3, "every instance was killed");
    eprintln!("takeovers after kill -9: {takeovers:?}");

    credited_once(&cluster, &server, &user, &numbers).await;
}

async fn a_frozen_leader_is_replaced_and_steps_down_when_it_wakes() {
    // A stopped process keeps its sockets open: only the server ending its silent session
    // releases the lock.
    let server = ScriptedAccrual::start();
    let cluster_url = server.url.clone();
    let cluster = Cluster::start(2, |i| format!("{cluster_url}/{i}")).await;
    let user = cluster.register(0).await;
    let numbers: Vec<String> = (0..4).map(|_| order_number()).collect();
    for (i, number) in numbers.iter().enumerate() {
        assert_eq!(cluster.upload(i, &user, number).await, StatusCode::ACCEPTED);
    }
    let leader = cluster.leader().await.expect("one leader");
    let follower = 1 - leader;
    let process = cluster.instances[leader].as_ref().expect("the leader runs");
    process.signal("STOP");
    let frozen = Instant::now();
    let via = format!("/{follower}");
    let taken_over = eventually(TAKEOVER, || async {
        let requests = server.requests();
        numbers
            .iter()
            .all(|n| {
                requests
                    .iter()
                    .any(|r| r.at >= frozen && r.via == via && r.order == *n)
            })
            .then_some(())
    })
    .await;
    let took = frozen.elapsed();
    process.signal("CONT");
    assert!(
        taken_over.is_some(),
        "the follower asked about every order within {TAKEOVER:?} of the leader freezing"
    );
    eprintln!("takeover after SIGSTOP: {took:?}");

    // Awake again, the old leader finds its session gone and follows.
    let stepped_down = eventually(Duration::from_secs(10), || async {
        let old = cluster.scrape(leader).await?;
        let new = cluster.scrape(follower).await?;
        (old.value("gophermart_leader", &[]) == Some(0.0)
            && new.value("gophermart_leader", &[]) == Some(1.0))
        .then_some(())
    })
    .await;
    assert!(
        stepped_down.is_some(),
        "one leader after the old one woke up"
    );

    credited_once(&cluster, &server, &user, &numbers).await;
}

async fn a_claim_storm_over_three_instances_never_over_issues() {
    let accrual = TestAccrual::instant();
    let cluster = Cluster::start(3, |_| accrual.url.clone()).await;
    cluster
        .create(
            "/api/admin/campaigns",
            json!({"id": "storm", "title": "storm", "kind": "fixed", "value": 300,
                   "quantity": 150, "per_user": 2, "price": 0, "prefix": "C"}),
        )
        .await;
    let mut users = Vec::new();
    for chunk in 0..10 {
        users.extend(join_all((0..10).map(|i| cluster.register(chunk * 10 + i))).await);
    }
    // 1 000 claims, ten per shopper, each shopper's spread over the three instances.
    let claims = (0..1000).map(|i| {
        let user = &users[i % 100];
        let at = cluster.at(i / 100).to_owned();
        let client = cluster.client.clone();
        async move {
            let response = client
                .post(format!("{at}/api/user/coupons"))
                .bearer_auth(&user.token)
                .body(json!({"campaign": "storm"}).to_string())
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    });
    let replies = join_all(claims).await;
    let mut codes = HashSet::new();
    let mut refused = 0;
    for (status, body) in replies {
        match status {
            StatusCode::CREATED => {
                assert!(codes.insert(body["code"].as_str().unwrap().to_owned()));
            }
            StatusCode::GONE | StatusCode::CONFLICT => refused += 1,
            other => panic!("a claim answered {other}: {body}"),
        }
    }
    assert_eq!((codes.len(), refused), (150, 850));
    let per_user_max = scalar(
        &cluster.db.url,
        "SELECT CAST(COALESCE(MAX(n), 0) AS BIGINT) AS n FROM \
         (SELECT COUNT(*) AS n FROM coupons WHERE user_id IS NOT NULL GROUP BY user_id) held",
    )
    .await;
    assert!(per_user_max <= 2, "a shopper holds {per_user_max} codes");
    for i in 0..3 {
        let view: Value = cluster.admin_json(i, "/api/admin/campaigns/storm").await;
        assert_eq!(
            (view["issued"].clone(), view["remaining"].clone()),
            (json!(150), json!(0)),
            "instance {i}"
        );
    }
}

async fn a_request_repeated_on_every_instance_at_once_takes_effect_once() {
    // The same coupon claim and the same redemption (each with one Idempotency-Key) and
    // the same withdrawal, each sent to the three instances twelve times at once: the
    // account actors of the three instances race, and the database decides.
    let accrual = TestAccrual::instant();
    let warehouse = crate::redemptions::warehouse(Duration::from_millis(50), 0.0);
    warehouse.set_stock("once-sku", 100).await;
    let cluster = Cluster::start_with(
        3,
        |_| accrual.url.clone(),
        &[("--fulfilment-address", warehouse.url.as_str())],
    )
    .await;
    cluster
        .create(
            "/api/admin/rewards",
            json!({"sku": "once-sku", "title": "once", "price": 100, "stock": 5}),
        )
        .await;
    cluster
        .create(
            "/api/admin/campaigns",
            json!({"id": "once", "title": "once", "kind": "fixed", "value": 300,
                   "quantity": 50, "per_user": 5, "price": 100, "prefix": "O"}),
        )
        .await;
    let user = cluster.register(0).await;
    fund(&cluster, &accrual, &user, 1000).await;

    let claims = (0..12).map(|i| {
        let request = cluster
            .client
            .post(format!("{}/api/user/coupons", cluster.at(i)))
            .bearer_auth(&user.token)
            .header("Idempotency-Key", "one-claim")
            .body(json!({"campaign": "once"}).to_string());
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    });
    let replies = join_all(claims).await;
    let codes: HashSet<String> = replies
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::CREATED, "{body}");
            body["code"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        codes.len(),
        1,
        "every replay names the same code: {codes:?}"
    );

    let order = order_number();
    let withdrawals = (0..12).map(|i| {
        let request = cluster
            .client
            .post(format!("{}/api/user/balance/withdraw", cluster.at(i)))
            .bearer_auth(&user.token)
            .json(&json!({"order": order, "sum": 250}));
        async move { request.send().await.unwrap().status() }
    });
    for status in join_all(withdrawals).await {
        assert_eq!(status, StatusCode::OK);
    }

    let redemptions = (0..12).map(|i| {
        let request = cluster
            .client
            .post(format!("{}/api/user/redemptions", cluster.at(i)))
            .bearer_auth(&user.token)
            .header("Idempotency-Key", "one-redemption")
            .body(json!({"reward": "once-sku", "quantity": 1, "address": "1 Main St"}).to_string());
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    });
    let ids: HashSet<String> = join_all(redemptions)
        .await
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::CREATED, "{body}");
            body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "every replay names the same redemption: {ids:?}"
    );

    for i in 0..3 {
        assert_eq!(
            cluster.balance(i, &user).await,
            r#"{"current":550,"withdrawn":250}"#,
            "instance {i}"
        );
        let rewards: Value = cluster.admin_json(i, "/api/admin/rewards").await;
        assert_eq!(rewards[0]["stock"], json!(4), "instance {i}");
    }
    assert_eq!(
        scalar(
            &cluster.db.url,
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM coupons WHERE user_id IS NOT NULL"
        )
        .await,
        1
    );
    assert_ledger_matches_in(&cluster.db.url).await;
}

#[actix_web::test]
async fn an_instance_alone_refuses_company_and_sqlite_refuses_a_cluster() {
    // SQLite: one instance per file, so asking for a cluster is refused at start.
    let accrual = TestAccrual::instant();
    let sqlite = TestDb::create(Backend::Sqlite).await;
    let args = with_flag(base_args(&sqlite, &accrual.url), "--cluster", "true");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_gophermart"))
        .args(&args[1..])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("CLUSTER needs PostgreSQL"));
    if !postgres_available() {
        return;
    }
    // PostgreSQL: an instance started without CLUSTER has its database to itself.
    let db = TestDb::create(Backend::Postgres).await;
    let alone = ServiceProcess::start(base_args(&db, &accrual.url)).await;
    for (args, expected) in [
        (
            base_args(&db, &accrual.url),
            "other gophermart instances use this database",
        ),
        (
            with_flag(base_args(&db, &accrual.url), "--cluster", "true"),
            "uses this database alone",
        ),
    ] {
        let second = std::process::Command::new(env!("CARGO_BIN_EXE_gophermart"))
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(!second.status.success());
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
    drop(alone);
}
