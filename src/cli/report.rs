//! `report`: make a report now, for the last scheduled period or any other one, and print its
//! Discord request bodies (like `render`) or store it in the outbox for the running relay to send.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Context};
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::config::Config;
use crate::destination::DEFAULT_DESTINATION;
use crate::outbox::{now_ms, Outbox, SLOT_SECONDS};
use crate::render::Renderer;
use crate::reports::{Period, Report, ReportKind, KEEP_DAYS};
use crate::startup;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The report: a day or a week, ending at --ending.
    #[arg(long, value_name = "daily|weekly", value_parser = ReportKind::parse, default_value = "daily")]
    period: ReportKind,
    /// When the period ends: an RFC 3339 time (2026-11-28T09:00:00Z), a local time in REPORTS_TZ
    /// (2026-11-28 09:00) or unix seconds. Default: the last scheduled end if REPORTS schedules
    /// this report, else the end of the current quarter-hour (so it includes everything so far).
    #[arg(long, value_name = "TIME", conflicts_with_all = ["from", "to"])]
    ending: Option<String>,
    /// The start of a period of your own (with --to), in the same forms as --ending.
    #[arg(long, value_name = "TIME", requires = "to")]
    from: Option<String>,
    /// The end of a period of your own (with --from).
    #[arg(long, value_name = "TIME", requires = "from")]
    to: Option<String>,
    /// Store the report in the outbox; the running relay sends it (within its idle poll, 30 s).
    #[arg(long)]
    send: bool,
    /// The destination to send to, or whose look to preview (default: `default`).
    #[arg(long, value_name = "NAME")]
    destination: Option<String>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let config = if args.send { Config::from_env()? } else { Config::from_env_for_preview()? };
    let tz = config.reports.time_zone.clone();
    let (name, period) = period(args, &config, &tz, Timestamp::now())?;
    let router = startup::router(&config);
    let wanted = args.destination.as_deref().unwrap_or(DEFAULT_DESTINATION);
    let Some(destination) = router.destinations().iter().find(|d| d.name == wanted).cloned() else {
        let known: Vec<&str> = router.destinations().iter().map(|d| d.name.as_str()).collect();
        bail!("there is no destination {wanted:?} (configured: {})", known.join(", "));
    };
    let loaded = Renderer::load(&config.templates_dir, config.template_lang);
    for problem in &loaded.problems {
        eprintln!("template {problem}; the built-in template is used instead");
    }
    super::runtime()?.block_on(async {
        let outbox = Outbox::open_capped(&config.data_dir, config.outbox_max_bytes)?;
        let report = Report::read(&outbox, &name, period).await?;
        eprintln!("# the {name} report of {} to {}", period.start, period.end);
        if args.send {
            let rows = report.rows(&destination.name, &loaded.renderer, now_ms());
            let stored = outbox.enqueue(rows, None).await?.stored;
            println!(
                "stored {stored} report embed(s) for destination {}; the running relay sends them",
                destination.name
            );
            // Stored is done: a script that took 1 for "not sent" would store it again.
            Ok(ExitCode::SUCCESS)
        } else {
            let rows = report.rows(&destination.name, &loaded.renderer, now_ms());
            let destinations = BTreeMap::from([(destination.name.clone(), destination.clone())]);
            super::render::print_rows(rows, &destinations, &config, &loaded.renderer)?;
            Ok(super::render::exit_code(&loaded))
        }
    })
}

/// The report's name and period from the arguments.
fn period(args: &Args, config: &Config, tz: &TimeZone, now: Timestamp) -> anyhow::Result<(String, Period)> {
    if let (Some(from), Some(to)) = (&args.from, &args.to) {
        let period = Period { start: parse_time(from, tz)?, end: parse_time(to, tz)? };
        if period.start >= period.end {
            bail!("--from must be before --to");
        }
        return Ok(("custom".into(), checked(period, now)?));
    }
    let kind = args.period;
    let period = match &args.ending {
        Some(ending) => ending_at(kind, parse_time(ending, tz)?, tz)?,
        None => match config.reports.schedule(kind).and_then(|schedule| schedule.last_period(now, tz)) {
            Some(period) => period,
            None => {
                // The end of the current quarter-hour slot, so that everything received so far counts.
                let quarter = now.as_second().div_euclid(SLOT_SECONDS).saturating_add(1).saturating_mul(SLOT_SECONDS);
                ending_at(kind, Timestamp::from_second(quarter)?, tz)?
            }
        },
    };
    Ok((kind.name().into(), checked(period, now)?))
}

/// The period of `kind` ending at `end`: one or seven local days before it.
fn ending_at(kind: ReportKind, end: Timestamp, tz: &TimeZone) -> anyhow::Result<Period> {
    let days = if kind == ReportKind::Weekly { 7 } else { 1 };
    let start = end.to_zoned_datetime(tz.clone()).checked_sub(days.days()).context("the period starts too early")?;
    Ok(Period { start: start.timestamp(), end })
}

/// Refuses a period the tally no longer (or not yet) covers, or longer than it is kept.
fn checked(period: Period, now: Timestamp) -> anyhow::Result<Period> {
    let oldest = now.as_second().saturating_sub(KEEP_DAYS * 86_400);
    if period.start.as_second() < oldest {
        bail!("the period starts more than {KEEP_DAYS} days ago; the relay keeps its tally that long");
    }
    if period.start > now {
        bail!("the period starts in the future");
    }
    if period.end.as_second().saturating_sub(period.start.as_second()) > KEEP_DAYS * 86_400 {
        bail!("a report covers at most {KEEP_DAYS} days (the relay keeps its tally that long); --to is too late");
    }
    Ok(period)
}

/// An RFC 3339 time, a local date and time in `tz`, or unix seconds.
fn parse_time(text: &str, tz: &TimeZone) -> anyhow::Result<Timestamp> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return Timestamp::from_second(seconds).with_context(|| format!("{text:?} is out of range"));
    }
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let local: DateTime = text.parse().map_err(|_| {
        anyhow::anyhow!("{text:?} is neither an RFC 3339 time (2026-11-28T09:00:00Z), a local time (2026-11-28 09:00) nor unix seconds")
    })?;
    Ok(tz.to_ambiguous_timestamp(local).compatible()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(from: &str, to: &str) -> Args {
        Args {
            period: ReportKind::Daily,
            ending: None,
            from: Some(from.into()),
            to: Some(to.into()),
            send: false,
            destination: None,
        }
    }

    fn refused(from: &str, to: &str) -> String {
        let config = Config::from_vars(&std::collections::HashMap::new()).unwrap();
        let now: Timestamp = "2026-11-28T04:00:00Z".parse().unwrap();
        period(&args(from, to), &config, &TimeZone::UTC, now).unwrap_err().to_string()
    }

    #[test]
    fn a_custom_period_is_at_most_as_long_as_the_tally_is_kept() {
        let config = Config::from_vars(&std::collections::HashMap::new()).unwrap();
        let now: Timestamp = "2026-11-28T04:00:00Z".parse().unwrap();
        let within = period(&args("2026-11-27T04:00:00Z", "2026-11-28T05:00:00Z"), &config, &TimeZone::UTC, now);
        assert_eq!(within.unwrap().0, "custom", "up to now and a little after is fine");
        assert!(refused("2026-11-27T00:00:00Z", "2099-01-01T00:00:00Z").contains("at most 35 days"));
        assert!(refused("2026-11-28T00:00:00Z", "2026-11-27T00:00:00Z").contains("--from must be before --to"));
        assert!(refused("2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z").contains("more than 35 days ago"));
        assert!(refused("99999999999999999", "0").contains("out of range"));
    }
}
