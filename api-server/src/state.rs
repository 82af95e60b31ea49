//! Application state shared by every handler and background task.

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

/// Everything a handler may reach, behind one reference count: every extractor and
/// middleware of a request clones the state, and one shared count is far cheaper to clone
/// and drop than one per field.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// Shares `services` with every handler and background task.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The stores, queues and settings the app runs on.
pub struct Services {
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
