//! Failed logins, throttled per account and IP and per IP (`POST /auth/token`):
//!
//! ```text
//! login ─► failures of (account, IP) or of IP at their limit? ─ yes ─► 429 + Retry-After
//!                                    │ no                                (no password check)
//!                                    ▼
//!          password wrong ─► both counted ─► 401      right ─► (account, IP) forgotten
//! ```
//! The account's counter is kept per IP: an attacker guessing from one address is stopped
//! without locking the user out from theirs. Counters that cannot be read (Redis down) let
//! the login through: a throttle must not turn an outage into a lock-out.

use std::net::IpAddr;
use std::time::Duration;

use super::RateLimiter;

const ACCOUNT_CLASS: &str = "login";
const IP_CLASS: &str = "login-ip";

impl RateLimiter {
    /// `Err(retry after)` when `account` may not try to log in from `ip` now.
    pub async fn login_allowed(&self, account: &str, ip: IpAddr) -> Result<(), Duration> {
        if !self.config.rate_limit_enabled {
            return Ok(());
        }
        let checks = [
            (
                ACCOUNT_CLASS,
                account_subject(account, ip),
                self.config.rate_limit_login_failures,
            ),
            (
                IP_CLASS,
                ip.to_string(),
                self.config.rate_limit_login_failures_per_ip,
            ),
        ];
        for (class, subject, limit) in checks {
            match self.store.peek(class, &subject, limit.window).await {
                Ok(hit) if hit.count >= limit.max => {
                    return Err(Duration::from_secs(hit.reset_secs.max(1)));
                }
                Ok(_) => {}
                Err(error) => crate::kv::log_fallback(&error, "login throttle unavailable"),
            }
        }
        Ok(())
    }

    /// Counts a wrong password (or unknown login) for `account` from `ip`.
    pub async fn login_failed(&self, account: &str, ip: IpAddr) {
        if !self.config.rate_limit_enabled {
            return;
        }
        let counts = [
            (
                ACCOUNT_CLASS,
                account_subject(account, ip),
                self.config.rate_limit_login_failures,
            ),
            (
                IP_CLASS,
                ip.to_string(),
                self.config.rate_limit_login_failures_per_ip,
            ),
        ];
        for (class, subject, limit) in counts {
            if let Err(error) = self.store.hit(class, &subject, limit.window).await {
                crate::kv::log_fallback(&error, "login throttle unavailable");
            }
        }
    }

    /// Forgets `account`'s failures from `ip` after a successful login.
    pub async fn login_succeeded(&self, account: &str, ip: IpAddr) {
        if !self.config.rate_limit_enabled {
            return;
        }
        let limit = self.config.rate_limit_login_failures;
        if let Err(error) = self
            .store
            .clear(ACCOUNT_CLASS, &account_subject(account, ip), limit.window)
            .await
        {
            crate::kv::log_fallback(&error, "login throttle unavailable");
        }
    }
}

/// Logins are case-insensitive; the subject must be too.
fn account_subject(account: &str, ip: IpAddr) -> String {
    format!("{}|{ip}", account.trim().to_lowercase())
}
