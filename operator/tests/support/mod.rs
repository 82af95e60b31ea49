//! What the operator's control-plane tests share: the tools and client of the test control
//! plane (`tests/env/control-plane.sh`), the CRD, a namespace per test, and polling. Each
//! test binary uses part of it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use sns_operator::crd::{SnsCluster, SnsClusterStatus};

/// A variable the test control plane exports; missing is a failure, never a skip.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the control plane with tests/env/control-plane.sh \
             (tests/run-all.sh does)"
        )
    })
}

/// The repository's root (commands run there, so `crds/` and `manifests/` resolve).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Path of a tool of the test control plane (`kubectl`, `helm`); missing is a failure.
pub fn tool(name: &str) -> PathBuf {
    let path = PathBuf::from(env("SNS_TEST_K8S_BIN")).join(name);
    assert!(
        path.is_file(),
        "{} not found: run tests/env/build-control-plane.sh",
        path.display()
    );
    path
}

/// Runs `program` from the repository root with the admin kubeconfig; returns (success,
/// stdout + stderr).
pub fn run(program: PathBuf, args: &[&str]) -> (bool, String) {
    let output = Command::new(&program)
        .env("KUBECONFIG", env("SNS_TEST_KUBECONFIG"))
        .env("HELM", tool("helm"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The real kubectl.
pub fn kubectl(args: &[&str]) -> (bool, String) {
    run(tool("kubectl"), args)
}

/// The real helm.
pub fn helm(args: &[&str]) -> (bool, String) {
    run(tool("helm"), args)
}

/// Installs the CRD from `crds/` (which also tests the generated YAML) once per test binary.
pub fn install_crd() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let (ok, out) = kubectl(&["apply", "--server-side", "-f", "crds/"]);
        assert!(ok, "installing the CRD: {out}");
        let (ok, out) = kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/snsclusters.sns-platform.dev",
        ]);
        assert!(ok, "the CRD is established: {out}");
    });
}

/// The admin kubeconfig of the test control plane.
pub fn admin_kubeconfig() -> Kubeconfig {
    Kubeconfig::read_from(env("SNS_TEST_KUBECONFIG")).expect("reading the test kubeconfig")
}

/// A client from `kubeconfig`.
pub async fn client_from(kubeconfig: Kubeconfig) -> Client {
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client configuration from the kubeconfig");
    sns_operator::startup::kube_client(config).expect("a Kubernetes client")
}

/// An admin client.
pub async fn client() -> Client {
    client_from(admin_kubeconfig()).await
}

/// Six random lowercase hex digits, for names unique to this run.
pub fn suffix() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Polls `check` until it returns `Some`, for at most `seconds`.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A namespace of the test's own, deleted when the test passes (kept with
/// `KEEP_TEST_NAMESPACE=1`).
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
}

impl TestNamespace {
    /// Creates `t-<random>` (the CRD installed first).
    pub async fn new() -> Self {
        install_crd();
        let client = client().await;
        let name = format!("t-{}", suffix());
        let mut namespace = Namespace::default();
        namespace.metadata.name = Some(name.clone());
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("creating the test namespace");
        Self { name, client }
    }

    /// The API of a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// `kubectl apply -f manifests/examples/minimal.yaml` here.
    pub fn apply_minimal(&self) {
        let (ok, out) = kubectl(&[
            "apply",
            "-n",
            &self.name,
            "-f",
            "manifests/examples/minimal.yaml",
        ]);
        assert!(ok, "{out}");
    }

    /// The status of the SnsCluster `minimal` here.
    pub async fn status(&self) -> SnsClusterStatus {
        self.api::<SnsCluster>()
            .get("minimal")
            .await
            .expect("reading the SnsCluster")
            .status
            .unwrap_or_default()
    }

    /// Deletes the namespace (and so everything in it).
    pub async fn delete(self) {
        if std::env::var("KEEP_TEST_NAMESPACE").is_err() {
            Api::<Namespace>::all(self.client.clone())
                .delete(&self.name, &DeleteParams::default())
                .await
                .expect("deleting the test namespace");
        }
    }
}
