//! `REPORTS` and `REPORTS_TZ`: the scheduled reports, checked against what the routes file's
//! destinations ask for.

use super::{invalid, ConfigError, Env};
use crate::reports::{parse_reports, parse_time_zone, ReportSettings};
use crate::routing::Routes;

/// `REPORTS` and `REPORTS_TZ`; every report a routes-file destination asks for must be scheduled.
pub(super) fn report_settings(env: &Env, routes: Option<&Routes>) -> Result<ReportSettings, ConfigError> {
    let schedules = env.parse_or("REPORTS", Vec::new(), parse_reports)?;
    let time_zone = env.parse_or("REPORTS_TZ", jiff::tz::TimeZone::UTC, parse_time_zone)?;
    for (name, kinds) in routes.iter().flat_map(|routes| routes.reports.iter()) {
        if let Some(kind) = kinds.iter().find(|kind| !schedules.iter().any(|s| s.kind == **kind)) {
            return Err(invalid(
                "REPORTS",
                format!("has no {kind} report, which destination {name:?} of ROUTES_FILE asks for (reports = [...])"),
            ));
        }
    }
    Ok(ReportSettings { schedules, time_zone, ..ReportSettings::default() })
}
