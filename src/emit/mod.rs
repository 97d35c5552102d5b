//! Emitters: each turns the resolved session (plus the host decisions of [`crate::plan`])
//! into one artifact, and only serializes. [`podman`] writes the libpod create body, [`kube`]
//! the Kubernetes YAML for `podman kube play` or a cluster (with [`jobset`]'s JobSet),
//! [`quadlet`] systemd units, [`slurm`] a batch script. [`shell`] is the one place for POSIX
//! shell quoting, [`header`] the mark podlab puts on files it may later replace,
//! [`kube_escape`] the one place for `$(VAR)` escaping in Kubernetes YAML.

pub mod header;
pub mod jobset;
pub mod kube;
pub mod kube_escape;
pub mod podman;
pub mod quadlet;
pub mod shell;
pub mod slurm;
