//! Operations: what podlab does with Podman and the host for each command, between the
//! command line and the engine.
//!
//! An operation takes a resolved [`crate::session::Session`] (or plain inputs), asks
//! [`crate::plan`] for the host decisions and the emitters for the artifacts, and reaches
//! Podman only through an [`crate::engine::Engine`], so each is tested against the engine's
//! fake. It returns what the command line prints; it never parses flags and never prints a
//! result itself (logs and progress go to stderr through `tracing`).
//!
//! - [`run`]: a session's container as one job (`podlab run`);
//! - [`interactive`]: a container on our terminal (`podlab shell`, `podlab exec -it`);
//! - [`containers`]: sessions that exist (`ps`, `logs`, `exec`, `stop`, `rm`, `code`);
//! - [`units`]: quadlet units on this host (their plan, podlab's unit directory, systemctl);
//! - [`doctor`]: is this host ready for rootless GPU containers.

pub mod build;
pub mod cdi;
pub mod code;
pub mod containers;
pub mod doctor;
pub mod interactive;
pub mod kube;
pub mod notebook;
pub mod pull;
pub mod quadlet;
pub mod run;
pub mod units;
