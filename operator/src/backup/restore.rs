//! `sns-operator restore-fetch`: the init container of a restored cluster's MySQL servers
//! (`spec.restore`). On server 0, before its first start, it fetches what start.sh needs to
//! rebuild the data, into the data volume:
//!
//! ```text
//! <data>/.sns-restore/data.xbstream   the backup: the one named, else the newest finished
//!                                     by pointInTime (else the newest)
//! <data>/.sns-restore/binlog/NNNN     with pointInTime: the archived binary logs that can
//!                                     hold transactions after the backup and up to then
//! <data>/.sns-restore/plan            "stop <UTC time>", then one "NNNN <domain> <first
//!                                     sequence> <last sequence>" line per log, in order
//! <data>/.sns-restore/ready           written last: everything above is whole
//! ```
//!
//! start.sh then unpacks and prepares the backup, replays each log from the position the
//! backup holds (mariadb-binlog, GTID start position, stop time), and starts. Every other
//! server waits for server 0 and clones it. A server with data, or not server 0, is left
//! alone; so is a restore the archive cannot reach yet (an error that says how far it
//! reaches: the container is retried).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use tokio::io::AsyncWriteExt;

use super::archive::{ArchiveMark, SegmentRecord, archive_prefix};
use super::bucket::{BackupRecord, Bucket, BucketSettings, backups_prefix, complete_backups};

/// How long before a backup began a transaction in a log may have started and still commit
/// after the copy's consistent point (its log is fetched; replaying skips what the copy
/// holds by GTID).
const LONGEST_TRANSACTION: chrono::Duration = chrono::Duration::hours(1);

/// Flags of `sns-operator restore-fetch` (the MySQL pod's init container sets them from
/// `spec.restore`).
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The pod (`HOSTNAME`): only server 0 (`<name>-0`) restores.
    #[arg(long, env = "HOSTNAME")]
    pub pod: String,
    /// The data directory (the server's volume).
    #[arg(long, env = "SNS_RESTORE_DATA", default_value = "/var/lib/mysql")]
    pub data: PathBuf,
    /// The cluster the backups are of.
    #[arg(long, env = "RESTORE_CLUSTER")]
    pub cluster: String,
    /// The backup id; default: the newest one finished by `point_in_time`, or the newest.
    #[arg(long, env = "RESTORE_BACKUP")]
    pub backup: Option<String>,
    /// RFC 3339.
    #[arg(long, env = "RESTORE_POINT_IN_TIME")]
    pub point_in_time: Option<String>,
    /// S3 endpoint URL.
    #[arg(long, env = "RESTORE_S3_ENDPOINT")]
    pub endpoint: String,
    /// Bucket.
    #[arg(long, env = "RESTORE_S3_BUCKET")]
    pub bucket: String,
    /// Region.
    #[arg(long, env = "RESTORE_S3_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Key prefix before `<cluster>/`.
    #[arg(long, env = "RESTORE_S3_PREFIX", default_value = "")]
    pub prefix: String,
    /// Access key id.
    #[arg(long, env = "RESTORE_S3_ACCESS_KEY", hide_env_values = true)]
    pub access_key: String,
    /// Secret access key.
    #[arg(long, env = "RESTORE_S3_SECRET_KEY", hide_env_values = true)]
    pub secret_key: String,
}

/// What was fetched (none when there was nothing to do).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fetched {
    /// The backup.
    pub backup: String,
    /// Its size.
    pub backup_bytes: u64,
    /// Binary logs to replay.
    pub binlogs: usize,
    /// Replayed up to (excluded), UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
}

/// Fetches the backup and logs when this is server 0 of a cluster with no data yet.
pub async fn fetch(args: RestoreArgs) -> anyhow::Result<Option<Fetched>> {
    if !args.pod.ends_with("-0") {
        tracing::info!(pod = %args.pod, "not server 0: it is cloned from server 0");
        return Ok(None);
    }
    if args.data.join("mysql").is_dir() {
        tracing::info!(data = %args.data.display(), "the server has data: nothing to restore");
        return Ok(None);
    }
    let point = args
        .point_in_time
        .as_deref()
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&chrono::Utc))
                .with_context(|| format!("pointInTime {text:?} is not an RFC 3339 time"))
        })
        .transpose()?;
    let bucket = Bucket::new(&BucketSettings {
        endpoint: args.endpoint.clone(),
        bucket: args.bucket.clone(),
        region: args.region.clone(),
        prefix: args.prefix.clone(),
        access_key: args.access_key.clone(),
        secret_key: args.secret_key.clone(),
    });
    let work = args.data.join(".sns-restore");
    if work.exists() {
        tokio::fs::remove_dir_all(&work).await?;
    }
    tokio::fs::create_dir_all(work.join("binlog")).await?;

    let backups = backups_prefix(&args.prefix, &args.cluster);
    let record = choose_backup(&bucket, &backups, args.backup.as_deref(), point).await?;
    tracing::info!(backup = %record.id, donor = %record.donor, bytes = record.bytes, "restoring a backup");
    let mut plan = String::new();
    let mut logs = Vec::new();
    if let Some(point) = point {
        // To the second: a transaction stamped with the point's second is kept.
        let stop = chrono::DateTime::from_timestamp(point.timestamp() + 1, 0)
            .context("pointInTime is out of range")?;
        let archive = archive_prefix(&args.prefix, &args.cluster);
        logs = logs_to_replay(&bucket, &archive, &record, point, stop).await?;
        plan.push_str(&format!("stop {}\n", stop.format("%Y-%m-%d %H:%M:%S")));
    }
    let backup_bytes = download(
        &bucket,
        &format!("{backups}{}/data.xbstream", record.id),
        &work.join("data.xbstream"),
    )
    .await?;
    for (index, log) in logs.iter().enumerate() {
        let file = format!("{index:04}");
        let key = log.key.as_deref().unwrap_or_default();
        download(&bucket, key, &work.join("binlog").join(&file)).await?;
        let (first, last) = (log.summary.first, log.summary.last);
        let (Some(first), Some(last)) = (first, last) else {
            continue;
        };
        plan.push_str(&format!(
            "{file} {} {} {}\n",
            first.domain, first.sequence, last.sequence
        ));
    }
    tokio::fs::write(work.join("plan"), &plan).await?;
    tokio::fs::write(work.join("ready"), &record.id).await?;
    let fetched = Fetched {
        backup: record.id.clone(),
        backup_bytes,
        binlogs: logs.len(),
        stop: plan
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("stop "))
            .map(str::to_owned),
    };
    tracing::info!(?fetched, "the restore is fetched; start.sh replays it");
    Ok(Some(fetched))
}

/// The backup named, or the newest complete one finished by `point` (or the newest).
async fn choose_backup(
    bucket: &Bucket,
    base: &str,
    named: Option<&str>,
    point: Option<chrono::DateTime<chrono::Utc>>,
) -> anyhow::Result<BackupRecord> {
    let keys = bucket.keys(base).await.context("listing the backups")?;
    let ids = complete_backups(&keys, base);
    let read = |id: String| async move {
        let key = format!("{base}{id}/backup.json");
        let body = bucket
            .get(&key)
            .await
            .with_context(|| format!("reading {key}"))?;
        serde_json::from_slice::<BackupRecord>(&body).with_context(|| format!("reading {key}"))
    };
    if let Some(named) = named {
        anyhow::ensure!(
            ids.iter().any(|id| id == named),
            "backup {named} is not a complete backup under {base} (there are: {})",
            ids.join(", ")
        );
        return read(named.to_owned()).await;
    }
    for id in ids.iter().rev() {
        let record = read(id.clone()).await?;
        let finished = chrono::DateTime::parse_from_rfc3339(&record.finished_at)
            .with_context(|| format!("backup {id} has no finish time"))?;
        if point.is_none_or(|point| finished <= point) {
            return Ok(record);
        }
    }
    anyhow::bail!(
        "no complete backup under {base}{}",
        point.map_or_else(String::new, |p| format!(" finished by {p}"))
    )
}

/// The archived logs with transactions after `record`'s copy began (less the longest
/// transaction) and before `stop`, by sequence; an error when the archive does not reach
/// `point`.
async fn logs_to_replay(
    bucket: &Bucket,
    base: &str,
    record: &BackupRecord,
    point: chrono::DateTime<chrono::Utc>,
    stop: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<SegmentRecord>> {
    let mark_key = format!("{base}archived.json");
    let mark: ArchiveMark =
        serde_json::from_slice(&bucket.get(&mark_key).await.with_context(|| {
            format!("reading {mark_key}: is the cluster's binary log archived?")
        })?)
        .with_context(|| format!("reading {mark_key}"))?;
    let complete = chrono::DateTime::parse_from_rfc3339(&mark.complete_at)
        .with_context(|| format!("{mark_key} has no time"))?;
    anyhow::ensure!(
        complete >= point,
        "the binary log archive reaches {} only, before pointInTime {point}: wait for it (it follows the primary every spec.backup.archiveIntervalSeconds) or restore to an earlier time",
        mark.complete_at
    );
    let started = chrono::DateTime::parse_from_rfc3339(&record.started_at)
        .with_context(|| format!("backup {} has no start time", record.id))?
        .with_timezone(&chrono::Utc);
    let from = (started - LONGEST_TRANSACTION).timestamp();
    let until = stop.timestamp();
    let keys = bucket.keys(base).await.context("listing the archive")?;
    let mut logs = Vec::new();
    for key in keys
        .iter()
        .filter(|k| k.ends_with(".json") && **k != mark_key)
    {
        let body = bucket
            .get(key)
            .await
            .with_context(|| format!("reading {key}"))?;
        let log: SegmentRecord =
            serde_json::from_slice(&body).with_context(|| format!("reading {key}"))?;
        let summary = &log.summary;
        let wanted = log.key.is_some()
            && summary.last_time.is_some_and(|last| last >= from)
            && summary.first_time.is_some_and(|first| first < until);
        if wanted {
            logs.push(log);
        }
    }
    logs.sort_by_key(|log| {
        (
            log.summary.first.map(|g| (g.domain, g.sequence)),
            log.summary.last.map(|g| g.sequence),
        )
    });
    Ok(logs)
}

/// Streams the object `key` into `path`; returns its size.
async fn download(bucket: &Bucket, key: &str, path: &Path) -> anyhow::Result<u64> {
    let mut body = bucket
        .stream(key)
        .await
        .with_context(|| format!("reading {key}"))?;
    let mut file = tokio::fs::File::create(path)
        .await
        .with_context(|| format!("creating {}", path.display()))?;
    let mut total = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.with_context(|| format!("reading {key}"))?;
        total += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.sync_all().await?;
    Ok(total)
}
