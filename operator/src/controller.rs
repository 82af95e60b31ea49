//! The controller: watches SnsClusters and the objects they own, and reconciles each cluster
//!
//! ```text
//! SnsCluster changed (or a child changed, or its periodic check is due) ─► reconcile
//!   paused?    ─► nothing is written
//!   secrets    ─► read; generated once when absent (never overwritten)
//!   build      ─► server-side apply of every child, owner reference to the cluster (a MySQL
//!                 scale-down held until safe: rollout::servers_to_keep)
//!   data plane ─► health::check: MySQL primary (a failover is recorded, the role=primary
//!                 label moved), replication, Redis Cluster (bootstrapped when not formed)
//!   backups    ─► the bucket's newest complete backup, BackupReady (backup::observe)
//!   status     ─► observedGeneration + conditions, written only when they change (never
//!                 status.mysql: that is failover::record's); an Event when Ready or
//!                 Degraded changes
//! ```
//!
//! A failed reconcile is retried after 5 s, doubling per consecutive failure of that cluster
//! up to 5 min (an invalid spec waits for a change instead). Only the leader runs this
//! (`leader`); `startup` wires it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

pub use crate::context::Context;
use crate::crd::SnsCluster;
use crate::health;
use crate::reconcile::build::{BuildError, BuildInputs, build_cluster_with};
use crate::reconcile::status;

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
    /// Looking at the data plane needed the API server and it failed (listing pods,
    /// recording the MySQL primary, moving the role=primary label).
    #[error("{what}: {source}")]
    Observe {
        what: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Validate(_) => "validate",
            Self::Build(_) => "build",
            Self::Apply { .. } => "apply",
            Self::UpdateStatus(_) => "update_status",
            Self::Observe { .. } => "observe",
        }
    }

    /// Wraps a Kubernetes failure met while looking at the data plane.
    pub fn observe(what: &str) -> impl FnOnce(kube::Error) -> Self + '_ {
        move |source| Self::Observe {
            what: what.to_owned(),
            source,
        }
    }
}

/// Runs the controller until `shutdown` completes (reconciles in flight finish first).
/// Dropping the future instead cancels reconciles in flight (`leader` does on a lost Lease).
pub async fn run(
    context: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = context.client.clone();
    let namespace = context.settings.watch_namespace.as_deref();
    let config = watcher::Config::default();
    let backoff = Arc::new(RetryBackoff::default());
    let on_error = backoff.clone();
    Controller::new(scoped::<SnsCluster>(&client, namespace), config.clone())
        .owns(scoped::<Deployment>(&client, namespace), config.clone())
        .owns(scoped::<StatefulSet>(&client, namespace), config.clone())
        .owns(scoped::<Service>(&client, namespace), config.clone())
        .owns(scoped::<ConfigMap>(&client, namespace), config.clone())
        .owns(
            scoped::<PodDisruptionBudget>(&client, namespace),
            config.clone(),
        )
        .owns(scoped::<CronJob>(&client, namespace), config)
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            move |cluster, error, context| error_policy(cluster, error, context, &on_error),
            context,
        )
        .for_each(|result| {
            match result {
                Ok((cluster, _)) => backoff.forget(&cluster),
                Err(error) => tracing::debug!(%error, "reconcile did not finish"),
            }
            futures::future::ready(())
        })
        .await;
}

/// Every namespace, or only `namespace`.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
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
    let objects = build_cluster_with(
        cluster,
        &BuildInputs {
            owned: true,
            operator_address: context.settings.service_address.clone(),
            mysql_servers_kept: crate::rollout::servers_to_keep(context, cluster, &namespace)
                .await?,
            operator_image: context.settings.image.clone(),
        },
    )?;
    for object in &objects.config_maps {
        target.apply(object).await?;
    }
    for object in &objects.services {
        target.apply(object).await?;
    }
    // Deployments before StatefulSets: a scale-down waits for the API's pods that no longer
    // read from the servers that go (rollout::servers_to_keep).
    for object in &objects.deployments {
        target.apply(object).await?;
    }
    for object in &objects.stateful_sets {
        target.apply(object).await?;
    }
    for object in &objects.disruption_budgets {
        target.apply(object).await?;
    }
    for object in &objects.cron_jobs {
        target.apply(object).await?;
    }
    let report = health::check(context, cluster, &namespace).await?;
    let backup = crate::backup::observe(context, cluster, &namespace).await;
    let status = status::observe(
        client,
        cluster,
        &namespace,
        &report,
        backup,
        &context.settings.image,
    )
    .await?;
    if cluster.status.as_ref() != Some(&status) {
        context
            .metrics
            .patches
            .with_label_values(&[label.as_str(), "SnsCluster/status"])
            .inc();
        // status.mysql belongs to failover::record (conditional writes, counted once); this
        // apply leaves it out, so a stale cache here can never undo a recorded failover.
        let mut body = serde_json::to_value(&status)
            .map_err(|e| Error::UpdateStatus(kube::Error::SerdeError(e)))?;
        if let Some(fields) = body.as_object_mut() {
            fields.remove("mysql");
        }
        Api::<SnsCluster>::namespaced(client.clone(), &namespace)
            .patch_status(
                &cluster.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(json!({
                    "apiVersion": "sns-platform.dev/v1alpha1",
                    "kind": "SnsCluster",
                    "status": body,
                })),
            )
            .await
            .map_err(Error::UpdateStatus)?;
        status::announce_transitions(context, cluster, &status).await;
    }
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    // Children changing wake us up; the periodic look is for what no watch reports: the data
    // plane (a failover whose hook was lost, replication, Redis).
    Ok(Action::requeue(if ready {
        context.settings.check_interval
    } else {
        Duration::from_secs(10)
    }))
}

/// Invalid specs wait for a change; anything else is retried after the cluster's next
/// backoff delay.
fn error_policy(
    cluster: Arc<SnsCluster>,
    error: &Error,
    _context: Arc<Context>,
    backoff: &RetryBackoff,
) -> Action {
    match error {
        Error::Validate(_) => {
            tracing::warn!(cluster = %cluster.name_any(), %error, step = error.metric_label(), "reconcile failed");
            Action::await_change()
        }
        _ => {
            let delay = backoff.next_delay(ObjectRef::from_obj(cluster.as_ref()));
            tracing::warn!(cluster = %cluster.name_any(), %error, step = error.metric_label(), retry_in = ?delay, "reconcile failed");
            Action::requeue(delay)
        }
    }
}

/// Consecutive failed reconciles per cluster, for an exponential retry delay.
#[derive(Debug, Default)]
struct RetryBackoff {
    // Locked once per reconcile outcome, for a map lookup, never across an await: no
    // contention worth more. A cluster deleted while failing leaves one small entry.
    failures: Mutex<HashMap<ObjectRef<SnsCluster>, u32>>,
}

impl RetryBackoff {
    /// Counts one more failure of `cluster` and returns how long to wait before retrying.
    fn next_delay(&self, cluster: ObjectRef<SnsCluster>) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let count = failures.entry(cluster).or_insert(0);
        *count = count.saturating_add(1);
        retry_delay(*count)
    }

    /// Forgets `cluster`'s failures after a successful reconcile.
    fn forget(&self, cluster: &ObjectRef<SnsCluster>) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(cluster);
    }
}

/// 5 s after the first consecutive failure, doubling after each further one, at most 5 min.
fn retry_delay(failures: u32) -> Duration {
    const FIRST: Duration = Duration::from_secs(5);
    const MAX: Duration = Duration::from_secs(300);
    let doublings = failures.saturating_sub(1).min(16);
    FIRST.saturating_mul(1 << doublings).min(MAX)
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
        match api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if is_immutable_statefulset_change(&kind, &status) => {
                // A StatefulSet's volume claims (and selector) cannot change in place, and
                // a newer operator may want others than the one that made it: the
                // StatefulSet is deleted and made again, its pods and claims orphaned and
                // adopted by the new one, which then rolls them one at a time.
                tracing::info!(object = %format!("{kind} {name}"), "recreating: a field that cannot change in place changed");
                api.delete(
                    &name,
                    &DeleteParams {
                        propagation_policy: Some(PropagationPolicy::Orphan),
                        ..DeleteParams::default()
                    },
                )
                .await
                .map_err(error)?;
                // The orphan finalizer takes a moment; a StatefulSet still there after that
                // fails this reconcile, and the retry creates it.
                let deadline = tokio::time::Instant::now() + RECREATE_WAIT;
                while api.get_opt(&name).await.map_err(error)?.is_some() {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(error(kube::Error::Api(status)));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                api.patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(object),
                )
                .await
                .map_err(error)?;
                Ok(())
            }
            Err(source) => Err(error(source)),
        }
    }
}

/// How long a reconcile waits for a StatefulSet it deleted to be gone before making it again.
const RECREATE_WAIT: Duration = Duration::from_secs(15);

/// Whether the API server refused a StatefulSet apply for changing a field that cannot
/// change in place (volumeClaimTemplates, selector, serviceName...).
fn is_immutable_statefulset_change(kind: &str, status: &kube::core::Status) -> bool {
    kind == "StatefulSet"
        && status.code == 422
        && status
            .message
            .contains("updates to statefulset spec for fields other than")
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
    // The builders' list: the Secrets and keys the objects they build refer to.
    let wanted = crate::reconcile::build::generated_secrets(cluster);
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    for (secret_name, keys) in wanted {
        // Read first, so a reconcile at rest sends no write (a create would be answered 409).
        // Metadata only: the values stay on the API server.
        let existing = secrets
            .get_metadata_opt(&secret_name)
            .await
            .map_err(|source| Error::Apply {
                what: format!("Secret {secret_name}"),
                source,
            })?;
        if existing.is_some() {
            continue;
        }
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
            // Created by someone else between our read and this write: theirs stays.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_delay_doubles_from_5_s_to_at_most_5_min() {
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn the_backoff_counts_per_cluster_and_a_success_resets_it() {
        let backoff = RetryBackoff::default();
        let prod = ObjectRef::<SnsCluster>::new("prod").within("a");
        let other = ObjectRef::<SnsCluster>::new("prod").within("b");
        assert_eq!(backoff.next_delay(prod.clone()), Duration::from_secs(5));
        assert_eq!(backoff.next_delay(prod.clone()), Duration::from_secs(10));
        assert_eq!(backoff.next_delay(other), Duration::from_secs(5));
        backoff.forget(&prod);
        assert_eq!(backoff.next_delay(prod), Duration::from_secs(5));
    }
}
