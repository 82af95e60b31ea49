//! After a failover, and on request: the Orchestrator calls the operator makes once the
//! cluster is healthy.
//!
//! ```text
//! healthy, last failover not acknowledged yet ─► ack-recovery (alias) + end-downtime (failed)
//!     (RecoveryPeriodBlockSeconds would otherwise hold back the next failover of the
//!      cluster, and the old primary stay out of the candidates, for the block's length)
//! annotation sns-platform.dev/switchover=<pod>|any ─► annotation off (at most once)
//!     ─► Orchestrator graceful takeover ─► record::observe_primary (status, label, Event)
//!     ─► Event Switchover (or SwitchoverFailed, with why)
//! ```

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::record::observe_primary;
use crate::context::Context;
use crate::controller::Error;
use crate::crd::SnsCluster;
use crate::dataplane::orchestrator::{self, InstanceKey};
use crate::reconcile::build::MYSQL_PORT;

/// Annotation asking for a planned switchover: the replica pod to promote, or `any`.
pub const SWITCHOVER_ANNOTATION: &str = "sns-platform.dev/switchover";

/// A server's name in Orchestrator: its report_host, `<pod>.<cluster>-mysql`.
pub fn instance_key(cluster: &str, pod: &str) -> InstanceKey {
    InstanceKey {
        hostname: format!("{pod}.{cluster}-mysql"),
        port: MYSQL_PORT as u16,
    }
}

/// Acknowledges the recovery of the cluster's last failover in Orchestrator, once: called
/// when replication is healthy again. A failure is retried at the next check.
pub async fn acknowledge_last_failover(context: &Context, cluster: &SnsCluster, namespace: &str) {
    let name = cluster.name_any();
    let label = format!("{namespace}/{name}");
    let Some(failover) = cluster
        .status
        .as_ref()
        .and_then(|status| status.mysql.last_failover.clone())
    else {
        return;
    };
    let done = |acknowledged: &std::collections::HashMap<String, String>| {
        acknowledged.get(&label) == Some(&failover.time)
    };
    if context
        .acknowledged_failovers
        .lock()
        .map(|a| done(&a))
        .unwrap_or(false)
    {
        return;
    }
    let url = orchestrator::service_url(namespace, &name);
    let failed = instance_key(&name, &failover.from);
    match context
        .data_plane
        .orchestrator
        .acknowledge_recovery(&url, &name, &failed)
        .await
    {
        Ok(()) => {
            tracing::info!(cluster = %label, from = %failover.from, "acknowledged the failover's recovery in Orchestrator");
            if let Ok(mut acknowledged) = context.acknowledged_failovers.lock() {
                acknowledged.insert(label, failover.time);
            }
        }
        Err(error) => {
            tracing::warn!(cluster = %label, %error, "cannot acknowledge the failover's recovery in Orchestrator; trying again at the next check")
        }
    }
}

/// Carries out a switchover the annotation asks for (the cluster is healthy: every server
/// answers and replicates). `primary` is the current primary, `replicas` the other pods.
/// True when there was a request (carried out or not).
pub async fn switch_over_if_asked(
    context: &Context,
    cluster: &SnsCluster,
    namespace: &str,
    primary: &str,
    replicas: &[String],
) -> Result<bool, Error> {
    let Some(asked) = cluster.annotations().get(SWITCHOVER_ANNOTATION).cloned() else {
        return Ok(false);
    };
    let name = cluster.name_any();
    // The annotation comes off first: a request is carried out at most once, even when
    // what follows fails or the operator stops half-way (the Events say what happened).
    let clusters = Api::<SnsCluster>::namespaced(context.client.clone(), namespace);
    clusters
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { SWITCHOVER_ANNOTATION: null } } }),
            ),
        )
        .await
        .map_err(Error::observe("removing the switchover annotation"))?;
    let target = match asked.trim() {
        "any" | "" => replicas.first().cloned(),
        pod if replicas.iter().any(|r| r == pod) => Some(pod.to_owned()),
        _ => None,
    };
    let outcome = match &target {
        _ if asked.trim() == primary => Ok(format!("{primary} is the primary already")),
        None => Err(format!(
            "{asked} is no replica of this cluster (replicas: {})",
            replicas.join(", ")
        )),
        Some(target) => hand_over(context, namespace, &name, primary, target).await?,
    };
    announce_switchover(context, cluster, outcome, target.as_deref()).await;
    Ok(true)
}

/// The Event (and log line) of a switchover: `Switchover` with what happened, or
/// `SwitchoverFailed` with why; about the pod it promoted or was to promote.
pub async fn announce_switchover(
    context: &Context,
    cluster: &SnsCluster,
    outcome: Result<String, String>,
    target: Option<&str>,
) {
    let (type_, reason, note) = match outcome {
        Ok(note) => (EventType::Normal, "Switchover", note),
        Err(note) => (EventType::Warning, "SwitchoverFailed", note),
    };
    let label = format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    );
    tracing::info!(cluster = %label, %reason, %note, "switchover handled");
    publish(context, cluster, type_, reason, "Switchover", note, target).await;
}

/// Hands the primary role from `primary` to the replica pod `target` through Orchestrator's
/// graceful takeover, and records the promoted server (status, label). `Ok(Err(why))` when
/// Orchestrator refused or failed; `Err` only for Kubernetes failures.
pub async fn hand_over(
    context: &Context,
    namespace: &str,
    name: &str,
    primary: &str,
    target: &str,
) -> Result<Result<String, String>, Error> {
    let label = format!("{namespace}/{name}");
    tracing::info!(cluster = %label, from = %primary, to = %target, "switching over");
    let url = orchestrator::service_url(namespace, name);
    let to = instance_key(name, target);
    match context
        .data_plane
        .orchestrator
        .graceful_takeover(&url, name, &to)
        .await
    {
        Ok(promoted) => {
            let pods: Vec<Pod> = crate::health::component_pods(context, namespace, name, "mysql")
                .await
                .map_err(Error::observe("listing MySQL pods"))?;
            let promoted_pod = crate::health::pod_for_host(&promoted.hostname, &pods)
                .unwrap_or(target)
                .to_owned();
            observe_primary(context, namespace, name, &promoted_pod, Some(primary)).await?;
            super::ensure_primary_label(context, namespace, &label, &pods, &promoted_pod).await?;
            Ok(Ok(format!(
                "Orchestrator handed the primary role from {primary} over to {promoted_pod}"
            )))
        }
        Err(error) => {
            // A takeover turns the primary read-only first; one that fails after that
            // leaves no server taking writes. While Orchestrator still names the old
            // primary, it takes writes again.
            let mut why = format!("Orchestrator's takeover failed: {error}");
            let old = instance_key(name, primary);
            let plane = &context.data_plane.orchestrator;
            match plane.primary(&url, name).await {
                Ok(current) if current.hostname.split('.').next() == Some(primary) => {
                    match plane.set_writable(&url, &old).await {
                        Ok(()) => why.push_str(&format!("; {primary} takes writes again")),
                        Err(error) => why.push_str(&format!(
                            "; {primary} may be left read-only, and making it writable failed: {error}"
                        )),
                    }
                }
                Ok(current) => why.push_str(&format!(
                    "; Orchestrator names {} as the primary now",
                    current.hostname
                )),
                Err(error) => why.push_str(&format!(
                    "; Orchestrator cannot say which server is the primary now: {error}"
                )),
            }
            Ok(Err(why))
        }
    }
}

/// Publishes an Event about the cluster, naming the pod it concerns (`pod`) as its related
/// object: the recorder folds Events of one reason, action and related object into a
/// count that keeps the first note, so Events about different pods must name them to stay
/// apart. A failure to publish is logged, never fatal.
pub async fn publish(
    context: &Context,
    cluster: &SnsCluster,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
    pod: Option<&str>,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: pod.map(|pod| k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.to_owned()),
            namespace: cluster.namespace(),
            ..Default::default()
        }),
    };
    if let Err(error) = context
        .recorder
        .publish(&event, &cluster.object_ref(&()))
        .await
    {
        tracing::warn!(cluster = %cluster.name_any(), %error, reason, "could not publish an event");
    }
}
