//! Building the application from its configuration, and serving it until told to stop.

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::db::{Backend, Db};
use crate::feed::service::FeedRuntime;
use crate::http::auth::TokenKeys;
use crate::kv::Kv;
use crate::likes::writer::LikeWriter;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::state::{AppState, Services};
use crate::uploads::store::ObjectStore;
use secrecy::ExposeSecret;

/// How often the like flusher recounts marked posts.
const LIKE_FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// A built application bound to its listener, ready to serve.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    background: TaskTracker,
    stop_background: CancellationToken,
}

impl App {
    /// Connects the stores, applies migrations when configured, and binds the listener.
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        let db = Db::connect(&config.database)?;
        if config.database.database_migrate {
            db.wait_for_writer(config.database.database_startup_wait)
                .await?;
            db.migrate().await?;
        }
        let embedded = db.backend() == Backend::Sqlite;
        let mut kv = Kv::connect(&config.redis).context("configuring Redis")?;
        if embedded {
            // The embedded default: one process, so what Redis shares between API replicas
            // (feeds, post cache, like deltas, rate-limit counters) can live in it.
            if kv.is_none() {
                kv = Some(Kv::in_process(&config.redis));
            }
            if config.uploads.s3_bucket.is_none() && config.uploads.upload_dir.is_none() {
                config.uploads.upload_dir =
                    crate::db::sqlite_file(config.database.database_url.expose_secret())
                        .map(|file| file.with_file_name("uploads"));
            }
        }
        // Bound before the object store is built: with a local directory and no --public-url,
        // signed URLs point at the bound address (the real port, also with port 0).
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let objects = ObjectStore::from_config(&config.uploads, listener.local_addr()?)
            .context("configuring the upload store")?;
        tracing::info!(
            database = db.backend().name(),
            store = match &kv {
                Some(kv) if kv.is_in_process() => "in-process",
                Some(_) => "redis",
                None => "none",
            },
            uploads = match &config.uploads.upload_dir {
                Some(dir) if objects.is_some() => dir.display().to_string(),
                _ if objects.is_some() => "s3".to_owned(),
                _ => "off".to_owned(),
            },
            "stores ready"
        );
        let (likes, like_queue) = LikeWriter::new();
        let state = AppState::new(Services {
            db,
            kv: kv.clone(),
            feed: Arc::new(FeedRuntime::new(&config.redis, &config.feed)),
            objects,
            likes,
            rate_limiter: Arc::new(RateLimiter::new(config.rate_limits.clone(), kv.clone())),
            tokens: Arc::new(TokenKeys::from_config(&config.auth)),
            metrics: Arc::new(Metrics::new().context("registering metrics")?),
            config: Arc::new(config),
        });
        let router = crate::http::router(state.clone());
        let (background, stop_background) = (TaskTracker::new(), CancellationToken::new());
        if let Some(kv) = &state.kv {
            kv.observe_with(state.metrics.kv_observer());
            background.spawn(crate::feed::fanout::run_fanout_worker(
                state.clone(),
                kv.clone(),
                stop_background.clone(),
            ));
            background.spawn(crate::feed::recovery::run_recovery_loop(
                state.clone(),
                kv.clone(),
                stop_background.clone(),
            ));
        }
        background.spawn(crate::likes::writer::run_like_writer(
            state.clone(),
            like_queue,
            stop_background.clone(),
        ));
        background.spawn(crate::likes::flush::run_like_flusher(
            state.clone(),
            LIKE_FLUSH_INTERVAL,
            stop_background.clone(),
        ));
        if state.objects.is_some() {
            background.spawn(crate::uploads::sweep::run_upload_sweep(
                state.clone(),
                state.config.uploads.upload_sweep_interval,
                stop_background.clone(),
            ));
        }
        background.close();
        Ok(Self {
            listener,
            router,
            state,
            background,
            stop_background,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The shared state, for tests that inspect stores directly.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and lets the
    /// background tasks (fan-out, like flush) finish their current round.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.listener.local_addr()?;
        tracing::info!("serving the API at http://{addr}");
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP");
        self.stop_background.cancel();
        self.background.wait().await;
        served
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
