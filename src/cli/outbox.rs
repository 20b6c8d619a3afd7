//! `outbox …`: look into the outbox and manage dead letters. Works while the relay runs (SQLite
//! lets both in); a retried row is picked up by the running relay within its idle poll (30 s).

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use crate::config::{parse_duration, Config};
use crate::outbox::{now_ms, Outbox, Retry};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pending, delivered and dead rows per destination, the age of the oldest pending row, and
    /// how many forum posts are remembered (forum mode).
    Stats,
    /// List dead letters: what Discord refused for good, or gave up on, with the reason.
    Dead {
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Make dead letters pending again, so they are sent again.
    Retry {
        /// The id of one dead letter (see `outbox dead`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
    },
    /// Delete rows for good.
    Purge {
        /// Delete delivered rows delivered longer ago than this (e.g. 7d, 12h).
        #[arg(long, value_name = "AGE", value_parser = parse_duration, required_unless_present = "dead")]
        delivered_older_than: Option<Duration>,
        /// Delete every dead letter.
        #[arg(long)]
        dead: bool,
    },
}

pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    super::runtime()?.block_on(async {
        let outbox = Outbox::open(&config.data_dir)?;
        match command {
            Command::Stats => stats(&outbox).await,
            Command::Dead { limit } => dead(&outbox, *limit).await,
            Command::Retry { id, all } => {
                let which = if *all { Retry::All } else { Retry::One(id.expect("clap requires an id")) };
                let count = outbox.retry(which.clone()).await?;
                println!("{count} dead letter(s) made pending again");
                Ok(if count == 0 && which != Retry::All { ExitCode::FAILURE } else { ExitCode::SUCCESS })
            }
            Command::Purge { delivered_older_than, dead } => {
                if let Some(age) = delivered_older_than {
                    let count = outbox
                        .purge_delivered(now_ms().saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX)))
                        .await?;
                    println!("deleted {count} delivered row(s) older than {}", humantime(*age));
                }
                if *dead {
                    println!("deleted {} dead letter(s)", outbox.purge_dead().await?);
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

async fn stats(outbox: &Outbox) -> anyhow::Result<ExitCode> {
    let stats = outbox.stats().await?;
    println!("{:<24} {:>9} {:>10} {:>7}  oldest pending", "destination", "pending", "delivered", "dead");
    for row in &stats {
        let oldest = row.oldest_pending_ms.map_or_else(|| "-".to_owned(), |at| format!("{} ago", age(at)));
        println!("{:<24} {:>9} {:>10} {:>7}  {oldest}", row.destination, row.pending, row.delivered, row.dead);
    }
    if stats.is_empty() {
        println!("(the outbox is empty)");
    }
    let posts = outbox.forum_post_count().await?;
    if posts > 0 {
        println!("forum posts remembered: {posts}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn dead(outbox: &Outbox, limit: usize) -> anyhow::Result<ExitCode> {
    let rows = outbox.dead(limit).await?;
    for row in &rows {
        println!(
            "#{} {} {} {:?} received {} ago, {} attempt(s): {}",
            row.id,
            row.destination,
            row.action,
            row.username,
            age(row.received_at_ms),
            row.attempts,
            row.reason.as_deref().unwrap_or("no reason recorded")
        );
    }
    println!("{} dead letter(s) shown", rows.len());
    Ok(ExitCode::SUCCESS)
}

/// How long ago `at_ms` (unix ms) was, as `3d 4h`.
fn age(at_ms: i64) -> String {
    humantime(Duration::from_millis(now_ms().saturating_sub(at_ms).max(0) as u64))
}

fn humantime(duration: Duration) -> String {
    crate::render::filters::format_duration(duration.as_secs_f64(), &crate::render::Lang::En.labels())
}
