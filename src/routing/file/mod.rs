//! The routes file (`ROUTES_FILE`, TOML; see `routes.example.toml`): read, validated, and turned
//! into [`Routes`], with every problem reported where it is.
//!
//! Here: reading the file and validating its mute list, panels and rules. `spec` holds the serde
//! structs it is read into; `destination` validates its destinations (URL, thread, forum and tags,
//! reports); `tests` holds the tests, whose `routes` and `FILE` the router's tests use too.

mod destination;
mod spec;
#[cfg(test)]
pub(super) mod tests;

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use super::{PanelApiSpec, Routes, Rule};
use crate::destination::{Destination, Mentions};
use crate::event::{is_known_action, known_actions};
use crate::panel::Redacted;
use crate::render::edit_distance;
use crate::render::template::line_at;
use crate::secret::Secret;
use crate::secret::{inline_or_file, InlineOrFileError};
pub(super) use destination::shared_webhook;
use destination::{destination, report_kinds, shared_webhooks};
use spec::{Id, PanelSpec, RoutesFile, RuleSpec};

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

    /// Problems of the file's destinations that post to the same webhook and thread as
    /// `default` (the destination of `DISCORD_WEBHOOK_URL`), as [`Routes::load`] refuses two of
    /// its own.
    pub fn shared_with_default(&self, default: &Destination) -> Vec<String> {
        let file = self.destinations.iter();
        file.filter_map(|d| shared_webhook("DISCORD_WEBHOOK_URL", default, &format!("destinations.{}", d.name), d))
            .collect()
    }

    fn validate(file: RoutesFile, base: &Path, reserved: &[&str], problems: &mut Vec<String>) -> Self {
        let mut routes = Routes::default();
        for action in &file.mute {
            check_action(action, "mute", problems);
        }
        routes.mute = file.mute.into_iter().collect();
        for (label, mut spec) in file.panels {
            let at = format!("panels.{label}");
            if !is_panel_label(&label) {
                problems.push(format!("{at}: a panel label is 1 to 32 letters, digits, '_' or '-'"));
            }
            let api = panel_api(&mut spec, base, &at, problems);
            // A panel watched through its API only (its webhooks go elsewhere) needs no secret.
            let has_secret = spec.secret.is_some() || spec.secret_file.is_some();
            if has_secret || api.is_none() {
                let secret = one_of(spec.secret, spec.secret_file.as_deref(), base, &at, "secret", problems)
                    .and_then(|value| Secret::parse(value).map_err(|e| problems.push(format!("{at}.secret {e}"))).ok());
                routes.panels.extend(secret.map(|secret| (label.clone(), secret)));
            }
            routes.panel_apis.extend(api.map(|api| (label, api)));
        }
        for (name, mut spec) in file.destinations {
            if let Some(reports) = spec.reports.take() {
                routes.reports.insert(name.clone(), report_kinds(&name, &reports, problems));
            }
            if let Some(destination) = destination(&name, spec, base, reserved, problems) {
                routes.destinations.push(destination);
            }
        }
        shared_webhooks(&routes.destinations, problems);
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

/// The `api_*` keys of a panel, when it has `api_url`; the other `api_*` keys without it are a
/// problem. The values are checked later, as `PANEL_API_*` are.
fn panel_api(spec: &mut PanelSpec, base: &Path, at: &str, problems: &mut Vec<String>) -> Option<PanelApiSpec> {
    let optional = |inline: Option<String>, file: Option<&Path>, key: &str, problems: &mut Vec<String>| {
        if inline.is_none() && file.is_none() {
            return None;
        }
        one_of(inline, file, base, at, key, problems).map(Redacted::new)
    };
    let password = optional(spec.api_password.take(), spec.api_password_file.as_deref(), "api_password", problems);
    let key = optional(spec.api_key.take(), spec.api_key_file.as_deref(), "api_key", problems);
    let Some(url) = spec.api_url.take() else {
        let others = spec.api_username.is_some() || password.is_some() || key.is_some() || spec.api_family.is_some();
        if others || spec.api_insecure_tls.is_some() || spec.api_timeout.is_some() {
            problems.push(format!("{at}: api_* keys without api_url"));
        }
        return None;
    };
    Some(PanelApiSpec {
        url,
        username: spec.api_username.take(),
        password,
        key,
        family: spec.api_family.take(),
        insecure_tls: spec.api_insecure_tls,
        timeout: spec.api_timeout.take(),
    })
}

fn check_action(action: &str, at: &str, problems: &mut Vec<String>) {
    // The nearest known name, not the list of all 25: a problem is quoted in a message of 600
    // characters at most, and the list would push the next problems out of it.
    if !is_known_action(action) {
        let nearest = known_actions().min_by_key(|name| edit_distance(action, name)).unwrap_or_default();
        problems.push(format!("{at}: unknown action {action:?} (did you mean {nearest:?}?)"));
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

/// A TOML file's syntax error as one line: `line N: what is wrong`.
fn toml_problem(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim();
    match err.span() {
        Some(span) => format!("line {}: {message}", line_at(text, span.start)),
        None => message.to_owned(),
    }
}
