//! The `marzban-discord-relay` binary: loads `.env`, starts logging, runs the command.

use std::process::ExitCode;

use clap::Parser;
use marzban_discord_relay::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `.env` may set RUST_LOG, so it is read before logging starts.
    let dotenv = dotenvy::dotenv();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(err) = dotenv {
        if !err.not_found() {
            log::error!("cannot read .env: {err}");
            return ExitCode::FAILURE;
        }
    }
    cli::run(cli)
}
