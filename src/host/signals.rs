//! The signals that tell podlab to stop while it owns a container: `SIGINT` (Ctrl-C, or
//! `kill -INT`), `SIGTERM` (`timeout`, a CI cancel, `kill PID`), `SIGHUP` (a closed terminal)
//! and `SIGQUIT`. Left at their default action they would end podlab at once and orphan the
//! container (still running, still holding its GPUs); caught here, the command that owns the
//! container stops and removes it first, then exits as a shell reports a death by that
//! signal: 128 + its number (130, 143, 129, 131), which is what `timeout`, CI runners and
//! shells expect.

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

/// The stop signals, caught from [`StopSignals::install`] on (for the rest of the process).
#[derive(Debug)]
pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
    quit: Signal,
}

impl StopSignals {
    /// Catches the stop signals; install before the container exists, so that no signal
    /// finds podlab between creating it and watching for signals.
    pub fn install() -> Result<Self> {
        Ok(Self {
            interrupt: catch(SignalKind::interrupt())?,
            terminate: catch(SignalKind::terminate())?,
            hangup: catch(SignalKind::hangup())?,
            quit: catch(SignalKind::quit())?,
        })
    }

    /// The next stop signal.
    pub async fn next(&mut self) -> Interrupt {
        tokio::select! {
            Some(()) = self.interrupt.recv() => Interrupt::INT,
            Some(()) = self.terminate.recv() => Interrupt::TERM,
            Some(()) = self.hangup.recv() => Interrupt::HUP,
            Some(()) = self.quit.recv() => Interrupt::QUIT,
            else => std::future::pending().await,
        }
    }
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
