//! Command line of the operator: flags and environment variables (`OPERATOR_*`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The operator's command line.
#[derive(Debug, Parser)]
#[command(
    name = "sns-operator",
    version,
    about = "The sns-platform Kubernetes operator"
)]
pub struct Cli {
    /// Log format: `text` for people, `json` for collectors.
    #[arg(long, env = "OPERATOR_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"], global = true)]
    pub log_format: String,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The operator's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (in a pod, or against the current kubeconfig).
    Run {
        /// Where `/metrics` is served.
        #[arg(long, env = "OPERATOR_METRICS_ADDR", default_value = "0.0.0.0:9090")]
        metrics_addr: std::net::SocketAddr,
    },
    /// Print every object an SnsCluster stands for, as YAML, without a cluster.
    Render {
        /// The SnsCluster manifest (YAML).
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
}
