//! Every setting of the service, read in one place: flag, then environment, then `.env`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;

/// Gophermart: a cumulative loyalty-points service.
#[derive(Debug, Clone, Parser)]
#[command(name = "gophermart", version, about)]
pub struct Settings {
    /// Address to listen on.
    #[arg(
        short = 'a',
        long = "address",
        env = "RUN_ADDRESS",
        default_value = "127.0.0.1:8080"
    )]
    pub address: String,

    /// Database: `sqlite://file.db?mode=rwc` (embedded) or `postgres://user@host/db`.
    #[arg(
        short = 'd',
        long = "database-uri",
        env = "DATABASE_URI",
        default_value = "sqlite://gophermart.db?mode=rwc",
        hide_env_values = true
    )]
    pub database_uri: String,

    /// Base URL of the accrual system. Unset: the bundled emulator runs in-process (demo
    /// mode); set but empty is an error.
    #[arg(short = 'r', long = "accrual-address", env = "ACCRUAL_SYSTEM_ADDRESS", value_parser = accrual_address)]
    pub accrual_address: Option<String>,

    /// Key that signs tokens, at least 32 bytes. Unset: generated at first start and kept
    /// in the database.
    #[arg(long, env = "TOKEN_SECRET", hide_env_values = true, value_parser = token_secret)]
    pub token_secret: Option<String>,

    /// How long a token stays valid.
    #[arg(long, env = "TOKEN_TTL", default_value = "24h", value_parser = positive_duration)]
    pub token_ttl: Duration,

    /// Mark the token cookie `Secure` (serve over https).
    #[arg(
        long,
        env = "COOKIE_SECURE",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub cookie_secure: bool,

    /// bcrypt cost of password hashes (4–31).
    #[arg(long, env = "BCRYPT_COST", default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,

    /// Idle time after which a user's account actor stops.
    #[arg(long, env = "ACCOUNT_IDLE", default_value = "5m", value_parser = positive_duration)]
    pub account_idle: Duration,

    /// Number of concurrent accrual pollers.
    #[arg(long, env = "ACCRUAL_WORKERS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub accrual_workers: u32,

    /// Timeout of one request to the accrual system.
    #[arg(long, env = "ACCRUAL_TIMEOUT", default_value = "5s", value_parser = positive_duration)]
    pub accrual_timeout: Duration,

    /// First re-ask delay for a non-final answer (doubles up to the maximum).
    #[arg(long, env = "ACCRUAL_RETRY_MIN", default_value = "250ms", value_parser = positive_duration)]
    pub accrual_retry_min: Duration,

    /// Cap of the re-ask delay for non-final answers.
    #[arg(long, env = "ACCRUAL_RETRY_MAX", default_value = "5s", value_parser = positive_duration)]
    pub accrual_retry_max: Duration,

    /// Cap of the re-ask delay for unknown orders (204) and failures.
    #[arg(long, env = "ACCRUAL_UNKNOWN_RETRY_MAX", default_value = "60s", value_parser = positive_duration)]
    pub accrual_unknown_retry_max: Duration,

    /// Pause after a 429 that carries no usable Retry-After.
    #[arg(long, env = "ACCRUAL_DEFAULT_PAUSE", default_value = "60s", value_parser = positive_duration)]
    pub accrual_default_pause: Duration,

    /// Address of the in-process emulator (loopback only), used only when no accrual
    /// address is set.
    #[arg(long, env = "EMULATOR_ADDRESS", default_value = "127.0.0.1:8081", value_parser = loopback_address)]
    pub emulator_address: String,

    /// Register and login requests per minute from one client address (0 = no limit).
    #[arg(long, env = "AUTH_RATE_PER_IP", default_value_t = 60)]
    pub auth_rate_per_ip: u32,

    /// Login attempts per minute for one login name (0 = no limit).
    #[arg(long, env = "AUTH_RATE_PER_LOGIN", default_value_t = 10)]
    pub auth_rate_per_login: u32,

    /// Order uploads per minute by one shopper (0 = no limit).
    #[arg(long, env = "UPLOAD_RATE_PER_USER", default_value_t = 600)]
    pub upload_rate_per_user: u32,

    /// Proxies whose `X-Forwarded-For` names the client (comma-separated addresses).
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = proxy_address)]
    pub trusted_proxies: Vec<IpAddr>,

    /// The operator's bearer token for `/api/admin/*` (at least 16 characters). Unset: the
    /// operator API answers 403, except in demo mode, where one is generated.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, value_parser = role_token)]
    pub admin_token: Option<String>,

    /// The shop checkout's bearer token for `/api/shop/*` (at least 16 characters). Unset:
    /// the shop API answers 403, except in demo mode, where one is generated.
    #[arg(long, env = "SHOP_TOKEN", hide_env_values = true, value_parser = role_token)]
    pub shop_token: Option<String>,

    /// NATS server whose JetStream receives every event. Unset: no relay; the feed works.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,

    /// Base URL of the warehouse's fulfilment service. Unset: in demo mode the bundled
    /// emulator runs in-process; otherwise redemptions answer 503.
    #[arg(long, env = "FULFILMENT_ADDRESS", value_parser = accrual_address)]
    pub fulfilment_address: Option<String>,

    /// Address of the in-process fulfilment emulator (loopback only), demo mode only.
    #[arg(long, env = "FULFILMENT_EMULATOR_ADDRESS", default_value = "127.0.0.1:8082", value_parser = loopback_address)]
    pub fulfilment_emulator_address: String,

    /// Requests to the fulfilment service in flight at most.
    #[arg(long, env = "FULFILMENT_IN_FLIGHT", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub fulfilment_in_flight: u32,

    /// First delay before asking the fulfilment service again (doubles up to the maximum).
    #[arg(long, env = "FULFILMENT_RETRY_MIN", default_value = "100ms", value_parser = positive_duration)]
    pub fulfilment_retry_min: Duration,

    /// Cap of that delay.
    #[arg(long, env = "FULFILMENT_RETRY_MAX", default_value = "30s", value_parser = positive_duration)]
    pub fulfilment_retry_max: Duration,

    /// Timeout of one request to the fulfilment service.
    #[arg(long, env = "FULFILMENT_TIMEOUT", default_value = "5s", value_parser = positive_duration)]
    pub fulfilment_timeout: Duration,

    /// Deadline for reading a whole request body.
    #[arg(long, env = "BODY_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub body_timeout: Duration,

    /// Log lines as text for people or as one JSON object per line for collectors.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// One of several instances on one PostgreSQL database: reads check the database,
    /// the accrual, fulfilment and event pipelines run on the elected leader only. Off:
    /// this instance refuses to share its database, and its caches answer reads.
    #[arg(
        long,
        env = "CLUSTER",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub cluster: bool,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the fields of every span it was written in.
    Json,
}

/// The shortest token key accepted, in bytes.
pub const MIN_TOKEN_SECRET: usize = 32;

impl Settings {
    /// The accrual system's base URL with a scheme and without a trailing slash, or
    /// `None` when the emulator is to be used.
    pub fn accrual_base_url(&self) -> Option<String> {
        self.accrual_address.as_deref().map(with_scheme)
    }
}

/// A token key long enough that it cannot be guessed.
fn token_secret(text: &str) -> Result<String, String> {
    if text.len() < MIN_TOKEN_SECRET {
        return Err(format!(
            "the token key must be at least {MIN_TOKEN_SECRET} bytes (it is {}); leave it unset to have one generated",
            text.len()
        ));
    }
    Ok(text.to_owned())
}

/// A role token long enough not to be guessed.
fn role_token(text: &str) -> Result<String, String> {
    if text.chars().count() < crate::roles::MIN_ROLE_TOKEN {
        return Err(format!(
            "a role token must be at least {} characters",
            crate::roles::MIN_ROLE_TOKEN
        ));
    }
    Ok(text.to_owned())
}

/// An outside system's address: set means set. An empty value would otherwise start a
/// demo emulator in production by accident.
fn accrual_address(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(
            "the address is empty; unset it to run the demo emulator, or give the system's URL"
                .to_owned(),
        );
    }
    Ok(text.to_owned())
}

/// A listen address on the loopback interface: whoever reaches the emulator can mint
/// points, so it never listens elsewhere.
fn loopback_address(text: &str) -> Result<String, String> {
    let text = listen_address(text);
    let text = match text.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => text,
    };
    let address: SocketAddr = text
        .parse()
        .map_err(|e| format!("expected an address like 127.0.0.1:8081: {e}"))?;
    if !address.ip().is_loopback() {
        return Err(format!(
            "the emulator listens on loopback only (127.0.0.1 or [::1]), not {}",
            address.ip()
        ));
    }
    Ok(address.to_string())
}

/// One trusted proxy address.
fn proxy_address(text: &str) -> Result<IpAddr, String> {
    text.trim()
        .parse()
        .map_err(|e| format!("expected an IP address: {e}"))
}

/// `localhost:8081` → `http://localhost:8081`; a trailing slash is dropped.
pub fn with_scheme(address: &str) -> String {
    let address = address.trim_end_matches('/');
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

/// Parses a duration greater than zero: `250ms`, `5s`, `24h`, `1h 30m`.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err("must be greater than zero".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// A listen address as given, with Go's `:8080` meaning every interface.
pub fn listen_address(address: &str) -> String {
    let address = address.trim();
    if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let settings = Settings::try_parse_from(["gophermart"]).expect("defaults parse");
        assert_eq!(settings.bcrypt_cost, 10);
        assert_eq!(settings.accrual_retry_min, Duration::from_millis(250));
        assert_eq!(settings.token_ttl, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn flags_read_like_the_contract_says() {
        let settings = Settings::try_parse_from([
            "gophermart",
            "--cookie-secure",
            "1",
            "--accrual-retry-min",
            "100ms",
        ])
        .expect("parses");
        assert!(settings.cookie_secure);
        assert_eq!(settings.accrual_retry_min, Duration::from_millis(100));
        assert!(Settings::try_parse_from(["gophermart", "--accrual-retry-min", "0s"]).is_err());
        assert_eq!(listen_address(":8080"), "0.0.0.0:8080");
        assert_eq!(listen_address("localhost:8080"), "localhost:8080");
    }

    #[test]
    fn accrual_address_gets_a_scheme() {
        let settings =
            Settings::try_parse_from(["gophermart", "-r", "localhost:8081/"]).expect("parses");
        assert_eq!(
            settings.accrual_base_url().as_deref(),
            Some("http://localhost:8081")
        );
        assert!(Settings::try_parse_from(["gophermart", "-r", ""]).is_err());
        assert!(Settings::try_parse_from(["gophermart", "-r", "  "]).is_err());
    }

    #[test]
    fn dangerous_settings_are_refused() {
        let parse = |args: &[&str]| {
            Settings::try_parse_from([&["gophermart"], args].concat()).map_err(|e| e.to_string())
        };
        let short = parse(&["--token-secret", "a"]).expect_err("a one-byte key");
        assert!(short.contains("at least 32 bytes"), "{short}");
        assert!(parse(&["--token-secret", &"k".repeat(32)]).is_ok());
        let public = parse(&["--emulator-address", "0.0.0.0:8081"]).expect_err("every interface");
        assert!(public.contains("loopback only"), "{public}");
        assert!(parse(&["--emulator-address", ":8081"]).is_err());
        assert!(parse(&["--emulator-address", "[::1]:8081"]).is_ok());
        let proxies = parse(&["--trusted-proxies", "10.0.0.1, ::1"]).expect("two proxies");
        assert_eq!(proxies.trusted_proxies.len(), 2);
        assert!(parse(&["--trusted-proxies", "proxy.local"]).is_err());
        let short = parse(&["--admin-token", "short"]).expect_err("a short admin token");
        assert!(short.contains("at least 16 characters"), "{short}");
        assert!(parse(&["--shop-token", "0123456789abcde"]).is_err());
        assert!(parse(&["--shop-token", "0123456789abcdef"]).is_ok());
    }
}
