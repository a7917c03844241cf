//! Rate limits at the edge: sign-ins per client address, login attempts per login name,
//! uploads per shopper; and who the client is when a trusted proxy stands in front.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::http::header::HeaderName;
use actix_web::HttpRequest;
use gophermart_actors::domain::UserId;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// How many checks pass between two sweeps of keys whose limit has fully recovered.
const SWEEP_EVERY: u64 = 4096;

/// A per-minute limit for each key, or none at all (`0`).
pub struct Throttle<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    reason: &'static str,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    /// `per_minute` requests per key, in a burst or spread out; `0` means no limit.
    pub fn per_minute(per_minute: u32, reason: &'static str) -> Self {
        Self {
            limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            reason,
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one request of `key`'s allowance, or answers `429` with the seconds until the
    /// next one is allowed.
    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        // Memory stays bounded by the keys seen within about a minute.
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::TooManyRequests {
                reason: self.reason,
                retry_after: retry_after_secs(wait),
            }
        })
    }
}

/// Whole seconds, rounded up, at least one.
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Every rate limit of the service.
pub struct Throttles {
    /// Register and login requests per client address.
    pub sign_in: Throttle<IpAddr>,
    /// Login attempts per login name.
    pub login: Throttle<String>,
    /// Order uploads per shopper.
    pub uploads: Throttle<UserId>,
    /// Proxies whose `X-Forwarded-For` names the client.
    trusted_proxies: Vec<IpAddr>,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

impl Throttles {
    /// The limits of the settings (per minute, `0` = none).
    pub fn new(
        sign_in_per_ip: u32,
        login_per_name: u32,
        uploads_per_user: u32,
        trusted_proxies: Vec<IpAddr>,
    ) -> Self {
        Self {
            sign_in: Throttle::per_minute(
                sign_in_per_ip,
                "too many sign-in requests from this address",
            ),
            login: Throttle::per_minute(login_per_name, "too many login attempts for this login"),
            uploads: Throttle::per_minute(uploads_per_user, "too many order uploads"),
            trusted_proxies,
        }
    }

    /// The client's address as a rate-limit key: the peer, or, when the peer is a trusted
    /// proxy, the last address in `X-Forwarded-For` that is not itself a trusted proxy.
    /// IPv6 clients are keyed by their /64, which one subscriber usually holds whole.
    pub fn client(&self, req: &HttpRequest) -> IpAddr {
        let peer = req
            .peer_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |addr| addr.ip());
        let mut client = peer;
        if self.trusted(peer) {
            let forwarded = req
                .headers()
                .get_all(&X_FORWARDED_FOR)
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .map(str::trim)
                .collect::<Vec<_>>();
            for hop in forwarded.into_iter().rev() {
                let Ok(address) = hop.parse::<IpAddr>() else {
                    break; // a hop we cannot read: the proxy before it is not ours to trust
                };
                client = address;
                if !self.trusted(address) {
                    break;
                }
            }
        }
        network_of(client)
    }

    fn trusted(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.trusted_proxies
            .iter()
            .any(|proxy| proxy.to_canonical() == address)
    }
}

/// IPv4 addresses as they are; IPv6 ones reduced to their /64 network.
fn network_of(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(Ipv6Addr::from(segments))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(6)), 6);
        assert_eq!(retry_after_secs(Duration::from_millis(6001)), 7);
    }

    #[test]
    fn a_limit_refuses_the_request_past_the_allowance() {
        let throttle = Throttle::per_minute(2, "limited");
        assert!(throttle.check(&1).is_ok());
        assert!(throttle.check(&1).is_ok());
        assert!(matches!(
            throttle.check(&1),
            Err(ApiError::TooManyRequests { retry_after, .. }) if (1..=30).contains(&retry_after)
        ));
        assert!(
            throttle.check(&2).is_ok(),
            "another key has its own allowance"
        );
        let unlimited = Throttle::per_minute(0, "never");
        assert!((0..1000).all(|_| unlimited.check(&1).is_ok()));
    }

    fn request(peer: &str, forwarded: Option<&str>) -> HttpRequest {
        let mut req = TestRequest::default().peer_addr(peer.parse().expect("a socket address"));
        if let Some(forwarded) = forwarded {
            req = req.insert_header(("X-Forwarded-For", forwarded));
        }
        req.to_http_request()
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        let direct = Throttles::new(1, 1, 1, Vec::new());
        assert_eq!(
            direct.client(&request("10.0.0.9:5000", Some("1.2.3.4"))),
            ip("10.0.0.9")
        );
        let proxied = Throttles::new(1, 1, 1, vec![ip("10.0.0.1"), ip("10.0.0.2")]);
        assert_eq!(
            proxied.client(&request(
                "10.0.0.1:5000",
                Some("6.6.6.6, 1.2.3.4, 10.0.0.2")
            )),
            ip("1.2.3.4"),
            "the last hop that is not a trusted proxy, not a spoofable first entry"
        );
        assert_eq!(
            proxied.client(&request("10.0.0.1:5000", Some("garbage"))),
            ip("10.0.0.1")
        );
        assert_eq!(
            proxied.client(&request("[2001:db8::1]:5000", None)),
            ip("2001:db8::")
        );
    }
}
