//! `POST /hooks/orchestrator/failover`: Orchestrator's `PostMasterFailoverProcesses` tells the
//! operator which replica it promoted.
//!
//! The request, as an Orchestrator hook sends it (placeholders filled in by Orchestrator):
//!
//! ```text
//! curl -fsS -X POST http://<operator>:8080/hooks/orchestrator/failover \
//!   -H "Authorization: Bearer $HOOK_TOKEN" -H 'Content-Type: application/json' \
//!   -d '{"cluster":"{failureClusterAlias}","namespace":"<namespace>",
//!        "failedHost":"{failedHost}","successorHost":"{successorHost}"}'
//! ```
//!
//! The token is key `token` of the Secret `<cluster>-orchestrator-hook` in the cluster's
//! namespace (generated with the cluster). Answers: 200 `{recorded, primary, failoverCount}`;
//! 401 without a token or with a wrong one (nothing is written); 400 unreadable body, or a
//! `cluster` or `namespace` that Kubernetes would not accept as such a name (they go into API
//! paths, and are checked before any API call: the token is not checked yet);
//! 422 a successor that is no MySQL pod of the cluster; 404 no such cluster; 409 the cluster
//! is paused (the periodic check records the failover once it is resumed); 503 when the
//! Kubernetes API fails. Errors use the JSON contract `{"error": {"code", "message"}}`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde::Deserialize;
use serde_json::json;

use super::record::{Observed, ensure_primary_label, observe_primary};
use crate::context::Context;
use crate::crd::SnsCluster;
use crate::health::{component_pods, pod_for_host};

/// Key of the hook token in the `<cluster>-orchestrator-hook` Secret.
pub const TOKEN_KEY: &str = "token";

/// Name of the Secret that holds a cluster's hook token.
pub fn token_secret_name(cluster: &str) -> String {
    format!("{cluster}-orchestrator-hook")
}

/// The hook's body.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailoverHook {
    /// The SnsCluster (Orchestrator's cluster alias).
    pub cluster: String,
    /// Its namespace.
    pub namespace: String,
    /// The primary that failed, as Orchestrator names it.
    #[serde(default)]
    pub failed_host: Option<String>,
    /// The replica Orchestrator promoted, as Orchestrator names it (pod DNS name or IP).
    pub successor_host: String,
}

/// Handles one failover report.
pub async fn failover_hook(
    State(context): State<Arc<Context>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = bearer_token(&headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "MISSING_TOKEN",
            "send the cluster's hook token as `Authorization: Bearer <token>`",
        );
    };
    let hook: FailoverHook = match serde_json::from_slice(&body) {
        Ok(hook) => hook,
        Err(parse) => {
            return error(
                StatusCode::BAD_REQUEST,
                "MALFORMED_BODY",
                &format!("expected {{cluster, namespace, failedHost, successorHost}}: {parse}"),
            );
        }
    };
    if let Err(message) = check_names(&hook) {
        return error(StatusCode::BAD_REQUEST, "INVALID_NAME", message);
    }
    match expected_token(&context, &hook).await {
        Ok(Some(expected)) if tokens_match(&expected, token.as_bytes()) => {}
        Ok(_) => {
            tracing::warn!(cluster = %hook.cluster, namespace = %hook.namespace, "failover hook refused: wrong token");
            return error(
                StatusCode::UNAUTHORIZED,
                "INVALID_TOKEN",
                "the token is not this cluster's hook token",
            );
        }
        Err(source) => return unavailable(&hook, "reading the hook token", source),
    }
    let label = format!("{}/{}", hook.namespace, hook.cluster);
    context
        .metrics
        .failover_hooks
        .with_label_values(&[label.as_str()])
        .inc();
    record_report(&context, &hook).await
}

/// The authenticated part: find the cluster and the promoted pod, record, relabel.
async fn record_report(context: &Context, hook: &FailoverHook) -> Response {
    let clusters = Api::<SnsCluster>::namespaced(context.client.clone(), &hook.namespace);
    let cluster = match clusters.get_opt(&hook.cluster).await {
        Ok(Some(cluster)) => cluster,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                "CLUSTER_NOT_FOUND",
                "no such SnsCluster",
            );
        }
        Err(source) => return unavailable(hook, "reading the SnsCluster", source),
    };
    if cluster.spec.paused {
        return error(
            StatusCode::CONFLICT,
            "CLUSTER_PAUSED",
            "the cluster is paused; the failover is recorded once it is resumed",
        );
    }
    let pods = match component_pods(context, &hook.namespace, &hook.cluster, "mysql").await {
        Ok(pods) => pods,
        Err(source) => return unavailable(hook, "listing MySQL pods", source),
    };
    let Some(successor) = pod_for_host(&hook.successor_host, &pods) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "UNKNOWN_SUCCESSOR",
            &format!(
                "{} is not a MySQL pod of {}",
                hook.successor_host, hook.cluster
            ),
        );
    };
    let failed = hook
        .failed_host
        .as_deref()
        .map(|host| pod_for_host(host, &pods).unwrap_or(host));
    let (mysql, observed) =
        match observe_primary(context, &hook.namespace, &hook.cluster, successor, failed).await {
            Ok(recorded) => recorded,
            Err(source) => return unavailable(hook, "recording the primary", source),
        };
    let label = format!("{}/{}", hook.namespace, hook.cluster);
    if let Err(source) =
        ensure_primary_label(context, &hook.namespace, &label, &pods, successor).await
    {
        return unavailable(hook, "moving the role=primary label", source);
    }
    Json(json!({
        "recorded": matches!(observed, Observed::Failover(_) | Observed::Discovered),
        "primary": successor,
        "failoverCount": mysql.failover_count,
    }))
    .into_response()
}

/// The token in the cluster's Secret; `None` when there is no such Secret or key.
async fn expected_token(
    context: &Context,
    hook: &FailoverHook,
) -> Result<Option<Vec<u8>>, kube::Error> {
    let secrets = Api::<Secret>::namespaced(context.client.clone(), &hook.namespace);
    let secret = secrets.get_opt(&token_secret_name(&hook.cluster)).await?;
    Ok(secret
        .and_then(|s| s.data)
        .and_then(|mut data| data.remove(TOKEN_KEY))
        .map(|bytes| bytes.0)
        .filter(|token| !token.is_empty()))
}

/// Whether `cluster` and `namespace` are names Kubernetes accepts for an SnsCluster (a DNS
/// subdomain) and a namespace (a DNS label); if not, why (answered with 400). Checked before
/// any API call, so `/`, `?`, `%`, `..` and the like never reach an API path.
fn check_names(hook: &FailoverHook) -> Result<(), &'static str> {
    if !is_dns_subdomain(&hook.cluster) {
        return Err(
            "`cluster` must be an SnsCluster name: an RFC 1123 subdomain (at most 253 \
             characters: lowercase letters, digits, '-' and '.', each dot-separated part \
             starting and ending with a letter or digit)",
        );
    }
    if !is_dns_label(&hook.namespace) {
        return Err(
            "`namespace` must be a namespace name: an RFC 1123 label (1 to 63 lowercase \
             letters, digits or '-', starting and ending with a letter or digit)",
        );
    }
    Ok(())
}

/// An RFC 1123 label as Kubernetes checks it (namespace names): 1 to 63 characters.
fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && is_label_shaped(name)
}

/// An RFC 1123 subdomain as Kubernetes checks it (most object names, custom resources'
/// included): at most 253 characters, dot-separated labels (no per-label limit).
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_label_shaped)
}

/// Non-empty; lowercase ASCII letters, digits and '-'; a letter or digit at both ends.
fn is_label_shaped(part: &str) -> bool {
    let is_alphanumeric = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = part.as_bytes();
    bytes.first().is_some_and(is_alphanumeric)
        && bytes.last().is_some_and(is_alphanumeric)
        && bytes.iter().all(|c| is_alphanumeric(c) || *c == b'-')
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Compares every byte whatever the first difference, so the time taken does not reveal
/// how much of a guessed token was right.
fn tokens_match(expected: &[u8], given: &[u8]) -> bool {
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

/// A Kubernetes failure: logged with its cause, answered with a generic 503.
fn unavailable(hook: &FailoverHook, what: &str, cause: impl std::fmt::Display) -> Response {
    tracing::error!(cluster = %hook.cluster, namespace = %hook.namespace, %cause, "failover hook: {what} failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        "the Kubernetes API did not answer; Orchestrator's API is checked again periodically",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(tokens_match(b"abc", b"abc"));
        assert!(!tokens_match(b"abc", b"abd"));
        assert!(!tokens_match(b"abc", b"ab"));
    }

    #[test]
    fn the_bearer_token_is_read_from_the_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("s3cret"));
    }

    #[test]
    fn the_token_secret_is_one_the_controller_generates() {
        let cluster: SnsCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "sns-platform.dev/v1alpha1",
            "kind": "SnsCluster",
            "metadata": { "name": "prod", "namespace": "ns" },
            "spec": {},
        }))
        .unwrap();
        let generated = crate::reconcile::build::generated_secrets(&cluster);
        assert!(
            generated
                .iter()
                .any(|(name, keys)| *name == token_secret_name("prod") && keys.contains(&TOKEN_KEY)),
            "{generated:?}"
        );
    }

    #[test]
    fn names_are_checked_as_kubernetes_checks_them() {
        for good in ["a", "sns", "prod-1", "0x", &"a".repeat(63)] {
            assert!(is_dns_label(good), "{good}");
            assert!(is_dns_subdomain(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a/b",
            "a?b",
            "a%2fb",
            "a.b",
            "..",
            " a",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!is_dns_label(bad), "{bad:?}");
        }
        for good in ["my.cluster", "a-1.b-2.c", &"a".repeat(253)] {
            assert!(is_dns_subdomain(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a..b",
            ".a",
            "a.",
            "a/b",
            "a?b",
            "a#b",
            "a b",
            "A.b",
            &"a".repeat(254),
        ] {
            assert!(!is_dns_subdomain(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_body_with_a_bad_cluster_or_namespace_is_refused() {
        let hook = |cluster: &str, namespace: &str| FailoverHook {
            cluster: cluster.into(),
            namespace: namespace.into(),
            failed_host: None,
            successor_host: "sns-mysql-1".into(),
        };
        assert_eq!(check_names(&hook("sns", "prod")), Ok(()));
        assert_eq!(check_names(&hook("sns.v2", "prod")), Ok(()));
        for (cluster, namespace, field) in [
            ("sns?watch=1", "prod", "`cluster`"),
            ("sns/../x", "prod", "`cluster`"),
            ("", "prod", "`cluster`"),
            ("sns", "prod/secrets", "`namespace`"),
            ("sns", "prod?x", "`namespace`"),
        ] {
            let refusal = check_names(&hook(cluster, namespace)).unwrap_err();
            assert!(
                refusal.starts_with(field),
                "{cluster:?} {namespace:?}: {refusal}"
            );
        }
    }

    #[test]
    fn an_orchestrator_hook_body_parses_with_extra_placeholders() {
        let hook: FailoverHook = serde_json::from_str(
            r#"{"cluster":"sns","namespace":"prod","failedHost":"sns-mysql-0.sns-mysql",
                "failedPort":"3306","successorHost":"sns-mysql-1.sns-mysql"}"#,
        )
        .unwrap();
        assert_eq!(hook.successor_host, "sns-mysql-1.sns-mysql");
        assert_eq!(hook.failed_host.as_deref(), Some("sns-mysql-0.sns-mysql"));
    }
}
