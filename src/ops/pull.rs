//! Pulling an image through the API. Podman reports text lines, not bytes: on a terminal
//! they drive a status line on stderr (a spinner, the time passed, the blobs seen and the
//! last report; see [`crate::host::progress`]), otherwise they are printed to stderr as they
//! come. An error that Podman reports inside the stream fails the pull: a user error when the
//! image or name does not exist, an environment error when the registry cannot be reached
//! (with a hint when the image is already here).

use crate::Result;
use crate::engine::{Engine, PullPolicy};
use crate::error::ErrorKind;
use crate::host::progress::Status;

/// Pulls `image` under `policy`, with progress on stderr; the image id.
pub async fn pull<E: Engine>(engine: &E, image: &str, policy: PullPolicy) -> Result<String> {
    let status = Status::start(&format!("pulling {image}"));
    let mut blobs = 0;
    let mut progress = |line: &str| {
        if status.is_live() {
            if line.trim_start().starts_with("Copying blob") {
                blobs += 1;
            }
            status.report(&report(blobs, line));
        } else {
            status.line(line);
        }
    };
    let pulled = engine.pull_image(image, policy, &mut progress).await;
    status.finish(pulled.is_ok().then(|| format!("pulled {image}")).as_deref());
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

/// The status line's report: the blobs seen and the last line, digests cut to 12 hex digits.
fn report(blobs: usize, line: &str) -> String {
    let count = match blobs {
        0 => String::new(),
        1 => "1 blob · ".to_owned(),
        n => format!("{n} blobs · "),
    };
    let words: Vec<&str> = line
        .split_whitespace()
        .map(|word| match word.strip_prefix("sha256:") {
            Some(hex) => hex.get(..12).unwrap_or(hex),
            None => word,
        })
        .collect();
    format!("{count}{}", words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_counts_blobs_and_shortens_digests() {
        assert_eq!(
            report(0, "Trying to pull quay.io/x/y:1...\n"),
            "Trying to pull quay.io/x/y:1..."
        );
        assert_eq!(
            report(2, &format!("Copying blob sha256:{}\n", "cd".repeat(32))),
            "2 blobs · Copying blob cdcdcdcdcdcd"
        );
        assert_eq!(report(1, "Writing manifest"), "1 blob · Writing manifest");
    }
}
