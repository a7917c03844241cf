//! The fulfilment-service emulator (the warehouse and its carrier): binds the address and
//! serves until SIGINT/SIGTERM.

use std::net::TcpListener;
use std::time::Duration;

use clap::Parser;
use gophermart::warehouse::{run, WarehouseSettings};

/// An emulator of the warehouse's fulfilment service for testing Gophermart.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(short, long, env = "RUN_ADDRESS", default_value = "127.0.0.1:8082")]
    address: String,

    /// From acceptance to delivery, e.g. 500ms or 2s; half ACCEPTED, half SHIPPED.
    #[arg(long, env, default_value = "2s", value_parser = humantime::parse_duration)]
    shipping_delay: Duration,

    /// The share of requests answered 500, from 0 to 1.
    #[arg(long, env, default_value_t = 0.0, value_parser = fail_rate)]
    fail_rate: f64,
}

fn fail_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err("a rate from 0 to 1".to_owned()),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    dotenvy::dotenv().ok();
    gophermart::telemetry::init(gophermart::config::LogFormat::Text);
    let args = Args::parse();
    let listener = TcpListener::bind(&args.address)?;
    let settings = WarehouseSettings {
        shipping_delay: args.shipping_delay,
        fail_rate: args.fail_rate,
        stop_on_signals: true,
    };
    run(listener, settings)?.await
}
