//! End-to-end tests of the platform on a real one-node Kubernetes (`tests/env/node.sh`):
//! real containerd, runc, kubelet, kube-proxy, CoreDNS and volumes, with the images of
//! `tests/env/build-images.sh` imported into the node. No KWOK and no scripted data plane.
//!
//! ```text
//! node       the node's kubeconfig, bridge address, kubectl and helm; polling; diagnostics
//! cluster    a namespace with an SnsCluster in it: apply, wait for Ready, pods, Services
//! install    the operator installed with its chart; the SnsCluster the tests apply
//! s3         an S3 server (s3s-fs) on the node's bridge address, which pods reach
//! api        an HTTP client of the deployed API: the client journey's calls
//! load       a steady write load through the API, recording every answer (failover costs)
//! mysql      SQL in the cluster's MySQL pods: replication, the writes the primary holds
//! prometheus the deployed Prometheus' HTTP API: targets, rules, queries
//! ```
//!
//! Every address the tests send traffic to is on this machine: the node's bridge (pods and
//! the Services kube-proxy maps to them) and loopback.

pub mod api;
pub mod cluster;
pub mod install;
pub mod load;
pub mod mysql;
pub mod node;
pub mod prometheus;
pub mod s3;
