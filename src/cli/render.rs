//! `render`: preview the Discord messages for a webhook body, exactly as the relay would send them.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use time::OffsetDateTime;

use std::sync::Arc;

use crate::config::Config;
use crate::deliver::{build_message, next_message};
use crate::destination::{Destination, Mentions, Target, DEFAULT_DESTINATION};
use crate::event::{parse_batch, parse_datetime};
use crate::render::{limits, report, samples, Part, Renderer};
use crate::reports::ReportKind;
use crate::startup;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A file holding a webhook body (a JSON array of events or one event); `-` or nothing reads
    /// standard input.
    #[arg(value_name = "FILE|-", conflicts_with_all = ["action", "report"])]
    file: Option<PathBuf>,
    /// Render the built-in sample event of this action instead.
    #[arg(long, value_name = "ACTION", conflicts_with = "report")]
    action: Option<String>,
    /// Render a sample report (two panels) with the report template instead.
    #[arg(long, value_name = "daily|weekly", value_parser = ReportKind::parse)]
    report: Option<ReportKind>,
    /// When the body was received, as an RFC 3339 time or unix seconds (default: now). Days left
    /// and event times are computed from it, so a saved body renders as it did when the relay
    /// received it.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    received_at: Option<OffsetDateTime>,
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    let parsed = match text.trim().parse::<i64>() {
        Ok(seconds) => OffsetDateTime::from_unix_timestamp(seconds).ok(),
        Err(_) => parse_datetime(text),
    };
    parsed.ok_or_else(|| format!("{text:?} is neither an RFC 3339 time (2026-11-28T01:01:12Z) nor unix seconds"))
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let config = Config::from_env_for_preview()?;
    let loaded = Renderer::load(&config.templates_dir, config.template_lang);
    for warning in &loaded.warnings {
        eprintln!("warning: template {warning}");
    }
    for problem in &loaded.problems {
        eprintln!("template {problem}; the built-in template is used instead");
    }
    let now = args.received_at.unwrap_or_else(OffsetDateTime::now_utc);
    if let Some(kind) = args.report {
        let router = startup::router(&config);
        let destination = router
            .destinations()
            .first()
            .cloned()
            .unwrap_or_else(|| Arc::new(Destination::new(DEFAULT_DESTINATION, Target::DryRun)));
        let sample = report::samples(kind.name(), now.unix_timestamp()).swap_remove(0);
        let parts: Vec<Part> = sample.iter().map(|context| loaded.renderer.render_report(context)).collect();
        let none = Mentions::default();
        let message = build_message(parts.iter(), &none, &destination);
        println!("{}", serde_json::to_string_pretty(&message)?);
        return Ok(ExitCode::SUCCESS);
    }
    let events = match &args.action {
        Some(action) => {
            let known = samples::actions();
            if !known.contains(action) && action != "default" {
                eprintln!("there is no sample for {action:?}; known actions: {}", known.join(", "));
                return Ok(ExitCode::FAILURE);
            }
            vec![samples::event_for(action, now).map_err(anyhow::Error::msg)?]
        }
        None => {
            let body = read_body(args.file.as_ref())?;
            let batch = match parse_batch(&body, now, config.panel_name.as_deref()) {
                Ok(batch) => batch,
                Err(err) => {
                    eprintln!("{err}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            for rejection in &batch.rejected {
                eprintln!("element {} rejected: {}", rejection.index, rejection.error);
            }
            batch.events
        }
    };
    // As ingest and delivery would: route each event, render it once, pack per destination.
    let router = startup::router(&config);
    let mut queues: Vec<Queue> = Vec::new();
    for event in &events {
        let part = loaded.renderer.render(event);
        for route in router.route(event) {
            let at = match queues.iter().position(|queue| queue.destination.name == route.destination.name) {
                Some(at) => at,
                None => {
                    queues.push(Queue { destination: route.destination.clone(), parts: Vec::new() });
                    queues.len() - 1
                }
            };
            queues[at].parts.push((part.clone(), route.mentions));
        }
    }
    for queue in &queues {
        let parts: Vec<(&Part, &Mentions)> = queue.parts.iter().map(|(part, mentions)| (part, mentions)).collect();
        let mut rest = parts.as_slice();
        while !rest.is_empty() {
            let (count, mentions) = next_message(rest, limits::EMBEDS_PER_MESSAGE);
            let message = build_message(rest[..count].iter().map(|(part, _)| *part), &mentions, &queue.destination);
            eprintln!("# to destination {}", queue.destination.name);
            println!("{}", serde_json::to_string_pretty(&message)?);
            rest = &rest[count..];
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_body(file: Option<&PathBuf>) -> anyhow::Result<Vec<u8>> {
    match file {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        }
        _ => {
            let mut body = Vec::new();
            std::io::stdin().read_to_end(&mut body).context("cannot read standard input")?;
            Ok(body)
        }
    }
}

/// The messages for one destination, in order.
struct Queue {
    destination: Arc<Destination>,
    parts: Vec<(Part, Mentions)>,
}
