//! What the bucket says about a cluster's backups, for its status: the newest complete
//! backup, and whether the last run the schedule started left one.

use std::time::Duration;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::archive::{ArchiveJob, ArchiveOutcome, archive_prefix, is_failing};
use super::bucket::{BackupRecord, Bucket, BucketSettings, backups_prefix, complete_backups};
use crate::context::Context;
use crate::crd::{BackupBucket, BackupSpec, BackupStatus, SnsCluster};
use crate::dataplane::MysqlServer;
use crate::failover::ROLE_LABEL;
use crate::reconcile::build::CLONE_PORT;

/// How long each look at the bucket may take.
const BUCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// A run gets this long after its scheduled time to leave a complete backup before it
/// counts as failed (the job's pod starting, and CronJob's own delay, included).
const RUN_GRACE: chrono::Duration = chrono::Duration::minutes(2);

/// `status.backup` and the `BackupReady` and `BinlogArchiveReady` conditions.
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
    /// The binary log archive.
    pub archive: ArchiveObservation,
}

/// The `BinlogArchiveReady` condition.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchiveObservation {
    /// Whether the archive keeps up with the primary.
    pub ready: bool,
    /// One word, for the condition.
    pub reason: &'static str,
    /// What it means.
    pub message: String,
}

/// Looks at the cluster's backups and starts a pass of its binary log archive: `None`
/// without `spec.backup`.
pub async fn observe(
    context: &Context,
    cluster: &SnsCluster,
    namespace: &str,
) -> Option<BackupObservation> {
    let name = cluster.name_any();
    let key = format!("{namespace}/{name}");
    let Some(spec) = cluster.spec.backup.as_ref() else {
        context.archivers.forget(&key);
        return None;
    };
    let settings = bucket_settings(context, &spec.s3, namespace).await;
    if let Ok(settings) = &settings {
        start_archiving(context, cluster, spec, namespace, settings).await;
    }
    let newest = match settings {
        Ok(settings) => newest_backup(&settings, &name).await,
        Err(message) => Err(message),
    };
    let mut observation = match newest {
        Err(message) => BackupObservation {
            status: cluster
                .status
                .as_ref()
                .and_then(|s| s.backup.clone())
                .unwrap_or_default(),
            ready: false,
            reason: "BucketUnreadable",
            message: message.clone(),
            archive: ArchiveObservation {
                ready: false,
                reason: "BucketUnreadable",
                message,
            },
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
    if observation.reason != "BucketUnreadable" {
        let outcome = context.archivers.outcome(&key);
        observation.archive = judge_archive(
            outcome.as_ref(),
            Duration::from_secs(u64::from(spec.archive_interval_seconds)),
            chrono::Utc::now(),
        );
        if let Some(report) = outcome.and_then(|o| o.report) {
            observation.status.archived_gtid = report.gtid;
            observation.status.archived_transaction_time = report.transaction_time.map(format_time);
            observation.status.archive_complete_time = report
                .complete_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            observation.status.archive_server = Some(report.server);
        } else if let Some(previous) = cluster.status.as_ref().and_then(|s| s.backup.as_ref()) {
            // An operator restarted keeps saying what the archive held until its first pass.
            observation.status.archived_gtid = previous.archived_gtid.clone();
            observation.status.archived_transaction_time =
                previous.archived_transaction_time.clone();
            observation.status.archive_complete_time = previous.archive_complete_time.clone();
            observation.status.archive_server = previous.archive_server.clone();
        }
    }
    // No backup yet is what a new cluster has until its schedule comes: said in the
    // condition, not alerted on.
    let failing = i64::from(!observation.ready && observation.reason != "NoBackupYet");
    context
        .metrics
        .backup_failing
        .with_label_values(&[&key])
        .set(failing);
    let archive_failing =
        i64::from(!observation.archive.ready && observation.archive.reason != "NotArchivedYet");
    context
        .metrics
        .binlog_archive_failing
        .with_label_values(&[&key])
        .set(archive_failing);
    Some(observation)
}

/// The bucket's address and keys (from the credentials Secret).
async fn bucket_settings(
    context: &Context,
    s3: &BackupBucket,
    namespace: &str,
) -> Result<BucketSettings, String> {
    let secret_name = &s3.credentials_secret;
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
    Ok(BucketSettings {
        endpoint: s3.endpoint.clone(),
        bucket: s3.bucket.clone(),
        region: s3.region.clone(),
        prefix: s3.prefix.clone(),
        access_key: key("access-key")?,
        secret_key: key("secret-key")?,
    })
}

/// Starts a pass of the archive from the Ready pod labelled role=primary (none while there
/// is none: the condition says so once it lasts).
async fn start_archiving(
    context: &Context,
    cluster: &SnsCluster,
    spec: &BackupSpec,
    namespace: &str,
    settings: &BucketSettings,
) {
    let name = cluster.name_any();
    let Ok(pods) = crate::health::component_pods(context, namespace, &name, "mysql").await else {
        return;
    };
    let Some(primary) = pods.iter().find(|pod| {
        pod.labels()
            .get(ROLE_LABEL)
            .is_some_and(|role| role == "primary")
            && crate::health::is_ready(pod)
    }) else {
        return;
    };
    let secret = format!("{name}-mysql");
    let Ok(password) =
        crate::health::mysql_secret(context, namespace, &name, "replication-password").await
    else {
        return;
    };
    context.archivers.start(
        &format!("{namespace}/{name}"),
        ArchiveJob {
            bucket: Bucket::new(settings),
            base: archive_prefix(&settings.prefix, &name),
            donor: MysqlServer {
                name: primary.name_any(),
                host: crate::health::pod_host(primary, &secret, namespace),
                port: CLONE_PORT as u16,
            },
            password,
            interval: Duration::from_secs(u64::from(spec.archive_interval_seconds)),
            data_plane: context.data_plane.clone(),
        },
    );
}

/// Complete backups in the bucket, and the newest one's record.
async fn newest_backup(
    settings: &BucketSettings,
    cluster: &str,
) -> Result<(u32, Option<BackupRecord>), String> {
    let bucket = Bucket::new(settings);
    let base = backups_prefix(&settings.prefix, cluster);
    let where_ = format!("s3://{}/{base}", settings.bucket);
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

/// `BinlogArchiveReady` from the last passes.
fn judge_archive(
    outcome: Option<&ArchiveOutcome>,
    interval: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> ArchiveObservation {
    let Some(outcome) = outcome else {
        return ArchiveObservation {
            ready: false,
            reason: "NotArchivedYet",
            message: "the binary log archive starts once the primary is Ready".into(),
        };
    };
    let error = outcome.error.as_deref().unwrap_or_default();
    if is_failing(outcome, interval, now) {
        let since = outcome
            .failing_since
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        return ArchiveObservation {
            ready: false,
            reason: "ArchiveFailing",
            message: format!("archiving the binary log fails since {since}: {error}"),
        };
    }
    match &outcome.report {
        Some(report) => ArchiveObservation {
            ready: true,
            reason: "Archived",
            message: format!(
                "binary logs of {} archived up to {}{}; complete at {}{}",
                report.server,
                report.gtid.as_deref().unwrap_or("no transaction yet"),
                report
                    .transaction_time
                    .map(|t| format!(" (written {})", format_time(t)))
                    .unwrap_or_default(),
                report.complete_at.map_or_else(
                    || "no time yet".to_owned(),
                    |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                if error.is_empty() {
                    String::new()
                } else {
                    format!("; the last pass failed: {error}")
                }
            ),
        },
        None => ArchiveObservation {
            ready: false,
            reason: "NotArchivedYet",
            message: format!("the first pass of the binary log archive failed: {error}"),
        },
    }
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
        ..BackupStatus::default()
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
        archive: judge_archive(None, Duration::ZERO, now),
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

    #[test]
    fn the_archive_is_failing_only_once_passes_have_failed_for_three_intervals() {
        use super::super::archive::{ArchiveOutcome, ArchiveReport};
        let interval = Duration::from_secs(60);
        let now = at("2026-12-03T12:10:00Z");
        assert_eq!(judge_archive(None, interval, now).reason, "NotArchivedYet");
        let report = ArchiveReport {
            gtid: Some("0-100-57".into()),
            transaction_time: Some(at("2026-12-03T12:08:00Z").timestamp()),
            complete_at: Some(at("2026-12-03T12:09:30Z")),
            server: "prod-mysql-1".into(),
        };
        let fine = ArchiveOutcome {
            report: Some(report.clone()),
            ..ArchiveOutcome::default()
        };
        let judged = judge_archive(Some(&fine), interval, now);
        assert!(judged.ready);
        assert!(
            judged.message.contains("prod-mysql-1") && judged.message.contains("0-100-57"),
            "{}",
            judged.message
        );
        // A failover's few failed passes do not count; three intervals of them do.
        let failing = |since: &str| ArchiveOutcome {
            report: Some(report.clone()),
            failing_since: Some(at(since)),
            error: Some("clone donor 10.0.0.7:3307: connection refused".into()),
        };
        let blip = judge_archive(Some(&failing("2026-12-03T12:09:00Z")), interval, now);
        assert!(blip.ready, "{}", blip.message);
        let stopped = judge_archive(Some(&failing("2026-12-03T12:06:00Z")), interval, now);
        assert!(!stopped.ready);
        assert_eq!(stopped.reason, "ArchiveFailing");
        assert!(
            stopped.message.contains("connection refused"),
            "{}",
            stopped.message
        );
    }
}
