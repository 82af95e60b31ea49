//! `sns-operator render -f cluster.yaml`: the objects the reconciler would apply, printed as
//! one multi-document YAML stream, from the same builders.

use std::path::Path;

use anyhow::Context;

use crate::crd::SnsCluster;
use crate::reconcile::build::build_cluster;

/// Reads an SnsCluster manifest and renders its objects as YAML documents.
pub fn render_file(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cluster: SnsCluster = serde_saphyr::from_str(&text)
        .with_context(|| format!("{} is not an SnsCluster", path.display()))?;
    render(&cluster)
}

/// Renders a cluster's objects as YAML documents.
pub fn render(cluster: &SnsCluster) -> anyhow::Result<String> {
    let objects = build_cluster(cluster, false)?;
    let mut out = String::new();
    for value in objects.to_values()? {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&value)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_manifest_renders() {
        // 21 objects, one Service per Orchestrator node (3 and 5), and 11 more for
        // monitoring (on by default).
        for (name, text, objects) in [
            (
                "minimal",
                include_str!("../../manifests/examples/minimal.yaml"),
                35,
            ),
            ("ha", include_str!("../../manifests/examples/ha.yaml"), 37),
        ] {
            let cluster: SnsCluster = serde_saphyr::from_str(text).unwrap();
            let yaml = render(&cluster).unwrap();
            assert_eq!(yaml.matches("---\n").count(), objects, "{name}");
            assert!(yaml.contains(&format!("name: {name}-api")), "{name}");
        }
    }

    #[test]
    fn the_ha_example_sizes_every_component() {
        let cluster: SnsCluster =
            serde_saphyr::from_str(include_str!("../../manifests/examples/ha.yaml")).unwrap();
        assert_eq!(cluster.spec.api.replicas, 4);
        assert_eq!(cluster.spec.mysql.orchestrator.replicas, 5);
        let yaml = render(&cluster).unwrap();
        assert!(yaml.contains("replicas: 12"), "6 masters + 6 replicas");
        assert!(yaml.contains("maxmemory 2gb"));
    }
}
