//! The local-directory object store: objects are files under one directory, and clients
//! reach them through `PUT`/`GET {public_url}/api/v1/media/{key}` URLs the API signs itself
//! (see `signing`), with the same contract as S3's presigned URLs.
//!
//! ```text
//! <dir>/.signing-key                          generated key (when none is configured)
//! <dir>/{prefix}media/{user}/{uuid}.png       the object's bytes
//! <dir>/{prefix}media/{user}/.{uuid}.png.meta its Content-Type (JSON)
//! <dir>/{prefix}media/{user}/.{uuid}.part     an upload in progress
//! ```
//!
//! Keys never have a segment starting with `.`, so hidden files can never be named by a key
//! and listing skips them. An upload streams into a `.part` file beside its target, which is
//! renamed into place only once exactly the signed number of bytes arrived; the file is
//! removed on any failure, also when the client goes away mid-body.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use axum::body::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::signing::{Grant, SignatureError, UrlSigner, unix_secs, unix_secs_ceil};
use super::store::{ListedObject, ObjectInfo, PresignedRequest};
use crate::config::UploadConfig;

/// Longest key accepted, in bytes.
const MAX_KEY_BYTES: usize = 512;
/// Upload files older than this were left by a process that died mid-upload.
const ABANDONED_PART_AGE: Duration = Duration::from_secs(24 * 3600);
/// Buffer between the request body and the file.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// A directory of objects and the signer of URLs to them.
#[derive(Debug)]
pub struct LocalDir {
    root: PathBuf,
    public_url: String,
    signer: UrlSigner,
}

/// Why an upload's body was not stored.
#[derive(Debug)]
pub enum WriteError {
    /// The body held more bytes than were signed.
    TooLong,
    /// The body ended, or broke off, before the signed length.
    Incomplete {
        /// Bytes received before it ended.
        received: u64,
    },
    /// No bytes arrived for the idle timeout.
    Stalled,
    /// The whole body did not arrive within the time the upload was given.
    TooSlow,
    /// The filesystem failed.
    Io(anyhow::Error),
}

/// What the sidecar file of an object holds.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    content_type: String,
}

/// Checks that `key` is a relative path of safe segments, so it can only name a file under
/// the directory: segments of ASCII letters, digits, `-`, `_` and `.`, none empty and none
/// starting with `.` (which rules out `.`, `..` and the store's hidden files), separated by
/// `/`; no leading `/`, no backslash, at most 512 bytes.
pub fn validate_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err("a key is 1-512 bytes long");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return Err("a key has no empty segments (nor a leading or trailing `/`)");
        }
        if segment.starts_with('.') {
            return Err("no segment of a key starts with `.`");
        }
        if !segment
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
        {
            return Err("a key holds only ASCII letters, digits, `-`, `_`, `.` and `/`");
        }
    }
    Ok(())
}

impl LocalDir {
    /// Opens (creating it if needed) the directory at `root` and loads the signing key;
    /// URLs start with `public_url`.
    pub fn from_config(
        config: &UploadConfig,
        root: &Path,
        public_url: String,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating the upload directory {}", root.display()))?;
        let root = root
            .canonicalize()
            .with_context(|| format!("resolving {}", root.display()))?;
        // Every key starts with the prefix, so a prefix that is not a safe path is a setup error.
        validate_key(&format!("{}media/0/x.png", config.s3_key_prefix)).map_err(|problem| {
            anyhow::anyhow!(
                "--s3-key-prefix `{}` cannot be used with --upload-dir: {problem}",
                config.s3_key_prefix
            )
        })?;
        let signer = UrlSigner::from_config_or_dir(config.upload_signing_key.as_ref(), &root)?;
        tracing::info!(dir = %root.display(), %public_url, "uploads go to a local directory");
        Ok(Self {
            root,
            public_url,
            signer,
        })
    }

    /// A PUT of exactly `size` bytes of `content_type` to `key`, valid until `expires`
    /// (Unix seconds); also the way tests make URLs that are already expired.
    pub fn signed_put(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        expires: u64,
    ) -> anyhow::Result<PresignedRequest> {
        validate_key(key).map_err(|problem| anyhow::anyhow!("cannot sign `{key}`: {problem}"))?;
        let url = self
            .signer
            .put_url(&self.public_url, key, expires, content_type, size);
        Ok(PresignedRequest {
            url,
            headers: [
                ("content-type".to_owned(), content_type.to_owned()),
                ("content-length".to_owned(), size.to_string()),
            ]
            .into(),
        })
    }

    /// A PUT of exactly `size` bytes of `content_type` to `key`, valid for `expires_in`.
    pub fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        expires_in: Duration,
    ) -> anyhow::Result<PresignedRequest> {
        self.signed_put(
            key,
            content_type,
            size,
            unix_secs_ceil(SystemTime::now() + expires_in),
        )
    }

    /// A GET of `key`, valid for `expires_in` from `start`.
    pub fn presign_get(
        &self,
        key: &str,
        start: SystemTime,
        expires_in: Duration,
    ) -> anyhow::Result<String> {
        validate_key(key).map_err(|problem| anyhow::anyhow!("cannot sign `{key}`: {problem}"))?;
        let expires = unix_secs_ceil(start + expires_in);
        Ok(self.signer.get_url(&self.public_url, key, expires))
    }

    /// Checks a signed request for `key` at the current time.
    pub fn verify(
        &self,
        key: &str,
        expires: u64,
        grant: Grant<'_>,
        signature: &str,
    ) -> Result<(), SignatureError> {
        self.signer
            .verify(key, expires, grant, signature, unix_secs(SystemTime::now()))
    }

    /// What `key` holds, or `None` when nothing is stored there.
    pub async fn head(&self, key: &str) -> anyhow::Result<Option<ObjectInfo>> {
        let path = self.path_of(key)?;
        let metadata = match tokio::fs::metadata(&path).await {
            Ok(metadata) if metadata.is_file() => metadata,
            Ok(_) => return Ok(None),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(anyhow::Error::new(error).context(format!("HEAD {key}"))),
        };
        Ok(Some(ObjectInfo {
            size: metadata.len(),
            content_type: read_meta(&path).await?.map(|meta| meta.content_type),
            last_modified: metadata.modified().ok().map(DateTime::<Utc>::from),
        }))
    }

    /// The object at `key`, opened for reading, and what it is; `None` when nothing is there.
    pub async fn open(&self, key: &str) -> anyhow::Result<Option<(tokio::fs::File, ObjectInfo)>> {
        let path = self.path_of(key)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(anyhow::Error::new(error).context(format!("GET {key}"))),
        };
        let metadata = file
            .metadata()
            .await
            .with_context(|| format!("GET {key}"))?;
        if !metadata.is_file() {
            return Ok(None);
        }
        let info = ObjectInfo {
            size: metadata.len(),
            content_type: read_meta(&path).await?.map(|meta| meta.content_type),
            last_modified: metadata.modified().ok().map(DateTime::<Utc>::from),
        };
        Ok(Some((file, info)))
    }

    /// Every object under `prefix` (a key prefix, as with S3). Walking the directory also
    /// removes upload files abandoned by a process that died mid-upload.
    pub async fn list(&self, prefix: &str) -> anyhow::Result<Vec<ListedObject>> {
        // The directory part of the prefix is where the walk starts.
        let start = match prefix.rsplit_once('/') {
            Some((dir, _)) => {
                validate_key(dir)
                    .map_err(|problem| anyhow::anyhow!("prefix `{prefix}`: {problem}"))?;
                self.root.join(dir)
            }
            None => self.root.clone(),
        };
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut objects = Vec::new();
            walk(&root, &start, &prefix, &mut objects)?;
            Ok(objects)
        })
        .await
        .context("listing task")?
    }

    /// Deletes `key` and its sidecar (nothing happens when they are already gone).
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let path = self.path_of(key)?;
        for file in [path.clone(), meta_path(&path)] {
            match tokio::fs::remove_file(&file).await {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(anyhow::Error::new(error).context(format!("DELETE {key}")));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Streams `body` to `key`: exactly `length` bytes, each chunk within `idle_timeout` of
    /// the last and all of them within `budget` (a client trickling bytes must not hold a
    /// connection, a file and a descriptor for days), into a temporary file renamed into
    /// place (with its sidecar) only when complete. Nothing is left behind on failure.
    pub async fn write<E>(
        &self,
        key: &str,
        content_type: &str,
        length: u64,
        body: impl Stream<Item = Result<Bytes, E>>,
        idle_timeout: Duration,
        budget: Duration,
    ) -> Result<(), WriteError>
    where
        E: std::fmt::Display,
    {
        let path = self.path_of(key).map_err(WriteError::Io)?;
        let dir = path
            .parent()
            .context("an object has a parent directory")
            .map_err(WriteError::Io)?;
        tokio::fs::create_dir_all(dir)
            .await
            .with_context(|| format!("creating {}", dir.display()))
            .map_err(WriteError::Io)?;
        let part = RemoveOnDrop(dir.join(format!(".{}.part", uuid::Uuid::new_v4().simple())));
        let file = tokio::fs::File::create(&part.0)
            .await
            .with_context(|| format!("creating {}", part.0.display()))
            .map_err(WriteError::Io)?;
        let mut file = tokio::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        let mut received = 0u64;
        let mut body = std::pin::pin!(body);
        let finish_by = tokio::time::Instant::now() + budget;
        loop {
            let left = finish_by.saturating_duration_since(tokio::time::Instant::now());
            let chunk = match tokio::time::timeout(idle_timeout.min(left), body.next()).await {
                Err(_) if left <= idle_timeout => return Err(WriteError::TooSlow),
                Err(_) => return Err(WriteError::Stalled),
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => chunk,
                Ok(Some(Err(error))) => {
                    tracing::debug!(%error, key, received, "upload body broke off");
                    return Err(WriteError::Incomplete { received });
                }
            };
            received += chunk.len() as u64;
            if received > length {
                return Err(WriteError::TooLong);
            }
            file.write_all(&chunk)
                .await
                .with_context(|| format!("writing {}", part.0.display()))
                .map_err(WriteError::Io)?;
        }
        if received != length {
            return Err(WriteError::Incomplete { received });
        }
        let finished = async {
            file.flush().await?;
            file.get_ref().sync_all().await?;
            drop(file);
            // The object first, then its sidecar: a crash in between leaves an object without
            // a type, which cannot be attached and which the sweep deletes; the reverse would
            // leave a sidecar that nothing ever removes.
            tokio::fs::rename(&part.0, &path).await?;
            if let Err(error) = write_meta(&path, content_type).await {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(error);
            }
            Ok(())
        };
        finished
            .await
            .with_context(|| format!("storing {key}"))
            .map_err(WriteError::Io)
    }

    fn path_of(&self, key: &str) -> anyhow::Result<PathBuf> {
        validate_key(key).map_err(|problem| anyhow::anyhow!("`{key}` is not a key: {problem}"))?;
        Ok(self.root.join(key))
    }
}

/// Removes its file when dropped, unless it was renamed away first (then removal finds
/// nothing). Dropping also covers a request future dropped when its client disconnects.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.0) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(%error, path = %self.0.display(), "cannot remove an upload file");
            }
            _ => {}
        }
    }
}

fn meta_path(object: &Path) -> PathBuf {
    let name = object
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    object.with_file_name(format!(".{name}.meta"))
}

async fn read_meta(object: &Path) -> anyhow::Result<Option<Meta>> {
    let path = meta_path(object);
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(anyhow::Error::new(error).context(format!("reading {}", path.display()))),
    }
}

async fn write_meta(object: &Path, content_type: &str) -> std::io::Result<()> {
    let path = meta_path(object);
    let part =
        RemoveOnDrop(path.with_file_name(format!(".{}.part", uuid::Uuid::new_v4().simple())));
    let meta = serde_json::to_vec(&Meta {
        content_type: content_type.to_owned(),
    })?;
    tokio::fs::write(&part.0, meta).await?;
    tokio::fs::rename(&part.0, &path).await
}

/// Collects the objects under `dir` whose keys start with `prefix`, skipping hidden files
/// and symbolic links, and removing abandoned upload files.
fn walk(
    root: &Path,
    dir: &Path,
    prefix: &str,
    objects: &mut Vec<ListedObject>,
) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!("listing {}", dir.display())));
        }
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let file_type = entry.file_type()?;
        if name.starts_with('.') {
            if name.ends_with(".part") && file_type.is_file() {
                remove_if_abandoned(&path);
            }
            continue;
        }
        if file_type.is_dir() {
            walk(root, &path, prefix, objects)?;
            continue;
        }
        if !file_type.is_file() {
            continue;
        }
        let Some(key) = path
            .strip_prefix(root)
            .ok()
            .and_then(Path::to_str)
            .map(|key| key.replace(std::path::MAIN_SEPARATOR, "/"))
        else {
            continue;
        };
        if !key.starts_with(prefix) || validate_key(&key).is_err() {
            continue;
        }
        if let Ok(modified) = entry.metadata().and_then(|metadata| metadata.modified()) {
            objects.push(ListedObject {
                key,
                last_modified: modified.into(),
            });
        }
    }
    Ok(())
}

fn remove_if_abandoned(path: &Path) {
    let age = std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok());
    if age.is_some_and(|age| age > ABANDONED_PART_AGE) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_keys_are_valid() {
        for key in [
            "media/7/0b8e1f0e-6a56-4c4e-9a0e-6c1b7b8e2f10.png",
            "t-0123abc/media/7/0b8e1f0e-6a56-4c4e-9a0e-6c1b7b8e2f10.webm",
            "a",
        ] {
            assert_eq!(validate_key(key), Ok(()), "{key}");
        }
    }

    #[test]
    fn keys_that_could_leave_the_directory_or_name_hidden_files_are_refused() {
        for key in [
            "",
            "/etc/passwd",
            "media/../../etc/passwd",
            "media/7/..",
            "..",
            "./media/7/x.png",
            "media//7/x.png",
            "media/7/",
            "media\\..\\x.png",
            "media/7/.x.png.meta",
            ".signing-key",
            "media/7/x.png\n",
            "media/7/x y.png",
            "media/7/%2e%2e",
            "media/7/é.png",
            "C:/x.png",
        ] {
            assert!(validate_key(key).is_err(), "{key:?}");
        }
        assert!(validate_key(&"a".repeat(MAX_KEY_BYTES + 1)).is_err());
    }
}
