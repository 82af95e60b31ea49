//! A steady write load through the API's Service, recording every answer: which posts and
//! likes were acknowledged, which writes failed and how, and when. What a failover costs is
//! read from the record: the time from the fault to the first write acknowledged after it
//! (the recovery time), the 5xx answered meanwhile, and, against the database afterwards,
//! the acknowledged writes that are missing.
//!
//! ```text
//! worker w (one per author): POST /posts as author w ─► acknowledged? ─► PUT like on it as liker w
//!                            pause, again until stopped
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api::ApiClient;

/// Writers running at once (each an author and a liker).
const WORKERS: usize = 4;

/// One write and how it ended.
#[derive(Clone, Debug)]
pub struct Write {
    /// A post (one MySQL transaction) or a like (stored in MySQL by the API's like writer).
    pub is_post: bool,
    /// When it was sent.
    pub sent: Instant,
    /// When its answer (or the transport error) came.
    pub answered: Instant,
    /// The HTTP status; `None` for a transport error (connection refused or reset, timeout).
    pub status: Option<StatusCode>,
}

impl Write {
    fn acknowledged(&self) -> bool {
        self.status.is_some_and(|s| s.is_success())
    }
}

/// Everything the load saw.
#[derive(Debug, Default)]
pub struct Record {
    /// Every write, in the order answered.
    pub writes: Vec<Write>,
    /// Posts acknowledged (201), by id.
    pub posts: BTreeSet<u64>,
    /// Likes acknowledged (200): post id → likers' user ids.
    pub likes: BTreeMap<u64, BTreeSet<u64>>,
}

/// What one fault cost, from the record.
#[derive(Debug, Clone)]
pub struct Gap {
    /// The longest pause between two acknowledged posts from the last one before the fault
    /// on: how long clients could not write (a post is acknowledged only once its
    /// transaction committed on a primary). A fault that takes effect some time after it is
    /// caused (a pod deleted stops its server after a grace period) is measured from when
    /// it did.
    pub recovery: Option<Duration>,
    /// Writes answered with a 5xx after the fault.
    pub server_errors: usize,
    /// Writes that got no answer (transport errors) after the fault.
    pub transport_errors: usize,
    /// Writes acknowledged after the fault.
    pub acknowledged: usize,
    /// Writes answered after the fault, in all.
    pub answered: usize,
}

/// A running load; stop it with [`WriteLoad::stop`].
pub struct WriteLoad {
    record: Arc<Mutex<Record>>,
    running: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    /// A user who follows every author (whose feed holds every acknowledged post).
    pub reader_token: String,
}

impl WriteLoad {
    /// Signs up the authors, likers and a reader following every author (names prefixed
    /// with `prefix`), then starts writing, each worker pausing `pause` between its rounds
    /// (a post and a like; 60 ms makes about 100 writes/s in all).
    pub async fn start(api: &ApiClient, prefix: &str, pause: Duration) -> Self {
        let (_, reader_token) = api.sign_up(&format!("{prefix}reader")).await;
        let mut accounts = Vec::new();
        for worker in 0..WORKERS {
            let (author, author_token) = api.sign_up(&format!("{prefix}author{worker}")).await;
            let (liker, liker_token) = api.sign_up(&format!("{prefix}liker{worker}")).await;
            api.expect(
                StatusCode::OK,
                Method::PUT,
                &format!("/users/{author}/follow"),
                Some(&reader_token),
                None,
            )
            .await;
            accounts.push((author_token, liker, liker_token));
        }
        let record = Arc::new(Mutex::new(Record::default()));
        let running = Arc::new(AtomicBool::new(true));
        let workers = accounts
            .into_iter()
            .enumerate()
            .map(|(worker, (author_token, liker, liker_token))| {
                let (api, record, running) = (api.clone(), record.clone(), running.clone());
                tokio::spawn(async move {
                    let mut round = 0u64;
                    while running.load(Ordering::Relaxed) {
                        round += 1;
                        let body = json!({ "content": format!("load {worker}/{round}") });
                        let (write, answer) = timed(
                            &api,
                            Method::POST,
                            "/posts",
                            &author_token,
                            Some(body),
                            true,
                        )
                        .await;
                        let post = answer
                            .filter(|_| write.status == Some(StatusCode::CREATED))
                            .and_then(|body| body["id"].as_u64());
                        lock(&record).push(write, |r| {
                            if let Some(id) = post {
                                r.posts.insert(id);
                            }
                        });
                        if let Some(id) = post {
                            let path = format!("/posts/{id}/like");
                            let (write, _) =
                                timed(&api, Method::PUT, &path, &liker_token, None, false).await;
                            let liked = write.status == Some(StatusCode::OK);
                            lock(&record).push(write, |r| {
                                if liked {
                                    r.likes.entry(id).or_default().insert(liker);
                                }
                            });
                        }
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Self {
            record,
            running,
            workers,
            reader_token,
        }
    }

    /// Acknowledged writes so far.
    pub fn acknowledged(&self) -> usize {
        lock(&self.record)
            .writes
            .iter()
            .filter(|w| w.acknowledged())
            .count()
    }

    /// Waits until `count` more writes have been acknowledged (at most `seconds`); false
    /// when they did not come.
    pub async fn wait_for_acknowledged(&self, count: usize, seconds: u64) -> bool {
        let target = self.acknowledged() + count;
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < deadline {
            if self.acknowledged() >= target {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// What the writes since `fault` cost.
    pub fn gap_since(&self, fault: Instant) -> Gap {
        let record = lock(&self.record);
        let after: Vec<&Write> = record
            .writes
            .iter()
            .filter(|w| w.answered > fault)
            .collect();
        let acknowledged_post = |w: &Write| w.is_post && w.acknowledged();
        let before = record
            .writes
            .iter()
            .filter(|w| acknowledged_post(w))
            .map(|w| w.answered)
            .filter(|at| *at <= fault)
            .max()
            .unwrap_or(fault);
        let mut answers: Vec<Instant> = after
            .iter()
            .filter(|w| acknowledged_post(w))
            .map(|w| w.answered)
            .collect();
        answers.sort();
        let recovery = (!answers.is_empty()).then(|| {
            std::iter::once(before)
                .chain(answers.iter().copied())
                .zip(answers.iter().copied())
                .map(|(earlier, later)| later - earlier)
                .max()
                .unwrap_or_default()
        });
        Gap {
            recovery,
            server_errors: after
                .iter()
                .filter(|w| w.status.is_some_and(|s| s.is_server_error()))
                .count(),
            transport_errors: after.iter().filter(|w| w.status.is_none()).count(),
            acknowledged: after.iter().filter(|w| w.acknowledged()).count(),
            answered: after.len(),
        }
    }

    /// Stops the writers and waits for them.
    pub async fn stop(self) -> (BTreeSet<u64>, BTreeMap<u64, BTreeSet<u64>>) {
        self.running.store(false, Ordering::Relaxed);
        for worker in self.workers {
            let _ = worker.await;
        }
        let record = lock(&self.record);
        (record.posts.clone(), record.likes.clone())
    }
}

impl Record {
    fn push(&mut self, write: Write, note: impl FnOnce(&mut Self)) {
        note(self);
        self.writes.push(write);
    }
}

fn lock(record: &Mutex<Record>) -> std::sync::MutexGuard<'_, Record> {
    record
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One call, timed; the answer's body when it came.
async fn timed(
    api: &ApiClient,
    method: Method,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
    is_post: bool,
) -> (Write, Option<serde_json::Value>) {
    let sent = Instant::now();
    let answer = api.call(method.clone(), path, Some(token), body).await;
    let answered = Instant::now();
    // A failed write says why, with the time to find it in the servers' logs.
    let now = chrono::Utc::now().format("%H:%M:%S%.3f");
    match &answer {
        Ok((status, body)) if status.is_server_error() => {
            eprintln!("e2e load: {method} {path} answered {status} at {now}: {body}");
        }
        Err(error) => eprintln!("e2e load: {method} {path} got no answer at {now}: {error}"),
        Ok(_) => {}
    }
    match answer {
        Ok((status, body)) => (
            Write {
                is_post,
                sent,
                answered,
                status: Some(status),
            },
            Some(body),
        ),
        Err(_) => (
            Write {
                is_post,
                sent,
                answered,
                status: None,
            },
            None,
        ),
    }
}
