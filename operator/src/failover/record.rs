//! Recording a primary in `status.mysql` (exactly once per failover) and moving the
//! `role=primary` label.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::context::Context;
use crate::controller::Error;
use crate::crd::{Failover, MysqlStatus, SnsCluster};
use crate::dataplane::MysqlServer;
use crate::reconcile::build::MYSQL_PORT;

/// Label whose value `primary` marks the MySQL pod the primary Service selects.
pub const ROLE_LABEL: &str = "sns-platform.dev/role";

/// Field manager of the operator's `status.mysql` writes (apart from the reconciler's
/// server-side apply, which never touches `status.mysql`).
pub const FAILOVER_FIELD_MANAGER: &str = "sns-operator-failover";

/// How many times a conflicting status write is read and decided again.
const ATTEMPTS: usize = 5;

/// What recording a primary did.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    /// That pod was already the recorded primary: nothing was written.
    Unchanged,
    /// The cluster is paused: nothing was written.
    Paused,
    /// The first primary of the cluster was recorded.
    Discovered,
    /// A new primary was recorded as a failover (counted, announced).
    Failover(Failover),
}

/// Records `primary` (a pod name) as the cluster's MySQL primary. A change from another pod
/// is a failover, counted once however many callers report it; `failed` names the failed
/// primary when no primary was recorded before (the hook knows it). Returns the
/// `status.mysql` now in force.
pub async fn observe_primary(
    context: &Context,
    namespace: &str,
    name: &str,
    primary: &str,
    failed: Option<&str>,
) -> Result<(MysqlStatus, Observed), Error> {
    let clusters = Api::<SnsCluster>::namespaced(context.client.clone(), namespace);
    let label = format!("{namespace}/{name}");
    let mut attempt = 0;
    loop {
        attempt += 1;
        let cluster = clusters
            .get(name)
            .await
            .map_err(Error::observe("reading the SnsCluster"))?;
        let current = cluster.status.clone().unwrap_or_default().mysql;
        if cluster.spec.paused {
            return Ok((current, Observed::Paused));
        }
        if current.primary.as_deref() == Some(primary) {
            return Ok((current, Observed::Unchanged));
        }
        let mut next = current.clone();
        next.primary = Some(primary.to_owned());
        let observed = match current.primary.as_deref().or(failed) {
            None => Observed::Discovered,
            Some(from) => {
                let failover = Failover {
                    time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    from: from.to_owned(),
                    to: primary.to_owned(),
                };
                next.last_failover = Some(failover.clone());
                next.failover_count += 1;
                Observed::Failover(failover)
            }
        };
        // The resourceVersion makes the write conditional: if anyone changed the cluster
        // since it was read (another report of the same failover included), the API server
        // answers 409 and the decision is made again on what is there now.
        let patch = json!({
            "metadata": { "resourceVersion": cluster.resource_version() },
            "status": { "mysql": next },
        });
        let params = PatchParams {
            field_manager: Some(FAILOVER_FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match clusters
            .patch_status(name, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                context
                    .metrics
                    .patches
                    .with_label_values(&[label.as_str(), "SnsCluster/status"])
                    .inc();
                match &observed {
                    Observed::Failover(failover) => {
                        announce(context, &cluster, &label, failover).await;
                        fence(context, &cluster, &label, &failover.from).await;
                    }
                    _ => tracing::info!(cluster = %label, %primary, "recorded the MySQL primary"),
                }
                return Ok((next, observed));
            }
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < ATTEMPTS => {
                tracing::debug!(cluster = %label, "the SnsCluster changed meanwhile: deciding again");
            }
            Err(source) => return Err(Error::observe("recording the MySQL primary")(source)),
        }
    }
}

/// Makes the former primary read-only if it is still running: Orchestrator does not touch a
/// primary it gave up on, and ProxySQL routes writes to whichever server has `read_only=0`.
/// Best effort: a server that does not answer is down, and when it starts again start.sh
/// sees the recorded primary and starts read-only.
async fn fence(context: &Context, cluster: &SnsCluster, label: &str, from: &str) {
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let login = match crate::health::mysql_login(context, &namespace, &name).await {
        Ok(login) => login,
        Err(message) => {
            tracing::warn!(cluster = %label, %from, %message, "cannot fence the former primary");
            return;
        }
    };
    let server = MysqlServer {
        name: from.to_owned(),
        host: format!("{from}.{name}-mysql.{namespace}.svc"),
        port: MYSQL_PORT as u16,
    };
    match context.data_plane.mysql.fence(&login, &server).await {
        Ok(()) => {
            tracing::info!(cluster = %label, %from, "fenced the former primary (read_only=1)")
        }
        Err(error) => tracing::info!(cluster = %label, %from, %error,
            "the former primary did not answer; it starts read-only when it comes back"),
    }
}

/// Counts the failover and tells people: an Event on the SnsCluster and a log line.
async fn announce(context: &Context, cluster: &SnsCluster, label: &str, failover: &Failover) {
    context.metrics.failovers.with_label_values(&[label]).inc();
    tracing::warn!(cluster = %label, from = %failover.from, to = %failover.to, "MySQL failover recorded");
    let event = Event {
        type_: EventType::Warning,
        reason: "Failover".into(),
        note: Some(format!(
            "Orchestrator promoted {} after {} failed; the role=primary label follows",
            failover.to, failover.from
        )),
        action: "RecordFailover".into(),
        // The promoted pod, as the Event's related object: Events that differ in it are
        // kept apart (the recorder folds Events of one key into a count, keeping the
        // first note), so each promotion is one Event that names it.
        secondary: Some(k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(failover.to.clone()),
            namespace: cluster.namespace(),
            ..Default::default()
        }),
    };
    if let Err(error) = context
        .recorder
        .publish(&event, &cluster.object_ref(&()))
        .await
    {
        tracing::warn!(cluster = %label, %error, "could not publish the Failover event");
    }
}

/// Puts `role=primary` on the pod `primary` and on no other of `pods`. The label comes off
/// the others first, so the primary Service never selects two servers; a pod that already
/// carries the right label is not written to.
pub async fn ensure_primary_label(
    context: &Context,
    namespace: &str,
    cluster_label: &str,
    pods: &[Pod],
    primary: &str,
) -> Result<(), Error> {
    let api = Api::<Pod>::namespaced(context.client.clone(), namespace);
    let is_labelled = |pod: &Pod| pod.labels().get(ROLE_LABEL).is_some_and(|v| v == "primary");
    let removals = pods
        .iter()
        .filter(|pod| pod.name_any() != primary && is_labelled(pod))
        .map(|pod| (pod.name_any(), serde_json::Value::Null));
    let addition = pods
        .iter()
        .filter(|pod| pod.name_any() == primary && !is_labelled(pod))
        .map(|pod| (pod.name_any(), json!("primary")));
    for (pod, value) in removals.chain(addition) {
        context
            .metrics
            .patches
            .with_label_values(&[cluster_label, "Pod"])
            .inc();
        api.patch(
            &pod,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { ROLE_LABEL: value } } })),
        )
        .await
        .map_err(Error::observe(&format!("labelling pod {pod}")))?;
        tracing::info!(cluster = %cluster_label, %pod, primary = !value.is_null(), "moved the role=primary label");
    }
    Ok(())
}
