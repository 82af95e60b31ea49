//! The deployed Prometheus' HTTP API (`/api/v1`), reached through its Service.

use serde_json::Value;

/// Prometheus at `base` (`http://HOST:9090`).
pub struct Prometheus {
    base: String,
    http: reqwest::Client,
}

impl Prometheus {
    /// A client of the Prometheus at `base`.
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("an HTTP client");
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        }
    }

    /// `data` of a successful answer to `GET /api/v1/{path}` with `query`, or why not.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let url = format!("{}/api/v1/{path}", self.base);
        let response = self
            .http
            .get(&url)
            .query(query)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if body["status"] != "success" {
            return Err(format!("GET {url} {query:?}: {body}"));
        }
        Ok(body["data"].clone())
    }

    /// Every active target as (job, instance, health, last error).
    pub async fn targets(&self) -> Result<Vec<(String, String, String, String)>, String> {
        let data = self.get("targets", &[("state", "active")]).await?;
        let text = |target: &Value, path: &[&str]| {
            let mut value = target;
            for key in path {
                value = &value[*key];
            }
            value.as_str().unwrap_or_default().to_owned()
        };
        Ok(data["activeTargets"]
            .as_array()
            .map(|targets| {
                targets
                    .iter()
                    .map(|t| {
                        (
                            text(t, &["labels", "job"]),
                            text(t, &["labels", "instance"]),
                            text(t, &["health"]),
                            text(t, &["lastError"]),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Names of the alerting rules loaded.
    pub async fn alert_names(&self) -> Result<Vec<String>, String> {
        let data = self.get("rules", &[("type", "alert")]).await?;
        Ok(data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
            .filter_map(|rule| rule["name"].as_str().map(str::to_owned))
            .collect())
    }

    /// How many series an instant query returns.
    pub async fn series(&self, expr: &str) -> Result<usize, String> {
        let data = self.get("query", &[("query", expr)]).await?;
        Ok(match data["resultType"].as_str() {
            Some("vector" | "matrix") => data["result"].as_array().map_or(0, Vec::len),
            Some("scalar" | "string") => 1,
            _ => 0,
        })
    }
}
