//! Operations: what podlab does with Podman and the host for each command, between the
//! command line and the engine.
//!
//! An operation takes a resolved [`crate::session::Session`] (or plain inputs), asks
//! [`crate::plan`] for the host decisions and the emitters for the artifacts, and reaches
//! Podman only through an [`crate::engine::Engine`], so each is tested against the engine's
//! fake. It returns what the command line prints; it never parses flags and never prints a
//! result itself (logs and progress go to stderr through `tracing`).
//!
//! - [`run`]: a session's container as one job (`podlab run`), and the cleanup after a lost
//!   socket;
//! - [`interactive`]: a container on our terminal (`podlab shell`, `podlab exec -it`);
//! - [`containers`]: sessions that exist (`ps`, `logs`, `exec`, `stop`, `rm`), and the
//!   inspect data [`crate::session::inspected`] rebuilds a session from;
//! - [`kube`]: Kubernetes YAML from a session, `kube play` and `kube down`;
//! - [`quadlet`] and [`units`]: a session's quadlet units, podlab's unit directory, systemctl;
//! - [`notebook`]: JupyterLab as a systemd user service, with its token in a Podman secret;
//! - [`cdi`]: CDI specs on this host: generate, install, refresh the stale, list;
//! - [`build`], [`pull`]: images through the API, progress on stderr;
//! - [`code`]: VS Code attached to a running session;
//! - [`doctor`]: is this host ready for rootless GPU containers;
//! - [`slurm`]: a session as a Slurm batch job across nodes (`podlab slurm generate`).
//!
//! Some start from [`crate::engine::ConnectOptions`] instead of a connected engine: they
//! check what they can without Podman first (a unit directory, a name) and connect only when
//! needed, so that `podlab quadlet generate --podman-version 5.4 --user-map keep-id` works
//! with no Podman at all. What they do with the engine once connected is in functions generic
//! over [`crate::engine::Engine`].

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
pub mod slurm;
pub mod units;
pub mod version;
