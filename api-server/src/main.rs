//! The `sns-api` binary: parse the configuration, start logging, build and serve the app.

use clap::Parser;
use sns_api::config::Config;
use sns_api::startup::{App, shutdown_signal};

// A request allocates and frees many small buffers (HTTP, JSON, Redis and MySQL replies)
// from both runtime threads; glibc's allocator spent about a sixth of the API's CPU time on
// them under the feed-read load (BENCHMARKS.md), mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    sns_api::telemetry::init(&config.log);
    let app = App::build(config).await?;
    app.run_until(shutdown_signal()).await
}
