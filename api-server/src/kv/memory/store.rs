//! [`MemoryStore`]: the keyspace behind one lock, with a clock.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use redis::{Arg, Cmd, Value};

use super::keyspace::Keyspace;
use super::protocol::error;
use crate::kv::{Batch, LuaScript};

/// An in-process keyspace that answers `redis::Cmd`s as Redis 7.0 would, for the embedded
/// default (one process, no Redis server). Bounded to a number of keys, evicting keys with a
/// TTL least recently used first (`volatile-lru`). Safe to share between tasks.
#[derive(Debug)]
pub struct MemoryStore {
    /// One lock over the whole keyspace: a command takes microseconds and the lock is never
    /// held across an await, so tasks barely wait; one lock also keeps eviction order, the
    /// key bound and scripts exact across all keys (as in single-threaded Redis), which
    /// sharded locks would only approximate.
    keyspace: Mutex<Keyspace>,
    /// Zero of the store's clock (deadlines are milliseconds since then).
    started: Instant,
    /// Added to the clock (tests move time forward instead of sleeping).
    #[cfg(test)]
    skew: std::sync::atomic::AtomicU64,
}

impl MemoryStore {
    /// An empty store that holds at most `max_keys` keys (at least one).
    pub fn new(max_keys: usize) -> Self {
        Self {
            keyspace: Mutex::new(Keyspace::new(max_keys)),
            started: Instant::now(),
            #[cfg(test)]
            skew: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Runs one command and returns Redis's reply; a command's error is a
    /// `Value::ServerError`, as in a pipeline's replies.
    pub fn execute(&self, cmd: &Cmd) -> Value {
        let mut args = Vec::with_capacity(cmd.args_iter().len());
        for arg in cmd.args_iter() {
            match arg {
                Arg::Simple(bytes) => args.push(bytes),
                // Only SCAN-style iteration uses cursor arguments; no command here does.
                _ => {
                    return Value::ServerError(error("ERR cursor arguments are not supported"));
                }
            }
        }
        let mut keyspace = self.lock();
        keyspace.begin(self.now_ms());
        keyspace.dispatch(&args).unwrap_or_else(Value::ServerError)
    }

    /// Runs a batch's commands in order and returns one reply per command, loading the
    /// scripts the batch carries first. The lock is taken per command (a script holds it for
    /// its whole run), so other tasks interleave as they would on a server; replicated
    /// batches need no replica here.
    pub async fn run(&self, batch: Batch) -> Vec<Value> {
        /// Commands run between two yields: a fan-out batch of thousands of scripts would
        /// otherwise hold a runtime thread for tens of milliseconds.
        const COMMANDS_PER_YIELD: usize = 256;
        let mut loaded: Vec<&Arc<LuaScript>> = Vec::new();
        let mut replies = Vec::with_capacity(batch.commands.len());
        for (index, command) in batch.commands.iter().enumerate() {
            if let Some(script) = &command.script
                && !loaded.iter().any(|known| Arc::ptr_eq(known, script))
            {
                self.load_script(script);
                loaded.push(script);
            }
            replies.push(self.execute(&command.cmd));
            if (index + 1) % COMMANDS_PER_YIELD == 0 {
                tokio::task::yield_now().await;
            }
        }
        replies
    }

    /// Makes EVALSHA of `script`'s hash run its in-process body (Redis learns a script from
    /// SCRIPT LOAD; this store cannot run Lua, so it learns the Rust equivalent).
    pub fn load_script(&self, script: &LuaScript) {
        self.lock()
            .register_script(script.hash(), script.in_process());
    }

    /// Keys held, as DBSIZE counts them (expired keys not yet swept included).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Keyspace> {
        // A panic inside a command leaves at worst one key half-written or missing from an
        // index (no worse than a failed Lua script in Redis, which does not roll back
        // either): keep serving rather than fail every later call.
        self.keyspace.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        let elapsed = self.started.elapsed();
        #[cfg(test)]
        let elapsed = elapsed
            + std::time::Duration::from_millis(
                self.skew.load(std::sync::atomic::Ordering::Relaxed),
            );
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    /// Moves the store's clock forward.
    #[cfg(test)]
    fn advance(&self, by: std::time::Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.skew
            .fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;
    use redis::cmd;

    use super::*;
    use crate::config::Config;
    use crate::kv::Kv;
    use crate::kv::breaker::BreakerState;

    fn command(line: &str) -> Cmd {
        let mut words = line.split_whitespace();
        let mut command = cmd(words.next().expect("a command"));
        for word in words {
            command.arg(word);
        }
        command
    }

    fn code(reply: &Value) -> Option<&str> {
        match reply {
            Value::ServerError(error) => Some(error.code()),
            _ => None,
        }
    }

    fn kv() -> Kv {
        let config = Config::try_parse_from(["sns-api"]).expect("defaults are valid");
        Kv::in_process(&config.redis)
    }

    #[test]
    fn keys_expire_on_the_store_clock() {
        let store = MemoryStore::new(10);
        assert_eq!(store.execute(&command("SET k v EX 1")), Value::Okay);
        store.advance(Duration::from_millis(900));
        assert_eq!(
            store.execute(&command("GET k")),
            Value::BulkString(b"v".to_vec())
        );
        store.advance(Duration::from_millis(200));
        assert_eq!(store.execute(&command("GET k")), Value::Nil);
        assert!(store.is_empty());
    }

    #[test]
    fn over_the_key_bound_the_least_recently_used_volatile_key_goes() {
        let store = MemoryStore::new(3);
        store.execute(&command("SET a 1 EX 100"));
        store.execute(&command("ZADD b 1 m"));
        store.execute(&command("EXPIRE b 100"));
        store.execute(&command("SET persistent 1"));
        store.execute(&command("GET a"));
        assert_eq!(store.execute(&command("INCR c")), Value::Int(1));
        assert_eq!(
            store.execute(&command("EXISTS a b persistent c")),
            Value::Int(3)
        );
        assert_eq!(store.execute(&command("EXISTS b")), Value::Int(0));
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn with_nothing_evictable_writes_that_add_a_key_fail_with_oom() {
        let store = MemoryStore::new(2);
        store.execute(&command("SET a 1"));
        store.execute(&command("ZADD b 1 m"));
        for write in ["SET c 1", "INCR c", "INCRBY c 5", "ZADD c 1 m"] {
            assert_eq!(
                code(&store.execute(&command(write))),
                Some("OOM"),
                "{write}"
            );
        }
        // Writes to existing keys, reads and deletes still work.
        assert_eq!(store.execute(&command("INCR a")), Value::Int(2));
        assert_eq!(store.execute(&command("ZADD b 2 n")), Value::Int(1));
        assert_eq!(store.execute(&command("GET c")), Value::Nil);
        assert_eq!(store.execute(&command("DEL a")), Value::Int(1));
        assert_eq!(store.execute(&command("SET c 1")), Value::Okay);
    }

    #[test]
    fn evalsha_of_a_script_the_store_was_not_given_is_noscript() {
        fn one(_: &mut Keyspace, _: &[&[u8]], _: &[&[u8]]) -> Value {
            Value::Int(1)
        }
        let store = MemoryStore::new(10);
        let script = LuaScript::new("return 1", one);
        let mut evalsha = cmd("EVALSHA");
        evalsha.arg(script.hash()).arg(1).arg("k");
        assert_eq!(code(&store.execute(&evalsha)), Some("NOSCRIPT"));
        store.load_script(&script);
        assert_eq!(store.execute(&evalsha), Value::Int(1));
    }

    #[tokio::test]
    async fn kv_in_process_answers_like_a_server_and_keeps_the_breaker_closed() {
        let kv = kv();
        kv.ping().await.expect("always up");
        assert_eq!(kv.cluster_masters().await, None);
        let mut zadd = cmd("ZADD");
        zadd.arg(kv.keys().feed(1)).arg(1).arg(1);
        assert_eq!(kv.query::<i64>(&zadd).await.expect("added"), 1);
        for _ in 0..50 {
            let mut get = cmd("GET");
            get.arg(kv.keys().feed(1));
            let error = kv
                .query::<Option<String>>(&get)
                .await
                .expect_err("WRONGTYPE");
            assert_eq!(error.code(), Some("WRONGTYPE"));
        }
        assert_eq!(kv.breaker_state(), BreakerState::Closed);
        let mut batch = Batch::new();
        batch.replicated();
        batch
            .add("a", command("SET a 1"))
            .add("a", command("INCR a"))
            .add("z", command("NOPE z"));
        let replies = kv.run(batch).await.expect("one reply per command");
        assert_eq!(replies[..2], [Value::Okay, Value::Int(2)]);
        assert_eq!(code(&replies[2]), Some("ERR"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_tasks_incrementing_one_key_count_exactly() {
        let kv = kv();
        let key = Arc::new(kv.keys().like_delta(1));
        let tasks: Vec<_> = (0..16)
            .map(|task| {
                let (kv, key) = (kv.clone(), key.clone());
                tokio::spawn(async move {
                    for _ in 0..250 {
                        if task % 2 == 0 {
                            let mut incr = cmd("INCR");
                            incr.arg(key.as_str());
                            kv.query::<i64>(&incr).await.expect("counted");
                        } else {
                            let mut batch = Batch::new();
                            let mut incrby = cmd("INCRBY");
                            incrby.arg(key.as_str()).arg(1);
                            let mut expire = cmd("EXPIRE");
                            expire.arg(key.as_str()).arg(60).arg("NX");
                            batch.add(key.as_str(), incrby).add(key.as_str(), expire);
                            kv.run(batch).await.expect("counted");
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("the task ran");
        }
        let mut get = cmd("GET");
        get.arg(key.as_str());
        assert_eq!(kv.query::<i64>(&get).await.expect("read"), 16 * 250);
    }
}
