//! The real node: its kubeconfig and bridge address (from `tests/env/node.sh`'s env file),
//! kubectl and helm, a Kubernetes client, and polling.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A variable `tests/env/node.sh` exports; missing is a failure, never a skip.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the node with `tests/env/node.sh start DIR` and source \
             DIR/env (tests/run-all.sh does)"
        )
    })
}

/// The repository's root (kubectl and helm run there, so `charts/` resolves).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Six random lowercase hex digits, for names unique to this run.
pub fn suffix() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// The node as the tests see it.
#[derive(Clone)]
pub struct Node {
    /// The admin kubeconfig.
    pub kubeconfig: String,
    /// The address of the node's bridge (`cni0`): pods reach the host there, and the host
    /// reaches pods and Services through it.
    pub bridge_ip: String,
    /// An admin client.
    pub client: Client,
}

impl Node {
    /// The node `tests/env/node.sh` started (its env file sourced).
    pub async fn from_env() -> Self {
        let kubeconfig = env("SNS_NODE_KUBECONFIG");
        let bridge_ip = env("SNS_NODE_BRIDGE_IP");
        let config = Kubeconfig::read_from(&kubeconfig).expect("reading the node's kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
            .await
            .expect("a client configuration from the node's kubeconfig");
        let client = sns_operator::startup::kube_client(config).expect("a Kubernetes client");
        Self {
            kubeconfig,
            bridge_ip,
            client,
        }
    }

    /// Runs `program` (on PATH: node.sh's env puts kubectl and helm there) from the
    /// repository's root with the admin kubeconfig and `stdin`; returns (success, stdout +
    /// stderr).
    pub fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
        let mut child = Command::new(program)
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .current_dir(repo_root())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} runs (is it on PATH?): {e}"));
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .unwrap_or_else(|e| panic!("writing to {program}: {e}"));
        }
        let output = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{program} finishes: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// kubectl with `args`; returns (success, output).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String) {
        self.run("kubectl", args, None)
    }

    /// kubectl with `args`, which must succeed; returns its output.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.kubectl(args);
        assert!(ok, "kubectl {}: {out}", args.join(" "));
        out
    }

    /// `kubectl apply -f -` of `manifest` in `namespace`.
    pub fn apply(&self, namespace: &str, manifest: &str) {
        let (ok, out) = self.run(
            "kubectl",
            &["apply", "-n", namespace, "-f", "-"],
            Some(manifest),
        );
        assert!(ok, "kubectl apply: {out}\n{manifest}");
    }

    /// helm with `args`, which must succeed; returns its output.
    pub fn helm_ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.run("helm", args, None);
        assert!(ok, "helm {}: {out}", args.join(" "));
        out
    }
}

/// Polls `check` every `every` until it returns `Some`, for at most `seconds`; on time-out
/// panics naming `what`, after printing `diagnose()`'s text.
pub async fn eventually<T, F, Fut>(
    seconds: u64,
    every: Duration,
    what: &str,
    diagnose: impl Fn() -> String,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() >= deadline {
            eprintln!("{}", diagnose());
            panic!("timed out after {seconds} s waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}
