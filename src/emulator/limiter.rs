//! A sliding-window limit on requests per minute, shared by all clients.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The window the limit counts over.
const WINDOW: Duration = Duration::from_secs(60);

/// A refused request: the whole seconds until a slot frees, at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// The value for `Retry-After`.
    pub retry_after_secs: u64,
}

/// Admits at most `limit` requests in any 60 s; `0` admits everything.
#[derive(Debug)]
pub struct RateLimiter {
    limit: usize,
    /// When each admitted request in the window arrived, oldest first.
    admitted: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    /// A limiter of `limit` requests per minute.
    pub fn new(limit: u32) -> Self {
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            admitted: Mutex::new(VecDeque::new()),
        }
    }

    /// Admits one request now, or says how long to wait. Refused requests are not counted,
    /// so a client that keeps retrying does not push its own slot further away.
    pub fn admit(&self) -> Result<(), Throttled> {
        if self.limit == 0 {
            return Ok(());
        }
        // Nothing panics while the lock is held, so a poisoned queue is still consistent.
        let mut admitted = self.admitted.lock().unwrap_or_else(PoisonError::into_inner);
        // Read the clock under the lock so the queue stays in arrival order.
        let now = Instant::now();
        while admitted
            .front()
            .is_some_and(|oldest| now.duration_since(*oldest) >= WINDOW)
        {
            admitted.pop_front();
        }
        match admitted.front() {
            Some(oldest) if admitted.len() >= self.limit => {
                let wait = WINDOW.saturating_sub(now.duration_since(*oldest));
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(Throttled {
                    retry_after_secs: secs.max(1),
                })
            }
            _ => {
                admitted.push_back(now);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_past_the_limit_waits_about_a_minute() {
        let limiter = RateLimiter::new(2);
        assert_eq!(limiter.admit(), Ok(()));
        assert_eq!(limiter.admit(), Ok(()));
        let refused = limiter.admit().err().map(|t| t.retry_after_secs);
        assert!(matches!(refused, Some(59..=60)), "{refused:?}");
    }

    #[test]
    fn zero_means_unlimited() {
        let limiter = RateLimiter::new(0);
        assert!((0..1000).all(|_| limiter.admit().is_ok()));
    }
}
