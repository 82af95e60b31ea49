//! Services of a test's own, started by the project's script and stopped when dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// MariaDB (primary + 2 replicas), Redis (standalone + cluster) and s3s-fs in a private
/// directory.
pub struct PrivateEnv {
    dir: PathBuf,
    vars: HashMap<String, String>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/env/testenv.sh")
}

impl PrivateEnv {
    /// Starts every service; `semi_sync` turns on semi-synchronous MariaDB replication.
    pub async fn start(semi_sync: bool) -> Self {
        // Short: MariaDB socket paths are limited to 107 bytes.
        let dir = PathBuf::from(format!(
            "/tmp/sns-fault-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        let output = tokio::process::Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&dir)
            .env("SNS_TESTENV_SEMI_SYNC", if semi_sync { "1" } else { "0" })
            .output()
            .await
            .expect("running testenv.sh");
        assert!(
            output.status.success(),
            "testenv.sh start failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let env_file = std::fs::read_to_string(dir.join("env")).expect("the env file");
        let vars = env_file
            .lines()
            .filter_map(|line| line.strip_prefix("export "))
            .filter_map(|line| line.split_once('='))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Self { dir, vars }
    }

    /// A variable of the environment's env file (`SNS_TEST_*`).
    pub fn var(&self, name: &str) -> String {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in the private env file"))
            .clone()
    }

    /// The environment's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `testenv.sh COMMAND DIR ARGS...` (a fault or a repair) and waits for it.
    pub async fn testenv(&self, command: &str, args: &[&str]) {
        let output = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new("bash")
                .arg(script())
                .arg(command)
                .arg(&self.dir)
                .args(args)
                .output(),
        )
        .await
        .expect("testenv.sh finished within a minute")
        .expect("running testenv.sh");
        assert!(
            output.status.success(),
            "testenv.sh {command} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivateEnv {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}
