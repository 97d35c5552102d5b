//! Emitters: each turns the resolved session (plus the host decisions of [`crate::plan`])
//! into one artifact, and only serializes. [`podman`] writes the libpod create body.

pub mod podman;
