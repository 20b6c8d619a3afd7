//! Scheduled reports: a producer inside the process that, at each scheduled time, sums up the
//! period that just ended (per panel: counts per action, the net change in users, who expired or
//! hit their limit, and the relay's own health) and writes it into the outbox as rows for the
//! destinations that get reports. Delivery then treats them like any other row: packing, pacing,
//! retries and dead letters.
//!
//! * [`schedule`]: `REPORTS` / `REPORTS_TZ` and the calendar arithmetic (pure).
//! * [`build`]: from the outbox's tally of a period to the rendered rows of a report.
//! * [`nodes`]: the nodes section: node watch's outages during the period, per panel.
//! * [`producer`]: the task that decides what is due, exactly once per period and destination.
//!
//! What a report counts is recorded at ingest, in the same transaction as the events' rows (see
//! `outbox::tally`), and kept for [`KEEP_DAYS`] whatever `DELIVERED_RETENTION` says.

pub mod build;
pub mod nodes;
pub mod producer;
pub mod schedule;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;

pub use build::{build_report, build_report_with, Report};
pub use nodes::NODES_SHOWN;
pub use producer::{recipients, Producer, Recipient};
pub use schedule::{parse_reports, parse_time_zone, Period, ReportKind, Schedule};

/// How long the tally of received events and the relay's health counters are kept (days). The
/// outbox keeps the tally and delivery prunes it, so the number lives there.
pub use crate::outbox::TALLY_KEEP_DAYS as KEEP_DAYS;

/// How many usernames a report lists per panel for expired and for limited users; the rest are
/// counted ("and 37 more"). The outbox keeps up to `outbox::NAMES_PER_SLOT` per quarter-hour.
pub const NAMES_SHOWN: usize = 20;

/// What time it is, for the producer. Tests give it a clock they move by hand.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Timestamp + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(Timestamp::now))
    }

    /// A clock that reads `now`.
    pub fn from_fn(now: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    pub fn now(&self) -> Timestamp {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// The report settings.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// `REPORTS`, default none: which reports and when (`daily@09:00,weekly@mon 09:00`).
    pub schedules: Vec<Schedule>,
    /// `REPORTS_TZ`, default UTC: the IANA time zone the times in `REPORTS` are in.
    pub time_zone: TimeZone,
    /// Where the producer reads the time. The system clock, except in tests.
    pub clock: Clock,
    /// How often the producer looks at the clock at most while it waits for the next report: it
    /// sleeps until the next report is due, but never longer than this, so a clock that jumps
    /// (a suspended host, a corrected clock) is noticed within it.
    pub recheck: Duration,
    /// How long after a period's end its report is made: events whose request began before the
    /// end are stored up to the body timeout (60 s) later, and counted in the period they began.
    /// [`SETTLE`], except in tests that step the producer to the second.
    pub settle: Duration,
}

/// How long after a period's end its report is made (see [`ReportSettings::settle`]): the request
/// body timeout and room to store.
pub const SETTLE: Duration = Duration::from_secs(75);

impl Default for ReportSettings {
    fn default() -> Self {
        Self {
            schedules: Vec::new(),
            time_zone: TimeZone::UTC,
            clock: Clock::system(),
            recheck: Duration::from_secs(60),
            settle: SETTLE,
        }
    }
}

impl ReportSettings {
    pub fn schedule(&self, kind: ReportKind) -> Option<&Schedule> {
        self.schedules.iter().find(|schedule| schedule.kind == kind)
    }
}

#[cfg(test)]
mod edge_tests;
#[cfg(test)]
mod nodes_tests;
#[cfg(test)]
mod tests;
