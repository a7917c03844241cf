//! Authentication: password hashing off the async threads, signed expiring tokens, and the
//! extractor that admits a request by header or cookie.

use std::future::{ready, Ready};
use std::sync::Arc;
use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use gophermart_actors::domain::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Name of the cookie that carries the token.
pub const COOKIE: &str = "token";

/// Hashes and verifies passwords with bcrypt on blocking threads, at most one hash per
/// core at a time, so that a login storm queues instead of starving other requests.
#[derive(Clone)]
pub struct PasswordHasher {
    cost: u32,
    permits: Arc<Semaphore>,
    /// Verified against when a login is unknown, so that unknown and known logins take
    /// the same time.
    dummy: Arc<str>,
}

impl PasswordHasher {
    /// A hasher of the given cost, running at most `parallelism` hashes at once.
    pub fn new(cost: u32, parallelism: usize) -> Result<Self, bcrypt::BcryptError> {
        let dummy = bcrypt::hash(prehash(b"dummy password"), cost)?;
        Ok(Self {
            cost,
            permits: Arc::new(Semaphore::new(parallelism.max(1))),
            dummy: dummy.into(),
        })
    }

    /// Hashes a password.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let cost = self.cost;
        self.run(move || bcrypt::hash(prehash(password.as_bytes()), cost))
            .await
    }

    /// Checks a password against a stored hash, or against the dummy when there is none.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.to_string());
        let matches = self
            .run(move || bcrypt::verify(prehash(password.as_bytes()), &hash))
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, bcrypt::BcryptError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self.permits.acquire().await.map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)
    }
}

/// bcrypt reads only 72 bytes; a SHA-256 digest in hex (64 bytes) makes every byte of a
/// password up to 1024 bytes count.
fn prehash(password: &[u8]) -> String {
    Sha256::digest(password)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
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
}

/// The authenticated user of a request. A bearer header, when present, decides; otherwise
/// the cookie. Anything missing, malformed, expired or forged is `401`.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub UserId);

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(authenticate(req).map(AuthUser))
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
