//! Benchmarks of a running Gophermart: HTTP load on the hot endpoints, time from upload
//! to PROCESSED, and behaviour under an accrual rate limit.
//!
//! Each scenario starts the release binary as a child process over a fresh database and
//! an accrual system of its own (in this process, counting what it is asked), drives it
//! over HTTP on loopback and prints its figures. `compare` also drives a second server,
//! any implementation of the public API, with the same workloads.

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod cluster;
mod compare;

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use futures_util::future::join_all;
use gophermart_actors::domain::luhn_valid;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "Benchmarks of Gophermart over real HTTP on loopback")]
struct Cli {
    /// The service binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/gophermart")]
    service_bin: PathBuf,
    /// Database URL for the service; default: a fresh SQLite file in the temp directory.
    #[arg(long)]
    database: Option<String>,
    #[command(subcommand)]
    scenario: Scenario,
}

/// How hard a workload is loaded: by `hot`, and by `compare` on each server.
#[derive(clap::Args)]
pub struct Load {
    /// How long each workload is loaded (per server and round in `compare`).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Shoppers with one order each, whose balances and lists are read.
    #[arg(long, default_value_t = 200)]
    pub users: usize,
}

#[derive(Subcommand)]
enum Scenario {
    /// Throughput and latency of `GET /api/user/balance`, `POST /api/user/orders` and
    /// `POST /api/user/balance/withdraw`.
    Http {
        /// How long each endpoint is loaded.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Concurrent clients.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Distinct users the clients act as.
        #[arg(long, default_value_t = 200)]
        users: usize,
    },
    /// Withdrawals on one account by many clients at once (every one of them decided by
    /// that account's actor), and `GET /api/user/orders` of shoppers with one order each.
    Hot(Load),
    /// Resident memory of the service before and after many shoppers each read their
    /// balance once (one account actor each), and again once the idle actors stopped.
    Memory {
        /// Shoppers, each registered and reading their balance once.
        #[arg(long, default_value_t = 100_000)]
        shoppers: usize,
        /// Concurrent clients registering and reading.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// The service's `ACCOUNT_IDLE`: how long an actor lives without messages.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        idle: Duration,
    },
    /// Time from upload to PROCESSED visible, with an accrual system that answers at once.
    Latency {
        /// Orders, uploaded one after another, each by a user of its own.
        #[arg(long, default_value_t = 200)]
        orders: usize,
    },
    /// Orders uploaded at once under an accrual limit of N requests per minute.
    RateLimit {
        /// Orders uploaded together.
        #[arg(long, default_value_t = 150)]
        orders: usize,
        /// The accrual system's limit per sliding minute.
        #[arg(long, default_value_t = 60)]
        limit: u32,
    },
    /// Redemptions on one reward with plenty of stock, by many shoppers, against a
    /// fulfilment service that answers at once; then redemption → ACCEPTED latency.
    Redeem {
        /// How long redemptions are loaded.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Concurrent clients.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Distinct shoppers.
        #[arg(long, default_value_t = 200)]
        users: usize,
        /// Redemptions made one at a time for the latency figure.
        #[arg(long, default_value_t = 200)]
        samples: usize,
    },
    /// Claims on one campaign by many concurrent shoppers, then codes used at checkout.
    Coupons {
        /// How long each phase is loaded.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Concurrent shoppers claiming.
        #[arg(long, default_value_t = 500)]
        shoppers: usize,
        /// Concurrent checkout clients.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// How long creating a coupon campaign takes, all its codes stored, by pool size.
    Campaigns {
        /// Pool sizes, one campaign each.
        #[arg(long, value_delimiter = ',', default_value = "10000,200000,1000000")]
        sizes: Vec<u32>,
    },
    /// How fast the event relay drains a backlog into NATS JetStream: events are written
    /// with no broker configured, then the service restarts with one and the backlog is
    /// timed until it is published.
    Events {
        /// Orders uploaded (each writes three events: uploaded, status changed, credited).
        #[arg(long, default_value_t = 3000)]
        orders: usize,
        /// The NATS server (JetStream) to relay to.
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
    },
    /// Several instances on one PostgreSQL database (`--database postgres://…`): balance
    /// reads and uploads by instance count, one instance alone for the cost of fresh
    /// reads, and the time a new leader takes after a `kill -9`.
    Cluster {
        /// Instance counts to measure, each with `CLUSTER=true`.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        instances: Vec<usize>,
        /// How long each workload is loaded.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Concurrent clients.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Distinct users the clients act as.
        #[arg(long, default_value_t = 200)]
        users: usize,
        /// Leader kills to time (0: none).
        #[arg(long, default_value_t = 5)]
        failovers: usize,
    },
    /// The same workloads against our service and another server of the same public API
    /// (`--other`, started beforehand with `-r http://127.0.0.1:<accrual-port>`), side by
    /// side: balance reads, order lists, withdrawals on one account, uploads.
    Compare(compare::Compare),
    /// A bare actix-web server that answers every request with a constant balance, as
    /// fast as this machine serves HTTP at all: the ceiling to read the other figures
    /// against (load it with the same clients, e.g. `wrk -c64`).
    Ceiling {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
    },
    /// A round-robin TCP proxy: each connection accepted on `--listen` goes to the next
    /// of `--to`, so that several instances answer on one address.
    Proxy {
        /// Where to accept.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The instances, `host:port`, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        to: Vec<String>,
    },
}

/// The operator's token of the benchmarked service.
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

/// The shop's token of the benchmarked service.
const SHOP_TOKEN: &str = "bench-shop-token-0123456789";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.scenario {
        Scenario::Cluster {
            instances,
            duration,
            concurrency,
            users,
            failovers,
        } => {
            return cluster::cluster(&cli, instances, *duration, *concurrency, *users, *failovers)
                .await
        }
        Scenario::Proxy { listen, to } => return cluster::proxy(listen, to).await,
        Scenario::Ceiling { listen } => return ceiling(listen).await,
        Scenario::Compare(options) => return compare::compare(&cli, options).await,
        _ => {}
    }
    let accrual = Accrual::start(match cli.scenario {
        Scenario::RateLimit { limit, .. } => limit,
        _ => 0,
    })?;
    // Only the events scenario needs the operator's API (older builds lack the flag).
    let fulfilment = [
        "--admin-token",
        ADMIN_TOKEN,
        "--fulfilment-address",
        &accrual.url,
    ];
    let idle = match &cli.scenario {
        Scenario::Memory { idle, .. } => humantime::format_duration(*idle).to_string(),
        _ => String::new(),
    };
    let memory = ["--bcrypt-cost", "4", "--account-idle", idle.as_str()];
    let extra: &[&str] = match cli.scenario {
        Scenario::Events { .. } | Scenario::Campaigns { .. } => &["--admin-token", ADMIN_TOKEN],
        Scenario::Coupons { .. } => &[
            "--admin-token",
            ADMIN_TOKEN,
            "--shop-token",
            SHOP_TOKEN,
            "--bcrypt-cost",
            "4",
        ],
        Scenario::Redeem { .. } => &fulfilment,
        Scenario::Memory { .. } => &memory,
        _ => &[],
    };
    let mut service = Service::start(&cli, &accrual.url, extra).await?;
    let result = match &cli.scenario {
        Scenario::Http {
            duration,
            concurrency,
            users,
        } => http(&service, *duration, *concurrency, *users).await,
        Scenario::Hot(load) => hot(&service, load.duration, load.concurrency, load.users).await,
        Scenario::Memory {
            shoppers,
            concurrency,
            idle,
        } => memory_of(&service, *shoppers, *concurrency, *idle).await,
        Scenario::Latency { orders } => latency(&service, &accrual, *orders).await,
        Scenario::RateLimit { orders, limit } => {
            rate_limit(&service, &accrual, *orders, *limit).await
        }
        Scenario::Redeem {
            duration,
            concurrency,
            users,
            samples,
        } => redeem(&service, *duration, *concurrency, *users, *samples).await,
        Scenario::Campaigns { sizes } => campaigns(&service, sizes).await,
        Scenario::Coupons {
            duration,
            shoppers,
            concurrency,
        } => coupons(&service, *duration, *shoppers, *concurrency).await,
        Scenario::Events { orders, nats_url } => {
            events(&cli, &mut service, &accrual, *orders, nats_url).await
        }
        Scenario::Cluster { .. }
        | Scenario::Proxy { .. }
        | Scenario::Ceiling { .. }
        | Scenario::Compare(_) => Ok(()),
    };
    drop(service);
    result
}

async fn ceiling(listen: &str) -> anyhow::Result<()> {
    println!("answering every request on {listen} with a constant balance");
    actix_web::HttpServer::new(|| {
        actix_web::App::new().default_service(web::to(|| async {
            HttpResponse::Ok()
                .content_type("application/json")
                .body(r#"{"current":0,"withdrawn":0}"#)
        }))
    })
    .bind(listen)?
    .run()
    .await?;
    Ok(())
}

async fn http(
    service: &Service,
    duration: Duration,
    concurrency: usize,
    users: usize,
) -> anyhow::Result<()> {
    let tokens = service.register_users(users).await?;
    println!(
        "scenario: {concurrency} clients, {users} users, {} per endpoint",
        humantime::format_duration(duration)
    );
    Run::header("endpoint");
    let balance = service.url("/api/user/balance");
    reads(&balance, &tokens, concurrency, duration)
        .await
        .print("GET /api/user/balance");
    let orders = service.url("/api/user/orders");
    uploads(&orders, &tokens, concurrency, duration, |worker, i| {
        luhn_number((worker as u64) << 40 | i as u64)
    })
    .await
    .print("POST /api/user/orders");
    // Every upload above earned 10 points; each withdrawal spends 0.01 of them.
    let withdraw = service.url("/api/user/balance/withdraw");
    withdrawals(&withdraw, &tokens, concurrency, duration, |worker, i| {
        luhn_number(1 << 62 | (worker as u64) << 40 | i as u64)
    })
    .await
    .print("POST /balance/withdraw");

    // A login storm (bcrypt at the default cost) while balances are read: the hashing
    // pool is bounded, so the reads should keep their latency.
    let storm_until = Instant::now() + duration;
    let storm = (0..16).map(|i| {
        let client = reqwest::Client::new();
        let url = service.url("/api/user/login");
        let body =
            json!({"login": format!("bench-{}-{i}", std::process::id()), "password": "bench"});
        async move {
            let mut logins = 0u64;
            while Instant::now() < storm_until {
                if matches!(client.post(&url).json(&body).send().await, Ok(r) if r.status() == 200)
                {
                    logins += 1;
                }
            }
            logins
        }
    });
    let during = reads(&balance, &tokens, concurrency.min(8), duration);
    let (logins, during) = tokio::join!(join_all(storm), during);
    during.print("GET balance, login storm");
    let logins: u64 = logins.iter().sum();
    println!(
        "{:<28} {logins:>9} {:>9.0}   (16 clients logging in back to back, bcrypt cost 10)",
        "POST /api/user/login",
        logins as f64 / duration.as_secs_f64()
    );
    Ok(())
}

async fn hot(
    service: &Service,
    duration: Duration,
    concurrency: usize,
    users: usize,
) -> anyhow::Result<()> {
    if users < 2 {
        bail!("give --users 2 or more: one hot account and shoppers to list orders of");
    }
    let tokens = service.register_users(users).await?;
    let client = reqwest::Client::new();
    // One order each, credited 10 points by the bench's accrual system.
    let orders = service.url("/api/user/orders");
    let numbered = tokens.iter().enumerate();
    upload_all(
        &client,
        &orders,
        numbered.map(|(k, token)| (token.as_str(), luhn_number(3 << 60 | k as u64))),
    )
    .await?;
    // The hot account gets 100 more orders: 1 000 points, 100 000 withdrawals of 0.01.
    let (hot, shoppers) = tokens.split_first().context("at least one user")?;
    let more = (0..100u64).map(|k| luhn_number(5 << 60 | k));
    if !fund(&client, &service.base, hot, more, 1010.0).await? {
        bail!(
            "the hot account was not funded within {} s",
            FUNDING.as_secs()
        );
    }
    println!(
        "scenario: {concurrency} clients, {} per workload",
        humantime::format_duration(duration)
    );
    Run::header("workload");
    let withdraw = service.url("/api/user/balance/withdraw");
    withdrawals(
        &withdraw,
        std::slice::from_ref(hot),
        concurrency,
        duration,
        |worker, i| luhn_number(7 << 60 | (worker as u64) << 40 | i as u64),
    )
    .await
    .print("withdraw, one account");
    // The hot account's list is long; the others hold one order each.
    reads(&orders, shoppers, concurrency, duration)
        .await
        .print("GET /api/user/orders (one)");
    Ok(())
}

/// The service's resident set, from `/proc`.
fn resident_mib(service: &Service) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", service.child.id()))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(kib / 1024.0)
}

async fn memory_of(
    service: &Service,
    shoppers: usize,
    concurrency: usize,
    idle: Duration,
) -> anyhow::Result<()> {
    use futures_util::stream::{self, StreamExt};
    let start = resident_mib(service)?;
    println!(
        "scenario: {shoppers} shoppers, {concurrency} clients, account actors idle after {}",
        humantime::format_duration(idle)
    );
    println!("{:<44} {:>9} {:>10}", "moment", "RSS MiB", "seconds");
    println!("{:<44} {start:>9.1} {:>10}", "started", "");
    let began = Instant::now();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let tag = std::process::id();
    let failures = stream::iter(0..shoppers)
        .map(|i| {
            let client = client.clone();
            let register = service.url("/api/user/register");
            let balance = service.url("/api/user/balance");
            async move {
                let body = json!({"login": format!("memory-{tag}-{i}"), "password": "bench"});
                // Sign-ins beyond the hashing queue are refused with 503: ask again.
                let mut response = None;
                for _ in 0..100 {
                    let answer = client.post(&register).json(&body).send().await.ok()?;
                    if answer.status() != 503 {
                        response = Some(answer);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let token = response?
                    .headers()
                    .get("authorization")?
                    .to_str()
                    .ok()?
                    .strip_prefix("Bearer ")?
                    .to_owned();
                let read = client.get(balance).bearer_auth(token).send().await.ok()?;
                (read.status() == 200).then_some(())
            }
        })
        .buffer_unordered(concurrency)
        .filter(|done| std::future::ready(done.is_none()))
        .count()
        .await;
    let loaded = resident_mib(service)?;
    println!(
        "{:<44} {loaded:>9.1} {:>10.1}",
        format!("{shoppers} balances read ({failures} failed)"),
        began.elapsed().as_secs_f64()
    );
    // The actors stop after `idle`; the registry forgets them on its next sweep.
    tokio::time::sleep(idle * 3).await;
    let after = resident_mib(service)?;
    println!(
        "{:<44} {after:>9.1} {:>10.1}",
        "after the idle period (3 × idle)",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn events(
    cli: &Cli,
    service: &mut Service,
    accrual: &Accrual,
    orders: usize,
    nats_url: &str,
) -> anyhow::Result<()> {
    const CLIENTS: usize = 32;
    let tokens = service.register_users(CLIENTS).await?;
    let client = reqwest::Client::new();
    let uploads = (0..CLIENTS).map(|worker| {
        let (client, token) = (client.clone(), tokens[worker].clone());
        let url = service.url("/api/user/orders");
        async move {
            for i in (worker..orders).step_by(CLIENTS) {
                let number = luhn_number(3 << 60 | i as u64);
                let _ = client
                    .post(&url)
                    .bearer_auth(&token)
                    .body(number)
                    .send()
                    .await;
            }
        }
    });
    join_all(uploads).await;
    let expected = (CLIENTS + 3 * orders) as u64;
    // Every order credited and every event numbered: the backlog is complete.
    let started = Instant::now();
    loop {
        let summary = service.summary(&client).await?;
        if summary["accrual_backlog"] == 0 && summary["events_unpublished"] == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the orders were not processed: {summary}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    service
        .restart(
            cli,
            &accrual.url,
            &["--admin-token", ADMIN_TOKEN, "--nats-url", nats_url],
        )
        .await?;
    let started = Instant::now();
    let mut backlog = 0;
    loop {
        let left = service.summary(&client).await?["events_unpublished"]
            .as_u64()
            .unwrap_or(u64::MAX);
        backlog = backlog.max(left);
        if left == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the relay did not drain: {left} left");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    println!(
        "events written: {expected} ({orders} orders by {CLIENTS} shoppers), relayed to {nats_url}"
    );
    println!(
        "backlog of {backlog} drained in {:.2} s: {:.0} events/s (one publish at a time, each after the previous ack)",
        took.as_secs_f64(),
        backlog as f64 / took.as_secs_f64()
    );
    Ok(())
}

async fn redeem(
    service: &Service,
    duration: Duration,
    concurrency: usize,
    users: usize,
    samples: usize,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let reward = client
        .post(service.url("/api/admin/rewards"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"sku": "bench", "title": "Bench", "price": 0.01, "stock": 1_000_000_000}))
        .send()
        .await?;
    if reward.status() != 201 {
        bail!("creating the reward answered {}", reward.status());
    }
    // Each shopper earns 10 points (one order), enough for 1 000 redemptions.
    let tokens = service.register_users(users).await?;
    let numbered = tokens.iter().enumerate();
    upload_all(
        &client,
        &service.url("/api/user/orders"),
        numbered.map(|(i, token)| (token.as_str(), luhn_number(5 << 56 | i as u64))),
    )
    .await?;
    let started = Instant::now();
    while service.summary(&client).await?["accrual_backlog"] != 0 {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the shoppers were not funded");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "scenario: {concurrency} clients, {users} shoppers, one reward, {}",
        humantime::format_duration(duration)
    );
    Run::header("endpoint");
    let run = load_as(&tokens, concurrency, duration, |client, token, _, _| {
        let url = service.url("/api/user/redemptions");
        async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"reward": "bench", "quantity": 1, "address": "1 Bench Road"}))
                .send()
                .await;
            matches!(response, Ok(r) if r.status() == 201)
        }
    })
    .await;
    run.print("POST /api/user/redemptions");
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let token = &tokens[i % tokens.len()];
        let started = Instant::now();
        let created: Value = client
            .post(service.url("/api/user/redemptions"))
            .bearer_auth(token)
            .json(&json!({"reward": "bench", "quantity": 1, "address": "1 Bench Road"}))
            .send()
            .await?
            .json()
            .await?;
        let id = created["id"]
            .as_str()
            .context("a redemption id")?
            .to_owned();
        loop {
            let seen: Value = client
                .get(service.url(&format!("/api/user/redemptions/{id}")))
                .bearer_auth(token)
                .send()
                .await?
                .json()
                .await?;
            if seen["status"] != "REQUESTED" {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("redemption {id} was not accepted within 30 s");
            }
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "redemption → ACCEPTED visible ({samples}, one at a time): median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.95)),
        ms(percentile(&latencies, 1.0))
    );
    Ok(())
}

async fn coupons(
    service: &Service,
    duration: Duration,
    shoppers: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let created = client
        .post(service.url("/api/admin/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &json!({"id": "bench", "title": "Bench", "kind": "percent", "value": 10,
                      "quantity": 1_000_000, "per_user": 1_000_000, "prefix": "BENCH"}),
        )
        .send()
        .await?;
    if created.status() != 201 {
        bail!("creating the campaign answered {}", created.status());
    }
    let tokens = service.register_users(shoppers).await?;
    let codes = Arc::new(Mutex::new(Vec::new()));
    println!(
        "scenario: {shoppers} shoppers claiming at once, then {concurrency} checkout clients, {} each",
        humantime::format_duration(duration)
    );
    Run::header("endpoint");
    let claims = load(shoppers, duration, |client, worker, _| {
        let token = tokens[worker % tokens.len()].clone();
        let url = service.url("/api/user/coupons");
        let codes = codes.clone();
        async move {
            let Ok(response) = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"campaign": "bench"}))
                .send()
                .await
            else {
                return false;
            };
            if response.status() != 201 {
                return false;
            }
            let Ok(body) = response.json::<Value>().await else {
                return false;
            };
            if let (Some(code), Ok(mut codes)) = (body["code"].as_str(), codes.lock()) {
                codes.push(code.to_owned());
            }
            true
        }
    })
    .await;
    claims.print("POST /api/user/coupons");
    let codes: Vec<String> = codes.lock().map(|codes| codes.clone()).unwrap_or_default();
    // Each claimed code used once, until they run out.
    let uses = load_while(concurrency, duration, |client, worker, i| {
        let n = worker + i * concurrency;
        let code = codes.get(n).cloned();
        let url = code.map(|code| service.url(&format!("/api/shop/coupons/{code}/redeem")));
        async move {
            let url = url?;
            let response = client
                .post(url)
                .bearer_auth(SHOP_TOKEN)
                .json(&json!({"order": luhn_number(7 << 56 | n as u64), "amount": 1500}))
                .send()
                .await;
            Some(matches!(response, Ok(r) if r.status() == 200))
        }
    })
    .await;
    uses.print("POST /api/shop/…/redeem");
    Ok(())
}

async fn campaigns(service: &Service, sizes: &[u32]) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    for (i, size) in sizes.iter().enumerate() {
        let started = Instant::now();
        let response = client
            .post(service.url("/api/admin/campaigns"))
            .bearer_auth(ADMIN_TOKEN)
            .json(
                &json!({"id": format!("bench-{i}"), "title": "Bench", "kind": "fixed",
                          "value": 1, "quantity": size, "prefix": "BENCH"}),
            )
            .send()
            .await?;
        if response.status() != 201 {
            bail!("creating {size} codes answered {}", response.status());
        }
        let took = started.elapsed();
        println!(
            "campaign of {size:>9} codes created in {:>7.2} s ({:.0} codes/s)",
            took.as_secs_f64(),
            f64::from(*size) / took.as_secs_f64()
        );
    }
    Ok(())
}

async fn latency(service: &Service, accrual: &Accrual, orders: usize) -> anyhow::Result<()> {
    let tokens = service.register_users(orders).await?;
    let client = reqwest::Client::new();
    let mut samples = Vec::with_capacity(orders);
    for (i, token) in tokens.iter().enumerate() {
        let number = luhn_number(9_000_000 + i as u64);
        let started = Instant::now();
        let status = upload(
            &client,
            service.url("/api/user/orders"),
            token,
            number.clone(),
        )
        .await?;
        if status != 202 {
            bail!("upload answered {status}");
        }
        loop {
            let list = service.orders(&client, token).await?;
            if list.first().is_some_and(|o| o["status"] == "PROCESSED") {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("order {number} was not processed within 30 s");
            }
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    let stats = accrual.stats();
    println!("orders: {orders}, uploaded one at a time, list polled back to back");
    println!(
        "upload → PROCESSED visible: median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.95)),
        ms(percentile(&samples, 1.0))
    );
    println!(
        "accrual requests: {} ({:.2} per order)",
        stats.requests,
        stats.requests as f64 / orders as f64
    );
    Ok(())
}

async fn rate_limit(
    service: &Service,
    accrual: &Accrual,
    orders: usize,
    limit: u32,
) -> anyhow::Result<()> {
    let tokens = service.register_users(1).await?;
    let token = &tokens[0];
    let client = reqwest::Client::new();
    let started = Instant::now();
    let uploads = (0..orders).map(|i| {
        let request = client
            .post(service.url("/api/user/orders"))
            .bearer_auth(token)
            .body(luhn_number(5_000_000 + i as u64));
        async move { request.send().await.map(|r| r.status()) }
    });
    for status in join_all(uploads).await {
        if status? != 202 {
            bail!("an upload was refused");
        }
    }
    loop {
        let list = service.orders(&client, token).await?;
        let done = list.iter().filter(|o| o["status"] == "PROCESSED").count();
        if done == orders {
            break;
        }
        if started.elapsed() > Duration::from_secs(60 * (orders as u64 / limit.max(1) as u64 + 3)) {
            bail!("only {done} of {orders} orders processed");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let elapsed = started.elapsed();
    let stats = accrual.stats();
    let span = stats
        .last_ok
        .zip(stats.first)
        .map_or(elapsed, |(last, first)| last - first);
    // Under a sliding window of `limit` per minute, answer k (0-based) can come no
    // sooner than minute k / limit after the first: the best any client can do.
    let best = Duration::from_secs(60 * ((stats.ok.max(1) - 1) / u64::from(limit.max(1))));
    let used = if span.is_zero() {
        1.0
    } else {
        best.as_secs_f64() / span.as_secs_f64()
    };
    let windows = (span.as_secs_f64() / 60.0).ceil().max(1.0);
    println!("orders: {orders}, accrual limit: {limit} per minute, pollers: 4 (default)");
    println!("all PROCESSED after {:.1} s", elapsed.as_secs_f64());
    println!(
        "accrual requests: {} ({} answered 200, {} answered 429) over {windows} limit windows",
        stats.requests, stats.ok, stats.throttled
    );
    println!(
        "{} useful answers from first to last request in {:.1} s; the limit allows them in {:.1} s at best",
        stats.ok,
        span.as_secs_f64(),
        best.as_secs_f64()
    );
    println!(
        "useful rate: {:.1} per minute = {:.1} % of the limit",
        f64::from(limit) * used,
        used * 100.0
    );
    Ok(())
}

/// Latencies of one load run.
struct Run {
    samples: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Run {
    /// The heading of the table [`Run::print`] writes rows of.
    fn header(first: &str) {
        println!(
            "{first:<28} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7}",
            "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"
        );
    }

    /// Requests per second, the failed ones included.
    fn rate(&self) -> f64 {
        (self.samples.len() + self.errors) as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, name: &str) {
        let mut sorted = self.samples.clone();
        sorted.sort();
        let count = sorted.len() + self.errors;
        println!(
            "{name:<28} {count:>9} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>7}",
            self.rate(),
            ms(percentile(&sorted, 0.50)),
            ms(percentile(&sorted, 0.95)),
            ms(percentile(&sorted, 0.99)),
            self.errors
        );
    }
}

/// Runs `concurrency` clients for `duration`, each issuing `request(client, worker, i)`
/// back to back.
async fn load<F, Fut>(concurrency: usize, duration: Duration, request: F) -> Run
where
    F: Fn(reqwest::Client, usize, usize) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    load_while(concurrency, duration, |client, worker, i| {
        let answer = request(client, worker, i);
        async move { Some(answer.await) }
    })
    .await
}

/// [`load`] acting as `tokens` in turn: request `i` of `worker` carries token
/// `(worker + i × concurrency) mod tokens.len()`, given as the second argument.
async fn load_as<F, Fut>(
    tokens: &[String],
    concurrency: usize,
    duration: Duration,
    request: F,
) -> Run
where
    F: Fn(reqwest::Client, String, usize, usize) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    load(concurrency, duration, |client, worker, i| {
        let token = tokens[(worker + i * concurrency) % tokens.len()].clone();
        request(client, token, worker, i)
    })
    .await
}

/// `GET url` as `tokens` in turn; `200` expected.
async fn reads(url: &str, tokens: &[String], concurrency: usize, duration: Duration) -> Run {
    load_as(tokens, concurrency, duration, |client, token, _, _| {
        let request = client.get(url).bearer_auth(token);
        async move { matches!(request.send().await, Ok(r) if r.status() == 200) }
    })
    .await
}

/// Uploads to `url` (`POST /api/user/orders`) of new numbers `number(worker, i)` as `tokens`
/// in turn; `202` expected.
async fn uploads(
    url: &str,
    tokens: &[String],
    concurrency: usize,
    duration: Duration,
    number: impl Fn(usize, usize) -> String,
) -> Run {
    load_as(tokens, concurrency, duration, |client, token, worker, i| {
        let request = upload(&client, url.to_owned(), &token, number(worker, i));
        async move { matches!(request.await, Ok(status) if status == 202) }
    })
    .await
}

/// Withdrawals of 0.01 at `url` for new order numbers `number(worker, i)` as `tokens` in
/// turn; `200` expected.
async fn withdrawals(
    url: &str,
    tokens: &[String],
    concurrency: usize,
    duration: Duration,
    number: impl Fn(usize, usize) -> String,
) -> Run {
    load_as(tokens, concurrency, duration, |client, token, worker, i| {
        withdraw_cent(client, url.to_owned(), token, number(worker, i))
    })
    .await
}

/// [`load`] where a request may say there is nothing left to send (`None`): its worker
/// stops.
async fn load_while<F, Fut>(concurrency: usize, duration: Duration, request: F) -> Run
where
    F: Fn(reqwest::Client, usize, usize) -> Fut,
    Fut: std::future::Future<Output = Option<bool>> + Send + 'static,
{
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap_or_default();
    let started = Instant::now();
    let deadline = started + duration;
    let workers = (0..concurrency).map(|worker| {
        let client = client.clone();
        let request = &request;
        async move {
            let (mut samples, mut errors) = (Vec::new(), 0usize);
            let mut i = 0;
            while Instant::now() < deadline {
                let sent = Instant::now();
                match request(client.clone(), worker, i).await {
                    Some(true) => samples.push(sent.elapsed()),
                    Some(false) => errors += 1,
                    None => break,
                }
                i += 1;
            }
            (samples, errors)
        }
    });
    let results = join_all(workers).await;
    let elapsed = started.elapsed();
    let mut run = Run {
        samples: Vec::new(),
        errors: 0,
        elapsed,
    };
    for (samples, errors) in results {
        run.samples.extend(samples);
        run.errors += errors;
    }
    run
}

/// The service as a child process over a fresh database.
struct Service {
    child: Child,
    base: String,
    port: u16,
    database: String,
    sqlite_file: Option<PathBuf>,
}

impl Service {
    async fn start(cli: &Cli, accrual_url: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let (database, sqlite_file) = match &cli.database {
            Some(url) => (url.clone(), None),
            None => {
                let file = std::env::temp_dir()
                    .join(format!("gophermart-bench-{}.db", std::process::id()));
                (format!("sqlite://{}?mode=rwc", file.display()), Some(file))
            }
        };
        let child = Self::spawn(cli, port, &database, accrual_url, extra)?;
        let service = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            database,
            sqlite_file,
        };
        service.wait_until_up().await?;
        Ok(service)
    }

    /// Stops the process and starts it again over the same database and port.
    async fn restart(
        &mut self,
        cli: &Cli,
        accrual_url: &str,
        extra: &[&str],
    ) -> anyhow::Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(cli, self.port, &self.database, accrual_url, extra)?;
        self.wait_until_up().await
    }

    async fn wait_until_up(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        while client.get(self.url("/health")).send().await.is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("the service did not come up");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// The operator's summary.
    async fn summary(&self, client: &reqwest::Client) -> anyhow::Result<Value> {
        Ok(client
            .get(self.url("/api/admin/stats/summary"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    fn spawn(
        cli: &Cli,
        port: u16,
        database: &str,
        accrual_url: &str,
        extra: &[&str],
    ) -> anyhow::Result<Child> {
        Command::new(&cli.service_bin)
            .args([
                "-a",
                &format!("127.0.0.1:{port}"),
                "-d",
                database,
                "-r",
                accrual_url,
            ])
            .args(extra)
            .args(["--token-secret", "bench-secret-bench-secret-bench-secret"])
            // The bench signs in and uploads far faster than a person would.
            .args(["--auth-rate-per-ip", "0", "--auth-rate-per-login", "0"])
            .args(["--upload-rate-per-user", "0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| {
                format!(
                    "Failed to start {} (run `cargo build --release` first)",
                    cli.service_bin.display()
                )
            })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `kill -9`.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The user's order list (empty on `204`).
    async fn orders(&self, client: &reqwest::Client, token: &str) -> anyhow::Result<Vec<Value>> {
        let response = client
            .get(self.url("/api/user/orders"))
            .bearer_auth(token)
            .send()
            .await?;
        Ok(response.json().await.unwrap_or_default())
    }

    async fn register_users(&self, count: usize) -> anyhow::Result<Vec<String>> {
        let url = self.url("/api/user/register");
        register_all(&std::process::id().to_string(), count, |_| url.clone()).await
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(file) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm", ".lock"] {
                let mut path = file.clone().into_os_string();
                path.push(suffix);
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// What the accrual system was asked.
#[derive(Debug, Clone, Default)]
struct AccrualStats {
    requests: u64,
    ok: u64,
    throttled: u64,
    first: Option<Instant>,
    last_ok: Option<Instant>,
    per_order: HashMap<String, u32>,
}

struct AccrualState {
    limit: u32,
    window: VecDeque<Instant>,
    stats: AccrualStats,
}

/// An accrual system that answers PROCESSED (10 points) at once, optionally under a
/// sliding-window limit like the emulator's, counting everything.
struct Accrual {
    url: String,
    state: Arc<Mutex<AccrualState>>,
}

impl Accrual {
    fn start(limit: u32) -> anyhow::Result<Self> {
        Self::start_on("127.0.0.1:0", limit)
    }

    /// [`Accrual::start`] listening on `address`.
    fn start_on(address: &str, limit: u32) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(address)
            .with_context(|| format!("Failed to listen on {address} for the accrual system"))?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(AccrualState {
            limit,
            window: VecDeque::new(),
            stats: AccrualStats::default(),
        }));
        let shared = web::Data::from(state.clone());
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(shared.clone())
                        .route("/api/orders/{number}", web::get().to(answer))
                        // An instant fulfilment service too: accepted at once, delivered.
                        .route("/api/shipments", web::post().to(accept_shipment))
                        .route("/api/shipments/{tracking}", web::get().to(delivered))
                })
                .workers(1)
                .listen(listener);
                if let Ok(server) = server {
                    let _ = server.run().await;
                }
            });
        });
        Ok(Self { url, state })
    }

    fn stats(&self) -> AccrualStats {
        self.state
            .lock()
            .map(|s| s.stats.clone())
            .unwrap_or_default()
    }

    /// How many requests it was sent so far (without copying the per-order counts).
    fn requests(&self) -> u64 {
        self.state.lock().map_or(0, |s| s.stats.requests)
    }
}

async fn accept_shipment(req: actix_web::HttpRequest) -> HttpResponse {
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    HttpResponse::Created().json(json!({"tracking": format!("T-{key}"), "status": "ACCEPTED"}))
}

async fn delivered(tracking: web::Path<String>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"tracking": tracking.into_inner(), "status": "DELIVERED"}))
}

async fn answer(state: web::Data<Mutex<AccrualState>>, number: web::Path<String>) -> HttpResponse {
    let Ok(mut state) = state.lock() else {
        return HttpResponse::InternalServerError().finish();
    };
    let now = Instant::now();
    state.stats.requests += 1;
    state.stats.first.get_or_insert(now);
    *state.stats.per_order.entry(number.clone()).or_default() += 1;
    if state.limit > 0 {
        while state
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            state.window.pop_front();
        }
        if state.window.len() >= state.limit as usize {
            state.stats.throttled += 1;
            let oldest = state.window.front().copied().unwrap_or(now);
            let wait = Duration::from_secs(60).saturating_sub(now.duration_since(oldest));
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", seconds.max(1).to_string()))
                .content_type("text/plain")
                .body(format!(
                    "No more than {} requests per minute allowed",
                    state.limit
                ));
        }
        state.window.push_back(now);
    }
    state.stats.ok += 1;
    state.stats.last_ok = Some(now);
    HttpResponse::Ok().json(json!({"order": number.as_str(), "status": "PROCESSED", "accrual": 10}))
}

/// Registers `login` (password `bench`) at `url`; its token.
async fn register(client: &reqwest::Client, url: String, login: &str) -> anyhow::Result<String> {
    let response = client
        .post(&url)
        .json(&json!({"login": login, "password": "bench"}))
        .send()
        .await
        .with_context(|| format!("Failed to reach {url}"))?;
    let status = response.status();
    let token = response
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .with_context(|| {
            format!("registering {login} at {url} answered {status} without an `Authorization: Bearer …` header")
        })?;
    Ok(token.to_owned())
}

/// Registers shoppers `bench-{tag}-{i}` for `i` below `count`, shopper `i` at `url(i)`, a
/// few at a time; their tokens, in order.
async fn register_all(
    tag: &str,
    count: usize,
    url: impl Fn(usize) -> String,
) -> anyhow::Result<Vec<String>> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    let client = reqwest::Client::new();
    stream::iter(0..count)
        .map(|i| {
            let (client, url, login) = (client.clone(), url(i), format!("bench-{tag}-{i}"));
            async move { register(&client, url, &login).await }
        })
        .buffered(4)
        .try_collect()
        .await
}

/// Uploads order `number` to `url` (`POST /api/user/orders`) as `token`; the status.
fn upload(
    client: &reqwest::Client,
    url: String,
    token: &str,
    number: String,
) -> impl std::future::Future<Output = reqwest::Result<reqwest::StatusCode>> + Send + 'static {
    let request = client.post(url).bearer_auth(token).body(number).send();
    async move { request.await.map(|r| r.status()) }
}

/// Uploads each `(token, number)` to `url` in turn; an error unless all answer `202`.
async fn upload_all<'a>(
    client: &reqwest::Client,
    url: &str,
    orders: impl IntoIterator<Item = (&'a str, String)>,
) -> anyhow::Result<()> {
    for (token, number) in orders {
        let status = upload(client, url.to_owned(), token, number.clone()).await?;
        if status != 202 {
            bail!("uploading order {number} to {url} answered {status}");
        }
    }
    Ok(())
}

/// How long [`fund`] waits for the credit to show.
const FUNDING: Duration = Duration::from_secs(60);

/// Uploads `numbers` as `token` to the server at `base` (the bench's accrual system credits
/// 10 points each) and waits up to [`FUNDING`] until its balance shows `points` or more;
/// whether it did.
async fn fund(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    numbers: impl IntoIterator<Item = String>,
    points: f64,
) -> anyhow::Result<bool> {
    let orders = format!("{base}/api/user/orders");
    upload_all(client, &orders, numbers.into_iter().map(|n| (token, n))).await?;
    let deadline = Instant::now() + FUNDING;
    while Instant::now() < deadline {
        let response = client
            .get(format!("{base}/api/user/balance"))
            .bearer_auth(token)
            .send()
            .await?;
        // Anything but a balance (an error page, say) counts as not funded yet.
        let balance: Value = response.json().await.unwrap_or_default();
        if balance["current"]
            .as_f64()
            .is_some_and(|c| c + 0.005 >= points)
        {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(false)
}

/// Withdraws 0.01 for order `number`; whether it was taken (`200`).
async fn withdraw_cent(
    client: reqwest::Client,
    url: String,
    token: String,
    number: String,
) -> bool {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(&json!({"order": number, "sum": 0.01}))
        .send()
        .await;
    matches!(response, Ok(r) if r.status() == 200)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A Luhn-valid order number derived from `seed`.
fn luhn_number(seed: u64) -> String {
    let body = format!("7{seed:015}");
    (0..10)
        .map(|check| format!("{body}{check}"))
        .find(|candidate| luhn_valid(candidate))
        .unwrap_or(body)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
