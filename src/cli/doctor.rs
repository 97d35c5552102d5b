//! `podlab doctor [--json]`: one line per check, a `hint:` under each problem; exit 1 when a
//! required check fails.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{print_result, to_json};
use crate::Result;
use crate::engine::ConnectOptions;
use crate::ops::doctor::{Check, HostRoot, Status, checks, gather};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: &Args, connect: &ConnectOptions) -> Result<u8> {
    let facts = gather(&HostRoot(PathBuf::from("/")), connect).await;
    let checks = checks(&facts);
    let ok = checks.iter().all(|check| check.status != Status::Fail);
    let text = if args.json {
        to_json(&serde_json::json!({ "ok": ok, "checks": checks }))?
    } else {
        render(&checks)
    };
    print_result(&text)?;
    Ok(u8::from(!ok))
}

fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for check in checks {
        let _ = writeln!(
            out,
            "{} {}: {}",
            check.status.symbol(),
            check.name,
            check.message
        );
        if let Some(hint) = &check.hint {
            let _ = writeln!(out, "  hint: {hint}");
        }
    }
    out
}
