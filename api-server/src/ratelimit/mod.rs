//! Rate limits per user and per IP by action class (PRODUCT §2 defaults: 300 requests / 5 min;
//! posts 30/h; comments 60/h; likes 300/h; uploads 30 / 30 min; sign-ups 5 / 30 min per IP).
//! Counters live in Redis (`rl:` keys with a TTL) or, without Redis, in memory.

pub mod limits;
pub mod login;
pub mod middleware;
pub mod store;

use std::collections::HashMap;
use std::sync::Mutex;

use limits::{ActionClass, Limit};
use store::CounterStore;

use crate::config::RateLimitConfig;
use crate::kv::Kv;

/// The configured limits and where their counters live.
pub struct RateLimiter {
    /// Limits and switches.
    pub config: RateLimitConfig,
    /// Counter storage.
    pub store: CounterStore,
}

impl RateLimiter {
    /// Counters in Redis when there is one, else in memory.
    pub fn new(config: RateLimitConfig, kv: Option<Kv>) -> Self {
        let store = match kv {
            Some(kv) => CounterStore::Redis(kv),
            None => CounterStore::Memory(Mutex::new(HashMap::new())),
        };
        Self { config, store }
    }

    /// The limit of an action class.
    pub fn limit_of(&self, class: ActionClass) -> Limit {
        match class {
            ActionClass::Posts => self.config.rate_limit_posts,
            ActionClass::Comments => self.config.rate_limit_comments,
            ActionClass::Likes => self.config.rate_limit_likes,
            ActionClass::Uploads => self.config.rate_limit_uploads,
            ActionClass::Signups => self.config.rate_limit_signups,
        }
    }
}
