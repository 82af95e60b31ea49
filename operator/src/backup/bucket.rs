//! The backup bucket: multipart uploads of a copy, the record written last, listing and
//! retention.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use serde::{Deserialize, Serialize};

/// Where backups go, and the keys to sign with.
#[derive(Clone, Debug)]
pub struct BucketSettings {
    /// Endpoint URL.
    pub endpoint: String,
    /// Bucket name.
    pub bucket: String,
    /// Region (signing).
    pub region: String,
    /// Key prefix before `<cluster>/mysql/`.
    pub prefix: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

/// `backup.json`: what a complete backup holds, written after its copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    /// The backup's id (its start, UTC: `20261203-154500`), also its key segment.
    pub id: String,
    /// The SnsCluster.
    pub cluster: String,
    /// The server the copy was taken from.
    pub donor: String,
    /// Size of `data.xbstream`.
    pub bytes: u64,
    /// RFC 3339 times.
    pub started_at: String,
    /// RFC 3339 times.
    pub finished_at: String,
}

/// `<prefix><cluster>/mysql/`: the cluster's backups, one "directory" per id.
pub fn backups_prefix(prefix: &str, cluster: &str) -> String {
    format!("{prefix}{cluster}/mysql/")
}

/// An S3 client bound to the backup bucket.
pub struct Bucket {
    client: aws_sdk_s3::Client,
    bucket: String,
}

/// A multipart upload in progress.
pub struct Upload<'b> {
    bucket: &'b Bucket,
    key: String,
    id: String,
    parts: Vec<CompletedPart>,
}

impl Bucket {
    /// A client of `settings`' bucket (path-style addressing, which every S3-compatible
    /// server understands).
    pub fn new(settings: &BucketSettings) -> Self {
        let credentials = Credentials::new(
            &settings.access_key,
            &settings.secret_key,
            None,
            None,
            "sns-operator-backup",
        );
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(credentials)
            .endpoint_url(&settings.endpoint)
            .force_path_style(true)
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: settings.bucket.clone(),
        }
    }

    /// Starts a multipart upload to `key`.
    pub async fn start_upload(&self, key: &str) -> anyhow::Result<Upload<'_>> {
        let started = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/octet-stream")
            .send()
            .await?;
        let id = started
            .upload_id()
            .ok_or_else(|| anyhow::anyhow!("no upload id for {key}"))?
            .to_owned();
        Ok(Upload {
            bucket: self,
            key: key.to_owned(),
            id,
            parts: Vec::new(),
        })
    }

    /// Writes a small object.
    pub async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> anyhow::Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await?;
        Ok(())
    }

    /// The object `key`.
    pub async fn get(&self, key: &str) -> anyhow::Result<Vec<u8>> {
        Ok(self
            .stream(key)
            .await?
            .collect()
            .await?
            .into_bytes()
            .to_vec())
    }

    /// The object `key`, as it comes.
    pub async fn stream(&self, key: &str) -> anyhow::Result<ByteStream> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await?;
        Ok(object.body)
    }

    /// Every key under `prefix`.
    pub async fn keys(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            keys.extend(
                page?
                    .contents()
                    .iter()
                    .filter_map(|object| object.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    /// Deletes `keys` (at most 1000 per request, as S3 takes them).
    pub async fn delete(&self, keys: &[String]) -> anyhow::Result<()> {
        for batch in keys.chunks(1000) {
            let objects = batch
                .iter()
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<Result<Vec<_>, _>>()?;
            self.client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(Delete::builder().set_objects(Some(objects)).build()?)
                .send()
                .await?;
        }
        Ok(())
    }
}

impl Upload<'_> {
    /// Uploads the next part (every part but the last must be at least 5 MiB).
    pub async fn part(&mut self, body: Vec<u8>) -> anyhow::Result<()> {
        let number = i32::try_from(self.parts.len() + 1)?;
        let uploaded = self
            .bucket
            .client
            .upload_part()
            .bucket(&self.bucket.bucket)
            .key(&self.key)
            .upload_id(&self.id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(uploaded.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    /// Completes the object from the parts uploaded.
    pub async fn complete(self) -> anyhow::Result<()> {
        self.bucket
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket.bucket)
            .key(&self.key)
            .upload_id(&self.id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts))
                    .build(),
            )
            .send()
            .await?;
        Ok(())
    }

    /// Drops the parts uploaded (a copy that failed).
    pub async fn abort(self) {
        let aborted = self
            .bucket
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket.bucket)
            .key(&self.key)
            .upload_id(&self.id)
            .send()
            .await;
        if let Err(error) = aborted {
            tracing::warn!(key = %self.key, %error, "cannot abort the upload; the bucket's lifecycle rules must");
        }
    }
}

/// Each part of an upload (S3 wants at least 5 MiB for all but the last).
pub const PART_BYTES: usize = 16 * 1024 * 1024;

/// Reads the next part of an upload from `reader`: `PART_BYTES`, or less at its end (empty
/// once it ended); `what` names the sender when it stays silent for `timeout`.
pub async fn read_part(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    timeout: std::time::Duration,
    what: impl FnOnce() -> String,
) -> anyhow::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut part = Vec::new();
    while part.len() < PART_BYTES {
        let mut chunk = vec![0; 256 * 1024];
        let Ok(read) = tokio::time::timeout(timeout, reader.read(&mut chunk)).await else {
            anyhow::bail!("{} stopped sending", what());
        };
        let read = read?;
        if read == 0 {
            break;
        }
        part.extend_from_slice(&chunk[..read]);
    }
    Ok(part)
}

/// The ids of the complete backups among `keys` (those with a `backup.json`), oldest first.
pub fn complete_backups(keys: &[String], base: &str) -> Vec<String> {
    let mut ids: Vec<String> = keys
        .iter()
        .filter_map(|key| key.strip_prefix(base)?.strip_suffix("/backup.json"))
        .filter(|id| !id.contains('/'))
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The keys to delete so that `keep` complete backups stay: complete backups beyond the
/// newest `keep`, and incomplete ones (a failed run's) older than the newest complete one.
/// `keys` are every key under the cluster's prefix `base`.
pub fn expired(keys: &[String], base: &str, keep: usize) -> Vec<String> {
    let id_of = |key: &str| -> Option<String> {
        key.strip_prefix(base)?
            .split_once('/')
            .map(|(id, _)| id.to_owned())
    };
    let complete = complete_backups(keys, base);
    let kept: Vec<&String> = complete.iter().rev().take(keep).collect();
    let newest = complete.last();
    keys.iter()
        .filter(|key| {
            let Some(id) = id_of(key) else {
                return false;
            };
            if complete.contains(&id) {
                !kept.contains(&&id)
            } else {
                newest.is_some_and(|newest| &id < newest)
            }
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_the_newest_complete_backups_and_a_run_in_progress() {
        let base = "b/prod/mysql/";
        let keys: Vec<String> = [
            "b/prod/mysql/20261201-030000/data.xbstream",
            "b/prod/mysql/20261201-030000/backup.json",
            "b/prod/mysql/20261202-030000/data.xbstream", // failed: no record
            "b/prod/mysql/20261203-030000/data.xbstream",
            "b/prod/mysql/20261203-030000/backup.json",
            "b/prod/mysql/20261204-030000/data.xbstream",
            "b/prod/mysql/20261204-030000/backup.json",
            "b/prod/mysql/20261205-030000/data.xbstream", // in progress
        ]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
        assert_eq!(
            expired(&keys, base, 2),
            vec![
                "b/prod/mysql/20261201-030000/data.xbstream".to_owned(),
                "b/prod/mysql/20261201-030000/backup.json".to_owned(),
                "b/prod/mysql/20261202-030000/data.xbstream".to_owned(),
            ]
        );
        assert_eq!(
            expired(&keys, base, 3).len(),
            1,
            "only the failed run's copy"
        );
        assert!(expired(&[], base, 1).is_empty());
    }
}
