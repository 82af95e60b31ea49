//! The S3 object store: a bucket on AWS, MinIO, or any S3-compatible server.
//!
//! Clients never send bytes through the API: it presigns PUTs whose signature binds the key,
//! the Content-Type and the Content-Length, so the S3 server itself refuses anything else.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, timeout::TimeoutConfig};
use aws_sdk_s3::presigning::PresigningConfig;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use super::store::{ListedObject, ObjectInfo, PresignedRequest};
use crate::config::UploadConfig;

/// Longest any one call to the object store may take.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// An S3 bucket and a client for it.
#[derive(Clone)]
pub struct S3Bucket {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Bucket {
    /// A client for `bucket`, with the rest of the S3 settings from `config`.
    pub fn from_config(config: &UploadConfig, bucket: &str) -> anyhow::Result<Self> {
        let access_key = config
            .s3_access_key_id
            .as_ref()
            .context("--s3-access-key-id is required with --s3-bucket")?;
        let secret_key = config
            .s3_secret_access_key
            .as_ref()
            .context("--s3-secret-access-key is required with --s3-bucket")?;
        let credentials = Credentials::new(
            access_key,
            secret_key.expose_secret(),
            None,
            None,
            "sns-api-config",
        );
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.s3_region.clone()))
            .credentials_provider(credentials)
            .force_path_style(
                config
                    .s3_force_path_style
                    .unwrap_or(config.s3_endpoint.is_some()),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            );
        if let Some(endpoint) = &config.s3_endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Ok(Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: bucket.to_owned(),
        })
    }

    /// A PUT of exactly `size` bytes of `content_type` to `key`, valid for `expires_in`.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        expires_in: Duration,
    ) -> anyhow::Result<PresignedRequest> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(size).context("object size")?)
            .presigned(PresigningConfig::expires_in(expires_in)?)
            .await
            .context("presigning a PUT")?;
        Ok(PresignedRequest {
            url: request.uri().to_owned(),
            headers: request
                .headers()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
        })
    }

    /// A GET of `key`, valid for `expires_in` from `start` (callers round `start` so the
    /// URL stays the same for a while and clients can cache the bytes).
    pub async fn presign_get(
        &self,
        key: &str,
        start: SystemTime,
        expires_in: Duration,
    ) -> anyhow::Result<String> {
        let presigning = PresigningConfig::builder()
            .start_time(start)
            .expires_in(expires_in)
            .build()?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning)
            .await
            .context("presigning a GET")?;
        Ok(request.uri().to_owned())
    }

    /// What `key` holds, or `None` when nothing is stored there.
    pub async fn head(&self, key: &str) -> anyhow::Result<Option<ObjectInfo>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => Ok(Some(ObjectInfo {
                size: object
                    .content_length()
                    .and_then(|length| u64::try_from(length).ok())
                    .unwrap_or(0),
                content_type: object.content_type().map(str::to_owned),
                last_modified: object.last_modified().and_then(to_chrono),
            })),
            Err(error)
                if error
                    .raw_response()
                    .is_some_and(|response| response.status().as_u16() == 404) =>
            {
                Ok(None)
            }
            Err(error) => Err(anyhow::Error::new(error).context(format!("HEAD {key}"))),
        }
    }

    /// Every object under `prefix`, page by page.
    pub async fn list(&self, prefix: &str) -> anyhow::Result<Vec<ListedObject>> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.with_context(|| format!("listing {prefix}"))?;
            for object in page.contents() {
                if let (Some(key), Some(last_modified)) =
                    (object.key(), object.last_modified().and_then(to_chrono))
                {
                    objects.push(ListedObject {
                        key: key.to_owned(),
                        last_modified,
                    });
                }
            }
        }
        Ok(objects)
    }

    /// Deletes `key` (nothing happens when it is already gone).
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .with_context(|| format!("DELETE {key}"))?;
        Ok(())
    }
}

fn to_chrono(time: &aws_sdk_s3::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}
