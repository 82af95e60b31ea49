//! Fixed-window counters: in Redis when it is configured (shared by every API replica),
//! in process memory otherwise.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::cmd;

use crate::kv::{Batch, Kv};

/// Where the counters live.
pub enum CounterStore {
    /// `rl:{class}:{subject}:{window}` keys with a TTL of one window.
    Redis(Kv),
    /// One process's counters.
    Memory(Mutex<HashMap<String, (u64, u64)>>),
}

/// A counter after one hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Hits in the current window, this one included.
    pub count: u64,
    /// Seconds until the window ends.
    pub reset_secs: u64,
}

/// Entries kept in memory before stale windows are swept.
const MEMORY_SWEEP_AT: usize = 100_000;

impl CounterStore {
    /// Counts one hit of `subject` in `class` for the current window.
    pub async fn hit(
        &self,
        class: &str,
        subject: &str,
        window: Duration,
    ) -> redis::RedisResult<Hit> {
        let (index, window_secs, reset_secs) = current_window(window);
        let count = match self {
            Self::Redis(kv) => {
                let key = kv.keys().rate_limit(class, subject, index);
                let mut incr = cmd("INCR");
                incr.arg(&key);
                let mut expire = cmd("EXPIRE");
                expire.arg(&key).arg(window_secs).arg("NX");
                let mut batch = Batch::new();
                batch.add(key.clone(), incr).add(key, expire);
                let replies = kv.run(batch).await?;
                let first = replies.into_iter().next().unwrap_or(redis::Value::Nil);
                redis::from_redis_value::<u64>(first)?
            }
            Self::Memory(counters) => {
                let key = format!("{class}:{subject}");
                let Ok(mut counters) = counters.lock() else {
                    return Ok(Hit {
                        count: 0,
                        reset_secs,
                    });
                };
                if counters.len() >= MEMORY_SWEEP_AT {
                    counters.retain(|_, (entry_index, _)| *entry_index == index);
                }
                let entry = counters.entry(key).or_insert((index, 0));
                if entry.0 != index {
                    *entry = (index, 0);
                }
                entry.1 += 1;
                entry.1
            }
        };
        Ok(Hit { count, reset_secs })
    }

    /// The hits of `subject` in `class` in the current window, without counting one.
    pub async fn peek(
        &self,
        class: &str,
        subject: &str,
        window: Duration,
    ) -> redis::RedisResult<Hit> {
        let (index, _, reset_secs) = current_window(window);
        let count = match self {
            Self::Redis(kv) => {
                let key = kv.keys().rate_limit(class, subject, index);
                let mut get = cmd("GET");
                get.arg(&key);
                let mut batch = Batch::new();
                batch.add(key, get);
                let replies = kv.run(batch).await?;
                let first = replies.into_iter().next().unwrap_or(redis::Value::Nil);
                redis::from_redis_value::<Option<u64>>(first)?.unwrap_or(0)
            }
            Self::Memory(counters) => counters
                .lock()
                .ok()
                .and_then(|counters| counters.get(&format!("{class}:{subject}")).copied())
                .filter(|(entry_index, _)| *entry_index == index)
                .map_or(0, |(_, count)| count),
        };
        Ok(Hit { count, reset_secs })
    }

    /// Forgets the hits of `subject` in `class` in the current window.
    pub async fn clear(
        &self,
        class: &str,
        subject: &str,
        window: Duration,
    ) -> redis::RedisResult<()> {
        let (index, _, _) = current_window(window);
        match self {
            Self::Redis(kv) => {
                let key = kv.keys().rate_limit(class, subject, index);
                let mut del = cmd("DEL");
                del.arg(&key);
                let mut batch = Batch::new();
                batch.add(key, del);
                kv.run(batch).await?;
            }
            Self::Memory(counters) => {
                if let Ok(mut counters) = counters.lock() {
                    counters.remove(&format!("{class}:{subject}"));
                }
            }
        }
        Ok(())
    }
}

/// The current window's index, its length in seconds and the seconds until it ends.
fn current_window(window: Duration) -> (u64, u64, u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let window_secs = window.as_secs().max(1);
    let index = now / window_secs;
    (index, window_secs, (index + 1) * window_secs - now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_counters_count_per_subject() {
        let store = CounterStore::Memory(Mutex::new(HashMap::new()));
        let window = Duration::from_secs(3600);
        assert_eq!(store.hit("posts", "u:1", window).await.unwrap().count, 1);
        assert_eq!(store.hit("posts", "u:1", window).await.unwrap().count, 2);
        assert_eq!(store.hit("posts", "u:2", window).await.unwrap().count, 1);
        let hit = store.hit("likes", "u:1", window).await.unwrap();
        assert_eq!(hit.count, 1);
        assert!(hit.reset_secs <= 3600);
    }

    #[tokio::test]
    async fn a_peek_counts_nothing_and_a_clear_starts_over() {
        let store = CounterStore::Memory(Mutex::new(HashMap::new()));
        let window = Duration::from_secs(900);
        assert_eq!(store.peek("login", "a|ip", window).await.unwrap().count, 0);
        store.hit("login", "a|ip", window).await.unwrap();
        store.hit("login", "a|ip", window).await.unwrap();
        assert_eq!(store.peek("login", "a|ip", window).await.unwrap().count, 2);
        assert_eq!(store.peek("login", "a|ip", window).await.unwrap().count, 2);
        store.clear("login", "a|ip", window).await.unwrap();
        assert_eq!(store.peek("login", "a|ip", window).await.unwrap().count, 0);
    }
}
