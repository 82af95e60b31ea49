//! The feed pipeline's benchmark (not a test): every figure is measured in one run on one
//! machine and printed next to its baseline, as a ratio.
//!
//! Needs the test services; `tests/bench.sh` starts them and runs this with
//! `cargo bench -p sns-api --bench feed`.
//!
//! 1. Fan-out inserts/s into existing feeds, against `redis-benchmark -t zadd -P 100
//!    -r 1000000` on the same server (target >= 70 %).
//! 2. Pipelined fan-out to 10,000 followers against one command (one round trip) per
//!    follower, as the seed first did (target >= 20x).
//! 3. Post create p99 for an author with 100,000 followers against one with none (<= 1.2x),
//!    and the time until the post is in every one of 10,000 followers' feeds.
//! 4. Likes/s on one hot post through the HTTP API (target >= 5,000/s), count checked.
//! 5. Feed reads (Redis hit, 20 items) under load: p50, p99, req/s, and the process RSS.
//! 6. Feed reads while Redis is down (database fallback), then while parked fan-outs replay.
//!
//! The API server is the `sns-api` binary in a process of its own (its CPU time and memory
//! are read from /proc). The HTTP loads of 4 and 5 come from wrk, another process, on one
//! thread; 3 and 6 use a Rust client in this process (6 counts latencies of pages served).

#[path = "../tests/api/fixtures.rs"]
mod fixtures;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use sns_api::config::Config;
use sns_api::feed::{cache, fanout};
use sns_api::kv::{Batch, Kv};
use sqlx::{Connection, MySqlConnection};

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set: run tests/bench.sh"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let redis_url = env("SNS_TEST_REDIS_URL")?;
    let redis_port = redis_url.rsplit(':').next().unwrap_or("6379").to_owned();

    println!("== 1. fan-out rate");
    let baseline = redis_benchmark_zadd(&redis_port)?;
    let kv = standalone_kv(&redis_url)?;
    let ours = fanout_rate(&kv, 10_000, 40, 4).await?;
    println!("redis-benchmark -t zadd -P 100 -r 1000000: {baseline:>10.0} ops/s");
    println!(
        "our fan-out (4 workers, feed-insert script, pipelines of 1,000): {ours:>10.0} inserts/s"
    );
    println!("ratio: {:.0} % (target >= 70 %)", ours / baseline * 100.0);

    println!("\n== 2. pipelined vs one command per follower, 10,000 followers");
    let (pipelined, naive) = pipelined_vs_naive(&kv, 10_000).await?;
    println!("pipelined: {:>8.1} ms", pipelined.as_secs_f64() * 1e3);
    println!(
        "one command per follower: {:>8.1} ms",
        naive.as_secs_f64() * 1e3
    );
    println!(
        "speed-up: {:.1}x (target >= 20x)",
        naive.as_secs_f64() / pipelined.as_secs_f64()
    );

    let app = BenchApp::spawn(&redis_url).await?;
    println!("\n== 3. post create latency and fan-out lag");
    let crowd = app.post_latency_and_lag().await?;

    println!("\n== 4. likes on one hot post");
    app.hot_post_likes(&crowd, Duration::from_secs(5), 64)
        .await?;

    println!("\n== 5. feed reads (Redis hit, 20 items) under load");
    let readers = app.feed_read_load(Duration::from_secs(10), 32).await?;

    println!("\n== 6. feed reads while Redis is down, then while parked fan-outs replay");
    app.feed_reads_through_an_outage(&readers, 32).await?;
    Ok(())
}

/// Posts created per author in section 3: the p99 of 1,000 is the tenth-slowest create
/// (of 200, as until run 19, it was the second-slowest: one stray pause decided it).
const CREATES_PER_AUTHOR: usize = 1000;

/// `redis-benchmark -t zadd -P 100 -n 1000000 -r 1000000` against the same server.
fn redis_benchmark_zadd(port: &str) -> anyhow::Result<f64> {
    let output = std::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", port])
        .args([
            "-t", "zadd", "-P", "100", "-n", "1000000", "-r", "1000000", "-q",
        ])
        .output()
        .context("running redis-benchmark")?;
    let text = String::from_utf8_lossy(&output.stdout);
    // The last "ZADD: N requests per second" line is the summary.
    let rate = text
        .split(['\r', '\n'])
        .rev()
        .find_map(|line| {
            let rest = line.trim().strip_prefix("ZADD: ")?;
            let number = rest.split_whitespace().next()?;
            rest.contains("requests per second")
                .then(|| number.parse::<f64>().ok())
                .flatten()
        })
        .with_context(|| format!("no ZADD rate in redis-benchmark output: {text}"))?;
    Ok(rate)
}

fn standalone_kv(url: &str) -> anyhow::Result<Kv> {
    let mut config = Config::try_parse_from(["sns-api"])?;
    config.redis.redis_url = Some(url.to_owned());
    config.redis.redis_key_prefix = format!("bench:{}:", uuid::Uuid::new_v4().simple());
    config.redis.redis_timeout = Duration::from_secs(10);
    Kv::connect(&config.redis)?.context("a Redis URL was given")
}

async fn create_feeds(kv: &Kv, users: u64) -> anyhow::Result<()> {
    for chunk in (1..=users).collect::<Vec<_>>().chunks(500) {
        let writes = chunk
            .iter()
            .map(|user| cache::write_feed(kv, *user, &[], 1, 3600));
        for result in futures::future::join_all(writes).await {
            result?;
        }
    }
    Ok(())
}

/// Fans `posts` posts out to `users` existing feeds the way the workers do: each post
/// through `write_to_feeds`, `workers` posts at once.
async fn fanout_rate(kv: &Kv, users: u64, posts: u64, workers: usize) -> anyhow::Result<f64> {
    create_feeds(kv, users).await?;
    let followers: Vec<u64> = (1..=users).collect();
    let started = Instant::now();
    let fanouts = (0..posts).map(|post| {
        let followers = &followers;
        async move { fanout::write_to_feeds(kv, followers, 1_000_000 + post, 800, 1000).await }
    });
    let mut running = futures::stream::iter(fanouts).buffer_unordered(workers);
    while let Some(result) = running.next().await {
        result?;
    }
    Ok((users * posts) as f64 / started.elapsed().as_secs_f64())
}

/// One fan-out to `followers` feeds: pipelined as the product does it, then with one command
/// (one round trip) per follower as the seed first did.
async fn pipelined_vs_naive(kv: &Kv, followers: u64) -> anyhow::Result<(Duration, Duration)> {
    let ids: Vec<u64> = (1..=followers).collect();
    let started = Instant::now();
    fanout::write_to_feeds(kv, &ids, 5_000_000, 800, 1000).await?;
    let pipelined = started.elapsed();
    let started = Instant::now();
    for id in &ids {
        let mut batch = Batch::new();
        cache::add_fanout_commands(&mut batch, kv, &[*id], 5_000_001, 800);
        cache::first_error(kv.run(batch).await?)?;
    }
    Ok((pipelined, started.elapsed()))
}

/// The API server (the `sns-api` binary, in a process of its own, as deployed) on a fresh
/// database, with Redis.
struct BenchApp {
    address: String,
    database_url: String,
    config: Config,
    client: reqwest::Client,
    server: tokio::process::Child,
}

impl BenchApp {
    async fn spawn(redis_url: &str) -> anyhow::Result<Self> {
        let server = env("SNS_TEST_MYSQL_URL")?;
        let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = MySqlConnection::connect(&server).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )))
        .execute(&mut conn)
        .await?;
        let database_url = format!("{}/{name}", server.trim_end_matches('/'));
        // A free port: bound, read, released for the server to take.
        let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let prefix = format!("bench:{}:", uuid::Uuid::new_v4().simple());
        let args: Vec<String> = [
            "--listen",
            &listen.to_string(),
            "--database-url",
            &database_url,
            "--database-max-connections",
            "32",
            "--redis-url",
            redis_url,
            "--redis-key-prefix",
            &prefix,
            "--jwt-secret",
            "bench",
            "--rate-limit-enabled",
            "false",
            "--log-filter",
            "warn",
        ]
        .map(str::to_owned)
        .into();
        let config =
            Config::try_parse_from(std::iter::once("sns-api".to_owned()).chain(args.clone()))?;
        let log_path = std::env::temp_dir().join(format!("sns-bench-api-{}.log", &prefix[6..18]));
        let log = std::fs::File::create(&log_path)?;
        println!("sns-api log: {}", log_path.display());
        let server = tokio::process::Command::new(env!("CARGO_BIN_EXE_sns-api"))
            .args(&args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting sns-api")?;
        let app = Self {
            address: format!("http://{listen}"),
            database_url,
            config,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()?,
            server,
        };
        app.wait_until_ready().await?;
        Ok(app)
    }

    async fn wait_until_ready(&self) -> anyhow::Result<()> {
        let url = format!("{}/readyz", self.address);
        let started = Instant::now();
        loop {
            if let Ok(response) = self.client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("sns-api did not become ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server process's id, for its CPU time and memory.
    fn server_pid(&self) -> anyhow::Result<u32> {
        self.server.id().context("sns-api has exited")
    }

    async fn db(&self) -> anyhow::Result<MySqlConnection> {
        Ok(MySqlConnection::connect(&self.database_url).await?)
    }

    fn token(&self, user: u64) -> anyhow::Result<String> {
        sns_api::http::auth::TokenKeys::from_config(&self.config.auth).issue(user)
    }

    async fn create_post(&self, token: &str) -> anyhow::Result<(u64, Duration)> {
        let started = Instant::now();
        let response = self
            .client
            .post(format!("{}/api/v1/posts", self.address))
            .bearer_auth(token)
            .json(&serde_json::json!({"content": "benchmark post"}))
            .send()
            .await?;
        let elapsed = started.elapsed();
        if response.status() != reqwest::StatusCode::CREATED {
            bail!("POST /posts answered {}", response.status());
        }
        let body: serde_json::Value = response.json().await?;
        Ok((body["id"].as_u64().context("post id")?, elapsed))
    }

    async fn wait_for_fanout(&self, conn: &mut MySqlConnection) -> anyhow::Result<()> {
        for _ in 0..60_000 {
            let (pending,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM feed_outbox")
                .fetch_one(&mut *conn)
                .await?;
            if pending == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        bail!("fan-out did not finish")
    }

    /// Returns the 100,000 users of its crowd (the likers of section 4).
    async fn post_latency_and_lag(&self) -> anyhow::Result<Vec<u64>> {
        let mut conn = self.db().await?;
        let lonely = fixtures::insert_users(&mut conn, "lonely", 1).await[0];
        let famous = fixtures::insert_users(&mut conn, "famous", 1).await[0];
        let mid = fixtures::insert_users(&mut conn, "mid", 1).await[0];
        let crowd = fixtures::insert_users(&mut conn, "crowd", 100_000).await;
        fixtures::insert_follows(&mut conn, &crowd, famous).await;
        fixtures::insert_follows(&mut conn, &crowd[..10_000], mid).await;
        let kv = Kv::connect(&self.config.redis)?.context("Redis")?;
        let writes = crowd[..10_000]
            .iter()
            .map(|user| cache::write_feed(&kv, *user, &[], 1, 3600));
        for result in futures::future::join_all(writes).await {
            result?;
        }
        let mut p99 = Vec::new();
        for (label, author) in [("0 followers", lonely), ("100,000 followers", famous)] {
            let token = self.token(author)?;
            let mut latencies = Vec::new();
            for _ in 0..CREATES_PER_AUTHOR {
                latencies.push(self.create_post(&token).await?.1);
            }
            let summary = Percentiles::of(&mut latencies);
            println!("POST /posts, author with {label}: {summary}");
            p99.push(summary.p99);
            self.wait_for_fanout(&mut conn).await?;
        }
        println!(
            "p99 ratio (100,000 / 0 followers): {:.2}x (target <= 1.2x)",
            p99[1].as_secs_f64() / p99[0].as_secs_f64()
        );
        let token = self.token(mid)?;
        let mut lags = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            self.create_post(&token).await?;
            self.wait_for_fanout(&mut conn).await?;
            lags.push(started.elapsed());
        }
        println!(
            "post visible in all 10,000 followers' feeds (POST sent -> last feed written): {} \
             (target p99 <= 5 s)",
            Percentiles::of(&mut lags)
        );
        Ok(crowd)
    }

    /// Each of `likers` likes one post at most once, through wrk.
    async fn hot_post_likes(
        &self,
        likers: &[u64],
        duration: Duration,
        connections: usize,
    ) -> anyhow::Result<()> {
        let mut conn = self.db().await?;
        let author = fixtures::insert_users(&mut conn, "hot", 1).await[0];
        let post = fixtures::insert_posts(&mut conn, author, 1).await[0];
        let tokens: Vec<String> = likers
            .iter()
            .map(|id| self.token(*id))
            .collect::<anyhow::Result<_>>()?;
        let url = format!("{}/api/v1/posts/{post}/like", self.address);
        let run = wrk(
            self.server_pid()?,
            &url,
            "PUT",
            tokens,
            connections,
            duration,
            None,
        )
        .await?;
        if run.wrapped {
            bail!("the likers ran out: every request must be a new like");
        }
        println!(
            "wrk, {connections} connections: {} likes acknowledged in {:.1} s = {:.0} likes/s \
             (target >= 5,000); {}; API process CPU {:.0} us per like",
            run.ok,
            run.elapsed.as_secs_f64(),
            run.ok as f64 / run.elapsed.as_secs_f64(),
            run.latency,
            run.api_cpu.as_secs_f64() * 1e6 / run.requests.max(1) as f64,
        );
        let converged = Instant::now();
        loop {
            let (count,): (u64,) = sqlx::query_as("SELECT like_count FROM posts WHERE id = ?")
                .bind(post)
                .fetch_one(&mut conn)
                .await?;
            let (rows,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM post_likes WHERE post_id = ?")
                    .bind(post)
                    .fetch_one(&mut conn)
                    .await?;
            // A request still in flight when wrk stopped may be stored without its answer
            // having been read: at most one per connection.
            let unanswered = count.saturating_sub(run.ok);
            if count == rows as u64 && count >= run.ok && unanswered <= connections as u64 {
                println!(
                    "like_count = {count} = like rows: every acknowledged like counted ({} \
                     more stored whose answer wrk did not wait for), exact {:.2} s after the \
                     load",
                    unanswered,
                    converged.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            if converged.elapsed() > Duration::from_secs(30) {
                bail!("like_count {count}, rows {rows}, acknowledged {}", run.ok);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn feed_read_load(
        &self,
        duration: Duration,
        connections: usize,
    ) -> anyhow::Result<Arc<Vec<String>>> {
        let mut conn = self.db().await?;
        let readers = fixtures::insert_users(&mut conn, "reader", 1000).await;
        let authors = fixtures::insert_users(&mut conn, "writer", 10).await;
        for author in &authors {
            fixtures::insert_follows(&mut conn, &readers, *author).await;
            fixtures::insert_posts(&mut conn, *author, 100).await;
        }
        let tokens: Arc<Vec<String>> = Arc::new(
            readers
                .iter()
                .map(|id| self.token(*id))
                .collect::<anyhow::Result<_>>()?,
        );
        let url = format!("{}/api/v1/feed?limit=20", self.address);
        // Warm: the first read of each feed rebuilds it into Redis.
        for token in tokens.iter() {
            self.client.get(&url).bearer_auth(token).send().await?;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let run = wrk(
            self.server_pid()?,
            &url,
            "GET",
            tokens.to_vec(),
            connections,
            duration,
            Some("x-feed-source=redis"),
        )
        .await?;
        println!(
            "wrk, {connections} connections: {} pages ({} answered 200, {} from Redis) in \
             {:.1} s = {:.0} req/s (target >= 5,000 on 2 cores); {} (targets p50 <= 5 ms, \
             p99 <= 25 ms); API process CPU {:.0} us per read",
            run.requests,
            run.ok,
            run.watched,
            run.elapsed.as_secs_f64(),
            run.requests as f64 / run.elapsed.as_secs_f64(),
            run.latency,
            run.api_cpu.as_secs_f64() * 1e6 / run.requests.max(1) as f64,
        );
        println!(
            "RSS of the sns-api process after the load: {} MB (target <= 100 MB)",
            rss_mb(self.server_pid()?)
        );
        Ok(tokens)
    }

    /// Feed reads with Redis stopped (served from MySQL behind the fallback limit), while
    /// authors keep posting; then Redis comes back and the parked fan-outs replay.
    async fn feed_reads_through_an_outage(
        &self,
        tokens: &Arc<Vec<String>>,
        clients: usize,
    ) -> anyhow::Result<()> {
        let env_dir = env("SNS_TESTENV_DIR")?;
        let testenv = |command: &str| {
            let status = std::process::Command::new("bash")
                .args(["tests/env/testenv.sh", command, &env_dir])
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                .status();
            anyhow::ensure!(
                status.is_ok_and(|status| status.success()),
                "testenv.sh {command} failed"
            );
            Ok(())
        };
        let mut conn = self.db().await?;
        let authors = fixtures::insert_users(&mut conn, "outage-author", 10).await;
        let readers = fixtures::insert_users(&mut conn, "outage-reader", 1000).await;
        for author in &authors {
            fixtures::insert_follows(&mut conn, &readers, *author).await;
        }
        let author_tokens: Vec<String> = authors
            .iter()
            .map(|id| self.token(*id))
            .collect::<anyhow::Result<_>>()?;
        testenv("redis-down")?;
        for token in &author_tokens {
            for _ in 0..5 {
                self.create_post(token).await?;
            }
        }
        let down = self
            .read_load(tokens, Duration::from_secs(5), clients)
            .await?;
        println!(
            "Redis down, {clients} clients: {} reads served ({} from Redis), {} answered 503 \
             (fallback limit) in {:.1} s; served: {} (target p99 <= 150 ms)",
            down.latencies.len(),
            down.from_redis,
            down.unavailable,
            down.elapsed.as_secs_f64(),
            Percentiles::of(&mut down.latencies.clone())
        );
        testenv("redis-up")?;
        let replay_started = Instant::now();
        let during = self
            .read_load(tokens, Duration::from_secs(5), clients)
            .await?;
        let (replayed, _parked) =
            sns_api::feed::store::count_outbox_jobs(&mut self.db().await?).await?;
        println!(
            "Redis back, during the replay ({:.1} s, {} jobs left after it): {} reads ({} from \
             Redis), {} answered 503; {}",
            replay_started.elapsed().as_secs_f64(),
            replayed,
            during.latencies.len(),
            during.from_redis,
            during.unavailable,
            Percentiles::of(&mut during.latencies.clone())
        );
        Ok(())
    }

    /// `clients` concurrent readers cycling through `tokens` for `duration`.
    async fn read_load(
        &self,
        tokens: &Arc<Vec<String>>,
        duration: Duration,
        clients: usize,
    ) -> anyhow::Result<ReadLoad> {
        let url = format!("{}/api/v1/feed?limit=20", self.address);
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let workers: Vec<_> = (0..clients)
            .map(|worker| {
                let (client, tokens, stop, url) = (
                    self.client.clone(),
                    tokens.clone(),
                    stop.clone(),
                    url.clone(),
                );
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut sources_redis = 0u64;
                    let mut unavailable = 0u64;
                    let mut index = worker;
                    while !stop.load(Ordering::Relaxed) {
                        let token = &tokens[index % tokens.len()];
                        index += clients;
                        let sent = Instant::now();
                        if let Ok(response) = client.get(&url).bearer_auth(token).send().await {
                            let from_redis = response
                                .headers()
                                .get("x-feed-source")
                                .is_some_and(|v| v == "redis");
                            let status = response.status();
                            if status.is_success() && response.bytes().await.is_ok() {
                                latencies.push(sent.elapsed());
                                sources_redis += u64::from(from_redis);
                            } else if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                                unavailable += 1;
                            }
                        }
                    }
                    (latencies, sources_redis, unavailable)
                })
            })
            .collect();
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut load = ReadLoad {
            latencies: Vec::new(),
            from_redis: 0,
            unavailable: 0,
            elapsed: Duration::ZERO,
        };
        for worker in workers {
            let (latencies, from_redis, unavailable) = worker.await?;
            load.latencies.extend(latencies);
            load.from_redis += from_redis;
            load.unavailable += unavailable;
        }
        load.elapsed = started.elapsed();
        Ok(load)
    }
}

/// What a read load saw: latencies of the pages served, and where they came from.
struct ReadLoad {
    latencies: Vec<Duration>,
    from_redis: u64,
    unavailable: u64,
    elapsed: Duration,
}

struct Percentiles {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Percentiles {
    fn of(latencies: &mut [Duration]) -> Self {
        latencies.sort_unstable();
        let at = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Self {
            p50: at(0.50),
            p99: at(0.99),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3
        )
    }
}

/// wrk's threads: one drives thousands of requests a second and leaves the second core to the
/// API (the script is told the count too, to split the tokens among the threads).
const WRK_THREADS: &str = "1";

/// What one wrk run measured (its script prints one `wrk-result` line).
struct WrkRun {
    /// Answers received, whatever their status.
    requests: u64,
    /// 2xx answers.
    ok: u64,
    /// Answers carrying the watched header value.
    watched: u64,
    /// Whether a wrk thread ran out of tokens and reused them.
    wrapped: bool,
    elapsed: Duration,
    latency: Percentiles,
    /// CPU time the API server process used during the run.
    api_cpu: Duration,
}

/// Runs wrk against `url` for `duration` over `connections` keep-alive connections, each
/// request with the next of `tokens` as its bearer token (benches/wrk/bearer-rotation.lua).
/// The load generator runs in its own process, on one thread, so the API is measured with
/// an HTTP client of small, known cost beside it rather than inside its own runtime.
async fn wrk(
    server_pid: u32,
    url: &str,
    method: &str,
    tokens: Vec<String>,
    connections: usize,
    duration: Duration,
    watch: Option<&str>,
) -> anyhow::Result<WrkRun> {
    let tokens_file = std::env::temp_dir().join(format!(
        "sns-bench-tokens-{}.txt",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&tokens_file, tokens.join("\n") + "\n")?;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/wrk/bearer-rotation.lua"
    );
    let mut command = tokio::process::Command::new("wrk");
    command
        .args(["-t", WRK_THREADS, "-c", &connections.to_string()])
        .args(["-d", &format!("{}s", duration.as_secs().max(1))])
        .args(["--timeout", "5s", "-s", script, url, "--"])
        .arg(&tokens_file)
        .args([WRK_THREADS, method])
        .args(watch);
    let cpu_before = process_cpu(server_pid);
    let output = command
        .output()
        .await
        .context("running wrk (Debian package `wrk`; .ci/install-tools.sh installs it)")?;
    let api_cpu = process_cpu(server_pid).saturating_sub(cpu_before);
    let _ = std::fs::remove_file(&tokens_file);
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("wrk-result "))
        .with_context(|| {
            format!(
                "no result line from wrk: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    let field = |name: &str| -> anyhow::Result<u64> {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("no {name} in {line}"))?
            .parse()
            .with_context(|| format!("{name} in {line}"))
    };
    Ok(WrkRun {
        requests: field("requests")?,
        ok: field("ok")?,
        watched: field("watched")?,
        wrapped: field("wrapped")? != 0,
        elapsed: Duration::from_micros(field("duration_us")?),
        latency: Percentiles {
            p50: Duration::from_micros(field("p50_us")?),
            p99: Duration::from_micros(field("p99_us")?),
            max: Duration::from_micros(field("max_us")?),
        },
        api_cpu,
    })
}

/// CPU time (user + system) process `pid` has used.
fn process_cpu(pid: u32) -> Duration {
    // Fields 14 and 15 of /proc/PID/stat, in clock ticks (100 per second on Linux); the
    // command name (field 2) may hold spaces, so count from the closing parenthesis.
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split_whitespace().skip(11);
            let user: u64 = fields.next()?.parse().ok()?;
            let system: u64 = fields.next()?.parse().ok()?;
            Some(user + system)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Resident memory of process `pid`, in MB.
fn rss_mb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
