//! The data plane of the Kubernetes tests. Under KWOK the pods have fake IPs and nothing
//! answers there (TESTENV.md), so these tests script what the data plane says instead; the
//! real clients beside it are tested against real servers.
//!
//! Until scripted otherwise it is healthy: Redis nodes are fresh until bootstrapped, then
//! `ok`; the MySQL primary is the server with the lowest ordinal and every replica
//! replicates without lag; Orchestrator does not know the cluster (the reconciler then asks
//! the servers which one is writable).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use futures::FutureExt;

use super::mysql::{BinlogListing, BinlogReader, PrimaryStatus};
use super::{
    BootstrapReport, CloneProgress, ClusterHealth, DataPlaneError, InstanceKey, MysqlLogin,
    MysqlReplication, MysqlServer, Orchestrator, PlaneFuture, RedisCluster, RedisNode,
    ReplicaHealth, ReplicaStatus, ReplicationHealth,
};

/// A replica fault a test can inject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaFault {
    /// The SQL thread stopped with this error.
    SqlThreadStopped(String),
    /// The IO thread stopped with this error.
    IoThreadStopped(String),
    /// Replicating, this many seconds behind.
    Lagging(u64),
}

/// The scripted data plane; see the module documentation for its defaults.
#[derive(Debug, Default)]
pub struct Scripted {
    // A std mutex: held for a few field reads or writes, never across an `.await`.
    script: Mutex<Script>,
}

#[derive(Debug, Default)]
struct Script {
    primary: Option<String>,
    is_orchestrator_down: bool,
    replica_faults: HashMap<String, ReplicaFault>,
    redis_state: Option<String>,
    bootstrapped: HashSet<String>,
    bootstraps: usize,
    orchestrator_calls: usize,
    fenced: Vec<String>,
    acknowledged: Vec<String>,
    never_promoted: Vec<String>,
    forgotten: Vec<String>,
    made_writable: Vec<String>,
    is_takeover_failing: bool,
    clones: HashMap<String, Vec<CloneProgress>>,
    binlogs: HashMap<String, ScriptedBinlogs>,
}

/// A server's binary logs as a test scripts them.
#[derive(Clone, Debug, Default)]
struct ScriptedBinlogs {
    position: String,
    logs: Vec<(String, Vec<u8>)>,
    flushes: usize,
}

impl Scripted {
    fn with<T>(&self, f: impl FnOnce(&mut Script) -> T) -> T {
        // A panic while holding it cannot leave the script half-changed in a way that
        // matters to a test, so a poisoned lock is used as is.
        let mut script = self
            .script
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut script)
    }

    /// Makes `pod` the primary: Orchestrator reports it and it is the only writable server
    /// (what Orchestrator leaves behind after promoting it). `None` restores the default.
    pub fn set_primary(&self, pod: Option<&str>) {
        self.with(|s| s.primary = pod.map(str::to_owned));
    }

    /// Makes Orchestrator's API unreachable (or reachable again).
    pub fn set_orchestrator_down(&self, is_down: bool) {
        self.with(|s| s.is_orchestrator_down = is_down);
    }

    /// Injects a fault into the replica `pod`, or clears it with `None`.
    pub fn set_replica_fault(&self, pod: &str, fault: Option<ReplicaFault>) {
        self.with(|s| match fault {
            Some(fault) => {
                s.replica_faults.insert(pod.to_owned(), fault);
            }
            None => {
                s.replica_faults.remove(pod);
            }
        });
    }

    /// Forces the `cluster_state` every formed Redis cluster reports (`Some("fail")`), or
    /// restores `ok` with `None`.
    pub fn set_redis_state(&self, state: Option<&str>) {
        self.with(|s| s.redis_state = state.map(str::to_owned));
    }

    /// Bootstraps that changed something.
    pub fn bootstraps(&self) -> usize {
        self.with(|s| s.bootstraps)
    }

    /// Failed servers whose recoveries were acknowledged, in order.
    pub fn acknowledged(&self) -> Vec<String> {
        self.with(|s| s.acknowledged.clone())
    }

    /// Calls made to Orchestrator's API so far (each periodic check makes one).
    pub fn orchestrator_calls(&self) -> usize {
        self.with(|s| s.orchestrator_calls)
    }

    /// Makes the clone donor of the server `donor` (pod name) report `copies`.
    pub fn set_clone_progress(&self, donor: &str, copies: Vec<CloneProgress>) {
        self.with(|s| s.clones.insert(donor.to_owned(), copies));
    }

    /// Gives the server `pod` closed binary logs (name, bytes) and its GTID position.
    pub fn set_binlogs(&self, pod: &str, position: &str, logs: Vec<(String, Vec<u8>)>) {
        self.with(|s| {
            let entry = s.binlogs.entry(pod.to_owned()).or_default();
            entry.position = position.to_owned();
            entry.logs = logs;
        });
    }

    /// How often the server `pod` was told to close its binary log.
    pub fn binlog_flushes(&self, pod: &str) -> usize {
        self.with(|s| s.binlogs.get(pod).map_or(0, |b| b.flushes))
    }

    /// Servers Orchestrator was told never to promote, in order (host names).
    pub fn never_promoted(&self) -> Vec<String> {
        self.with(|s| s.never_promoted.clone())
    }

    /// Makes Orchestrator's graceful takeovers fail (after turning the primary read-only,
    /// as a real one can), or succeed again.
    pub fn set_takeover_failing(&self, is_failing: bool) {
        self.with(|s| s.is_takeover_failing = is_failing);
    }

    /// Servers Orchestrator was told to make writable, in order (host names).
    pub fn made_writable(&self) -> Vec<String> {
        self.with(|s| s.made_writable.clone())
    }

    /// Servers Orchestrator was told to forget, in order (host names).
    pub fn forgotten(&self) -> Vec<String> {
        self.with(|s| s.forgotten.clone())
    }

    /// Servers fenced so far, in order.
    pub fn fenced(&self) -> Vec<String> {
        self.with(|s| s.fenced.clone())
    }
}

/// The number at the end of a StatefulSet pod name (`db-12` → 12).
fn ordinal(name: &str) -> u64 {
    name.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

impl RedisCluster for Scripted {
    fn cluster_health<'a>(&'a self, nodes: &'a [RedisNode]) -> PlaneFuture<'a, ClusterHealth> {
        let health = self.with(|s| {
            let count = u32::try_from(nodes.len()).unwrap_or(u32::MAX);
            if !nodes.is_empty() && nodes.iter().all(|n| s.bootstrapped.contains(&n.address())) {
                ClusterHealth {
                    state: s.redis_state.clone().unwrap_or_else(|| "ok".into()),
                    slots_assigned: 16384,
                    slots_ok: 16384,
                    known_nodes: count,
                    empty_masters: 0,
                    unreachable: vec![],
                }
            } else {
                // Fresh nodes: each knows only itself and serves nothing.
                ClusterHealth {
                    state: "fail".into(),
                    slots_assigned: 0,
                    slots_ok: 0,
                    known_nodes: 1,
                    empty_masters: 1,
                    unreachable: vec![],
                }
            }
        });
        async move { Ok(health) }.boxed()
    }

    fn bootstrap<'a>(
        &'a self,
        masters: &'a [RedisNode],
        replicas: &'a [RedisNode],
    ) -> PlaneFuture<'a, BootstrapReport> {
        let report = self.with(|s| {
            let mut report = BootstrapReport::default();
            for node in masters.iter().chain(replicas) {
                if s.bootstrapped.insert(node.address()) {
                    report.nodes_met += 1;
                }
            }
            if !report.changed_nothing() {
                s.bootstraps += 1;
                report.slot_ranges_added = masters.len();
                report.replicas_attached = replicas.len();
            }
            report
        });
        async move { Ok(report) }.boxed()
    }
}

impl MysqlReplication for Scripted {
    fn binlogs<'a>(
        &'a self,
        donor: &'a MysqlServer,
        _password: &'a str,
        flush: bool,
    ) -> PlaneFuture<'a, BinlogListing> {
        let listing = self.with(|s| {
            let binlogs = s.binlogs.entry(donor.name.clone()).or_default();
            binlogs.flushes += usize::from(flush);
            BinlogListing {
                position: binlogs.position.clone(),
                closed: binlogs
                    .logs
                    .iter()
                    .map(|(name, bytes)| (name.clone(), bytes.len() as u64))
                    .collect(),
            }
        });
        async move { Ok(listing) }.boxed()
    }

    fn open_binlog<'a>(
        &'a self,
        donor: &'a MysqlServer,
        _password: &'a str,
        name: &'a str,
    ) -> PlaneFuture<'a, BinlogReader> {
        let bytes = self.with(|s| {
            s.binlogs
                .get(&donor.name)
                .and_then(|b| b.logs.iter().find(|(log, _)| log == name))
                .map(|(_, bytes)| bytes.clone())
                .unwrap_or_default()
        });
        async move { Ok(Box::new(std::io::Cursor::new(bytes)) as BinlogReader) }.boxed()
    }

    fn clone_progress<'a>(&'a self, donor: &'a MysqlServer) -> PlaneFuture<'a, Vec<CloneProgress>> {
        let copies = self.with(|s| s.clones.get(&donor.name).cloned().unwrap_or_default());
        async move { Ok(copies) }.boxed()
    }

    fn fence<'a>(&'a self, _login: &'a MysqlLogin, server: &'a MysqlServer) -> PlaneFuture<'a, ()> {
        self.with(|s| s.fenced.push(server.name.clone()));
        async { Ok(()) }.boxed()
    }

    /// Scripted servers run with whatever the spec asks.
    fn apply_durability<'a>(
        &'a self,
        _login: &'a MysqlLogin,
        _server: &'a MysqlServer,
        _durability: &'a crate::dataplane::Durability,
    ) -> PlaneFuture<'a, bool> {
        async { Ok(false) }.boxed()
    }

    fn replication_health<'a>(
        &'a self,
        _login: &'a MysqlLogin,
        _primary: &'a MysqlServer,
        replicas: &'a [MysqlServer],
    ) -> PlaneFuture<'a, ReplicationHealth> {
        let health = self.with(|s| ReplicationHealth {
            primary: Ok(PrimaryStatus {
                is_read_only: false,
                gtid_position: "0-1-100".into(),
                is_semisync_waiting: Some(true),
            }),
            replicas: replicas
                .iter()
                .map(|server| {
                    let mut status = ReplicaStatus {
                        is_io_running: true,
                        is_sql_running: true,
                        seconds_behind: Some(0),
                        gtid_position: "0-1-100".into(),
                        source: "primary:3306".into(),
                        last_error: None,
                    };
                    match s.replica_faults.get(&server.name) {
                        Some(ReplicaFault::SqlThreadStopped(error)) => {
                            status.is_sql_running = false;
                            status.seconds_behind = None;
                            status.last_error = Some(error.clone());
                        }
                        Some(ReplicaFault::IoThreadStopped(error)) => {
                            status.is_io_running = false;
                            status.seconds_behind = None;
                            status.last_error = Some(error.clone());
                        }
                        Some(ReplicaFault::Lagging(seconds)) => {
                            status.seconds_behind = Some(*seconds);
                        }
                        None => {}
                    }
                    ReplicaHealth::Configured {
                        name: server.name.clone(),
                        status,
                    }
                })
                .collect(),
        });
        async move { Ok(health) }.boxed()
    }

    fn primary_of<'a>(
        &'a self,
        _login: &'a MysqlLogin,
        servers: &'a [MysqlServer],
    ) -> PlaneFuture<'a, Option<String>> {
        let scripted = self.with(|s| s.primary.clone());
        let primary = match scripted {
            Some(pod) => servers.iter().find(|s| s.name == pod),
            None => servers.iter().min_by_key(|s| ordinal(&s.name)),
        }
        .map(|server| server.name.clone());
        async move { Ok(primary) }.boxed()
    }
}

impl Orchestrator for Scripted {
    fn clusters<'a>(&'a self, _base_url: &'a str) -> PlaneFuture<'a, Vec<String>> {
        let answer = self.with(|s| {
            s.orchestrator_calls += 1;
            if s.is_orchestrator_down {
                Err(down())
            } else {
                Ok(s.primary.iter().map(|p| format!("{p}:3306")).collect())
            }
        });
        async move { answer }.boxed()
    }

    fn primary<'a>(&'a self, base_url: &'a str, alias: &'a str) -> PlaneFuture<'a, InstanceKey> {
        let answer = self.with(|s| {
            s.orchestrator_calls += 1;
            match (&s.primary, s.is_orchestrator_down) {
                (_, true) => Err(down()),
                // Orchestrator names servers by the host name they report: `<pod>.<service>`.
                (Some(pod), false) => Ok(InstanceKey {
                    hostname: format!("{pod}.{alias}-mysql"),
                    port: 3306,
                }),
                (None, false) => Err(DataPlaneError::OrchestratorApi {
                    url: format!("{base_url}/api/master/{alias}"),
                    status: 500,
                    message: format!("No masters found for {alias}"),
                }),
            }
        });
        async move { answer }.boxed()
    }

    /// Promotes the pod `to` names (its first DNS label), as Orchestrator's takeover does.
    fn graceful_takeover<'a>(
        &'a self,
        _base_url: &'a str,
        _alias: &'a str,
        to: &'a InstanceKey,
    ) -> PlaneFuture<'a, InstanceKey> {
        let answer = self.with(|s| {
            s.orchestrator_calls += 1;
            if s.is_orchestrator_down {
                return Err(down());
            }
            if s.is_takeover_failing {
                return Err(DataPlaneError::Topology(
                    "scripted: the takeover failed after the primary turned read-only".into(),
                ));
            }
            let pod = to.hostname.split('.').next().unwrap_or_default();
            s.primary = Some(pod.to_owned());
            Ok(to.clone())
        });
        async move { answer }.boxed()
    }

    fn acknowledge_recovery<'a>(
        &'a self,
        _base_url: &'a str,
        _alias: &'a str,
        failed: &'a InstanceKey,
    ) -> PlaneFuture<'a, ()> {
        let answer = self.with(|s| {
            s.orchestrator_calls += 1;
            if s.is_orchestrator_down {
                return Err(down());
            }
            s.acknowledged.push(failed.hostname.clone());
            Ok(())
        });
        async move { answer }.boxed()
    }

    /// The primary, and the servers told never to be promoted that were not forgotten
    /// since: what a scale-down leaves in Orchestrator's view.
    fn instances<'a>(
        &'a self,
        _base_url: &'a str,
        alias: &'a str,
    ) -> PlaneFuture<'a, Vec<InstanceKey>> {
        let answer = self.with(|s| {
            s.orchestrator_calls += 1;
            if s.is_orchestrator_down {
                return Err(down());
            }
            let mut hosts: Vec<String> = s
                .primary
                .iter()
                .map(|pod| format!("{pod}.{alias}-mysql"))
                .collect();
            hosts.extend(
                s.never_promoted
                    .iter()
                    .filter(|host| !s.forgotten.contains(host))
                    .cloned(),
            );
            Ok(hosts
                .into_iter()
                .map(|hostname| InstanceKey {
                    hostname,
                    port: 3306,
                })
                .collect())
        });
        async move { answer }.boxed()
    }

    fn never_promote<'a>(
        &'a self,
        _base_url: &'a str,
        server: &'a InstanceKey,
    ) -> PlaneFuture<'a, ()> {
        self.act_on(server, |s| &mut s.never_promoted)
    }

    fn forget<'a>(&'a self, _base_url: &'a str, server: &'a InstanceKey) -> PlaneFuture<'a, ()> {
        self.act_on(server, |s| &mut s.forgotten)
    }

    fn set_writable<'a>(
        &'a self,
        _base_url: &'a str,
        server: &'a InstanceKey,
    ) -> PlaneFuture<'a, ()> {
        self.act_on(server, |s| &mut s.made_writable)
    }
}

impl Scripted {
    /// An acting call on one server, recorded in the list `record` picks.
    fn act_on<'a>(
        &'a self,
        server: &'a InstanceKey,
        record: fn(&mut Script) -> &mut Vec<String>,
    ) -> PlaneFuture<'a, ()> {
        let answer = self.with(|s| {
            s.orchestrator_calls += 1;
            if s.is_orchestrator_down {
                return Err(down());
            }
            record(s).push(server.hostname.clone());
            Ok(())
        });
        async move { answer }.boxed()
    }
}

fn down() -> DataPlaneError {
    DataPlaneError::Topology("scripted: Orchestrator is down".into())
}
