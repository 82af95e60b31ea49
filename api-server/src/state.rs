//! Application state shared by every handler: cheap-clone handles only.

use std::sync::Arc;

use crate::config::Config;
use crate::db::Db;
use crate::feed::service::FeedRuntime;
use crate::http::auth::TokenKeys;
use crate::kv::Kv;
use crate::likes::writer::LikeWriter;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::uploads::store::ObjectStore;

/// Everything a handler may reach.
#[derive(Clone)]
pub struct AppState {
    /// MySQL writer and readers.
    pub db: Db,
    /// Redis, when configured (feeds, post cache, like deltas).
    pub kv: Option<Kv>,
    /// Feed bookkeeping shared by handlers and the fan-out workers.
    pub feed: Arc<FeedRuntime>,
    /// Access-token signing and verification keys.
    pub tokens: Arc<TokenKeys>,
    /// The bucket uploads go to, when configured.
    pub objects: Option<ObjectStore>,
    /// Queue of like changes, stored in groups.
    pub likes: LikeWriter,
    /// Rate limits and their counters.
    pub rate_limiter: Arc<RateLimiter>,
    /// Prometheus registry and the API's metrics.
    pub metrics: Arc<Metrics>,
    /// The configuration the app was built with.
    pub config: Arc<Config>,
}
