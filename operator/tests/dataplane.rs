//! The real data-plane clients against real servers:
//!
//! - Redis: six fresh `redis-server --cluster-enabled yes` processes per test, on free
//!   loopback ports in a directory of their own (stopped and removed at the end, failed test
//!   or not), bootstrapped into a cluster;
//! - MySQL: the MariaDB primary and its two GTID replicas of `tests/env/testenv.sh`
//!   (`SNS_TEST_MYSQL_*`); one test stops a replica's SQL thread and starts it again;
//! - the MySQL pods' clone donor (donor.sh, socat and mariadb-backup) serving replica n3;
//! - Orchestrator cannot run here: an in-test HTTP server answers like its API does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use sns_operator::dataplane::mysql::MysqlClient;
use sns_operator::dataplane::orchestrator::HttpOrchestrator;
use sns_operator::dataplane::redis::RedisClient;
use sns_operator::dataplane::{
    DataPlaneError, InstanceKey, MysqlLogin, MysqlReplication, MysqlServer, Orchestrator,
    RedisCluster, RedisNode, ReplicaHealth,
};

const TIMEOUT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------
// Redis

/// Six fresh cluster-enabled redis-server processes; stopped and their directory removed
/// when dropped, so a failing test cleans up too.
struct RedisNodes {
    dir: PathBuf,
    children: Vec<Child>,
    nodes: Vec<RedisNode>,
}

impl RedisNodes {
    /// Starts `count` nodes, picking new ports when one was taken meanwhile.
    async fn start(count: usize) -> Self {
        // One start at a time in this binary: two tests picking free ports together can be
        // handed the same ones.
        static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _starting = STARTING.lock().await;
        for _ in 0..3 {
            if let Some(nodes) = Self::try_start(count).await {
                return nodes;
            }
        }
        panic!("{count} redis-server processes did not all start in 3 attempts");
    }

    /// One attempt; `None` (the processes stopped) when a node exits or never answers.
    async fn try_start(count: usize) -> Option<Self> {
        let dir =
            std::env::temp_dir().join(format!("sns-redis-cluster-{:08x}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut this = Self {
            dir,
            children: Vec::new(),
            nodes: Vec::new(),
        };
        // The bus port is picked free too (port + 10000 may be taken or out of range).
        let ports = free_ports(count * 2);
        for index in 0..count {
            let (port, bus) = (ports[index * 2], ports[index * 2 + 1]);
            let node_dir = this.dir.join(format!("n{index}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            this.children.push(spawn_redis(&node_dir, port, bus));
            this.nodes.push(RedisNode {
                name: format!("n{index}"),
                host: "127.0.0.1".into(),
                port,
                bus_port: Some(bus),
            });
        }
        this.wait_for_pings().await.then_some(this)
    }

    /// Stops every node and starts it again in its directory (its nodes.conf: the cluster it
    /// belonged to, its peers at their old addresses) on new ports: as when every pod of a
    /// StatefulSet is deleted at once and comes back with a new IP.
    async fn restart_on_new_ports(&mut self) {
        for child in &mut self.children {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let ports = free_ports(self.nodes.len() * 2);
        for (index, node) in self.nodes.iter_mut().enumerate() {
            node.port = ports[index * 2];
            node.bus_port = Some(ports[index * 2 + 1]);
            self.children[index] = spawn_redis(
                &self.dir.join(format!("n{index}")),
                node.port,
                ports[index * 2 + 1],
            );
        }
        assert!(self.wait_for_pings().await, "the restarted nodes answer");
    }

    /// Whether every node answers PING within 10 s (false as soon as one has exited).
    async fn wait_for_pings(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        for index in 0..self.nodes.len() {
            while ping(&self.nodes[index]).await.is_err() {
                // Exited (its port was taken after we picked it), or too slow: start over.
                let exited = self.children[index].try_wait().ok().flatten().is_some();
                if exited || Instant::now() >= deadline {
                    eprintln!(
                        "{} did not answer PING; starting the nodes again",
                        self.nodes[index].name
                    );
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        true
    }
}

/// A cluster-enabled redis-server on `port` (bus `bus`) whose files are in `node_dir`.
fn spawn_redis(node_dir: &std::path::Path, port: u16, bus: u16) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--cluster-port",
            &bus.to_string(),
        ])
        .args(["--bind", "127.0.0.1", "--cluster-enabled", "yes"])
        .args(["--cluster-config-file", "nodes.conf"])
        .args([
            "--cluster-node-timeout",
            "500",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--repl-diskless-sync-delay", "0"])
        .arg("--dir")
        .arg(node_dir)
        .arg("--logfile")
        .arg(node_dir.join("redis.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server runs (apt-get install redis-server)")
}

impl Drop for RedisNodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Ports the kernel hands out as free right now.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

async fn connection(node: &RedisNode) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(format!("redis://{}/", node.address()))?
        .get_multiplexed_async_connection()
        .await
}

async fn ping(node: &RedisNode) -> redis::RedisResult<()> {
    let mut conn = connection(node).await?;
    redis::cmd("PING").query_async(&mut conn).await
}

async fn query(node: &RedisNode, args: &[&str]) -> String {
    let mut conn = connection(node).await.unwrap();
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query_async(&mut conn).await.unwrap()
}

/// Masters (with their slot count) and, for each, the ids of the replicas following it, as
/// `node` sees them.
async fn topology(node: &RedisNode) -> Vec<(String, usize, Vec<String>)> {
    let text = query(node, &["CLUSTER", "NODES"]).await;
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let slot_count = |fields: &[&str]| -> usize {
        fields[8..]
            .iter()
            .map(|range| match range.split_once('-') {
                Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
                None => 1,
            })
            .sum()
    };
    let mut masters: Vec<_> = lines
        .iter()
        .filter(|f| f[2].split(',').any(|flag| flag == "master"))
        .map(|f| {
            let replicas = lines
                .iter()
                .filter(|r| r[3] == f[0])
                .map(|r| r[0].to_owned())
                .collect();
            (f[0].to_owned(), slot_count(f), replicas)
        })
        .collect();
    masters.sort();
    masters
}

#[tokio::test]
async fn bootstrap_forms_a_cluster_from_fresh_nodes_and_then_changes_nothing() {
    let servers = RedisNodes::start(6).await;
    let (masters, replicas) = servers.nodes.split_at(3);
    let client = RedisClient::new(TIMEOUT);

    let before = client.cluster_health(&servers.nodes).await.unwrap();
    assert_eq!(before.state, "fail", "{before:?}");
    assert!(!before.is_formed(6));

    let report = client.bootstrap(masters, replicas).await.unwrap();
    assert_eq!(report.slot_ranges_added, 3, "{report:?}");
    assert_eq!(report.nodes_met, 5, "{report:?}");
    assert_eq!(report.replicas_attached, 3, "{report:?}");

    let health = client.cluster_health(&servers.nodes).await.unwrap();
    assert!(health.is_ok(), "{health:?}");
    assert!(health.is_formed(6), "{health:?}");
    assert_eq!(health.slots_assigned, 16384);
    assert_eq!(health.known_nodes, 6);

    // 3 masters, each with its even share of the slots and one replica: replica j follows
    // master j.
    let formed = topology(&masters[0]).await;
    assert_eq!(formed.len(), 3, "{formed:?}");
    assert_eq!(formed.iter().map(|m| m.1).sum::<usize>(), 16384);
    for (j, master) in masters.iter().enumerate() {
        let id = query(master, &["CLUSTER", "MYID"]).await;
        let replica_id = query(&replicas[j], &["CLUSTER", "MYID"]).await;
        let entry = formed.iter().find(|m| m.0 == id).unwrap();
        assert!(entry.1 >= 5461, "{entry:?}");
        assert_eq!(entry.2, vec![replica_id], "replica {j} follows master {j}");
    }

    let again = client.bootstrap(masters, replicas).await.unwrap();
    assert!(again.changed_nothing(), "{again:?}");
    assert_eq!(topology(&masters[0]).await, formed);
}

#[tokio::test]
async fn a_cluster_whose_nodes_all_came_back_at_new_addresses_is_met_again() {
    let mut servers = RedisNodes::start(6).await;
    let client = RedisClient::new(TIMEOUT);
    {
        let (masters, replicas) = servers.nodes.split_at(3);
        client.bootstrap(masters, replicas).await.unwrap();
    }
    let formed = topology(&servers.nodes[0]).await;

    // Every node restarts on a new port, remembering its peers at their old ones.
    servers.restart_on_new_ports().await;
    let stale = client.cluster_health(&servers.nodes).await.unwrap();
    assert!(stale.unreachable.is_empty(), "{stale:?}");
    assert!(
        stale.is_formed(6),
        "nodes.conf keeps the slots and the peers: {stale:?}"
    );

    let (masters, replicas) = servers.nodes.split_at(3);
    let report = client.bootstrap(masters, replicas).await.unwrap();
    assert!(
        report.nodes_met >= 5,
        "every node met at its new address: {report:?}"
    );
    assert_eq!(report.slot_ranges_added, 0, "{report:?}");
    assert_eq!(report.replicas_attached, 0, "{report:?}");
    let health = client.cluster_health(&servers.nodes).await.unwrap();
    assert!(health.is_ok() && health.is_formed(6), "{health:?}");
    assert_eq!(
        topology(&servers.nodes[0]).await,
        formed,
        "the same masters, slots and replicas"
    );
}

#[tokio::test]
async fn bootstrap_completes_a_half_formed_cluster() {
    let servers = RedisNodes::start(6).await;
    let (masters, replicas) = servers.nodes.split_at(3);
    // Arrange: what a bootstrap interrupted early leaves: the first master holds its slots
    // and has met one other node; nobody else has anything.
    query(&masters[0], &["CLUSTER", "ADDSLOTSRANGE", "0", "5460"]).await;
    let bus = masters[1].bus_port.unwrap().to_string();
    let port = masters[1].port.to_string();
    query(&masters[0], &["CLUSTER", "MEET", "127.0.0.1", &port, &bus]).await;

    let report = RedisClient::new(TIMEOUT)
        .bootstrap(masters, replicas)
        .await
        .unwrap();

    assert_eq!(
        report.slot_ranges_added, 2,
        "only the missing shares: {report:?}"
    );
    assert_eq!(report.replicas_attached, 3, "{report:?}");
    let health = RedisClient::new(TIMEOUT)
        .cluster_health(&servers.nodes)
        .await
        .unwrap();
    assert!(health.is_ok() && health.is_formed(6), "{health:?}");
    let formed = topology(&replicas[2]).await;
    assert!(formed.iter().all(|m| m.2.len() == 1), "{formed:?}");
}

#[tokio::test]
async fn cluster_health_lists_a_node_that_does_not_answer() {
    let servers = RedisNodes::start(1).await;
    let mut nodes = servers.nodes.clone();
    nodes.push(RedisNode {
        name: "gone".into(),
        host: "127.0.0.1".into(),
        port: free_ports(1)[0],
        bus_port: None,
    });
    let health = RedisClient::new(TIMEOUT)
        .cluster_health(&nodes)
        .await
        .unwrap();
    assert_eq!(health.unreachable.len(), 1, "{health:?}");
    assert!(health.unreachable[0].starts_with("gone:"), "{health:?}");
    assert!(!health.is_ok());
}

// ---------------------------------------------------------------------------------------
// MySQL

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the services with tests/env/testenv.sh and source its env file")
    })
}

/// n1 (primary), n2, n3 (replicas), reached over TCP as the admin user.
fn mysql_servers() -> (MysqlLogin, MysqlServer, Vec<MysqlServer>) {
    let server = |name: &str, port: &str| MysqlServer {
        name: name.into(),
        host: "127.0.0.1".into(),
        port: port.parse().unwrap(),
    };
    let replica_ports = env("SNS_TEST_MYSQL_REPLICA_PORTS");
    let (second, third) = replica_ports.split_once(',').unwrap();
    let login = MysqlLogin {
        user: env("SNS_TEST_MYSQL_ADMIN_USER"),
        password: SecretString::from(env("SNS_TEST_MYSQL_ADMIN_PASSWORD")),
    };
    (
        login,
        server("n1", &env("SNS_TEST_MYSQL_PRIMARY_PORT")),
        vec![server("n2", second), server("n3", third)],
    )
}

/// Runs SQL as root over a node's unix socket (root is socket-only).
fn root_sql(node: &str, sql: &str) {
    let socket = PathBuf::from(env("SNS_TEST_MYSQL_SOCKET_DIR")).join(format!("{node}.sock"));
    let output = Command::new("mariadb")
        .arg("--no-defaults")
        .arg("--user=root")
        .arg(format!("--socket={}", socket.display()))
        .args(["-e", sql])
        .output()
        .expect("the mariadb client runs");
    assert!(
        output.status.success(),
        "{sql} on {node}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts the replica's threads again when dropped: the servers are shared with other tests.
struct RestartReplica(&'static str);

impl Drop for RestartReplica {
    fn drop(&mut self) {
        root_sql(self.0, "START SLAVE");
    }
}

#[tokio::test]
async fn replication_health_sees_a_stopped_sql_thread_until_it_is_started_again() {
    let (login, primary, replicas) = mysql_servers();
    let client = MysqlClient::new(TIMEOUT);
    let lag = Duration::from_secs(30);

    let health = client
        .replication_health(&login, &primary, &replicas)
        .await
        .unwrap();
    assert!(health.problems("n1", lag, false).is_empty(), "{health:?}");
    let status = health.primary.as_ref().unwrap();
    assert!(!status.is_read_only);
    assert!(status.gtid_position.starts_with("0-1-"), "{status:?}");
    // The shared servers replicate asynchronously; the primary still says so.
    assert_eq!(status.is_semisync_waiting, Some(false), "{status:?}");
    for replica in &health.replicas {
        let ReplicaHealth::Configured { status, .. } = replica else {
            panic!("{replica:?}")
        };
        assert!(status.is_io_running && status.is_sql_running, "{status:?}");
        assert!(status.seconds_behind.is_some(), "{status:?}");
        assert!(!status.gtid_position.is_empty(), "{status:?}");
        assert!(
            status.source.ends_with(&format!(":{}", primary.port)),
            "{status:?}"
        );
    }

    // Act: stop n3's SQL thread (restarted at the end whatever happens).
    let _restart = RestartReplica("n3");
    root_sql("n3", "STOP SLAVE SQL_THREAD");
    let health = client
        .replication_health(&login, &primary, &replicas)
        .await
        .unwrap();
    let problems = health.problems("n1", lag, false);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].reason, "ReplicaNotReplicating");
    assert!(
        problems[0]
            .message
            .starts_with("n3 is not replicating: SQL thread stopped"),
        "{problems:?}"
    );

    root_sql("n3", "START SLAVE");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = client
            .replication_health(&login, &primary, &replicas)
            .await
            .unwrap();
        if health.problems("n1", lag, false).is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still unhealthy: {health:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Held by the tests that change a server's role, and by those that read roles, so they do
/// not see each other's changes (tests of one binary run in parallel).
static ROLES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn fencing_makes_a_writable_server_read_only() {
    let _roles = ROLES.lock().await;
    let (login, _, replicas) = mysql_servers();
    // n3 plays a former primary still taking writes (a replica made writable for the test;
    // the application never writes to it), then is fenced.
    root_sql("n3", "SET GLOBAL read_only = 0");
    let fenced = MysqlClient::new(TIMEOUT).fence(&login, &replicas[1]).await;
    let read_only = MysqlClient::new(TIMEOUT)
        .primary_of(&login, &replicas[1..])
        .await;
    // Put it back whatever happened above.
    root_sql("n3", "SET GLOBAL read_only = 1");
    fenced.unwrap();
    assert_eq!(read_only.unwrap(), None, "n3 refuses writes once fenced");
}

#[tokio::test]
async fn primary_of_names_the_one_writable_server() {
    let _roles = ROLES.lock().await;
    let (login, primary, replicas) = mysql_servers();
    let mut servers = replicas.clone();
    servers.insert(1, primary);
    let found = MysqlClient::new(TIMEOUT)
        .primary_of(&login, &servers)
        .await
        .unwrap();
    assert_eq!(found.as_deref(), Some("n1"));
    assert_eq!(
        MysqlClient::new(TIMEOUT)
            .primary_of(&login, &replicas)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_reported_not_fatal() {
    let (login, primary, _) = mysql_servers();
    let gone = MysqlServer {
        name: "gone".into(),
        host: "127.0.0.1".into(),
        port: free_ports(1)[0],
    };
    let health = MysqlClient::new(TIMEOUT)
        .replication_health(&login, &primary, std::slice::from_ref(&gone))
        .await
        .unwrap();
    assert!(
        matches!(&health.replicas[0], ReplicaHealth::Unreachable { name, .. } if name == "gone"),
        "{health:?}"
    );
    let problems = health.problems("n1", Duration::from_secs(30), false);
    assert_eq!(problems[0].reason, "ReplicaUnreachable", "{problems:?}");
}

/// The MySQL pods' clone donor (`operator/assets/mysql/donor.sh`) serving the replica n3's
/// data on a free port; stopped when dropped.
struct Donor {
    child: Child,
    state: PathBuf,
    port: u16,
}

impl Donor {
    async fn start(data: &str, mysql_port: u16) -> Self {
        let state = std::env::temp_dir().join(format!("sns-donor-{:08x}", rand::random::<u32>()));
        let port = free_ports(1)[0];
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/mysql/donor.sh");
        let child = Command::new("bash")
            .arg(script)
            .env("SNS_DONOR_STATE", &state)
            .env("SNS_DONOR_PORT", port.to_string())
            .env("SNS_DONOR_DATA", data)
            .env("SNS_DONOR_MYSQL", format!("127.0.0.1:{mysql_port}"))
            .env("SNS_DONOR_USER", env("SNS_TEST_MYSQL_ADMIN_USER"))
            .env(
                "MARIADB_ROOT_PASSWORD",
                env("SNS_TEST_MYSQL_ADMIN_PASSWORD"),
            )
            .env("REPLICATION_PASSWORD", "the-replication-password")
            .stdout(Stdio::null())
            .spawn()
            .expect("bash runs donor.sh");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the donor never listened on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, state, port }
    }

    fn server(&self) -> MysqlServer {
        MysqlServer {
            name: "n3".into(),
            host: "127.0.0.1".into(),
            port: self.port,
        }
    }

    /// Sends `request` and returns the connection, to read the answer from.
    async fn ask(&self, request: &str) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        stream
    }
}

impl Drop for Donor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

#[tokio::test]
async fn the_clone_donor_streams_a_copy_that_prepares_at_the_replicas_gtid_position() {
    use tokio::io::AsyncReadExt;
    let (login, _, replicas) = mysql_servers();
    let n3 = &replicas[1];
    let sql = |statement: &str| {
        let output = Command::new("mariadb")
            .args([
                "--no-defaults",
                "--batch",
                "--skip-column-names",
                "--host=127.0.0.1",
            ])
            .arg(format!("--port={}", n3.port))
            .arg(format!("--user={}", login.user))
            .env("MYSQL_PWD", env("SNS_TEST_MYSQL_ADMIN_PASSWORD"))
            .args(["-e", statement])
            .output()
            .expect("the mariadb client runs");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let data = sql("SELECT @@datadir");
    // What the image's entrypoint leaves beside the data for its health check.
    let healthcheck = PathBuf::from(&data).join(".my-healthcheck.cnf");
    std::fs::write(&healthcheck, "[mariadb-client]\nuser=healthcheck\n").unwrap();
    let donor = Donor::start(&data, n3.port).await;
    let client = MysqlClient::new(TIMEOUT);

    // A wrong password gets nothing, and no copy is in progress.
    let mut refused = Vec::new();
    donor
        .ask("CLONE wrong-password intruder-0\n")
        .await
        .read_to_end(&mut refused)
        .await
        .unwrap();
    assert!(refused.is_empty(), "{} bytes sent", refused.len());
    assert_eq!(
        client.clone_progress(&donor.server()).await.unwrap(),
        vec![]
    );

    // Act: a new server asks for a copy and reads it slowly, so that it is in progress.
    let position = sql("SELECT @@gtid_slave_pos");
    let mut stream = donor
        .ask("CLONE the-replication-password new-server-3\n")
        .await;
    let mut copy = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    let mut progress = Vec::new();
    loop {
        let read = stream.read(&mut chunk).await.unwrap();
        if read == 0 {
            break;
        }
        copy.extend_from_slice(&chunk[..read]);
        if progress.is_empty() && copy.len() > 4 * 1024 * 1024 {
            // The donor blocks writing to this connection meanwhile.
            tokio::time::sleep(Duration::from_millis(200)).await;
            progress = client.clone_progress(&donor.server()).await.unwrap();
        }
    }

    // Assert: the donor reported the copy while sending it...
    assert_eq!(progress.len(), 1, "{progress:?}");
    assert_eq!(progress[0].receiver, "new-server-3");
    assert!(progress[0].sent_bytes > 0, "{progress:?}");
    assert!(progress[0].total_bytes > 0, "{progress:?}");
    // ...and what it sent unpacks, prepares and names n3's position, as start.sh reads it.
    let target = donor.state.join("received");
    std::fs::create_dir_all(&target).unwrap();
    let mut mbstream = Command::new("mbstream")
        .arg("-x")
        .arg("-C")
        .arg(&target)
        .stdin(Stdio::piped())
        .spawn()
        .expect("mbstream runs");
    std::io::Write::write_all(mbstream.stdin.as_mut().unwrap(), &copy).unwrap();
    drop(mbstream.stdin.take());
    assert!(mbstream.wait().unwrap().success(), "the stream unpacks");
    let prepared = Command::new("mariadb-backup")
        .arg("--prepare")
        .arg(format!("--target-dir={}", target.display()))
        .output()
        .unwrap();
    assert!(
        prepared.status.success(),
        "{}",
        String::from_utf8_lossy(&prepared.stderr)
    );
    assert!(
        target.join("mysql").is_dir(),
        "the system tables are in the copy"
    );
    let _ = std::fs::remove_file(&healthcheck);
    assert!(
        target.join("sns-copy-complete").is_file(),
        "the copy ends with the mark that it is whole"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("sns-healthcheck.cnf")).unwrap(),
        "[mariadb-client]\nuser=healthcheck\n",
        "the health check's login comes with the copy"
    );
    let info = ["mariadb_backup_slave_info", "xtrabackup_slave_info"]
        .iter()
        .find_map(|name| std::fs::read_to_string(target.join(name)).ok())
        .expect("the copy of a replica records its position");
    // Other tests write to the primary meanwhile: the copy's position is n3's at some
    // moment of the copy, between what n3 had before and after it.
    let sequence = |position: &str| -> u64 {
        position
            .rsplit('-')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("{position:?} is no GTID"))
    };
    let copied = info
        .split('\'')
        .nth(1)
        .unwrap_or_else(|| panic!("no gtid_slave_pos in {info}"));
    let after = sql("SELECT @@gtid_slave_pos");
    assert!(
        info.contains("gtid_slave_pos = '")
            && (sequence(&position)..=sequence(&after)).contains(&sequence(copied)),
        "{info} names a position of n3 from {position} to {after}"
    );
    assert_eq!(
        client.clone_progress(&donor.server()).await.unwrap(),
        vec![],
        "a copy sent is no longer reported"
    );
}

#[tokio::test]
async fn the_primarys_closed_binary_logs_are_archived_once_each_with_what_they_hold() {
    use sns_operator::backup::archive::{
        self, ArchiveJob, ArchiveMark, ArchiveState, SegmentRecord,
    };
    use sns_operator::backup::{Bucket, BucketSettings};
    use sns_operator::dataplane::DataPlane;
    let (login, primary, _) = mysql_servers();
    let sql = |statement: &str| {
        let output = Command::new("mariadb")
            .args([
                "--no-defaults",
                "--batch",
                "--skip-column-names",
                "--host=127.0.0.1",
            ])
            .arg(format!("--port={}", primary.port))
            .arg(format!("--user={}", login.user))
            .env("MYSQL_PWD", env("SNS_TEST_MYSQL_ADMIN_PASSWORD"))
            .args(["-e", statement])
            .output()
            .expect("the mariadb client runs");
        assert!(
            output.status.success(),
            "{statement}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let data = sql("SELECT @@datadir");
    let donor = Donor::start(&data, primary.port).await;
    let client = MysqlClient::new(TIMEOUT);
    let database = format!("archive_{}", std::process::id());
    // Each write's GTID, as the session that wrote it sees it.
    let write = |row: u32| {
        sql(&format!(
            "CREATE DATABASE IF NOT EXISTS {database}; \
             CREATE TABLE IF NOT EXISTS {database}.t (id INT PRIMARY KEY); \
             INSERT INTO {database}.t VALUES ({row}); SELECT @@last_gtid"
        ))
    };
    let first_write = write(1);

    // A wrong password lists nothing, and a name the server does not list is not sent.
    assert!(
        client
            .binlogs(&donor.server(), "wrong", false)
            .await
            .is_err()
    );
    let mut refused = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(
        &mut client
            .open_binlog(
                &donor.server(),
                "the-replication-password",
                "../../../etc/passwd",
            )
            .await
            .unwrap(),
        &mut refused,
    )
    .await
    .unwrap();
    assert!(refused.is_empty(), "{} bytes sent", refused.len());

    // Act: a pass archives the primary's logs into the test S3 server, under a prefix of
    // this test's own.
    let settings = BucketSettings {
        endpoint: env("SNS_TEST_S3_ENDPOINT"),
        bucket: env("SNS_TEST_S3_BUCKET"),
        region: "us-east-1".into(),
        prefix: format!("archive-{}/", std::process::id()),
        access_key: env("SNS_TEST_S3_ACCESS_KEY"),
        secret_key: env("SNS_TEST_S3_SECRET_KEY"),
    };
    let bucket = Bucket::new(&settings);
    let base = archive::archive_prefix(&settings.prefix, "prod");
    let job = ArchiveJob {
        bucket: Bucket::new(&settings),
        base: base.clone(),
        donor: MysqlServer {
            name: "prod-mysql-0".into(),
            ..donor.server()
        },
        password: "the-replication-password".into(),
        interval: Duration::ZERO,
        data_plane: DataPlane::real(TIMEOUT).unwrap(),
    };
    let mut state = ArchiveState::default();
    let report = archive::pass(&mut state, &job).await.unwrap();

    // Assert: the write is in an archived log whose record names it, and the mark says the
    // archive was complete.
    let records = async || {
        let mut records = Vec::new();
        for key in bucket.keys(&base).await.unwrap() {
            if key.ends_with(".json") && !key.ends_with("/archived.json") {
                let record: SegmentRecord =
                    serde_json::from_slice(&bucket.get(&key).await.unwrap()).unwrap();
                records.push(record);
            }
        }
        records
    };
    let holds = |records: &[SegmentRecord], gtid: &str| {
        let gtid: sns_operator::backup::binlog::Gtid = gtid.parse().unwrap();
        records.iter().any(|r| {
            r.key.is_some()
                && r.summary
                    .first
                    .is_some_and(|f| f.domain == gtid.domain && f.sequence <= gtid.sequence)
                && r.summary.last.is_some_and(|l| l.sequence >= gtid.sequence)
        })
    };
    let archived = records().await;
    assert!(
        holds(&archived, &first_write),
        "{first_write} in {archived:#?}"
    );
    for record in archived.iter().filter(|r| r.key.is_some()) {
        let bytes = bucket.get(record.key.as_deref().unwrap()).await.unwrap();
        assert_eq!(bytes.len() as u64, record.bytes, "{record:?}");
        assert_eq!(&bytes[..4], b"\xfebin", "a binary log");
    }
    let mark: ArchiveMark =
        serde_json::from_slice(&bucket.get(&format!("{base}archived.json")).await.unwrap())
            .unwrap();
    assert_eq!(mark.server, "prod-mysql-0");
    assert!(report.complete_at.is_some(), "{report:?}");
    let gtid_of = |gtid: &str| gtid.rsplit('-').next().unwrap().parse::<u64>().unwrap();
    assert!(
        report
            .gtid
            .as_deref()
            .is_some_and(|g| gtid_of(g) >= gtid_of(&first_write)),
        "{report:?} after {first_write}"
    );

    // A second pass after another write archives only the new log; nothing is sent twice.
    let second_write = write(2);
    let before = archived.len();
    archive::pass(&mut state, &job).await.unwrap();
    let after = records().await;
    assert!(holds(&after, &second_write), "{second_write} in {after:#?}");
    assert!(after.len() > before, "a new log was recorded");
    let mut keys: Vec<_> = after.iter().map(|r| (r.name.clone(), r.bytes)).collect();
    keys.dedup();
    assert_eq!(keys.len(), after.len(), "each log recorded once");

    // A pass of a fresh archiver (an operator restarted) reads the bucket and sends nothing.
    let mut restarted = ArchiveState::default();
    archive::pass(&mut restarted, &job).await.unwrap();
    let again = records().await;
    for record in &after {
        assert!(again.contains(record), "{record:?} was recorded again");
    }
    sql(&format!("DROP DATABASE {database}"));
    bucket
        .delete(&bucket.keys(&settings.prefix).await.unwrap())
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Orchestrator

/// Answers like Orchestrator's API for one cluster aliased `sns` whose primary is
/// `sns-mysql-1` (JSON shapes: see dataplane/orchestrator.rs).
async fn fake_orchestrator() -> String {
    use axum::Json;
    use axum::extract::Path;
    use axum::http::StatusCode;
    use axum::routing::get;
    use serde_json::json;

    let router = axum::Router::new()
        .route(
            "/api/clusters",
            get(|| async { Json(json!(["sns-mysql-0.sns-mysql:3306"])) }),
        )
        // A single node, as Orchestrator without raft answers: the client asks it alone.
        .route(
            "/api/raft-leader",
            get(|| async {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({
                        "Code": "ERROR",
                        "Message": "raft-leader: not running with raft setup",
                        "Details": null,
                    })),
                )
            }),
        )
        .route(
            "/api/master/{hint}",
            get(|Path(hint): Path<String>| async move {
                if hint == "sns" {
                    (
                        StatusCode::OK,
                        Json(json!({
                            "Key": { "Hostname": "sns-mysql-1.sns-mysql", "Port": 3306 },
                            "ServerID": 2,
                            "Version": "10.11.6-MariaDB-log",
                            "ReadOnly": false,
                            "MasterKey": { "Hostname": "", "Port": 0 },
                            "ClusterName": "sns-mysql-0.sns-mysql:3306",
                            "ReplicationDepth": 0,
                        })),
                    )
                } else {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Json(json!({
                            "Code": "ERROR",
                            "Message": format!("Unable to determine cluster name. clusterHint={hint}"),
                            "Details": null,
                        })),
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

#[tokio::test]
async fn the_orchestrator_client_reads_clusters_and_the_primary() {
    let url = fake_orchestrator().await;
    let client = HttpOrchestrator::new(TIMEOUT).unwrap();

    assert_eq!(
        client.clusters(&url).await.unwrap(),
        vec!["sns-mysql-0.sns-mysql:3306"]
    );
    assert_eq!(
        client.primary(&url, "sns").await.unwrap(),
        InstanceKey {
            hostname: "sns-mysql-1.sns-mysql".into(),
            port: 3306
        }
    );
    match client.primary(&url, "other").await {
        Err(DataPlaneError::OrchestratorApi {
            status, message, ..
        }) => {
            assert_eq!(status, 500);
            assert!(
                message.starts_with("Unable to determine cluster name"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let closed = format!("http://127.0.0.1:{}", free_ports(1)[0]);
    assert!(matches!(
        client.primary(&closed, "sns").await,
        Err(DataPlaneError::Http { .. })
    ));
}
