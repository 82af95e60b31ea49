//! The object store behind uploads, one of two backends with the same contract:
//!
//! - `--s3-bucket`: an S3 bucket; clients PUT to and GET from S3 through presigned URLs.
//! - `--upload-dir`: a local directory; clients PUT to and GET from the API itself, through
//!   `{public_url}/api/v1/media/{key}` URLs it signs and verifies (`local`, `signing`).
//!
//! Either way the signature binds the key, the Content-Type and the Content-Length, and the
//! rest of uploads (planning, verifying attached media, the sweep) does not know which it is.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

use super::local::LocalDir;
use super::s3::S3Bucket;
use super::signing::resolve_public_url;
use crate::config::UploadConfig;

/// What a stored object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// Content-Type it was stored with.
    pub content_type: Option<String>,
    /// When it was written.
    pub last_modified: Option<DateTime<Utc>>,
}

/// A signed request a client sends as is.
#[derive(Debug, Clone)]
pub struct PresignedRequest {
    /// Full URL, signature included.
    pub url: String,
    /// Headers the client must send with exactly these values.
    pub headers: BTreeMap<String, String>,
}

/// An object listed by the sweep.
#[derive(Debug, Clone)]
pub struct ListedObject {
    /// Its key.
    pub key: String,
    /// When it was written.
    pub last_modified: DateTime<Utc>,
}

/// Where uploaded objects live.
#[derive(Clone)]
pub enum ObjectStore {
    /// An S3 bucket.
    S3(S3Bucket),
    /// A local directory served by the API's own media routes.
    LocalDir(Arc<LocalDir>),
}

impl ObjectStore {
    /// The configured store: S3 with `--s3-bucket`, a local directory with `--upload-dir`,
    /// `None` (uploads off) with neither, and an error with both. `bound` is the listener's
    /// address, the local directory's public URL when `--public-url` is unset.
    pub fn from_config(config: &UploadConfig, bound: SocketAddr) -> anyhow::Result<Option<Self>> {
        match (&config.s3_bucket, &config.upload_dir) {
            (Some(_), Some(_)) => anyhow::bail!(
                "--s3-bucket and --upload-dir are both set: uploads go to one store, so set only one"
            ),
            (Some(bucket), None) => Ok(Some(Self::S3(S3Bucket::from_config(config, bucket)?))),
            (None, Some(dir)) => {
                let public_url = resolve_public_url(config, bound)?;
                let local = LocalDir::from_config(config, dir, public_url)?;
                Ok(Some(Self::LocalDir(Arc::new(local))))
            }
            (None, None) => Ok(None),
        }
    }

    /// The local directory, when that is the backend (its media routes serve only then).
    pub fn local_dir(&self) -> Option<&LocalDir> {
        match self {
            Self::LocalDir(local) => Some(local),
            Self::S3(_) => None,
        }
    }

    /// A PUT of exactly `size` bytes of `content_type` to `key`, valid for `expires_in`.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        expires_in: Duration,
    ) -> anyhow::Result<PresignedRequest> {
        match self {
            Self::S3(bucket) => {
                bucket
                    .presign_put(key, content_type, size, expires_in)
                    .await
            }
            Self::LocalDir(local) => local.presign_put(key, content_type, size, expires_in),
        }
    }

    /// A GET of `key`, valid for `expires_in` from `start` (callers round `start` so the
    /// URL stays the same for a while and clients can cache the bytes).
    pub async fn presign_get(
        &self,
        key: &str,
        start: SystemTime,
        expires_in: Duration,
    ) -> anyhow::Result<String> {
        match self {
            Self::S3(bucket) => bucket.presign_get(key, start, expires_in).await,
            Self::LocalDir(local) => local.presign_get(key, start, expires_in),
        }
    }

    /// What `key` holds, or `None` when nothing is stored there.
    pub async fn head(&self, key: &str) -> anyhow::Result<Option<ObjectInfo>> {
        match self {
            Self::S3(bucket) => bucket.head(key).await,
            Self::LocalDir(local) => local.head(key).await,
        }
    }

    /// Every object under `prefix`.
    pub async fn list(&self, prefix: &str) -> anyhow::Result<Vec<ListedObject>> {
        match self {
            Self::S3(bucket) => bucket.list(prefix).await,
            Self::LocalDir(local) => local.list(prefix).await,
        }
    }

    /// Deletes `key` (nothing happens when it is already gone).
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self {
            Self::S3(bucket) => bucket.delete(key).await,
            Self::LocalDir(local) => local.delete(key).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::Config;

    #[test]
    fn a_bucket_and_a_directory_together_are_a_startup_error() {
        let mut config = Config::try_parse_from(["sns-api"])
            .expect("defaults")
            .uploads;
        let bound = SocketAddr::from(([127, 0, 0, 1], 8080));
        assert!(
            ObjectStore::from_config(&config, bound)
                .expect("no store")
                .is_none()
        );
        config.s3_bucket = Some("media".into());
        config.upload_dir = Some(std::env::temp_dir().join("never-created"));
        let error = ObjectStore::from_config(&config, bound)
            .err()
            .expect("both are refused");
        assert!(error.to_string().contains("--upload-dir"), "{error}");
    }
}
