//! podlab: a Podman-native, rootless runner for GPU deep-learning environments.
//!
//! Data flows one way, and the modules follow it:
//! - [`cli`] parses flags and prints: each subcommand resolves one [`session::Session`] from
//!   the command line, `podlab.toml` and the environment (or from a container's inspect data,
//!   which [`session::inspected`] is handed), makes one call into [`ops`], and prints what it
//!   returns;
//! - [`session`] is the model; it reaches neither Podman nor the driver;
//! - [`ops`] are the operations (run, shell, exec, kube, quadlet, notebook, CDI install and
//!   refresh, ...): they take a resolved session (or plain inputs) and an [`engine::Engine`],
//!   ask [`plan`] for the host decisions, and hand them to the emitters;
//! - [`emit`] only serializes (the podman create body, kube YAML, quadlet units); CDI specs
//!   come from [`cdi`];
//! - two modules reach the Podman and driver side of the host: [`engine`] (the REST socket,
//!   and the build context it sends) and [`gpu`] (NVIDIA driver discovery); [`host`] holds the
//!   small helpers for files and our terminal.
//!
//! [`capabilities`] is the one place that knows what each Podman version can do, and
//! [`emit::quadlet::escape`] the one place that escapes unit-file values; [`error`] carries
//! every failure's `hint:` and exit code.

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
