//! The signals that tell podlab to stop while it owns a container: `SIGINT` (Ctrl-C, or
//! `kill -INT`), `SIGTERM` (`timeout`, a CI cancel, `kill PID`), `SIGHUP` (a closed terminal)
//! and `SIGQUIT`. Left at their default action they would end podlab at once and orphan the
//! container (still running, still holding its GPUs); caught here, the command that owns the
//! container stops and removes it first, then exits as a shell reports a death by that
//! signal: 128 + its number (130, 143, 129, 131), which is what `timeout`, CI runners and
//! shells expect.
//!
//! A signal that was ignored when podlab started (`nohup` ignores `SIGHUP`; a shell ignores
//! `SIGINT` and `SIGQUIT` for its background jobs) stays ignored: catching it would undo what
//! the caller asked for, and a hangup would stop a job started under `nohup`.

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::{Error, Result};

/// podlab was told to stop: by which signal, and the exit code that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupt {
    pub signal: &'static str,
    pub code: i32,
}

impl Interrupt {
    /// `SIGINT`, exit code 130.
    pub const INT: Self = Self {
        signal: "SIGINT",
        code: 130,
    };
    /// `SIGTERM`, exit code 143.
    pub const TERM: Self = Self {
        signal: "SIGTERM",
        code: 143,
    };
    /// `SIGHUP`, exit code 129.
    pub const HUP: Self = Self {
        signal: "SIGHUP",
        code: 129,
    };
    /// `SIGQUIT`, exit code 131.
    pub const QUIT: Self = Self {
        signal: "SIGQUIT",
        code: 131,
    };
}

/// The stop signals, caught from [`StopSignals::install`] on (for the rest of the process);
/// `None` for one that was ignored at start.
#[derive(Debug)]
pub struct StopSignals {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
    hangup: Option<Signal>,
    quit: Option<Signal>,
}

impl StopSignals {
    /// Catches the stop signals that are not ignored; install before the container exists,
    /// so that no signal finds podlab between creating it and watching for signals.
    pub fn install() -> Result<Self> {
        let ignored =
            std::fs::read_to_string("/proc/self/status").map_or(0, |status| ignored_mask(&status));
        let unless_ignored = |kind: SignalKind| {
            let number = u32::try_from(kind.as_raw_value()).unwrap_or(0);
            let bit = number
                .checked_sub(1)
                .and_then(|shift| 1u64.checked_shl(shift))
                .unwrap_or(0);
            if ignored & bit == 0 {
                catch(kind).map(Some)
            } else {
                Ok(None)
            }
        };
        Ok(Self {
            interrupt: unless_ignored(SignalKind::interrupt())?,
            terminate: unless_ignored(SignalKind::terminate())?,
            hangup: unless_ignored(SignalKind::hangup())?,
            quit: unless_ignored(SignalKind::quit())?,
        })
    }

    /// The next stop signal.
    pub async fn next(&mut self) -> Interrupt {
        tokio::select! {
            Some(()) = arrival(self.interrupt.as_mut()) => Interrupt::INT,
            Some(()) = arrival(self.terminate.as_mut()) => Interrupt::TERM,
            Some(()) = arrival(self.hangup.as_mut()) => Interrupt::HUP,
            Some(()) = arrival(self.quit.as_mut()) => Interrupt::QUIT,
            else => std::future::pending().await,
        }
    }
}

/// The next arrival of a caught signal; never, for one not caught.
async fn arrival(signal: Option<&mut Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// The `SigIgn:` mask of a `/proc/PID/status` text: bit N-1 set when signal N is ignored.
fn ignored_mask(status: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .unwrap_or(0)
}

/// Catches one signal kind.
pub fn catch(kind: SignalKind) -> Result<Signal> {
    signal(kind).map_err(|err| {
        Error::env(format!("cannot handle signals: {err}"))
            .hint("podlab needs to catch SIGINT, SIGTERM, SIGHUP and SIGQUIT; check the process's signal limits")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ignored_mask_is_read_from_proc_status() {
        // SIGHUP (1) and SIGQUIT (3) ignored, as under `nohup` in a background job.
        let status = "Name:\tpodlab\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000005\n";
        assert_eq!(ignored_mask(status), 0b101);
        assert_eq!(ignored_mask("Name:\tx\n"), 0);
    }

    #[tokio::test]
    async fn each_stop_signal_maps_to_128_plus_its_number() {
        let mut signals = StopSignals::install().unwrap();
        for (number, expected) in [
            (rustix::process::Signal::TERM, Interrupt::TERM),
            (rustix::process::Signal::QUIT, Interrupt::QUIT),
            (rustix::process::Signal::HUP, Interrupt::HUP),
            (rustix::process::Signal::INT, Interrupt::INT),
        ] {
            rustix::process::kill_process(rustix::process::getpid(), number).unwrap();
            let got = signals.next().await;
            assert_eq!(got, expected);
            assert_eq!(got.code, 128 + number.as_raw());
        }
    }
}
