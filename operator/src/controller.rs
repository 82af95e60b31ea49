//! The controller: watches SnsClusters and the objects they own, and reconciles each cluster
//!
//! ```text
//! SnsCluster changed (or a child changed) ─► reconcile
//!   paused?  ─► nothing is written
//!   secrets  ─► generated once when absent (never overwritten)
//!   build    ─► server-side apply of every child, owner reference to the cluster
//!   status   ─► observedGeneration + conditions, written only when they change
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::crd::{ApiStatus, Condition, SnsCluster, SnsClusterStatus};
use crate::metrics::Metrics;
use crate::reconcile::build::{BuildError, build_cluster};

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "sns-operator";

/// What a reconcile can fail at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The resource cannot be reconciled as it is (no namespace).
    #[error("invalid SnsCluster: {0}")]
    Validate(String),
    /// An object could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The API server refused or failed an apply.
    #[error("applying {what}: {source}")]
    Apply {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// The status could not be written.
    #[error("updating status: {0}")]
    UpdateStatus(#[source] kube::Error),
}

impl Error {
    /// Label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Validate(_) => "validate",
            Self::Build(_) => "build",
            Self::Apply { .. } => "apply",
            Self::UpdateStatus(_) => "update_status",
        }
    }
}

/// Shared state of every reconcile.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Operator metrics.
    pub metrics: Arc<Metrics>,
}

/// Runs the controller until `shutdown` completes.
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let context = Arc::new(Context {
        client: client.clone(),
        metrics,
    });
    let config = watcher::Config::default();
    Controller::new(Api::<SnsCluster>::all(client.clone()), config.clone())
        .owns(Api::<Deployment>::all(client.clone()), config.clone())
        .owns(Api::<StatefulSet>::all(client.clone()), config.clone())
        .owns(Api::<Service>::all(client.clone()), config.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), config.clone())
        .owns(Api::<PodDisruptionBudget>::all(client.clone()), config)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile did not finish");
            }
        })
        .await;
}

/// Brings one cluster's children and status in line with its spec.
pub async fn reconcile(cluster: Arc<SnsCluster>, context: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    context.metrics.reconciles.inc();
    let result = reconcile_cluster(&cluster, &context).await;
    context
        .metrics
        .reconcile_seconds
        .observe(started.elapsed().as_secs_f64());
    if let Err(error) = &result {
        context
            .metrics
            .reconcile_errors
            .with_label_values(&[error.metric_label()])
            .inc();
    }
    result
}

async fn reconcile_cluster(cluster: &SnsCluster, context: &Context) -> Result<Action, Error> {
    let namespace = cluster
        .namespace()
        .ok_or_else(|| Error::Validate("an SnsCluster must be namespaced".into()))?;
    if cluster.spec.paused {
        tracing::info!(cluster = %cluster.name_any(), "paused: changing nothing");
        return Ok(Action::await_change());
    }
    let client = &context.client;
    let label = format!("{namespace}/{}", cluster.name_any());
    let target = Target {
        context,
        namespace: &namespace,
        label: &label,
    };
    ensure_secrets(client, cluster, &namespace).await?;
    let objects = build_cluster(cluster, true)?;
    for object in &objects.config_maps {
        target.apply(object).await?;
    }
    for object in &objects.services {
        target.apply(object).await?;
    }
    for object in &objects.stateful_sets {
        target.apply(object).await?;
    }
    for object in &objects.deployments {
        target.apply(object).await?;
    }
    for object in &objects.disruption_budgets {
        target.apply(object).await?;
    }
    let status = observe(client, cluster, &namespace).await;
    if cluster.status.as_ref() != Some(&status) {
        context
            .metrics
            .patches
            .with_label_values(&[label.as_str(), "SnsCluster/status"])
            .inc();
        Api::<SnsCluster>::namespaced(client.clone(), &namespace)
            .patch_status(
                &cluster.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(json!({
                    "apiVersion": "sns-platform.dev/v1alpha1",
                    "kind": "SnsCluster",
                    "status": status,
                })),
            )
            .await
            .map_err(Error::UpdateStatus)?;
    }
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    // Children changing wake us up; the periodic look only catches what no watch reports.
    Ok(Action::requeue(if ready {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(10)
    }))
}

/// Invalid specs wait for a change; anything else is retried with a delay.
pub fn error_policy(cluster: Arc<SnsCluster>, error: &Error, _context: Arc<Context>) -> Action {
    tracing::warn!(cluster = %cluster.name_any(), %error, step = error.metric_label(), "reconcile failed");
    match error {
        Error::Validate(_) => Action::await_change(),
        _ => Action::requeue(Duration::from_secs(5)),
    }
}

/// Where one reconcile applies its objects.
struct Target<'a> {
    context: &'a Context,
    namespace: &'a str,
    /// `namespace/name` of the cluster, for metrics.
    label: &'a str,
}

impl Target<'_> {
    /// Server-side applies `object` unless the live object already holds every field of it,
    /// so a cluster at rest costs reads, never writes.
    async fn apply<K>(&self, object: &K) -> Result<(), Error>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Serialize
            + DeserializeOwned
            + Clone
            + std::fmt::Debug,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        let kind = K::kind(&()).to_string();
        let error = |source| Error::Apply {
            what: format!("{kind} {name}"),
            source,
        };
        let api = Api::<K>::namespaced(self.context.client.clone(), self.namespace);
        let desired =
            serde_json::to_value(object).map_err(|e| error(kube::Error::SerdeError(e)))?;
        if let Some(live) = api.get_opt(&name).await.map_err(error)? {
            let live =
                serde_json::to_value(&live).map_err(|e| error(kube::Error::SerdeError(e)))?;
            if is_subset(&desired, &live) {
                return Ok(());
            }
        }
        self.context
            .metrics
            .patches
            .with_label_values(&[self.label, kind.as_str()])
            .inc();
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(error)?;
        Ok(())
    }
}

/// Whether every field of `desired` is in `live` with the same value (the API server adds
/// defaults and normalises quantities, so `live` may hold more and spell numbers as text).
pub fn is_subset(desired: &serde_json::Value, live: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(key, value)| l.get(key).is_some_and(|other| is_subset(value, other))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(x, y)| is_subset(x, y))
        }
        _ => {
            desired == live
                || desired.to_string().trim_matches('"') == live.to_string().trim_matches('"')
        }
    }
}

/// Creates the cluster's generated secrets when absent; an existing secret is never touched
/// (rotating a password is the user's decision).
async fn ensure_secrets(
    client: &Client,
    cluster: &SnsCluster,
    namespace: &str,
) -> Result<(), Error> {
    let name = cluster.name_any();
    let mut wanted = vec![(
        format!("{name}-mysql"),
        vec!["root-password", "sns-password", "replication-password"],
    )];
    if cluster.spec.api.jwt_secret_name.is_none() {
        wanted.push((format!("{name}-api-jwt"), vec!["jwt-secret"]));
    }
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    for (secret_name, keys) in wanted {
        let data: BTreeMap<String, String> = keys
            .into_iter()
            .map(|key| {
                (
                    key.to_owned(),
                    Alphanumeric.sample_string(&mut rand::rng(), 32),
                )
            })
            .collect();
        let mut secret = Secret {
            string_data: Some(data),
            ..Default::default()
        };
        secret.metadata.name = Some(secret_name.clone());
        secret.metadata.owner_references =
            cluster.controller_owner_ref(&()).map(|owner| vec![owner]);
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => tracing::info!(secret = %secret_name, "generated a secret"),
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(source) => {
                return Err(Error::Apply {
                    what: format!("Secret {secret_name}"),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Reads the children's state into the cluster's status.
async fn observe(client: &Client, cluster: &SnsCluster, namespace: &str) -> SnsClusterStatus {
    let name = cluster.name_any();
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace);
    let stateful_sets = Api::<StatefulSet>::namespaced(client.clone(), namespace);
    let api_ready = deployments
        .get_opt(&format!("{name}-api"))
        .await
        .ok()
        .flatten()
        .and_then(|d| d.status)
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let sts_ready = |sts: Option<StatefulSet>| {
        let wanted = sts
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or(0);
        let ready = sts
            .and_then(|s| s.status)
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        (ready, wanted)
    };
    let mysql = sts_ready(
        stateful_sets
            .get_opt(&format!("{name}-mysql"))
            .await
            .ok()
            .flatten(),
    );
    let redis = sts_ready(
        stateful_sets
            .get_opt(&format!("{name}-redis"))
            .await
            .ok()
            .flatten(),
    );
    let previous = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let mut conditions = Vec::new();
    let mut component = |type_: &str, ready: bool, waiting: String| {
        let (status, reason, message) = if ready {
            ("True", "Ready", format!("{type_} is ready"))
        } else {
            ("False", "Waiting", waiting)
        };
        conditions.push(condition(
            &previous, type_, status, reason, &message, generation,
        ));
        ready
    };
    let api_ok = component(
        "ApiReady",
        api_ready >= cluster.spec.api.replicas,
        format!(
            "{api_ready} of {} API pods are ready",
            cluster.spec.api.replicas
        ),
    );
    let mysql_ok = component(
        "MysqlReady",
        mysql.1 > 0 && mysql.0 >= mysql.1,
        format!("{} of {} MySQL servers are ready", mysql.0, mysql.1),
    );
    let redis_ok = component(
        "RedisReady",
        redis.1 > 0 && redis.0 >= redis.1,
        format!("{} of {} Redis nodes are ready", redis.0, redis.1),
    );
    let all = api_ok && mysql_ok && redis_ok;
    let waiting: Vec<String> = conditions
        .iter()
        .filter(|c| c.status != "True")
        .map(|c| c.message.clone())
        .collect();
    let summary = if all {
        "every component is ready".to_owned()
    } else {
        waiting.join("; ")
    };
    let ready = condition(
        &previous,
        "Ready",
        if all { "True" } else { "False" },
        if all { "Ready" } else { "ComponentsNotReady" },
        &summary,
        generation,
    );
    let progressing = condition(
        &previous,
        "Progressing",
        if all { "False" } else { "True" },
        if all { "Stable" } else { "Rolling" },
        &summary,
        generation,
    );
    let degraded = condition(
        &previous,
        "Degraded",
        "False",
        "NoFailure",
        "no component has failed",
        generation,
    );
    let mut all_conditions = vec![ready, progressing, degraded];
    all_conditions.extend(conditions);
    SnsClusterStatus {
        observed_generation: generation,
        conditions: all_conditions,
        api: ApiStatus {
            ready_replicas: api_ready,
        },
        mysql: previous.mysql.clone(),
        redis: previous.redis.clone(),
    }
}

/// A condition whose transition time only moves when its status does (no status churn).
fn condition(
    previous: &SnsClusterStatus,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    let last = previous.conditions.iter().find(|c| c.type_ == type_);
    let last_transition_time = match last {
        Some(last) if last.status == status => last.last_transition_time.clone(),
        _ => chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time,
        observed_generation: generation,
    }
}
