//! Turning an `SnsCluster` into Kubernetes objects: `build` (pure functions, shared by the
//! reconciler and `sns-operator render`).

pub mod build;
