//! The SnsCluster's status: conditions from the children's readiness and what the data plane
//! says (`health::Report`), and an Event whenever Ready or Degraded changes.
//!
//! ```text
//! ApiReady          API Deployment's ready replicas
//! MysqlReady        StatefulSet ready, then: a primary known, every replica replicating within the lag limit
//!                   (while a new server receives its copy, reason Cloning says how far it got)
//! RedisReady        StatefulSet ready, then: the Redis Cluster formed and cluster_state ok
//! OrchestratorReady Orchestrator's StatefulSet ready (each node ready has a raft leader)
//! ProxysqlReady     ProxySQL's Deployment ready (when ProxySQL is enabled)
//! MonitoringReady   Prometheus, Alertmanager and Grafana ready (when monitoring, or Grafana, is enabled)
//! Ready             all of them;  Progressing  not all of them yet
//! Degraded     something that worked has failed (replication stopped or lagging, cluster_state fail)
//! BackupReady  (with spec.backup; not part of Ready) the last scheduled backup is in the bucket
//! BinlogArchiveReady (with spec.backup; not part of Ready) the primary's binary logs are
//!              archived (backup::archive)
//! ```
//!
//! A condition's message says why it waits; its transition time only moves when its status
//! does, so a cluster at rest gets no status writes. A child that does not exist yet counts
//! as 0 ready; a failed read fails the reconcile (retried) rather than passing for 0, which
//! would flap the conditions, write the status twice and publish NotReady.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Client, Resource, ResourceExt};

use crate::context::Context;
use crate::controller::Error;
use crate::crd::{ApiStatus, Condition, RedisStatus, SnsCluster, SnsClusterStatus};
use crate::health::{self, Health};

/// Reads the children's state, with what the data plane says, into the cluster's status.
pub async fn observe(
    client: &Client,
    cluster: &SnsCluster,
    namespace: &str,
    report: &health::Report,
    backup: Option<crate::backup::BackupObservation>,
    operator_image: &str,
) -> Result<SnsClusterStatus, Error> {
    let name = cluster.name_any();
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace);
    let stateful_sets = Api::<StatefulSet>::namespaced(client.clone(), namespace);
    // `get_opt`: NotFound (not created yet) is `None`, any other failure an error.
    let deployment_ready = async |component: &str| -> Result<(i32, i32), Error> {
        let deployment = deployments
            .get_opt(&format!("{name}-{component}"))
            .await
            .map_err(Error::observe("reading a Deployment"))?;
        let wanted = deployment
            .as_ref()
            .and_then(|d| d.spec.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or(0);
        let ready = deployment
            .and_then(|d| d.status)
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        Ok((ready, wanted))
    };
    let (api_ready, _) = deployment_ready("api").await?;
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
            .map_err(Error::observe("reading the MySQL StatefulSet"))?,
    );
    let redis = sts_ready(
        stateful_sets
            .get_opt(&format!("{name}-redis"))
            .await
            .map_err(Error::observe("reading the Redis StatefulSet"))?,
    );
    let orchestrator = sts_ready(
        stateful_sets
            .get_opt(&format!("{name}-orchestrator"))
            .await
            .map_err(Error::observe("reading the Orchestrator StatefulSet"))?,
    );
    let proxysql = if cluster.spec.mysql.proxysql.enabled {
        Some(deployment_ready("proxysql").await?)
    } else {
        None
    };
    let monitoring = if cluster.spec.monitoring.enabled {
        let mut components = vec!["prometheus", "alertmanager"];
        if cluster.spec.monitoring.grafana.enabled {
            components.push("grafana");
        }
        let mut waiting = Vec::new();
        for component in components {
            let (ready, wanted) = deployment_ready(component).await?;
            if wanted == 0 || ready < wanted {
                waiting.push(format!("{component} {ready} of {wanted} ready"));
            }
        }
        Some(waiting)
    } else {
        None
    };
    let previous = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let mut conditions = Vec::new();
    let mut component = |type_: &str, ready: bool, waiting: String, data_plane: &Health| {
        let (status, reason, message) = match (ready, data_plane) {
            // A new MySQL server receiving its copy: how far it got says more than a count.
            (
                false,
                Health::Waiting {
                    reason: "Cloning",
                    message,
                },
            ) => ("False", "Cloning", message.clone()),
            (false, _) => ("False", "Waiting", waiting),
            (true, Health::Healthy) => ("True", "Ready", format!("{type_} is ready")),
            // Pods ready, data plane not (yet): say why.
            (true, Health::Waiting { reason, message } | Health::Failing { reason, message }) => {
                ("False", *reason, message.clone())
            }
            (true, Health::NotChecked) => ("False", "Waiting", waiting),
        };
        conditions.push(condition(
            &previous, type_, status, reason, &message, generation,
        ));
        status == "True"
    };
    let api_ok = component(
        "ApiReady",
        api_ready >= cluster.spec.api.replicas,
        format!(
            "{api_ready} of {} API pods are ready",
            cluster.spec.api.replicas
        ),
        &Health::Healthy,
    );
    let mysql_ok = component(
        "MysqlReady",
        mysql.1 > 0 && mysql.0 >= mysql.1,
        format!("{} of {} MySQL servers are ready", mysql.0, mysql.1),
        &report.mysql,
    );
    let redis_ok = component(
        "RedisReady",
        redis.1 > 0 && redis.0 >= redis.1,
        format!("{} of {} Redis nodes are ready", redis.0, redis.1),
        &report.redis,
    );
    let orchestrator_ok = component(
        "OrchestratorReady",
        orchestrator.1 > 0 && orchestrator.0 >= orchestrator.1,
        format!(
            "{} of {} Orchestrator nodes are ready",
            orchestrator.0, orchestrator.1
        ),
        &Health::Healthy,
    );
    let proxysql_ok = proxysql.is_none_or(|(ready, wanted)| {
        component(
            "ProxysqlReady",
            wanted > 0 && ready >= wanted,
            format!("{ready} of {wanted} ProxySQL pods are ready"),
            &Health::Healthy,
        )
    });
    let monitoring_ok = monitoring.is_none_or(|waiting| {
        component(
            "MonitoringReady",
            waiting.is_empty(),
            format!("monitoring is not ready: {}", waiting.join(", ")),
            &Health::Healthy,
        )
    });
    let all = api_ok && mysql_ok && redis_ok && orchestrator_ok && proxysql_ok && monitoring_ok;
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
    // Degraded: something that worked has failed (not: something is still starting).
    let failures: Vec<(&str, &str)> = [&report.mysql, &report.redis]
        .into_iter()
        .filter_map(|health| match health {
            Health::Failing { reason, message } => Some((*reason, message.as_str())),
            _ => None,
        })
        .collect();
    let degraded = match failures.first() {
        None => condition(
            &previous,
            "Degraded",
            "False",
            "NoFailure",
            "no component has failed",
            generation,
        ),
        Some((reason, _)) => condition(
            &previous,
            "Degraded",
            "True",
            reason,
            &failures
                .iter()
                .map(|(_, message)| *message)
                .collect::<Vec<_>>()
                .join("; "),
            generation,
        ),
    };
    let mut all_conditions = vec![ready, progressing, degraded];
    all_conditions.extend(conditions);
    // Backups say nothing about whether the cluster serves: not part of Ready.
    if let Some(backup) = &backup {
        all_conditions.push(condition(
            &previous,
            "BackupReady",
            if backup.ready { "True" } else { "False" },
            backup.reason,
            &backup.message,
            generation,
        ));
        all_conditions.push(condition(
            &previous,
            "BinlogArchiveReady",
            if backup.archive.ready {
                "True"
            } else {
                "False"
            },
            backup.archive.reason,
            &backup.archive.message,
            generation,
        ));
    }
    Ok(SnsClusterStatus {
        observed_generation: generation,
        conditions: all_conditions,
        api: ApiStatus {
            ready_replicas: api_ready,
        },
        // Compared, never applied: failover::record writes it.
        mysql: previous.mysql.clone(),
        redis: RedisStatus {
            cluster_state: report
                .redis_state
                .clone()
                .or_else(|| previous.redis.cluster_state.clone()),
        },
        backup: backup.map(|b| b.status),
        // Kept once set: the restore's init container stays what it was at creation.
        restore_image: previous.restore_image.clone().or_else(|| {
            cluster.spec.restore.as_ref().map(|restore| {
                restore
                    .image
                    .clone()
                    .unwrap_or_else(|| operator_image.to_owned())
            })
        }),
    })
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

/// An Event on the cluster for each change of Ready or Degraded (a condition appearing as
/// not degraded is no news).
pub async fn announce_transitions(
    context: &Context,
    cluster: &SnsCluster,
    status: &SnsClusterStatus,
) {
    let before = |type_: &str| {
        cluster
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
            .map(|c| c.status.clone())
    };
    for condition in &status.conditions {
        let was = before(&condition.type_);
        if was.as_deref() == Some(condition.status.as_str()) {
            continue;
        }
        let is_true = condition.status == "True";
        let (type_, reason) = match (condition.type_.as_str(), is_true) {
            ("Ready", true) => (EventType::Normal, "Ready"),
            ("Ready", false) => (EventType::Normal, "NotReady"),
            ("Degraded", true) => (EventType::Warning, "Degraded"),
            ("Degraded", false) if was.is_some() => (EventType::Normal, "Recovered"),
            _ => continue,
        };
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(condition.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(error) = context
            .recorder
            .publish(&event, &cluster.object_ref(&()))
            .await
        {
            tracing::warn!(cluster = %cluster.name_any(), %error, reason, "could not publish an event");
        }
    }
}
