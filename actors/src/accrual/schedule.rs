//! The arithmetic of the schedule: backoff delays and pacing under an announced limit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, SpawnHandle};
use rand::Rng;

/// Delays before asking about an order again.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first delay; it doubles with every further answer.
    pub retry_min: Duration,
    /// Cap for orders the accrual system is working on.
    pub retry_max: Duration,
    /// Cap for unknown orders (`204`) and failures.
    pub unknown_retry_max: Duration,
}

/// Why an order is asked about again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The accrual system knows it and is calculating.
    NotFinal,
    /// Unknown to the accrual system, or the question failed.
    UnknownOrFailed,
}

impl Backoff {
    /// The delay after the `attempts`-th answer (1-based): `retry_min · 2^(attempts-1)`,
    /// capped by the kind of answer.
    pub fn delay(&self, retry: Retry, attempts: u32) -> Duration {
        let cap = match retry {
            Retry::NotFinal => self.retry_max,
            Retry::UnknownOrFailed => self.unknown_retry_max,
        };
        let doublings = attempts.saturating_sub(1).min(32);
        self.retry_min
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(cap)
            .min(cap)
    }

    /// The delay after a `204` for an order uploaded `age` ago: as [`Self::delay`] while
    /// the order is young; then a tenth of its age, up to [`MAX_UNKNOWN_DELAY`], so that
    /// numbers the accrual system never learns of are asked less and less often.
    pub fn unknown_delay(&self, attempts: u32, age: Duration) -> Duration {
        let by_age = (age / AGE_SHARE).min(MAX_UNKNOWN_DELAY);
        self.delay(Retry::UnknownOrFailed, attempts).max(by_age)
    }
}

/// An unknown order is asked again after at most this long, however old it is.
pub const MAX_UNKNOWN_DELAY: Duration = Duration::from_secs(3600);

/// An old unknown order waits this fraction of its age (one tenth) between questions.
const AGE_SHARE: u32 = 10;

/// The longest pause a `Retry-After` can impose; longer ones are taken as this.
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// The shortest pause after a `429`, so that `Retry-After: 0` cannot make every poller
/// hammer the system that throttled us.
pub const MIN_PAUSE: Duration = Duration::from_secs(1);

/// How long to pause after a `429`: its `Retry-After`, bounded, or else the configured
/// default.
pub fn pause_for(retry_after: Option<Duration>, default: Duration) -> Duration {
    retry_after.map_or(default, |wait| wait.clamp(MIN_PAUSE, MAX_PAUSE))
}

/// Up to 10 % shorter, so that work scheduled together spreads out.
pub fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(rand::rng().random_range(0.9..=1.0))
}
/// The next wake-up of a scheduling actor: one timer, moved earlier when something is due
/// sooner, never doubled.
#[derive(Debug, Default)]
pub struct Wake(Option<(Instant, SpawnHandle)>);

impl Wake {
    /// Has `fire` run at `at`, unless a wake-up at or before it is planned already.
    pub fn at<A>(&mut self, at: Instant, ctx: &mut Context<A>, fire: fn(&mut A, &mut Context<A>))
    where
        A: Actor<Context = Context<A>>,
    {
        if let Some((planned, handle)) = self.0.take() {
            if planned <= at {
                self.0 = Some((planned, handle));
                return;
            }
            ctx.cancel_future(handle);
        }
        let handle = ctx.run_later(at.saturating_duration_since(Instant::now()), fire);
        self.0 = Some((at, handle));
    }

    /// The planned wake-up has happened.
    pub fn fired(&mut self) {
        self.0 = None;
    }
}

/// Keeps our request rate under a per-minute limit by mirroring the accrual system's
/// sliding window with our own send times: a request may leave when fewer than `limit`
/// of ours left in the last minute (plus a margin for network delay). A limit is
/// forgotten after [`QUIET_PERIOD`] without a `429`, so that one announced by mistake (or
/// raised since) does not slow us for the life of the process.
#[derive(Debug)]
pub struct Pacer {
    limit: Option<u32>,
    window: Duration,
    sent: VecDeque<Instant>,
    throttled_at: Option<Instant>,
}

/// How many send times are kept at most, whatever limit is announced; a limit above it
/// never holds a request back for lack of history.
const HISTORY: usize = 4096;

/// How long after the last `429` a learned limit still applies.
pub const QUIET_PERIOD: Duration = Duration::from_secs(300);

impl Pacer {
    /// A pacer that lets everything through until it learns a limit.
    pub fn new(margin: Duration) -> Self {
        Self {
            limit: None,
            window: Duration::from_secs(60) + margin,
            sent: VecDeque::new(),
            throttled_at: None,
        }
    }

    /// Notes a `429` at `now`, with the limit its body announced, if any: the latest
    /// announcement replaces what was learned before.
    pub fn throttled(&mut self, per_minute: Option<u32>, now: Instant) {
        self.throttled_at = Some(now);
        if let Some(limit) = per_minute {
            self.limit = Some(limit.max(1));
        }
    }

    /// The announced limit, once known.
    pub fn limit(&self) -> Option<u32> {
        self.limit
    }

    /// The earliest moment the next request may leave. Forgets the limit after a quiet
    /// period.
    pub fn ready_at(&mut self, now: Instant) -> Instant {
        if self
            .throttled_at
            .is_some_and(|at| now.saturating_duration_since(at) >= QUIET_PERIOD)
        {
            self.limit = None;
            self.throttled_at = None;
        }
        let Some(limit) = self.limit.map(|l| l as usize) else {
            return now;
        };
        if self.sent.len() < limit {
            return now;
        }
        let oldest_counted = self.sent[self.sent.len() - limit];
        (oldest_counted + self.window).max(now)
    }

    /// Records a request leaving now. Only sends within the window are kept, and never
    /// more than the limit (or [`HISTORY`]) of them.
    pub fn record(&mut self, now: Instant) {
        self.sent.push_back(now);
        let keep = self.limit.map_or(HISTORY, |l| l as usize).clamp(1, HISTORY);
        while self.sent.len() > keep
            || self
                .sent
                .front()
                .is_some_and(|sent| now.saturating_duration_since(*sent) >= self.window)
        {
            self.sent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            retry_min: Duration::from_millis(250),
            retry_max: Duration::from_secs(5),
            unknown_retry_max: Duration::from_secs(60),
        }
    }

    #[test]
    fn delays_double_up_to_their_cap() {
        let b = backoff();
        let ms = |retry, n| b.delay(retry, n).as_millis();
        assert_eq!(ms(Retry::NotFinal, 1), 250);
        assert_eq!(ms(Retry::NotFinal, 2), 500);
        assert_eq!(ms(Retry::NotFinal, 3), 1000);
        assert_eq!(ms(Retry::NotFinal, 6), 5000);
        assert_eq!(ms(Retry::NotFinal, 1000), 5000);
        assert_eq!(ms(Retry::UnknownOrFailed, 6), 8000);
        assert_eq!(ms(Retry::UnknownOrFailed, 9), 60000);
        assert_eq!(ms(Retry::UnknownOrFailed, u32::MAX), 60000);
    }

    #[test]
    fn the_pacer_mirrors_a_sliding_window() {
        let start = Instant::now();
        let mut pacer = Pacer::new(Duration::from_millis(500));
        for i in 0..3 {
            pacer.record(start + Duration::from_secs(i));
        }
        assert_eq!(pacer.ready_at(start), start, "no limit known yet");
        pacer.throttled(Some(3), start);
        assert_eq!(
            pacer.ready_at(start + Duration::from_secs(3)),
            start + Duration::from_millis(60_500)
        );
        pacer.record(start + Duration::from_millis(60_500));
        assert_eq!(
            pacer.ready_at(start + Duration::from_millis(60_500)),
            start + Duration::from_millis(61_500)
        );
    }

    #[test]
    fn a_learned_limit_is_replaced_by_the_next_and_forgotten_when_quiet() {
        let start = Instant::now();
        let mut pacer = Pacer::new(Duration::from_millis(500));
        pacer.throttled(Some(1), start);
        pacer.record(start);
        let soon = start + Duration::from_secs(1);
        assert_eq!(pacer.ready_at(soon), start + Duration::from_millis(60_500));
        pacer.throttled(Some(600), soon);
        assert_eq!(
            pacer.limit(),
            Some(600),
            "the next announcement replaces it"
        );
        assert_eq!(pacer.ready_at(soon), soon);
        pacer.throttled(None, soon);
        assert_eq!(pacer.limit(), Some(600), "a 429 without a limit keeps it");
        let quiet = soon + QUIET_PERIOD;
        assert_eq!(pacer.ready_at(quiet), quiet);
        assert_eq!(pacer.limit(), None, "forgotten after a quiet period");
    }

    #[test]
    fn the_pacers_memory_is_bounded_whatever_the_limit() {
        let start = Instant::now();
        let mut pacer = Pacer::new(Duration::from_millis(500));
        pacer.throttled(Some(u32::MAX), start);
        for i in 0..20_000u64 {
            pacer.record(start + Duration::from_micros(i));
        }
        assert!(pacer.sent.len() <= HISTORY);
        pacer.record(start + Duration::from_secs(120));
        assert_eq!(
            pacer.sent.len(),
            1,
            "sends older than the window are dropped"
        );
    }

    #[test]
    fn unknown_orders_are_asked_less_often_as_they_age() {
        let b = backoff();
        let minute = Duration::from_secs(60);
        assert_eq!(
            b.unknown_delay(1, Duration::ZERO),
            Duration::from_millis(250)
        );
        assert_eq!(
            b.unknown_delay(20, 5 * minute),
            minute,
            "young: the usual cap"
        );
        assert_eq!(b.unknown_delay(200, 100 * minute), 10 * minute);
        assert_eq!(b.unknown_delay(9000, 10_000 * minute), MAX_UNKNOWN_DELAY);
    }
}
