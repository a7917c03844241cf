//! The `gophermart` binary.

use clap::Parser;
use gophermart::{telemetry, Application, Settings};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    // Settings: a flag wins over the environment, the environment over `.env`.
    dotenvy::dotenv().ok();
    telemetry::init();
    let settings = Settings::parse();
    let app = Application::build(settings).await?;
    app.run_until_stopped().await?;
    Ok(())
}
