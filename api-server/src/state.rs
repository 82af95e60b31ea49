//! Application state shared by every handler: cheap-clone handles only.

use std::sync::Arc;

use crate::config::Config;
use crate::db::Db;
use crate::http::auth::TokenKeys;
use crate::metrics::Metrics;

/// Everything a handler may reach.
#[derive(Clone)]
pub struct AppState {
    /// MySQL writer and readers.
    pub db: Db,
    /// Access-token signing and verification keys.
    pub tokens: Arc<TokenKeys>,
    /// Prometheus registry and the API's metrics.
    pub metrics: Arc<Metrics>,
    /// The configuration the app was built with.
    pub config: Arc<Config>,
}
