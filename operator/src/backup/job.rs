//! One backup: the donor chosen, its copy streamed to the bucket, the record written, old
//! backups deleted.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use sqlx::Connection;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use tokio::io::AsyncWriteExt;

use super::bucket::{
    BackupRecord, Bucket, BucketSettings, PART_BYTES, backups_prefix, expired, read_part,
};
use crate::reconcile::build::{CLONE_PORT, MYSQL_PORT};

/// What the copy's last file is named (donor.sh sends it once mariadb-backup finished):
/// a stream without it was cut short.
const COMPLETION_MARK: &[u8] = b"sns-copy-complete";

/// How long the donor may stay silent before the copy is given up.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// Flags of `sns-operator backup` (the CronJob sets them from the SnsCluster and its
/// Secrets).
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The SnsCluster.
    #[arg(long, env = "SNS_CLUSTER")]
    pub cluster: String,
    /// The MySQL StatefulSet (`<cluster>-mysql`), whose pods are `<name>-N`.
    #[arg(long, env = "SNS_MYSQL_STATEFULSET")]
    pub stateful_set: String,
    /// Its headless Service.
    #[arg(long, env = "SNS_MYSQL_SERVICE")]
    pub service: String,
    /// How many servers it runs.
    #[arg(long, env = "SNS_MYSQL_SERVERS")]
    pub servers: u32,
    /// The monitor account's password (it reads `@@read_only`).
    #[arg(long, env = "MONITOR_PASSWORD", hide_env_values = true)]
    pub monitor_password: String,
    /// The replication password, which the clone donor asks for.
    #[arg(long, env = "REPLICATION_PASSWORD", hide_env_values = true)]
    pub replication_password: String,
    /// S3 endpoint URL.
    #[arg(long, env = "BACKUP_S3_ENDPOINT")]
    pub endpoint: String,
    /// Bucket.
    #[arg(long, env = "BACKUP_S3_BUCKET")]
    pub bucket: String,
    /// Region.
    #[arg(long, env = "BACKUP_S3_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Key prefix before `<cluster>/mysql/`.
    #[arg(long, env = "BACKUP_S3_PREFIX", default_value = "")]
    pub prefix: String,
    /// Access key id.
    #[arg(long, env = "BACKUP_S3_ACCESS_KEY", hide_env_values = true)]
    pub access_key: String,
    /// Secret access key.
    #[arg(long, env = "BACKUP_S3_SECRET_KEY", hide_env_values = true)]
    pub secret_key: String,
    /// Complete backups to keep.
    #[arg(long, env = "BACKUP_KEEP", default_value_t = 7)]
    pub keep: u32,
}

/// Takes one backup; an error means none was recorded.
pub async fn run(args: BackupArgs) -> anyhow::Result<BackupRecord> {
    let started = chrono::Utc::now();
    let id = started.format("%Y%m%d-%H%M%S").to_string();
    let settings = BucketSettings {
        endpoint: args.endpoint.clone(),
        bucket: args.bucket.clone(),
        region: args.region.clone(),
        prefix: args.prefix.clone(),
        access_key: args.access_key.clone(),
        secret_key: args.secret_key.clone(),
    };
    let bucket = Bucket::new(&settings);
    let base = backups_prefix(&args.prefix, &args.cluster);
    let donor = choose_donor(&args).await?;
    tracing::info!(%donor, %id, "taking a backup");
    let key = format!("{base}{id}/data.xbstream");
    let bytes = copy_to_bucket(&args, &donor, &id, &bucket, &key).await?;
    let record = BackupRecord {
        id: id.clone(),
        cluster: args.cluster.clone(),
        donor: donor.clone(),
        bytes,
        started_at: started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    bucket
        .put(
            &format!("{base}{id}/backup.json"),
            serde_json::to_vec_pretty(&record)?,
            "application/json",
        )
        .await
        .context("writing backup.json")?;
    tracing::info!(%id, bytes, %donor, "backup complete");
    let keys = bucket.keys(&base).await.context("listing backups")?;
    let old = expired(&keys, &base, usize::try_from(args.keep)?);
    if !old.is_empty() {
        bucket.delete(&old).await.context("deleting old backups")?;
        tracing::info!(objects = old.len(), keep = args.keep, "deleted old backups");
    }
    Ok(record)
}

/// The server to copy: a replica (read-only) that answers, the highest ordinal first (the
/// last to be promoted), else the primary.
async fn choose_donor(args: &BackupArgs) -> anyhow::Result<String> {
    let mut writable = None;
    for ordinal in (0..args.servers).rev() {
        let host = format!("{}-{ordinal}.{}", args.stateful_set, args.service);
        let options = MySqlConnectOptions::new()
            .host(&host)
            .port(MYSQL_PORT as u16)
            .username("monitor")
            .password(&args.monitor_password);
        let read_only = tokio::time::timeout(Duration::from_secs(5), async {
            let mut conn = MySqlConnection::connect_with(&options).await?;
            let read_only: i64 = sqlx::query_scalar("SELECT @@global.read_only")
                .fetch_one(&mut conn)
                .await?;
            let _ = conn.close().await;
            Ok::<_, sqlx::Error>(read_only)
        })
        .await;
        match read_only {
            Ok(Ok(1)) => return Ok(host),
            Ok(Ok(_)) => writable = writable.or(Some(host)),
            Ok(Err(error)) => tracing::warn!(%host, %error, "server does not answer"),
            Err(_) => tracing::warn!(%host, "server does not answer within 5 s"),
        }
    }
    writable.ok_or_else(|| anyhow::anyhow!("no MySQL server of {} answers", args.cluster))
}

/// Streams `donor`'s copy into `key`; returns its size. The upload is aborted unless the
/// copy ends with the donor's completion mark.
async fn copy_to_bucket(
    args: &BackupArgs,
    donor: &str,
    id: &str,
    bucket: &Bucket,
    key: &str,
) -> anyhow::Result<u64> {
    let mut stream = tokio::net::TcpStream::connect((donor, CLONE_PORT as u16))
        .await
        .with_context(|| format!("connecting to {donor}'s clone donor"))?;
    stream
        .write_all(format!("CLONE {} backup-{id}\n", args.replication_password).as_bytes())
        .await?;
    let mut upload = bucket
        .start_upload(key)
        .await
        .context("starting the upload")?;
    let copied = async {
        let mut total: u64 = 0;
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let part = read_part(&mut stream, READ_TIMEOUT, || "the donor".to_owned()).await?;
            if part.is_empty() {
                break;
            }
            total += part.len() as u64;
            // The mark is in the last chunk's header: keep the end of what came.
            tail.extend_from_slice(&part[part.len().saturating_sub(4096)..]);
            if tail.len() > 8192 {
                tail.drain(..tail.len() - 4096);
            }
            let last = part.len() < PART_BYTES;
            upload.part(part).await.context("uploading a part")?;
            if last {
                break;
            }
        }
        anyhow::ensure!(total > 0, "{donor}'s clone donor sent nothing (refused?)");
        anyhow::ensure!(
            tail.windows(COMPLETION_MARK.len())
                .any(|window| window == COMPLETION_MARK),
            "{donor}'s copy was cut short after {total} bytes"
        );
        Ok(total)
    }
    .await;
    match copied {
        Ok(total) => {
            upload.complete().await.context("completing the upload")?;
            Ok(total)
        }
        Err(error) => {
            upload.abort().await;
            Err(error)
        }
    }
}
