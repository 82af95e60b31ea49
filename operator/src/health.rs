//! One cluster's data plane as the reconciler sees it, once its pods are all Ready
//! (KWOK readiness, or a probe's, says nothing about replication or the Redis Cluster):
//!
//! ```text
//! MySQL pods ─► primary: Orchestrator's raft leader /api/master/<cluster>, else the one
//!               writable server
//!            ─► failover::observe_primary + role=primary label
//!            ─► spec.mysql.durability applied to every running server (semi-sync settings)
//!            ─► replication health of every replica (threads, lag; the primary still
//!               waiting for a replica with semisync) ─► Healthy | Failing(why)
//!            ─► healthy: the last failover's recovery acknowledged in Orchestrator, a
//!               switchover the annotation asks for carried out (failover::switchover),
//!               else the next step of a roll or scale-down (rollout)
//! Redis pods ─► CLUSTER INFO on every node ─► not formed? bootstrap ─► cluster_state
//! ```
//!
//! Data-plane failures become conditions (why it waits, why it is degraded), not reconcile
//! errors; only Kubernetes failures are errors.

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use secrecy::SecretString;

use crate::context::Context;
use crate::controller::Error;
use crate::crd::SnsCluster;
use crate::dataplane::{Durability, MysqlLogin, MysqlServer, RedisNode, orchestrator};
use crate::failover::{ensure_primary_label, observe_primary};
use crate::reconcile::build::{CLONE_PORT, MYSQL_PORT, REDIS_PORT};

/// How one component's data plane is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not every pod is Ready yet, so the data plane was not asked.
    NotChecked,
    /// Working towards ready (no primary known yet, Redis Cluster forming).
    Waiting {
        /// One word, for the condition's reason.
        reason: &'static str,
        /// Why it waits.
        message: String,
    },
    /// Something that worked has failed (replication stopped, lag, cluster_state fail).
    Failing {
        /// One word, for the condition's reason.
        reason: &'static str,
        /// What failed.
        message: String,
    },
    /// Healthy.
    Healthy,
}

/// The data plane of one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// MySQL replication.
    pub mysql: Health,
    /// The Redis Cluster.
    pub redis: Health,
    /// `cluster_state` as the Redis nodes report it, when they were asked.
    pub redis_state: Option<String>,
}

/// Looks at the cluster's data plane: records the MySQL primary (a failover when it
/// changed), bootstraps the Redis Cluster when it is not formed, and says how both are.
pub async fn check(
    context: &Context,
    cluster: &SnsCluster,
    namespace: &str,
) -> Result<Report, Error> {
    let mysql = check_mysql(context, cluster, namespace).await?;
    let (redis, redis_state) = check_redis(context, cluster, namespace).await?;
    Ok(Report {
        mysql,
        redis,
        redis_state,
    })
}

async fn check_mysql(
    context: &Context,
    cluster: &SnsCluster,
    namespace: &str,
) -> Result<Health, Error> {
    let name = cluster.name_any();
    let pods = component_pods(context, namespace, &name, "mysql")
        .await
        .map_err(Error::observe("listing MySQL pods"))?;
    if pods.is_empty() {
        return Ok(Health::NotChecked);
    }
    let service = format!("{name}-mysql");
    let server = |pod: &Pod| MysqlServer {
        name: pod.name_any(),
        host: pod_host(pod, &service, namespace),
        port: MYSQL_PORT as u16,
    };
    // Every pod Ready, or `None`: then replication is not judged yet (the StatefulSet's
    // condition says how many are ready), and no primary is guessed from the servers. The
    // servers are those the StatefulSet runs: more than the spec's while a scale-down waits.
    let stateful_set = crate::rollout::mysql_stateful_set(context, namespace, &name).await?;
    let running = stateful_set
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or(0)
        .max(cluster.spec.mysql.replicas + 1);
    let ready: Option<Vec<MysqlServer>> =
        all_ready(pods.clone(), running).map(|ready| ready.iter().map(server).collect());
    let login = match mysql_login(context, namespace, &name).await {
        Ok(login) => login,
        Err(message) => {
            return Ok(Health::Failing {
                reason: "NoCredentials",
                message,
            });
        }
    };
    let plane = &context.data_plane;

    // Orchestrator knows best (it promotes) and needs no pod to be Ready: during a failover
    // the old primary's pod is not, and this is how a lost hook is caught. When Orchestrator
    // cannot say, the servers can (the one writable server), once all of them answer.
    let url = orchestrator::service_url(namespace, &name);
    let primary = match plane.orchestrator.primary(&url, &name).await {
        Ok(key) => pod_for_host(&key.hostname, &pods)
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "Orchestrator names {} as the primary, which is no MySQL pod of this cluster",
                    key.hostname
                )
            }),
        Err(asked) => match &ready {
            None => return Ok(Health::NotChecked),
            Some(servers) => match plane.mysql.primary_of(&login, servers).await {
                Ok(Some(primary)) => Ok(primary),
                Ok(None) => Err(format!(
                    "no primary yet: Orchestrator cannot say ({asked}) and no server is writable"
                )),
                Err(error) => Err(format!(
                    "no primary: Orchestrator cannot say ({asked}) and {error}"
                )),
            },
        },
    };
    let primary = match primary {
        Ok(primary) => primary,
        Err(message) => {
            return Ok(Health::Waiting {
                reason: "NoPrimary",
                message,
            });
        }
    };
    observe_primary(context, namespace, &name, &primary, None).await?;
    let label = format!("{namespace}/{name}");
    ensure_primary_label(context, namespace, &label, &pods, &primary).await?;

    let Some(servers) = ready else {
        // A server not Ready yet may be receiving a copy of another's data: say how far.
        return Ok(copies_in_progress(context, &pods, &service, namespace).await);
    };
    // The servers read spec.mysql.durability from their configuration at start only; a
    // change reaches running servers here.
    let durability = Durability {
        semisync: cluster.spec.mysql.durability == crate::crd::Durability::Semisync,
        timeout_ms: cluster.spec.mysql.semisync_timeout_ms,
    };
    for server in &servers {
        match plane
            .mysql
            .apply_durability(&login, server, &durability)
            .await
        {
            Ok(true) => {
                tracing::info!(cluster = %label, server = %server.name, semisync = durability.semisync, "applied spec.mysql.durability to a running server")
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(cluster = %label, server = %server.name, %error, "cannot apply spec.mysql.durability")
            }
        }
    }
    let (primaries, replicas): (Vec<MysqlServer>, Vec<MysqlServer>) =
        servers.into_iter().partition(|s| s.name == primary);
    let Some(primary_server) = primaries.first() else {
        return Ok(Health::Waiting {
            reason: "NoPrimary",
            message: format!("the primary {primary} has no pod"),
        });
    };
    match plane
        .mysql
        .replication_health(&login, primary_server, &replicas)
        .await
    {
        Err(error) => Ok(Health::Failing {
            reason: "Unreachable",
            message: error.to_string(),
        }),
        Ok(health) => {
            let semisync = cluster.spec.mysql.durability == crate::crd::Durability::Semisync;
            let problems =
                health.problems(&primary, context.settings.max_replication_lag, semisync);
            Ok(match problems.first() {
                None => {
                    crate::failover::acknowledge_last_failover(context, cluster, namespace).await;
                    let replica_pods: Vec<String> =
                        replicas.iter().map(|r| r.name.clone()).collect();
                    let asked = crate::failover::switch_over_if_asked(
                        context,
                        cluster,
                        namespace,
                        &primary,
                        &replica_pods,
                    )
                    .await?;
                    if let (false, Some(stateful_set)) = (asked, &stateful_set) {
                        crate::rollout::advance(
                            context,
                            cluster,
                            namespace,
                            stateful_set,
                            &pods,
                            &primary,
                        )
                        .await?;
                    }
                    Health::Healthy
                }
                Some(first) => Health::Failing {
                    reason: first.reason,
                    message: problems
                        .iter()
                        .map(|p| p.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                },
            })
        }
    }
}

/// What the clone donors of the Ready servers are sending: `Waiting` (`Cloning`) with each
/// copy's progress, or `NotChecked` when none is (or a donor cannot say).
async fn copies_in_progress(
    context: &Context,
    pods: &[Pod],
    service: &str,
    namespace: &str,
) -> Health {
    let mut copies = Vec::new();
    for pod in pods.iter().filter(|pod| is_ready(pod)) {
        let donor = MysqlServer {
            name: pod.name_any(),
            host: pod_host(pod, service, namespace),
            port: CLONE_PORT as u16,
        };
        match context.data_plane.mysql.clone_progress(&donor).await {
            Ok(sending) => copies.extend(sending.into_iter().map(|copy| {
                format!(
                    "{} is receiving a copy of {}'s data: {:.1} of {:.1} MiB",
                    copy.receiver,
                    donor.name,
                    copy.sent_bytes as f64 / MIB,
                    copy.total_bytes as f64 / MIB
                )
            })),
            Err(error) => {
                tracing::debug!(%error, donor = %donor.name, "cannot ask a clone donor")
            }
        }
    }
    if copies.is_empty() {
        Health::NotChecked
    } else {
        Health::Waiting {
            reason: "Cloning",
            message: copies.join("; "),
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

async fn check_redis(
    context: &Context,
    cluster: &SnsCluster,
    namespace: &str,
) -> Result<(Health, Option<String>), Error> {
    let name = cluster.name_any();
    let spec = &cluster.spec.redis;
    let masters = usize::try_from(spec.masters).unwrap_or(0);
    let pods = component_pods(context, namespace, &name, "redis")
        .await
        .map_err(Error::observe("listing Redis pods"))?;
    let Some(pods) = all_ready(pods, spec.masters * (1 + spec.replicas_per_master)) else {
        return Ok((Health::NotChecked, None));
    };
    let service = format!("{name}-redis");
    let nodes: Vec<RedisNode> = pods
        .iter()
        .map(|pod| RedisNode {
            name: pod.name_any(),
            host: pod_host(pod, &service, namespace),
            port: REDIS_PORT as u16,
            bus_port: None,
        })
        .collect();
    let plane = &context.data_plane.redis;
    let failing = |reason, message| Health::Failing { reason, message };
    let mut health = match plane.cluster_health(&nodes).await {
        Ok(health) => health,
        Err(error) => return Ok((failing("Unreachable", error.to_string()), None)),
    };
    if !health.unreachable.is_empty() {
        let message = format!(
            "Redis nodes do not answer: {}",
            health.unreachable.join("; ")
        );
        return Ok((failing("NodeUnreachable", message), Some(health.state)));
    }
    // Not formed: form it. Formed but failing while every node answers: the nodes may know
    // each other at addresses they no longer have (every pod restarted with a new IP), and
    // the same bootstrap meets them again at their pods' current IPs.
    if !health.is_ok() {
        let (master_nodes, replica_nodes) = nodes.split_at(masters.min(nodes.len()));
        match plane.bootstrap(master_nodes, replica_nodes).await {
            Ok(report) => {
                if !report.changed_nothing() {
                    tracing::info!(cluster = %format!("{namespace}/{name}"), ?report, "bootstrapped the Redis Cluster");
                }
                health = match plane.cluster_health(&nodes).await {
                    Ok(health) => health,
                    Err(error) => return Ok((failing("Unreachable", error.to_string()), None)),
                };
            }
            Err(error) if !health.is_formed(nodes.len()) => {
                let message = format!(
                    "the Redis Cluster is not formed ({} of 16384 slots assigned): bootstrap: {error}",
                    health.slots_assigned
                );
                return Ok((
                    Health::Waiting {
                        reason: "Bootstrapping",
                        message,
                    },
                    Some(health.state),
                ));
            }
            Err(error) => {
                tracing::warn!(cluster = %format!("{namespace}/{name}"), %error, "the Redis Cluster fails, and meeting its nodes again did not mend it");
            }
        }
    }
    let state = Some(health.state.clone());
    Ok(if health.is_ok() {
        (Health::Healthy, state)
    } else if health.is_formed(nodes.len()) {
        let message = format!(
            "cluster_state is {}: {} of 16384 slots served",
            health.state, health.slots_ok
        );
        (failing("ClusterStateFail", message), state)
    } else {
        let message = format!(
            "the Redis Cluster is forming: {} of 16384 slots assigned, {} nodes known",
            health.slots_assigned, health.known_nodes
        );
        (
            Health::Waiting {
                reason: "Bootstrapping",
                message,
            },
            state,
        )
    })
}

/// The cluster's pods of one component (`mysql`, `redis`), by ordinal.
pub async fn component_pods(
    context: &Context,
    namespace: &str,
    cluster: &str,
    component: &str,
) -> Result<Vec<Pod>, kube::Error> {
    let selector =
        format!("app.kubernetes.io/instance={cluster},app.kubernetes.io/component={component}");
    let mut pods = Api::<Pod>::namespaced(context.client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    pods.sort_by_key(|pod| ordinal(&pod.name_any()));
    Ok(pods)
}

/// The pods with ordinals `0..wanted`, when each exists and is Ready.
fn all_ready(pods: Vec<Pod>, wanted: i32) -> Option<Vec<Pod>> {
    let wanted = usize::try_from(wanted).ok().filter(|w| *w > 0)?;
    let pods: Vec<Pod> = pods
        .into_iter()
        .filter(|pod| ordinal(&pod.name_any()) < wanted as u64)
        .collect();
    (pods.len() == wanted && pods.iter().all(is_ready)).then_some(pods)
}

/// A pod Ready and not being deleted (a roll's restart may still say Ready until its
/// server stops).
pub(crate) fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The number at the end of a StatefulSet pod's name (`sns-mysql-2` → 2).
pub fn ordinal(name: &str) -> u64 {
    name.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Where to reach a pod: its IP (CLUSTER MEET takes nothing else), else its DNS name under
/// the headless Service.
pub(crate) fn pod_host(pod: &Pod, service: &str, namespace: &str) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_else(|| format!("{}.{service}.{namespace}.svc", pod.name_any()))
}

/// The pod a host name or IP (as Orchestrator reports it) stands for: an IP matches the
/// pod's IP; a name matches by its first label (`db-1.db.ns.svc.cluster.local` → `db-1`).
pub fn pod_for_host<'p>(host: &str, pods: &'p [Pod]) -> Option<&'p str> {
    let host = host.trim();
    let first_label = host.split('.').next().unwrap_or(host);
    pods.iter()
        .find(|pod| {
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
            ip == Some(host) || pod.metadata.name.as_deref() == Some(first_label)
        })
        .and_then(|pod| pod.metadata.name.as_deref())
}

/// One key of the generated Secret `<cluster>-mysql` (root and replication passwords).
pub(crate) async fn mysql_secret(
    context: &Context,
    namespace: &str,
    cluster: &str,
    key: &str,
) -> Result<String, String> {
    let name = format!("{cluster}-mysql");
    let secret = Api::<Secret>::namespaced(context.client.clone(), namespace)
        .get_opt(&name)
        .await
        .map_err(|e| format!("cannot read Secret {name}: {e}"))?;
    secret
        .and_then(|s| s.data)
        .and_then(|mut data| data.remove(key))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
        .ok_or_else(|| format!("Secret {name} has no {key}"))
}

/// The account the operator reads replication with: root, whose password the operator
/// generated into `<cluster>-mysql`.
pub(crate) async fn mysql_login(
    context: &Context,
    namespace: &str,
    cluster: &str,
) -> Result<MysqlLogin, String> {
    let password = mysql_secret(context, namespace, cluster, "root-password").await?;
    Ok(MysqlLogin {
        user: "root".into(),
        password: SecretString::from(password),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
            pod_ip: Some(ip.into()),
            ..Default::default()
        });
        pod
    }

    #[test]
    fn hosts_map_to_pods_by_ip_or_first_label() {
        let pods = vec![
            pod("sns-mysql-0", "10.244.0.5"),
            pod("sns-mysql-1", "10.244.1.7"),
        ];
        assert_eq!(pod_for_host("10.244.1.7", &pods), Some("sns-mysql-1"));
        assert_eq!(
            pod_for_host("sns-mysql-0.sns-mysql.prod.svc.cluster.local", &pods),
            Some("sns-mysql-0")
        );
        assert_eq!(pod_for_host("sns-mysql-1", &pods), Some("sns-mysql-1"));
        assert_eq!(pod_for_host("other-0.other", &pods), None);
    }

    #[test]
    fn ordinals_sort_numerically() {
        assert!(ordinal("db-2") < ordinal("db-10"));
        assert_eq!(ordinal("no-ordinal-x"), u64::MAX);
    }
}
