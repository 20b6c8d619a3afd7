//! `render`: preview the Discord messages for a webhook body, exactly as the relay would send them.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use time::OffsetDateTime;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::{parse_count, Config};
use crate::deliver::preview;
use crate::destination::{Destination, Target, DEFAULT_DESTINATION};
use crate::event::{parse_batch, parse_datetime, Event};
use crate::ingest::{prepare_events, states_after};
use crate::outbox::{unix_ms, NewRow, RowMeta};
use crate::render::{report, samples, Loaded, Part, Renderer};
use crate::reports::{Report, ReportKind};
use crate::startup;

/// The line before each request body `render` prints, followed by the destination's name: the
/// output is such a line, then the body as indented JSON (whose lines never start with `#`), and
/// so on, all on standard output.
pub const DESTINATION_LINE: &str = "# to destination ";

/// The largest burst `render --burst` previews: five times the look-ahead a delivery task finds a
/// burst in, so several bursts in a row can be seen, and a few seconds of work at most.
pub const BURST_MAX: usize = 10_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A file holding a webhook body (a JSON array of events or one event); `-` or nothing reads
    /// standard input. Given several, the last is rendered as received after the others: an
    /// edit shows what it changed since the state its user was in (`render before.json after.json`).
    #[arg(value_name = "FILE|-", conflicts_with_all = ["action", "report"])]
    files: Vec<PathBuf>,
    /// Render the built-in sample event of this action instead.
    #[arg(long, value_name = "ACTION", conflicts_with = "report")]
    action: Option<String>,
    /// Render a sample report (two panels) with the report template instead.
    #[arg(long, value_name = "daily|weekly", value_parser = ReportKind::parse)]
    report: Option<ReportKind>,
    /// When the body was received, as an RFC 3339 time or unix seconds, whole or fractional as
    /// PasarGuard's `enqueued_at` (default: now). Days left
    /// and event times are computed from it, so a saved body renders as it did when the relay
    /// received it.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    received_at: Option<OffsetDateTime>,
    /// With --action: N events of that sample for distinct users, received together, printed as
    /// delivery would send them: as digests when N is above DIGEST_THRESHOLD. N from 1 to 10000.
    #[arg(long, value_name = "N", requires = "action", value_parser = parse_burst)]
    burst: Option<usize>,
}

fn parse_burst(text: &str) -> Result<usize, String> {
    parse_count(text.trim(), 1..=BURST_MAX)
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    let parsed = match text.trim().parse::<f64>() {
        Ok(seconds) if seconds.is_finite() => {
            // `as` saturates; a time out of range is refused just below.
            OffsetDateTime::from_unix_timestamp_nanos((seconds * 1e9).round() as i128).ok()
        }
        _ => parse_datetime(text),
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
        eprintln!("warning: template {problem}; the built-in template is used instead");
    }
    let now = args.received_at.unwrap_or_else(OffsetDateTime::now_utc);
    if let Some(kind) = args.report {
        // As the destination that gets this report would be sent it (a forum's post, say).
        let router = startup::router(&config);
        let recipients = crate::reports::recipients(&router, config.routes.as_ref(), &config.reports);
        let destination = recipients
            .iter()
            .find(|recipient| recipient.reports.contains(&kind))
            .or(recipients.first())
            .map(|recipient| recipient.destination.clone())
            .or_else(|| router.destinations().first().cloned())
            .unwrap_or_else(|| Arc::new(Destination::new(DEFAULT_DESTINATION, Target::DryRun)));
        let sample = Report { parts: report::samples(kind.name(), now.unix_timestamp()).swap_remove(0) };
        let now_ms = unix_ms(now);
        let rows = sample.rows(&destination.name, &loaded.renderer, now_ms);
        let destinations = BTreeMap::from([(destination.name.clone(), destination)]);
        print_rows(rows, &destinations, &config, &loaded.renderer)?;
        return Ok(exit_code(&loaded));
    }
    let mut earlier = Vec::new();
    let events = match (&args.action, args.burst) {
        (Some(action), burst) => {
            let known = samples::actions();
            if !known.contains(action) && action != "default" {
                eprintln!("there is no sample for {action:?}; known actions: {}", known.join(", "));
                return Ok(ExitCode::FAILURE);
            }
            let mut sample = samples::event_for(action, now).map_err(anyhow::Error::msg)?;
            // As the relay labels what reaches `POST /`: the footer names the panel.
            sample.panel = config.panel_name.clone();
            match burst {
                Some(count) => burst_of(&sample, count),
                None => vec![sample],
            }
        }
        (None, _) => {
            let last = args.files.len().saturating_sub(1);
            let mut events = Vec::new();
            for (index, file) in args.files.iter().map(Some).chain(args.files.is_empty().then_some(None)).enumerate() {
                let Some(batch) = read_events(file, now, config.panel_name.as_deref())? else {
                    return Ok(ExitCode::FAILURE);
                };
                if index < last {
                    earlier.extend(batch);
                } else {
                    events = batch;
                }
            }
            events
        }
    };
    // As ingest would (fold, route, render once, each user's earlier state from the bodies
    // before) and as delivery would for rows that are all pending at once (digests of bursts,
    // the rest packed), destination by destination.
    let router = startup::router(&config);
    let known = states_after(&earlier, &HashMap::new());
    let prepared = prepare_events(&events, now, &loaded.renderer, &router, config.fold_updates, &known);
    print_rows(prepared.rows, &prepared.destinations, &config, &loaded.renderer)?;
    Ok(exit_code(&loaded))
}

/// 1 when one of the admin's templates failed to load, or failed for what was rendered and the
/// built-in one stood in (said on standard error); else 0. `report`'s preview exits the same way.
pub(super) fn exit_code(loaded: &Loaded) -> ExitCode {
    let (fell_back, failures) = loaded.renderer.fallbacks();
    if fell_back > 0 {
        eprintln!(
            "warning: {fell_back} embed(s) or forum post title(s) above were not rendered with the template in \
             use: it failed, so the built-in template (or a minimal embed) stands in, as the relay would do"
        );
        for (problem, action) in &failures {
            eprintln!("  {problem} (action {action})");
        }
    }
    if fell_back > 0 || !loaded.problems.is_empty() {
        eprintln!("render: exit code 1 because a template of yours failed; `check` lists every problem");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Prints the messages delivery would send for `rows` (all pending at once), destination by
/// destination, each body after its [`DESTINATION_LINE`] on standard output; which forum post a
/// message goes into is said on standard error. `render` and `report` print through this.
pub(super) fn print_rows(
    rows: Vec<NewRow>,
    destinations: &BTreeMap<String, Arc<Destination>>,
    config: &Config,
    renderer: &Renderer,
) -> anyhow::Result<()> {
    let mut queues: Vec<(String, Vec<(RowMeta, Part)>)> = Vec::new();
    for (id, row) in rows.into_iter().enumerate() {
        let part: Part = serde_json::from_str(&row.part).context("a rendered part reads back")?;
        let meta = RowMeta {
            id: i64::try_from(id).unwrap_or(i64::MAX),
            action: row.action,
            username: row.username,
            panel: row.panel,
            received_at_ms: row.received_at_ms,
            mentions: row.mentions,
        };
        match queues.iter_mut().find(|(name, _)| *name == row.destination) {
            Some((_, rows)) => rows.push((meta, part)),
            None => queues.push((row.destination, vec![(meta, part)])),
        }
    }
    let mut out = std::io::stdout().lock();
    for (name, rows) in queues {
        let destination = destinations.get(&name).context("a row's destination is known")?;
        let threshold = config.delivery.digest_threshold;
        let several_panels = config.delivery.several_panels;
        for message in preview::messages(destination, rows, threshold, renderer, several_panels) {
            match &message.post {
                Some((title, true)) => eprintln!("# {name}: this message creates the forum post {title:?}"),
                Some((title, false)) => eprintln!("# {name}: this message goes into the forum post {title:?}"),
                None => {}
            }
            writeln!(out, "{DESTINATION_LINE}{name}")?;
            writeln!(out, "{}", serde_json::to_string_pretty(&message.body)?)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `count` copies of `sample` for distinct users (`<name>_001`, `<name>_002`, …), as a panel sends
/// a burst: a mass expiry at midnight, say.
fn burst_of(sample: &Event, count: usize) -> Vec<Event> {
    let width = count.to_string().len();
    let base = if sample.username.is_empty() { "user" } else { sample.username.as_str() };
    (1..=count)
        .map(|i| {
            let mut event = sample.clone();
            event.username = format!("{base}_{i:0width$}");
            if let Some(user) = &mut event.user {
                user.username = Some(event.username.clone());
            }
            event
        })
        .collect()
}

/// The events of the body in `file` (standard input for `None` or `-`), with the rejected
/// elements said on standard error; `None` when the body is no batch at all (said too).
fn read_events(file: Option<&PathBuf>, now: OffsetDateTime, panel: Option<&str>) -> anyhow::Result<Option<Vec<Event>>> {
    let body = read_body(file)?;
    let batch = match parse_batch(&body, now, panel) {
        Ok(batch) => batch,
        Err(err) => {
            eprintln!("{err}");
            return Ok(None);
        }
    };
    for rejection in &batch.rejected {
        eprintln!("element {} rejected: {}", rejection.index, rejection.error);
    }
    Ok(Some(batch.events))
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
