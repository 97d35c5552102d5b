//! `podlab version`: podlab's version, the server's, the socket, and what that Podman can do.

use std::fmt::Write as _;

use serde::Serialize;

use super::{print_result, to_json};
use crate::Result;
use crate::capabilities::{Capabilities, CdiVersion, Feature, UnitType};
use crate::engine::{self, ConnectOptions, Connection, ServerVersion};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    podlab: &'static str,
    server: &'a ServerVersion,
    connection: &'a Connection,
    autostarted: bool,
    capabilities: CapabilitySummary,
}

#[derive(Debug, Serialize)]
struct CapabilitySummary {
    quadlet_unit_types: Vec<UnitType>,
    max_cdi_version: Option<CdiVersion>,
    kube_play_cdi_limits: bool,
    cdi_spec_dirs: bool,
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

pub async fn run(args: &Args, connect: &ConnectOptions) -> Result<u8> {
    let connected = engine::connect(connect).await?;
    let report = Report {
        podlab: env!("CARGO_PKG_VERSION"),
        server: &connected.server,
        connection: &connected.connection,
        autostarted: connected.connection.autostarted(),
        capabilities: CapabilitySummary::of(connected.capabilities()),
    };
    let text = if args.json {
        to_json(&report)?
    } else {
        render(&report)
    };
    print_result(&text)?;
    Ok(0)
}

fn yes_no(value: bool, feature: Feature) -> String {
    if value {
        "yes".to_owned()
    } else {
        format!("no (needs podman {})", feature.since())
    }
}

fn render(report: &Report<'_>) -> String {
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
