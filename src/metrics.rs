//! The operators' metrics, in the Prometheus text format at `GET /metrics`: one registry
//! per service (several services may share a process), HTTP figures kept by the request
//! middleware, and the pipelines' gauges read at each scrape from the actors that own
//! them — from their memory, except the unpublished events, which only the database knows.

use std::future::Future;
use std::time::Duration;

use actix::Addr;
use actix_web::{web, HttpResponse};
use gophermart_actors::account::Accounts;
use gophermart_actors::accrual::{AccrualGuardian, GetPipelineState, Outcomes};
use gophermart_actors::events::{CountUnpublished, EventRelay};
use gophermart_actors::fulfilment::{
    store as fulfilment, CountUnacknowledged, FulfilmentDispatcher,
};
use gophermart_actors::leadership::Leadership;
use gophermart_actors::Db;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Upper bounds of the request-duration buckets, in seconds: from a cached read to a
/// request that waited out its body deadline.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How long a scrape waits for one actor's answer; a busy actor's gauge keeps its last value.
const GAUGE_TIMEOUT: Duration = Duration::from_secs(1);

/// The route label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Every metric of one service.
pub struct Metrics {
    registry: Registry,
    /// The HTTP figures, kept by the request middleware.
    pub http: HttpMetrics,
    /// Answers of the accrual system, counted by the accrual supervisor.
    pub accrual_outcomes: Outcomes,
    gauges: Gauges,
}

/// Requests by method, route pattern and status, and their durations.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl HttpMetrics {
    /// Counts one answered request that took `seconds`.
    pub fn observe(&self, method: &str, route: &str, status: &str, seconds: f64) {
        self.requests
            .with_label_values(&[method, route, status])
            .inc();
        self.duration
            .with_label_values(&[method, route])
            .observe(seconds);
    }
}

struct Gauges {
    accrual_paused: IntGauge,
    accrual_limit: IntGauge,
    accrual_backlog: IntGauge,
    accrual_pollers_busy: IntGauge,
    account_actors: IntGauge,
    fulfilment_backlog: IntGauge,
    events_unpublished: IntGauge,
    leader: IntGauge,
}

/// The actors the gauges are read from.
pub struct Sources {
    /// The accrual pipeline.
    pub accrual: Addr<AccrualGuardian>,
    /// The account actors.
    pub accounts: Accounts,
    /// The fulfilment dispatcher, when a fulfilment service is configured.
    pub dispatcher: Option<Addr<FulfilmentDispatcher>>,
    /// The event relay.
    pub relay: Addr<EventRelay>,
    /// The database, for the shipments waiting while no dispatcher runs.
    pub db: Db,
    /// Whether the pipelines run here.
    pub leadership: Leadership,
}

impl Metrics {
    /// A registry with every family, including the process's own (memory, CPU, files).
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "gophermart_http_requests_total",
                "HTTP requests answered, by method, route pattern and status",
            ),
            &["method", "route", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "gophermart_http_request_duration_seconds",
                "Time from a request's arrival to its answer, by method and route pattern",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        let gauge = |name: &str, help: &str| -> prometheus::Result<IntGauge> {
            let gauge = IntGauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let gauges = Gauges {
            accrual_paused: gauge(
                "gophermart_accrual_paused",
                "1 while every accrual poller waits out a 429, else 0",
            )?,
            accrual_limit: gauge(
                "gophermart_accrual_rate_limit_per_minute",
                "The request limit the accrual system announced (0 while none is known)",
            )?,
            accrual_backlog: gauge(
                "gophermart_accrual_backlog",
                "Orders whose accrual is not final yet",
            )?,
            accrual_pollers_busy: gauge(
                "gophermart_accrual_pollers_busy",
                "Accrual pollers with a question out",
            )?,
            account_actors: gauge(
                "gophermart_account_actors",
                "Account actors running (accounts used recently)",
            )?,
            fulfilment_backlog: gauge(
                "gophermart_fulfilment_backlog",
                "Shipment requests the fulfilment service has not acknowledged yet",
            )?,
            events_unpublished: gauge(
                "gophermart_events_unpublished",
                "Business events not yet numbered, or not yet acknowledged by the broker",
            )?,
            leader: gauge(
                "gophermart_leader",
                "1 on the instance running the accrual, fulfilment and event pipelines, else 0; \
                 the pipeline gauges are 0 elsewhere, so a sum over instances is the cluster's",
            )?,
        };
        let accrual_outcomes = Outcomes::register(&registry)?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            http: HttpMetrics { requests, duration },
            accrual_outcomes,
            gauges,
        })
    }

    /// Reads every gauge from its owner, then renders the registry.
    async fn render(&self, sources: &Sources) -> Result<String, prometheus::Error> {
        let gauges = &self.gauges;
        let leading = sources.leadership.is_leader();
        gauges.leader.set(i64::from(leading));
        let (accrual, actors, fulfilment, unpublished) = tokio::join!(
            within(sources.accrual.send(GetPipelineState)),
            within(sources.accounts.live()),
            within(fulfilment_backlog(sources, leading)),
            within(events_unpublished(sources, leading)),
        );
        if let Some(state) = accrual {
            gauges.accrual_paused.set(i64::from(state.paused));
            gauges.accrual_limit.set(i64::from(state.limit_per_minute));
            gauges.accrual_backlog.set(count(state.backlog));
            gauges.accrual_pollers_busy.set(count(state.pollers_busy));
        }
        if let Some(live) = actors {
            gauges.account_actors.set(count(live));
        }
        if let Some(waiting) = fulfilment {
            gauges.fulfilment_backlog.set(count(waiting));
        }
        if let Some(unpublished) = unpublished {
            gauges.events_unpublished.set(count(unpublished));
        }
        let mut text = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        String::from_utf8(text).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// Shipment requests not acknowledged: the dispatcher's own count, or, while none runs,
/// the database's.
async fn fulfilment_backlog(sources: &Sources, leading: bool) -> Result<u64, String> {
    if !leading {
        return Ok(0);
    }
    match &sources.dispatcher {
        Some(dispatcher) => dispatcher
            .send(CountUnacknowledged)
            .await
            .map(|n| n as u64)
            .map_err(|e| e.to_string()),
        None => fulfilment::count_unacknowledged(&sources.db)
            .await
            .map_err(|e| e.to_string()),
    }
}

/// Events not yet published, counted by the leader's relay.
async fn events_unpublished(sources: &Sources, leading: bool) -> Result<u64, String> {
    if !leading {
        return Ok(0);
    }
    match sources.relay.send(CountUnpublished).await {
        Ok(counted) => counted.map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    }
}

/// The answer of `ask` within the scrape's patience, or `None`.
async fn within<T, E: std::fmt::Display>(ask: impl Future<Output = Result<T, E>>) -> Option<T> {
    match tokio::time::timeout(GAUGE_TIMEOUT, ask).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(error)) => {
            tracing::debug!(%error, "a gauge could not be read");
            None
        }
        Err(_) => {
            tracing::debug!("a gauge was not read in time");
            None
        }
    }
}

fn count(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// `GET /metrics`.
pub async fn scrape(metrics: web::Data<Metrics>, sources: web::Data<Sources>) -> HttpResponse {
    match metrics.render(&sources).await {
        Ok(text) => HttpResponse::Ok()
            .content_type(TextEncoder::new().format_type())
            .body(text),
        Err(error) => {
            tracing::error!(%error, "could not render the metrics");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("internal error")
        }
    }
}
