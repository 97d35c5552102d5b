//! `podlab version`'s report: podlab's version, the server's, the socket, and what that
//! Podman can do (from the one capabilities table), rendered as text; the CLI only prints it.

use std::fmt::Write as _;

use serde::Serialize;

use crate::capabilities::{Capabilities, CdiVersion, Feature, UnitType};
use crate::engine::{self, Connected, Connection, Engine, ServerVersion};

/// What `podlab version` reports, as text or JSON.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub podlab: &'static str,
    pub server: &'a ServerVersion,
    pub connection: &'a Connection,
    pub autostarted: bool,
    pub capabilities: CapabilitySummary,
}

/// The capabilities table's answers for the connected Podman.
#[derive(Debug, Serialize)]
pub struct CapabilitySummary {
    pub quadlet_unit_types: Vec<UnitType>,
    pub max_cdi_version: Option<CdiVersion>,
    pub kube_play_cdi_limits: bool,
    pub cdi_spec_dirs: bool,
}

impl CapabilitySummary {
    fn of(caps: Capabilities) -> Self {
        Self {
            quadlet_unit_types: caps.unit_types(),
            max_cdi_version: caps.max_cdi_version(),
            kube_play_cdi_limits: caps.has(Feature::KubeCdiLimits),
            cdi_spec_dirs: caps.has(Feature::CdiSpecDirs),
        }
    }
}

impl<'a> Report<'a> {
    /// The report of a connected Podman.
    pub fn of<E: Engine>(connected: &'a Connected<E>) -> Self {
        Self {
            podlab: env!("CARGO_PKG_VERSION"),
            server: &connected.server,
            connection: &connected.connection,
            autostarted: connected.connection.autostarted(),
            capabilities: CapabilitySummary::of(connected.capabilities()),
        }
    }
}

fn yes_no(value: bool, feature: Feature) -> String {
    if value {
        "yes".to_owned()
    } else {
        format!("no (needs podman {})", feature.since())
    }
}

/// The report as `podlab version` prints it.
pub fn render(report: &Report<'_>) -> String {
    let connection = report.connection;
    let caps = &report.capabilities;
    let idle = engine::autostart::IDLE_EXIT_SECS;
    let started = match connection.started_pid {
        Some(pid) => format!("yes (pid {pid}, exits after {idle} s idle)"),
        None if connection.autostarted() => format!("yes (exits after {idle} s idle)"),
        None => "no".to_owned(),
    };
    let units: Vec<&str> = caps
        .quadlet_unit_types
        .iter()
        .map(|unit| unit.extension())
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "podlab:              {}", report.podlab);
    let _ = writeln!(out, "podman:              {}", report.server.podman);
    let _ = writeln!(out, "api version:         {}", report.server.api);
    let _ = writeln!(
        out,
        "socket:              {} ({})",
        connection.socket.display(),
        connection.origin.describe()
    );
    let _ = writeln!(out, "started by podlab:   {started}");
    let _ = writeln!(
        out,
        "quadlet units:       {}",
        if units.is_empty() {
            "none".to_owned()
        } else {
            units.join(" ")
        }
    );
    let _ = writeln!(
        out,
        "max cdiVersion:      {}",
        caps.max_cdi_version
            .map_or_else(|| "none".to_owned(), |v| v.to_string())
    );
    let _ = writeln!(
        out,
        "kube play CDI keys:  {}",
        yes_no(caps.kube_play_cdi_limits, Feature::KubeCdiLimits)
    );
    let _ = writeln!(
        out,
        "cdi_spec_dirs:       {}",
        yes_no(caps.cdi_spec_dirs, Feature::CdiSpecDirs)
    );
    out
}
