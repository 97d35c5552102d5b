//! podlab: a Podman-native, rootless runner for GPU deep-learning environments.
//!
//! Data flows one way: the command line, `podlab.toml` and the environment (or a running
//! container's inspect data, [`session::inspected`]) are resolved into one [`session::Session`];
//! [`plan`] makes the host decisions, and the emitters in [`emit`] only serialize it (the
//! podman create body, kube YAML, quadlet units; CDI specs come from [`cdi`]). Two modules
//! reach the Podman and driver side of the host: [`engine`] (the REST socket, and the build
//! context it sends) and [`gpu`] (NVIDIA driver discovery). [`capabilities`] is the one place
//! that knows what each Podman version can do, and [`emit::quadlet::escape`] the one place
//! that escapes unit-file values.

pub mod capabilities;
pub mod cdi;
pub mod cli;
pub mod emit;
pub mod engine;
pub mod error;
pub mod gpu;
pub mod host;
pub mod ops;
pub mod plan;
pub mod session;

pub use error::{Error, Result};
