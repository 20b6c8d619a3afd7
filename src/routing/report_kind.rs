//! The kinds of scheduled report. Routing says which destinations get which kind, so the kind
//! lives here, below the report producer (`reports`) that makes them.

use std::fmt;

/// What a report covers: a day or a week, each ending at its scheduled time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReportKind {
    Daily,
    Weekly,
}

impl ReportKind {
    pub const ALL: [ReportKind; 2] = [ReportKind::Daily, ReportKind::Weekly];

    /// The name used in `REPORTS`, the routes file, the `report` command and templates.
    pub fn name(self) -> &'static str {
        match self {
            ReportKind::Daily => "daily",
            ReportKind::Weekly => "weekly",
        }
    }

    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == name.trim())
            .ok_or_else(|| format!("{:?} is not a report (daily or weekly)", name.trim()))
    }

    /// How many local calendar days one period spans.
    pub fn days(self) -> i64 {
        match self {
            ReportKind::Daily => 1,
            ReportKind::Weekly => 7,
        }
    }
}

impl fmt::Display for ReportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
