//! Every Redis key the API uses, built from one configurable prefix so that deployments (and
//! tests, with `t:<uuid>:`) never collide. The id in braces is the key's cluster hash tag:
//! keys of one user or one post share a slot, so they can be used together on a cluster.

/// Builds the API's Redis keys under a prefix.
#[derive(Debug, Clone)]
pub struct RedisKeys {
    prefix: String,
}

impl RedisKeys {
    /// Keys under `prefix` (e.g. `sns:`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix itself, for SCAN patterns.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Home feed of a user: sorted set of post ids scored by id, plus the completeness marker.
    pub fn feed(&self, user_id: u64) -> String {
        format!("{}feed:{{{user_id}}}", self.prefix)
    }

    /// Cached body of a post (JSON, without counts), with a TTL.
    pub fn post(&self, post_id: u64) -> String {
        format!("{}post:{{{post_id}}}", self.prefix)
    }

    /// Like-count delta of a post not yet written back to MySQL.
    pub fn like_delta(&self, post_id: u64) -> String {
        format!("{}likes:delta:{{{post_id}}}", self.prefix)
    }

    /// Counter of a rate-limit window.
    pub fn rate_limit(&self, class: &str, subject: &str, window: u64) -> String {
        format!("{}rl:{class}:{{{subject}}}:{window}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_prefix_and_a_hash_tag() {
        let keys = RedisKeys::new("t:1:");
        assert_eq!(keys.feed(42), "t:1:feed:{42}");
        assert_eq!(keys.post(7), "t:1:post:{7}");
    }
}
