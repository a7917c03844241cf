//! Several instances on one PostgreSQL database: balance reads and uploads with 1, 2, 3…
//! instances (the load generator spreads requests round-robin, as a balancer would),
//! what the read freshness costs, and how long a leader's `kill -9` takes to hand over.
//! Also the round-robin proxy that puts N instances behind one address.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::net::{TcpListener, TcpStream};

use super::{load, luhn_number, ms, register_all, Accrual, Cli, Run, Service};

/// The instances of one run.
struct Instances {
    services: Vec<Service>,
    extra: Vec<String>,
}

impl Instances {
    async fn start(cli: &Cli, accrual: &Accrual, n: usize, cluster: bool) -> anyhow::Result<Self> {
        let extra: Vec<String> = ["--cluster", if cluster { "true" } else { "false" }]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut services = Vec::with_capacity(n);
        for _ in 0..n {
            services.push(Service::start(cli, &accrual.url, &as_strs(&extra)).await?);
        }
        Ok(Self { services, extra })
    }

    fn url(&self, k: usize, path: &str) -> String {
        self.services[k % self.services.len()].url(path)
    }

    /// Registers `count` shoppers, spread over the instances; their tokens.
    async fn register(&self, tag: &str, count: usize) -> anyhow::Result<Vec<String>> {
        register_all(tag, count, |i| self.url(i, "/api/user/register")).await
    }

    /// The instance that reports itself the leader, waiting up to `within`.
    async fn leader(&self, within: Duration, except: Option<usize>) -> Option<usize> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            for (k, service) in self.services.iter().enumerate() {
                if Some(k) == except {
                    continue;
                }
                if leads(&client, service).await {
                    return Some(k);
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Whether `service`'s metrics say it leads.
async fn leads(client: &reqwest::Client, service: &Service) -> bool {
    let Ok(response) = client
        .get(service.url("/metrics"))
        .timeout(Duration::from_millis(500))
        .send()
        .await
    else {
        return false;
    };
    let Ok(text) = response.text().await else {
        return false;
    };
    text.lines()
        .any(|line| line.split_whitespace().collect::<Vec<_>>() == ["gophermart_leader", "1"])
}

/// Balance reads and uploads for each instance count, one alone without `CLUSTER` for the
/// freshness cost, then `rounds` leader kills.
pub async fn cluster(
    cli: &Cli,
    instances: &[usize],
    duration: Duration,
    concurrency: usize,
    users: usize,
    rounds: usize,
) -> anyhow::Result<()> {
    if !cli
        .database
        .as_deref()
        .is_some_and(|url| url.starts_with("postgres"))
    {
        bail!("the cluster scenario needs --database postgres://…");
    }
    let accrual = Accrual::start(0)?;
    println!(
        "scenario: {concurrency} clients, {users} users, {} per workload, requests spread round-robin",
        humantime::format_duration(duration)
    );
    println!(
        "{:<26} {:>9} {:>8} {:>8} {:>9} {:>8} {:>8}",
        "instances", "balance/s", "p50 ms", "p99 ms", "uploads/s", "p50 ms", "p99 ms"
    );
    let runs = std::iter::once((1, false)).chain(instances.iter().map(|n| (*n, true)));
    for (run, (n, clustered)) in runs.enumerate() {
        let set = Instances::start(cli, &accrual, n, clustered).await?;
        let tag = format!("{}-{run}", std::process::id());
        let tokens = set.register(&tag, users).await?;
        let failures = Failures::default();
        let balance = load(concurrency, duration, |client, worker, i| {
            let token = tokens[(worker + i * concurrency) % tokens.len()].clone();
            let url = set.url(worker + i, "/api/user/balance");
            let failures = failures.clone();
            async move {
                let response = client.get(url).bearer_auth(token).send().await;
                failures.unless(response, 200)
            }
        })
        .await;
        let failures = Failures::default();
        let uploads = load(concurrency, duration, |client, worker, i| {
            let token = tokens[(worker + i * concurrency) % tokens.len()].clone();
            let url = set.url(worker + i, "/api/user/orders");
            let number = luhn_number((run as u64) << 50 | (worker as u64) << 32 | i as u64);
            let failures = failures.clone();
            async move {
                let response = client
                    .post(url)
                    .bearer_auth(token)
                    .body(number)
                    .send()
                    .await;
                failures.unless(response, 202)
            }
        })
        .await;
        let label = if clustered {
            format!("{n}, CLUSTER=true")
        } else {
            format!("{n}, alone (cached reads)")
        };
        row(&label, &balance, &uploads);
        let seen = failures.seen();
        if !seen.is_empty() {
            println!("{:<26} failures: {seen}", "");
        }
        drop(set);
    }
    if rounds > 0 {
        failover(cli, &accrual, rounds).await?;
    }
    Ok(())
}

/// What the failed requests of a run were, by status or error kind.
#[derive(Clone, Default)]
struct Failures(std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>);

impl Failures {
    /// Whether `response` has the `expected` status; anything else is counted.
    fn unless(&self, response: reqwest::Result<reqwest::Response>, expected: u16) -> bool {
        let kind = match response {
            Ok(r) if r.status() == expected => return true,
            Ok(r) => r.status().to_string(),
            Err(e) if e.is_timeout() => "timeout".to_owned(),
            Err(e) if e.is_connect() => "connect error".to_owned(),
            Err(_) => "transport error".to_owned(),
        };
        if let Ok(mut seen) = self.0.lock() {
            *seen.entry(kind).or_default() += 1;
        }
        false
    }

    fn seen(&self) -> String {
        self.0.lock().map_or_else(
            |_| String::new(),
            |seen| {
                seen.iter()
                    .map(|(kind, n)| format!("{n}× {kind}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        )
    }
}

fn row(label: &str, balance: &Run, uploads: &Run) {
    let figures = |run: &Run| {
        let mut sorted = run.samples.clone();
        sorted.sort();
        let count = sorted.len() + run.errors;
        (
            count as f64 / run.elapsed.as_secs_f64(),
            ms(super::percentile(&sorted, 0.50)),
            ms(super::percentile(&sorted, 0.99)),
            run.errors,
        )
    };
    let (b, b50, b99, b_errors) = figures(balance);
    let (u, u50, u99, u_errors) = figures(uploads);
    let errors = if b_errors + u_errors > 0 {
        format!("   errors: {b_errors} reads, {u_errors} uploads")
    } else {
        String::new()
    };
    println!("{label:<26} {b:>9.0} {b50:>8.2} {b99:>8.2} {u:>9.0} {u50:>8.2} {u99:>8.2}{errors}");
}

/// Three instances; the leader is killed (SIGKILL) `rounds` times, each time timed until
/// another instance reports that it leads, then started again.
async fn failover(cli: &Cli, accrual: &Accrual, rounds: usize) -> anyhow::Result<()> {
    let mut set = Instances::start(cli, accrual, 3, true).await?;
    let mut took = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let leader = set
            .leader(Duration::from_secs(10), None)
            .await
            .context("no instance leads")?;
        set.services[leader].kill();
        let killed = Instant::now();
        set.leader(Duration::from_secs(30), Some(leader))
            .await
            .context("nobody took over")?;
        took.push(killed.elapsed());
        let extra = set.extra.clone();
        set.services[leader]
            .restart(cli, &accrual.url, &as_strs(&extra))
            .await?;
    }
    took.sort();
    println!(
        "failover after kill -9 of the leader, {rounds} rounds: min {:.0} ms, median {:.0} ms, max {:.0} ms",
        ms(took[0]),
        ms(took[took.len() / 2]),
        ms(took[took.len() - 1])
    );
    Ok(())
}

/// Accepts on `listen` and hands each connection to the next of `upstreams` in turn.
pub async fn proxy(listen: &str, upstreams: &[String]) -> anyhow::Result<()> {
    if upstreams.is_empty() {
        bail!("give at least one upstream with --to");
    }
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("Failed to bind {listen}"))?;
    println!(
        "round-robin on {} over {}",
        listener.local_addr()?,
        upstreams.join(", ")
    );
    let mut next = 0usize;
    loop {
        let (mut inbound, _) = listener.accept().await?;
        // An instance that refuses is skipped: the next one gets the connection.
        let tries = upstreams.len();
        let upstreams = upstreams.to_vec();
        let first = next;
        next = next.wrapping_add(1);
        tokio::spawn(async move {
            for k in 0..tries {
                let upstream = &upstreams[(first + k) % upstreams.len()];
                if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    return;
                }
            }
        });
    }
}
