//! One error style for the whole tool: a lowercase message naming what failed and the object,
//! an optional `hint:` with the command that fixes it, and an exit code class.
//!
//! Modules build [`Error`]s where the failure happens, because that is where the right hint is
//! known; the CLI only prints them.

use std::fmt;

/// What kind of failure this is; decides the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input or a failed validation: exit 1.
    User,
    /// The host, Podman or podlab itself failed: exit 2.
    Environment,
    /// The container's command could not be run, with the status a shell (and `podman run`,
    /// `podman exec`) gives it: 127 when it is not found, 126 when it is not executable.
    Command(u8),
}

/// A failure to report to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Bad input: exit code 1.
    pub fn user(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::User,
            message: message.into(),
            hint: None,
        }
    }

    /// The environment (host, Podman, I/O) failed: exit code 2.
    pub fn env(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Environment,
            message: message.into(),
            hint: None,
        }
    }

    /// The container's command could not be run: exit code `code` (127 not found, 126 not
    /// executable).
    pub fn command(code: u8, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Command(code),
            message: message.into(),
            hint: None,
        }
    }

    /// Adds the `hint:` line: the command or change that fixes the problem.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ErrorKind::User => 1,
            ErrorKind::Environment => 2,
            ErrorKind::Command(code) => code,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_puts_the_hint_on_its_own_line() {
        let err = Error::env("cannot reach podman socket /x").hint("podman system service");
        assert_eq!(
            err.to_string(),
            "error: cannot reach podman socket /x\nhint: podman system service"
        );
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn user_errors_exit_1() {
        assert_eq!(Error::user("bad flag").exit_code(), 1);
        assert_eq!(Error::user("bad flag").to_string(), "error: bad flag");
    }
}
