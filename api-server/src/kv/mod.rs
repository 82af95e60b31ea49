//! Redis access for the whole API, on a standalone server or a Redis Cluster alike.
//!
//! [`Kv`] runs single commands ([`Kv::query`]) and batches of independent single-key commands
//! ([`Kv::run`], see `batch.rs`), each bounded by a timeout. Keys come from [`RedisKeys`].
//! Connections are made lazily, so the API starts (and serves its fallbacks) while Redis is down.

pub mod batch;
pub mod keys;
pub mod slots;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, ErrorKind, FromRedisValue, IntoConnectionInfo, RedisError, RedisResult, Value};

pub use batch::{Batch, LuaScript};
use batch::{ReplyAction, classify, key_slot};
pub use keys::RedisKeys;
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
}

enum Backend {
    Standalone(ConnectionManager),
    Cluster(Box<Cluster>),
}

struct Cluster {
    client: ClusterClient,
    connection: tokio::sync::OnceCell<ClusterConnection>,
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
            let client = ClusterClient::builder(config.redis_cluster_nodes.clone())
                .tcp_settings(tcp_settings())
                .connection_timeout(config.redis_timeout)
                .response_timeout(config.redis_timeout)
                .retries(2)
                .build()?;
            Backend::Cluster(Box::new(Cluster {
                client,
                connection: tokio::sync::OnceCell::new(),
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
                .set_number_of_retries(1);
            Backend::Standalone(ConnectionManager::new_lazy_with_config(
                client,
                manager_config,
            )?)
        } else {
            return Ok(None);
        };
        Ok(Some(Self {
            inner: Arc::new(Inner {
                backend,
                keys: RedisKeys::new(config.redis_key_prefix.clone()),
                timeout: config.redis_timeout,
            }),
        }))
    }

    /// The key builder under this deployment's prefix.
    pub fn keys(&self) -> &RedisKeys {
        &self.inner.keys
    }

    /// Runs one command (routed by its key on a cluster) within the timeout.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        let value = self
            .bounded(async {
                match &self.inner.backend {
                    Backend::Standalone(manager) => {
                        cmd.query_async::<Value>(&mut manager.clone()).await
                    }
                    Backend::Cluster(cluster) => {
                        let mut connection = cluster.connection().await?;
                        cmd.query_async::<Value>(&mut connection).await
                    }
                }
            })
            .await?;
        redis::from_redis_value(value).map_err(Into::into)
    }

    /// PINGs the server (every master's view is the client's business on a cluster).
    pub async fn ping(&self) -> RedisResult<()> {
        self.query::<String>(&redis::cmd("PING")).await.map(drop)
    }

    /// Runs a batch of independent single-key commands and returns one reply per command, in
    /// order (a command's own error comes back as `Value::ServerError`). Commands must be safe
    /// to repeat: one whose reply was lost to a failing node is sent again.
    pub async fn run(&self, batch: Batch) -> RedisResult<Vec<Value>> {
        let commands = batch.commands;
        let mut replies: Vec<Option<Value>> = vec![None; commands.len()];
        let mut pending: Vec<(usize, Option<NodeAddr>)> =
            (0..commands.len()).map(|index| (index, None)).collect();
        let mut last_error: Option<RedisError> = None;
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
                let outcome = self.send(&target, &commands, &items).await;
                (target, items, outcome)
            });
            let outcomes = futures::future::join_all(sends).await;

            let (mut refresh, mut wait) = (false, false);
            for (target, items, outcome) in outcomes {
                let values = match outcome {
                    Ok(values) => values,
                    Err(error) => {
                        // The node did not answer (failover under way?): resend it all.
                        tracing::debug!(%error, ?target, "batch part failed; retrying");
                        last_error = Some(error);
                        pending.extend(items.iter().map(|(index, _)| (*index, None)));
                        refresh = true;
                        wait = true;
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
            if wait {
                let backoff = Duration::from_millis(50 << round.min(4));
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

    /// Sends `items` of `commands` to `target` as one pipeline and returns their replies.
    async fn send(
        &self,
        target: &Target,
        commands: &[batch::BatchCommand],
        items: &[(usize, bool)],
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
        let count = pipe.len();
        let replies = self
            .bounded(async {
                match (&self.inner.backend, target) {
                    (Backend::Standalone(manager), _) => {
                        manager.clone().req_packed_commands(&pipe, 0, count).await
                    }
                    (Backend::Cluster(cluster), Target::Node(node)) => {
                        let route = SingleNodeRoutingInfo::ByAddress {
                            host: node.host.clone(),
                            port: node.port,
                        };
                        let mut connection = cluster.connection().await?;
                        connection.route_pipeline(pipe, 0, count, route).await
                    }
                    (Backend::Cluster(_), Target::Standalone) => Err(RedisError::from((
                        ErrorKind::Client,
                        "a cluster batch was routed to a standalone target",
                    ))),
                }
            })
            .await?;
        let mut replies: Vec<Option<Value>> = replies.into_iter().map(Some).collect();
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
        self.bounded(async {
            match (&self.inner.backend, target) {
                (Backend::Cluster(cluster), Target::Node(node)) => {
                    let mut connection = cluster.connection().await?;
                    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: node.host.clone(),
                        port: node.port,
                    });
                    connection.route_command(load, route).await
                }
                (Backend::Standalone(manager), _) => {
                    load.query_async::<Value>(&mut manager.clone()).await
                }
                (Backend::Cluster(_), Target::Standalone) => Ok(Value::Nil),
            }
        })
        .await
        .map(drop)
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
        let reply = self
            .bounded(async {
                let mut connection = cluster.connection().await?;
                let mut slots = redis::cmd("CLUSTER");
                slots.arg("SLOTS");
                connection
                    .route_command(
                        slots,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                    )
                    .await
            })
            .await;
        match reply.map(|value| SlotMap::from_cluster_slots(&value)) {
            Ok(Some(map)) if !map.is_empty() => {
                if let Ok(mut slots) = cluster.slots.write() {
                    *slots = Arc::new(map);
                }
            }
            Ok(_) => tracing::warn!("CLUSTER SLOTS answered with no usable slot map"),
            Err(error) => tracing::warn!(%error, "cannot refresh the cluster slot map"),
        }
    }

    /// The masters of the cluster, or `None` on a standalone server (for per-master SCAN).
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
    async fn connection(&self) -> RedisResult<ClusterConnection> {
        self.connection
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
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
