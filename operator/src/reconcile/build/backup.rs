//! The MySQL backup schedule (`spec.backup`): a CronJob whose pod runs `sns-operator
//! backup` (`crate::backup`) with the cluster's names, the passwords it needs and the
//! bucket's keys, all from Secrets.
//!
//! ```text
//! CronJob <c>-mysql-backup   spec.backup.schedule, one run at a time (a run still going
//!                            when the next is due makes it wait), 3 finished runs kept
//! ```
//!
//! Take a backup now: `kubectl create job --from=cronjob/<c>-mysql-backup <name>`.

use serde_json::json;

use super::cluster::{BuildError, BuildInputs, ClusterObjects};
use super::mysql;
use super::naming::{Naming, secret_env, typed};
use super::proxysql;
use crate::crd::{BackupSpec, SnsCluster};

pub(super) const COMPONENT: &str = "mysql-backup";

/// Where the operator's image has its binary (operator/Dockerfile).
pub(super) const OPERATOR_BINARY: &str = "/usr/local/bin/sns-operator";

/// Adds the CronJob to `objects`.
pub(super) fn build(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    backup: &BackupSpec,
    inputs: &BuildInputs,
    objects: &mut ClusterObjects,
) -> Result<(), BuildError> {
    let name = naming.name(COMPONENT);
    let mysql_secret = naming.name(mysql::SECRET);
    let s3 = &backup.s3;
    let image = backup
        .image
        .clone()
        .unwrap_or_else(|| inputs.operator_image.clone());
    let env = json!([
        { "name": "SNS_CLUSTER", "value": naming.cluster },
        { "name": "SNS_MYSQL_STATEFULSET", "value": naming.name(mysql::COMPONENT) },
        { "name": "SNS_MYSQL_SERVICE", "value": naming.name(mysql::COMPONENT) },
        { "name": "SNS_MYSQL_SERVERS", "value": mysql::servers(cluster).to_string() },
        secret_env("REPLICATION_PASSWORD", &mysql_secret, mysql::REPLICATION_PASSWORD),
        secret_env("MONITOR_PASSWORD", &naming.name(proxysql::SECRET), proxysql::MONITOR_PASSWORD),
        { "name": "BACKUP_S3_ENDPOINT", "value": s3.endpoint },
        { "name": "BACKUP_S3_BUCKET", "value": s3.bucket },
        { "name": "BACKUP_S3_REGION", "value": s3.region },
        { "name": "BACKUP_S3_PREFIX", "value": s3.prefix },
        secret_env("BACKUP_S3_ACCESS_KEY", &s3.credentials_secret, "access-key"),
        secret_env("BACKUP_S3_SECRET_KEY", &s3.credentials_secret, "secret-key"),
        { "name": "BACKUP_KEEP", "value": backup.keep.to_string() },
        { "name": "OPERATOR_LOG_FORMAT", "value": "json" },
    ]);
    objects.cron_jobs.push(typed(
        &format!("CronJob {name}"),
        json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": naming.metadata(&name, COMPONENT),
            "spec": {
                "schedule": backup.schedule,
                "timeZone": "Etc/UTC",
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "spec": {
                        // A failed copy is tried again twice (each run takes a new copy).
                        "backoffLimit": 2,
                        "template": {
                            "metadata": { "labels": naming.labels(COMPONENT) },
                            "spec": {
                                "restartPolicy": "Never",
                                // It talks to MySQL and S3 only, never to Kubernetes.
                                "automountServiceAccountToken": false,
                                "containers": [{
                                    "name": "backup",
                                    "image": image,
                                    // In full: the image's entrypoint runs the controller.
                                    "command": [OPERATOR_BINARY, "backup"],
                                    "env": env,
                                }],
                            },
                        },
                    },
                },
            },
        }),
    )?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::cluster::fixtures::{build, named};

    #[test]
    fn a_backup_spec_makes_a_schedule_that_runs_the_operators_backup_with_the_buckets_keys() {
        assert!(
            build(json!({})).cron_jobs.is_empty(),
            "no spec.backup, no CronJob"
        );
        let objects = build(json!({"backup": {
            "s3": {"endpoint": "http://s3.local:9000", "bucket": "dumps", "prefix": "db/",
                   "credentialsSecret": "backup-keys"},
            "schedule": "*/30 * * * *", "keep": 3,
        }}));
        let cron = serde_json::to_value(named(&objects.cron_jobs, "prod-mysql-backup")).unwrap();
        assert_eq!(cron["spec"]["schedule"], "*/30 * * * *");
        assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
        let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        let container = &pod["containers"][0];
        assert_eq!(
            container["command"],
            json!(["/usr/local/bin/sns-operator", "backup"])
        );
        assert_eq!(
            container["image"],
            crate::reconcile::build::DEFAULT_OPERATOR_IMAGE
        );
        let env = container["env"].to_string();
        for expected in [
            "\"BACKUP_S3_PREFIX\",\"value\":\"db/\"",
            "\"BACKUP_KEEP\",\"value\":\"3\"",
            "\"SNS_MYSQL_SERVERS\",\"value\":\"3\"",
            "backup-keys",
            "replication-password",
        ] {
            assert!(env.contains(expected), "{expected} in {env}");
        }
    }
}
