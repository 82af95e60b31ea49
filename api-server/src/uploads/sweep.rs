//! The sweep: objects uploaded but never attached to a live post are deleted once older
//! than `--upload-unattached-max-age`.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::media;
use crate::posts::store::attached_keys;
use crate::state::AppState;

/// Keys checked against `post_media` per query.
const KEYS_PER_QUERY: usize = 500;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Objects old enough to be candidates.
    pub old: usize,
    /// Of those, the ones deleted (not on any live post).
    pub deleted: usize,
}

/// Runs one sweep over every upload.
pub async fn sweep_unattached(state: &AppState) -> anyhow::Result<SweepReport> {
    let Some(store) = &state.objects else {
        return Ok(SweepReport::default());
    };
    let config = &state.config.uploads;
    let cutoff = Utc::now()
        - chrono::Duration::from_std(config.upload_unattached_max_age)
            .unwrap_or(chrono::Duration::MAX);
    let old: Vec<String> = store
        .list(&media::media_prefix(config))
        .await?
        .into_iter()
        .filter(|object| object.last_modified < cutoff)
        .map(|object| object.key)
        .collect();
    let mut report = SweepReport {
        old: old.len(),
        deleted: 0,
    };
    for chunk in old.chunks(KEYS_PER_QUERY) {
        let keys: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let attached = attached_keys(state.db.writer(), &keys).await?;
        for key in keys
            .iter()
            .filter(|key| !attached.iter().any(|a| a == *key))
        {
            store.delete(key).await?;
            report.deleted += 1;
        }
    }
    Ok(report)
}

/// Sweeps every `interval` until `stop` is cancelled; failures are logged and retried at
/// the next turn.
pub async fn run_upload_sweep(state: AppState, interval: Duration, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match sweep_unattached(&state).await {
            Ok(report) if report.deleted > 0 => {
                tracing::info!(
                    old = report.old,
                    deleted = report.deleted,
                    "swept unattached uploads"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = format!("{error:#}"), "upload sweep failed"),
        }
    }
}
