//! What a MySQL server runs at start: `start.sh` (identity, users, role; see its header) and
//! the `users.sql` template it renders, with every account the other components log in as.

use super::mysql::{APP_USER, EXPORTER_USER, MONITOR_USER, ORCHESTRATOR_USER};

/// The MariaDB container's command (`assets/mysql/start.sh`).
pub(super) const START_SH: &str = include_str!("../../../assets/mysql/start.sh");
/// The clone donor's command (`assets/mysql/donor.sh`), beside every server.
pub(super) const DONOR_SH: &str = include_str!("../../../assets/mysql/donor.sh");
/// Template renderer shared by every container that needs a password in a file.
pub(super) const RENDER_AWK: &str = include_str!("../../../assets/render.awk");

/// One MySQL account of users.sql.
struct Account {
    user: &'static str,
    /// `'%'` for users that connect over the network; `'127.0.0.1'` for a sidecar.
    host: &'static str,
    /// Environment variable holding its password (a placeholder in the template).
    password_env: &'static str,
    /// What it may do, and no more (one GRANT each).
    grants: &'static [&'static str],
    /// `WITH ...` account options.
    options: &'static str,
}

/// The accounts every server has, with the least each one needs (MariaDB 10.11 names).
fn accounts(monitoring: bool) -> Vec<Account> {
    let mut accounts = vec![
        Account {
            user: APP_USER,
            host: "%",
            password_env: "SNS_PASSWORD",
            grants: &["ALL PRIVILEGES ON `sns`.*"],
            options: "",
        },
        Account {
            user: "repl",
            host: "%",
            password_env: "REPLICATION_PASSWORD",
            grants: &["REPLICATION SLAVE ON *.*"],
            options: "",
        },
        // Orchestrator reads status, processlist and binlogs, and on a failover stops,
        // rewires and starts replication and flips read_only. SUPER covers what older
        // servers still ask it for.
        Account {
            user: ORCHESTRATOR_USER,
            host: "%",
            password_env: "ORCHESTRATOR_PASSWORD",
            grants: &[
                "SUPER, PROCESS, RELOAD, REPLICATION CLIENT, REPLICATION SLAVE, \
                 REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, SLAVE MONITOR, \
                 READ_ONLY ADMIN ON *.*",
                // The replication credentials, to point a demoted primary at its successor.
                "SELECT ON `sns_meta`.`replication_credentials`",
            ],
            options: "",
        },
        // ProxySQL only connects, pings and reads @@read_only: no privilege at all.
        Account {
            user: MONITOR_USER,
            host: "%",
            password_env: "MONITOR_PASSWORD",
            grants: &["USAGE ON *.*"],
            options: "",
        },
    ];
    if monitoring {
        // Global status and variables need nothing; processlist and InnoDB metrics need
        // PROCESS, SHOW SLAVE STATUS needs SLAVE MONITOR. Local only: it is a sidecar.
        accounts.push(Account {
            user: EXPORTER_USER,
            host: "127.0.0.1",
            password_env: "EXPORTER_PASSWORD",
            grants: &["PROCESS, SLAVE MONITOR ON *.*"],
            options: " WITH MAX_USER_CONNECTIONS 3",
        });
    }
    accounts
}

/// users.sql: run by every server at every start (`init_file`), one statement per line (as
/// init_file wants), with the binary log off so that no server has transactions of its own
/// that a replica or a promoted server would trip over (gtid_strict_mode).
pub(super) fn users_sql(monitoring: bool) -> String {
    let mut sql = String::from(
        "SET SESSION sql_log_bin = 0;\n\
         CREATE DATABASE IF NOT EXISTS `sns` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n\
         CREATE DATABASE IF NOT EXISTS `sns_meta`;\n\
         CREATE TABLE IF NOT EXISTS `sns_meta`.`replication_credentials` (user_name VARCHAR(80) NOT NULL PRIMARY KEY, pass VARCHAR(255) NOT NULL);\n\
         REPLACE INTO `sns_meta`.`replication_credentials` VALUES ('repl', '@@REPLICATION_PASSWORD@@');\n",
    );
    for account in accounts(monitoring) {
        let Account {
            user,
            host,
            password_env,
            grants,
            options,
        } = account;
        let identified = format!("'{user}'@'{host}' IDENTIFIED BY '@@{password_env}@@'");
        // CREATE for a new server, ALTER so a changed Secret takes effect at the next start.
        sql.push_str(&format!(
            "CREATE USER IF NOT EXISTS {identified}{options};\n"
        ));
        sql.push_str(&format!("ALTER USER {identified}{options};\n"));
        for grant in grants {
            sql.push_str(&format!("GRANT {grant} TO '{user}'@'{host}';\n"));
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use super::*;

    #[test]
    fn every_component_user_exists_with_a_placeholder_password_and_no_binlog() {
        let sql = users_sql(true);
        assert!(sql.starts_with("SET SESSION sql_log_bin = 0;\n"));
        for user in [
            "'sns'@'%'",
            "'repl'@'%'",
            "'orchestrator'@'%'",
            "'monitor'@'%'",
        ] {
            assert!(
                sql.contains(&format!("CREATE USER IF NOT EXISTS {user}")),
                "{user}"
            );
            assert!(sql.contains(&format!("TO {user};")), "{user} has no grant");
        }
        assert!(sql.contains("GRANT PROCESS, SLAVE MONITOR ON *.* TO 'exporter'@'127.0.0.1';"));
        assert!(sql.contains("GRANT USAGE ON *.* TO 'monitor'@'%';"));
        assert!(sql.contains("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';"));
        assert!(sql.contains(
            "GRANT SELECT ON `sns_meta`.`replication_credentials` TO 'orchestrator'@'%';"
        ));
        assert!(sql.contains("VALUES ('repl', '@@REPLICATION_PASSWORD@@');"));
        for line in sql.lines().filter(|line| line.contains("IDENTIFIED BY")) {
            assert!(line.contains("IDENTIFIED BY '@@"), "{line}");
        }
        assert!(!users_sql(false).contains("exporter"));
    }

    /// The template rendered by the real awk (mawk on Debian, like the MariaDB image's
    /// Ubuntu), with passwords that need escaping.
    #[test]
    fn users_sql_renders_with_escaped_passwords() {
        let mut child = Command::new("awk")
            .args(["-v", "q='", "-f", RENDER_AWK_PATH])
            .env("SNS_PASSWORD", r"it's\x")
            .env("REPLICATION_PASSWORD", "r")
            .env("ORCHESTRATOR_PASSWORD", "o")
            .env("MONITOR_PASSWORD", "m")
            .env("EXPORTER_PASSWORD", "e")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(users_sql(true).as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        let sql = String::from_utf8(output.stdout).unwrap();
        assert!(
            sql.contains(r"'sns'@'%' IDENTIFIED BY 'it\'s\\x';"),
            "{sql}"
        );
        assert!(!sql.contains("@@"));
    }

    /// awk reads its program from the asset file (`-f`), as the containers do.
    const RENDER_AWK_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/render.awk");

    /// What start.sh left behind in one scenario.
    struct Started {
        server_cnf: String,
        users_sql: String,
        replicate_sql: Option<String>,
        entrypoint: String,
    }

    /// Runs start.sh as `pod` under a scratch root, with stand-ins for the `mariadb` client
    /// (each peer in `writable` answers read_only=0, the others 1, unlisted pods do not
    /// answer), `chown` and the image's entrypoint. `data`: "" (first start), "primary"
    /// (a data directory) or "replica" (one with master.info).
    fn start(
        scenario: &str,
        pod: &str,
        answering: &[&str],
        writable: &[&str],
        data: &str,
    ) -> Started {
        start_recorded(scenario, pod, answering, writable, data, None)
    }

    /// [`start`], with `recorded` as the primary the operator recorded (none: server 0).
    fn start_recorded(
        scenario: &str,
        pod: &str,
        answering: &[&str],
        writable: &[&str],
        data: &str,
        recorded: Option<&str>,
    ) -> Started {
        let root =
            std::env::temp_dir().join(format!("sns-start-sh-{}-{scenario}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in [
            "etc/sns/mysql",
            "etc/mysql/conf.d",
            "run/sns-mysql",
            "docker-entrypoint-initdb.d",
            "var/lib/mysql",
            "bin",
            "peers",
            "etc/sns/topology",
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        if let Some(primary) = recorded {
            std::fs::write(root.join("etc/sns/topology/primary"), primary).unwrap();
        }
        std::fs::write(root.join("etc/sns/topology/servers"), "3").unwrap();
        let config = root.join("etc/sns/mysql");
        std::fs::write(config.join("sns.cnf"), "[mysqld]\n").unwrap();
        std::fs::write(config.join("users.sql"), users_sql(true)).unwrap();
        std::fs::write(config.join("render.awk"), RENDER_AWK).unwrap();
        std::fs::write(config.join("start.sh"), START_SH).unwrap();
        if !data.is_empty() {
            std::fs::create_dir_all(root.join("var/lib/mysql/mysql")).unwrap();
        }
        if data == "replica" {
            std::fs::write(root.join("var/lib/mysql/master.info"), "").unwrap();
        }
        for peer in answering {
            let answer = if writable.contains(peer) { "0" } else { "1" };
            std::fs::write(
                root.join("peers").join(format!("{peer}.prod-mysql")),
                answer,
            )
            .unwrap();
        }
        let stubs = [
            (
                "mariadb",
                "for arg; do case $arg in --host=*) host=${arg#--host=};; esac; done\n\
                 [ \"$MYSQL_PWD\" = m ] || exit 1\n\
                 cat \"$STUB_PEERS/$host\" 2>/dev/null",
            ),
            ("chown", "exit 0"),
            ("docker-entrypoint.sh", "echo \"$@\""),
        ];
        for (name, body) in stubs {
            let path = root.join("bin").join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            Command::new("chmod").arg("+x").arg(&path).status().unwrap();
        }
        let path = format!(
            "{}:{}",
            root.join("bin").display(),
            std::env::var("PATH").unwrap()
        );
        let output = Command::new("bash")
            .arg(config.join("start.sh"))
            .env("PATH", path)
            .env("SNS_START_ROOT", &root)
            .env("STUB_PEERS", root.join("peers"))
            .env("HOSTNAME", pod)
            .env("SNS_MYSQL_STATEFULSET", "prod-mysql")
            .env("SNS_MYSQL_SERVICE", "prod-mysql")
            .env("SNS_MYSQL_CRASH_WAIT", "1")
            .env("SNS_PASSWORD", "s")
            .env("REPLICATION_PASSWORD", "r'pl")
            .env("ORCHESTRATOR_PASSWORD", "o")
            .env("MONITOR_PASSWORD", "m")
            .env("EXPORTER_PASSWORD", "e")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "start.sh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let read = |path: &str| std::fs::read_to_string(root.join(path)).ok();
        let started = Started {
            server_cnf: read("etc/mysql/conf.d/server.cnf").unwrap(),
            users_sql: read("run/sns-mysql/users.sql").unwrap(),
            replicate_sql: read("docker-entrypoint-initdb.d/50-replicate.sql"),
            entrypoint: String::from_utf8(output.stdout).unwrap(),
        };
        let _ = std::fs::remove_dir_all(&root);
        started
    }

    #[test]
    fn a_new_cluster_starts_server_0_as_the_writable_primary() {
        let started = start("new-primary", "prod-mysql-0", &[], &[], "");
        assert!(started.server_cnf.contains("server_id = 100\n"));
        assert!(
            started
                .server_cnf
                .contains("report_host = prod-mysql-0.prod-mysql\n")
        );
        assert!(started.server_cnf.contains("read_only = OFF\n"));
        assert!(
            started
                .server_cnf
                .contains("init_file = /run/sns-mysql/users.sql\n")
        );
        assert!(started.replicate_sql.is_none());
        assert!(started.users_sql.contains("IDENTIFIED BY 's'"));
        assert!(!started.users_sql.contains("CHANGE MASTER"));
        assert_eq!(started.entrypoint.trim(), "mariadbd");
    }

    #[test]
    fn a_new_replica_follows_server_0_with_gtid_auto_position() {
        let started = start("new-replica", "prod-mysql-2", &[], &[], "");
        assert!(started.server_cnf.contains("server_id = 102\n"));
        assert!(started.server_cnf.contains("read_only = ON\n"));
        let sql = started.replicate_sql.unwrap();
        assert!(
            sql.contains("MASTER_HOST='prod-mysql-0.prod-mysql'"),
            "{sql}"
        );
        assert!(sql.contains(r"MASTER_PASSWORD='r\'pl'"), "{sql}");
        assert!(sql.contains("MASTER_USE_GTID=slave_pos"), "{sql}");
    }

    #[test]
    fn a_new_server_follows_whichever_server_is_writable() {
        // Server 0 lost its volume after server 2 was promoted.
        let started = start_recorded(
            "rebuilt-0",
            "prod-mysql-0",
            &["prod-mysql-2"],
            &["prod-mysql-2"],
            "",
            Some("prod-mysql-2"),
        );
        assert!(started.server_cnf.contains("read_only = ON\n"));
        let sql = started.replicate_sql.unwrap();
        assert!(
            sql.contains("MASTER_HOST='prod-mysql-2.prod-mysql'"),
            "{sql}"
        );
    }

    #[test]
    fn the_primary_restarting_among_read_only_replicas_waits_then_takes_writes_again() {
        // Nobody promoted a replica within SNS_MYSQL_CRASH_WAIT (1 s here).
        let begun = std::time::Instant::now();
        let started = start(
            "primary-restart",
            "prod-mysql-0",
            &["prod-mysql-1", "prod-mysql-2"],
            &[],
            "primary",
        );
        assert!(
            begun.elapsed() >= std::time::Duration::from_secs(1),
            "it waited"
        );
        assert!(started.server_cnf.contains("read_only = OFF\n"));
        assert!(!started.users_sql.contains("CHANGE MASTER"));
    }

    #[test]
    fn a_former_primary_back_after_a_failover_follows_the_new_one_read_only() {
        let started = start(
            "fenced",
            "prod-mysql-0",
            &["prod-mysql-1", "prod-mysql-2"],
            &["prod-mysql-1"],
            "primary",
        );
        assert!(started.server_cnf.contains("read_only = ON\n"));
        let sql = &started.users_sql;
        assert!(
            sql.contains("MASTER_HOST='prod-mysql-1.prod-mysql'"),
            "{sql}"
        );
        assert!(sql.contains("MASTER_USE_GTID=current_pos"), "{sql}");
        assert!(sql.trim_end().ends_with("START SLAVE;"), "{sql}");
        assert!(started.replicate_sql.is_none(), "not a first start");
    }

    #[test]
    fn after_a_recorded_failover_the_old_primary_never_starts_writable() {
        // The whole StatefulSet restarts after server 1 was promoted; server 1 does not
        // answer yet. Server 0 still has a primary's data, but it is not the recorded primary.
        let started = start_recorded(
            "restart-after-failover",
            "prod-mysql-0",
            &[],
            &[],
            "primary",
            Some("prod-mysql-1"),
        );
        assert!(started.server_cnf.contains("read_only = ON\n"));
        let sql = &started.users_sql;
        assert!(
            sql.contains("MASTER_HOST='prod-mysql-1.prod-mysql'"),
            "{sql}"
        );
        assert!(sql.contains("MASTER_USE_GTID=current_pos"), "{sql}");
    }

    #[test]
    fn the_recorded_primary_restarting_takes_writes_again() {
        let started = start_recorded(
            "promoted-restart",
            "prod-mysql-1",
            &["prod-mysql-0", "prod-mysql-2"],
            &[],
            "primary",
            Some("prod-mysql-1"),
        );
        assert!(started.server_cnf.contains("read_only = OFF\n"));
        assert!(!started.users_sql.contains("CHANGE MASTER"));
    }

    #[test]
    fn the_recorded_primary_defers_to_a_server_already_taking_writes() {
        // The record lags a promotion Orchestrator just made: server 2 takes writes.
        let started = start_recorded(
            "stale-record",
            "prod-mysql-0",
            &["prod-mysql-2"],
            &["prod-mysql-2"],
            "primary",
            Some("prod-mysql-0"),
        );
        assert!(started.server_cnf.contains("read_only = ON\n"));
        assert!(
            started
                .users_sql
                .contains("MASTER_HOST='prod-mysql-2.prod-mysql'")
        );
    }

    #[test]
    fn a_primary_back_after_a_promotion_follows_the_promoted_replica() {
        let started = start(
            "back-promoted",
            "prod-mysql-0",
            &["prod-mysql-1", "prod-mysql-2"],
            &["prod-mysql-2"],
            "primary",
        );
        assert!(started.server_cnf.contains("read_only = ON\n"));
        assert!(
            started
                .users_sql
                .contains("MASTER_HOST='prod-mysql-2.prod-mysql'")
        );
    }

    #[test]
    fn a_replica_restarting_stays_read_only_and_keeps_its_replication() {
        let started = start(
            "replica-restart",
            "prod-mysql-1",
            &["prod-mysql-0"],
            &["prod-mysql-0"],
            "replica",
        );
        assert!(started.server_cnf.contains("read_only = ON\n"));
        assert!(!started.users_sql.contains("CHANGE MASTER"));
    }

    #[test]
    fn start_sh_is_valid_bash() {
        let status = Command::new("bash")
            .args(["-n", "-c", START_SH])
            .status()
            .unwrap();
        assert!(status.success());
    }
}
