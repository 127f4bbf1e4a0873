//! The `ticketbench` binary: a thin shell over [`ticketbench::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    match ticketbench::cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message());
            ExitCode::from(e.code)
        }
    }
}
