//! stdout carries only a command's result: written at once, and a reader that stopped
//! reading (`podlab doctor | head -1`) is no error.

use std::io::Write as _;

use crate::{Error, Result};

/// Writes a command's result to stdout. A closed pipe is not an error.
pub fn print_result(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::env(format!("cannot write to stdout: {err}")))
        }
        _ => Ok(()),
    }
}

/// A command's result as pretty JSON, with a final newline.
pub fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value)
        .map(|text| text + "\n")
        .map_err(|err| Error::env(format!("cannot encode JSON: {err}")))
}
