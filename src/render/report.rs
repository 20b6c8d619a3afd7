//! Reports through a template: `report.toml` (built in per language, overridable in
//! `TEMPLATES_DIR`) renders one embed per panel of a scheduled report from a [`ReportContext`].
//! The counts are numbers and the user lists are bounded before they reach the template, and the
//! embed is clamped like every other, so a report fits Discord's limits whatever the volume.

use std::collections::BTreeMap;

use minijinja::Value;
use time::OffsetDateTime;

use super::filters::{escape_markdown, is_blank, strip_invisible};
use super::{limits, minimal_part, Lang, Part, Renderer};
use crate::event::KNOWN_ACTIONS;

/// The report template's name (`report.toml`).
pub const REPORT_TEMPLATE: &str = "report";

/// The action of a report's rows in the outbox: not a name a panel can send (an action is letters,
/// digits, `_` and `-`), so a panel event named `report` is an event like any other and never
/// shares a report's digesting rules or forum post.
pub const REPORT_ACTION: &str = ":report";

/// What follows the report's name (`daily`) in the username of its rows (`daily report`), which
/// keys its forum post.
pub const REPORT_USERNAME_SUFFIX: &str = " report";

/// The users of one listed action (expired, limited) in a report: the first few by name, and how
/// many more there were. At most `reports::NAMES_SHOWN` names, and only as many as fit 900
/// characters, so the count of the rest still fits the field.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UserList {
    /// Events of this action in the period.
    pub total: i64,
    /// The first users, in the order received, each once.
    pub names: Vec<String>,
    /// `total` less the names shown.
    pub more: i64,
}

/// The relay's own health over the period, for all destinations.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HealthCounts {
    /// Messages Discord accepted.
    pub delivered: i64,
    /// Failed attempts retried later (5xx, timeouts, connection errors).
    pub retried: i64,
    /// 429 answers (and bans).
    pub rate_limited: i64,
    /// Rows that became dead letters.
    pub dead: i64,
    /// Times a destination was paused (webhook gone).
    pub paused: i64,
}

/// One node that was down during a report's period (node watch), for the report's nodes section.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NodeOutages {
    /// The node's name (the panel's text: escaped like a username).
    pub name: String,
    /// Outages during the period (reported ones: a `node_down` was sent).
    pub outages: i64,
    /// Seconds down within the period.
    pub down: i64,
    /// Still down at the period's end: counted up to it.
    pub open: bool,
}

/// What the report template renders: one panel's part of a report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportContext {
    /// `daily`, `weekly`, or `custom` (a period given to the `report` command).
    pub report: String,
    /// The period: from (included) and to (excluded), unix seconds.
    pub from: i64,
    pub to: i64,
    /// When the last report ended (unix seconds), if this one covers more than its schedule's
    /// period (the relay was down, or reports were off, at report times); else none. Usually
    /// `from`; earlier when the report goes back only as far as the tally is kept.
    pub since: Option<i64>,
    /// The panel's label; none for events without one.
    pub panel: Option<String>,
    /// This embed's place among the report's embeds (1-based), and how many there are.
    pub part: usize,
    pub parts: usize,
    /// Events received from this panel in the period.
    pub total: i64,
    /// Every known action (and `other`) → events, 0 where none.
    pub counts: BTreeMap<String, i64>,
    /// Users created less users deleted.
    pub net: i64,
    pub expired: UserList,
    pub limited: UserList,
    /// The relay's health: on the first part only (none on the others).
    pub health: Option<HealthCounts>,
    /// The nodes of this panel down during the period, the longest first (at most
    /// `reports::NODES_SHOWN`); empty when none was (the section is left out).
    pub nodes: Vec<NodeOutages>,
    /// Nodes down during the period that are not listed.
    pub nodes_more: i64,
}

impl ReportContext {
    /// An empty report for `panel`: every count zero.
    pub fn empty(report: &str, from: i64, to: i64, panel: Option<String>) -> Self {
        Self {
            report: report.to_owned(),
            from,
            to,
            since: None,
            panel,
            part: 1,
            parts: 1,
            total: 0,
            counts: KNOWN_ACTIONS.iter().chain(&["other"]).map(|action| ((*action).to_owned(), 0)).collect(),
            net: 0,
            expired: UserList::default(),
            limited: UserList::default(),
            health: Some(HealthCounts::default()),
            nodes: Vec::new(),
            nodes_more: 0,
        }
    }
}

impl Renderer {
    /// Renders one part of a report with the report template in use, else the built-in one; if
    /// both fail, a minimal embed that says so.
    pub fn render_report(&self, report: &ReportContext) -> Part {
        let report = &self.shown_lists(report);
        let at = OffsetDateTime::from_unix_timestamp(report.to).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        self.try_render_report(report).unwrap_or_else(|problem| {
            self.count_fallback();
            self.report(&problem, REPORT_TEMPLATE);
            let builtin = &self.builtin[REPORT_TEMPLATE];
            self.render_compiled(builtin, &Value::from_serialize(report), at).unwrap_or_else(|problem| {
                self.report(&problem, REPORT_TEMPLATE);
                minimal_part(REPORT_TEMPLATE, &format!("{} · {} events", report.report, report.total), at)
            })
        })
    }

    /// Renders one part of a report with exactly the report template in use. For `check` and
    /// previews.
    pub fn try_render_report(&self, report: &ReportContext) -> Result<Part, super::Problem> {
        let at = OffsetDateTime::from_unix_timestamp(report.to).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let report = self.shown_lists(report);
        self.render_compiled(&self.active[REPORT_TEMPLATE], &Value::from_serialize(&report), at)
    }

    /// `report` with every listed username as the list shows it ([`listed_name`]).
    fn shown_lists(&self, report: &ReportContext) -> ReportContext {
        let mut report = report.clone();
        for list in [&mut report.expired, &mut report.limited] {
            list.names = list.names.iter().map(|name| listed_name(name, self.lang)).collect();
        }
        for node in &mut report.nodes {
            node.name = listed_name(&node.name, self.lang);
        }
        report
    }
}

/// A username as a report's list shows it: one line (line breaks and other control characters
/// are spaces, runs of spaces one), without hidden characters, and never empty: a name that shows
/// nothing is "(no username)" in the report's language, so a list never has an empty entry.
/// Blanks ([`is_blank`]: the Braille blank U+2800 among them) count as spaces here, so a name
/// shows nothing exactly when a forum title would ([`super::filters::shows_nothing`]).
pub fn listed_name(name: &str, lang: Lang) -> String {
    let visible: String = strip_invisible(name).into_iter().map(|c| if is_blank(c) { ' ' } else { c }).collect();
    let line = visible.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        no_username(lang).to_owned()
    } else {
        line
    }
}

/// The characters `name` takes in a report's list once shown and escaped, in any language.
pub fn listed_chars(name: &str) -> usize {
    Lang::ALL.iter().map(|lang| limits::chars(&escape_markdown(&listed_name(name, *lang)))).max().unwrap_or(0)
}

/// What a report lists for a user whose name shows nothing.
fn no_username(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "(no username)",
        Lang::Ru => "(без имени)",
        Lang::Fa => "(بدون نام کاربری)",
        Lang::Zh => "（无用户名）",
    }
}

/// Sample reports for `check` and `render --report`: a day of two panels with a few users listed,
/// an empty day, and 35 days after a long downtime, of 10,000 events with long, multi-byte names
/// and many more not shown.
pub fn samples(report: &str, to: i64) -> Vec<Vec<ReportContext>> {
    let from = to - if report == "weekly" { 7 * 86_400 } else { 86_400 };
    let mut eu = ReportContext::empty(report, from, to, Some("eu-1".into()));
    for (action, n) in [
        ("user_created", 14),
        ("user_deleted", 3),
        ("user_expired", 5),
        ("user_limited", 2),
        ("user_enabled", 4),
        ("user_disabled", 1),
        ("data_usage_reset", 9),
        ("reached_usage_percent", 11),
        ("reached_days_left", 6),
    ] {
        eu.counts.insert(action.into(), n);
    }
    eu.total = eu.counts.values().sum();
    eu.net = 11;
    eu.expired = UserList {
        total: 5,
        names: ["alice", "bob_the_builder", "carol", "dave", "erin"].map(String::from).into(),
        more: 0,
    };
    eu.limited = UserList { total: 2, names: vec!["frank".into(), "grace".into()], more: 0 };
    eu.health = Some(HealthCounts { delivered: 48, retried: 2, rate_limited: 1, dead: 0, paused: 0 });
    eu.nodes = vec![
        NodeOutages { name: "de-fra-1".into(), outages: 2, down: 5_460, open: true },
        NodeOutages { name: "nl-ams-2".into(), outages: 1, down: 420, open: false },
    ];
    let mut us = ReportContext::empty(report, from, to, Some("us-2".into()));
    us.counts.insert("user_created".into(), 2);
    us.counts.insert("subscription_revoked".into(), 1);
    (us.total, us.net, us.health, us.part, us.parts, eu.parts) = (3, 2, None, 2, 2, 2);

    // After downtime longer than the tally is kept: the longest description a report has.
    let kept = to - 35 * 86_400;
    let mut busy = ReportContext::empty(report, kept, to, Some("کاربران-ü".repeat(3)));
    busy.since = Some(kept - 400 * 86_400);
    let per_action = 10_000 / i64::try_from(KNOWN_ACTIONS.len()).unwrap_or(1);
    for action in KNOWN_ACTIONS {
        busy.counts.insert((*action).into(), per_action);
    }
    busy.total = busy.counts.values().sum();
    busy.net = 0;
    let long = |i: usize| format!("{}_{i}*_@everyone", "کاربر_ü汉字".repeat(4));
    // As many as the report's builder lists: as fit 900 characters.
    let names: Vec<String> = (0..12).map(long).collect();
    busy.expired = UserList { total: per_action, more: per_action - names.len() as i64, names: names.clone() };
    busy.limited = UserList { total: per_action, more: per_action - names.len() as i64, names };
    busy.health =
        Some(HealthCounts { delivered: 9_999_999, retried: 123_456, rate_limited: 7_890, dead: 12, paused: 3 });
    // As many nodes as the report's builder lists, with names as long as a panel's are cut to.
    let node = |i: usize| NodeOutages {
        name: format!("{}_{i}*_@here", "نود_ü汉".repeat(15)),
        outages: 12_345,
        down: 35 * 86_400 - 1,
        open: true,
    };
    busy.nodes = (0..5).map(node).collect();
    busy.nodes_more = 995;
    vec![vec![eu, us], vec![ReportContext::empty(report, from, to, None)], vec![busy]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_name_is_one_line_and_never_empty() {
        assert_eq!(listed_name("ali\nreza\r\n\tx", Lang::En), "ali reza x");
        // U+2800 (Braille Pattern Blank) is the usual "invisible name" on Discord: drawn as nothing.
        for blank in ["", "  ", "\u{200B}\u{2060}", "\u{3164}", "\n", "\u{2800}", "\u{2800} \u{2800}"] {
            assert_eq!(listed_name(blank, Lang::En), "(no username)", "{blank:?}");
            assert_eq!(listed_name(blank, Lang::Ru), "(без имени)", "{blank:?}");
        }
        assert_eq!(listed_name("h5b5cf44_expired", Lang::Fa), "h5b5cf44_expired");
        assert!(listed_chars("") >= limits::chars("(no username)"));
    }
}
