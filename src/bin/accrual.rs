//! The accrual-system emulator: binds the address and serves until SIGINT/SIGTERM.

use std::net::TcpListener;
use std::time::Duration;

use clap::Parser;
use gophermart::emulator::{run, EmulatorSettings};

/// An emulator of the accrual system for testing Gophermart.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(short, long, env = "RUN_ADDRESS", default_value = "127.0.0.1:8081")]
    address: String,

    /// Accepted for compatibility and ignored: the emulator keeps everything in memory.
    #[arg(short, long, env)]
    database_uri: Option<String>,

    /// Requests per minute of GET /api/orders/{number}, all clients together (0 = unlimited).
    #[arg(long, env, default_value_t = 0)]
    rate_limit: u32,

    /// From registration to the final status, e.g. 250ms or 5s; half REGISTERED, half PROCESSING.
    #[arg(long, env, default_value = "1s", value_parser = humantime::parse_duration)]
    processing_delay: Duration,
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    dotenvy::dotenv().ok();
    gophermart::telemetry::init(gophermart::config::LogFormat::Text);
    let args = Args::parse();
    if args.database_uri.is_some() {
        tracing::info!("DATABASE_URI is ignored: storage is in memory");
    }
    let listener = TcpListener::bind(&args.address)?;
    let settings = EmulatorSettings {
        rate_limit: args.rate_limit,
        processing_delay: args.processing_delay,
        stop_on_signals: true,
    };
    run(listener, settings)?.await
}
