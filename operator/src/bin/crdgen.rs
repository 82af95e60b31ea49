//! Prints the SnsCluster CustomResourceDefinition as YAML (`crds/` is this program's output).

use kube::CustomResourceExt;
use sns_operator::crd::SnsCluster;

fn main() -> anyhow::Result<()> {
    print!("{}", serde_saphyr::to_string(&SnsCluster::crd())?);
    Ok(())
}
