//! Pulling an image through the API. Podman 5.4 reports text lines, not bytes: on a
//! terminal they drive a one-line progress display on stderr, otherwise they are printed to
//! stderr as they come. An error that Podman reports inside the stream fails the pull: a user
//! error when the image or name does not exist, an environment error when the registry cannot
//! be reached (with a hint when the image is already here).

use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::Result;
use crate::engine::{Engine, PullPolicy};
use crate::error::ErrorKind;

/// Pulls `image` under `policy`, with progress on stderr; the image id.
pub async fn pull<E: Engine>(engine: &E, image: &str, policy: PullPolicy) -> Result<String> {
    let pulled = if std::io::stderr().is_terminal() {
        pull_with_display(engine, image, policy).await
    } else {
        let mut stderr = std::io::stderr();
        let mut progress = |line: &str| {
            let _ = stderr.write_all(line.as_bytes());
            if !line.ends_with('\n') {
                let _ = stderr.write_all(b"\n");
            }
        };
        engine.pull_image(image, policy, &mut progress).await
    };
    match pulled {
        Ok(id) => Ok(id),
        // The registry is out of reach, but the image may not need it.
        Err(err) if err.kind() == ErrorKind::Environment && policy != PullPolicy::Missing => {
            Err(match engine.inspect_image(image).await {
                Ok(Some(_)) => err.hint(format!(
                    "{image} is already in the local store: podlab pull --policy missing {image} uses it without the network"
                )),
                _ => err,
            })
        }
        Err(err) => Err(err),
    }
}

/// The pull with a status line redrawn on each report and on a timer, so that a long blob
/// copy (which reports nothing until it is done) still shows time passing.
async fn pull_with_display<E: Engine>(
    engine: &E,
    image: &str,
    policy: PullPolicy,
) -> Result<String> {
    let display = Arc::new(Mutex::new(Display::new(image)));
    let drawer = Arc::clone(&display);
    let mut progress = move |line: &str| {
        let mut display = drawer.lock().unwrap_or_else(PoisonError::into_inner);
        display.report(line);
        draw(&display.line(Instant::now()));
    };
    let pull = engine.pull_image(image, policy, &mut progress);
    tokio::pin!(pull);
    let mut ticks = tokio::time::interval(Duration::from_millis(125));
    let result = loop {
        tokio::select! {
            result = &mut pull => break result,
            _ = ticks.tick() => {
                let mut display = display.lock().unwrap_or_else(PoisonError::into_inner);
                display.frame += 1;
                draw(&display.line(Instant::now()));
            }
        }
    };
    let display = display.lock().unwrap_or_else(PoisonError::into_inner);
    let elapsed = display.started.elapsed().as_secs_f64();
    let end = match &result {
        Ok(_) => format!("\r\x1b[2K✔ pulled {image} in {elapsed:.1}s\n"),
        // The error itself follows on its own lines.
        Err(_) => "\r\x1b[2K".to_owned(),
    };
    let mut stderr = std::io::stderr();
    let _ = stderr.write_all(end.as_bytes());
    let _ = stderr.flush();
    result
}

fn draw(line: &str) {
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "\r\x1b[2K{line}");
    let _ = stderr.flush();
}

/// What the status line shows: the image, time passed, blobs seen and the last report.
#[derive(Debug)]
struct Display {
    image: String,
    started: Instant,
    blobs: usize,
    last: String,
    frame: usize,
}

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// Room for the report in the status line, so that it fits an 80-column terminal.
const REPORT_WIDTH: usize = 40;

impl Display {
    fn new(image: &str) -> Self {
        Self {
            image: image.to_owned(),
            started: Instant::now(),
            blobs: 0,
            last: "connecting".to_owned(),
            frame: 0,
        }
    }

    fn report(&mut self, line: &str) {
        let line = line.trim();
        if line.starts_with("Copying blob") {
            self.blobs += 1;
        }
        if !line.is_empty() {
            self.last = shorten(line);
        }
    }

    fn line(&self, now: Instant) -> String {
        let spinner = SPINNER.get(self.frame % SPINNER.len()).unwrap_or(&'*');
        let seconds = now.saturating_duration_since(self.started).as_secs();
        let blobs = match self.blobs {
            0 => String::new(),
            1 => " · 1 blob".to_owned(),
            n => format!(" · {n} blobs"),
        };
        // The end of a long name: its tag tells pulls apart.
        let count = self.image.chars().count();
        let image = if count > 30 {
            let tail: String = self.image.chars().skip(count - 29).collect();
            format!("…{tail}")
        } else {
            self.image.clone()
        };
        format!("{spinner} {image} {seconds}s{blobs} · {}", self.last)
    }
}

/// A report made to fit the status line: digests cut to 12 hex digits, the rest truncated.
fn shorten(line: &str) -> String {
    let mut out = String::new();
    for (index, word) in line.split(' ').enumerate() {
        if index > 0 {
            out.push(' ');
        }
        match word.strip_prefix("sha256:") {
            Some(hex) => out.push_str(hex.get(..12).unwrap_or(hex)),
            None => out.push_str(word),
        }
    }
    if out.chars().count() > REPORT_WIDTH {
        let cut: String = out.chars().take(REPORT_WIDTH - 1).collect();
        return format!("{cut}…");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_counts_blobs_and_shortens_digests() {
        let mut display = Display::new("quay.io/x/y:1");
        display.report("Trying to pull quay.io/x/y:1...\n");
        display.report("Getting image source signatures\n");
        display.report(&format!("Copying blob sha256:{}\n", "ab".repeat(32)));
        display.report(&format!("Copying blob sha256:{}\n", "cd".repeat(32)));
        let line = display.line(display.started + Duration::from_secs(7));
        assert_eq!(
            line,
            "⠋ quay.io/x/y:1 7s · 2 blobs · Copying blob cdcdcdcdcdcd"
        );
        assert!(shorten(&"x".repeat(100)).chars().count() <= REPORT_WIDTH);
        let display = Display::new("registry.example.com/team/pytorch-cuda:24.12");
        assert_eq!(
            display.line(display.started),
            "⠋ …e.com/team/pytorch-cuda:24.12 0s · connecting"
        );
    }
}
