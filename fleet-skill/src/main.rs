//! The `fleet` binary: parse arguments, run, turn the outcome into a stderr line and an exit code.
//!
//! All logic is in the library; this only maps errors. clap exits 2 by itself on usage errors.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use fleet_skill::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    let err_is_terminal = err.is_terminal();
    let result = fleet_skill::run(
        cli,
        &|name| std::env::var(name).ok(),
        &mut out,
        &mut err,
        err_is_terminal,
    );
    let flushed = out.flush();
    match result.and(flushed.map_err(Into::into)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet: {}", e.one_line());
            ExitCode::from(e.exit_code())
        }
    }
}
