//! podlab: a Podman-native, rootless runner for GPU deep-learning environments.
//!
//! Data flows one way: the command line (and later `podlab.toml`) is resolved into plain
//! models, and only two modules touch the host: [`engine`] (the Podman REST socket) and
//! [`gpu`] (NVIDIA driver discovery). [`capabilities`] is the one place that knows what each
//! Podman version can do.

pub mod atomic;
pub mod capabilities;
pub mod cdi;
pub mod cli;
pub mod containers;
pub mod doctor;
pub mod emit;
pub mod engine;
pub mod error;
pub mod gpu;
pub mod interactive;
pub mod plan;
pub mod runner;
pub mod session;
pub mod terminal;
pub mod units;
pub mod yaml;

pub use error::{Error, Result};
