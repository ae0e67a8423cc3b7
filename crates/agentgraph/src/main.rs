//! The `agentgraph` command: per-request call graphs of AI agents from Cilium Hubble flows.

mod analyze;
mod cli;
mod collect;
mod progress;
mod simulate;
mod spool;
mod text;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Analyze(args) => analyze::run(args),
        cli::Command::Simulate(args) => simulate::run(args),
        cli::Command::Eval(args) => simulate::eval(args),
        cli::Command::Collect(args) => collect::run(*args),
        cli::Command::Replay(args) => collect::replay(args),
        cli::Command::Config(cli::ConfigCommand::PrintDefault) => collect::print_default_config(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`agentgraph analyze ... | head`) is not an error worth reporting.
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("agentgraph: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether `e` is a write to a reader that has gone (`| head`): a quiet end, not an error.
pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
