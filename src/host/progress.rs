//! Progress on stderr. On a terminal: one live status line (indicatif), a spinner with the
//! time passed and the latest report, redrawn on a timer so that a long step that reports
//! nothing still shows time passing, with output lines printed above it. Anywhere else:
//! no status line and no escape sequences, only the output lines as they come.
//!
//! Podman's libpod API reports pulls and builds as text lines, not byte counts, so there is
//! no per-layer byte bar to draw: the spinner, the elapsed time and the blob count are what
//! the API gives.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A status line for one pull or build.
#[derive(Debug)]
pub struct Status {
    bar: Option<ProgressBar>,
}

impl Status {
    /// Starts the status line for `what` (e.g. `pulling IMAGE`) when stderr is a terminal.
    pub fn start(what: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { bar: None };
        }
        let bar = ProgressBar::new_spinner();
        // indicatif draws nothing on a terminal it cannot drive (TERM unset or dumb): then
        // the output lines go out plain, as off a terminal.
        if bar.is_hidden() {
            return Self { bar: None };
        }
        let style = ProgressStyle::with_template("{spinner} {prefix} {elapsed} · {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(what.to_owned());
        bar.set_message("connecting");
        bar.enable_steady_tick(Duration::from_millis(125));
        Self { bar: Some(bar) }
    }

    /// Whether a status line is drawn (stderr is a terminal).
    pub fn is_live(&self) -> bool {
        self.bar.is_some()
    }

    /// Replaces the status line's report.
    pub fn report(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.trim().to_owned());
        }
    }

    /// Prints an output line: above the status line, or to stderr as it is.
    pub fn line(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.println(text.trim_end());
            return;
        }
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = stderr.write_all(b"\n");
        }
        let _ = stderr.flush();
    }

    /// Removes the status line, leaving `done` (with the time taken) in its place when given.
    pub fn finish(&self, done: Option<&str>) {
        if let Some(bar) = &self.bar {
            let elapsed = bar.elapsed().as_secs_f64();
            bar.finish_and_clear();
            if let Some(done) = done {
                let _ = writeln!(std::io::stderr().lock(), "✔ {done} in {elapsed:.1}s");
            }
        }
    }
}
