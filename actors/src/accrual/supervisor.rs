//! The accrual supervisor: owns the schedule of orders to ask about, hands questions to
//! pollers, persists what they learn and keeps the pipeline under the accrual system's
//! rate limit.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use tokio::sync::watch;

use super::client::{AccrualClient, Answer};
use super::messages::{Drain, GetPipelineState, OrderAccepted, Pause, PipelineState, Poll, Retire};
use super::outcomes::Outcomes;
use super::poller::AccrualPoller;
use super::schedule::{jitter, pause_for, Backoff, Pacer, Retry, Wake};
use crate::account::{Accounts, Credit};
use crate::db::Db;
use crate::domain::{OrderNumber, UserId};
use crate::orders::store::{self as order_store, OrderStatus, PendingOrder};

/// Settings of the pipeline.
#[derive(Debug, Clone, Copy)]
pub struct AccrualSettings {
    /// Number of pollers.
    pub workers: u32,
    /// Re-ask delays.
    pub backoff: Backoff,
    /// Pause after a `429` without a usable `Retry-After`.
    pub default_pause: Duration,
}

/// Margin added to the mirrored one-minute window, for the time a request spends on the
/// way to the accrual system.
const PACING_MARGIN: Duration = Duration::from_millis(500);

/// The farthest ahead anything is scheduled.
const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

/// Delay before loading the schedule again when the database failed at start.
const RELOAD_DELAY: Duration = Duration::from_secs(1);

/// How often, with other instances on the database, the stored schedule is read again for
/// uploads whose notice was lost.
const RESCAN_EVERY: Duration = Duration::from_secs(5);

/// An order the supervisor is responsible for until it is final.
#[derive(Debug)]
struct Tracked {
    user: UserId,
    status: OrderStatus,
    attempts: u32,
    uploaded_at: chrono::DateTime<chrono::FixedOffset>,
    /// The queue entry that is current; older entries for this order are skipped.
    ticket: u64,
    in_flight: bool,
    /// Whether a failure was logged already (once per order, not once per attempt).
    failure_logged: bool,
}

/// What became of one question, decided and persisted off the actor.
enum Outcome {
    /// The order is final in the database.
    Done,
    /// Ask again after `delay`.
    Again {
        status: OrderStatus,
        attempts: u32,
        delay: Duration,
        failure: Option<String>,
    },
    /// The accrual system asked us to slow down.
    Throttled {
        retry_after: Option<Duration>,
        per_minute: Option<u32>,
    },
    /// The poller died before answering.
    PollerLost,
}

/// Orders whose time has come, per shopper, served in turn: one shopper's thousand
/// uploads wait behind another shopper's one, not the other way round.
#[derive(Debug, Default)]
struct FairQueue {
    /// Each shopper's due orders, earliest first, with the ticket they were queued under.
    due: HashMap<UserId, VecDeque<(u64, OrderNumber)>>,
    /// Shoppers with due orders, in the order they get their next turn.
    turns: VecDeque<UserId>,
}

impl FairQueue {
    fn push(&mut self, user: UserId, ticket: u64, number: OrderNumber) {
        let queue = self.due.entry(user).or_default();
        if queue.is_empty() {
            self.turns.push_back(user);
        }
        queue.push_back((ticket, number));
    }

    /// The next shopper's earliest due order; the shopper goes to the back of the line.
    fn pop(&mut self) -> Option<(u64, OrderNumber)> {
        let user = self.turns.pop_front()?;
        let queue = self.due.get_mut(&user)?;
        let next = queue.pop_front();
        if queue.is_empty() {
            self.due.remove(&user);
        } else {
            self.turns.push_back(user);
        }
        next
    }

    fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }
}

/// Owns the schedule (loaded from the database at start), a fixed set of pollers, the
/// pause after a `429` and the pacing under the limit announced with it. Due orders are
/// served round-robin across shoppers. Final answers are credited through the owner's
/// account actor.
pub struct AccrualSupervisor {
    db: Db,
    accounts: Accounts,
    client: AccrualClient,
    settings: AccrualSettings,
    pollers: Vec<Addr<AccrualPoller>>,
    idle: Vec<usize>,
    /// Orders waiting for their time, soonest first.
    queue: BinaryHeap<Reverse<(Instant, u64, OrderNumber)>>,
    /// Orders whose time has come.
    due: FairQueue,
    tracked: HashMap<OrderNumber, Tracked>,
    next_ticket: u64,
    paused_until: Option<Instant>,
    pacer: Pacer,
    wake: Wake,
    loaded: bool,
    draining: bool,
    in_flight: watch::Sender<usize>,
    outcomes: Outcomes,
}

impl AccrualSupervisor {
    /// A supervisor asking through `client`, crediting through `accounts` and counting
    /// every answer in `outcomes`.
    pub fn new(
        db: Db,
        accounts: Accounts,
        client: AccrualClient,
        settings: AccrualSettings,
        outcomes: Outcomes,
    ) -> Self {
        Self {
            db,
            accounts,
            client,
            settings,
            pollers: Vec::new(),
            idle: Vec::new(),
            queue: BinaryHeap::new(),
            due: FairQueue::default(),
            tracked: HashMap::new(),
            next_ticket: 0,
            paused_until: None,
            pacer: Pacer::new(PACING_MARGIN),
            wake: Wake::default(),
            loaded: false,
            draining: false,
            in_flight: watch::channel(0).0,
            outcomes,
        }
    }

    fn load(&mut self, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        // `wait` holds the mailbox: uploads arriving meanwhile are merged after the load.
        ctx.wait(
            async move { order_store::pending(&db).await }
                .into_actor(self)
                .map(|loaded, supervisor, ctx| match loaded {
                    Ok(orders) => {
                        tracing::info!(pending = orders.len(), "accrual schedule loaded");
                        for order in orders {
                            supervisor.track(order);
                        }
                        supervisor.loaded = true;
                        supervisor.dispatch(ctx);
                    }
                    Err(error) => {
                        tracing::error!(%error, "could not load the accrual schedule; retrying");
                        ctx.run_later(RELOAD_DELAY, |supervisor, ctx| supervisor.load(ctx));
                    }
                }),
        );
    }

    /// Merges the stored schedule into the one in memory: orders uploaded on another
    /// instance whose notice did not arrive.
    fn rescan(&mut self, ctx: &mut Context<Self>) {
        if !self.loaded || self.draining {
            return;
        }
        let db = self.db.clone();
        ctx.spawn(
            async move { order_store::pending(&db).await }
                .into_actor(self)
                .map(|loaded, supervisor, ctx| match loaded {
                    Ok(orders) => {
                        let before = supervisor.tracked.len();
                        for order in orders {
                            supervisor.track(order);
                        }
                        let found = supervisor.tracked.len() - before;
                        if found > 0 {
                            tracing::info!(found, "orders found in the stored schedule");
                            supervisor.dispatch(ctx);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "could not read the stored schedule"),
                }),
        );
    }

    fn track(&mut self, order: PendingOrder) {
        if self.tracked.contains_key(&order.number) {
            return;
        }
        let wait = (order.next_poll_at.to_utc() - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        self.tracked.insert(
            order.number.clone(),
            Tracked {
                user: order.user,
                status: order.status,
                attempts: order.attempts,
                uploaded_at: order.uploaded_at,
                ticket: 0,
                in_flight: false,
                failure_logged: false,
            },
        );
        self.enqueue(order.number, after(wait));
    }

    fn enqueue(&mut self, number: OrderNumber, at: Instant) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if let Some(tracked) = self.tracked.get_mut(&number) {
            tracked.ticket = ticket;
            tracked.in_flight = false;
            self.queue.push(Reverse((at, ticket, number)));
        }
    }

    /// Hands due orders to idle pollers, a shopper at a time, while the pause and the
    /// pacing allow, then sets a timer for the next moment something can happen.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        if !self.loaded || self.draining {
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
            self.promote_due(now);
            if self.due.is_empty() {
                if let Some(Reverse((due, _, _))) = self.queue.peek() {
                    let due = *due;
                    self.wake_at(due, ctx);
                }
                return;
            }
            let ready = self.pacer.ready_at(now);
            if ready > now {
                return self.wake_at(ready, ctx);
            }
            if self.idle.is_empty() {
                return; // a poller coming back dispatches again
            }
            let Some((ticket, number)) = self.due.pop() else {
                return;
            };
            if !self.is_current(&number, ticket) {
                continue;
            }
            let Some(index) = self.idle.pop() else {
                return;
            };
            self.pacer.record(now);
            self.ask(index, number, ctx);
        }
    }

    /// Moves every order whose time has come to its shopper's line.
    fn promote_due(&mut self, now: Instant) {
        while let Some(Reverse((due, ticket, number))) = self.queue.peek() {
            if *due > now {
                return;
            }
            let (ticket, number) = (*ticket, number.clone());
            self.queue.pop();
            if let Some(tracked) = self.tracked.get(&number) {
                if tracked.ticket == ticket && !tracked.in_flight {
                    self.due.push(tracked.user, ticket, number);
                }
            }
        }
    }

    /// Whether a queue entry is still the order's current one.
    fn is_current(&self, number: &OrderNumber, ticket: u64) -> bool {
        self.tracked
            .get(number)
            .is_some_and(|t| t.ticket == ticket && !t.in_flight)
    }

    fn wake_at(&mut self, at: Instant, ctx: &mut Context<Self>) {
        self.wake.at(at, ctx, |actor, ctx| {
            actor.wake.fired();
            actor.dispatch(ctx);
        });
    }

    fn ask(&mut self, index: usize, number: OrderNumber, ctx: &mut Context<Self>) {
        let Some(tracked) = self.tracked.get_mut(&number) else {
            self.idle.push(index);
            return;
        };
        tracked.in_flight = true;
        let (user, status, attempts) = (tracked.user, tracked.status, tracked.attempts);
        let age = (Utc::now() - tracked.uploaded_at.to_utc())
            .to_std()
            .unwrap_or(Duration::ZERO);
        self.in_flight.send_modify(|n| *n += 1);
        let question = self.pollers[index].send(Poll {
            order: number.clone(),
        });
        let (db, accounts, backoff, outcomes) = (
            self.db.clone(),
            self.accounts.clone(),
            self.settings.backoff,
            self.outcomes.clone(),
        );
        let order = number.clone();
        let work = async move {
            let answer = match question.await {
                Ok(answer) => answer,
                Err(_) => return Outcome::PollerLost,
            };
            outcomes.record(&answer);
            let question = Question {
                user,
                order: &order,
                status,
                attempts,
                age,
            };
            settle(&db, &accounts, backoff, question, answer).await
        };
        ctx.spawn(work.into_actor(self).map(move |outcome, supervisor, ctx| {
            supervisor
                .in_flight
                .send_modify(|n| *n = n.saturating_sub(1));
            supervisor.finish(index, number, outcome, ctx);
        }));
    }

    fn finish(
        &mut self,
        index: usize,
        number: OrderNumber,
        outcome: Outcome,
        ctx: &mut Context<Self>,
    ) {
        match outcome {
            Outcome::Done => {
                self.tracked.remove(&number);
            }
            Outcome::Again {
                status,
                attempts,
                delay,
                failure,
            } => {
                if let Some(tracked) = self.tracked.get_mut(&number) {
                    tracked.status = status;
                    tracked.attempts = attempts;
                    if let Some(reason) = failure {
                        if tracked.failure_logged {
                            tracing::debug!(order = %number, %reason, "accrual question failed again");
                        } else {
                            tracked.failure_logged = true;
                            tracing::warn!(order = %number, %reason, "accrual question failed; retrying with backoff");
                        }
                    }
                }
                self.enqueue(number, after(jitter(delay)));
            }
            Outcome::Throttled {
                retry_after,
                per_minute,
            } => {
                let now = Instant::now();
                self.pacer.throttled(per_minute, now);
                let pause = pause_for(retry_after, self.settings.default_pause);
                let until = after(pause).max(self.pacer.ready_at(now));
                self.pause(until);
                self.enqueue(number, until);
            }
            Outcome::PollerLost => {
                tracing::error!(poller = index, "accrual poller stopped; replacing it");
                self.pollers[index] = self.start_poller();
                let attempts = self.tracked.get(&number).map_or(1, |t| t.attempts + 1);
                let delay = self
                    .settings
                    .backoff
                    .delay(Retry::UnknownOrFailed, attempts);
                self.enqueue(number, after(delay));
            }
        }
        self.idle.push(index);
        self.dispatch(ctx);
    }

    fn pause(&mut self, until: Instant) {
        if self.paused_until.is_some_and(|current| current >= until) {
            return;
        }
        tracing::warn!(
            pause_ms = until.saturating_duration_since(Instant::now()).as_millis() as u64,
            limit_per_minute = self.pacer.limit(),
            "accrual system throttled us; pausing every poller"
        );
        self.paused_until = Some(until);
        for poller in &self.pollers {
            poller.do_send(Pause { until });
        }
    }

    fn start_poller(&self) -> Addr<AccrualPoller> {
        let poller = AccrualPoller::new(self.client.clone()).start();
        if let Some(until) = self.paused_until {
            poller.do_send(Pause { until });
        }
        poller
    }
}

/// One question about an order, as the schedule saw it when it was asked.
struct Question<'a> {
    user: UserId,
    order: &'a OrderNumber,
    status: OrderStatus,
    attempts: u32,
    /// How long ago the order was uploaded.
    age: Duration,
}

/// Persists what one answer means and says what to do next. Final answers are written
/// before the order leaves the schedule; a failure to write keeps it scheduled.
async fn settle(
    db: &Db,
    accounts: &Accounts,
    backoff: Backoff,
    question: Question<'_>,
    answer: Answer,
) -> Outcome {
    let Question {
        user,
        order,
        status,
        attempts,
        age,
    } = question;
    let attempts = attempts.saturating_add(1);
    let was = status;
    let (status, retry, failure) = match answer {
        Answer::Processed(amount) => {
            return match accounts
                .ask(
                    user,
                    Credit {
                        order: order.clone(),
                        amount,
                    },
                )
                .await
            {
                Ok(_) => Outcome::Done,
                Err(error) => again(
                    backoff,
                    status,
                    attempts,
                    format!("crediting failed: {error}"),
                ),
            };
        }
        Answer::Invalid => {
            return match order_store::mark_invalid(db, user, order).await {
                Ok(_) => Outcome::Done,
                Err(error) => again(
                    backoff,
                    status,
                    attempts,
                    format!("storing INVALID failed: {error}"),
                ),
            };
        }
        Answer::TooManyRequests {
            retry_after,
            per_minute,
        } => {
            return Outcome::Throttled {
                retry_after,
                per_minute,
            }
        }
        Answer::Registered | Answer::Processing => {
            (OrderStatus::Processing, Some(Retry::NotFinal), None)
        }
        Answer::Unknown => (status, None, None),
        Answer::Failed(reason) => (status, Some(Retry::UnknownOrFailed), Some(reason)),
    };
    let delay = match retry {
        Some(retry) => backoff.delay(retry, attempts),
        None => backoff.unknown_delay(attempts, age),
    };
    let next = Utc::now().fixed_offset()
        + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
    if let Err(error) =
        order_store::reschedule(db, user, order, (was, status), attempts, next).await
    {
        // The order stays scheduled in memory; the database keeps its previous schedule.
        tracing::error!(%order, %error, "could not store the accrual schedule");
    }
    Outcome::Again {
        status,
        attempts,
        delay,
        failure,
    }
}

fn again(backoff: Backoff, status: OrderStatus, attempts: u32, reason: String) -> Outcome {
    Outcome::Again {
        status,
        attempts,
        delay: backoff.delay(Retry::UnknownOrFailed, attempts),
        failure: Some(reason),
    }
}

/// The moment `delay` from now; values from outside never overflow the clock.
fn after(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay.min(MAX_DELAY)).unwrap_or(now)
}

impl Actor for AccrualSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let workers = self.settings.workers.max(1) as usize;
        self.pollers = (0..workers).map(|_| self.start_poller()).collect();
        self.idle = (0..workers).rev().collect();
        self.load(ctx);
        if self.db.shared {
            ctx.run_interval(RESCAN_EVERY, |supervisor, ctx| supervisor.rescan(ctx));
        }
    }
}

impl Handler<Retire> for AccrualSupervisor {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<OrderAccepted> for AccrualSupervisor {
    type Result = ();

    fn handle(&mut self, msg: OrderAccepted, ctx: &mut Self::Context) {
        self.track(msg.order);
        self.dispatch(ctx);
    }
}

impl Handler<GetPipelineState> for AccrualSupervisor {
    type Result = MessageResult<GetPipelineState>;

    fn handle(&mut self, _: GetPipelineState, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        MessageResult(PipelineState {
            paused: self.paused_until.is_some_and(|until| until > now),
            limit_per_minute: self.pacer.limit().unwrap_or(0),
            backlog: self.tracked.len(),
            pollers_busy: self.pollers.len().saturating_sub(self.idle.len()),
        })
    }
}

impl Handler<Drain> for AccrualSupervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Drain, _: &mut Self::Context) -> Self::Result {
        self.draining = true;
        let mut in_flight = self.in_flight.subscribe();
        Box::pin(async move {
            let settled = tokio::time::timeout(msg.timeout, in_flight.wait_for(|n| *n == 0)).await;
            if settled.is_err() {
                tracing::warn!("stopping with accrual questions in flight; they are asked again at the next start");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::schedule::{MAX_PAUSE, MIN_PAUSE};
    use super::*;

    #[test]
    fn pauses_are_bounded_whatever_retry_after_says() {
        let default = Duration::from_secs(60);
        assert_eq!(
            pause_for(Some(Duration::from_secs(7)), default),
            Duration::from_secs(7)
        );
        assert_eq!(pause_for(None, default), default);
        assert_eq!(pause_for(Some(Duration::ZERO), default), MIN_PAUSE);
        assert_eq!(
            pause_for(Some(Duration::from_secs(u64::MAX)), default),
            MAX_PAUSE
        );
        assert!(after(Duration::from_secs(u64::MAX)) <= Instant::now() + MAX_DELAY);
    }
}
