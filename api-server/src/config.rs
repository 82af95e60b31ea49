//! Configuration from flags and environment variables (`API_*`), parsed once in `main` and
//! passed in; nothing reads it globally.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};
use secrecy::SecretString;

use crate::ratelimit::limits::Limit;

/// The API server's whole configuration.
#[derive(Debug, Clone, Parser)]
#[command(name = "sns-api", version, about = "The sns-platform HTTP API")]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "API_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Database settings.
    #[command(flatten)]
    pub database: DatabaseConfig,

    /// Redis settings.
    #[command(flatten)]
    pub redis: RedisConfig,

    /// Home-feed settings.
    #[command(flatten)]
    pub feed: FeedConfig,

    /// Access-token settings.
    #[command(flatten)]
    pub auth: AuthConfig,

    /// Media uploads and the object store.
    #[command(flatten)]
    pub uploads: UploadConfig,

    /// Rate limits.
    #[command(flatten)]
    pub rate_limits: RateLimitConfig,

    /// Log settings.
    #[command(flatten)]
    pub log: LogConfig,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "API_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Longest time a request may take before it is answered with 503. Uploads to
    /// `--upload-dir` are not bound by it; instead it is the longest wait between two chunks
    /// of their body.
    #[arg(long, env = "API_REQUEST_TIMEOUT", value_parser = parse_duration, default_value = "30s")]
    pub request_timeout: Duration,
}

/// Where the database (MySQL writer and readers, or a SQLite file) is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// Writer URL: the MySQL primary or ProxySQL (`mysql://user:pass@host:3306/sns`), or a
    /// SQLite file (`sqlite://path/sns.db`, the embedded default: one process, no servers;
    /// feeds, caches and rate limits then live in the process unless Redis is configured).
    #[arg(
        long,
        env = "API_DATABASE_URL",
        default_value = "sqlite://sns-data/sns.db"
    )]
    pub database_url: SecretString,

    /// Reader URLs (replicas), comma-separated; reads go round-robin to the healthy ones and
    /// fall back to the writer. Leave empty behind ProxySQL.
    #[arg(long, env = "API_DATABASE_READER_URLS", value_delimiter = ',')]
    pub database_reader_urls: Vec<SecretString>,

    /// Connections per pool (the writer and each reader).
    #[arg(long, env = "API_DATABASE_MAX_CONNECTIONS", default_value_t = 20)]
    pub database_max_connections: u32,

    /// How long a request waits for a pooled connection before the database counts as down.
    #[arg(long, env = "API_DATABASE_ACQUIRE_TIMEOUT", value_parser = parse_duration, default_value = "3s")]
    pub database_acquire_timeout: Duration,

    /// How long a reader that failed is skipped before it is tried again.
    #[arg(long, env = "API_DATABASE_READER_RETRY_AFTER", value_parser = parse_duration, default_value = "5s")]
    pub database_reader_retry_after: Duration,

    /// How long a request the database took no write of (no connection to it, or its
    /// primary refusing writes while a switchover or failover moves it) is run again before
    /// it is answered with 503: a switchover then costs clients a pause, not an error.
    #[arg(long, env = "API_DATABASE_WRITE_RETRY_WINDOW", value_parser = parse_duration, default_value = "10s")]
    pub database_write_retry_window: Duration,

    /// How long start-up waits for the database writer to answer before it applies the
    /// migrations (the database may still be starting beside the API, as in a new cluster).
    #[arg(long, env = "API_DATABASE_STARTUP_WAIT", value_parser = parse_duration, default_value = "60s")]
    pub database_startup_wait: Duration,

    /// Apply pending migrations on start (they take a lock, so replicas of the API may race).
    #[arg(long, env = "API_DATABASE_MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub database_migrate: bool,
}

/// Where Redis is. With neither a URL nor cluster nodes, feeds are read from MySQL.
#[derive(Debug, Clone, Args)]
pub struct RedisConfig {
    /// A standalone Redis, e.g. `redis://127.0.0.1:6379`.
    #[arg(long, env = "API_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Every node of a Redis Cluster, comma-separated `redis://host:port` URLs (all of them:
    /// a client given only a dead node cannot start).
    #[arg(long, env = "API_REDIS_CLUSTER_NODES", value_delimiter = ',')]
    pub redis_cluster_nodes: Vec<String>,

    /// Prefix of every key the API writes, so deployments can share a Redis.
    #[arg(long, env = "API_REDIS_KEY_PREFIX", default_value = "sns:")]
    pub redis_key_prefix: String,

    /// Longest wait for any one Redis round trip.
    #[arg(long, env = "API_REDIS_TIMEOUT", value_parser = parse_duration, default_value = "500ms")]
    pub redis_timeout: Duration,

    /// Share of failed Redis calls (over the window) that opens the circuit breaker.
    #[arg(long, env = "API_REDIS_BREAKER_FAILURE_RATIO", default_value_t = 0.5)]
    pub redis_breaker_failure_ratio: f64,

    /// How far back the circuit breaker counts calls.
    #[arg(long, env = "API_REDIS_BREAKER_WINDOW", value_parser = parse_duration, default_value = "60s")]
    pub redis_breaker_window: Duration,

    /// Calls the window must hold before the breaker may open; as many failures in a row open
    /// it at once.
    #[arg(long, env = "API_REDIS_BREAKER_MIN_CALLS", default_value_t = 20)]
    pub redis_breaker_min_calls: u32,

    /// How long the breaker stays open before it lets probe calls through.
    #[arg(long, env = "API_REDIS_BREAKER_OPEN_FOR", value_parser = parse_duration, default_value = "10s")]
    pub redis_breaker_open_for: Duration,

    /// Probe calls let through at once while half-open.
    #[arg(long, env = "API_REDIS_BREAKER_HALF_OPEN_PROBES", default_value_t = 3)]
    pub redis_breaker_half_open_probes: u32,

    /// Delays between attempts of a background Redis write (fan-out), jittered by +-20 %;
    /// after the last, the job waits in the recovery queue until Redis answers again.
    #[arg(long, env = "API_REDIS_RETRY_DELAYS", value_parser = parse_duration, value_delimiter = ',', default_value = "2s,4s,8s")]
    pub redis_retry_delays: Vec<Duration>,

    /// Fan-out jobs the recovery queue holds in memory; more wait only in the MySQL outbox
    /// (nothing is lost, the bound only caps memory).
    #[arg(long, env = "API_RECOVERY_QUEUE_CAPACITY", default_value_t = 10_000)]
    pub recovery_queue_capacity: usize,

    /// Pause between two replayed jobs once Redis is back, so the replay does not flood it.
    #[arg(long, env = "API_RECOVERY_REPLAY_DELAY", value_parser = parse_duration, default_value = "50ms")]
    pub recovery_replay_delay: Duration,

    /// Keys the in-process store (used instead of Redis by the embedded default) holds at
    /// most; past it, keys with a TTL are evicted least recently used first, and a write that
    /// would add a key fails when none is left. Every key the API writes has a TTL; a key
    /// holds one cached post (about 1 KB), one counter, or one feed of up to `--feed-cap`
    /// ids (about 100 bytes each): the default bounds the store to a few hundred MB for a
    /// community whose active users' feeds fit in it.
    #[arg(long, env = "API_MEMORY_STORE_MAX_KEYS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub memory_store_max_keys: u64,
}

/// How home feeds are built and kept.
#[derive(Debug, Clone, Args)]
pub struct FeedConfig {
    /// Most post ids kept in one user's feed (at least 1).
    #[arg(long, env = "API_FEED_CAP", default_value_t = 800,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub feed_cap: u32,

    /// Posts older than this leave feeds; users inactive longer are not fanned out to.
    #[arg(long, env = "API_FEED_MAX_AGE", value_parser = parse_duration, default_value = "7d")]
    pub feed_max_age: Duration,

    /// Lifetime of an unread feed in Redis (it is rebuilt from MySQL when missing).
    #[arg(long, env = "API_FEED_TTL", value_parser = parse_duration, default_value = "8d")]
    pub feed_ttl: Duration,

    /// Authors with more followers than this are not fanned out to; their posts are merged
    /// into followers' feeds when read.
    #[arg(long, env = "API_FEED_BIG_AUTHOR_FOLLOWERS", default_value_t = 10_000)]
    pub feed_big_author_followers: u64,

    /// Fan-out jobs run at once.
    #[arg(long, env = "API_FANOUT_WORKERS", default_value_t = 4)]
    pub fanout_workers: usize,

    /// Followers read (and written in one pipeline) per fan-out page.
    #[arg(long, env = "API_FANOUT_PAGE_SIZE", default_value_t = 1000)]
    pub fanout_page_size: u32,

    /// How long a claimed fan-out job is reserved for its worker; a job whose process died
    /// is taken up again after this.
    #[arg(long, env = "API_FANOUT_LEASE", value_parser = parse_duration, default_value = "60s")]
    pub fanout_lease: Duration,

    /// Feed reads served from MySQL at once while Redis is unavailable; more get 503.
    #[arg(long, env = "API_FEED_FALLBACK_CONCURRENCY", default_value_t = 16)]
    pub feed_fallback_concurrency: usize,

    /// Longest a feed read from MySQL may take while Redis is unavailable (then 503).
    #[arg(long, env = "API_FEED_FALLBACK_TIMEOUT", value_parser = parse_duration, default_value = "2s")]
    pub feed_fallback_timeout: Duration,

    /// Lifetime of a cached post body.
    #[arg(long, env = "API_POST_CACHE_TTL", value_parser = parse_duration, default_value = "1h")]
    pub post_cache_ttl: Duration,
}

/// Where uploaded media go and what may be uploaded: an S3 bucket (`--s3-bucket`) or a local
/// directory (`--upload-dir`), never both. With neither, uploads are off.
#[derive(Debug, Clone, Args)]
pub struct UploadConfig {
    /// S3 endpoint, e.g. `https://s3.eu-west-1.amazonaws.com` or a MinIO URL; AWS's own
    /// endpoint for the region when absent.
    #[arg(long, env = "API_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// Bucket that holds uploaded media. Without it or `--upload-dir`, uploads are refused
    /// with 503.
    #[arg(long, env = "API_S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// Directory that holds uploaded media, instead of a bucket: clients upload to and
    /// download from the API itself, through URLs it signs (created if missing).
    #[arg(long, env = "API_UPLOAD_DIR", conflicts_with = "s3_bucket")]
    pub upload_dir: Option<PathBuf>,

    /// The API's base URL as clients reach it (e.g. `https://sns.example.com`); URLs to
    /// `--upload-dir` media start with it. Default: `http://` and the bound listen address
    /// (0.0.0.0 and :: become loopback), which only clients on this machine can reach.
    #[arg(long, env = "API_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Key (at least 32 bytes) that signs `--upload-dir` URLs; API replicas sharing a
    /// directory need the same one. Default: a random key kept in `<upload-dir>/.signing-key`
    /// (mode 0600), so URLs survive restarts.
    #[arg(long, env = "API_UPLOAD_SIGNING_KEY")]
    pub upload_signing_key: Option<SecretString>,

    /// Region the bucket lives in (signatures name it).
    #[arg(long, env = "API_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// Access key id for S3.
    #[arg(long, env = "API_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,

    /// Secret access key for S3.
    #[arg(long, env = "API_S3_SECRET_ACCESS_KEY")]
    pub s3_secret_access_key: Option<SecretString>,

    /// Address buckets by path (`endpoint/bucket/key`) rather than by host name; most
    /// S3-compatible servers need it. Defaults to on when an endpoint is given.
    #[arg(long, env = "API_S3_FORCE_PATH_STYLE", action = clap::ArgAction::Set)]
    pub s3_force_path_style: Option<bool>,

    /// Prefix of every object key, so deployments can share a bucket (or a directory).
    #[arg(long, env = "API_S3_KEY_PREFIX", default_value = "")]
    pub s3_key_prefix: String,

    /// Public base URL of the media (a CDN, say): media URLs become `BASE/KEY`. When unset,
    /// media URLs are signed GETs.
    #[arg(long, env = "API_MEDIA_PUBLIC_BASE_URL")]
    pub media_public_base_url: Option<String>,

    /// Lifetime of a signed GET for attached media.
    #[arg(long, env = "API_MEDIA_URL_TTL", value_parser = parse_duration, default_value = "1h")]
    pub media_url_ttl: Duration,

    /// Lifetime of a signed upload URL.
    #[arg(long, env = "API_UPLOAD_URL_TTL", value_parser = parse_duration, default_value = "15m")]
    pub upload_url_ttl: Duration,

    /// Largest image accepted, in bytes.
    #[arg(long, env = "API_UPLOAD_MAX_IMAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub upload_max_image_bytes: u64,

    /// Largest video accepted, in bytes.
    #[arg(long, env = "API_UPLOAD_MAX_VIDEO_BYTES", default_value_t = 99 * 1024 * 1024)]
    pub upload_max_video_bytes: u64,

    /// Uploads never attached to a post are deleted once this old; attaching one refuses
    /// objects close to that age, so the sweep never deletes media a post is taking.
    #[arg(long, env = "API_UPLOAD_UNATTACHED_MAX_AGE", value_parser = parse_duration, default_value = "24h")]
    pub upload_unattached_max_age: Duration,

    /// How often the sweep of unattached uploads runs.
    #[arg(long, env = "API_UPLOAD_SWEEP_INTERVAL", value_parser = parse_duration, default_value = "1h")]
    pub upload_sweep_interval: Duration,
}

/// Rate limits, each `COUNT/WINDOW` (e.g. `30/1h`).
#[derive(Debug, Clone, Args)]
pub struct RateLimitConfig {
    /// Enforce the limits at all.
    #[arg(long, env = "API_RATE_LIMIT_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub rate_limit_enabled: bool,

    /// Every API request, per user (or per IP without a token).
    #[arg(long, env = "API_RATE_LIMIT_REQUESTS", default_value = "300/5m")]
    pub rate_limit_requests: Limit,

    /// `POST /posts` per user.
    #[arg(long, env = "API_RATE_LIMIT_POSTS", default_value = "30/1h")]
    pub rate_limit_posts: Limit,

    /// `POST /posts/{id}/comments` per user.
    #[arg(long, env = "API_RATE_LIMIT_COMMENTS", default_value = "60/1h")]
    pub rate_limit_comments: Limit,

    /// Likes and unlikes per user.
    #[arg(long, env = "API_RATE_LIMIT_LIKES", default_value = "300/1h")]
    pub rate_limit_likes: Limit,

    /// `POST /uploads` per user.
    #[arg(long, env = "API_RATE_LIMIT_UPLOADS", default_value = "30/30m")]
    pub rate_limit_uploads: Limit,

    /// `POST /users` per IP.
    #[arg(long, env = "API_RATE_LIMIT_SIGNUPS", default_value = "5/30m")]
    pub rate_limit_signups: Limit,

    /// Failed logins per account from one IP (`POST /auth/token`); past it that IP gets
    /// 429 for that account until the window ends, however right the password. Per account
    /// and IP, so that nobody can lock a user out from an IP of their own.
    #[arg(long, env = "API_RATE_LIMIT_LOGIN_FAILURES", default_value = "5/15m")]
    pub rate_limit_login_failures: Limit,

    /// Failed logins per IP, whatever the account (password spraying).
    #[arg(
        long,
        env = "API_RATE_LIMIT_LOGIN_FAILURES_PER_IP",
        default_value = "30/15m"
    )]
    pub rate_limit_login_failures_per_ip: Limit,

    /// Take the client IP from `X-Forwarded-For` (only behind a proxy that sets it).
    #[arg(long, env = "API_RATE_LIMIT_TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set)]
    pub rate_limit_trust_forwarded_for: bool,
}

/// How access tokens are signed.
#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    /// HMAC key for access tokens (HS256). When absent a random key is generated, so tokens
    /// do not survive a restart and cannot be shared between API replicas.
    #[arg(long, env = "API_JWT_SECRET")]
    pub jwt_secret: Option<SecretString>,

    /// Lifetime of an access token.
    #[arg(long, env = "API_TOKEN_TTL", value_parser = parse_duration, default_value = "24h")]
    pub token_ttl: Duration,
}

/// Log output.
#[derive(Debug, Clone, Args)]
pub struct LogConfig {
    /// Log format: `text` for people, `json` for collectors.
    #[arg(long, env = "API_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Log filter in `tracing` syntax, e.g. `info,sns_api=debug`.
    #[arg(long, env = "API_LOG", default_value = "info")]
    pub log_filter: String,
}

/// Parses `500ms`, `30s`, `15m`, `24h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 30s, 15m or 24h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "" | "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value * 60)),
        "h" => Ok(Duration::from_secs(value * 3600)),
        "d" => Ok(Duration::from_secs(value * 86_400)),
        other => Err(format!("unknown duration unit `{other}` in `{text}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn defaults_parse_without_arguments() {
        let config = Config::try_parse_from(["sns-api"]).expect("defaults are valid");
        assert_eq!(config.auth.token_ttl, Duration::from_secs(86_400));
        assert!(config.database.database_reader_urls.is_empty());
        assert_eq!(config.redis.memory_store_max_keys, 100_000);
    }

    #[test]
    fn a_feed_cap_of_zero_is_refused() {
        // The feed-insert script keeps the lowest remaining id as a feed's floor: a feed
        // must be able to hold one.
        assert!(Config::try_parse_from(["sns-api", "--feed-cap", "0"]).is_err());
        assert!(Config::try_parse_from(["sns-api", "--feed-cap", "1"]).is_ok());
    }

    #[test]
    fn a_bucket_and_an_upload_dir_together_are_refused() {
        let both =
            Config::try_parse_from(["sns-api", "--s3-bucket", "b", "--upload-dir", "/tmp/u"]);
        assert!(both.is_err());
        let dir = Config::try_parse_from(["sns-api", "--upload-dir", "/tmp/u"]).expect("dir alone");
        assert_eq!(dir.uploads.upload_dir, Some(PathBuf::from("/tmp/u")));
    }
}
