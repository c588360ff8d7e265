//! The `gleaner` binary: parse the command line, run it, map errors to exit
//! codes (0 done, 1 internal error, 2 unusable config or state directory).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    gleaner::tune_malloc();
    cli::main()
}
