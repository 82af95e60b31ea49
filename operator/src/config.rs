//! Command line of the operator: flags and environment variables (`OPERATOR_*`).

use clap::Parser;

/// The operator's command line.
#[derive(Debug, Parser)]
#[command(
    name = "sns-operator",
    version,
    about = "The sns-platform Kubernetes operator"
)]
pub struct Cli {
    /// Log format: `text` for people, `json` for collectors.
    #[arg(long, env = "OPERATOR_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}
