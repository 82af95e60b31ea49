//! What the bucket says about a cluster's backups, for its status: the newest complete
//! backup, and whether the last run the schedule started left one.

use std::time::Duration;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::bucket::{BackupRecord, Bucket, BucketSettings, backups_prefix, complete_backups};
use crate::context::Context;
use crate::crd::{BackupSpec, BackupStatus, SnsCluster};

/// How long each look at the bucket may take.
const BUCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// A run gets this long after its scheduled time to leave a complete backup before it
/// counts as failed (the job's pod starting, and CronJob's own delay, included).
const RUN_GRACE: chrono::Duration = chrono::Duration::minutes(2);

/// `status.backup` and the `BackupReady` condition.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupObservation {
    /// What the bucket holds.
    pub status: BackupStatus,
    /// Whether the newest scheduled run left a backup (no run yet: true when one exists).
    pub ready: bool,
    /// One word, for the condition.
    pub reason: &'static str,
    /// What it means.
    pub message: String,
}

/// Looks at the cluster's backups: `None` without `spec.backup`.
pub async fn observe(
    context: &Context,
    cluster: &SnsCluster,
    namespace: &str,
) -> Option<BackupObservation> {
    let spec = cluster.spec.backup.as_ref()?;
    let name = cluster.name_any();
    let observation = match newest_backup(context, spec, namespace, &name).await {
        Err(message) => BackupObservation {
            status: cluster
                .status
                .as_ref()
                .and_then(|s| s.backup.clone())
                .unwrap_or_default(),
            ready: false,
            reason: "BucketUnreadable",
            message,
        },
        Ok((count, newest)) => {
            let schedule = Api::<CronJob>::namespaced(context.client.clone(), namespace)
                .get_opt(&format!("{name}-mysql-backup"))
                .await
                .ok()
                .flatten()
                .and_then(|cron| cron.status);
            let last_scheduled = schedule
                .as_ref()
                .and_then(|s| s.last_schedule_time.as_ref())
                .map(|t| t.0.as_second());
            let running = schedule
                .as_ref()
                .and_then(|s| s.active.as_ref())
                .is_some_and(|active| !active.is_empty());
            judge(
                spec,
                &name,
                count,
                newest,
                last_scheduled,
                running,
                chrono::Utc::now(),
            )
        }
    };
    // No backup yet is what a new cluster has until its schedule comes: said in the
    // condition, not alerted on.
    let failing = i64::from(!observation.ready && observation.reason != "NoBackupYet");
    context
        .metrics
        .backup_failing
        .with_label_values(&[&format!("{namespace}/{name}")])
        .set(failing);
    Some(observation)
}

/// Complete backups in the bucket, and the newest one's record.
async fn newest_backup(
    context: &Context,
    spec: &BackupSpec,
    namespace: &str,
    cluster: &str,
) -> Result<(u32, Option<BackupRecord>), String> {
    let secret_name = &spec.s3.credentials_secret;
    let secret = Api::<Secret>::namespaced(context.client.clone(), namespace)
        .get_opt(secret_name)
        .await
        .map_err(|e| format!("cannot read Secret {secret_name}: {e}"))?
        .ok_or_else(|| format!("Secret {secret_name} does not exist"))?;
    let data = secret.data.unwrap_or_default();
    let key = |name: &str| {
        data.get(name)
            .map(|value| String::from_utf8_lossy(&value.0).into_owned())
            .ok_or_else(|| format!("Secret {secret_name} has no {name}"))
    };
    let bucket = Bucket::new(&BucketSettings {
        endpoint: spec.s3.endpoint.clone(),
        bucket: spec.s3.bucket.clone(),
        region: spec.s3.region.clone(),
        prefix: spec.s3.prefix.clone(),
        access_key: key("access-key")?,
        secret_key: key("secret-key")?,
    });
    let base = backups_prefix(&spec.s3.prefix, cluster);
    let where_ = format!("s3://{}/{base}", spec.s3.bucket);
    let keys = tokio::time::timeout(BUCKET_TIMEOUT, bucket.keys(&base))
        .await
        .map_err(|_| format!("listing {where_} took over {BUCKET_TIMEOUT:?}"))?
        .map_err(|e| format!("cannot list {where_}: {e}"))?;
    let complete = complete_backups(&keys, &base);
    let count = u32::try_from(complete.len()).unwrap_or(u32::MAX);
    let Some(newest) = complete.last() else {
        return Ok((0, None));
    };
    let record_key = format!("{base}{newest}/backup.json");
    let record = tokio::time::timeout(BUCKET_TIMEOUT, bucket.get(&record_key))
        .await
        .map_err(|_| format!("reading {record_key} took over {BUCKET_TIMEOUT:?}"))?
        .map_err(|e| format!("cannot read {record_key}: {e}"))?;
    let record: BackupRecord = serde_json::from_slice(&record)
        .map_err(|e| format!("{record_key} is no backup record: {e}"))?;
    Ok((count, Some(record)))
}

/// The condition from what the bucket holds and when the schedule last started a run
/// (seconds since the epoch).
fn judge(
    spec: &BackupSpec,
    cluster: &str,
    count: u32,
    newest: Option<BackupRecord>,
    last_scheduled: Option<i64>,
    running: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> BackupObservation {
    let started = |record: &BackupRecord| {
        chrono::DateTime::parse_from_rfc3339(&record.started_at)
            .map(|t| t.timestamp())
            .unwrap_or(0)
    };
    let status = BackupStatus {
        last_backup: newest.as_ref().map(|r| r.id.clone()),
        last_backup_time: newest.as_ref().map(|r| r.finished_at.clone()),
        last_backup_bytes: newest.as_ref().map(|r| r.bytes),
        last_backup_donor: newest.as_ref().map(|r| r.donor.clone()),
        backups: count,
    };
    // The newest scheduled run is judged once its grace is over and it no longer runs.
    let overdue = last_scheduled
        .filter(|scheduled| !running && now.timestamp() > scheduled + RUN_GRACE.num_seconds());
    let (ready, reason, message) = match (&newest, overdue) {
        (Some(record), Some(scheduled)) if started(record) + 60 < scheduled => (
            false,
            "BackupFailed",
            format!(
                "the run scheduled at {} left no complete backup; the newest is {} ({})",
                format_time(scheduled),
                record.id,
                record.finished_at
            ),
        ),
        (None, Some(scheduled)) => (
            false,
            "BackupFailed",
            format!(
                "the run scheduled at {} left no complete backup, and there is none",
                format_time(scheduled)
            ),
        ),
        (Some(record), _) => (
            true,
            "BackedUp",
            format!(
                "backup {} ({} MiB, from {}) complete at {}; {count} kept",
                record.id,
                record.bytes / (1024 * 1024),
                record.donor,
                record.finished_at
            ),
        ),
        (None, None) => (
            false,
            "NoBackupYet",
            format!(
                "no backup yet: the schedule ({}) takes the first; one now: kubectl create job --from=cronjob/{cluster}-mysql-backup {cluster}-backup-now",
                spec.schedule
            ),
        ),
    };
    BackupObservation {
        status,
        ready,
        reason,
        message,
    }
}

fn format_time(epoch_seconds: i64) -> String {
    chrono::DateTime::from_timestamp(epoch_seconds, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| epoch_seconds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BackupSpec {
        serde_json::from_value(serde_json::json!({
            "s3": {"endpoint": "http://s3", "bucket": "b", "credentialsSecret": "k"},
        }))
        .unwrap()
    }

    fn record(started: &str) -> BackupRecord {
        BackupRecord {
            id: "20261203-030000".into(),
            cluster: "prod".into(),
            donor: "prod-mysql-2.prod-mysql".into(),
            bytes: 50 * 1024 * 1024,
            started_at: started.into(),
            finished_at: started.into(),
        }
    }

    fn at(time: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(time).unwrap().into()
    }

    #[test]
    fn a_scheduled_run_that_left_no_backup_is_a_failure_once_its_grace_is_over() {
        let scheduled = at("2026-12-04T03:00:00Z").timestamp();
        let newest = Some(record("2026-12-03T03:00:05Z"));
        let judged = |now: &str, running: bool| {
            judge(
                &spec(),
                "prod",
                3,
                newest.clone(),
                Some(scheduled),
                running,
                at(now),
            )
        };
        assert!(
            judged("2026-12-04T03:01:00Z", false).ready,
            "within its grace"
        );
        assert!(judged("2026-12-04T03:30:00Z", true).ready, "still running");
        let failed = judged("2026-12-04T03:30:00Z", false);
        assert!(!failed.ready);
        assert_eq!(failed.reason, "BackupFailed");
        assert!(
            failed.message.contains("2026-12-04T03:00:00Z"),
            "{}",
            failed.message
        );

        let done = judge(
            &spec(),
            "prod",
            4,
            Some(record("2026-12-04T03:00:07Z")),
            Some(scheduled),
            false,
            at("2026-12-04T03:30:00Z"),
        );
        assert!(done.ready);
        assert_eq!(done.status.backups, 4);
        assert_eq!(done.status.last_backup_bytes, Some(50 * 1024 * 1024));
    }

    #[test]
    fn before_any_run_a_backup_taken_by_hand_counts_and_none_says_how_to_take_one() {
        let now = at("2026-12-03T12:00:00Z");
        let none = judge(&spec(), "prod", 0, None, None, false, now);
        assert!(!none.ready);
        assert_eq!(none.reason, "NoBackupYet");
        assert!(none.message.contains("cronjob/prod-mysql-backup"));
        let by_hand = judge(
            &spec(),
            "prod",
            1,
            Some(record("2026-12-03T11:00:00Z")),
            None,
            false,
            now,
        );
        assert!(by_hand.ready);
    }
}
