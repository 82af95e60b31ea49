//! The `sns-operator` binary.

use clap::Parser;
use sns_operator::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            sns_operator::telemetry::init(&cli.log_format);
            sns_operator::startup::run(args, shutdown_signal()).await?;
        }
        Command::Backup(args) => {
            sns_operator::telemetry::init(&cli.log_format);
            let record = sns_operator::backup::run(args).await?;
            println!("{}", serde_json::to_string(&record)?);
        }
        Command::RestoreFetch(args) => {
            sns_operator::telemetry::init(&cli.log_format);
            let fetched = sns_operator::backup::fetch(args).await?;
            println!("{}", serde_json::to_string(&fetched)?);
        }
        Command::Render { file } => {
            print!("{}", sns_operator::render::render_file(&file)?);
        }
    }
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
