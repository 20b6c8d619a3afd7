//! The routes file (`ROUTES_FILE`, TOML; see `routes.example.toml`): read, validated, and turned
//! into [`Routes`], with every problem reported where it is.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Routes, Rule};
use crate::config::{inline_or_file, toml_problem, InlineOrFileError};
use crate::destination::{Destination, Forum, Mentions, Origin, Target};
use crate::discord::WebhookUrl;
use crate::event::KNOWN_ACTIONS;
use crate::reports::ReportKind;
use crate::secret::Secret;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutesFile {
    #[serde(default)]
    mute: Vec<String>,
    #[serde(default)]
    panels: BTreeMap<String, PanelSpec>,
    #[serde(default)]
    destinations: BTreeMap<String, DestinationSpec>,
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PanelSpec {
    #[serde(default, deserialize_with = "quoted_secret")]
    secret: Option<String>,
    secret_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationSpec {
    url: Option<String>,
    url_file: Option<PathBuf>,
    thread_id: Option<Id>,
    username: Option<String>,
    avatar_url: Option<String>,
    // Forum mode (issue 12): the webhook is a forum channel's; tags by action (or `digest`).
    #[serde(default)]
    forum: bool,
    tags: Option<BTreeMap<String, TagIds>>,
    // Scheduled reports (REPORTS): which reports this destination gets.
    reports: Option<Vec<String>>,
}

/// A forum tag id, or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum TagIds {
    One(Id),
    Many(Vec<Id>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    actions: Option<Vec<String>>,
    panels: Option<Vec<String>>,
    admins: Option<Vec<String>>,
    min_used_percent: Option<f64>,
    max_days_left: Option<i64>,
    to: Vec<String>,
    #[serde(default)]
    mention_roles: Vec<Id>,
    #[serde(default)]
    mention_users: Vec<Id>,
}

/// A panel secret must be a quoted string. Anything else is refused without echoing the value,
/// which would otherwise land in the error message and the log: `secret = 12345678` is a secret too.
fn quoted_secret<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match toml::Value::deserialize(deserializer)? {
        toml::Value::String(secret) => Ok(Some(secret)),
        other => Err(serde::de::Error::custom(format!(
            "a secret is a string in quotes, not a {} (its value is not shown)",
            other.type_str()
        ))),
    }
}

/// A Discord id (snowflake), written as a number or, safer for 19-digit ids, as a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Number(i64),
    Text(String),
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Number(n) => write!(f, "{n}"),
            Id::Text(s) => write!(f, "{s:?}"),
        }
    }
}

impl Id {
    /// A snowflake: a positive 64-bit number of at least 15 digits (ids from 2015 on).
    fn snowflake(&self) -> Option<u64> {
        let n = match self {
            Id::Number(n) => u64::try_from(*n).ok()?,
            Id::Text(s) => s.trim().parse().ok()?,
        };
        (100_000_000_000_000..1 << 63).contains(&n).then_some(n)
    }
}

/// Whether `label` can name a panel (and its path `/webhook/<label>`).
pub fn is_panel_label(label: &str) -> bool {
    (1..=32).contains(&label.len()) && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Routes {
    /// Reads and validates a routes file. `reserved` names destinations defined elsewhere
    /// (`default`, when `DISCORD_WEBHOOK_URL` is set), which rules may use too. Every problem is
    /// reported, each with where it is.
    pub fn load(path: &Path, reserved: &[&str]) -> Result<Self, Vec<String>> {
        let text =
            std::fs::read_to_string(path).map_err(|err| vec![format!("cannot read {}: {err}", path.display())])?;
        let file: RoutesFile = toml::from_str(&text).map_err(|err| vec![toml_problem(&text, &err)])?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let routes = Self::validate(file, base, reserved, &mut problems);
        if problems.is_empty() {
            Ok(routes)
        } else {
            Err(problems)
        }
    }

    fn validate(file: RoutesFile, base: &Path, reserved: &[&str], problems: &mut Vec<String>) -> Self {
        let mut routes = Routes::default();
        for action in &file.mute {
            check_action(action, "mute", problems);
        }
        routes.mute = file.mute.into_iter().collect();
        for (label, spec) in file.panels {
            let at = format!("panels.{label}");
            if !is_panel_label(&label) {
                problems.push(format!("{at}: a panel label is 1 to 32 letters, digits, '_' or '-'"));
            }
            let secret = one_of(spec.secret, spec.secret_file.as_deref(), base, &at, "secret", problems)
                .and_then(|value| Secret::parse(value).map_err(|e| problems.push(format!("{at}.secret {e}"))).ok());
            routes.panels.extend(secret.map(|secret| (label, secret)));
        }
        for (name, mut spec) in file.destinations {
            if let Some(reports) = spec.reports.take() {
                routes.reports.insert(name.clone(), report_kinds(&name, &reports, problems));
            }
            if let Some(destination) = destination(&name, spec, base, reserved, problems) {
                routes.destinations.push(destination);
            }
        }
        let known: Vec<&str> =
            reserved.iter().copied().chain(routes.destinations.iter().map(|d| d.name.as_str())).collect();
        let panels: Vec<&str> = routes.panels.iter().map(|(label, _)| label.as_str()).collect();
        for (i, spec) in file.rules.into_iter().enumerate() {
            routes.rules.push(rule(i, spec, &known, problems));
        }
        if routes.rules.is_empty() {
            problems.push("there are no [[rules]], so nothing would be delivered".into());
        }
        for rule in &routes.rules {
            for panel in rule.panels.iter().flatten().filter(|p| !panels.contains(&p.as_str())) {
                log::debug!("routes: rule names panel {panel:?}, which has no secret in the routes file");
            }
        }
        routes
    }
}

/// A destination's `reports = [...]`: report names (daily, weekly), each once.
fn report_kinds(name: &str, reports: &[String], problems: &mut Vec<String>) -> Vec<ReportKind> {
    let mut kinds = Vec::new();
    for report in reports {
        match ReportKind::parse(report) {
            Ok(kind) if kinds.contains(&kind) => problems.push(format!("destinations.{name}.reports: {kind} twice")),
            Ok(kind) => kinds.push(kind),
            Err(err) => problems.push(format!("destinations.{name}.reports: {err}")),
        }
    }
    kinds
}

fn check_action(action: &str, at: &str, problems: &mut Vec<String>) {
    if !KNOWN_ACTIONS.contains(&action) {
        problems.push(format!("{at}: unknown action {action:?} (known: {})", KNOWN_ACTIONS.join(", ")));
    }
}

/// A value given inline or in a file (trailing newline removed), but not both.
fn one_of(
    inline: Option<String>,
    file: Option<&Path>,
    base: &Path,
    at: &str,
    key: &str,
    problems: &mut Vec<String>,
) -> Option<String> {
    let problem = match inline_or_file(inline, file.map(|file| base.join(file)).as_deref()) {
        Ok(Some(value)) => return Some(value),
        Ok(None) => format!("{at}: {key} (or {key}_file) is required"),
        Err(InlineOrFileError::Both) => format!("{at}: set {key} or {key}_file, not both"),
        Err(InlineOrFileError::Unreadable(err)) => {
            format!("{at}.{key}_file: cannot read {}: {err}", file.unwrap_or(Path::new("")).display())
        }
    };
    problems.push(problem);
    None
}

fn destination(
    name: &str,
    spec: DestinationSpec,
    base: &Path,
    reserved: &[&str],
    problems: &mut Vec<String>,
) -> Option<Destination> {
    let at = format!("destinations.{name}");
    if reserved.contains(&name) || Origin::of(name) == Origin::Owner || !is_panel_label(name) {
        problems.push(format!(
            "{at}: choose another name (1 to 32 letters, digits, '_' or '-'; not {})",
            reserved.join(", ")
        ));
    }
    let url = one_of(spec.url, spec.url_file.as_deref(), base, &at, "url", problems)?;
    let url =
        WebhookUrl::parse(&url).map_err(|e| problems.push(format!("{at}.url is not a usable webhook URL: {e}"))).ok();
    let thread_id = spec.thread_id.as_ref().and_then(|id| {
        let parsed = id.snowflake();
        if parsed.is_none() {
            problems.push(format!("{at}.thread_id: {id} is not a Discord id"));
        }
        parsed
    });
    if let Some(username) = &spec.username {
        let lower = username.to_lowercase();
        if !(1..=80).contains(&username.chars().count()) || lower.contains("discord") || lower.contains("clyde") {
            problems.push(format!("{at}.username: 1 to 80 characters, without \"discord\" or \"clyde\""));
        }
    }
    if let Some(avatar) = &spec.avatar_url {
        if url::Url::parse(avatar).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
            problems.push(format!("{at}.avatar_url: {avatar:?} is not an http(s) URL"));
        }
    }
    // A thread_id in the URL's query counts: execute_url would send every message there.
    let has_thread = thread_id.is_some() || url.as_ref().is_some_and(|url| url.thread_id().is_some());
    let forum = forum(&at, spec.forum, spec.tags, has_thread, problems);
    Some(Destination {
        name: name.to_owned(),
        target: Target::Webhook(url?),
        thread_id,
        username: spec.username,
        avatar_url: spec.avatar_url,
        forum,
    })
}

/// Forum mode of a destination: `forum = true`, with optional `tags = { action = id or [ids] }`.
fn forum(
    at: &str,
    enabled: bool,
    tags: Option<BTreeMap<String, TagIds>>,
    has_thread: bool,
    problems: &mut Vec<String>,
) -> Option<Forum> {
    if !enabled {
        if tags.is_some() {
            problems.push(format!("{at}.tags: tags are for forum destinations; set forum = true"));
        }
        return None;
    }
    if has_thread {
        problems.push(format!("{at}: a forum destination posts into a thread per user; remove thread_id"));
    }
    let mut forum = Forum::default();
    for (key, ids) in tags.unwrap_or_default() {
        let ids = match ids {
            TagIds::One(id) => vec![id],
            TagIds::Many(ids) => ids,
        };
        let parsed: Vec<u64> = ids
            .iter()
            .filter_map(|id| {
                let parsed = id.snowflake();
                if parsed.is_none() {
                    problems.push(format!("{at}.tags.{key}: {id} is not a Discord id"));
                }
                parsed
            })
            .collect();
        if let Err(problem) = Forum::check_tags(&key, &parsed) {
            problems.push(format!("{at}.tags: {problem}"));
        }
        forum.tags.insert(key, crate::destination::distinct_tags(parsed));
    }
    Some(forum)
}

fn rule(i: usize, spec: RuleSpec, known: &[&str], problems: &mut Vec<String>) -> Rule {
    let at = format!("rules[{i}]");
    for action in spec.actions.iter().flatten() {
        check_action(action, &format!("{at}.actions"), problems);
    }
    if spec.to.is_empty() {
        problems.push(format!("{at}.to: name at least one destination"));
    }
    for name in spec.to.iter().filter(|name| !known.contains(&name.as_str())) {
        problems.push(format!("{at}.to: unknown destination {name:?} (known: {})", known.join(", ")));
    }
    let ids = |list: &[Id], key: &str, problems: &mut Vec<String>| -> BTreeSet<u64> {
        list.iter()
            .filter_map(|id| {
                let parsed = id.snowflake();
                if parsed.is_none() {
                    problems.push(format!("{at}.{key}: {id} is not a Discord id"));
                }
                parsed
            })
            .collect()
    };
    let mentions = Mentions {
        roles: ids(&spec.mention_roles, "mention_roles", problems),
        users: ids(&spec.mention_users, "mention_users", problems),
    };
    let set = |list: Option<Vec<String>>| list.map(|items| items.into_iter().collect::<HashSet<_>>());
    Rule {
        actions: set(spec.actions),
        panels: set(spec.panels),
        admins: set(spec.admins),
        min_used_percent: spec.min_used_percent,
        max_days_left: spec.max_days_left,
        to: spec.to,
        mentions,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::destination::DEFAULT_DESTINATION;

    pub fn routes(text: &str) -> Result<Routes, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::write(dir.path().join("eu.secret"), "from-a-file\n").unwrap();
        Routes::load(&path, &[DEFAULT_DESTINATION])
    }

    pub const FILE: &str = r#"
mute = ["user_updated"]

[panels.eu1]
secret_file = "eu.secret"

[destinations.alerts]
url = "https://discord.com/api/webhooks/1/aaa"
thread_id = "223456789012345678"
username = "Panel alerts"

[[rules]]
to = ["default"]

[[rules]]
actions = ["user_limited", "reached_usage_percent"]
min_used_percent = 90
to = ["alerts"]
mention_roles = ["123456789012345678"]

[[rules]]
actions = ["user_limited"]
to = ["alerts"]
mention_users = [323456789012345678]
"#;

    #[test]
    fn reads_a_routes_file() {
        let routes = routes(FILE).unwrap();
        assert_eq!(routes.panels[0].0, "eu1");
        assert_eq!(routes.panels[0].1.expose(), "from-a-file");
        assert_eq!(routes.destinations[0].thread_id, Some(223456789012345678));
        assert_eq!(routes.destinations[0].username.as_deref(), Some("Panel alerts"));
        assert_eq!(routes.rules.len(), 3);
    }

    #[test]
    fn reads_a_forum_destination_and_its_tags() {
        let text = r#"
[destinations.support]
url = "https://discord.com/api/webhooks/1/aaa"
forum = true
tags = { user_expired = "123456789012345678", user_limited = ["223456789012345678", 323456789012345678] }

[[rules]]
to = ["support"]
"#;
        let forum = routes(text).unwrap().destinations[0].forum.clone().unwrap();
        assert_eq!(forum.tags_for("user_expired"), [123456789012345678]);
        assert_eq!(forum.tags_for("user_limited"), [223456789012345678, 323456789012345678]);

        let broken = r#"
[destinations.support]
url = "https://discord.com/api/webhooks/1/aaa"
thread_id = "223456789012345678"
forum = true
tags = { user_expird = "123456789012345678", user_expired = "12" }

[destinations.plain]
url = "https://discord.com/api/webhooks/2/bbb"
tags = { user_expired = "123456789012345678" }

[[rules]]
to = ["support"]
"#;
        let problems = routes(broken).unwrap_err();
        let expected = [
            "destinations.plain.tags: tags are for forum destinations",
            "destinations.support: a forum destination posts into a thread per user; remove thread_id",
            "destinations.support.tags: \"user_expird\" is neither an action",
            "destinations.support.tags.user_expired: \"12\" is not a Discord id",
        ];
        for expected in expected {
            assert!(problems.iter().any(|p| p.starts_with(expected)), "{expected} not in {problems:#?}");
        }

        // A thread in the URL's query is a thread_id too: every user's post would be that thread.
        let in_url = r#"
[destinations.support]
url = "https://discord.com/api/webhooks/1/aaa?thread_id=223456789012345678"
forum = true

[[rules]]
to = ["support"]
"#;
        let problems = routes(in_url).unwrap_err();
        assert!(problems.iter().any(|p| p.ends_with("remove thread_id")), "{problems:#?}");
    }

    #[test]
    fn reports_every_problem_with_where_it_is() {
        let text = r#"
mute = ["user_explode"]

[destinations.alerts]
url = "https://discord.com/webhooks/1/aaa"
thread_id = "12"

[destinations.default]
url = "https://discord.com/api/webhooks/2/bbb"

[[rules]]
actions = ["user_expird"]
to = ["alrets"]
mention_roles = [5]
"#;
        let problems = routes(text).unwrap_err();
        let expected = [
            "mute: unknown action \"user_explode\"",
            "destinations.alerts.url is not a usable webhook URL: must have a path",
            "destinations.alerts.thread_id: \"12\" is not a Discord id",
            "destinations.default: choose another name",
            "rules[0].actions: unknown action \"user_expird\"",
            "rules[0].to: unknown destination \"alrets\"",
            "rules[0].mention_roles: 5 is not a Discord id",
        ];
        for expected in expected {
            assert!(problems.iter().any(|p| p.starts_with(expected)), "{expected} not in {problems:#?}");
        }
        let problems = routes("[[rules]]\nto = [\"default\"]\nwhen = 1\n").unwrap_err();
        assert!(problems[0].starts_with("line 3:"), "{problems:?}");
        let problems = routes("mute = []\n").unwrap_err();
        assert!(problems[0].contains("no [[rules]]"), "{problems:?}");
    }

    #[test]
    fn a_secret_that_is_no_string_is_refused_without_its_value() {
        for value in ["31415926535", "3.14159265", "true", "[\"x\"]"] {
            let problems =
                routes(&format!("[panels.eu]\nsecret = {value}\n\n[[rules]]\nto = [\"default\"]\n")).unwrap_err();
            let shown = problems.join("\n");
            assert!(shown.starts_with("line 2:") && shown.contains("string in quotes"), "{shown}");
            assert!(!shown.contains("31415") && !shown.contains("14159") && !shown.contains("true"), "{shown}");
        }
    }
}
