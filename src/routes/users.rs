//! Registration and login.

use actix_web::{post, web, HttpRequest, HttpResponse};
use gophermart_actors::account::Accounts;
use serde::Deserialize;
use tracing::instrument;

use crate::auth::{PasswordHasher, Tokens, Verdict};
use crate::body;
use crate::error::ApiError;
use crate::throttle::Throttles;

/// The longest login, in Unicode code points.
const MAX_LOGIN_CHARS: usize = 256;
/// The longest password, in bytes.
const MAX_PASSWORD_BYTES: usize = 1024;

/// A login and its password.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"login": "alice", "password": "correct horse"}))]
struct Pair {
    login: String,
    password: String,
}

/// Why a login cannot be registered, if it cannot.
fn login_problem(name: &str) -> Option<String> {
    if name.chars().count() > MAX_LOGIN_CHARS {
        return Some(format!(
            "login must be at most {MAX_LOGIN_CHARS} characters"
        ));
    }
    if name.chars().any(char::is_control) {
        return Some("login must not contain control characters".to_owned());
    }
    None
}

fn read_pair(bytes: &[u8]) -> Result<Pair, ApiError> {
    let pair: Pair = body::json_object(bytes)?;
    if pair.login.is_empty() || pair.password.is_empty() {
        return Err(ApiError::BadRequest(
            "login and password must not be empty".into(),
        ));
    }
    Ok(pair)
}

/// `POST /api/user/register`.
#[utoipa::path(
    operation_id = "register",
    tag = "account",
    request_body = Pair,
    responses(
        (status = 200, description = "Registered and signed in: the token in `Authorization: Bearer …` and in an HttpOnly cookie", body = String, content_type = "text/plain"),
        (status = 400, description = "Malformed JSON, a missing or empty field, a login over 256 characters or with control characters, a password over 1024 bytes", body = String, content_type = "text/plain"),
        (status = 409, description = "The login is taken", body = String, content_type = "text/plain"),
        (status = 429, description = "Too many sign-ups or sign-ins from this address; see `Retry-After`", body = String, content_type = "text/plain"),
        (status = 503, description = "Password hashing is saturated; see `Retry-After`", body = String, content_type = "text/plain"),
    )
)]
#[post("/register")]
#[instrument(skip_all)]
pub async fn register(
    req: HttpRequest,
    payload: web::Payload,
    accounts: web::Data<Accounts>,
    hasher: web::Data<PasswordHasher>,
    tokens: web::Data<Tokens>,
    throttles: web::Data<Throttles>,
) -> Result<HttpResponse, ApiError> {
    throttles.sign_in.check(&throttles.client(&req))?;
    let pair = read_pair(&body::read(&req, payload).await?)?;
    if let Some(reason) = login_problem(&pair.login) {
        return Err(ApiError::BadRequest(reason));
    }
    if pair.password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::BadRequest(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let hash = hasher.hash(pair.password).await?;
    let user = accounts.open(pair.login, hash).await?;
    tracing::info!(%user, "registered");
    tokens.signed_in(user)
}

/// `POST /api/user/login`.
#[utoipa::path(
    operation_id = "login",
    tag = "account",
    request_body = Pair,
    responses(
        (status = 200, description = "Signed in: the token in `Authorization: Bearer …` and in an HttpOnly cookie", body = String, content_type = "text/plain"),
        (status = 400, description = "Malformed JSON, a missing or empty field", body = String, content_type = "text/plain"),
        (status = 401, description = "Wrong login or password", body = String, content_type = "text/plain"),
        (status = 429, description = "Too many attempts from this address or for this login; see `Retry-After`", body = String, content_type = "text/plain"),
        (status = 503, description = "Password hashing is saturated; see `Retry-After`", body = String, content_type = "text/plain"),
    )
)]
#[post("/login")]
#[instrument(skip_all)]
pub async fn login(
    req: HttpRequest,
    payload: web::Payload,
    accounts: web::Data<Accounts>,
    hasher: web::Data<PasswordHasher>,
    tokens: web::Data<Tokens>,
    throttles: web::Data<Throttles>,
) -> Result<HttpResponse, ApiError> {
    throttles.sign_in.check(&throttles.client(&req))?;
    let pair = read_pair(&body::read(&req, payload).await?)?;
    // Guessing at one login is refused before any hashing, whatever address it comes from.
    throttles
        .login
        .check(&pair.login.chars().take(MAX_LOGIN_CHARS).collect())?;
    // A login that could never have been registered is not looked up (PostgreSQL refuses
    // NUL in text); it is verified against the dummy hash like any unknown login.
    let found = match login_problem(&pair.login) {
        Some(_) => None,
        None => accounts.find_login(pair.login).await?,
    };
    let (user, hash) = found
        .map(|credentials| (credentials.user, credentials.password_hash))
        .unzip();
    // An unknown login is verified against a dummy hash: the same time either way, so
    // answers tell nothing about which logins exist.
    let verdict = hasher.verify(pair.password, hash.clone()).await?;
    let (Some(user), Some(old), Verdict::Right { rehash }) = (user, hash, verdict) else {
        return Err(ApiError::Unauthorized("wrong login or password"));
    };
    if let Some(new) = rehash {
        // The sign-in stands even if the upgrade cannot be stored; the next one retries.
        match accounts.replace_password_hash(user, old, new).await {
            Ok(_) => tracing::info!(%user, "password hash upgraded"),
            Err(error) => tracing::warn!(%user, %error, "could not upgrade the password hash"),
        }
    }
    tokens.signed_in(user)
}

/// `POST /api/user/logout`: expires the token cookie. The token itself stays valid until
/// it expires; a page that signs out simply no longer holds it.
#[utoipa::path(
    operation_id = "logout",
    tag = "account",
    responses(
        (status = 204, description = "Signed out: the token cookie is expired (`Set-Cookie` with `Max-Age=0`)"),
    )
)]
#[post("/logout")]
#[instrument(skip_all)]
pub async fn logout(tokens: web::Data<Tokens>) -> HttpResponse {
    tokens.signed_out()
}
