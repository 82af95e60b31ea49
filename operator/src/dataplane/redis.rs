//! The Redis Cluster: its health (`CLUSTER INFO` on every node) and its bootstrap, which turns
//! fresh `cluster-enabled` redis-server nodes into one cluster, the way
//! `redis-cli --cluster create` does, but idempotently:
//!
//! ```text
//! every node answers?                       (else: error, nothing is changed)
//! already complete? ─► leave it alone       (state ok, 16384 slots, all known, replicas attached)
//! 1. SET-CONFIG-EPOCH on fresh nodes        (distinct epochs: no collision to resolve)
//! 2. ADDSLOTSRANGE: each master its even share, only slots nobody holds yet
//! 3. CLUSTER MEET every node unknown to the first one
//! 4. wait until every node knows every other (gossip)
//! 5. CLUSTER REPLICATE each replica (an empty master) to master `j % masters`
//! 6. wait until every node says cluster_state:ok and every replica is attached
//! ```
//!
//! A bootstrap that stopped half-way is completed by the next one: every step first looks at
//! what the nodes already hold.

use std::collections::HashMap;
use std::time::Duration;

use futures::FutureExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue};

use super::cluster_nodes::{NodeLine, parse_info, parse_nodes, share, unassigned};
use super::{DataPlaneError, PlaneFuture};

pub use super::cluster_nodes::SLOTS;

/// One Redis node: its pod name (for messages) and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RedisNode {
    /// Pod name, or any label for messages.
    pub name: String,
    /// IP address or resolvable host name.
    pub host: String,
    /// Client port.
    pub port: u16,
    /// Cluster bus port when it is not `port + 10000`.
    pub bus_port: Option<u16>,
}

impl RedisNode {
    /// `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// What the nodes say about their cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterHealth {
    /// `ok` when every node that answered says `cluster_state:ok`, `fail` when one says
    /// otherwise, `unknown` when none answered.
    pub state: String,
    /// Lowest `cluster_slots_assigned` among the nodes.
    pub slots_assigned: u32,
    /// Lowest `cluster_slots_ok` among the nodes.
    pub slots_ok: u32,
    /// Lowest `cluster_known_nodes` among the nodes.
    pub known_nodes: u32,
    /// Masters without slots (a fresh node, or a replica never attached), as the first node
    /// that answered sees them.
    pub empty_masters: u32,
    /// Nodes that did not answer, with why.
    pub unreachable: Vec<String>,
}

impl ClusterHealth {
    /// Every node answered and says `cluster_state:ok`.
    pub fn is_ok(&self) -> bool {
        self.state == "ok" && self.unreachable.is_empty()
    }

    /// The `nodes` nodes form one cluster with every slot assigned and every replica
    /// attached (it may still be failing, e.g. a master is down).
    pub fn is_formed(&self, nodes: usize) -> bool {
        self.known_nodes as usize >= nodes
            && self.slots_assigned as usize == SLOTS
            && self.empty_masters == 0
    }
}

/// What a bootstrap changed; all zero when the cluster was already complete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootstrapReport {
    /// Fresh nodes given a config epoch.
    pub epochs_set: usize,
    /// Slot ranges assigned.
    pub slot_ranges_added: usize,
    /// Nodes introduced with CLUSTER MEET.
    pub nodes_met: usize,
    /// Replicas attached to their master.
    pub replicas_attached: usize,
}

impl BootstrapReport {
    /// Nothing was sent that changes a node.
    pub fn changed_nothing(&self) -> bool {
        *self == Self::default()
    }
}

/// The Redis Cluster operations the reconciler needs.
pub trait RedisCluster: Send + Sync {
    /// Asks every node for `CLUSTER INFO`; nodes that do not answer are listed, not fatal.
    fn cluster_health<'a>(&'a self, nodes: &'a [RedisNode]) -> PlaneFuture<'a, ClusterHealth>;

    /// Forms (or completes) a cluster of `masters`, each with its share of the slots, and
    /// `replicas`, replica `j` following master `j % masters.len()`. Leaves a complete cluster
    /// alone. Every node must answer.
    fn bootstrap<'a>(
        &'a self,
        masters: &'a [RedisNode],
        replicas: &'a [RedisNode],
    ) -> PlaneFuture<'a, BootstrapReport>;
}

/// The real client: one connection per node, every command bounded by a timeout.
pub struct RedisClient {
    timeout: Duration,
    formation_timeout: Duration,
}

impl RedisClient {
    /// A client whose connections and commands time out after `timeout`; a bootstrap waits
    /// at most 30 s for gossip and for `cluster_state:ok`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            formation_timeout: Duration::from_secs(30),
        }
    }

    async fn connect<'n>(&self, spec: &'n RedisNode) -> Result<Node<'n>, DataPlaneError> {
        let error = |source| DataPlaneError::Redis {
            node: spec.address(),
            source,
        };
        let client = redis::Client::open(format!("redis://{}/", spec.address())).map_err(error)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(error)?;
        Ok(Node { spec, conn })
    }

    async fn health(&self, nodes: &[RedisNode]) -> ClusterHealth {
        let answers = futures::future::join_all(nodes.iter().map(|spec| async move {
            let node = self.connect(spec).await?;
            let info: String = node.query(redis::cmd("CLUSTER").arg("INFO")).await?;
            Ok::<_, DataPlaneError>((node, parse_info(&info)))
        }))
        .await;
        let mut health = ClusterHealth {
            state: "unknown".into(),
            slots_assigned: u32::MAX,
            slots_ok: u32::MAX,
            known_nodes: u32::MAX,
            empty_masters: 0,
            unreachable: Vec::new(),
        };
        let mut first = None;
        for (spec, answer) in nodes.iter().zip(answers) {
            let (node, info) = match answer {
                Ok(answer) => answer,
                Err(error) => {
                    health.unreachable.push(format!("{}: {error}", spec.name));
                    continue;
                }
            };
            let number = |key: &str| info.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
            health.slots_assigned = health.slots_assigned.min(number("cluster_slots_assigned"));
            health.slots_ok = health.slots_ok.min(number("cluster_slots_ok"));
            health.known_nodes = health.known_nodes.min(number("cluster_known_nodes"));
            let state = info.get("cluster_state").map_or("unknown", String::as_str);
            if health.state != "fail" {
                health.state = if state == "ok" { "ok" } else { "fail" }.into();
            }
            first.get_or_insert(node);
        }
        match first {
            Some(node) => {
                if let Ok(text) = node
                    .query::<String>(redis::cmd("CLUSTER").arg("NODES"))
                    .await
                {
                    let empty = parse_nodes(&text)
                        .iter()
                        .filter(|n| n.is_master() && n.slots.is_empty() && !n.is_failing())
                        .count();
                    health.empty_masters = u32::try_from(empty).unwrap_or(u32::MAX);
                }
            }
            None => {
                health.slots_assigned = 0;
                health.slots_ok = 0;
                health.known_nodes = 0;
            }
        }
        health
    }

    async fn bootstrap_nodes(
        &self,
        masters: &[RedisNode],
        replicas: &[RedisNode],
    ) -> Result<BootstrapReport, DataPlaneError> {
        if masters.is_empty() || masters.len() > SLOTS {
            return Err(DataPlaneError::Topology(format!(
                "a Redis Cluster needs 1 to {SLOTS} masters, not {}",
                masters.len()
            )));
        }
        let mut nodes = Vec::new();
        for spec in masters.iter().chain(replicas) {
            nodes.push(self.connect(spec).await?);
        }
        let views = read_views(&nodes).await?;
        if is_complete(&views, masters.len()) {
            return Ok(BootstrapReport::default());
        }
        let mut report = BootstrapReport::default();
        let ids: Vec<String> = views.iter().map(|v| v.id.clone()).collect();

        // 1. Distinct config epochs before any slot is owned, as redis-cli does: two masters
        // with the same epoch would otherwise have to resolve a collision first. Only a node
        // that knows nobody else accepts one.
        for (index, (node, view)) in nodes.iter().zip(&views).enumerate() {
            if view.lines.len() == 1 && view.myself().is_some_and(|m| m.config_epoch == 0) {
                node.query::<()>(redis::cmd("CLUSTER").arg("SET-CONFIG-EPOCH").arg(index + 1))
                    .await?;
                report.epochs_set += 1;
            }
        }

        // 2. Slots: what any node believes assigned stays where it is; the rest of each
        // master's share goes to that master.
        let mut assigned = vec![false; SLOTS];
        for line in views.iter().flat_map(|v| &v.lines) {
            for &(start, end) in &line.slots {
                for slot in assigned.iter_mut().take(end + 1).skip(start) {
                    *slot = true;
                }
            }
        }
        for (index, (node, view)) in nodes.iter().zip(&views).take(masters.len()).enumerate() {
            let missing = unassigned(share(index, masters.len()), &assigned);
            if missing.is_empty() {
                continue;
            }
            if view.myself().is_some_and(NodeLine::is_replica) {
                return Err(DataPlaneError::Topology(format!(
                    "{} should hold slots {}-{} but is a replica: not changing a running cluster",
                    node.spec.name,
                    missing[0].0,
                    missing[missing.len() - 1].1
                )));
            }
            let mut command = redis::cmd("CLUSTER");
            command.arg("ADDSLOTSRANGE");
            for &(start, end) in &missing {
                command.arg(start).arg(end);
            }
            node.query::<()>(&command).await?;
            report.slot_ranges_added += missing.len();
        }

        // 3. Introduce to the first node every node it does not know, or knows at an address
        // the node no longer has; gossip does the rest. A node keeps its peers' addresses in
        // nodes.conf, so after every pod restarted with a new IP nobody reaches anybody and
        // cluster_state stays fail: met at its new address, a node whose ID is known already
        // gets that address (Redis updates it when the handshake names a known ID).
        let first = &views[0];
        let first_ip = resolve(nodes[0].spec).await?;
        for (node, view) in nodes.iter().zip(&views).skip(1) {
            // CLUSTER MEET takes an IP address, not a host name.
            let ip = resolve(node.spec).await?;
            if known_at(first, &view.id) != Some((ip.as_str(), node.spec.port)) {
                meet(&nodes[0], &ip, node.spec).await?;
                report.nodes_met += 1;
            }
            // And the first node to each node that has it at an old address (one that does
            // not know it at all learns it from the first node's handshake).
            if known_at(view, &first.id)
                .is_some_and(|at| at != (first_ip.as_str(), nodes[0].spec.port))
            {
                meet(node, &first_ip, nodes[0].spec).await?;
                report.nodes_met += 1;
            }
        }

        // 4. A replica can only follow a master it knows.
        self.wait_for(&nodes, "every node to know every other node", |views| {
            views.iter().all(|view| knows_exactly(view, &ids))
        })
        .await?;

        // 5. Attach each replica that is still an empty master; one that is already a replica,
        // or holds slots (it was promoted), is left alone.
        let views = read_views(&nodes).await?;
        for (j, (node, view)) in nodes.iter().zip(&views).skip(masters.len()).enumerate() {
            let attachable = view
                .myself()
                .is_some_and(|me| me.is_master() && me.slots.is_empty());
            if !attachable {
                continue;
            }
            let master = &ids[j % masters.len()];
            node.query::<()>(redis::cmd("CLUSTER").arg("REPLICATE").arg(master))
                .await?;
            report.replicas_attached += 1;
        }

        // 6. Done when every node says ok and the first node sees every replica attached.
        let replica_ids = &ids[masters.len()..];
        self.wait_for(
            &nodes,
            "cluster_state:ok on every node with every replica attached",
            |views| {
                views
                    .iter()
                    .all(|v| v.info.get("cluster_state").is_some_and(|s| s == "ok"))
                    && replica_ids.iter().all(|id| {
                        views[0]
                            .lines
                            .iter()
                            .any(|l| &l.id == id && (l.is_replica() || !l.slots.is_empty()))
                    })
            },
        )
        .await?;
        Ok(report)
    }

    /// Re-reads every node until `done` holds, for at most the formation timeout.
    async fn wait_for(
        &self,
        nodes: &[Node<'_>],
        what: &str,
        done: impl Fn(&[View]) -> bool,
    ) -> Result<(), DataPlaneError> {
        let deadline = tokio::time::Instant::now() + self.formation_timeout;
        loop {
            if done(&read_views(nodes).await?) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DataPlaneError::Timeout {
                    what: format!("waiting for {what}"),
                    after: self.formation_timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl RedisCluster for RedisClient {
    fn cluster_health<'a>(&'a self, nodes: &'a [RedisNode]) -> PlaneFuture<'a, ClusterHealth> {
        async move { Ok(self.health(nodes).await) }.boxed()
    }

    fn bootstrap<'a>(
        &'a self,
        masters: &'a [RedisNode],
        replicas: &'a [RedisNode],
    ) -> PlaneFuture<'a, BootstrapReport> {
        self.bootstrap_nodes(masters, replicas).boxed()
    }
}

/// A connected node.
struct Node<'n> {
    spec: &'n RedisNode,
    conn: MultiplexedConnection,
}

impl Node<'_> {
    async fn query<T: FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, DataPlaneError> {
        // A multiplexed connection is a cheap handle: cloning it shares the socket.
        let mut conn = self.conn.clone();
        command
            .query_async(&mut conn)
            .await
            .map_err(|source| DataPlaneError::Redis {
                node: self.spec.address(),
                source,
            })
    }
}

/// One node's view of the cluster.
struct View {
    id: String,
    info: HashMap<String, String>,
    lines: Vec<NodeLine>,
}

impl View {
    fn myself(&self) -> Option<&NodeLine> {
        self.lines.iter().find(|l| l.has_flag("myself"))
    }
}

async fn read_views(nodes: &[Node<'_>]) -> Result<Vec<View>, DataPlaneError> {
    let mut views = Vec::with_capacity(nodes.len());
    for node in nodes {
        let id: String = node.query(redis::cmd("CLUSTER").arg("MYID")).await?;
        let info: String = node.query(redis::cmd("CLUSTER").arg("INFO")).await?;
        let lines: String = node.query(redis::cmd("CLUSTER").arg("NODES")).await?;
        views.push(View {
            id,
            info: parse_info(&info),
            lines: parse_nodes(&lines),
        });
    }
    Ok(views)
}

/// State ok everywhere, every slot assigned, every node known to every node, and every
/// replica attached (or promoted: it holds slots).
fn is_complete(views: &[View], masters: usize) -> bool {
    let number = |view: &View, key: &str| -> usize {
        view.info.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    views.iter().all(|v| {
        v.info.get("cluster_state").is_some_and(|s| s == "ok")
            && number(v, "cluster_slots_assigned") == SLOTS
            && number(v, "cluster_known_nodes") == views.len()
    }) && views[masters..].iter().all(|v| {
        v.myself()
            .is_some_and(|me| me.is_replica() || !me.slots.is_empty())
    })
}

/// The IP and port `view` knows node `id` at, when it knows that node (`("", 0)`: no
/// address).
fn known_at<'v>(view: &'v View, id: &str) -> Option<(&'v str, u16)> {
    view.lines
        .iter()
        .find(|line| line.id == id)
        .map(|line| (line.ip.as_str(), line.port))
}

/// Asks `node` to meet the node of `spec` at `ip`.
async fn meet(node: &Node<'_>, ip: &str, spec: &RedisNode) -> Result<(), DataPlaneError> {
    let mut meet = redis::cmd("CLUSTER");
    meet.arg("MEET").arg(ip).arg(spec.port);
    if let Some(bus) = spec.bus_port {
        meet.arg(bus);
    }
    node.query::<()>(&meet).await
}

/// The view lists exactly `ids`, none of them still in handshake.
fn knows_exactly(view: &View, ids: &[String]) -> bool {
    view.lines.len() == ids.len()
        && view
            .lines
            .iter()
            .all(|l| ids.contains(&l.id) && !l.has_flag("handshake") && !l.has_flag("noaddr"))
}

async fn resolve(spec: &RedisNode) -> Result<String, DataPlaneError> {
    let unresolved = |detail: String| {
        DataPlaneError::Topology(format!("cannot resolve {}: {detail}", spec.address()))
    };
    let mut addresses = tokio::net::lookup_host((spec.host.as_str(), spec.port))
        .await
        .map_err(|e| unresolved(e.to_string()))?;
    addresses
        .next()
        .map(|address| address.ip().to_string())
        .ok_or_else(|| unresolved("no address".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_says_formed_only_with_every_slot_and_node() {
        let mut health = ClusterHealth {
            state: "ok".into(),
            slots_assigned: 16384,
            slots_ok: 16384,
            known_nodes: 6,
            empty_masters: 0,
            unreachable: vec![],
        };
        assert!(health.is_ok() && health.is_formed(6));
        health.empty_masters = 1;
        assert!(!health.is_formed(6));
        health.empty_masters = 0;
        health.known_nodes = 1;
        assert!(!health.is_formed(6));
    }
}
