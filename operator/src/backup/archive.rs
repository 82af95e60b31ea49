//! Continuous archiving of the primary's binary logs, so that a restore can replay what
//! happened after a backup (`restore`). The operator runs one pass per cluster at each
//! reconcile (never two at once), beside the reconcile rather than inside it:
//!
//! ```text
//! primary (the pod labelled role=primary: archiving follows a failover)
//!   clone donor BINLOGS ─► its GTID position and closed binary logs
//!   position not archived yet and spec.backup.archiveIntervalSeconds since the last
//!     close ─► BINLOGS with flush: what was written until now is in a closed log
//!   each closed log not seen before ─► BINLOG, read through (binlog::BinlogScanner)
//!     ─► holds a transaction the archive lacks: BINLOG again, streamed to
//!        <prefix><cluster>/binlog/<pod>/<name>.<bytes>
//!     ─► either way its record <...>/<name>.<bytes>.json (a log whose transactions are all
//!        archived already, e.g. a promoted replica's older ones, is recorded as skipped)
//!   the archive holds the primary's whole position ─► <prefix><cluster>/binlog/archived.json
//!     (completeAt: a restore may ask for any time up to it)
//! ```
//!
//! A pass that fails is retried at the next reconcile; `BinlogArchiveReady` turns False,
//! and `operator_binlog_archive_failing` 1 (alert `MySQLBinlogArchiveFailing`), once passes
//! have failed for three intervals (at least two minutes): a failover's few seconds do not
//! count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::binlog::{BinlogScanner, BinlogSummary, GtidPosition};
use super::bucket::{Bucket, PART_BYTES, read_part};
use crate::dataplane::{DataPlane, MysqlServer};

/// How long a donor may stay silent while sending a log.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// `<prefix><cluster>/binlog/`: the cluster's archived binary logs.
pub fn archive_prefix(prefix: &str, cluster: &str) -> String {
    format!("{prefix}{cluster}/binlog/")
}

/// The record of one binary log the archive has seen, `<pod>/<name>.<bytes>.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentRecord {
    /// The pod whose log it is.
    pub server: String,
    /// Its name on that server (`mysql-bin.000007`).
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// Where its bytes are; `None` when it was skipped (every transaction in it was
    /// archived from another log already).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What it holds.
    pub summary: BinlogSummary,
    /// When it was recorded (RFC 3339).
    pub archived_at: String,
}

/// `archived.json`: the archive held every transaction of the primary at `completeAt`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveMark {
    /// RFC 3339.
    pub complete_at: String,
    /// The primary's position then.
    pub position: String,
    /// The primary.
    pub server: String,
}

/// What the archive holds, for the status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// The newest archived transaction of each domain.
    pub gtid: Option<String>,
    /// When the newest archived transaction was written (seconds since the epoch).
    pub transaction_time: Option<i64>,
    /// When the archive last held every transaction of the primary.
    pub complete_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The server archived from.
    pub server: String,
}

/// How a cluster's archiving went, for its condition.
#[derive(Clone, Debug, Default)]
pub struct ArchiveOutcome {
    /// The last successful pass.
    pub report: Option<ArchiveReport>,
    /// Since when passes fail (none since the last success).
    pub failing_since: Option<chrono::DateTime<chrono::Utc>>,
    /// The last failure.
    pub error: Option<String>,
}

/// What one pass needs.
pub struct ArchiveJob {
    /// The archive's bucket.
    pub bucket: Bucket,
    /// `archive_prefix(..)`.
    pub base: String,
    /// The primary's clone donor (pod name, its address, the clone port).
    pub donor: MysqlServer,
    /// The replication password, which the donor asks for.
    pub password: String,
    /// `spec.backup.archiveIntervalSeconds`.
    pub interval: Duration,
    /// The clients.
    pub data_plane: DataPlane,
}

/// What the archiver remembers of a cluster between passes (the bucket is the truth: it is
/// read again after an operator restart).
#[derive(Debug, Default)]
pub struct ArchiveState {
    loaded: bool,
    /// Logs recorded, by (pod, name, bytes).
    seen: HashMap<(String, String, u64), SegmentRecord>,
    /// The newest archived transaction of each domain.
    archived: GtidPosition,
    newest_time: Option<i64>,
    complete_at: Option<chrono::DateTime<chrono::Utc>>,
    last_flush: Option<Instant>,
}

/// One cluster's archiver: the state a pass holds while it runs, and the last outcome.
#[derive(Default)]
struct Slot {
    state: Arc<tokio::sync::Mutex<ArchiveState>>,
    outcome: Arc<Mutex<ArchiveOutcome>>,
}

/// The archivers of every cluster (`namespace/name`).
#[derive(Default)]
pub struct Archivers {
    // A std mutex: held for a map lookup, never across an `.await`.
    slots: Mutex<HashMap<String, Slot>>,
}

impl Archivers {
    /// Starts a pass for `cluster` in the background unless one is running.
    pub fn start(&self, cluster: &str, job: ArchiveJob) {
        let (state, outcome) = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = slots.entry(cluster.to_owned()).or_default();
            (slot.state.clone(), slot.outcome.clone())
        };
        let Ok(mut state) = state.try_lock_owned() else {
            return;
        };
        let cluster = cluster.to_owned();
        tokio::spawn(async move {
            let result = pass(&mut state, &job).await;
            let mut outcome = outcome.lock().unwrap_or_else(PoisonError::into_inner);
            match result {
                Ok(report) => {
                    *outcome = ArchiveOutcome {
                        report: Some(report),
                        failing_since: None,
                        error: None,
                    };
                }
                Err(error) => {
                    let error = format!("{error:#}");
                    tracing::warn!(%cluster, %error, "archiving binary logs failed");
                    outcome.failing_since.get_or_insert_with(chrono::Utc::now);
                    outcome.error = Some(error);
                }
            }
        });
    }

    /// The last outcome for `cluster` (none before its first pass ends).
    pub fn outcome(&self, cluster: &str) -> Option<ArchiveOutcome> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = slots.get(cluster)?;
        let outcome = slot
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        (outcome.report.is_some() || outcome.error.is_some()).then_some(outcome)
    }

    /// Forgets `cluster` (deleted, or no longer backed up).
    pub fn forget(&self, cluster: &str) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(cluster);
    }
}

/// One pass: the primary's closed logs archived, and the mark written when nothing is
/// missing.
pub async fn pass(state: &mut ArchiveState, job: &ArchiveJob) -> anyhow::Result<ArchiveReport> {
    if !state.loaded {
        load(state, job).await?;
    }
    let mysql = &job.data_plane.mysql;
    let server = job.donor.name.clone();
    let mut asked_at = chrono::Utc::now();
    let mut listing = mysql.binlogs(&job.donor, &job.password, false).await?;
    let position = GtidPosition::parse(&listing.position).map_err(anyhow::Error::msg)?;
    let flush_due = state
        .last_flush
        .is_none_or(|flushed| flushed.elapsed() >= job.interval);
    if !state.archived.covers(&position) && flush_due {
        asked_at = chrono::Utc::now();
        listing = mysql.binlogs(&job.donor, &job.password, true).await?;
        state.last_flush = Some(Instant::now());
    }
    let position = GtidPosition::parse(&listing.position).map_err(anyhow::Error::msg)?;
    for (name, bytes) in &listing.closed {
        let seen = (server.clone(), name.clone(), *bytes);
        if state.seen.contains_key(&seen) {
            continue;
        }
        let record = archive_log(state, job, name, *bytes).await?;
        state.seen.insert(seen, record);
    }
    if state.archived.covers(&position) {
        state.complete_at = Some(asked_at);
        let mark = ArchiveMark {
            complete_at: asked_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            position: position.to_string(),
            server: server.clone(),
        };
        job.bucket
            .put(
                &format!("{}archived.json", job.base),
                serde_json::to_vec_pretty(&mark)?,
                "application/json",
            )
            .await
            .context("writing archived.json")?;
    }
    Ok(ArchiveReport {
        gtid: (!state.archived.0.is_empty()).then(|| state.archived.to_string()),
        transaction_time: state.newest_time,
        complete_at: state.complete_at,
        server,
    })
}

/// Reads what the bucket already holds: every log's record, and the last mark.
async fn load(state: &mut ArchiveState, job: &ArchiveJob) -> anyhow::Result<()> {
    let keys = job
        .bucket
        .keys(&job.base)
        .await
        .context("listing the archive")?;
    for key in keys.iter().filter(|key| key.ends_with(".json")) {
        let body = job
            .bucket
            .get(key)
            .await
            .with_context(|| format!("reading {key}"))?;
        if *key == format!("{}archived.json", job.base) {
            let mark: ArchiveMark =
                serde_json::from_slice(&body).with_context(|| format!("reading {key}"))?;
            state.complete_at = chrono::DateTime::parse_from_rfc3339(&mark.complete_at)
                .ok()
                .map(Into::into);
            continue;
        }
        let record: SegmentRecord =
            serde_json::from_slice(&body).with_context(|| format!("reading {key}"))?;
        if record.key.is_some() {
            note_archived(state, &record.summary);
        }
        state.seen.insert(
            (record.server.clone(), record.name.clone(), record.bytes),
            record,
        );
    }
    state.loaded = true;
    Ok(())
}

fn note_archived(state: &mut ArchiveState, summary: &BinlogSummary) {
    if let Some(last) = summary.last {
        state.archived.advance(last);
    }
    if let Some(time) = summary.last_time {
        state.newest_time = Some(state.newest_time.map_or(time, |t| t.max(time)));
    }
}

/// Reads `name` through; uploads it when it holds a transaction the archive lacks; records
/// it either way.
async fn archive_log(
    state: &mut ArchiveState,
    job: &ArchiveJob,
    name: &str,
    bytes: u64,
) -> anyhow::Result<SegmentRecord> {
    let server = &job.donor.name;
    let summary = read_log(job, name, bytes, None).await?;
    let lacking = summary.last.is_some_and(|last| {
        !state
            .archived
            .covers(&GtidPosition([(last.domain, last)].into_iter().collect()))
    });
    let object = format!("{}{server}/{name}.{bytes}", job.base);
    let key = if lacking {
        let mut upload = job
            .bucket
            .start_upload(&object)
            .await
            .context("starting an upload")?;
        match read_log(job, name, bytes, Some(&mut upload)).await {
            Ok(again) if again == summary => {
                upload.complete().await.context("completing an upload")?
            }
            Ok(_) => {
                upload.abort().await;
                anyhow::bail!("{server}'s {name} changed while it was read");
            }
            Err(error) => {
                upload.abort().await;
                return Err(error);
            }
        }
        note_archived(state, &summary);
        tracing::info!(%server, %name, bytes, transactions = summary.transactions, "archived a binary log");
        Some(object.clone())
    } else {
        None
    };
    let record = SegmentRecord {
        server: server.clone(),
        name: name.to_owned(),
        bytes,
        key,
        summary,
        archived_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    job.bucket
        .put(
            &format!("{object}.json"),
            serde_json::to_vec_pretty(&record)?,
            "application/json",
        )
        .await
        .context("writing a binary log's record")?;
    Ok(record)
}

/// Reads the closed log `name` from the primary's donor, into `upload` when given; checks
/// that all of its `bytes` came and that it is a whole binary log.
async fn read_log(
    job: &ArchiveJob,
    name: &str,
    bytes: u64,
    mut upload: Option<&mut super::bucket::Upload<'_>>,
) -> anyhow::Result<BinlogSummary> {
    let server = &job.donor.name;
    let mut reader = job
        .data_plane
        .mysql
        .open_binlog(&job.donor, &job.password, name)
        .await?;
    let mut scanner = BinlogScanner::new();
    let mut total: u64 = 0;
    loop {
        let part = read_part(&mut reader, READ_TIMEOUT, || {
            format!("{server}'s donor (sending {name})")
        })
        .await?;
        if part.is_empty() {
            break;
        }
        total += part.len() as u64;
        scanner
            .feed(&part)
            .map_err(|e| anyhow::anyhow!("{server}'s {name}: {e}"))?;
        let last = part.len() < PART_BYTES;
        if let Some(upload) = upload.as_deref_mut() {
            upload.part(part).await.context("uploading a part")?;
        }
        if last {
            break;
        }
    }
    anyhow::ensure!(
        total == bytes,
        "{server}'s donor sent {total} of the {bytes} bytes of {name} (refused, or cut off)"
    );
    scanner
        .finish()
        .map_err(|e| anyhow::anyhow!("{server}'s {name}: {e}"))
}

/// Whether archiving has failed long enough to say so: three intervals, at least two
/// minutes (a failover, or a primary's restart, lasts less).
pub fn is_failing(
    outcome: &ArchiveOutcome,
    interval: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    let patience = (interval * 3).max(Duration::from_secs(120));
    outcome.failing_since.is_some_and(|since| {
        (now - since)
            .to_std()
            .is_ok_and(|failing_for| failing_for >= patience)
    })
}
