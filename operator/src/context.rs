//! What every reconcile and every hook request shares: the Kubernetes client, the Event
//! recorder, metrics, the data-plane clients and the operator's settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::dataplane::DataPlane;
use crate::metrics::Metrics;

/// Name the operator reports Events under (`reportingController`).
pub const CONTROLLER_NAME: &str = "sns-operator";

/// Shared state of every reconcile and of the HTTP endpoints.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Publishes Kubernetes Events (events.k8s.io) about SnsClusters.
    pub recorder: Recorder,
    /// Operator metrics.
    pub metrics: Arc<Metrics>,
    /// Redis, MySQL and Orchestrator clients.
    pub data_plane: DataPlane,
    /// How the controller behaves.
    pub settings: Settings,
    /// Per cluster (`namespace/name`), the time of the last failover whose Orchestrator
    /// recovery was acknowledged (a std mutex: never held across an `.await`).
    pub acknowledged_failovers: Mutex<HashMap<String, String>>,
    /// The binary log archivers, one per cluster with `spec.backup`.
    pub archivers: crate::backup::Archivers,
}

impl Context {
    /// Builds the shared context.
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        data_plane: DataPlane,
        settings: Settings,
    ) -> Arc<Self> {
        let reporter = Reporter {
            controller: CONTROLLER_NAME.into(),
            instance: Some(settings.instance.clone()),
        };
        Arc::new(Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            data_plane,
            settings,
            acknowledged_failovers: Mutex::default(),
            archivers: crate::backup::Archivers::default(),
        })
    }
}

/// How the controller behaves (built from the command line by `startup`, in code by tests).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch SnsClusters in this namespace only; `None` watches every namespace.
    pub watch_namespace: Option<String>,
    /// How often a Ready cluster's data plane is looked at again: Orchestrator's primary (a
    /// lost failover hook is caught here), replication and Redis health.
    pub check_interval: Duration,
    /// Replication lag above which a replica makes the cluster Degraded.
    pub max_replication_lag: Duration,
    /// This operator's identity in Events (its pod name).
    pub instance: String,
    /// `host:port` where Orchestrator's hook and Prometheus reach this operator.
    pub service_address: String,
    /// This operator's image (the backup CronJob runs it).
    pub image: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            watch_namespace: None,
            check_interval: Duration::from_secs(30),
            max_replication_lag: Duration::from_secs(30),
            instance: CONTROLLER_NAME.into(),
            service_address: crate::reconcile::build::DEFAULT_OPERATOR_ADDRESS.into(),
            image: crate::reconcile::build::DEFAULT_OPERATOR_IMAGE.into(),
        }
    }
}
