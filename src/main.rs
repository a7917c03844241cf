//! The `gophermart` binary.

use clap::Parser;
use gophermart::{telemetry, Application, Settings};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    // Settings: a flag wins over the environment, the environment over `.env`.
    dotenvy::dotenv().ok();
    let settings = Settings::parse();
    telemetry::init(settings.log_format);
    let app = Application::build(settings).await?;
    app.run_until_stopped().await?;
    Ok(())
}
