//! Emitters: each turns the resolved session (plus the host decisions of [`crate::plan`])
//! into one artifact, and only serializes. [`podman`] writes the libpod create body, [`kube`]
//! the Kubernetes YAML for `podman kube play` or a cluster.

pub mod kube;
pub mod podman;
pub mod quadlet;
