//! Names, labels and the small pieces every builder shares.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{Value, json};

use super::cluster::BuildError;

/// Pod-template annotation holding a hash of the configuration files a workload reads only
/// at start: a changed file changes the template, which rolls the pods.
pub(super) const CONFIG_HASH_ANNOTATION: &str = "sns-platform.dev/config-hash";

/// Names and labels shared by the builders.
pub(super) struct Naming<'a> {
    pub(super) cluster: &'a str,
    pub(super) namespace: Option<String>,
    pub(super) owner: Option<OwnerReference>,
}

impl Naming<'_> {
    /// `<cluster>-<component>`.
    pub(super) fn name(&self, component: &str) -> String {
        format!("{}-{component}", self.cluster)
    }

    pub(super) fn labels(&self, component: &str) -> Value {
        json!({
            "app.kubernetes.io/name": "sns-platform",
            "app.kubernetes.io/instance": self.cluster,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": "sns-operator",
        })
    }

    pub(super) fn selector(&self, component: &str) -> Value {
        json!({
            "app.kubernetes.io/instance": self.cluster,
            "app.kubernetes.io/component": component,
        })
    }

    pub(super) fn metadata(&self, name: &str, component: &str) -> Value {
        let mut metadata = json!({ "name": name, "labels": self.labels(component) });
        if let Some(namespace) = &self.namespace {
            metadata["namespace"] = json!(namespace);
        }
        if let Some(owner) = &self.owner {
            metadata["ownerReferences"] = json!([owner]);
        }
        metadata
    }

    /// Stable DNS names (`<sts>-N.<service>`, relative to the namespace) of a StatefulSet's
    /// pods whose headless Service has the StatefulSet's name.
    pub(super) fn pod_hosts(&self, component: &str, pods: i32) -> Vec<String> {
        let name = self.name(component);
        (0..pods)
            .map(|index| format!("{name}-{index}.{name}"))
            .collect()
    }
}

/// Deserialises a JSON manifest into its typed object.
pub(super) fn typed<T: serde::de::DeserializeOwned>(
    what: &str,
    value: Value,
) -> Result<T, BuildError> {
    serde_json::from_value(value).map_err(|source| BuildError::new(what, source))
}

/// A ConfigMap of `component` holding `data` (file name -> contents).
pub(super) fn config_map<T: serde::de::DeserializeOwned>(
    naming: &Naming<'_>,
    name: &str,
    component: &str,
    data: Value,
) -> Result<T, BuildError> {
    typed(
        &format!("ConfigMap {name}"),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": naming.metadata(name, component),
            "data": data,
        }),
    )
}

/// A Service named `name` in front of `component`'s pods.
pub(super) fn service<T: serde::de::DeserializeOwned>(
    naming: &Naming<'_>,
    name: &str,
    component: &str,
    spec: Value,
) -> Result<T, BuildError> {
    typed(
        &format!("Service {name}"),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": naming.metadata(name, component),
            "spec": spec,
        }),
    )
}

/// A headless Service that gives every pod of `component` a DNS name, ready or not (peers must
/// find each other before they are ready: replication bootstrap, raft, and Prometheus must
/// see a pod that is down).
pub(super) fn headless_service<T: serde::de::DeserializeOwned>(
    naming: &Naming<'_>,
    name: &str,
    component: &str,
    ports: Value,
) -> Result<T, BuildError> {
    service(
        naming,
        name,
        component,
        json!({
            "clusterIP": "None",
            "publishNotReadyAddresses": true,
            "selector": naming.selector(component),
            "ports": ports,
        }),
    )
}

/// A PodDisruptionBudget letting one pod of `component` go at a time (none when it runs one).
pub(super) fn disruption_budget<T: serde::de::DeserializeOwned>(
    naming: &Naming<'_>,
    component: &str,
    replicas: i32,
) -> Result<T, BuildError> {
    let name = naming.name(component);
    let max_unavailable = if replicas > 1 { 1 } else { 0 };
    typed(
        &format!("PodDisruptionBudget {name}"),
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": naming.metadata(&name, component),
            "spec": {
                "maxUnavailable": max_unavailable,
                "selector": { "matchLabels": naming.selector(component) },
            },
        }),
    )
}

/// An environment variable read from a Secret key.
pub(super) fn secret_env(name: &str, secret: &str, key: &str) -> Value {
    json!({ "name": name, "valueFrom": { "secretKeyRef": { "name": secret, "key": key } } })
}

/// FNV-1a (64 bit) of `parts`, in hex: stable across Rust releases and platforms, unlike
/// `DefaultHasher`, so an operator upgrade alone never rolls pods.
pub(super) fn config_hash(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        // A separator byte that UTF-8 never contains keeps ["ab", "c"] apart from ["a", "bc"].
        for byte in part.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_hash_is_stable_and_separates_parts() {
        assert_eq!(config_hash(&["a"]), config_hash(&["a"]));
        assert_ne!(config_hash(&["ab", "c"]), config_hash(&["a", "bc"]));
        // Pinned: a change here would roll every pod of every cluster on upgrade.
        assert_eq!(config_hash(&["sns"]), "589b3918ecb9125e");
    }
}
