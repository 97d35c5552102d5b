//! The `podlab` binary: parse, run, map the outcome to an exit code. Everything else lives in
//! the library so that tests reach it.

use std::process::ExitCode;

fn main() -> ExitCode {
    podlab::cli::main()
}
