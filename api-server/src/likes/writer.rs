//! Likes written in groups: concurrent like/unlike requests are gathered by one task and
//! stored in one MySQL transaction (one durable commit for many likes), then every request
//! gets its answer. A hot post's likers thus share commits instead of queueing on them.
//!
//! ```text
//! request ─► channel ─► writer task: take what is waiting (up to MAX_BATCH)
//!                         ├ which posts are live, which likes exist (one query each)
//!                         ├ insert new likes, delete withdrawn ones, append like_events
//!                         ├ Redis deltas (one INCRBY per post), commit
//!                         └ in a task of its own (the next group starts meanwhile):
//!                           count per post (stored + delta), answer each request
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{cache, store};
use crate::state::AppState;

/// Most requests stored in one transaction.
const MAX_BATCH: usize = 512;
/// Requests waiting for the writer before senders wait too.
const QUEUE: usize = 4096;
/// Stored groups whose answers are being read at once.
const ANSWERING_GROUPS: usize = 2;

/// What one request asks.
#[derive(Debug)]
pub struct LikeChange {
    /// The post.
    pub post_id: u64,
    /// The caller.
    pub user_id: u64,
    /// Like (true) or unlike (false).
    pub like: bool,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<LikeOutcome>,
}

/// The outcome of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LikeOutcome {
    /// Stored; the post's like count read once its group was committed (it may include
    /// groups committed since).
    Stored { like_count: u64 },
    /// The post does not exist or was deleted.
    PostNotFound,
    /// The database failed: the group was not stored, or was stored but its count could not
    /// be read (a retry of the idempotent change then answers).
    Failed,
    /// The database took nothing of the group, for this reason.
    NotWritten(crate::error::Unwritten),
}

/// The sending side, held by the app state.
#[derive(Clone, Debug)]
pub struct LikeWriter {
    sender: mpsc::Sender<LikeChange>,
}

impl LikeWriter {
    /// A writer and the receiving end its task consumes.
    pub fn new() -> (Self, mpsc::Receiver<LikeChange>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        (Self { sender }, receiver)
    }

    /// Queues a change and waits for its outcome.
    pub async fn change(&self, post_id: u64, user_id: u64, like: bool) -> LikeOutcome {
        let (reply, outcome) = oneshot::channel();
        let change = LikeChange {
            post_id,
            user_id,
            like,
            reply,
        };
        if self.sender.send(change).await.is_err() {
            return LikeOutcome::Failed;
        }
        outcome.await.unwrap_or(LikeOutcome::Failed)
    }
}

/// Stores queued changes in groups until `shutdown` (then finishes what is queued).
pub async fn run_like_writer(
    state: AppState,
    mut receiver: mpsc::Receiver<LikeChange>,
    shutdown: CancellationToken,
) {
    let answering = Arc::new(Semaphore::new(ANSWERING_GROUPS));
    loop {
        let first = tokio::select! {
            change = receiver.recv() => change,
            () = shutdown.cancelled() => {
                receiver.close();
                receiver.recv().await
            }
        };
        let Some(first) = first else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(change) => batch.push(change),
                Err(_) => break,
            }
        }
        store_batch(&state, batch, &answering).await;
    }
}

/// Stores a group, then hands its answers to a task of their own: the counts they carry cost
/// a query and a Redis round trip, which the next group need not wait for. At most
/// `answering`'s permits of those tasks run at once (each holds a database connection); past
/// that, the writer waits before storing more.
async fn store_batch(state: &AppState, batch: Vec<LikeChange>, answering: &Arc<Semaphore>) {
    match try_store_batch(state, &batch).await {
        Ok(live) => {
            let state = state.clone();
            let permit = answering.clone().acquire_owned().await;
            tokio::spawn(async move {
                answer(&state, batch, &live).await;
                drop(permit);
            });
        }
        Err(error) => {
            tracing::warn!(%error, changes = batch.len(), "storing a group of likes failed");
            let database_error = error.downcast_ref::<sqlx::Error>();
            if database_error.is_some_and(crate::error::connection_lost) {
                state.db.writer_moved();
            }
            match database_error.and_then(crate::error::unwritten) {
                Some(why) => {
                    if why == crate::error::Unwritten::ReadOnly {
                        state.db.writer_moved();
                    }
                    reply_all(batch, |_| LikeOutcome::NotWritten(why));
                }
                None => reply_all(batch, |_| LikeOutcome::Failed),
            }
        }
    }
}

/// Answers each request of a stored group with its post's count after the group.
async fn answer(state: &AppState, batch: Vec<LikeChange>, live: &BTreeSet<u64>) {
    let live_ids: Vec<u64> = live.iter().copied().collect();
    match current_counts(state, &live_ids).await {
        Ok(counts) => reply_all(batch, |change| match counts.get(&change.post_id) {
            Some(like_count) => LikeOutcome::Stored {
                like_count: *like_count,
            },
            None => LikeOutcome::PostNotFound,
        }),
        Err(error) => {
            // Stored, but no count to show: the client retries, which changes nothing.
            tracing::warn!(%error, changes = batch.len(), "reading like counts failed");
            reply_all(batch, |_| LikeOutcome::Failed);
        }
    }
}

fn reply_all(batch: Vec<LikeChange>, outcome: impl Fn(&LikeChange) -> LikeOutcome) {
    for change in batch {
        let outcome = outcome(&change);
        // A request that gave up (client gone) no longer listens: nothing to do.
        let _ = change.reply.send(outcome);
    }
}

/// Stores a group in one transaction; returns which of its posts are live.
async fn try_store_batch(state: &AppState, batch: &[LikeChange]) -> anyhow::Result<BTreeSet<u64>> {
    let post_ids: BTreeSet<u64> = batch.iter().map(|c| c.post_id).collect();
    let post_ids: Vec<u64> = post_ids.into_iter().collect();
    let now = crate::db::now();
    let mut tx = state.db.writer().begin().await?;
    let live: BTreeSet<u64> = store::list_live_posts(&mut tx, &post_ids)
        .await?
        .into_iter()
        .collect();
    let pairs: Vec<(u64, u64)> = batch
        .iter()
        .filter(|c| live.contains(&c.post_id))
        .map(|c| (c.post_id, c.user_id))
        .collect();
    let existing: BTreeSet<(u64, u64)> = store::lock_existing_likes(&mut tx, &pairs)
        .await?
        .into_iter()
        .collect();

    // Apply the changes in arrival order to the state each pair starts in.
    let mut state_of: BTreeMap<(u64, u64), bool> = pairs
        .iter()
        .map(|pair| (*pair, existing.contains(pair)))
        .collect();
    for change in batch.iter().filter(|c| live.contains(&c.post_id)) {
        state_of.insert((change.post_id, change.user_id), change.like);
    }
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut deltas: HashMap<u64, i64> = HashMap::new();
    for (pair, liked) in &state_of {
        match (existing.contains(pair), *liked) {
            (false, true) => {
                added.push(*pair);
                *deltas.entry(pair.0).or_default() += 1;
            }
            (true, false) => {
                removed.push(*pair);
                *deltas.entry(pair.0).or_default() -= 1;
            }
            _ => {}
        }
    }
    store::insert_likes(&mut tx, &added, now).await?;
    store::delete_likes(&mut tx, &removed).await?;
    let changed_posts: Vec<u64> = deltas.keys().copied().collect();
    store::append_events(&mut tx, &changed_posts, now).await?;
    // Deltas go to Redis before the commit: once the flusher sees these events, the delta it
    // clears after its recount already holds them. Best effort: the likes are in MySQL.
    // One round trip for every post of the group: the transaction (on SQLite, the database's
    // write lock) is held meanwhile. A failed batch may have applied part of the deltas; the
    // flusher's recount clears them within one interval.
    let deltas: Vec<(u64, i64)> = deltas.into_iter().collect();
    let mut recorded = false;
    if let Some(kv) = &state.kv {
        match cache::add_deltas(kv, &deltas).await {
            Ok(()) => recorded = true,
            Err(error) => tracing::warn!(%error, posts = deltas.len(), "cannot record like deltas"),
        }
    }
    if let Err(error) = tx.commit().await {
        if let (Some(kv), true) = (&state.kv, recorded) {
            let undo: Vec<(u64, i64)> =
                deltas.iter().map(|(post, delta)| (*post, -delta)).collect();
            let _ = cache::add_deltas(kv, &undo).await;
        }
        return Err(error.into());
    }
    Ok(live)
}

/// Stored count plus pending delta of each of `live_ids`.
async fn current_counts(state: &AppState, live_ids: &[u64]) -> anyhow::Result<HashMap<u64, u64>> {
    let stored = crate::posts::store::find_post_counts(state.db.writer(), live_ids).await?;
    let deltas = match &state.kv {
        Some(kv) => cache::get_deltas(kv, live_ids).await.unwrap_or_default(),
        None => Vec::new(),
    };
    let delta_of: HashMap<u64, i64> = live_ids.iter().copied().zip(deltas).collect();
    Ok(stored
        .into_iter()
        .map(|(id, like_count, _)| {
            let delta = delta_of.get(&id).copied().unwrap_or(0);
            (id, like_count.saturating_add_signed(delta))
        })
        .collect())
}
