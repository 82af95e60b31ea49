//! Command line of the operator: flags and environment variables (`OPERATOR_*`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    Run(RunArgs),
    /// Take one backup of a cluster's MySQL to S3 (what the backup CronJob runs).
    Backup(crate::backup::BackupArgs),
    /// Fetch a backup and the binary logs after it into server 0's empty data directory
    /// (the init container of a cluster with `spec.restore`).
    RestoreFetch(crate::backup::RestoreArgs),
    /// Print every object an SnsCluster stands for, as YAML, without a cluster.
    Render {
        /// The SnsCluster manifest (YAML).
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
}

/// Flags of `sns-operator run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Where `/metrics`, `/healthz` and Orchestrator's failover hook are served. Its port is
    /// the one `--service-address` names by default (8080), so the hook finds it.
    #[arg(long, env = "OPERATOR_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Elect a leader through a Lease, so that only one replica reconciles
    /// (`--leader-election=false` turns it off: then run one replica only).
    #[arg(long, env = "OPERATOR_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "OPERATOR_LEASE_NAME",
        default_value = "sns-operator-leader"
    )]
    pub lease_name: String,

    /// Namespace of the Lease: the operator's own (downward API); default: the kubeconfig's.
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// This replica's identity in the Lease and in Events (its pod name); default: random.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Watch SnsClusters in this namespace only; default: every namespace.
    #[arg(long, env = "OPERATOR_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Seconds between two looks at a Ready cluster's data plane (Orchestrator's primary, so
    /// a lost failover hook is caught; replication; the Redis Cluster).
    #[arg(long, env = "OPERATOR_CHECK_INTERVAL_SECS", default_value_t = 30)]
    pub check_interval_secs: u64,

    /// Replication lag, in seconds, above which the cluster is Degraded.
    #[arg(long, env = "OPERATOR_MAX_REPLICATION_LAG_SECS", default_value_t = 30)]
    pub max_replication_lag_secs: u64,

    /// `host:port` where Orchestrator's failover hook and Prometheus reach this operator
    /// (its metrics Service).
    #[arg(long, env = "OPERATOR_SERVICE_ADDRESS", default_value = crate::reconcile::build::DEFAULT_OPERATOR_ADDRESS)]
    pub service_address: String,

    /// This operator's own image: the backup CronJob runs it (`sns-operator backup`) unless
    /// `spec.backup.image` names another.
    #[arg(long, env = "OPERATOR_IMAGE", default_value = crate::reconcile::build::DEFAULT_OPERATOR_IMAGE)]
    pub image: String,

    /// Timeout, in seconds, of each call to Redis, MySQL or Orchestrator.
    #[arg(long, env = "OPERATOR_DATAPLANE_TIMEOUT_SECS", default_value_t = 5)]
    pub dataplane_timeout_secs: u64,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_default_listen_port_is_the_one_the_default_hook_address_names() {
        let cli = Cli::try_parse_from(["sns-operator", "run"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let hook_port = args.service_address.rsplit(':').next().unwrap();
        assert_eq!(args.metrics_addr.port().to_string(), hook_port);
    }
}
