//! The report producer: a task that, whenever a scheduled period has ended, stores that period's
//! report as rows for every destination that gets it, and wakes their delivery tasks.
//!
//! Exactly once per period and destination, across restarts: the outbox records the end of the
//! last period each destination was sent each report for, in the same transaction as the report's
//! rows. Every report's period starts where the last one ended, so no hour is in two reports or
//! in none: after downtime across report times, one report (at the latest period's end) covers
//! everything since the last report, however many periods that is, its `from` saying where it
//! starts (never before the [`KEEP_DAYS`] of tally kept) and its text since when no report was
//! made; no report starts before the highest end ever reported, even after a record was set
//! back for a clock that seemed to have been ahead; when the schedule moved (`REPORTS`,
//! `REPORTS_TZ`), the first period after the move may be shorter than usual. The first time a
//! destination is given a report, the period that has just ended is only recorded, not sent: the
//! relay has no tally of it; the first report comes at the next scheduled time.
//!
//! A report is made [`super::SETTLE`] after its period ends, not at once: a batch whose request
//! began before the end counts in that period, and may be stored up to the body timeout later.
//!
//! [`Producer::run_due`] is one step that tests drive with any time; [`Producer::run`] loops it on
//! the settings' clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::{Report, ReportKind, ReportSettings, KEEP_DAYS};
use crate::deliver::Dispatch;
use crate::destination::{Destination, DEFAULT_DESTINATION};
use crate::outbox::{now_ms, Outbox, OutboxError, ReportRecord};
use crate::render::Templates;
use crate::routing::{Router, Routes};

/// A destination that gets reports, and which.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub destination: Arc<Destination>,
    pub reports: Vec<ReportKind>,
}

/// Who gets which reports: every routes-file destination with `reports = [...]` gets those; when
/// none has one, the `default` destination gets every report `REPORTS` schedules.
pub fn recipients(router: &Router, routes: Option<&Routes>, settings: &ReportSettings) -> Vec<Recipient> {
    let scheduled: Vec<ReportKind> = settings.schedules.iter().map(|s| s.kind).collect();
    if scheduled.is_empty() {
        return Vec::new();
    }
    let chosen = routes.map(|routes| &routes.reports).filter(|reports| !reports.is_empty());
    router
        .destinations()
        .iter()
        .filter_map(|destination| {
            let reports = match chosen {
                Some(chosen) => chosen.get(&destination.name)?.clone(),
                None if destination.name == DEFAULT_DESTINATION => scheduled.clone(),
                None => return None,
            };
            (!reports.is_empty()).then(|| Recipient { destination: destination.clone(), reports })
        })
        .collect()
}

/// Where a period ending at `end` starts when the last report ended at `sent`: right there, so
/// the report covers everything since (a period longer than usual after downtime, shorter after
/// the schedule moved), but not before the tally kept ([`KEEP_DAYS`] days).
fn continued_start(sent: i64, end: Timestamp) -> Timestamp {
    let kept = end.as_second().saturating_sub(KEEP_DAYS.saturating_mul(86_400));
    Timestamp::from_second(sent.max(kept)).unwrap_or(end)
}

/// Where the last report of `record` ended, as far as the next one is concerned at `now`: the
/// record, or the highest end ever recorded once that is no more than [`CLOCK_DOUBT`] ahead of
/// `now`. A record set back because it looked like a clock's that was ahead (see
/// `Producer::look_for_a_wrong_clock`) was a clock's that was behind when its highest end comes
/// after all: then no report starts before it, so no reported day is counted again. A highest
/// end still far ahead was a clock's that was ahead, and is left out.
fn reported_until(record: ReportRecord, now: Timestamp) -> i64 {
    let doubt = i64::try_from(CLOCK_DOUBT.as_secs()).unwrap_or(i64::MAX);
    if record.highest <= now.as_second().saturating_add(doubt) {
        record.end.max(record.highest)
    } else {
        record.end
    }
}

/// Stores reports when they are due.
#[derive(Clone)]
pub struct Producer {
    outbox: Outbox,
    templates: Arc<Templates>,
    settings: ReportSettings,
    recipients: Vec<Recipient>,
    /// Wakes the recipients' delivery tasks; none when only storing (tests).
    dispatch: Option<Dispatch>,
    /// Reports whose record is far ahead of the clock, and when that was first seen.
    ahead: Arc<Mutex<HashMap<(String, ReportKind), Timestamp>>>,
}

/// How far ahead of the clock a report's record must be to doubt the clock (see
/// `Producer::look_for_a_wrong_clock`).
pub const CLOCK_DOUBT: Duration = Duration::from_secs(86_400);

/// How long a record must stay that far ahead before it is taken for a wrong clock's.
pub const CLOCK_DOUBT_FOR: Duration = Duration::from_secs(3600);

impl Producer {
    pub fn new(
        outbox: Outbox,
        templates: Arc<Templates>,
        settings: ReportSettings,
        recipients: Vec<Recipient>,
        dispatch: Option<Dispatch>,
    ) -> Self {
        Self { outbox, templates, settings, recipients, dispatch, ahead: Arc::default() }
    }

    /// Stores every report due at `now` that is not stored yet: for each recipient and report, the
    /// latest period that ended `settle` or more before `now` (by then, every event received
    /// before its end is stored). Returns how many reports were stored.
    pub async fn run_due(&self, now: Timestamp) -> Result<usize, OutboxError> {
        let mut stored = 0;
        for recipient in &self.recipients {
            for kind in &recipient.reports {
                if self.run_one(recipient, *kind, now).await? {
                    stored += 1;
                }
            }
        }
        Ok(stored)
    }

    async fn run_one(&self, recipient: &Recipient, kind: ReportKind, now: Timestamp) -> Result<bool, OutboxError> {
        let tz = &self.settings.time_zone;
        let settled = self.settled(now);
        let Some(mut period) = self.settings.schedule(kind).and_then(|schedule| schedule.last_period(settled, tz))
        else {
            return Ok(false);
        };
        let name = &recipient.destination.name;
        let end = period.end.as_second();
        let Some(record) = self.outbox.report_sent(name, kind.name()).await? else {
            // The latest period that has ended by the clock, settled or not: none of it was seen.
            let first = self.settings.schedule(kind).and_then(|s| s.last_period(now, tz)).unwrap_or(period);
            self.outbox.store_report(name.clone(), kind.name().into(), first.end.as_second(), Vec::new()).await?;
            log::info!("{name}: {kind} reports start with the period after the one ending {}", first.end);
            return Ok(false);
        };
        let sent = reported_until(record, settled);
        if sent >= end {
            self.look_for_a_wrong_clock(name, kind, sent, period.end, settled).await?;
            return Ok(false);
        }
        // The period starts where the last report ended: after downtime across report times, or
        // after REPORTS or REPORTS_TZ moved the time, no hour is in two reports or in none. When
        // that is before the scheduled start, the report says since when it counts.
        let scheduled_start = period.start;
        period.start = continued_start(sent, period.end);
        let since = (period.start < scheduled_start).then_some(sent);
        let report = Report::read(&self.outbox, kind.name(), period).await?.since(since);
        let rows = report.rows(name, &self.templates.current(), now_ms());
        let fresh = self.outbox.store_report(name.clone(), kind.name().into(), end, rows).await?;
        if fresh {
            log::info!("{name}: stored the {kind} report of {} to {}", period.start, period.end);
            if let Some(dispatch) = &self.dispatch {
                dispatch.wake(&recipient.destination);
            }
        }
        Ok(fresh)
    }

    /// A recorded period that ends more than [`CLOCK_DOUBT`] after `now` was recorded while the
    /// clock was ahead, or the clock is behind now. A clock behind (at boot, before NTP answers)
    /// is set right within minutes, and the record must stand; a record from a clock that was
    /// ahead would silence the report until that time comes. So when the record is still that far
    /// ahead after [`CLOCK_DOUBT_FOR`] of this clock's time, it is set back to `latest_end` (the
    /// latest period that has ended, not reported: as on a first start). The highest end recorded
    /// stays: if it was the clock that was behind, once it is right no report starts before that
    /// end ([`reported_until`]).
    async fn look_for_a_wrong_clock(
        &self,
        name: &str,
        kind: ReportKind,
        sent: i64,
        latest_end: Timestamp,
        now: Timestamp,
    ) -> Result<(), OutboxError> {
        let key = (name.to_owned(), kind);
        let doubt = CLOCK_DOUBT.as_secs() as i64;
        if sent <= now.as_second().saturating_add(doubt) {
            self.ahead.lock().map(|mut ahead| ahead.remove(&key)).ok();
            return Ok(());
        }
        let since = {
            let Ok(mut ahead) = self.ahead.lock() else { return Ok(()) };
            *ahead.entry(key.clone()).or_insert(now)
        };
        let recorded = Timestamp::from_second(sent).map_or_else(|_| sent.to_string(), |t| t.to_string());
        if since == now {
            log::warn!(
                "{name}: the last {kind} report recorded ended at {recorded}, which has not come yet: the clock \
                 was ahead then, or is behind now. If it still is in {CLOCK_DOUBT_FOR:?}, {kind} reports start \
                 again from now"
            );
        }
        if now.duration_since(since).as_secs() < CLOCK_DOUBT_FOR.as_secs() as i64 {
            return Ok(());
        }
        self.outbox.reset_report_sent(name.to_owned(), kind.name().into(), latest_end.as_second()).await?;
        self.ahead.lock().map(|mut ahead| ahead.remove(&key)).ok();
        log::warn!(
            "{name}: the last {kind} report was recorded with a clock that was ahead ({recorded}); {kind} reports \
             start again with the period after the one ending {latest_end}"
        );
        Ok(())
    }

    /// When the next report is due after `now`, if any is scheduled for a recipient: the next
    /// period's end, plus the settings' `settle`.
    pub fn next_due(&self, now: Timestamp) -> Option<Timestamp> {
        let tz = &self.settings.time_zone;
        let settle = jiff::SignedDuration::try_from(self.settings.settle).ok()?;
        self.recipients
            .iter()
            .flat_map(|recipient| recipient.reports.iter())
            .filter_map(|kind| self.settings.schedule(*kind)?.next_end(self.settled(now), tz))
            .filter_map(|end| end.checked_add(settle).ok())
            .min()
    }

    /// The time up to which what was received is stored at `now`: `settle` earlier.
    fn settled(&self, now: Timestamp) -> Timestamp {
        jiff::SignedDuration::try_from(self.settings.settle)
            .ok()
            .and_then(|settle| now.checked_sub(settle).ok())
            .unwrap_or(now)
    }

    /// Stores reports as they fall due until `shutdown`: looks at the clock, stores what is due,
    /// and sleeps until the next report is due (at most `recheck`). A failure to store (a full
    /// outbox) is logged and tried again at the next look.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let now = self.settings.clock.now();
            if let Err(err) = self.run_due(now).await {
                log::warn!("could not store a scheduled report; trying again shortly: {err}");
            }
            let until_due = self
                .next_due(now)
                .and_then(|due| std::time::Duration::try_from(due.duration_since(now)).ok())
                .unwrap_or(self.settings.recheck);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(until_due.min(self.settings.recheck)) => {}
            }
        }
    }
}
