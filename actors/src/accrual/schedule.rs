//! The arithmetic of the schedule: backoff delays and pacing under an announced limit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

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
}

/// Keeps our request rate under a per-minute limit by mirroring the accrual system's
/// sliding window with our own send times: a request may leave when fewer than `limit`
/// of ours left in the last minute (plus a margin for network delay).
#[derive(Debug)]
pub struct Pacer {
    limit: Option<u32>,
    window: Duration,
    sent: VecDeque<Instant>,
}

/// How many send times are kept before a limit is known.
const HISTORY: usize = 4096;

impl Pacer {
    /// A pacer that lets everything through until it learns a limit.
    pub fn new(margin: Duration) -> Self {
        Self {
            limit: None,
            window: Duration::from_secs(60) + margin,
            sent: VecDeque::new(),
        }
    }

    /// Learns the announced limit.
    pub fn set_limit(&mut self, per_minute: u32) {
        self.limit = Some(per_minute.max(1));
    }

    /// The announced limit, once known.
    pub fn limit(&self) -> Option<u32> {
        self.limit
    }

    /// The earliest moment the next request may leave.
    pub fn ready_at(&self, now: Instant) -> Instant {
        let Some(limit) = self.limit.map(|l| l as usize) else {
            return now;
        };
        if self.sent.len() < limit {
            return now;
        }
        let oldest_counted = self.sent[self.sent.len() - limit];
        (oldest_counted + self.window).max(now)
    }

    /// Records a request leaving now.
    pub fn record(&mut self, now: Instant) {
        self.sent.push_back(now);
        let keep = self.limit.map_or(HISTORY, |l| l as usize).max(1);
        while self.sent.len() > keep {
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
        pacer.set_limit(3);
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
}
