//! podlab's log on stderr: `warn` by default, `-v` info, `-vv` debug, `-vvv` trace, `-q`
//! errors only; `RUST_LOG` overrides. Colour only when stderr is a terminal, so a redirected
//! log carries no escape sequences.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Installs the subscriber for the whole process.
pub fn init(quiet: bool, verbose: u8) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(std::io::stderr().is_terminal())
        // A log line after the terminal hung up must not panic podlab mid-cleanup.
        .log_internal_errors(false)
        .init();
}
