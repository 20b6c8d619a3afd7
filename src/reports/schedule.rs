//! When reports are due: the `REPORTS` and `REPORTS_TZ` settings, and the calendar arithmetic that
//! turns "daily at 09:00 in Europe/Berlin" into periods of instants. Pure: the caller says what
//! time it is.
//!
//! A period ends at each scheduled local time and starts at the one before it, so on a day when
//! the clocks change a daily period is 23 or 25 hours long. A local time that does not exist on a
//! day (02:30 when the clocks jump from 02:00 to 03:00) is the same wall-clock time after the jump
//! (03:30); one that happens twice (01:30 when they go back) is its first occurrence. This is the
//! "compatible" rule of RFC 5545 and of JavaScript's Temporal.

use std::fmt;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

pub use crate::routing::ReportKind;

/// One entry of `REPORTS`: `daily@09:00` or `weekly@mon 09:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub kind: ReportKind,
    /// The day a weekly period ends on; `None` for daily.
    pub weekday: Option<Weekday>,
    pub hour: i8,
    pub minute: i8,
}

/// A span of time a report covers: from `start` (included) to `end` (excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: Timestamp,
    pub end: Timestamp,
}

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

/// Parses `REPORTS`: comma-separated `daily@HH:MM` and `weekly@DAY HH:MM` (DAY: mon…sun; or
/// `weekly@DAY-HH:MM`), each report at most once. Empty: no reports.
pub fn parse_reports(value: &str) -> Result<Vec<Schedule>, String> {
    let mut schedules: Vec<Schedule> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let schedule = parse_entry(entry)?;
        if schedules.iter().any(|s| s.kind == schedule.kind) {
            return Err(format!("names {} twice; give each report one time", schedule.kind));
        }
        schedules.push(schedule);
    }
    Ok(schedules)
}

fn parse_entry(entry: &str) -> Result<Schedule, String> {
    let shape = || {
        format!(
            "{entry:?} is not daily@HH:MM or weekly@DAY HH:MM (or weekly@DAY-HH:MM; DAY: mon, tue, …, sun; MM: 00, \
             15, 30 or 45)"
        )
    };
    let (kind, when) = entry.split_once('@').ok_or_else(shape)?;
    let kind = ReportKind::parse(kind).map_err(|err| format!("{entry:?}: {err}"))?;
    let when = when.trim();
    let (weekday, time) = match kind {
        ReportKind::Daily => (None, when),
        ReportKind::Weekly => {
            // A dash works as well as a space, for `.env` files, where a space needs quotes.
            let (day, time) = when.split_once([' ', '-']).ok_or_else(shape)?;
            let day = day.trim().to_ascii_lowercase();
            let weekday = WEEKDAYS.iter().find(|(name, _)| *name == day).map(|(_, d)| *d).ok_or_else(shape)?;
            (Some(weekday), time.trim())
        }
    };
    let (hour, minute) = parse_time(time).ok_or_else(shape)?;
    Ok(Schedule { kind, weekday, hour, minute })
}

/// `HH:MM`, 00:00 to 23:45, on a quarter-hour: the tally is kept in quarter-hour slots (which
/// every time zone's offset is a multiple of), so a period is a whole number of slots.
fn parse_time(time: &str) -> Option<(i8, i8)> {
    let (hour, minute) = time.split_once(':')?;
    let two_digits = |s: &str| (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<i8>().ok())?;
    let (hour, minute) = (two_digits(hour)?, two_digits(minute)?);
    (hour < 24 && minute < 60 && minute % 15 == 0).then_some((hour, minute))
}

/// Parses `REPORTS_TZ`: an IANA time zone name (`Europe/Berlin`, `Asia/Tehran`, `UTC`), looked up
/// in the time zone database compiled into the relay.
pub fn parse_time_zone(value: &str) -> Result<TimeZone, String> {
    TimeZone::get(value.trim())
        .map_err(|_| format!("{:?} is not an IANA time zone name (such as Europe/Berlin, Asia/Tehran or UTC)", value))
}

impl Schedule {
    /// When the period ending on local `date` ends, if `date` is one of this schedule's days.
    fn end_on(&self, date: Date, tz: &TimeZone) -> Option<Timestamp> {
        if self.weekday.is_some_and(|weekday| date.weekday() != weekday) {
            return None;
        }
        tz.to_ambiguous_timestamp(date.at(self.hour, self.minute, 0, 0)).compatible().ok()
    }

    /// The period ending on local `date` (a scheduled day): from the scheduled time one period
    /// earlier in the local calendar.
    fn period_ending_on(&self, date: Date, tz: &TimeZone) -> Option<Period> {
        let end = self.end_on(date, tz)?;
        let before = date.checked_sub(self.kind.days().days()).ok()?;
        let start = tz.to_ambiguous_timestamp(before.at(self.hour, self.minute, 0, 0)).compatible().ok()?;
        Some(Period { start, end })
    }

    /// The latest period that has ended at `now` (its end at or before `now`).
    pub fn last_period(&self, now: Timestamp, tz: &TimeZone) -> Option<Period> {
        let today = tz.to_datetime(now).date();
        (0..=8)
            .filter_map(|back| today.checked_sub(back.days()).ok())
            .filter_map(|date| self.period_ending_on(date, tz))
            .find(|period| period.end <= now)
    }

    /// When the next period ends after `now`.
    pub fn next_end(&self, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let yesterday = tz.to_datetime(now).date().checked_sub(1.day()).ok()?;
        (0..=9)
            .filter_map(|ahead| yesterday.checked_add(ahead.days()).ok())
            .filter_map(|date| self.end_on(date, tz))
            .find(|end| *end > now)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@", self.kind)?;
        if let Some(weekday) = self.weekday {
            let name = WEEKDAYS.iter().find(|(_, d)| *d == weekday).map_or("?", |(name, _)| name);
            write!(f, "{name} ")?;
        }
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn zone(name: &str) -> TimeZone {
        parse_time_zone(name).unwrap()
    }

    fn daily(time: &str) -> Schedule {
        parse_reports(&format!("daily@{time}")).unwrap()[0]
    }

    #[test]
    fn parses_daily_and_weekly_entries() {
        let schedules = parse_reports(" daily@09:00 , weekly@Mon 18:30 ").unwrap();
        assert_eq!(
            schedules,
            [
                Schedule { kind: ReportKind::Daily, weekday: None, hour: 9, minute: 0 },
                Schedule { kind: ReportKind::Weekly, weekday: Some(Weekday::Monday), hour: 18, minute: 30 },
            ]
        );
        assert_eq!(schedules[1].to_string(), "weekly@mon 18:30");
        assert_eq!(parse_reports("weekly@mon-18:30").unwrap()[0], schedules[1], "a dash needs no quotes in .env");
        assert!(parse_reports("").unwrap().is_empty());
    }

    #[test]
    fn refuses_what_is_not_a_schedule() {
        for bad in [
            "daily",
            "daily@9:00",
            "daily@24:00",
            "daily@09:60",
            "daily@09:00:00",
            "hourly@09:00",
            "weekly@09:00",
            "weekly@monday 09:00",
            "daily@09:00,daily@21:00",
            "daily@+1:00",
            "daily@09:10",
        ] {
            assert!(parse_reports(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_time_zone("Mars/Olympus").unwrap_err().contains("IANA"));
        assert!(parse_time_zone("Asia/Tehran").is_ok(), "the database is compiled in");
    }

    #[test]
    fn a_daily_period_ends_at_the_last_scheduled_time() {
        let utc = zone("UTC");
        let period = daily("09:00").last_period(at("2026-03-10T12:00:00Z"), &utc).unwrap();
        assert_eq!(period, Period { start: at("2026-03-09T09:00:00Z"), end: at("2026-03-10T09:00:00Z") });
        // Before today's time, the period is yesterday's; exactly at it, today's has ended.
        let early = daily("09:00").last_period(at("2026-03-10T08:59:59Z"), &utc).unwrap();
        assert_eq!(early.end, at("2026-03-09T09:00:00Z"));
        assert_eq!(
            daily("09:00").last_period(at("2026-03-10T09:00:00Z"), &utc).unwrap().end,
            at("2026-03-10T09:00:00Z")
        );
        assert_eq!(daily("09:00").next_end(at("2026-03-10T09:00:00Z"), &utc), Some(at("2026-03-11T09:00:00Z")));
    }

    #[test]
    fn a_weekly_period_spans_seven_local_days_ending_on_its_weekday() {
        let schedule = parse_reports("weekly@mon 09:00").unwrap()[0];
        // 2026-03-12 is a Thursday.
        let period = schedule.last_period(at("2026-03-12T00:00:00Z"), &zone("UTC")).unwrap();
        assert_eq!(period, Period { start: at("2026-03-02T09:00:00Z"), end: at("2026-03-09T09:00:00Z") });
        assert_eq!(schedule.next_end(at("2026-03-12T00:00:00Z"), &zone("UTC")), Some(at("2026-03-16T09:00:00Z")));
    }

    #[test]
    fn local_time_follows_the_time_zone_and_its_half_hour_offset() {
        // Tehran is UTC+03:30 all year.
        let period = daily("09:00").last_period(at("2026-06-01T12:00:00Z"), &zone("Asia/Tehran")).unwrap();
        assert_eq!(period.end, at("2026-06-01T05:30:00Z"));
    }

    #[test]
    fn a_period_across_a_dst_change_is_23_or_25_hours() {
        let berlin = zone("Europe/Berlin");
        // Clocks go forward on 2026-03-29 (CET → CEST) and back on 2026-10-25.
        let spring = daily("09:00").last_period(at("2026-03-29T12:00:00Z"), &berlin).unwrap();
        assert_eq!(spring, Period { start: at("2026-03-28T08:00:00Z"), end: at("2026-03-29T07:00:00Z") });
        assert_eq!(spring.end.duration_since(spring.start).as_secs(), 23 * 3600);
        let autumn = daily("09:00").last_period(at("2026-10-25T12:00:00Z"), &berlin).unwrap();
        assert_eq!(autumn.end.duration_since(autumn.start).as_secs(), 25 * 3600);
        assert_eq!(autumn.end, at("2026-10-25T08:00:00Z"));
    }

    #[test]
    fn a_time_the_clocks_skip_runs_after_the_jump_and_a_repeated_one_at_its_first() {
        let berlin = zone("Europe/Berlin");
        // 02:30 does not exist on 2026-03-29: the report runs at 03:30 CEST (01:30 UTC).
        let skipped = daily("02:30").last_period(at("2026-03-29T12:00:00Z"), &berlin).unwrap();
        assert_eq!(skipped.end, at("2026-03-29T01:30:00Z"));
        assert_eq!(daily("02:30").next_end(at("2026-03-29T00:00:00Z"), &berlin), Some(at("2026-03-29T01:30:00Z")));
        // 02:30 happens twice on 2026-10-25: the first, still CEST (00:30 UTC).
        let repeated = daily("02:30").last_period(at("2026-10-25T12:00:00Z"), &berlin).unwrap();
        assert_eq!(repeated.end, at("2026-10-25T00:30:00Z"));
    }
}
