//! Turning an `SnsCluster` into Kubernetes objects: `build` (pure functions, shared by the
//! reconciler and `sns-operator render`); and its status: `status` (conditions, Events).

pub mod build;
pub mod status;
