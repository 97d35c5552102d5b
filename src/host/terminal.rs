//! Our own terminal, for interactive sessions: raw mode and the window size.
//!
//! An interactive session hands every keystroke to the container's TTY unchanged, so our
//! terminal must stop interpreting them: no line editing, no echo (the container's TTY
//! echoes), and no signals from Ctrl-C or Ctrl-Z (their bytes go to the container, whose TTY
//! turns them into signals for its foreground process). [`RawMode`] switches that on and
//! puts the original settings back when it is dropped, so every way out of a session (a
//! normal exit, an error returned with `?`, a panic unwinding) leaves the terminal usable.
//!
//! Everything goes through rustix's safe termios calls: podlab has no unsafe code.

use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::termios::{self, OptionalActions, Termios};

use crate::{Error, Result};

/// A terminal window size, in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub rows: u16,
    pub cols: u16,
}

/// Whether our stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// The window size of the terminal on `fd` (`TIOCGWINSZ`), or `None` when `fd` is not a
/// terminal or reports no size (some serial consoles say 0x0).
pub fn size(fd: BorrowedFd<'_>) -> Option<Size> {
    let winsize = termios::tcgetwinsize(fd).ok()?;
    (winsize.ws_row > 0 && winsize.ws_col > 0).then_some(Size {
        rows: winsize.ws_row,
        cols: winsize.ws_col,
    })
}

/// The size of the terminal on our stdin.
pub fn stdin_size() -> Option<Size> {
    size(std::io::stdin().as_fd())
}

/// A terminal in raw mode until this is dropped, which restores its original settings.
#[derive(Debug)]
pub struct RawMode {
    /// Our own handle on the terminal, so the guard depends on no borrowed descriptor.
    terminal: OwnedFd,
    original: Termios,
}

impl RawMode {
    /// Puts the terminal on our stdin in raw mode.
    pub fn stdin() -> Result<Self> {
        Self::enter(std::io::stdin().as_fd())
    }

    /// Puts the terminal on `fd` in raw mode. Typed-ahead input is kept (`TCSANOW`, not
    /// `TCSAFLUSH`): keys pressed while the container starts still reach it.
    pub fn enter(fd: BorrowedFd<'_>) -> Result<Self> {
        let original = termios::tcgetattr(fd).map_err(|err| {
            Error::user(format!("cannot read the terminal's settings: {err}"))
                .hint("run podlab shell from an interactive terminal")
        })?;
        let terminal = fd.try_clone_to_owned().map_err(|err| {
            Error::env(format!("cannot duplicate the terminal's descriptor: {err}"))
        })?;
        let mut raw = original.clone();
        raw.make_raw();
        termios::tcsetattr(&terminal, OptionalActions::Now, &raw)
            .map_err(|err| Error::env(format!("cannot put the terminal in raw mode: {err}")))?;
        Ok(Self { terminal, original })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // `Now`, not `Drain`: draining waits for the reader of the terminal, which may be gone
        // (a closed window) or stopped (Ctrl-S), and podlab must still exit.
        match termios::tcsetattr(&self.terminal, OptionalActions::Now, &self.original) {
            // A hung-up terminal (a closed window): nothing left to restore, nowhere to say so.
            Ok(()) | Err(rustix::io::Errno::IO) => {}
            Err(err) => {
                tracing::warn!("cannot restore the terminal's settings: {err} (run: stty sane)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use rustix::termios::{LocalModes, Winsize};

    /// A pseudo-terminal pair: the controlling side and the terminal a program would see.
    fn pty() -> (OwnedFd, std::fs::File) {
        let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&controller).unwrap();
        unlockpt(&controller).unwrap();
        let path = ptsname(&controller, Vec::new()).unwrap();
        let terminal = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path.to_str().unwrap())
            .unwrap();
        (controller, terminal)
    }

    #[test]
    fn raw_mode_is_undone_on_drop() {
        let (_controller, terminal) = pty();
        let before = termios::tcgetattr(&terminal).unwrap();
        assert!(
            before
                .local_modes
                .contains(LocalModes::ISIG | LocalModes::ICANON | LocalModes::ECHO)
        );
        let raw = RawMode::enter(terminal.as_fd()).unwrap();
        let during = termios::tcgetattr(&terminal).unwrap();
        // Ctrl-C is a byte for the container, not SIGINT for us.
        assert!(
            !during
                .local_modes
                .intersects(LocalModes::ISIG | LocalModes::ICANON | LocalModes::ECHO)
        );
        drop(raw);
        let after = termios::tcgetattr(&terminal).unwrap();
        assert_eq!(after.local_modes, before.local_modes);
        assert_eq!(after.input_modes, before.input_modes);
        assert_eq!(after.output_modes, before.output_modes);
    }

    #[test]
    fn reads_the_window_size() {
        let (controller, terminal) = pty();
        let winsize = Winsize {
            ws_row: 30,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        termios::tcsetwinsize(&controller, winsize).unwrap();
        assert_eq!(
            size(terminal.as_fd()),
            Some(Size {
                rows: 30,
                cols: 120
            })
        );
    }

    #[test]
    fn a_file_has_no_size_and_cannot_go_raw() {
        let file = tempfile::tempfile().unwrap();
        assert_eq!(size(file.as_fd()), None);
        let err = RawMode::enter(file.as_fd()).err().unwrap();
        assert_eq!(err.exit_code(), 1);
    }
}
