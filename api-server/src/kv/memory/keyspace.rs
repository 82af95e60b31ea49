//! The keyspace behind [`MemoryStore`](super::MemoryStore): values with optional deadlines,
//! expired lazily on access and by a sweep bounded per command, and evicted least recently
//! used first among keys with a TTL (`maxmemory-policy volatile-lru`) when a new key would
//! pass the key bound.
//!
//! ```text
//! entries      key -> Entry { data, deadline, touched }
//! by_deadline  (deadline, key) for every key with a TTL   -> sweep, earliest first
//! by_use       touched -> key  for every key with a TTL   -> eviction, least recent first
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use redis::{ServerError, Value};

use super::protocol::{OOM, WRONGTYPE, error};
use super::zset::SortedSet;

/// Expired keys removed per command at most (Redis's active expiry takes 20 keys a loop):
/// bounded work under the lock, yet keys nobody reads again still go away.
const SWEEP_PER_COMMAND: usize = 20;

/// The in-process body of a Lua script (see [`LuaScript`](crate::kv::LuaScript)): run for
/// EVALSHA of the script's hash with its keys and its arguments, inside the store's lock
/// (so, like a Lua script in Redis, atomically). It reaches the keyspace through
/// [`Keyspace::call`], as Lua reaches Redis through `redis.call`.
pub type InProcessScript = fn(&mut Keyspace, &[&[u8]], &[&[u8]]) -> Value;

/// A stored value.
#[derive(Debug)]
pub(super) enum Data {
    Bytes(Vec<u8>),
    Sorted(SortedSet),
}

/// One key's value and bookkeeping.
#[derive(Debug)]
pub(super) struct Entry {
    key: Arc<[u8]>,
    pub(super) data: Data,
    /// Milliseconds on the store's clock after which the key is gone.
    deadline: Option<u64>,
    /// When the key was last used, as a count of accesses (unique, so it orders `by_use`).
    touched: u64,
}

impl Entry {
    pub(super) fn deadline(&self) -> Option<u64> {
        self.deadline
    }

    /// The string value, or WRONGTYPE.
    pub(super) fn bytes(&self) -> Result<&Vec<u8>, ServerError> {
        match &self.data {
            Data::Bytes(bytes) => Ok(bytes),
            Data::Sorted(_) => Err(error(WRONGTYPE)),
        }
    }

    /// The sorted set, or WRONGTYPE.
    pub(super) fn sorted(&mut self) -> Result<&mut SortedSet, ServerError> {
        match &mut self.data {
            Data::Sorted(set) => Ok(set),
            Data::Bytes(_) => Err(error(WRONGTYPE)),
        }
    }
}

/// Every key of an in-process store. Scripts get it as `&mut` while the store's lock is held.
#[derive(Debug)]
pub struct Keyspace {
    entries: HashMap<Arc<[u8]>, Entry>,
    by_deadline: BTreeSet<(u64, Arc<[u8]>)>,
    by_use: BTreeMap<u64, Arc<[u8]>>,
    accesses: u64,
    /// The time of the current command (Redis also freezes time for a command and a script).
    now: u64,
    max_keys: usize,
    scripts: HashMap<String, InProcessScript>,
    pub(super) in_script: bool,
}

impl Keyspace {
    /// An empty keyspace that holds at most `max_keys` keys (at least one).
    pub(super) fn new(max_keys: usize) -> Self {
        Self {
            entries: HashMap::new(),
            by_deadline: BTreeSet::new(),
            by_use: BTreeMap::new(),
            accesses: 0,
            now: 0,
            max_keys: max_keys.max(1),
            scripts: HashMap::new(),
            in_script: false,
        }
    }

    /// Starts a command at `now` (milliseconds on the store's clock): sweeps a few keys that
    /// expired.
    pub(super) fn begin(&mut self, now: u64) {
        self.now = self.now.max(now);
        for _ in 0..SWEEP_PER_COMMAND {
            match self.by_deadline.first() {
                Some((deadline, _)) if *deadline < self.now => {
                    if let Some((_, key)) = self.by_deadline.pop_first() {
                        self.remove(&key);
                    }
                }
                _ => break,
            }
        }
    }

    pub(super) fn now(&self) -> u64 {
        self.now
    }

    /// Drops every key.
    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.by_deadline.clear();
        self.by_use.clear();
    }

    /// Keys held, including expired ones not yet swept (as Redis's DBSIZE counts them).
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The live entry of `key`, marked as just used; an expired one is removed.
    pub(super) fn get(&mut self, key: &[u8]) -> Option<&mut Entry> {
        // Redis: a key is expired once the time is past its deadline.
        let now = self.now;
        if self.entries.get(key)?.deadline.is_some_and(|at| at < now) {
            self.remove(key);
            return None;
        }
        self.accesses += 1;
        let touched = self.accesses;
        let entry = self.entries.get_mut(key)?;
        if entry.deadline.is_some() {
            self.by_use.remove(&entry.touched);
            self.by_use.insert(touched, entry.key.clone());
        }
        entry.touched = touched;
        Some(entry)
    }

    /// Stores a new key without a TTL, first evicting to stay within the key bound; OOM when
    /// no key with a TTL is left to evict. Replaces the value if `key` exists.
    pub(super) fn insert(&mut self, key: &[u8], data: Data) -> Result<&mut Entry, ServerError> {
        if self.get(key).is_none() {
            self.make_room()?;
            self.accesses += 1;
            let key: Arc<[u8]> = Arc::from(key);
            self.entries.insert(
                key.clone(),
                Entry {
                    key,
                    data: Data::Bytes(Vec::new()),
                    deadline: None,
                    touched: self.accesses,
                },
            );
        }
        let entry = self
            .entries
            .get_mut(key)
            .ok_or_else(|| error("ERR the key vanished while being written"))?;
        entry.data = data;
        Ok(entry)
    }

    /// Deletes `key`; whether it was there (expired or not).
    pub(super) fn remove(&mut self, key: &[u8]) -> bool {
        let Some(entry) = self.entries.remove(key) else {
            return false;
        };
        if let Some(deadline) = entry.deadline {
            self.by_use.remove(&entry.touched);
            self.by_deadline.remove(&(deadline, entry.key));
        }
        true
    }

    /// Sets or clears the deadline of an existing key.
    pub(super) fn set_deadline(&mut self, key: &[u8], deadline: Option<u64>) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        if let Some(old) = entry.deadline {
            self.by_deadline.remove(&(old, entry.key.clone()));
        }
        match deadline {
            Some(at) => {
                self.by_deadline.insert((at, entry.key.clone()));
                self.by_use.insert(entry.touched, entry.key.clone());
            }
            None => {
                self.by_use.remove(&entry.touched);
            }
        }
        entry.deadline = deadline;
    }

    /// Evicts until one more key fits: an expired key if any, else the least recently used
    /// key with a TTL. Keys without a TTL are never evicted (volatile-lru).
    fn make_room(&mut self) -> Result<(), ServerError> {
        while self.entries.len() >= self.max_keys {
            let expired = self
                .by_deadline
                .first()
                .is_some_and(|(deadline, _)| *deadline < self.now);
            let victim = if expired {
                self.by_deadline.pop_first().map(|(_, key)| key)
            } else {
                self.by_use.pop_first().map(|(_, key)| key)
            };
            let Some(victim) = victim else {
                return Err(error(OOM));
            };
            self.remove(&victim);
        }
        Ok(())
    }

    /// Remembers the in-process body of the script with SHA1 `hash`.
    pub(super) fn register_script(&mut self, hash: &str, script: InProcessScript) {
        if !self.scripts.contains_key(hash) {
            self.scripts.insert(hash.to_ascii_lowercase(), script);
        }
    }

    pub(super) fn script(&self, hash: &str) -> Option<InProcessScript> {
        self.scripts.get(&hash.to_ascii_lowercase()).copied()
    }

    /// Runs one command, as a script's `redis.call` does: the reply, or the error reply that
    /// would abort a Lua script. Scripts cannot call scripts.
    pub fn call(&mut self, args: &[&[u8]]) -> Result<Value, ServerError> {
        self.dispatch(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyspace(max_keys: usize) -> Keyspace {
        let mut keyspace = Keyspace::new(max_keys);
        keyspace.begin(1_000);
        keyspace
    }

    fn put(keyspace: &mut Keyspace, key: &str, ttl: Option<u64>) {
        keyspace
            .insert(key.as_bytes(), Data::Bytes(b"v".to_vec()))
            .expect("room for the key");
        let deadline = ttl.map(|ttl| keyspace.now() + ttl);
        keyspace.set_deadline(key.as_bytes(), deadline);
    }

    fn has(keyspace: &mut Keyspace, key: &str) -> bool {
        keyspace.get(key.as_bytes()).is_some()
    }

    #[test]
    fn a_key_lives_until_its_deadline_has_passed() {
        let mut keyspace = keyspace(10);
        put(&mut keyspace, "k", Some(100));
        keyspace.begin(1_100);
        assert!(
            has(&mut keyspace, "k"),
            "alive at its deadline, as in Redis"
        );
        keyspace.begin(1_101);
        assert!(!has(&mut keyspace, "k"));
        assert_eq!(keyspace.len(), 0);
    }

    #[test]
    fn the_sweep_removes_expired_keys_nobody_reads() {
        let mut keyspace = keyspace(1_000);
        for i in 0..50 {
            put(&mut keyspace, &format!("k{i}"), Some(10));
        }
        put(&mut keyspace, "kept", None);
        keyspace.begin(2_000);
        assert_eq!(
            keyspace.len(),
            51 - SWEEP_PER_COMMAND,
            "bounded work per command"
        );
        keyspace.begin(2_000);
        keyspace.begin(2_000);
        assert_eq!(keyspace.len(), 1);
        assert!(keyspace.by_deadline.is_empty() && keyspace.by_use.is_empty());
    }

    #[test]
    fn the_least_recently_used_volatile_key_is_evicted_first() {
        let mut keyspace = keyspace(3);
        put(&mut keyspace, "old", Some(60_000));
        put(&mut keyspace, "young", Some(60_000));
        put(&mut keyspace, "persistent", None);
        // Reading "old" makes "young" the least recently used.
        assert!(has(&mut keyspace, "old"));
        put(&mut keyspace, "new", Some(60_000));
        assert!(!has(&mut keyspace, "young"));
        assert!(has(&mut keyspace, "old") && has(&mut keyspace, "persistent"));
        assert!(has(&mut keyspace, "new"));
        assert_eq!(keyspace.len(), 3);
    }

    #[test]
    fn expired_keys_go_before_live_ones() {
        let mut keyspace = keyspace(2);
        put(&mut keyspace, "live", Some(60_000));
        put(&mut keyspace, "expiring", Some(5));
        assert!(has(&mut keyspace, "expiring"));
        keyspace.now += 10;
        put(&mut keyspace, "new", None);
        assert!(has(&mut keyspace, "live"));
        assert!(!has(&mut keyspace, "expiring"));
    }

    #[test]
    fn without_a_volatile_key_new_keys_are_refused() {
        let mut keyspace = keyspace(2);
        put(&mut keyspace, "a", None);
        put(&mut keyspace, "b", None);
        let refused = keyspace
            .insert(b"c", Data::Bytes(Vec::new()))
            .expect_err("nothing evictable");
        assert_eq!(refused.code(), "OOM");
        // Existing keys can still be written.
        assert!(keyspace.insert(b"a", Data::Bytes(b"w".to_vec())).is_ok());
        assert_eq!(keyspace.len(), 2);
    }

    #[test]
    fn losing_its_ttl_makes_a_key_unevictable() {
        let mut keyspace = keyspace(1);
        put(&mut keyspace, "a", Some(60_000));
        keyspace.set_deadline(b"a", None);
        assert!(keyspace.insert(b"b", Data::Bytes(Vec::new())).is_err());
        assert!(has(&mut keyspace, "a"));
    }
}
