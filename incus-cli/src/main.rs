//! `incus`: the command line for Incus-API daemons (ours or the real one), with the command
//! names, flags and output formats Incus users type every day. Thin: every command is a few
//! calls of [`incus_client::Client`].

mod args;
mod cmd;
mod conf;
mod format;
mod progress;

use clap::Parser;
use std::process::ExitCode;

/// A command-line failure: the message printed after `Error: `.
#[derive(Debug)]
pub struct CliError(String);

impl CliError {
    /// An error with `m` as its message.
    pub fn msg(m: impl Into<String>) -> CliError {
        CliError(m.into())
    }
}

impl From<incus_client::Error> for CliError {
    fn from(e: incus_client::Error) -> Self {
        CliError(e.message().to_string())
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        CliError(e.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(cmd::run(cli)) {
        // The exit status of `exec` is passed through.
        Ok(code) => u8::try_from(code).unwrap_or(1),
        Err(e) => {
            eprintln!("Error: {}", e.0);
            1
        }
    };
    // A blocked stdin reader (exec) must not hold the process open.
    rt.shutdown_background();
    ExitCode::from(code)
}
