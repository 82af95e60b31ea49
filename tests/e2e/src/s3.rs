//! An S3 server that checks signatures (s3s-fs, the one the API's own tests use), listening
//! on the node's bridge address so that the API pods reach it, over a directory of its own.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running s3s-fs, stopped when dropped.
pub struct S3Server {
    child: Child,
    root: PathBuf,
    /// `http://BRIDGE:PORT`: what the API is configured with and the upload URLs name.
    pub endpoint: String,
    /// The one bucket.
    pub bucket: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

impl S3Server {
    /// Starts s3s-fs on `bridge_ip` with one empty bucket. The binary is the one
    /// `.ci/install-tools.sh` builds (`$SNS_TOOLS_DIR/s3s-fs-0.14.1/bin/s3s-fs`).
    pub fn start(bridge_ip: &str, bucket: &str) -> Self {
        let tools = std::env::var("SNS_TOOLS_DIR").unwrap_or_else(|_| {
            format!(
                "{}/.cache/sns-platform",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let binary = PathBuf::from(tools).join("s3s-fs-0.14.1/bin/s3s-fs");
        assert!(
            binary.is_file(),
            "{} not found: run .ci/install-tools.sh",
            binary.display()
        );
        let root = std::env::temp_dir().join(format!("sns-e2e-s3-{}", crate::node::suffix()));
        std::fs::create_dir_all(root.join(bucket)).expect("creating the bucket's directory");
        // A port the kernel picks, on the bridge address.
        let port = TcpListener::bind((bridge_ip, 0))
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .unwrap_or_else(|e| panic!("no free port on {bridge_ip}: {e}"));
        let (access_key, secret_key) = (
            format!("e2e{}", crate::node::suffix()),
            crate::node::suffix().repeat(5),
        );
        let child = Command::new(&binary)
            .args(["--host", bridge_ip, "--port", &port.to_string()])
            .args(["--access-key", &access_key, "--secret-key", &secret_key])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let address: SocketAddr = format!("{bridge_ip}:{port}")
            .parse()
            .expect("an IP address and a port");
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "s3s-fs does not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            root,
            endpoint: format!("http://{address}"),
            bucket: bucket.to_owned(),
            access_key,
            secret_key,
        }
    }

    /// The keys stored under `prefix` in the bucket, read from the server's directory,
    /// sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        fn walk(dir: &std::path::Path, base: &std::path::Path, keys: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, base, keys);
                } else if let Ok(key) = path.strip_prefix(base) {
                    keys.push(key.to_string_lossy().into_owned());
                }
            }
        }
        let base = self.root.join(&self.bucket);
        let mut keys = Vec::new();
        walk(&base.join(prefix), &base, &mut keys);
        keys.sort();
        keys
    }

    /// The bytes stored under `key` in the bucket, read from the server's directory.
    pub fn stored(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root.join(&self.bucket).join(key)).ok()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
