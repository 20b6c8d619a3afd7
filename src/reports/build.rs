//! From the outbox's tally of a period to a report: one [`ReportContext`] per panel (the first
//! carrying the relay's health), rendered into rows for a destination.

use std::collections::BTreeSet;

use super::{Period, NAMES_SHOWN};
use crate::render::listed_chars;

/// Characters of escaped usernames a list may take: a field holds 1,024, and "and 12,345 more"
/// (in any language, with the isolates around values in Persian) must fit after them.
const NAMES_CHARS: usize = 900;
use crate::destination::Mentions;
use crate::outbox::{HealthKind, NewRow, Outbox, OutboxError, PastOutage, PeriodTally};
use crate::render::{HealthCounts, Renderer, ReportContext, UserList, REPORT_ACTION, REPORT_USERNAME_SUFFIX};

/// A report of one period: its parts, one per panel that sent anything (one part when none did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub parts: Vec<ReportContext>,
}

impl Report {
    /// Reads the tally of `period` and builds the report named `report` (daily, weekly, custom).
    pub async fn read(outbox: &Outbox, report: &str, period: Period) -> Result<Self, OutboxError> {
        let (from, to) = (period.start.as_second(), period.end.as_second());
        let tally = outbox.period_tally(from, to).await?;
        let outages = outbox.outages(from.saturating_mul(1000), to.saturating_mul(1000)).await?;
        Ok(build_report_with(report, period, &tally, &outages))
    }

    /// The report, saying in each part that it counts from `since` (unix seconds, the end of the
    /// last report) when its period is longer than its schedule's; `None` leaves it as it is.
    pub fn since(mut self, since: Option<i64>) -> Self {
        if since.is_some() {
            self.parts.iter_mut().for_each(|part| part.since = since);
        }
        self
    }

    /// The report's rows for `destination`, rendered with `renderer`, stored as received at
    /// `now_ms`.
    pub fn rows(&self, destination: &str, renderer: &Renderer, now_ms: i64) -> Vec<NewRow> {
        self.parts
            .iter()
            .map(|context| NewRow {
                destination: destination.to_owned(),
                received_at_ms: now_ms,
                action: REPORT_ACTION.to_owned(),
                username: format!("{}{REPORT_USERNAME_SUFFIX}", context.report),
                panel: context.panel.clone(),
                part: serde_json::to_string(&renderer.render_report(context)).expect("a rendered part serialises"),
                fingerprint: None,
                may_be_resend: false,
                mentions: Mentions::default(),
            })
            .collect()
    }
}

/// Builds the report named `report` for `period` from its `tally`: panels in label order (events
/// without a panel label first), each with its counts, net change and user lists; the relay's
/// health on the first.
pub fn build_report(report: &str, period: Period, tally: &PeriodTally) -> Report {
    build_report_with(report, period, tally, &[])
}

/// [`build_report`] with the node `outages` that overlap the period: each panel's part gets its
/// nodes section, and a panel with outages but no events gets a part of its own.
pub fn build_report_with(report: &str, period: Period, tally: &PeriodTally, outages: &[PastOutage]) -> Report {
    let (from, to) = (period.start.as_second(), period.end.as_second());
    let events = tally.events.keys().map(|(panel, _)| panel.as_str());
    let panels: BTreeSet<&str> = events.chain(super::nodes::panels(outages)).collect();
    let panels: Vec<&str> = if panels.is_empty() { vec![""] } else { panels.into_iter().collect() };
    let parts = panels.len();
    let mut contexts: Vec<ReportContext> = panels
        .iter()
        .enumerate()
        .map(|(i, panel)| {
            let label = (!panel.is_empty()).then(|| (*panel).to_owned());
            let mut context = ReportContext::empty(report, from, to, label);
            for ((_, action), count) in tally.events.iter().filter(|((p, _), _)| p == panel) {
                context.counts.insert(action.clone(), *count);
            }
            let count = |action: &str| context.counts.get(action).copied().unwrap_or(0);
            context.total = context.counts.values().copied().fold(0_i64, i64::saturating_add);
            context.net = count("user_created").saturating_sub(count("user_deleted"));
            context.expired = listed(tally, panel, "user_expired", count("user_expired"));
            context.limited = listed(tally, panel, "user_limited", count("user_limited"));
            (context.part, context.parts, context.health) = (i + 1, parts, None);
            let (from_ms, to_ms) = (from.saturating_mul(1000), to.saturating_mul(1000));
            (context.nodes, context.nodes_more) = super::nodes::node_outages(outages, panel, from_ms, to_ms);
            context
        })
        .collect();
    contexts[0].health = Some(health(tally));
    Report { parts: contexts }
}

/// The first users of `action` on `panel`: at most [`NAMES_SHOWN`], and only as many as fit
/// [`NAMES_CHARS`] once escaped, so that "and K more" still fits in the field after them.
fn listed(tally: &PeriodTally, panel: &str, action: &str, total: i64) -> UserList {
    let kept = tally.names.get(&(panel.to_owned(), action.to_owned())).map(Vec::as_slice).unwrap_or_default();
    let mut used = 0;
    let names: Vec<String> = kept
        .iter()
        .take(NAMES_SHOWN)
        .take_while(|name| {
            used += listed_chars(name) + 4;
            used <= NAMES_CHARS
        })
        .cloned()
        .collect();
    // "and K more" counts users, not events: one user expired twice is one.
    let users = tally.users.get(&(panel.to_owned(), action.to_owned())).copied().unwrap_or(total);
    let more = users.saturating_sub(names.len() as i64).max(0);
    UserList { total, names, more }
}

fn health(tally: &PeriodTally) -> HealthCounts {
    let count = |kind: HealthKind| tally.health.get(kind.name()).copied().unwrap_or(0);
    HealthCounts {
        delivered: count(HealthKind::Delivered),
        retried: count(HealthKind::Retried),
        rate_limited: count(HealthKind::RateLimited),
        dead: count(HealthKind::Dead),
        paused: count(HealthKind::Paused),
    }
}
