//! The event relay: numbers committed events (the one sequencer), serves the feed, and —
//! with a broker configured — publishes every event to NATS JetStream in `seq` order,
//! the next only after the previous one's ack, storing its position as it goes.

use std::time::{Duration, Instant};

use actix::prelude::*;
use async_nats::jetstream::{self, stream, ContextBuilder};
use async_nats::HeaderMap;

use super::store::{self, EventView};
use crate::db::Db;
use crate::error::EventError;
use crate::leadership::Leadership;
use crate::settings;

/// The stream every event goes to.
pub const STREAM: &str = "GOPHERMART";

/// How long the stream drops a message whose `Nats-Msg-Id` it has seen: a restart that
/// publishes again what was acknowledged but not yet stored as the position.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Where the relay's position is stored.
const POSITION_KEY: &str = "relay_position";

/// Events published per pass; the position is stored after each pass.
const PUBLISH_BATCH: u64 = 100;

/// The first pause after a failure of the broker; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);

/// The longest pause between two attempts to reach the broker.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long one publish may wait for its ack.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the relay.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// The NATS server; `None`: events are numbered and served by the feed only.
    pub nats_url: Option<String>,
    /// How often committed events are looked for.
    pub tick: Duration,
}

/// Numbers committed events and publishes them. One runs per cluster, on the leader; the
/// sequencer is the only writer of `seq`. Every instance's relay serves the feed.
pub struct EventRelay {
    db: Db,
    settings: RelaySettings,
    leadership: Leadership,
    /// The connection, made once: the client reconnects by itself when NATS comes back.
    broker: Option<jetstream::Context>,
    /// Whether the stream is known to exist (looked up again after a failure).
    stream_ready: bool,
    /// The last `seq` the broker acknowledged, once read from the database.
    position: Option<i64>,
    busy: bool,
    failures: u32,
    retry_at: Option<Instant>,
}

impl EventRelay {
    /// A relay over `db`, numbering and publishing while `leadership` says so.
    pub fn new(db: Db, settings: RelaySettings, leadership: Leadership) -> Self {
        Self {
            db,
            settings,
            leadership,
            broker: None,
            stream_ready: false,
            position: None,
            busy: false,
            failures: 0,
            retry_at: None,
        }
    }

    /// One pass: number what committed, then publish what is numbered and not yet
    /// acknowledged. Passes never overlap.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        if !self.leadership.is_leader() {
            // The position is the leader's: read it again from the database on leading.
            self.position = None;
            return;
        }
        self.busy = true;
        let db = self.db.clone();
        let publish = self
            .settings
            .nats_url
            .clone()
            .filter(|_| self.retry_at.is_none_or(|at| Instant::now() >= at));
        let (broker, stream_ready, position) =
            (self.broker.clone(), self.stream_ready, self.position);
        let pass = async move {
            // A look on the reader first: an idle service takes no write transaction.
            while store::has_unnumbered(&db).await? {
                if store::number(&db).await? == 0 {
                    break; // numbered meanwhile by another pass
                }
            }
            let Some(url) = publish else {
                return Ok(Relayed::default());
            };
            let broker = match broker {
                Some(broker) => broker,
                None => connect(&url).await?,
            };
            let mut relayed = Relayed {
                broker: Some(broker.clone()),
                attempted: true,
                ..Relayed::default()
            };
            if !stream_ready {
                ensure_stream(&broker).await.map_err(|error| PassError {
                    relayed: relayed.clone(),
                    error,
                })?;
            }
            relayed.stream_ready = true;
            let position = match position {
                Some(position) => position,
                None => load_position(&db).await?,
            };
            match publish_pending(&db, &broker, position).await {
                Ok(position) => {
                    relayed.position = Some(position);
                    Ok(relayed)
                }
                Err((position, error)) => {
                    // What was acknowledged stays acknowledged; the stream is looked up
                    // again, in case it was removed.
                    relayed.position = Some(position);
                    relayed.stream_ready = false;
                    Err(PassError { relayed, error })
                }
            }
        };
        ctx.spawn(pass.into_actor(self).map(|result, relay, _| {
            relay.busy = false;
            let failed = result.as_ref().err().map(|e| e.error.to_string());
            let relayed = match result {
                Ok(relayed) => relayed,
                Err(failure) => failure.relayed,
            };
            relay.broker = relayed.broker.or(relay.broker.take());
            if relayed.attempted {
                relay.stream_ready = relayed.stream_ready;
            }
            relay.position = relayed.position.or(relay.position);
            match failed {
                // Waiting out a backoff, or no broker configured: nothing to learn.
                None if !relayed.attempted => {}
                None => {
                    if relay.failures > 0 {
                        tracing::info!("event broker reachable again; relaying");
                    }
                    relay.failures = 0;
                    relay.retry_at = None;
                }
                Some(error) => {
                    let backoff = MIN_BACKOFF
                        .saturating_mul(1 << relay.failures.min(8))
                        .min(MAX_BACKOFF);
                    if relay.failures == 0 {
                        tracing::warn!(%error, "event relay failed; retrying with backoff");
                    } else {
                        tracing::debug!(%error, "event relay failed again");
                    }
                    relay.failures = relay.failures.saturating_add(1);
                    relay.retry_at = Some(Instant::now() + backoff);
                }
            }
        }));
    }
}

/// What a pass leaves for the next one.
#[derive(Clone, Default)]
struct Relayed {
    /// Whether the pass tried to reach the broker.
    attempted: bool,
    broker: Option<jetstream::Context>,
    stream_ready: bool,
    position: Option<i64>,
}

/// A pass that failed, and what it had reached before failing.
struct PassError {
    relayed: Relayed,
    error: EventError,
}

impl From<sea_orm::DbErr> for PassError {
    fn from(error: sea_orm::DbErr) -> Self {
        EventError::from(error).into()
    }
}

impl From<EventError> for PassError {
    fn from(error: EventError) -> Self {
        Self {
            relayed: Relayed::default(),
            error,
        }
    }
}

/// Connects to NATS. While it is down this fails at once; once connected, the client
/// reconnects by itself and is kept.
async fn connect(url: &str) -> Result<jetstream::Context, EventError> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .map_err(|e| EventError::Broker(format!("connect: {e}")))?;
    // Bounds the wait for each ack and for each request to JetStream.
    Ok(ContextBuilder::new().timeout(ACK_TIMEOUT).build(client))
}

/// Creates the stream when it is missing.
async fn ensure_stream(broker: &jetstream::Context) -> Result<(), EventError> {
    broker
        .get_or_create_stream(stream::Config {
            name: STREAM.to_owned(),
            subjects: vec!["gophermart.>".to_owned()],
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await
        .map_err(|e| EventError::Broker(format!("stream {STREAM}: {e}")))?;
    Ok(())
}

async fn load_position(db: &Db) -> Result<i64, EventError> {
    let stored = settings::get_or_insert(db, POSITION_KEY, || "0".to_owned()).await?;
    stored
        .parse()
        .map_err(|_| EventError::Broker(format!("stored relay position {stored:?}")))
}

/// Publishes numbered events after `position` in `seq` order, each only after the
/// previous one's ack, storing the position after each batch. Returns the position
/// reached, or it and the failure that stopped it.
async fn publish_pending(
    db: &Db,
    broker: &jetstream::Context,
    mut position: i64,
) -> Result<i64, (i64, EventError)> {
    loop {
        let batch = store::after(db, position, PUBLISH_BATCH)
            .await
            .map_err(|e| (position, e.into()))?;
        let full = batch.len() as u64 == PUBLISH_BATCH;
        let start = position;
        for event in batch {
            if let Err(error) = publish(broker, &event).await {
                store_position(db, start, position).await;
                return Err((position, error));
            }
            position = event.seq;
        }
        store_position(db, start, position).await;
        if !full {
            return Ok(position);
        }
    }
}

async fn store_position(db: &Db, from: i64, to: i64) {
    if from == to {
        return;
    }
    // A position not stored only means a repeat after a restart, which the stream drops.
    // Only forward: a leader that was replaced and still finishes a pass never moves the
    // position back behind its successor's.
    if let Err(error) = settings::advance(db, POSITION_KEY, to).await {
        tracing::warn!(%error, "could not store the relay position");
    }
}

async fn publish(broker: &jetstream::Context, event: &EventView) -> Result<(), EventError> {
    let payload = event
        .to_json()
        .map_err(|e| EventError::Broker(e.to_string()))?;
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", event.id.as_str());
    let ack = broker
        .publish_with_headers(event.subject(), headers, payload.into())
        .await
        .map_err(|e| EventError::Broker(format!("publish: {e}")))?;
    ack.await
        .map_err(|e| EventError::Broker(format!("ack: {e}")))?;
    Ok(())
}

impl Actor for EventRelay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.settings.tick, |relay, ctx| relay.tick(ctx));
    }
}

/// Numbered events after `after`, ascending, at most `limit`: the feed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<EventView>, EventError>")]
pub struct ListEvents {
    /// Only events with a greater `seq`.
    pub after: i64,
    /// At most this many.
    pub limit: u64,
}

impl Handler<ListEvents> for EventRelay {
    type Result = ResponseFuture<Result<Vec<EventView>, EventError>>;

    fn handle(&mut self, msg: ListEvents, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { Ok(store::after(&db, msg.after, msg.limit).await?) })
    }
}

/// How many events are not yet published: not yet numbered, or, with a broker, not yet
/// acknowledged by it.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<u64, EventError>")]
pub struct CountUnpublished;

impl Handler<CountUnpublished> for EventRelay {
    type Result = ResponseFuture<Result<u64, EventError>>;

    fn handle(&mut self, _: CountUnpublished, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        let (relaying, known) = (self.settings.nats_url.is_some(), self.position);
        Box::pin(async move {
            let position = match (relaying, known) {
                (false, _) => i64::MAX,
                (true, Some(position)) => position,
                // Not connected since the start: what an earlier run stored.
                (true, None) => load_position(&db).await?,
            };
            Ok(store::count_after(&db, position).await?)
        })
    }
}
