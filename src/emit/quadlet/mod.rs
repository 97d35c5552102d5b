//! Quadlet units for a session: systemd services with no daemon of podlab's own.
//!
//! podlab writes `.container` and `.kube` files and Podman's quadlet generator turns them into
//! services. [`container`] and [`kube`] fill in the typed model of [`unit`], which alone writes
//! text, and [`escape`] is the one place that knows how each key's value is parsed.

pub mod container;
pub mod escape;
#[cfg(test)]
mod escape_tests;
#[cfg(test)]
mod golden_tests;
pub mod kube;
pub mod notebook;
pub mod service;
pub mod set;
pub mod unit;

pub use container::{Emitted, container_unit};
pub use kube::kube_unit;
