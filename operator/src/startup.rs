//! `sns-operator run`: builds the shared context, serves HTTP on every replica, and runs the
//! controller, on the leader only when leader election is on.
//!
//! ```text
//! kube client ─► Context { client, recorder, metrics, data plane (real), settings }
//!   ├─ server::serve (/metrics, /healthz, /hooks/orchestrator/failover)   every replica
//!   └─ leader::run_as_leader ─► controller::run                           the leader only
//! shutdown (SIGTERM) ─► controller stops, Lease released, server drains
//! lost Lease ─► controller dropped at once (reconciles in flight cancelled, not drained), `run`
//!              fails: the process exits and its restart campaigns again
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt;
use rand::distr::{Alphanumeric, SampleString};

use crate::config::RunArgs;
use crate::context::{Context, Settings};
use crate::dataplane::DataPlane;
use crate::leader::{LeaseSettings, run_as_leader};
use crate::metrics::Metrics;
use crate::{controller, server};

/// Runs the operator until `shutdown` completes (`Ok`) or leadership is lost (`Err`).
pub async fn run(
    args: RunArgs,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let config = kube::Config::infer()
        .await
        .context("finding the Kubernetes API (in-cluster or kubeconfig)")?;
    let client = kube_client(config).context("connecting to the Kubernetes API")?;
    let metrics = Arc::new(Metrics::new()?);
    let identity = args.identity.clone().unwrap_or_else(|| {
        format!(
            "sns-operator-{}",
            Alphanumeric
                .sample_string(&mut rand::rng(), 8)
                .to_lowercase()
        )
    });
    let settings = Settings {
        watch_namespace: args.watch_namespace.clone(),
        check_interval: Duration::from_secs(args.check_interval_secs.max(1)),
        max_replication_lag: Duration::from_secs(args.max_replication_lag_secs),
        instance: identity.clone(),
        service_address: args.service_address.clone(),
        image: args.image.clone(),
    };
    let data_plane = DataPlane::real(Duration::from_secs(args.dataplane_timeout_secs.max(1)))?;
    let context = Context::new(client.clone(), metrics.clone(), data_plane, settings);

    // One shutdown signal for the server and the controller.
    let shutdown = shutdown.shared();
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding {}", args.metrics_addr))?;
    let server = tokio::spawn(server::serve(listener, context.clone(), shutdown.clone()));

    if args.leader_election {
        let namespace = args
            .lease_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let lease = LeaseSettings::new(&namespace, &args.lease_name, &identity);
        tracing::info!(lease = %format!("{namespace}/{}", args.lease_name), %identity, "campaigning for leadership");
        run_as_leader(client, lease, &metrics, shutdown.clone(), |stop| {
            controller::run(context.clone(), stop)
        })
        .await?;
    } else {
        metrics.is_leader.set(1);
        controller::run(context, shutdown.clone()).await;
    }
    server.await.context("the HTTP server task")??;
    Ok(())
}

/// A Kubernetes client for `config`. kube's TLS (rustls) needs one process-wide crypto
/// provider, and cannot choose one itself when a build links two (a workspace build also
/// links the API server's aws-lc-rs): ring is installed first, once.
pub fn kube_client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    // Already installed (by an earlier call, or by the embedding program): keep that one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    kube::Client::try_from(config)
}
