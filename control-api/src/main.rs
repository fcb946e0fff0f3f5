//! `control-api`: the local server and the fleet tools; main only maps outcomes to exit codes.

use std::process::ExitCode;

use clap::Parser;
use control_api::cli::{Cli, Failure};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match control_api::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Check(problems)) => {
            for line in problems {
                eprintln!("control-api: {line}");
            }
            ExitCode::from(1)
        }
        Err(Failure::NeedsHuman(lines)) => {
            for line in lines {
                eprintln!("control-api: {line}");
            }
            ExitCode::from(3)
        }
        Err(Failure::Error(e)) => {
            eprintln!("control-api: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
