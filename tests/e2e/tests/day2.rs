//! Day-2 changes to a running SnsCluster on a real node, each under a steady write load
//! through the API's Service (`sns_e2e::load`), none allowed to fail a write:
//!
//! 1. a MySQL setting changed (`spec.mysql.config`) ─► every server restarted once, the
//!    replicas first, then a switchover, then the old primary (now a replica); the setting
//!    is live on every server;
//! 2. a new MariaDB image (the node has one MariaDB version: the same image under another
//!    tag, which is a new pod template all the same) ─► the same roll;
//! 3. a replica added ─► no running pod of the cluster restarted or replaced; the new server
//!    starts from a copy of another's data (the clone donor), at a position no older than
//!    what the primary held when it was asked for, then replicates and catches up (the
//!    time printed);
//! 4. the primary moved onto that newest server, then the replica count lowered ─► the
//!    primary handed to a server that stays first, then the server removed with its
//!    volume and forgotten by Orchestrator; nothing else restarted;
//! 5. the operator's pod replaced (what an upgrade does) ─► no pod of the cluster restarted;
//!
//! then every acknowledged post and like is on the primary, and
//! 6. a backup taken from the backup CronJob (`kubectl create job --from`) to the test's S3
//!    server, restored here (mbstream, mariadb-backup --prepare, a local mariadbd), holds
//!    the primary's posts, likes and users row for row; a second one makes the first go
//!    (`keep: 1`);
//! 7. the primary's pod deleted ─► the binary log archive follows the new primary, and a
//!    backup is taken as before (BackupReady and BinlogArchiveReady True);
//! 8. posts written, a point in time noted, more posts written ─► a new SnsCluster with
//!    `spec.restore` to that point holds the primary's posts, likes and users as they were
//!    then, row for row, none written after; its replica is a copy of the restored server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use sns_e2e::api::ApiClient;
use sns_e2e::cluster::{TestCluster, condition, is_ready, seconds_since};
use sns_e2e::install::{MARIADB_IMAGE, cluster_manifest, install_operator, restart_operator};
use sns_e2e::load::WriteLoad;
use sns_e2e::node::{Node, env, eventually};
use sns_e2e::s3::S3Server;
use sns_operator::crd::SnsCluster;

/// The SnsCluster's name.
const CLUSTER: &str = "day2";

/// Writes acknowledged before each change, and after it before the next.
const STEADY_WRITES: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day_two_changes_roll_one_server_at_a_time_and_fail_no_write() {
    let node = Node::from_env().await;
    install_operator(&node).await;
    let cluster = TestCluster::new(&node, CLUSTER).await;
    let s3 = S3Server::start(&node.bridge_ip, "backups");
    node.apply(
        &cluster.namespace,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "backup-credentials" },
            "stringData": { "access-key": s3.access_key, "secret-key": s3.secret_key },
        })
        .to_string(),
    );
    // The parts these changes touch: MySQL, Orchestrator, the API (and a Redis Cluster
    // the API needs). One Orchestrator node and no monitoring keep the node's two cores for
    // them. Backups go to the test's S3 server, on a schedule that does not come during
    // the test (it takes them on demand).
    let mut manifest = cluster_manifest(CLUSTER, None);
    manifest["spec"]["mysql"]["orchestrator"]["replicas"] = json!(1);
    manifest["spec"]["redis"]["replicasPerMaster"] = json!(0);
    manifest["spec"]["monitoring"]["enabled"] = json!(false);
    manifest["spec"]["backup"] = json!({
        "s3": {
            "endpoint": s3.endpoint,
            "bucket": s3.bucket,
            "prefix": "e2e/",
            "credentialsSecret": "backup-credentials",
        },
        "schedule": "0 3 1 1 *",
        "keep": 1,
        "archiveIntervalSeconds": 15,
    });
    let applied = Instant::now();
    node.apply(&cluster.namespace, &manifest.to_string());
    cluster.wait_ready(600).await;
    println!(
        "e2e day2: SnsCluster Ready {} s after kubectl apply",
        seconds_since(applied)
    );
    let api = ApiClient::new(&cluster.service_url(&format!("{CLUSTER}-api")).await);
    // Orchestrator acts on no topology in its first poll periods after it starts.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let load = WriteLoad::start(&api, "day2_", Duration::from_millis(60)).await;
    assert!(
        load.wait_for_acknowledged(STEADY_WRITES, 120).await,
        "the write load runs"
    );

    // 1. A setting every server reads at start only.
    roll(&cluster, &load, "a MySQL setting", |spec| {
        spec["mysql"]["config"] = json!({ "max_connections": "321" });
    })
    .await;
    for pod in mysql_pod_names(&cluster).await {
        assert_eq!(
            cluster.sql(&pod, "SELECT @@global.max_connections").trim(),
            "321",
            "{pod} runs with the new setting"
        );
    }

    // 2. A new image.
    let image = format!("{MARIADB_IMAGE}-day2");
    let socket = env("SNS_NODE_CTR_SOCKET");
    let (ok, out) = node.run(
        "ctr",
        &[
            "--address",
            &socket,
            "-n",
            "k8s.io",
            "images",
            "tag",
            "--force",
            MARIADB_IMAGE,
            &image,
        ],
        None,
    );
    assert!(ok, "ctr images tag: {out}");
    roll(&cluster, &load, "a new MariaDB image", |spec| {
        spec["mysql"]["image"] = json!(image);
    })
    .await;
    for pod in cluster.pods("mysql").await {
        let spec = pod.spec.unwrap_or_default();
        assert_eq!(
            spec.containers[0].image.as_deref(),
            Some(image.as_str()),
            "{} runs the new image",
            pod.metadata.name.unwrap_or_default()
        );
    }

    // 3. A replica added.
    let before = every_pod(&cluster).await;
    let primary = cluster.status().await.mysql.primary.expect("a primary");
    let written = cluster.sql(&primary, "SELECT @@global.gtid_binlog_pos");
    let fault = Instant::now();
    patch_spec(&cluster, json!({ "mysql": { "replicas": 3 } })).await;
    let new = format!("{CLUSTER}-mysql-3");
    eventually(
        600,
        Duration::from_secs(2),
        &format!("{new} Ready and the cluster Ready"),
        || cluster.diagnostics(),
        || async {
            let ready = cluster
                .pods("mysql")
                .await
                .iter()
                .any(|p| p.name_any() == new && is_ready(p));
            (ready && cluster_ready(&cluster).await).then_some(())
        },
    )
    .await;
    let primary = cluster.status().await.mysql.primary.expect("a primary");
    assert!(
        cluster.replicates_from(&new, &primary),
        "{new} follows {primary}"
    );
    let position = cluster.sql(&primary, "SELECT @@global.gtid_binlog_pos");
    assert_eq!(
        cluster
            .sql(
                &new,
                &format!("SELECT MASTER_GTID_WAIT('{}', 120)", position.trim())
            )
            .trim(),
        "0",
        "{new} caught up with {primary}"
    );
    println!(
        "e2e day2: a replica added to a cluster holding data: Ready, replicating and caught up {} s after the spec changed",
        seconds_since(fault)
    );
    // It started from a copy of another server's data, at a position no older than what
    // the primary had written when the replica was asked for: it replayed none of that.
    let log = node.kubectl_ok(&["logs", "-n", &cluster.namespace, &new, "-c", "mariadb"]);
    let cloned = log
        .lines()
        .find(|line| line.contains(&format!("start.sh: cloned {new}.")))
        .unwrap_or_else(|| panic!("{new} was not cloned:\n{log}"));
    println!("e2e day2: {cloned}");
    let at = cloned.rsplit("at GTID ").next().unwrap_or_default();
    assert!(
        sequence(at) >= sequence(&written),
        "the copy ({at}) holds what was written before ({written})"
    );
    unchanged(&before, &every_pod(&cluster).await, &[]);
    no_failed_write(&load, fault, "adding a replica");

    // 4. The primary on the server that goes, then the count back down.
    wait_writes(&load).await;
    set_annotation(&cluster, "sns-platform.dev/switchover", &new).await;
    eventually(
        120,
        Duration::from_secs(1),
        &format!("{new} to be the primary"),
        || cluster.diagnostics(),
        || async {
            let status = cluster.status().await;
            (status.mysql.primary.as_deref() == Some(new.as_str())).then_some(())
        },
    )
    .await;
    wait_writes(&load).await;
    let before = every_pod(&cluster).await;
    let fault = Instant::now();
    patch_spec(&cluster, json!({ "mysql": { "replicas": 2 } })).await;
    let claims: Api<PersistentVolumeClaim> = cluster.api();
    let claim = format!("data-{new}");
    eventually(
        300,
        Duration::from_secs(2),
        &format!("{new} and its volume gone, the cluster Ready"),
        || cluster.diagnostics(),
        || async {
            let gone = !cluster
                .pods("mysql")
                .await
                .iter()
                .any(|p| p.name_any() == new);
            let claim_gone = claims.get_opt(&claim).await.ok()?.is_none();
            (gone && claim_gone && cluster_ready(&cluster).await).then_some(())
        },
    )
    .await;
    let primary = cluster.status().await.mysql.primary.expect("a primary");
    assert_ne!(
        primary, new,
        "the primary role was handed to a server that stays"
    );
    println!(
        "e2e day2: the primary's server removed by a scale-down: handed over to {primary}, removed and Ready in {} s",
        seconds_since(fault)
    );
    unchanged(&before, &every_pod(&cluster).await, &[&new]);
    no_failed_write(&load, fault, "removing the primary's server");
    let orchestrator = cluster
        .service_url(&format!("{CLUSTER}-orchestrator"))
        .await;
    eventually(
        120,
        Duration::from_secs(2),
        &format!("Orchestrator to forget {new}"),
        || cluster.diagnostics(),
        || async {
            let url = format!("{orchestrator}/api/cluster/alias/{CLUSTER}");
            let instances: Vec<Value> = reqwest::get(&url).await.ok()?.json().await.ok()?;
            let names: Vec<&str> = instances
                .iter()
                .filter_map(|i| i["Key"]["Hostname"].as_str())
                .collect();
            (names.len() == 3 && !names.iter().any(|n| n.starts_with(&format!("{new}."))))
                .then_some(())
        },
    )
    .await;

    // 5. The operator's pod replaced, as an upgrade replaces it.
    let before = every_pod(&cluster).await;
    restart_operator(&node);
    // The new operator takes the Lease (its predecessor released it) and reconciles the
    // cluster at once; its periodic check follows 30 s later.
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert!(cluster_ready(&cluster).await, "still Ready");
    unchanged(&before, &every_pod(&cluster).await, &[]);

    let (posts, likes) = load.stop().await;
    let lost = cluster.lost_writes(&posts, &likes).await;
    println!(
        "e2e day2: {} posts and {} likes acknowledged through two rolls and two scalings; {lost} missing from the primary",
        posts.len(),
        likes.values().map(|l| l.len()).sum::<usize>()
    );
    assert_eq!(lost, 0, "every acknowledged write is on the primary");

    // 6. A backup, taken now from the schedule, holds every row the primary holds; a second
    // one makes the first go (keep: 1).
    let primary = cluster.status().await.mysql.primary.expect("a primary");
    let tables = [
        "SELECT id, author_id, content, created_at FROM sns.posts ORDER BY id",
        "SELECT post_id, user_id FROM sns.post_likes ORDER BY post_id, user_id",
        "SELECT id, username FROM sns.users ORDER BY id",
    ];
    let on_primary: Vec<String> = tables.iter().map(|q| cluster.sql(&primary, q)).collect();
    let first = backup_now(&cluster, "backup-now").await;
    let restored = restore_locally(
        &s3.stored(&format!("e2e/{CLUSTER}/mysql/{}/data.xbstream", first.id))
            .expect("the copy is in the bucket"),
        &tables,
    );
    for ((query, primary_rows), backup_rows) in tables.iter().zip(&on_primary).zip(&restored) {
        assert!(
            primary_rows == backup_rows,
            "{query}: the backup differs from the primary ({} rows there, {} in the backup)",
            primary_rows.lines().count(),
            backup_rows.lines().count()
        );
    }
    assert!(
        on_primary[0].lines().count() >= posts.len(),
        "the posts acknowledged are among them"
    );
    let second = backup_now(&cluster, "backup-again").await;
    let keys = s3.keys(&format!("e2e/{CLUSTER}/mysql/"));
    assert!(
        keys.iter().all(|key| key.contains(&second.id)) && keys.len() == 2,
        "keep: 1 leaves the newest backup only: {keys:?}"
    );

    // 7. The primary's pod deleted: after the failover, the binary log archive follows the
    // new primary and a backup is taken as before.
    let old_primary = primary;
    let pods: Api<Pod> = cluster.api();
    pods.delete(&old_primary, &Default::default())
        .await
        .expect("deleting the primary's pod");
    let new_primary = eventually(
        180,
        Duration::from_secs(2),
        "a new primary recorded after the primary's pod was deleted",
        || cluster.diagnostics(),
        || async {
            cluster
                .status()
                .await
                .mysql
                .primary
                .filter(|p| *p != old_primary)
        },
    )
    .await;
    cluster.wait_ready(300).await;
    let (after_failover, _) = write_some(&api, "day2_failover_", 20).await;
    wait_stored(&cluster, &after_failover).await;
    let archived = archive_complete_after(&cluster, chrono::Utc::now()).await;
    assert_eq!(
        archived.archive_server.as_deref(),
        Some(new_primary.as_str()),
        "archiving follows the new primary: {archived:?}"
    );
    // The new primary's own transactions (server id 100 + its ordinal) are archived.
    let ordinal: u32 = new_primary
        .rsplit('-')
        .next()
        .and_then(|o| o.parse().ok())
        .expect("a pod ordinal");
    assert!(
        archived
            .archived_gtid
            .as_deref()
            .is_some_and(|gtid| gtid.contains(&format!("-{}-", 100 + ordinal))),
        "the writes after the failover are archived: {archived:?}"
    );
    // A replica is the donor still: the old primary back as one, or the other.
    let third = backup_now(&cluster, "backup-after-failover").await;
    assert!(
        !third.donor.starts_with(&new_primary),
        "{} is the primary",
        third.donor
    );
    let status = cluster.status().await;
    for type_ in ["BackupReady", "BinlogArchiveReady"] {
        let found = condition(&status, type_);
        assert!(
            found.is_some_and(|c| c.status == "True"),
            "{type_} after the failover: {found:?}"
        );
    }

    // 8. A point in time between two sets of writes through the API: a new SnsCluster
    // restored to it holds the first set and not the second, row for row as the primary
    // held them then; its replica is a copy of the restored server.
    let (before_point, _) = write_some(&api, "day2_pitr_a_", 30).await;
    wait_stored(&cluster, &before_point).await;
    let primary = cluster.status().await.mysql.primary.expect("a primary");
    let at_point: Vec<String> = tables.iter().map(|q| cluster.sql(&primary, q)).collect();
    let point = chrono::Utc::now();
    // The point is kept to the second: nothing is written in its second after it.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (after_point, _) = write_some(&api, "day2_pitr_b_", 30).await;
    wait_stored(&cluster, &after_point).await;
    archive_complete_after(&cluster, chrono::Utc::now()).await;
    let restored = TestCluster::new(&node, "restored").await;
    node.apply(
        &restored.namespace,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "backup-credentials" },
            "stringData": { "access-key": s3.access_key, "secret-key": s3.secret_key },
        })
        .to_string(),
    );
    let mut manifest = cluster_manifest("restored", None);
    manifest["spec"]["mysql"]["replicas"] = json!(1);
    manifest["spec"]["mysql"]["orchestrator"]["replicas"] = json!(1);
    manifest["spec"]["api"]["replicas"] = json!(1);
    manifest["spec"]["redis"]["replicasPerMaster"] = json!(0);
    manifest["spec"]["monitoring"]["enabled"] = json!(false);
    manifest["spec"]["restore"] = json!({
        "s3": {
            "endpoint": s3.endpoint,
            "bucket": s3.bucket,
            "prefix": "e2e/",
            "credentialsSecret": "backup-credentials",
        },
        "cluster": CLUSTER,
        "pointInTime": point.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let applied = Instant::now();
    node.apply(&restored.namespace, &manifest.to_string());
    restored.wait_ready(600).await;
    println!(
        "e2e day2: a cluster restored to a point in time Ready {} s after kubectl apply",
        seconds_since(applied)
    );
    let restored_primary = restored.status().await.mysql.primary.expect("a primary");
    let fetched = node.kubectl_ok(&[
        "logs",
        "-n",
        &restored.namespace,
        &restored_primary,
        "-c",
        "restore",
    ]);
    let replayed = node.kubectl_ok(&[
        "logs",
        "-n",
        &restored.namespace,
        &restored_primary,
        "-c",
        "mariadb",
    ]);
    for line in fetched
        .lines()
        .filter(|l| l.contains("\"backupBytes\""))
        .chain(
            replayed
                .lines()
                .filter(|l| l.starts_with("start.sh: restor")),
        )
    {
        println!("e2e day2: {line}");
    }
    for (query, expected) in tables.iter().zip(&at_point) {
        let rows = restored.sql(&restored_primary, query);
        assert!(
            rows == *expected,
            "{query}: the restored cluster differs from the primary at the point in time ({} rows then, {} restored)",
            expected.lines().count(),
            rows.lines().count()
        );
    }
    let restored_posts: std::collections::BTreeSet<u64> = restored
        .sql(&restored_primary, "SELECT id FROM sns.posts")
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    assert!(
        after_failover.is_subset(&restored_posts) && before_point.is_subset(&restored_posts),
        "the posts acknowledged before the point, after the backup and the failover, are there"
    );
    assert!(
        after_point.is_disjoint(&restored_posts),
        "no post written after the point is there"
    );
    let accounts_after = restored.sql(
        &restored_primary,
        "SELECT COUNT(*) FROM sns.users WHERE username LIKE 'day2\\_pitr\\_b\\_%'",
    );
    assert_eq!(
        accounts_after.trim(),
        "0",
        "no account made after the point"
    );
    let replica = restored
        .pods("mysql")
        .await
        .into_iter()
        .map(|p| p.name_any())
        .find(|p| *p != restored_primary)
        .expect("a replica");
    let replica_rows = eventually(
        120,
        Duration::from_secs(2),
        "the restored cluster's replica to hold the restored rows",
        || restored.diagnostics(),
        || async {
            let rows = restored.sql(&replica, tables[0]);
            (rows == at_point[0]).then_some(rows)
        },
    )
    .await;
    assert!(restored.replicates_from(&replica, &restored_primary));
    let log = node.kubectl_ok(&["logs", "-n", &restored.namespace, &replica, "-c", "mariadb"]);
    assert!(
        log.contains("cloned"),
        "the replica started from a copy of the restored server:\n{log}"
    );
    println!(
        "e2e day2: restored to {point}: {} posts as then, none of the {} after",
        replica_rows.lines().count(),
        after_point.len()
    );
    restored.delete_namespace().await;
    cluster.delete_namespace().await;
}

/// Writes through the API until `count` posts are acknowledged; returns them.
async fn write_some(
    api: &ApiClient,
    prefix: &str,
    count: usize,
) -> (
    std::collections::BTreeSet<u64>,
    BTreeMap<u64, std::collections::BTreeSet<u64>>,
) {
    let load = WriteLoad::start(api, prefix, Duration::from_millis(30)).await;
    assert!(
        load.wait_for_acknowledged(count, 120).await,
        "{prefix}: the writes are acknowledged"
    );
    load.stop().await
}

/// Waits until every post in `posts` is on the primary (likes are written back in the
/// background: they are given time too).
async fn wait_stored(cluster: &TestCluster, posts: &std::collections::BTreeSet<u64>) {
    eventually(
        60,
        Duration::from_secs(1),
        "the acknowledged posts to be on the primary",
        || cluster.diagnostics(),
        || async { (cluster.lost_writes(posts, &BTreeMap::new()).await == 0).then_some(()) },
    )
    .await;
    // A like's write-back follows within its flush interval.
    tokio::time::sleep(Duration::from_secs(3)).await;
}

/// Waits until the binary log archive says it held every transaction of the primary at a
/// time after `after`; returns the backup status.
async fn archive_complete_after(
    cluster: &TestCluster,
    after: chrono::DateTime<chrono::Utc>,
) -> sns_operator::crd::BackupStatus {
    let started = Instant::now();
    let status = eventually(
        240,
        Duration::from_secs(3),
        &format!("the binary log archive to be complete after {after}"),
        || cluster.diagnostics(),
        || async {
            let backup = cluster.status().await.backup?;
            let complete =
                chrono::DateTime::parse_from_rfc3339(backup.archive_complete_time.as_deref()?)
                    .ok()?;
            (complete >= after).then_some(backup)
        },
    )
    .await;
    println!(
        "e2e day2: binary log archive complete past {after} after {} s (archived up to {:?} from {:?})",
        seconds_since(started),
        status.archived_gtid,
        status.archive_server
    );
    status
}

/// What `sns-operator backup` prints once its backup is complete.
#[derive(serde::Deserialize)]
struct BackupRecord {
    id: String,
    donor: String,
    bytes: u64,
}

/// Takes a backup from the CronJob's template now (`kubectl create job --from`), as a user
/// would; waits for it and returns its record.
async fn backup_now(cluster: &TestCluster, job: &str) -> BackupRecord {
    let namespace = &cluster.namespace;
    let started = Instant::now();
    cluster.node.kubectl_ok(&[
        "create",
        "job",
        "-n",
        namespace,
        &format!("--from=cronjob/{CLUSTER}-mysql-backup"),
        job,
    ]);
    cluster.node.kubectl_ok(&[
        "wait",
        "-n",
        namespace,
        "--for=condition=Complete",
        "--timeout=300s",
        &format!("job/{job}"),
    ]);
    let log = cluster
        .node
        .kubectl_ok(&["logs", "-n", namespace, &format!("job/{job}")]);
    let record: BackupRecord = log
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no backup record in the job's output:\n{log}"));
    println!(
        "e2e day2: backup {} of {} MiB taken from {} in {} s",
        record.id,
        record.bytes / (1024 * 1024),
        record.donor,
        seconds_since(started)
    );
    record
}

/// Restores `copy` (a backup's data.xbstream) the way start.sh restores a clone, starts a
/// MariaDB server on it here, and returns each query's rows (tab-separated lines).
fn restore_locally(copy: &[u8], queries: &[&str]) -> Vec<String> {
    use std::process::{Command, Stdio};
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("sns-e2e-restore-{}", sns_e2e::node::suffix()));
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("a directory for the restore");
    let run = |command: &mut Command, what: &str| {
        let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            output.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let mut extract = Command::new("mbstream")
        .arg("-x")
        .arg("-C")
        .arg(&data)
        .stdin(Stdio::piped())
        .spawn()
        .expect("mbstream runs");
    std::io::Write::write_all(extract.stdin.as_mut().expect("stdin"), copy)
        .expect("mbstream reads");
    drop(extract.stdin.take());
    assert!(
        extract.wait().expect("mbstream ends").success(),
        "the copy unpacks"
    );
    assert!(
        data.join("sns-copy-complete").is_file(),
        "the copy is whole"
    );
    run(
        Command::new("mariadb-backup")
            .arg("--prepare")
            .arg(format!("--target-dir={}", data.display())),
        "mariadb-backup --prepare",
    );
    let socket = dir.join("mysqld.sock");
    let mut server = Command::new("/usr/sbin/mariadbd")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", socket.display()))
        .args(["--skip-networking", "--skip-grant-tables", "--user=root"])
        .arg(format!("--log-error={}", dir.join("error.log").display()))
        .spawn()
        .expect("mariadbd runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "the restored server did not start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let rows = queries
        .iter()
        .map(|query| {
            run(
                Command::new("mariadb")
                    .arg("--no-defaults")
                    .arg(format!("--socket={}", socket.display()))
                    .args(["--batch", "--skip-column-names", "--execute", query]),
                query,
            )
        })
        .collect();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "e2e day2: the backup restored and started here in {} s",
        seconds_since(started)
    );
    rows
}

/// Applies `change` to the spec and waits until every MySQL server was restarted once with
/// the primary last: the replicas' new pods made before the switchover was recorded, the
/// old primary's after it. No write may fail meanwhile.
async fn roll(
    cluster: &TestCluster,
    load: &WriteLoad,
    what: &str,
    change: impl FnOnce(&mut Value),
) {
    wait_writes(load).await;
    let before: BTreeMap<String, String> = cluster
        .pods("mysql")
        .await
        .iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect();
    let status = cluster.status().await;
    let old_primary = status.mysql.primary.clone().expect("a primary");
    let failovers = status.mysql.failover_count;
    let mut spec = json!({});
    change(&mut spec);
    let started = Instant::now();
    patch_spec(cluster, spec).await;
    let pods = eventually(
        900,
        Duration::from_secs(2),
        &format!("every MySQL server restarted for {what}, and the cluster Ready"),
        || cluster.diagnostics(),
        || async {
            let pods = cluster.pods("mysql").await;
            let replaced = pods.len() == before.len()
                && pods.iter().all(|p| {
                    before.get(&p.name_any()) != p.uid().as_ref()
                        && p.metadata.deletion_timestamp.is_none()
                        && is_ready(p)
                });
            (replaced && cluster_ready(cluster).await).then_some(pods)
        },
    )
    .await;
    let status = cluster.status().await;
    assert_eq!(
        status.mysql.failover_count,
        failovers + 1,
        "one switchover per roll"
    );
    let handover = status.mysql.last_failover.clone().expect("the switchover");
    assert_eq!(handover.from, old_primary);
    let switched = epoch_seconds(&handover.time);
    for pod in &pods {
        let created = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or_default();
        if pod.name_any() == old_primary {
            assert!(
                created >= switched,
                "{old_primary}, the primary, restarted after the switchover ({created} < {switched})"
            );
        } else {
            assert!(
                created <= switched,
                "replica {} restarted before the switchover ({created} > {switched})",
                pod.name_any()
            );
        }
    }
    let gap = load.gap_since(started);
    if gap.server_errors + gap.transport_errors > 0 {
        eprintln!("{}", api_warnings(cluster));
    }
    let gap = no_failed_write(load, started, what);
    println!(
        "e2e day2: {what} rolled over {} servers in {} s, the primary ({old_primary}) last after a switchover to {}; longest pause between acknowledged posts {:.1} s; no write failed",
        pods.len(),
        seconds_since(started),
        handover.to,
        gap.as_secs_f64()
    );
}

/// Seconds since the epoch of an RFC 3339 time, as the operator writes it.
fn epoch_seconds(time: &str) -> i64 {
    time.parse::<k8s_openapi::jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{time} is no RFC 3339 time: {e}"))
        .as_second()
}

/// The sequence number of a GTID position of one domain (`0-101-1234` → 1234).
fn sequence(position: &str) -> u64 {
    position
        .trim()
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{position} is no GTID position"))
}

/// Asserts that no write answered since `since` failed; returns the longest pause between
/// acknowledged posts.
/// The API pods' warnings and errors of the last minutes (their log is JSON lines).
fn api_warnings(cluster: &TestCluster) -> String {
    let (_, log) = cluster.node.kubectl(&[
        "logs",
        "-n",
        &cluster.namespace,
        "-l",
        "app.kubernetes.io/component=api",
        "--since=10m",
        "--tail=-1",
        "--prefix",
    ]);
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("\"WARN\"") || line.contains("\"ERROR\""))
        .collect();
    format!(
        "----- the API's warnings and errors ({} lines, the last 40)\n{}",
        lines.len(),
        lines[lines.len().saturating_sub(40)..].join("\n")
    )
}

fn no_failed_write(load: &WriteLoad, since: Instant, what: &str) -> Duration {
    let gap = load.gap_since(since);
    assert_eq!(
        gap.server_errors + gap.transport_errors,
        0,
        "no write fails during {what}: {gap:?}"
    );
    gap.recovery.unwrap_or_default()
}

/// Lets the load acknowledge its steady number of writes.
async fn wait_writes(load: &WriteLoad) {
    assert!(
        load.wait_for_acknowledged(STEADY_WRITES, 120).await,
        "the write load runs"
    );
}

async fn cluster_ready(cluster: &TestCluster) -> bool {
    let status = cluster.status().await;
    sns_e2e::cluster::condition(&status, "Ready").is_some_and(|c| c.status == "True")
}

async fn mysql_pod_names(cluster: &TestCluster) -> Vec<String> {
    cluster
        .pods("mysql")
        .await
        .iter()
        .map(|p| p.name_any())
        .collect()
}

/// Every pod of the cluster's namespace: name → (uid, container restarts).
async fn every_pod(cluster: &TestCluster) -> BTreeMap<String, (String, i32)> {
    cluster
        .api::<Pod>()
        .list(&Default::default())
        .await
        .expect("listing pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let restarts = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default()
                .iter()
                .map(|c| c.restart_count)
                .sum();
            (p.name_any(), (p.uid().unwrap_or_default(), restarts))
        })
        .collect()
}

/// Every pod of `before` but `gone` is still there, the same pod, not restarted.
fn unchanged(
    before: &BTreeMap<String, (String, i32)>,
    after: &BTreeMap<String, (String, i32)>,
    gone: &[&str],
) {
    for (name, pod) in before {
        if gone.contains(&name.as_str()) {
            continue;
        }
        assert_eq!(
            after.get(name),
            Some(pod),
            "{name} neither replaced nor restarted"
        );
    }
}

async fn patch_spec(cluster: &TestCluster, spec: Value) {
    cluster
        .api::<SnsCluster>()
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .expect("patching the SnsCluster's spec");
}

async fn set_annotation(cluster: &TestCluster, key: &str, value: &str) {
    cluster
        .api::<SnsCluster>()
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": { key: value } } })),
        )
        .await
        .expect("annotating the SnsCluster");
}
