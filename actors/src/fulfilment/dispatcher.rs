//! The fulfilment dispatcher: owns the pending shipment requests and the parcels still on
//! their way (loaded from the database at start and re-read periodically), delivers each
//! request until the fulfilment service answers for good, and follows each parcel to the
//! door. Built from the accrual pipeline's parts: backoff, jitter, pauses on `429`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;

use super::client::{Answer, FulfilmentClient};
use super::store::{self, RedemptionStatus, Shipment};
use crate::account::{Accounts, Refund};
use crate::accrual::schedule::{jitter, pause_for, Backoff, Retry, Wake};
use crate::db::Db;
use crate::leadership::Leadership;

/// How often the stored work is read again (requests made elsewhere, or whose notice was
/// lost, are picked up then).
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Settings of the pipeline.
#[derive(Debug, Clone, Copy)]
pub struct DispatchSettings {
    /// Requests to the fulfilment service in flight at most.
    pub in_flight: usize,
    /// Delays between questions: `retry_min` doubling to `retry_max`.
    pub backoff: Backoff,
    /// Pause after a `429` without a usable `Retry-After`.
    pub default_pause: Duration,
}

/// A redemption was committed: its shipment is to be requested now.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ShipmentRequested {
    /// The request.
    pub shipment: Shipment,
}

/// What became of one question, persisted already.
enum Outcome {
    /// Nothing more to do for this redemption.
    Done,
    /// Ask again after `delay`, about the shipment as it now stands.
    Again { shipment: Shipment, delay: Duration },
    /// The fulfilment service asked us to slow down.
    Throttled { shipment: Shipment, pause: Duration },
}

/// Delivers shipment requests and follows parcels; see the module docs.
pub struct FulfilmentDispatcher {
    db: Db,
    leadership: Leadership,
    accounts: Accounts,
    client: FulfilmentClient,
    settings: DispatchSettings,
    queue: BinaryHeap<Reverse<(Instant, u64, String)>>,
    /// Work by redemption id, with its current queue ticket and whether it is in flight.
    work: HashMap<String, (Shipment, u64, bool)>,
    next_ticket: u64,
    busy: usize,
    paused_until: Option<Instant>,
    wake: Wake,
}

impl FulfilmentDispatcher {
    /// A dispatcher asking through `client` and refunding through `accounts`, while
    /// `leadership` says so.
    pub fn new(
        db: Db,
        leadership: Leadership,
        accounts: Accounts,
        client: FulfilmentClient,
        settings: DispatchSettings,
    ) -> Self {
        Self {
            db,
            leadership,
            accounts,
            client,
            settings,
            queue: BinaryHeap::new(),
            work: HashMap::new(),
            next_ticket: 0,
            busy: 0,
            paused_until: None,
            wake: Wake::default(),
        }
    }

    fn reload(&mut self, ctx: &mut Context<Self>) {
        if !self.leadership.is_leader() {
            // The leader's work: forgotten here, read again from the database on leading.
            self.queue.clear();
            self.work.clear();
            return;
        }
        let db = self.db.clone();
        ctx.spawn(
            async move { store::pending(&db).await }
                .into_actor(self)
                .map(|loaded, dispatcher, ctx| match loaded {
                    Ok(shipments) => {
                        for shipment in shipments {
                            dispatcher.track(shipment);
                        }
                        dispatcher.dispatch(ctx);
                    }
                    Err(error) => tracing::error!(%error, "could not load pending shipments"),
                }),
        );
    }

    fn track(&mut self, shipment: Shipment) {
        if self.work.contains_key(&shipment.id) {
            return;
        }
        let wait = (shipment.next_attempt_at.to_utc() - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        self.enqueue(shipment, Instant::now() + wait);
    }

    fn enqueue(&mut self, shipment: Shipment, at: Instant) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.queue.push(Reverse((at, ticket, shipment.id.clone())));
        self.work
            .insert(shipment.id.clone(), (shipment, ticket, false));
    }

    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        if !self.leadership.is_leader() {
            return;
        }
        loop {
            let now = Instant::now();
            if let Some(until) = self.paused_until {
                if until > now {
                    return self.wake_at(until, ctx);
                }
                self.paused_until = None;
            }
            if self.busy >= self.settings.in_flight.max(1) {
                return;
            }
            let Some(Reverse((due, ticket, id))) = self.queue.peek() else {
                return;
            };
            let current = self
                .work
                .get(id)
                .is_some_and(|(_, current, in_flight)| current == ticket && !in_flight);
            if !current {
                self.queue.pop();
                continue;
            }
            if *due > now {
                let due = *due;
                return self.wake_at(due, ctx);
            }
            let Some(Reverse((_, _, id))) = self.queue.pop() else {
                return;
            };
            let Some((shipment, _, in_flight)) = self.work.get_mut(&id) else {
                continue;
            };
            *in_flight = true;
            self.busy += 1;
            let question = ask(
                self.db.clone(),
                self.accounts.clone(),
                self.client.clone(),
                self.settings,
                shipment.clone(),
            );
            ctx.spawn(
                question
                    .into_actor(self)
                    .map(move |outcome, dispatcher, ctx| {
                        dispatcher.busy -= 1;
                        dispatcher.finish(&id, outcome);
                        dispatcher.dispatch(ctx);
                    }),
            );
        }
    }

    fn finish(&mut self, id: &str, outcome: Outcome) {
        match outcome {
            Outcome::Done => {
                self.work.remove(id);
            }
            Outcome::Again { shipment, delay } => {
                self.enqueue(shipment, Instant::now() + jitter(delay));
            }
            Outcome::Throttled { shipment, pause } => {
                let until = Instant::now() + pause;
                if self.paused_until.is_none_or(|current| current < until) {
                    tracing::warn!(
                        pause_ms = pause.as_millis() as u64,
                        "fulfilment service throttled us; pausing"
                    );
                    self.paused_until = Some(until);
                }
                self.enqueue(shipment, until);
            }
        }
    }

    fn wake_at(&mut self, at: Instant, ctx: &mut Context<Self>) {
        self.wake.at(at, ctx, |actor, ctx| {
            actor.wake.fired();
            actor.dispatch(ctx);
        });
    }
}

/// One question to the fulfilment service about `shipment`, and what it means, persisted
/// before the answer is acted on.
async fn ask(
    db: Db,
    accounts: Accounts,
    client: FulfilmentClient,
    settings: DispatchSettings,
    mut shipment: Shipment,
) -> Outcome {
    let answer = match (&shipment.status, &shipment.tracking) {
        (RedemptionStatus::Requested, _) => client.ship(&shipment).await,
        (_, Some(tracking)) => client.track(tracking).await,
        (_, None) => Answer::Failed("a parcel without a tracking number".to_owned()),
    };
    let backoff = settings.backoff;
    let result = match answer {
        Answer::Accepted { tracking } => {
            let next = after(backoff.retry_min);
            store::advance(
                &db,
                &shipment,
                RedemptionStatus::Accepted,
                Some(&tracking),
                Some(next),
            )
            .await
            .map(|_| {
                shipment.status = RedemptionStatus::Accepted;
                shipment.tracking = Some(tracking);
                shipment.attempts = 0;
                Outcome::Again {
                    shipment: shipment.clone(),
                    delay: backoff.retry_min,
                }
            })
            .map_err(|e| e.to_string())
        }
        Answer::Status(status) if status > shipment.status => {
            let delay = backoff.retry_min;
            let next = (status != RedemptionStatus::Delivered).then(|| after(delay));
            store::advance(&db, &shipment, status, None, next)
                .await
                .map(|_| {
                    if status == RedemptionStatus::Delivered {
                        return Outcome::Done;
                    }
                    shipment.status = status;
                    shipment.attempts = 0;
                    Outcome::Again {
                        shipment: shipment.clone(),
                        delay,
                    }
                })
                .map_err(|e| e.to_string())
        }
        Answer::Status(_) => {
            return again(&db, backoff, shipment, Retry::NotFinal, None).await;
        }
        Answer::Refused(reason) => {
            tracing::warn!(redemption = %shipment.id, %reason, "fulfilment refused the shipment; refunding");
            let refund = Refund {
                redemption: shipment.id.clone(),
            };
            accounts
                .ask(shipment.user, refund)
                .await
                .map(|_| Outcome::Done)
                .map_err(|e| e.to_string())
        }
        Answer::Throttled(retry_after) => {
            return Outcome::Throttled {
                pause: pause_for(retry_after, settings.default_pause),
                shipment,
            };
        }
        Answer::Failed(reason) => {
            return again(&db, backoff, shipment, Retry::UnknownOrFailed, Some(reason)).await;
        }
    };
    match result {
        Ok(outcome) => outcome,
        Err(reason) => {
            // The answer could not be stored: ask again later; the key keeps it one
            // shipment.
            again(&db, backoff, shipment, Retry::UnknownOrFailed, Some(reason)).await
        }
    }
}

/// Schedules the next question after a backoff and stores when it is due.
async fn again(
    db: &Db,
    backoff: Backoff,
    mut shipment: Shipment,
    retry: Retry,
    failure: Option<String>,
) -> Outcome {
    shipment.attempts = shipment.attempts.saturating_add(1);
    let delay = backoff.delay(retry, shipment.attempts);
    if let Some(reason) = failure {
        if shipment.attempts == 1 {
            tracing::warn!(redemption = %shipment.id, %reason, "fulfilment request failed; retrying with backoff");
        } else {
            tracing::debug!(redemption = %shipment.id, %reason, "fulfilment request failed again");
        }
    }
    if let Err(error) = store::reschedule(db, &shipment.id, shipment.attempts, after(delay)).await {
        tracing::error!(redemption = %shipment.id, %error, "could not store the fulfilment schedule");
    }
    Outcome::Again { shipment, delay }
}

/// The moment `delay` from now, as stored.
fn after(delay: Duration) -> chrono::DateTime<chrono::FixedOffset> {
    crate::db::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero())
}

impl Actor for FulfilmentDispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.reload(ctx);
        ctx.run_interval(RELOAD_EVERY, |dispatcher, ctx| dispatcher.reload(ctx));
    }
}

impl Handler<ShipmentRequested> for FulfilmentDispatcher {
    type Result = ();

    fn handle(&mut self, msg: ShipmentRequested, ctx: &mut Self::Context) {
        if !self.leadership.is_leader() {
            // The leader reads it from the database within a reload.
            return;
        }
        self.track(msg.shipment);
        self.dispatch(ctx);
    }
}

/// How many shipment requests the fulfilment service has not acknowledged yet; answered
/// from memory.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "usize")]
pub struct CountUnacknowledged;

impl Handler<CountUnacknowledged> for FulfilmentDispatcher {
    type Result = usize;

    fn handle(&mut self, _: CountUnacknowledged, _: &mut Self::Context) -> usize {
        self.work
            .values()
            .filter(|(shipment, _, _)| shipment.status == RedemptionStatus::Requested)
            .count()
    }
}
