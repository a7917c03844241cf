//! Authentication: password hashing off the async threads, signed expiring tokens, and the
//! extractor that admits a request by header or cookie.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use gophermart_actors::account::Accounts;
use gophermart_actors::domain::UserId;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Name of the cookie that carries the token.
pub const COOKIE: &str = "token";

/// Stored hashes of the current scheme begin with this: bcrypt over an HMAC-SHA-256 of
/// the password under the service's password key. Hashes without it are bcrypt over a
/// plain SHA-256 digest, and are replaced at the owner's next successful login.
const SCHEME: &str = "hmac-sha256$";

/// How many hashes may wait per running one before new ones are refused with `503`.
const QUEUE_PER_PERMIT: usize = 8;

/// What a password check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No such login, or the wrong password.
    Wrong,
    /// The right password; `rehash` is the hash to store instead when the stored one is of
    /// an older scheme or another cost.
    Right {
        /// The replacement hash, when one is due.
        rehash: Option<String>,
    },
}

/// Hashes and verifies passwords with bcrypt on blocking threads, at most one hash per
/// core at a time and a bounded number waiting: past that a request is refused at once
/// (`503`) rather than queued behind a storm.
#[derive(Clone)]
pub struct PasswordHasher {
    cost: u32,
    key: PasswordKey,
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    queue: usize,
    /// Verified against when a login is unknown, so that unknown and known logins take
    /// the same time.
    dummy: Arc<str>,
}

impl PasswordHasher {
    /// A hasher of the given cost keyed with `key`, running at most `parallelism` hashes
    /// at once.
    pub fn new(cost: u32, key: &[u8], parallelism: usize) -> anyhow::Result<Self> {
        let parallelism = parallelism.max(1);
        let key = PasswordKey(Hmac::new_from_slice(key)?);
        let dummy = new_hash(&key, b"dummy password", cost)?;
        Ok(Self {
            cost,
            key,
            permits: Arc::new(Semaphore::new(parallelism)),
            waiting: Arc::new(AtomicUsize::new(0)),
            queue: parallelism * QUEUE_PER_PERMIT,
            dummy: dummy.into(),
        })
    }

    /// Hashes a password.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let (key, cost) = (self.key.clone(), self.cost);
        self.run(move || new_hash(&key, password.as_bytes(), cost))
            .await
    }

    /// Checks a password against a stored hash, or against the dummy when there is none.
    /// A right password under an outdated hash comes back with its replacement.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<Verdict, ApiError> {
        let (key, cost, dummy) = (self.key.clone(), self.cost, self.dummy.clone());
        self.run(move || {
            let password = password.as_bytes();
            let Some(stored) = stored else {
                check(&key, password, &dummy)?;
                return Ok(Verdict::Wrong);
            };
            let stored_cost = cost_of(&stored);
            if !check(&key, password, &stored)? {
                // A hash cheaper than the configured cost answers faster than the dummy;
                // pad it so that timing does not tell existing logins from unknown ones.
                if stored_cost.is_some_and(|stored_cost| stored_cost < cost) {
                    check(&key, password, &dummy)?;
                }
                return Ok(Verdict::Wrong);
            }
            let outdated = !stored.starts_with(SCHEME) || stored_cost != Some(cost);
            let rehash = outdated
                .then(|| new_hash(&key, password, cost))
                .transpose()?;
            Ok(Verdict::Right { rehash })
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, bcrypt::BcryptError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let _waiting = Waiting::enter(&self.waiting, self.queue)
                    .ok_or(ApiError::Busy("too many sign-ins at once"))?;
                self.permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(ApiError::internal)?
            }
        };
        tokio::task::spawn_blocking(work)
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)
    }
}

/// One place in the hashing queue, given back when dropped (also when the request is
/// abandoned while it waits).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(waiting: &'a AtomicUsize, bound: usize) -> Option<Self> {
        if waiting.fetch_add(1, Ordering::AcqRel) >= bound {
            waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(waiting))
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The server-side key of password hashes, ready to MAC with.
#[derive(Clone)]
struct PasswordKey(Hmac<Sha256>);

/// A hash of the current scheme.
fn new_hash(key: &PasswordKey, password: &[u8], cost: u32) -> Result<String, bcrypt::BcryptError> {
    Ok(format!(
        "{SCHEME}{}",
        bcrypt::hash(keyed(key, password), cost)?
    ))
}

/// Whether `password` matches `stored`, of either scheme.
fn check(key: &PasswordKey, password: &[u8], stored: &str) -> Result<bool, bcrypt::BcryptError> {
    match stored.strip_prefix(SCHEME) {
        Some(hash) => bcrypt::verify(keyed(key, password), hash),
        None => bcrypt::verify(legacy(password), stored),
    }
}

/// The cost a stored bcrypt hash was made with (`$2b$10$…` → 10).
fn cost_of(stored: &str) -> Option<u32> {
    let hash = stored.strip_prefix(SCHEME).unwrap_or(stored);
    hash.split('$').nth(2)?.parse().ok()
}

/// bcrypt reads only 72 bytes: an HMAC-SHA-256 of the password in hex (64 bytes) makes
/// every byte of a password up to 1024 bytes count, and, keyed with a secret kept in the
/// database, makes unsalted SHA-256 hashes leaked elsewhere useless against ours.
fn keyed(key: &PasswordKey, password: &[u8]) -> String {
    let mut mac = key.0.clone();
    mac.update(password);
    hex(&mac.finalize().into_bytes())
}

/// The pre-hash of hashes stored before the keyed scheme.
fn legacy(password: &[u8]) -> String {
    hex(&Sha256::digest(password))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
}

/// Issues and checks signed tokens (HS256) and sets them on responses.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    secure_cookie: bool,
}

impl Tokens {
    /// Tokens signed with `secret`, valid for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration, secure_cookie: bool) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
            secure_cookie,
        }
    }

    /// A fresh token for `user`.
    pub fn issue(&self, user: UserId) -> Result<String, ApiError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs().max(1),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    /// The user a token was issued to, if it is genuine and unexpired.
    pub fn check(&self, token: &str) -> Option<UserId> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        data.claims.sub.parse().ok().map(UserId)
    }

    /// A `200 OK` that signs `user` in: the token as a bearer header and as a cookie.
    pub fn signed_in(&self, user: UserId) -> Result<HttpResponse, ApiError> {
        let token = self.issue(user)?;
        let cookie = Cookie::build(COOKIE, token.clone())
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure_cookie)
            .max_age(actix_web::cookie::time::Duration::seconds(
                i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX),
            ))
            .finish();
        Ok(HttpResponse::Ok()
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .cookie(cookie)
            .finish())
    }

    /// A `204 No Content` that removes the token cookie from the browser.
    pub fn signed_out(&self) -> HttpResponse {
        let mut cookie = Cookie::build(COOKIE, "")
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure_cookie)
            .finish();
        cookie.make_removal();
        HttpResponse::NoContent().cookie(cookie).finish()
    }
}

/// The authenticated user of a request. A bearer header, when present, decides; otherwise
/// the cookie. Anything missing, malformed, expired or forged is `401`, and so is a
/// genuine token of a user the database does not have.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub UserId);

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let user = authenticate(req);
        let accounts = req.app_data::<web::Data<Accounts>>().cloned();
        Box::pin(async move {
            let user = user?;
            let accounts =
                accounts.ok_or_else(|| ApiError::internal("accounts are not configured"))?;
            // Answered from what the account actor published once it is warm.
            accounts.check(user).await?;
            Ok(AuthUser(user))
        })
    }
}

fn authenticate(req: &HttpRequest) -> Result<UserId, ApiError> {
    let tokens = req
        .app_data::<web::Data<Tokens>>()
        .ok_or_else(|| ApiError::internal("token keys are not configured"))?;
    let token = match req.headers().get(header::AUTHORIZATION) {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_owned())
            })
            .ok_or(ApiError::Unauthorized("malformed Authorization header"))?,
        None => req
            .cookie(COOKIE)
            .map(|cookie| cookie.value().to_owned())
            .ok_or(ApiError::Unauthorized("authentication required"))?,
    };
    tokens
        .check(&token)
        .ok_or(ApiError::Unauthorized("invalid or expired token"))
}
