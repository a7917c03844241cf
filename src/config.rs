//! Every setting of the service, read in one place: flag, then environment, then `.env`.

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

    /// Base URL of the accrual system. Unset: the bundled emulator runs in-process (demo mode).
    #[arg(short = 'r', long = "accrual-address", env = "ACCRUAL_SYSTEM_ADDRESS")]
    pub accrual_address: Option<String>,

    /// Key that signs tokens. Unset: generated at first start and kept in the database.
    #[arg(long, env = "TOKEN_SECRET", hide_env_values = true)]
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

    /// Address of the in-process emulator, used only when no accrual address is set.
    #[arg(long, env = "EMULATOR_ADDRESS", default_value = "127.0.0.1:8081")]
    pub emulator_address: String,
}

impl Settings {
    /// The accrual system's base URL with a scheme and without a trailing slash, or
    /// `None` when the emulator is to be used.
    pub fn accrual_base_url(&self) -> Option<String> {
        self.accrual_address
            .as_deref()
            .map(str::trim)
            .filter(|address| !address.is_empty())
            .map(with_scheme)
    }
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
    }
}
