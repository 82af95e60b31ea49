//! MySQL servers restarted or removed one at a time, the primary last.
//!
//! The MySQL StatefulSet updates `OnDelete`: a new pod template (configuration hash, image)
//! restarts nothing by itself, and scaling down would remove the highest ordinals whatever
//! they are. The operator makes both safe:
//!
//! ```text
//! each healthy check (every server Ready and replicating within the lag limit), one step:
//!   more servers run than the spec asks for (a scale-down):
//!     the primary is among them ─► switchover to a server that stays
//!     otherwise ─► nothing here: the controller scales the StatefulSet down once drained
//!                  (servers_to_keep: Orchestrator never promotes them, ProxySQL runs
//!                  without them)
//!   servers on an older pod template (revision):
//!     a replica ─► its pod deleted; the StatefulSet starts it with the new template
//!     only the primary ─► switchover to an updated replica; it then restarts as a replica
//!     (a single server is restarted: there is nobody to hand over to)
//!   after a scale-down ─► Orchestrator forgets the removed servers
//! ```
//!
//! A restarted server must be Ready and replicating again before the next step, so at most
//! one server is down at any time and the primary changes at most once per roll.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use crate::context::Context;
use crate::controller::Error;
use crate::crd::SnsCluster;
use crate::dataplane::orchestrator;
use crate::failover::{announce_switchover, hand_over, instance_key, publish};
use crate::health::ordinal;

/// The label the StatefulSet controller puts on each pod: the revision of its template.
const REVISION_LABEL: &str = "controller-revision-hash";

/// How long every server must have been Ready before a step: more than CoreDNS keeps a
/// missing name (5 s) and a few of Orchestrator's polls (3 s each).
const SETTLE: std::time::Duration = std::time::Duration::from_secs(15);

/// How long `pod` has been Ready (zero when it is not).
fn ready_for(pod: &Pod) -> std::time::Duration {
    let since = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0.as_second());
    match since {
        Some(since) => {
            let now = chrono::Utc::now().timestamp();
            std::time::Duration::from_secs(u64::try_from(now - since).unwrap_or(0))
        }
        None => std::time::Duration::ZERO,
    }
}

/// One MySQL server pod as a roll sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPod {
    /// Pod name (`<cluster>-mysql-N`).
    pub name: String,
    /// Revision of the template it was made from.
    pub revision: Option<String>,
}

/// Why the primary role is handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handover {
    /// The primary is the last server on the old template.
    Roll,
    /// The primary is among the servers a scale-down removes.
    ScaleDown,
}

/// The next step of a roll or scale-down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Every server runs the current template; none is to go.
    Settled,
    /// Restart this server (a replica, or a primary with no replica).
    Restart(String),
    /// Hand the primary role to this replica first.
    SwitchOver { to: String, why: Handover },
    /// These servers are to go and the primary is not among them: the controller scales
    /// the StatefulSet down once they are drained.
    Remove(Vec<String>),
}

/// Decides the next step. `servers` are the running servers (any order), `keep` how many
/// the spec asks for (ordinals `0..keep` stay), `update_revision` the StatefulSet's current
/// template (`None`: not known yet, so no restart).
pub fn plan(
    servers: &[ServerPod],
    primary: &str,
    keep: u64,
    update_revision: Option<&str>,
) -> Step {
    let mut servers = servers.to_vec();
    servers.sort_by_key(|s| ordinal(&s.name));
    let (staying, leaving): (Vec<ServerPod>, Vec<ServerPod>) =
        servers.into_iter().partition(|s| ordinal(&s.name) < keep);
    let is_updated =
        |s: &ServerPod| update_revision.is_some() && s.revision.as_deref() == update_revision;
    // The replica to hand over to: an updated one first (it will not need a restart), the
    // lowest ordinal among equals.
    let successor = || {
        staying
            .iter()
            .filter(|s| s.name != primary)
            .min_by_key(|s| (!is_updated(s), ordinal(&s.name)))
            .map(|s| s.name.clone())
    };
    if !leaving.is_empty() {
        if leaving.iter().any(|s| s.name == primary) {
            return match successor() {
                Some(to) => Step::SwitchOver {
                    to,
                    why: Handover::ScaleDown,
                },
                // Server 0 always stays, so only a missing pod gets here: wait for it.
                None => Step::Settled,
            };
        }
        return Step::Remove(leaving.into_iter().map(|s| s.name).collect());
    }
    if update_revision.is_none() {
        return Step::Settled;
    }
    // Replicas from the highest ordinal down, as the StatefulSet controller would.
    if let Some(replica) = staying
        .iter()
        .rev()
        .find(|s| s.name != primary && !is_updated(s))
    {
        return Step::Restart(replica.name.clone());
    }
    match staying.iter().find(|s| s.name == primary) {
        Some(server) if !is_updated(server) => match successor() {
            Some(to) => Step::SwitchOver {
                to,
                why: Handover::Roll,
            },
            None => Step::Restart(server.name.clone()),
        },
        _ => Step::Settled,
    }
}

/// The cluster's MySQL StatefulSet, when it exists.
pub async fn mysql_stateful_set(
    context: &Context,
    namespace: &str,
    cluster: &str,
) -> Result<Option<StatefulSet>, Error> {
    Api::<StatefulSet>::namespaced(context.client.clone(), namespace)
        .get_opt(&format!("{cluster}-mysql"))
        .await
        .map_err(Error::observe("reading the MySQL StatefulSet"))
}

/// Takes the next step of a roll or scale-down of the cluster's MySQL servers (those of
/// `stateful_set`, its `pods`); called only when they are healthy. The next step waits for
/// the next healthy check.
pub async fn advance(
    context: &Context,
    cluster: &SnsCluster,
    namespace: &str,
    stateful_set: &StatefulSet,
    pods: &[Pod],
    primary: &str,
) -> Result<(), Error> {
    let name = cluster.name_any();
    let label = format!("{namespace}/{name}");
    // A server just back is Ready before the rest of the cluster knows it again: its DNS
    // name may still be cached as missing (Orchestrator's takeover then fails to resolve it)
    // and Orchestrator polls it every few seconds. The next step waits until each has been
    // Ready a while.
    if let Some(pod) = pods.iter().find(|pod| ready_for(pod) < SETTLE) {
        tracing::debug!(cluster = %label, pod = %pod.name_any(), "waiting for a server to settle before the next step");
        return Ok(());
    }
    let servers: Vec<ServerPod> = pods
        .iter()
        .map(|pod| ServerPod {
            name: pod.name_any(),
            revision: pod.labels().get(REVISION_LABEL).cloned(),
        })
        .collect();
    let keep = u64::try_from(cluster.spec.mysql.replicas + 1).unwrap_or(1);
    let step = plan(&servers, primary, keep, current_template(stateful_set));
    match step {
        Step::Settled => forget_removed(context, namespace, &name, keep, pods).await,
        Step::Remove(_) => {}
        Step::Restart(pod) => {
            let updated = servers
                .iter()
                .filter(|s| s.revision.as_deref() == current_template(stateful_set))
                .count();
            let role = if pod == primary {
                "the only server"
            } else {
                "a replica"
            };
            let note = format!(
                "restarting {pod} ({role}) with the new pod template: {updated} of {} servers updated",
                servers.len()
            );
            tracing::info!(cluster = %label, %pod, "{note}");
            Api::<Pod>::namespaced(context.client.clone(), namespace)
                .delete(&pod, &DeleteParams::default())
                .await
                .map_err(Error::observe("deleting a MySQL pod to restart it"))?;
            publish(
                context,
                cluster,
                EventType::Normal,
                "RollingRestart",
                "Roll",
                note,
                Some(&pod),
            )
            .await;
        }
        Step::SwitchOver { to, why } => {
            let purpose = match why {
                Handover::Roll => "so that the primary restarts last, as a replica",
                Handover::ScaleDown => "because the scale-down removes it",
            };
            let outcome = match hand_over(context, namespace, &name, primary, &to).await? {
                Ok(done) => Ok(format!("{done}, {purpose}")),
                Err(why) => Err(format!(
                    "handing the primary role from {primary} to {to} {purpose}: {why}"
                )),
            };
            announce_switchover(context, cluster, outcome, Some(&to)).await;
        }
    }
    Ok(())
}

/// The StatefulSet's current template revision, once the controller has seen its latest
/// spec (before that, `updateRevision` may still name the previous template).
fn current_template(stateful_set: &StatefulSet) -> Option<&str> {
    let status = stateful_set.status.as_ref()?;
    let observed = status.observed_generation?;
    (Some(observed) >= stateful_set.metadata.generation)
        .then_some(status.update_revision.as_deref())
        .flatten()
}

/// How many servers the StatefulSet must keep for now: `Some(running)` while a scale-down
/// is not yet safe, `None` when the spec's count can be applied (no scale-down, or it is
/// safe: the primary stays, MySQL is healthy, Orchestrator will not promote the servers
/// that go and ProxySQL no longer routes to them).
pub async fn servers_to_keep(
    context: &Context,
    cluster: &SnsCluster,
    namespace: &str,
) -> Result<Option<i32>, Error> {
    let name = cluster.name_any();
    let wanted = cluster.spec.mysql.replicas + 1;
    let running = mysql_stateful_set(context, namespace, &name)
        .await?
        .and_then(|s| s.spec)
        .and_then(|s| s.replicas)
        .unwrap_or(0);
    if running <= wanted {
        return Ok(None);
    }
    let leaving: Vec<String> = (wanted..running)
        .map(|i| format!("{name}-mysql-{i}"))
        .collect();
    let status = cluster.status.clone().unwrap_or_default();
    let mut waits = Vec::new();
    match status.mysql.primary.as_deref() {
        Some(primary) if ordinal(primary) < u64::try_from(wanted).unwrap_or(0) => {}
        Some(primary) => waits.push(format!(
            "{primary} is the primary: a switchover comes first"
        )),
        None => waits.push("no primary recorded yet".to_owned()),
    }
    let healthy = status
        .conditions
        .iter()
        .any(|c| c.type_ == "MysqlReady" && c.status == "True");
    if !healthy {
        waits.push("MySQL is not healthy".to_owned());
    }
    // ProxySQL's configuration names every server: its pods with the servers that go
    // taken out must run first. (The API reads through a Service, which stops sending new
    // connections to a pod as soon as it is deleted.)
    if cluster.spec.mysql.proxysql.enabled {
        let proxysql = Api::<Deployment>::namespaced(context.client.clone(), namespace)
            .get_opt(&format!("{name}-proxysql"))
            .await
            .map_err(Error::observe("reading the ProxySQL Deployment"))?;
        if !proxysql.as_ref().is_some_and(is_rolled_out) {
            waits.push(format!(
                "{name}-proxysql still runs pods that route to them"
            ));
        }
    }
    if waits.is_empty() {
        let url = orchestrator::service_url(namespace, &name);
        for pod in &leaving {
            if let Err(error) = context
                .data_plane
                .orchestrator
                .never_promote(&url, &instance_key(&name, pod))
                .await
            {
                waits.push(format!(
                    "Orchestrator cannot be told never to promote {pod}: {error}"
                ));
            }
        }
    }
    let label = format!("{namespace}/{name}");
    if !waits.is_empty() {
        tracing::info!(cluster = %label, leaving = ?leaving, waits = %waits.join("; "), "scale-down of MySQL waits");
        return Ok(Some(running));
    }
    let note = format!(
        "removing {} (Orchestrator will not promote them{})",
        leaving.join(", "),
        if cluster.spec.mysql.proxysql.enabled {
            "; ProxySQL no longer routes to them"
        } else {
            ""
        }
    );
    tracing::info!(cluster = %label, "{note}");
    publish(
        context,
        cluster,
        EventType::Normal,
        "ScaledDown",
        "ScaleDown",
        note,
        leaving.first().map(String::as_str),
    )
    .await;
    Ok(None)
}

/// A Deployment whose every pod runs its latest template.
fn is_rolled_out(deployment: &Deployment) -> bool {
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let Some(status) = deployment.status.as_ref() else {
        return false;
    };
    status.observed_generation >= deployment.metadata.generation
        && status.updated_replicas.unwrap_or(0) == wanted
        && status.replicas.unwrap_or(0) == wanted
        && status.available_replicas.unwrap_or(0) == wanted
}

/// Drops servers a scale-down removed from Orchestrator's topology; a failure is retried at
/// the next check.
async fn forget_removed(context: &Context, namespace: &str, name: &str, keep: u64, pods: &[Pod]) {
    let url = orchestrator::service_url(namespace, name);
    let plane = &context.data_plane.orchestrator;
    let Ok(known) = plane.instances(&url, name).await else {
        return;
    };
    let prefix = format!("{name}-mysql-");
    for server in known {
        let pod = server.hostname.split('.').next().unwrap_or_default();
        let is_removed = pod.starts_with(&prefix)
            && ordinal(pod) >= keep
            && ordinal(pod) != u64::MAX
            && !pods.iter().any(|p| p.name_any() == pod);
        if is_removed {
            match plane.forget(&url, &server).await {
                Ok(()) => {
                    tracing::info!(cluster = %format!("{namespace}/{name}"), server = %server.hostname, "Orchestrator forgot a removed server")
                }
                Err(error) => {
                    tracing::warn!(cluster = %format!("{namespace}/{name}"), server = %server.hostname, %error, "cannot make Orchestrator forget a removed server")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(revisions: &[&str]) -> Vec<ServerPod> {
        revisions
            .iter()
            .enumerate()
            .map(|(i, revision)| ServerPod {
                name: format!("db-mysql-{i}"),
                revision: Some((*revision).to_owned()),
            })
            .collect()
    }

    #[test]
    fn a_roll_restarts_replicas_from_the_highest_then_hands_over_then_the_old_primary() {
        let new = Some("new");
        let mut pods = servers(&["old", "old", "old"]);
        let mut primary = "db-mysql-0".to_owned();
        let mut steps = Vec::new();
        loop {
            let step = plan(&pods, &primary, 3, new);
            steps.push(step.clone());
            match step {
                Step::Restart(pod) => {
                    let server = pods.iter_mut().find(|s| s.name == pod).unwrap();
                    server.revision = Some("new".into());
                }
                Step::SwitchOver { to, .. } => primary = to,
                Step::Settled => break,
                Step::Remove(_) => panic!("nothing to remove"),
            }
            assert!(steps.len() < 10, "{steps:?}");
        }
        assert_eq!(
            steps,
            vec![
                Step::Restart("db-mysql-2".into()),
                Step::Restart("db-mysql-1".into()),
                Step::SwitchOver {
                    to: "db-mysql-1".into(),
                    why: Handover::Roll
                },
                Step::Restart("db-mysql-0".into()),
                Step::Settled,
            ]
        );
    }

    #[test]
    fn a_single_server_is_restarted_and_an_unknown_revision_restarts_nothing() {
        let pods = servers(&["old"]);
        assert_eq!(
            plan(&pods, "db-mysql-0", 1, Some("new")),
            Step::Restart("db-mysql-0".into())
        );
        assert_eq!(
            plan(&servers(&["old", "old"]), "db-mysql-0", 2, None),
            Step::Settled
        );
        assert_eq!(
            plan(&servers(&["new", "new"]), "db-mysql-1", 2, Some("new")),
            Step::Settled
        );
    }

    #[test]
    fn a_scale_down_hands_the_primary_role_to_a_server_that_stays_first() {
        let pods = servers(&["new", "old", "new"]);
        assert_eq!(
            plan(&pods, "db-mysql-2", 2, Some("new")),
            Step::SwitchOver {
                to: "db-mysql-0".into(),
                why: Handover::ScaleDown
            },
            "an updated replica that stays"
        );
        assert_eq!(
            plan(&pods, "db-mysql-0", 2, Some("new")),
            Step::Remove(vec!["db-mysql-2".into()]),
            "the primary stays: the server goes before any restart"
        );
        assert_eq!(
            plan(
                &servers(&["new", "new", "new"]),
                "db-mysql-1",
                1,
                Some("new")
            ),
            Step::SwitchOver {
                to: "db-mysql-0".into(),
                why: Handover::ScaleDown
            },
            "down to one server: server 0 takes over"
        );
    }
}
