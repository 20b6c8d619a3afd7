//! The command line: `serve` (the default) runs the relay; the other commands inspect and operate
//! it. Every command reads the same configuration (environment and `.env`).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::startup::Application;

/// Relays Marzban, PasarGuard and Marzneshin user events to Discord.
#[derive(Debug, Parser)]
#[command(name = "marzban-discord-relay", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the relay (what happens with no command).
    Serve,
}

/// Runs the command and turns its result into the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            log::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn serve() -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    runtime()?.block_on(async {
        let application = Application::build(config).await?;
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        application.run_until_stopped(shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Cancels `shutdown` on SIGTERM (docker stop) or SIGINT (Ctrl-C).
async fn cancel_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            log::error!("cannot listen for SIGTERM/SIGINT; stop the relay with SIGKILL");
            return;
        };
        tokio::select! {
            _ = term.recv() => log::info!("SIGTERM received"),
            _ = int.recv() => log::info!("SIGINT received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    shutdown.cancel();
}
