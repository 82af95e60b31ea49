//! URLs the API signs itself for the local-directory store, and their verification:
//!
//! ```text
//! PUT {public_url}/api/v1/media/{key}?expires={unix}&type={content-type}&length={bytes}&sig={hex}
//! GET {public_url}/api/v1/media/{key}?expires={unix}&sig={hex}
//! ```
//!
//! `sig` is the hex HMAC-SHA256, under the signing key, of one line per signed field:
//!
//! ```text
//! sns-media-v1 \n METHOD \n key \n expires \n content-type \n length
//! ```
//!
//! (a GET leaves the last two empty). The method is part of the MAC, so a download URL
//! cannot be turned into an upload; every field is, so changing any query parameter breaks
//! the signature. Fields cannot smuggle a line break: keys are checked by
//! [`super::local::validate_key`], content types with control characters are refused, and
//! the numbers are formatted from their parsed values.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::config::UploadConfig;

/// Where the media routes are mounted; signed URLs start with `{public_url}{MEDIA_PATH}/`.
pub const MEDIA_PATH: &str = "/api/v1/media";
/// Shortest signing key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;
/// File in the upload directory that keeps a generated key across restarts.
pub const KEY_FILE: &str = ".signing-key";
/// Tag of the signed text, so a change of format can never verify an old signature.
const VERSION: &str = "sns-media-v1";

/// What a signed URL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant<'a> {
    /// Upload exactly `length` bytes of `content_type`.
    Put {
        /// The Content-Type the upload must carry.
        content_type: &'a str,
        /// The exact size of the upload, in bytes.
        length: u64,
    },
    /// Download the object.
    Get,
}

/// Why a signed URL is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// The signature does not match the URL's parameters (or is missing or malformed).
    Invalid,
    /// The signature matches, but the URL's lifetime is over.
    Expired,
}

/// Signs and verifies media URLs with one secret key.
pub struct UrlSigner {
    key: SecretString,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner").finish_non_exhaustive()
    }
}

impl UrlSigner {
    /// A signer with `key`, which must be at least [`MIN_KEY_BYTES`] long.
    pub fn new(key: SecretString) -> anyhow::Result<Self> {
        anyhow::ensure!(
            key.expose_secret().len() >= MIN_KEY_BYTES,
            "the upload signing key must be at least {MIN_KEY_BYTES} bytes long"
        );
        Ok(Self { key })
    }

    /// The configured key, or else the one kept in `dir`'s key file, created (mode 0600)
    /// with a random key the first time.
    pub fn from_config_or_dir(
        configured: Option<&SecretString>,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        match configured {
            Some(key) => Self::new(key.clone()),
            None => Self::new(load_or_create_key_file(dir)?),
        }
    }

    /// The hex signature of `grant` on `key` until `expires` (Unix seconds).
    pub fn sign(&self, key: &str, expires: u64, grant: Grant<'_>) -> String {
        hex(&self.mac(key, expires, grant).finalize().into_bytes())
    }

    /// The URL of a PUT of exactly `length` bytes of `content_type` to `key` until `expires`.
    pub fn put_url(
        &self,
        public_url: &str,
        key: &str,
        expires: u64,
        content_type: &str,
        length: u64,
    ) -> String {
        let grant = Grant::Put {
            content_type,
            length,
        };
        format!(
            "{public_url}{MEDIA_PATH}/{key}?expires={expires}&type={}&length={length}&sig={}",
            encode_query_value(content_type),
            self.sign(key, expires, grant)
        )
    }

    /// The URL of a GET of `key` until `expires`.
    pub fn get_url(&self, public_url: &str, key: &str, expires: u64) -> String {
        format!(
            "{public_url}{MEDIA_PATH}/{key}?expires={expires}&sig={}",
            self.sign(key, expires, Grant::Get)
        )
    }

    /// Checks that `signature` grants `grant` on `key` until `expires`, and that `now`
    /// (Unix seconds) is before `expires`. The comparison takes constant time.
    pub fn verify(
        &self,
        key: &str,
        expires: u64,
        grant: Grant<'_>,
        signature: &str,
        now: u64,
    ) -> Result<(), SignatureError> {
        if let Grant::Put { content_type, .. } = grant
            && content_type.chars().any(char::is_control)
        {
            return Err(SignatureError::Invalid);
        }
        let signature = unhex(signature).ok_or(SignatureError::Invalid)?;
        self.mac(key, expires, grant)
            .verify_slice(&signature)
            .map_err(|_| SignatureError::Invalid)?;
        if now >= expires {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }

    fn mac(&self, key: &str, expires: u64, grant: Grant<'_>) -> Hmac<Sha256> {
        let (method, content_type, length) = match grant {
            Grant::Put {
                content_type,
                length,
            } => ("PUT", content_type, length.to_string()),
            Grant::Get => ("GET", "", String::new()),
        };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret().as_bytes())
            .expect("invariant: HMAC accepts keys of any length");
        let text = format!("{VERSION}\n{method}\n{key}\n{expires}\n{content_type}\n{length}");
        mac.update(text.as_bytes());
        mac
    }
}

/// The base URL of the API as clients reach it: `--public-url`, or else `http://` and the
/// bound address, with an unspecified address (`0.0.0.0`, `::`) replaced by loopback.
pub fn resolve_public_url(config: &UploadConfig, bound: SocketAddr) -> anyhow::Result<String> {
    if let Some(url) = &config.public_url {
        let url = url.trim_end_matches('/');
        anyhow::ensure!(
            (url.starts_with("http://") || url.starts_with("https://"))
                && !url.contains(['?', '#', ' ']),
            "--public-url must be an http:// or https:// URL without query, e.g. https://sns.example.com"
        );
        return Ok(url.to_owned());
    }
    let mut address = bound;
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(format!("http://{address}"))
}

/// Reads the key file in `dir`, or creates it with a random key. The file is written under a
/// temporary name and hard-linked into place, so two processes starting at once agree on one
/// key and neither reads a half-written file.
fn load_or_create_key_file(dir: &Path) -> anyhow::Result<SecretString> {
    let path = dir.join(KEY_FILE);
    if let Some(key) = read_key_file(&path)? {
        return Ok(key);
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let temporary = dir.join(format!("{KEY_FILE}.{}", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        file.write_all(hex(&bytes).as_bytes())?;
        file.sync_all()?;
        match std::fs::hard_link(&temporary, &path) {
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    })();
    let _ = std::fs::remove_file(&temporary);
    written.with_context(|| format!("creating the signing key file {}", path.display()))?;
    tracing::info!(path = %path.display(), "no --upload-signing-key set: using the key kept in this file");
    read_key_file(&path)?.with_context(|| format!("{} vanished", path.display()))
}

fn read_key_file(path: &Path) -> anyhow::Result<Option<SecretString>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            #[cfg(unix)]
            if let Ok(metadata) = std::fs::metadata(path) {
                use std::os::unix::fs::PermissionsExt;
                if metadata.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), "the signing key file is readable by others; chmod 600 it");
                }
            }
            Ok(Some(text.trim().to_owned().into()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(anyhow::Error::new(error).context(format!("reading {}", path.display()))),
    }
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
fn encode_query_value(value: &str) -> String {
    use std::fmt::Write as _;
    value.bytes().fold(String::new(), |mut text, byte| {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            text.push(char::from(byte));
        } else {
            let _ = write!(text, "%{byte:02X}");
        }
        text
    })
}

/// Unix seconds of `time`, rounded down.
pub fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Unix seconds of `time`, rounded up, so a URL never lives shorter than asked.
pub fn unix_secs_ceil(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    since.as_secs() + u64::from(since.subsec_nanos() > 0)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const KEY: &str = "t/media/7/0b8e1f0e-6a56-4c4e-9a0e-6c1b7b8e2f10.png";
    const PUT: Grant<'static> = Grant::Put {
        content_type: "image/png",
        length: 100,
    };

    fn signer() -> UrlSigner {
        UrlSigner::new("a test key that is long enough, surely".to_owned().into()).unwrap()
    }

    #[test]
    fn a_signature_verifies_for_exactly_what_it_signed() {
        let signer = signer();
        let signature = signer.sign(KEY, 2000, PUT);
        assert_eq!(signature.len(), 64);
        assert_eq!(signer.verify(KEY, 2000, PUT, &signature, 1000), Ok(()));
        let get = signer.sign(KEY, 2000, Grant::Get);
        assert_eq!(signer.verify(KEY, 2000, Grant::Get, &get, 1999), Ok(()));
    }

    #[test]
    fn changing_any_signed_field_breaks_the_signature() {
        let signer = signer();
        let signature = signer.sign(KEY, 2000, PUT);
        let other_key = KEY.replace("/7/", "/8/");
        let cases: [(&str, u64, Grant<'_>); 6] = [
            (&other_key, 2000, PUT),
            (KEY, 2001, PUT),
            (
                KEY,
                2000,
                Grant::Put {
                    content_type: "image/gif",
                    length: 100,
                },
            ),
            (
                KEY,
                2000,
                Grant::Put {
                    content_type: "image/png",
                    length: 101,
                },
            ),
            (KEY, 2000, Grant::Get),
            (
                KEY,
                2000,
                Grant::Put {
                    content_type: "image/png\n100",
                    length: 100,
                },
            ),
        ];
        for (key, expires, grant) in cases {
            assert_eq!(
                signer.verify(key, expires, grant, &signature, 1000),
                Err(SignatureError::Invalid),
                "{key} {expires} {grant:?}"
            );
        }
    }

    #[test]
    fn a_tampered_or_malformed_signature_is_invalid() {
        let signer = signer();
        let signature = signer.sign(KEY, 2000, PUT);
        let flipped = if signature.starts_with('0') { "1" } else { "0" };
        let tampered = format!("{flipped}{}", &signature[1..]);
        for bad in [
            tampered.as_str(),
            &signature[..62],
            "",
            "zz",
            &signature
                .to_uppercase()
                .replace(|c: char| c.is_ascii_digit(), "G"),
        ] {
            assert_eq!(
                signer.verify(KEY, 2000, PUT, bad, 1000),
                Err(SignatureError::Invalid),
                "{bad}"
            );
        }
        let other =
            UrlSigner::new("another key that is long enough, too".to_owned().into()).unwrap();
        assert_eq!(
            other.verify(KEY, 2000, PUT, &signature, 1000),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn a_valid_signature_past_its_expiry_is_expired() {
        let signer = signer();
        let signature = signer.sign(KEY, 2000, PUT);
        assert_eq!(
            signer.verify(KEY, 2000, PUT, &signature, 2000),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            signer.verify(KEY, 2000, PUT, &signature, 5000),
            Err(SignatureError::Expired)
        );
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(UrlSigner::new("short".to_owned().into()).is_err());
    }

    #[test]
    fn a_generated_key_is_kept_in_a_private_file_and_reused() {
        let dir = std::env::temp_dir().join(format!("sns-signing-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = UrlSigner::from_config_or_dir(None, &dir).unwrap();
        let second = UrlSigner::from_config_or_dir(None, &dir).unwrap();
        let signature = first.sign(KEY, 2000, PUT);
        assert_eq!(second.verify(KEY, 2000, PUT, &signature, 1000), Ok(()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "only the key file remains");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_public_url_defaults_to_the_bound_address() {
        let mut config = <crate::config::Config as clap::Parser>::try_parse_from(["sns-api"])
            .unwrap()
            .uploads;
        let bound: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        assert_eq!(
            resolve_public_url(&config, bound).unwrap(),
            "http://127.0.0.1:4321"
        );
        let any: SocketAddr = "0.0.0.0:80".parse().unwrap();
        assert_eq!(
            resolve_public_url(&config, any).unwrap(),
            "http://127.0.0.1:80"
        );
        let any6: SocketAddr = "[::]:80".parse().unwrap();
        assert_eq!(
            resolve_public_url(&config, any6).unwrap(),
            "http://[::1]:80"
        );
        config.public_url = Some("https://sns.example.com/".into());
        assert_eq!(
            resolve_public_url(&config, bound).unwrap(),
            "https://sns.example.com"
        );
        config.public_url = Some("sns.example.com".into());
        assert!(resolve_public_url(&config, bound).is_err());
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("image/svg+xml"), "image%2Fsvg%2Bxml");
        assert_eq!(encode_query_value("video/mp4"), "video%2Fmp4");
    }

    #[test]
    fn expiries_round_up_to_whole_seconds() {
        assert_eq!(unix_secs_ceil(UNIX_EPOCH + Duration::from_millis(1001)), 2);
        assert_eq!(unix_secs_ceil(UNIX_EPOCH + Duration::from_secs(5)), 5);
    }
}
