//! Redis access for the whole API, on a standalone server or a Redis Cluster alike.
//!
//! [`Kv`] runs single commands ([`Kv::query`]) and batches of independent commands, each on
//! one key on a cluster ([`Kv::run`], see `batch.rs`), each bounded by a timeout. Keys come
//! from [`RedisKeys`]. Connections are made lazily, so the API starts (and serves its fallbacks) while Redis is down.
//! [`Kv::in_process`] serves the same calls from an in-process store (`memory/`) instead, for
//! the embedded default without a Redis server.

pub mod batch;
pub mod breaker;
pub mod keys;
pub mod memory;
pub mod slots;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, FromRedisValue,
    IntoConnectionInfo, RedisError, RedisResult, Value,
};

pub use batch::{Batch, LuaScript};
use batch::{ReplyAction, classify, key_slot};
use breaker::{Breaker, BreakerSettings, BreakerState};
pub use keys::RedisKeys;
use memory::MemoryStore;
use slots::{NodeAddr, SlotMap};

use crate::config::RedisConfig;

/// Rounds of redirects and retries a batch may take before it fails.
const MAX_ROUNDS: u32 = 6;

/// A Redis connection (standalone or cluster) with the API's key prefix. Cheap to clone.
#[derive(Clone)]
pub struct Kv {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    keys: RedisKeys,
    timeout: Duration,
    breaker: Breaker,
    observer: OnceLock<KvObserver>,
}

/// Where `Kv` reports each call (the API's Prometheus metrics).
#[derive(Clone)]
pub struct KvObserver {
    /// `api_redis_calls_total{outcome}`: ok, error (Redis unreachable or failing), rejected
    /// (the breaker was open).
    pub calls: prometheus::IntCounterVec,
    /// `api_redis_call_duration_seconds`: one call or one whole batch.
    pub duration: prometheus::Histogram,
}

enum Backend {
    Standalone(ConnectionManager),
    Cluster(Box<Cluster>),
    /// No server: commands run on an in-process store, so they never fail for want of Redis
    /// and the breaker stays closed.
    InProcess(Arc<MemoryStore>),
}

/// A Redis Cluster reached through one multiplexed connection per node, routed by our own
/// slot map. (redis-rs's cluster client was seen to stall for tens of seconds repairing its
/// topology after a master died; owning the routing keeps every wait under our timeouts.)
struct Cluster {
    /// The configured nodes: asked for the slot map when no node of the current map answers.
    seeds: Vec<NodeAddr>,
    /// Credentials and settings of the configured nodes, reused for every node.
    template: ConnectionInfo,
    connect: AsyncConnectionConfig,
    /// Connections by node, made on first use and dropped when they fail. The lock is held
    /// only to look up or insert, never across an await.
    connections: std::sync::Mutex<HashMap<NodeAddr, MultiplexedConnection>>,
    slots: RwLock<Arc<SlotMap>>,
    refreshing: tokio::sync::Mutex<()>,
}

/// Where one part of a batch is sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    Standalone,
    Node(NodeAddr),
}

impl Kv {
    /// Connects to the configured Redis, or returns `None` when none is configured.
    pub fn connect(config: &RedisConfig) -> anyhow::Result<Option<Self>> {
        let backend = if !config.redis_cluster_nodes.is_empty() {
            let mut seeds = Vec::new();
            let mut template = None;
            for url in &config.redis_cluster_nodes {
                let info = url.as_str().into_connection_info()?;
                match info.addr() {
                    ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                        seeds.push(NodeAddr {
                            host: host.clone(),
                            port: *port,
                        });
                    }
                    _ => anyhow::bail!("cluster node {url} is not host:port"),
                }
                template.get_or_insert(info);
            }
            let template = anyhow::Context::context(template, "at least one cluster node")?
                .set_tcp_settings(tcp_settings());
            Backend::Cluster(Box::new(Cluster {
                seeds,
                template,
                connect: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(config.redis_timeout))
                    .set_response_timeout(Some(config.redis_timeout)),
                connections: std::sync::Mutex::new(HashMap::new()),
                slots: RwLock::new(Arc::new(SlotMap::default())),
                refreshing: tokio::sync::Mutex::new(()),
            }))
        } else if let Some(url) = &config.redis_url {
            let info = url
                .as_str()
                .into_connection_info()?
                .set_tcp_settings(tcp_settings());
            let client = redis::Client::open(info)?;
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.redis_timeout))
                .set_response_timeout(Some(config.redis_timeout))
                // A server that refuses connections is reported at once (a short pause
                // before one reconnect), not after seconds of backoff: the breaker and
                // the fallbacks decide what happens next.
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(10))
                .set_max_delay(Duration::from_millis(50));
            Backend::Standalone(ConnectionManager::new_lazy_with_config(
                client,
                manager_config,
            )?)
        } else {
            return Ok(None);
        };
        Ok(Some(Self::with_backend(backend, config)))
    }

    /// An in-process store with Redis's semantics and no server, for the embedded default:
    /// the key prefix and `--memory-store-max-keys` come from `config`; the server settings
    /// (URL, cluster nodes) are not used.
    pub fn in_process(config: &RedisConfig) -> Self {
        let max_keys = usize::try_from(config.memory_store_max_keys).unwrap_or(usize::MAX);
        Self::with_backend(
            Backend::InProcess(Arc::new(MemoryStore::new(max_keys))),
            config,
        )
    }

    fn with_backend(backend: Backend, config: &RedisConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                keys: RedisKeys::new(config.redis_key_prefix.clone()),
                timeout: config.redis_timeout,
                breaker: Breaker::new(BreakerSettings {
                    failure_ratio: config.redis_breaker_failure_ratio,
                    window: config.redis_breaker_window,
                    min_calls: config.redis_breaker_min_calls,
                    open_for: config.redis_breaker_open_for,
                    half_open_probes: config.redis_breaker_half_open_probes,
                }),
                observer: OnceLock::new(),
            }),
        }
    }

    /// Whether this is the embedded default's in-process store (not a Redis server).
    pub fn is_in_process(&self) -> bool {
        matches!(self.inner.backend, Backend::InProcess(_))
    }

    /// Splits keys into the groups one multi-key command may safely address, in order: all
    /// of them on a standalone server (or the in-process store); on a cluster, each key
    /// alone. (Keys sharing a slot could go together, but while that slot migrates Redis
    /// answers a multi-key command with TRYAGAIN until every key is on one side, where a
    /// single-key command simply follows the ASK redirect; and a fan-out's feeds rarely share
    /// a slot anyway.)
    pub fn multi_key_groups(&self, keys: impl IntoIterator<Item = String>) -> Vec<Vec<String>> {
        let keys: Vec<String> = keys.into_iter().collect();
        if keys.is_empty() {
            return Vec::new();
        }
        if matches!(self.inner.backend, Backend::Cluster(_)) {
            return keys.into_iter().map(|key| vec![key]).collect();
        }
        vec![keys]
    }

    /// The values of string keys, in order (`Value::Nil` for a missing one), in one round
    /// trip: one MGET on a standalone server instead of a GET per key; on a cluster, a GET
    /// per key (see [`multi_key_groups`](Self::multi_key_groups)).
    pub async fn get_many(&self, keys: &[String]) -> RedisResult<Vec<Value>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self.multi_key_groups(keys.iter().cloned());
        let mut batch = Batch::new();
        for group in &groups {
            let mut mget = redis::cmd("MGET");
            mget.arg(group);
            batch.add(group[0].clone(), mget);
        }
        let mut values = Vec::with_capacity(keys.len());
        for (group, reply) in groups.iter().zip(self.run(batch).await?) {
            match reply {
                Value::Array(items) if items.len() == group.len() => values.extend(items),
                other => return Err(value_error(&other)),
            }
        }
        Ok(values)
    }

    /// The key builder under this deployment's prefix.
    pub fn keys(&self) -> &RedisKeys {
        &self.inner.keys
    }

    /// Reports every call to `observer` from now on (set once; later calls are ignored).
    pub fn observe_with(&self, observer: KvObserver) {
        let _ = self.inner.observer.set(observer);
    }

    /// Where the circuit breaker stands.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// Tells the breaker that Redis answered a health check.
    pub fn note_healthy(&self) {
        self.inner.breaker.note_healthy();
    }

    /// Runs `operation` through the circuit breaker: refused at once while it is open, and
    /// counted towards opening it when Redis fails.
    async fn guarded<T>(
        &self,
        operation: impl std::future::Future<Output = RedisResult<T>>,
    ) -> RedisResult<T> {
        let observer = self.inner.observer.get();
        let admission = match self.inner.breaker.admit() {
            Ok(admission) => admission,
            Err(error) => {
                if let Some(observer) = observer {
                    observer.calls.with_label_values(&["rejected"]).inc();
                }
                return Err(error);
            }
        };
        let started = Instant::now();
        let result = operation.await;
        let failed = result.as_ref().err().is_some_and(breaker::is_outage);
        self.inner.breaker.record(admission, !failed);
        if let Some(observer) = observer {
            let outcome = if failed { "error" } else { "ok" };
            observer.calls.with_label_values(&[outcome]).inc();
            observer.duration.observe(started.elapsed().as_secs_f64());
        }
        result
    }

    /// Runs one command (routed by its key on a cluster) within the timeout, through the
    /// circuit breaker.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        self.guarded(self.query_unguarded(cmd)).await
    }

    async fn query_unguarded<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        let value = match &self.inner.backend {
            Backend::Standalone(manager) => {
                self.bounded(cmd.query_async::<Value>(&mut manager.clone()))
                    .await?
            }
            Backend::InProcess(store) => match store.execute(cmd) {
                Value::ServerError(error) => return Err(RedisError::from(error)),
                reply => reply,
            },
            Backend::Cluster(_) => {
                // Routed like a batch of one, by the command's first key.
                let key = cmd
                    .args_iter()
                    .nth(1)
                    .and_then(|arg| match arg {
                        redis::Arg::Simple(bytes) => Some(bytes.to_vec()),
                        _ => None,
                    })
                    .ok_or_else(|| {
                        RedisError::from((ErrorKind::Client, "a cluster command needs a key"))
                    })?;
                let mut batch = Batch::new();
                batch.add(key, cmd.clone());
                let reply = self.run_unguarded(batch).await?.pop().unwrap_or(Value::Nil);
                if let Value::ServerError(error) = reply {
                    return Err(RedisError::from(error));
                }
                reply
            }
        };
        redis::from_redis_value(value).map_err(Into::into)
    }

    /// Checks that Redis can serve, bypassing the breaker (health checks must reach Redis
    /// even while it is open): PING on a standalone server; on a cluster, a node that
    /// answers must report `cluster_state:ok` (every slot served). The in-process store
    /// always can.
    pub async fn ping(&self) -> RedisResult<()> {
        match &self.inner.backend {
            Backend::InProcess(_) => Ok(()),
            Backend::Standalone(manager) => self
                .bounded(redis::cmd("PING").query_async::<String>(&mut manager.clone()))
                .await
                .map(drop),
            Backend::Cluster(cluster) => {
                let mut info = redis::cmd("CLUSTER");
                info.arg("INFO");
                let candidates = cluster.candidates();
                if candidates.is_empty() {
                    return Err(RedisError::from((
                        ErrorKind::Io,
                        "no cluster node is known",
                    )));
                }
                // Every candidate at once, the first answer wins: a slot map naming
                // addresses the nodes no longer have (every pod restarted with a new IP)
                // would otherwise cost one timeout per stale master before the configured
                // nodes are asked.
                let asks = candidates.iter().enumerate().map(|(index, node)| {
                    let info = &info;
                    Box::pin(async move {
                        match self.node_command(cluster, node, info).await? {
                            Value::BulkString(text) => {
                                Ok((index, String::from_utf8_lossy(&text).into_owned()))
                            }
                            Value::VerbatimString { text, .. } => Ok((index, text)),
                            _ => Err(RedisError::from((ErrorKind::Client, "unexpected reply"))),
                        }
                    })
                });
                let ((index, text), _) = futures::future::select_ok(asks)
                    .await
                    .map_err(|_| RedisError::from((ErrorKind::Io, "no cluster node answers")))?;
                if index >= cluster.current_slots().masters().len() {
                    // A configured node answered first: the slot map's masters may be at old
                    // addresses, and nothing else would mend it while no request fails (one
                    // CLUSTER SLOTS per health check at most).
                    self.load_slots_from(cluster, &candidates[index]).await;
                }
                if text.contains("cluster_state:ok") {
                    Ok(())
                } else {
                    Err(RedisError::from((ErrorKind::Io, "cluster_state is not ok")))
                }
            }
        }
    }

    /// Replaces the slot map with `node`'s view (`CLUSTER SLOTS`); keeps it when the node
    /// has no usable answer.
    async fn load_slots_from(&self, cluster: &Cluster, node: &NodeAddr) {
        let mut slots = redis::cmd("CLUSTER");
        slots.arg("SLOTS");
        if let Ok(value) = self.node_command(cluster, node, &slots).await
            && let Some(map) = SlotMap::from_cluster_slots(&value).filter(|map| !map.is_empty())
            && let Ok(mut slots) = cluster.slots.write()
        {
            *slots = Arc::new(map);
        }
    }

    /// Runs one command on one cluster node, within the timeout; a failed connection is
    /// dropped so the next call reconnects.
    async fn node_command(
        &self,
        cluster: &Cluster,
        node: &NodeAddr,
        cmd: &Cmd,
    ) -> RedisResult<Value> {
        let result = self
            .bounded(async {
                let mut connection = cluster.connection_to(node).await?;
                cmd.query_async::<Value>(&mut connection).await
            })
            .await;
        if result.as_ref().err().is_some_and(breaker::is_outage) {
            cluster.forget(node);
        }
        result
    }

    /// Runs a batch of independent commands (each on one key on a cluster, see
    /// [`Kv::multi_key_groups`]) and returns one reply per command, in
    /// order (a command's own error comes back as `Value::ServerError`). Commands must be safe
    /// to repeat: one whose reply was lost to a failing node is sent again. The whole batch
    /// is one call for the circuit breaker.
    pub async fn run(&self, batch: Batch) -> RedisResult<Vec<Value>> {
        self.guarded(self.run_unguarded(batch)).await
    }

    async fn run_unguarded(&self, batch: Batch) -> RedisResult<Vec<Value>> {
        if let Backend::InProcess(store) = &self.inner.backend {
            return Ok(store.run(batch).await);
        }
        let wait_for_replica =
            batch.replicated && matches!(self.inner.backend, Backend::Cluster(_));
        let commands = batch.commands;
        let mut replies: Vec<Option<Value>> = vec![None; commands.len()];
        let mut pending: Vec<(usize, Option<NodeAddr>)> =
            (0..commands.len()).map(|index| (index, None)).collect();
        let mut last_error: Option<RedisError> = None;
        let (mut node_failures, mut node_failed) = (0u32, false);
        for round in 0..MAX_ROUNDS {
            if pending.is_empty() {
                break;
            }
            let mut groups: HashMap<Target, Vec<(usize, bool)>> = HashMap::new();
            for (index, ask) in pending.drain(..) {
                let asking = ask.is_some();
                let target = match ask {
                    Some(node) => Target::Node(node),
                    None => self.target_for(&commands[index].key).await?,
                };
                groups.entry(target).or_default().push((index, asking));
            }
            let sends = groups.into_iter().map(|(target, items)| async {
                let outcome = self
                    .send(&target, &commands, &items, wait_for_replica)
                    .await;
                (target, items, outcome)
            });
            let outcomes = futures::future::join_all(sends).await;

            let (mut refresh, mut wait) = (false, false);
            for (target, items, outcome) in outcomes {
                let values = match outcome {
                    Ok(values) => values,
                    Err(error) => {
                        // Nobody waits on a dead server: one immediate resend (a dropped
                        // connection is remade; on a cluster, after a slot refresh, in case a
                        // replica has taken over), then the error. Callers that must succeed
                        // retry later (the outbox); readers fall back.
                        if node_failures >= 1 {
                            return Err(error);
                        }
                        tracing::debug!(%error, ?target, "batch part failed; resending after a refresh");
                        node_failed = true;
                        last_error = Some(error);
                        pending.extend(items.iter().map(|(index, _)| (*index, None)));
                        refresh = true;
                        continue;
                    }
                };
                let mut scripts_loaded = false;
                for ((index, _), value) in items.iter().zip(values) {
                    match classify(&value) {
                        ReplyAction::Done => replies[*index] = Some(value),
                        ReplyAction::Moved => {
                            refresh = true;
                            pending.push((*index, None));
                        }
                        ReplyAction::Ask(addr) => match NodeAddr::parse(&addr) {
                            Some(node) => pending.push((*index, Some(node))),
                            None => replies[*index] = Some(value),
                        },
                        ReplyAction::LoadScript => {
                            if let Some(script) = &commands[*index].script
                                && !scripts_loaded
                            {
                                self.load_script(&target, script).await?;
                                scripts_loaded = true;
                            }
                            pending.push((*index, None));
                        }
                        ReplyAction::Retry => {
                            wait = true;
                            last_error = Some(value_error(&value));
                            pending.push((*index, None));
                        }
                    }
                }
            }
            if pending.is_empty() {
                break;
            }
            if node_failed {
                node_failures += 1;
                node_failed = false;
            }
            if wait {
                // TRYAGAIN / CLUSTERDOWN: the cluster asks for a moment (25-100 ms per round).
                let backoff = Duration::from_millis(25 << round.min(2));
                tokio::time::sleep(backoff).await;
            }
            if refresh {
                self.refresh_slots().await;
            }
        }
        if !pending.is_empty() {
            return Err(last_error.unwrap_or_else(|| {
                RedisError::from((
                    ErrorKind::Io,
                    "cluster redirects did not settle within the allowed rounds",
                ))
            }));
        }
        Ok(replies
            .into_iter()
            .map(|reply| reply.unwrap_or(Value::Nil))
            .collect())
    }

    async fn target_for(&self, key: &[u8]) -> RedisResult<Target> {
        let Backend::Cluster(cluster) = &self.inner.backend else {
            return Ok(Target::Standalone);
        };
        let slot = key_slot(key);
        if let Some(node) = cluster.current_slots().master_for(slot) {
            return Ok(Target::Node(node.clone()));
        }
        self.refresh_slots().await;
        cluster
            .current_slots()
            .master_for(slot)
            .cloned()
            .map(Target::Node)
            .ok_or_else(|| RedisError::from((ErrorKind::Io, "no master serves this slot")))
    }

    /// Sends `items` of `commands` to `target` as one pipeline and returns their replies;
    /// with `wait_for_replica`, the pipeline ends with `WAIT 1` (see [`Batch::replicated`]).
    async fn send(
        &self,
        target: &Target,
        commands: &[batch::BatchCommand],
        items: &[(usize, bool)],
        wait_for_replica: bool,
    ) -> RedisResult<Vec<Value>> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        // Position in the pipeline of each item's own reply (ASKING replies are skipped).
        let mut positions = Vec::with_capacity(items.len());
        for (index, asking) in items {
            if *asking {
                pipe.cmd("ASKING");
            }
            positions.push(pipe.len());
            pipe.add_command(commands[*index].cmd.clone());
        }
        let wait_at = pipe.len();
        if wait_for_replica {
            // Half the call's timeout, so the WAIT itself answers within it.
            let wait_ms = (self.inner.timeout.as_millis() / 2).max(1) as u64;
            pipe.cmd("WAIT").arg(1).arg(wait_ms);
        }
        let count = pipe.len();
        let replies = self
            .bounded(async {
                match (&self.inner.backend, target) {
                    (Backend::Standalone(manager), _) => {
                        manager.clone().req_packed_commands(&pipe, 0, count).await
                    }
                    (Backend::Cluster(cluster), Target::Node(node)) => {
                        let mut connection = cluster.connection_to(node).await?;
                        connection.req_packed_commands(&pipe, 0, count).await
                    }
                    (Backend::Cluster(_), Target::Standalone) => Err(RedisError::from((
                        ErrorKind::Client,
                        "a cluster batch was routed to a standalone target",
                    ))),
                    (Backend::InProcess(_), _) => Err(RedisError::from((
                        ErrorKind::Client,
                        "an in-process batch was routed to a server",
                    ))),
                }
            })
            .await;
        let replies = match (replies, &self.inner.backend, target) {
            (Err(error), Backend::Cluster(cluster), Target::Node(node)) => {
                if breaker::is_outage(&error) {
                    cluster.forget(node);
                }
                return Err(error);
            }
            (replies, _, _) => replies?,
        };
        let mut replies: Vec<Option<Value>> = replies.into_iter().map(Some).collect();
        if wait_for_replica && matches!(replies.get(wait_at), Some(Some(Value::Int(0)))) {
            // No replica confirmed in time (none attached, or lagging): the writes stand on
            // the master alone. Not an error: failing here would stall fan-out for as long
            // as a replica is missing.
            tracing::debug!(?target, "WAIT 1: no replica confirmed the batch in time");
        }
        Ok(positions
            .into_iter()
            .map(|position| {
                replies
                    .get_mut(position)
                    .and_then(Option::take)
                    .unwrap_or(Value::Nil)
            })
            .collect())
    }

    async fn load_script(&self, target: &Target, script: &LuaScript) -> RedisResult<()> {
        let mut load = redis::cmd("SCRIPT");
        load.arg("LOAD").arg(script.code());
        match (&self.inner.backend, target) {
            (Backend::Cluster(cluster), Target::Node(node)) => {
                self.node_command(cluster, node, &load).await.map(drop)
            }
            (Backend::Standalone(manager), _) => self
                .bounded(load.query_async::<Value>(&mut manager.clone()))
                .await
                .map(drop),
            (Backend::Cluster(_), Target::Standalone) | (Backend::InProcess(_), _) => Ok(()),
        }
    }

    /// Reloads the slot map from the cluster (one refresh at a time; callers that waited for
    /// another's refresh use its result).
    async fn refresh_slots(&self) {
        let Backend::Cluster(cluster) = &self.inner.backend else {
            return;
        };
        let before = cluster.current_slots();
        let _guard = cluster.refreshing.lock().await;
        if !Arc::ptr_eq(&before, &cluster.current_slots()) {
            return;
        }
        let mut slots = redis::cmd("CLUSTER");
        slots.arg("SLOTS");
        // Any node that answers knows the whole map; a node that lost its master's slots
        // to a failover may still answer with the old map, so a map whose every master
        // answers is preferred by trying the current masters' view first.
        let mut last_error = None;
        for node in cluster.candidates() {
            match self.node_command(cluster, &node, &slots).await {
                Ok(value) => match SlotMap::from_cluster_slots(&value) {
                    Some(map) if !map.is_empty() => {
                        if let Ok(mut slots) = cluster.slots.write() {
                            *slots = Arc::new(map);
                        }
                        return;
                    }
                    _ => tracing::debug!(%node, "CLUSTER SLOTS answered with no usable slot map"),
                },
                Err(error) => last_error = Some(error),
            }
        }
        if let Some(error) = last_error {
            tracing::warn!(%error, "cannot refresh the cluster slot map: no node answers");
        }
    }

    /// The masters of the cluster, or `None` on a standalone server or the in-process store
    /// (for per-master SCAN).
    pub async fn cluster_masters(&self) -> Option<Vec<String>> {
        let Backend::Cluster(cluster) = &self.inner.backend else {
            return None;
        };
        if cluster.current_slots().is_empty() {
            self.refresh_slots().await;
        }
        Some(
            cluster
                .current_slots()
                .masters()
                .iter()
                .map(ToString::to_string)
                .collect(),
        )
    }

    async fn bounded<T>(
        &self,
        operation: impl std::future::Future<Output = RedisResult<T>>,
    ) -> RedisResult<T> {
        match tokio::time::timeout(self.inner.timeout, operation).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::from((
                ErrorKind::Io,
                "Redis did not answer within the timeout",
            ))),
        }
    }
}

/// Small requests from many tasks share one socket: without TCP_NODELAY, Nagle's algorithm
/// holds each write until the previous one is acknowledged (tens of milliseconds).
fn tcp_settings() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

impl Cluster {
    /// The connection to `node`, made now if there is none.
    async fn connection_to(&self, node: &NodeAddr) -> RedisResult<MultiplexedConnection> {
        if let Some(connection) = self
            .connections
            .lock()
            .ok()
            .and_then(|connections| connections.get(node).cloned())
        {
            return Ok(connection);
        }
        let addr = match self.template.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: node.host.clone(),
                port: node.port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(node.host.clone(), node.port),
        };
        let client = redis::Client::open(self.template.clone().set_addr(addr))?;
        let connection = client
            .get_multiplexed_async_connection_with_config(&self.connect)
            .await?;
        if let Ok(mut connections) = self.connections.lock() {
            connections.insert(node.clone(), connection.clone());
        }
        Ok(connection)
    }

    /// Drops the connection to `node` (it failed); the next call reconnects.
    fn forget(&self, node: &NodeAddr) {
        if let Ok(mut connections) = self.connections.lock() {
            connections.remove(node);
        }
    }

    /// Nodes to ask about the cluster: the current masters, then the configured nodes.
    fn candidates(&self) -> Vec<NodeAddr> {
        let mut nodes = self.current_slots().masters();
        for seed in &self.seeds {
            if !nodes.contains(seed) {
                nodes.push(seed.clone());
            }
        }
        nodes
    }

    fn current_slots(&self) -> Arc<SlotMap> {
        self.slots
            .read()
            .map(|slots| slots.clone())
            .unwrap_or_default()
    }
}

fn value_error(value: &Value) -> RedisError {
    match value {
        Value::ServerError(error) => RedisError::from(error.clone()),
        _ => RedisError::from((ErrorKind::Client, "unexpected reply")),
    }
}

/// Logs a Redis failure that a request works around (it falls back or goes on without):
/// at debug when Redis is unreachable, slow, unable to serve or behind the open breaker (the
/// breaker logs the outage once at warn, and `api_redis_calls_total` counts every call), so
/// an outage does not log once per request; at warn when Redis answered with an error it
/// should not give.
pub fn log_fallback(error: &RedisError, what: &'static str) {
    if breaker::is_outage(error) || error.is_timeout() || error.is_connection_refusal() {
        tracing::debug!(%error, "{what}");
    } else {
        tracing::warn!(%error, "{what}");
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::Config;

    fn kv(args: &[&str]) -> Kv {
        let config = Config::try_parse_from(["sns-api"].iter().chain(args)).expect("config");
        Kv::connect(&config.redis)
            .expect("valid")
            .expect("a Redis is configured")
    }

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    // The standalone client wants a runtime even when it connects lazily.
    #[tokio::test]
    async fn one_group_on_a_standalone_server() {
        let standalone = kv(&["--redis-url", "redis://127.0.0.1:1"]);
        let all = keys(&["a", "b", "{a}x", "c"]);
        assert_eq!(standalone.multi_key_groups(all.clone()), vec![all]);
        assert!(standalone.multi_key_groups(Vec::new()).is_empty());
    }

    #[test]
    fn each_key_alone_on_a_cluster() {
        // Connections are made on first use: none is made here.
        let cluster = kv(&["--redis-cluster-nodes", "redis://127.0.0.1:1"]);
        let groups = cluster.multi_key_groups(keys(&["b", "{b}2", "a"]));
        assert_eq!(groups, vec![keys(&["b"]), keys(&["{b}2"]), keys(&["a"])]);
    }
}
