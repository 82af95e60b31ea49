//! The `sns-api` binary: parse the configuration, start logging, build and serve the app.

use clap::Parser;
use sns_api::config::Config;
use sns_api::startup::{App, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    sns_api::telemetry::init(&config.log);
    let app = App::build(config).await?;
    app.run_until(shutdown_signal()).await
}
