//! NVIDIA CDI specs for rootless GPU access: built from what [`crate::gpu`] discovers,
//! versioned for the Podman that will read them, written atomically, and checked for
//! freshness against the host.
//!
//! - [`generate`] turns an inventory into a [`spec::Spec`] (an emitter: it only serializes);
//! - [`document`] renders it as YAML or JSON with podlab's provenance header;
//! - [`store`] writes and finds specs without clobbering anything;
//! - [`freshness`] tells a fresh spec from a stale one;
//! - [`validate`] checks any spec file, podlab's or not.

pub mod document;
pub mod freshness;
pub mod generate;
#[cfg(test)]
mod golden_tests;
pub mod spec;
pub mod store;
pub mod validate;
