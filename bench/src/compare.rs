//! Our service beside another server of the same public API: the same workloads by the
//! same client code against each, one row per server, then a summary of both throughputs.
//! Both servers ask the bench's accrual system, which listens on a fixed port so that the
//! other one can be started beforehand pointed at it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

use super::{
    fund, luhn_number, reads, register_all, upload_all, uploads, withdrawals, Accrual, Cli, Run,
    Service, FUNDING,
};

/// The options of `compare`.
#[derive(clap::Args)]
pub struct Compare {
    /// Base URL of the other server, already running with `-r http://127.0.0.1:<accrual-port>`.
    #[arg(long)]
    other: String,
    /// The other server's name in the tables.
    #[arg(long, default_value = "other")]
    other_label: String,
    /// Port of the bench's accrual system on 127.0.0.1, asked by both servers.
    #[arg(long, default_value_t = 8089)]
    accrual_port: u16,
    #[command(flatten)]
    load: crate::Load,
    /// How many times each workload runs on our service and then on the other.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

/// The workloads, in the order they run: the order lists are read before the uploads
/// lengthen them, and the uploads come last so that the accrual work they cause disturbs
/// no other workload.
#[derive(Clone, Copy)]
enum Workload {
    Balance,
    List,
    Withdraw,
    Upload,
}

impl Workload {
    const ALL: [Self; 4] = [Self::Balance, Self::List, Self::Withdraw, Self::Upload];

    fn name(self) -> &'static str {
        match self {
            Self::Balance => "GET /api/user/balance",
            Self::List => "GET /api/user/orders (one)",
            Self::Withdraw => "withdraw 0.01, one account",
            Self::Upload => "POST /api/user/orders",
        }
    }
}

/// Order numbers no earlier run used, so that a persistent database answers no `409`: a
/// prefix drawn from the clock, then a counter.
struct Numbers(AtomicU64);

impl Numbers {
    /// Room for 10¹¹ numbers per run; numbers stay below 2⁶³ (19 digits).
    fn new(nonce: u64) -> Self {
        Self(AtomicU64::new(nonce % 1_000_000 * 100_000_000_000))
    }

    fn next(&self) -> String {
        luhn_number(self.0.fetch_add(1, Ordering::Relaxed))
    }
}

/// One server under test and whom the workloads act as there.
struct Target {
    label: String,
    base: String,
    /// Shoppers holding one order each.
    shoppers: Vec<String>,
    /// The account every withdrawal is made from; `None` when it was never credited.
    hot: Option<String>,
}

impl Target {
    /// Registers the shoppers at `base` with one order each, and the hot account with
    /// `100 × rounds` orders, waiting for those to be credited.
    async fn prepare(
        label: String,
        base: String,
        tag: &str,
        options: &Compare,
        numbers: &Numbers,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::new();
        let register = format!("{base}/api/user/register");
        let shoppers = register_all(tag, options.load.users, |_| register.clone())
            .await
            .with_context(|| format!("Failed to register the shoppers on {label}"))?;
        let orders = format!("{base}/api/user/orders");
        let one_each = shoppers
            .iter()
            .map(|token| (token.as_str(), numbers.next()));
        upload_all(&client, &orders, one_each)
            .await
            .with_context(|| format!("Failed to upload the shoppers' orders to {label}"))?;
        let hot = register_all(&format!("{tag}-hot"), 1, |_| register.clone())
            .await
            .with_context(|| format!("Failed to register the hot account on {label}"))?
            .pop()
            .context("one hot account")?;
        let funding = 100 * options.rounds;
        let points = 10.0 * funding as f64;
        let funded = fund(
            &client,
            &base,
            &hot,
            (0..funding).map(|_| numbers.next()),
            points,
        )
        .await
        .with_context(|| format!("Failed to fund the hot account on {label}"))?;
        if !funded {
            println!(
                "{label}: the hot account did not show its {points} points within {} s; its withdrawals are not measured",
                FUNDING.as_secs()
            );
        }
        Ok(Self {
            label,
            base,
            shoppers,
            hot: funded.then_some(hot),
        })
    }

    /// One run of `workload`; `None` when it cannot be measured here.
    async fn run(&self, workload: Workload, options: &Compare, numbers: &Numbers) -> Option<Run> {
        let (concurrency, duration) = (options.load.concurrency, options.load.duration);
        let url = |path: &str| format!("{}{path}", self.base);
        let fresh = |_: usize, _: usize| numbers.next();
        Some(match workload {
            Workload::Balance => {
                reads(
                    &url("/api/user/balance"),
                    &self.shoppers,
                    concurrency,
                    duration,
                )
                .await
            }
            Workload::List => {
                reads(
                    &url("/api/user/orders"),
                    &self.shoppers,
                    concurrency,
                    duration,
                )
                .await
            }
            Workload::Withdraw => {
                let hot = std::slice::from_ref(self.hot.as_ref()?);
                let url = url("/api/user/balance/withdraw");
                withdrawals(&url, hot, concurrency, duration, fresh).await
            }
            Workload::Upload => {
                let url = url("/api/user/orders");
                uploads(&url, &self.shoppers, concurrency, duration, fresh).await
            }
        })
    }
}

/// Runs every workload `rounds` times on our service, then on `--other`, and prints the
/// rows and the summary.
pub async fn compare(cli: &Cli, options: &Compare) -> anyhow::Result<()> {
    if options.load.users == 0 || options.load.concurrency == 0 || options.rounds == 0 {
        bail!("give --users, --concurrency and --rounds of 1 or more");
    }
    let accrual = Accrual::start_on(&format!("127.0.0.1:{}", options.accrual_port), 0)?;
    println!(
        "accrual system on {0} (every order PROCESSED, 10 points): start the other server with `-r {0}`",
        accrual.url
    );
    let other = options.other.trim_end_matches('/').to_owned();
    reachable(&other, &accrual.url).await?;
    let service = Service::start(cli, &accrual.url, &[]).await?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    // Logins and order numbers of their own, in case the other database outlives runs.
    let tag = format!("cmp-{}-{}", std::process::id(), now.as_secs());
    let numbers = Numbers::new(u64::from(now.subsec_micros()));
    let servers = [
        ("gophermart".to_owned(), service.base.clone()),
        (options.other_label.clone(), other),
    ];
    let mut targets = Vec::with_capacity(servers.len());
    for (k, (label, base)) in servers.into_iter().enumerate() {
        let tag = format!("{tag}-{k}");
        targets.push(Target::prepare(label, base, &tag, options, &numbers).await?);
    }
    settle(&accrual).await;
    println!(
        "scenario: {} clients, {} shoppers, {} per workload and server, {} round(s) of {} then {}",
        options.load.concurrency,
        options.load.users,
        humantime::format_duration(options.load.duration),
        options.rounds,
        targets[0].label,
        targets[1].label
    );
    let mut summary = Vec::with_capacity(Workload::ALL.len());
    for workload in Workload::ALL {
        println!();
        Run::header(workload.name());
        let mut runs: [Vec<Run>; 2] = Default::default();
        for round in 1..=options.rounds {
            for (target, runs) in targets.iter().zip(&mut runs) {
                let label = if options.rounds > 1 {
                    format!("{}, round {round}", target.label)
                } else {
                    target.label.clone()
                };
                match target.run(workload, options, &numbers).await {
                    Some(run) => {
                        run.print(&label);
                        runs.push(run);
                    }
                    None => println!("{label:<28} not measured: the account was never credited"),
                }
                if let Workload::Upload = workload {
                    settle(&accrual).await;
                }
            }
        }
        summary.push((workload, runs.map(merged)));
    }
    print_summary(&targets[0].label, &targets[1].label, &summary);
    drop(service);
    Ok(())
}

/// Whether anything answers HTTP at `base`.
async fn reachable(base: &str, accrual: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    client
        .get(format!("{base}/api/user/balance"))
        .send()
        .await
        .map(drop)
        .with_context(|| {
            format!(
                "The other server at {base} is unreachable: start it first, with `-r {accrual}`"
            )
        })
}

/// Waits until the accrual system has been asked nothing for a second, so that no server
/// is still crediting orders while the next is measured; a minute at most.
async fn settle(accrual: &Accrual) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut seen, mut quiet_since) = (accrual.requests(), Instant::now());
    while quiet_since.elapsed() < Duration::from_secs(1) {
        if Instant::now() > deadline {
            println!("(the accrual system is still being asked after a minute; going on)");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let asked = accrual.requests();
        if asked != seen {
            (seen, quiet_since) = (asked, Instant::now());
        }
    }
}

/// The runs of all rounds as one.
fn merged(runs: Vec<Run>) -> Option<Run> {
    runs.into_iter().reduce(|mut all, run| {
        all.samples.extend(run.samples);
        all.errors += run.errors;
        all.elapsed += run.elapsed;
        all
    })
}

/// The Markdown table of both servers' throughputs and their ratio.
fn print_summary(ours: &str, other: &str, rows: &[(Workload, [Option<Run>; 2])]) {
    let rate = |run: &Option<Run>| {
        run.as_ref().map_or_else(
            || "not measured".to_owned(),
            |run| {
                let failed = if run.errors > 0 { " *" } else { "" };
                format!("{:.0}{failed}", run.rate())
            },
        )
    };
    println!();
    println!("| workload | {ours} req/s | {other} req/s | ratio |");
    println!("|---|---:|---:|---:|");
    for (workload, [a, b]) in rows {
        let ratio = match (a, b) {
            (Some(a), Some(b)) if b.rate() > 0.0 => format!("{:.2}", a.rate() / b.rate()),
            _ => "–".to_owned(),
        };
        println!(
            "| {} | {} | {} | {ratio} |",
            workload.name(),
            rate(a),
            rate(b)
        );
    }
    println!(
        "ratio: {ours} ÷ {other}; req/s over all rounds, failed requests included (*: some failed, see the rows above)"
    );
}
