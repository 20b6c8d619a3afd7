//! The command line: `serve` (the default) runs the relay; the other commands inspect and operate
//! it. Every command reads the same configuration (environment and `.env`).

mod check;
mod outbox;
mod render;
mod report;
mod send_test;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::render::Templates;
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
    /// Load the configuration and every template, render each against built-in sample events and
    /// the edge events the panels send (no owner, `by` null, every nullable field null, on hold,
    /// unlimited, `user_deleted` without `user`), verify the results against Discord's limits, and
    /// report. Exit code 0 only when all is well.
    Check,
    /// Print the Discord request bodies the relay would send for a webhook body, a sample, or a
    /// burst of samples (as digests), each after a `# to destination NAME` line. Exit code 1 when
    /// one of your templates failed and the built-in one stood in.
    Render(render::Args),
    /// Make a report now (the last scheduled period, or any other) and print its request bodies,
    /// or store it in the outbox for the running relay to send (--send).
    Report(report::Args),
    /// Post one sample message to every configured destination (mentions left out).
    SendTest(send_test::Args),
    /// Inspect the outbox and manage dead letters.
    #[command(subcommand)]
    Outbox(outbox::Command),
    /// Ask the running relay (at LISTEN_ADDR) whether it is alive; exit 0 if so. For container
    /// health checks: the image needs no curl.
    Healthcheck,
}

/// Runs the command and turns its result into the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Check => check::run(),
        Command::Render(args) => render::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Outbox(command) => outbox::run(&command),
        Command::SendTest(args) => send_test::run(&args),
        Command::Healthcheck => healthcheck(),
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
        tokio::spawn(reload_on_sighup(application.templates()));
        application.run_until_stopped(shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Reloads the templates on SIGHUP, keeping the current set if the new one fails `check`.
async fn reload_on_sighup(templates: std::sync::Arc<Templates>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            log::warn!("cannot listen for SIGHUP; templates are reloaded only by a restart");
            return;
        };
        while hangups.recv().await.is_some() {
            match tokio::task::spawn_blocking({
                let templates = templates.clone();
                move || templates.reload()
            })
            .await
            {
                Ok(Ok(changes)) if changes.is_empty() => log::info!("SIGHUP: templates reloaded, nothing changed"),
                Ok(Ok(changes)) => log::info!("SIGHUP: templates reloaded: {}", changes.join(", ")),
                Ok(Err(problems)) => {
                    for problem in &problems {
                        log::error!("SIGHUP: template {problem}");
                    }
                    log::error!("SIGHUP: the templates were not reloaded; the current ones stay in use");
                }
                Err(err) => log::error!("SIGHUP: reloading failed: {err}"),
            }
        }
    }
    #[cfg(not(unix))]
    drop(templates);
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

fn healthcheck() -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let mut addr = config.listen_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { Ipv6Addr::LOCALHOST.into() });
    }
    match probe(addr, "/healthz") {
        Ok(200) => Ok(ExitCode::SUCCESS),
        Ok(status) => {
            eprintln!("http://{addr}/healthz answered {status}");
            Ok(ExitCode::FAILURE)
        }
        Err(err) => {
            eprintln!("http://{addr}/healthz: {err}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A minimal HTTP/1.0 GET returning the status code.
fn probe(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut head = [0u8; 64];
    let read = stream.read(&mut head)?;
    let status_line = String::from_utf8_lossy(&head[..read]);
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))
}
