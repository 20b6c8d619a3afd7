//! A `[destinations.<name>]` block of the routes file, validated: its webhook URL (inline or from
//! a file) or the channel the relay makes its own webhook in, thread, username and avatar, its forum mode and tags, and the reports it receives.

use std::collections::BTreeMap;
use std::path::Path;

use super::spec::{DestinationSpec, TagIds};
use super::{is_panel_label, one_of};
use crate::destination::{Destination, Forum, Origin, Target};
use crate::discord::WebhookUrl;
use crate::routing::ReportKind;

/// A destination's `reports = [...]`: report names (daily, weekly), each once.
pub(super) fn report_kinds(name: &str, reports: &[String], problems: &mut Vec<String>) -> Vec<ReportKind> {
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

pub(super) fn destination(
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
    let target = target(&at, &spec, base, problems)?;
    let url = match &target {
        Some(Target::Webhook(url)) => Some(url),
        _ => None,
    };
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
    let has_thread = thread_id.is_some() || url.is_some_and(|url| url.thread_id().is_some());
    let forum = forum(&at, spec.forum, spec.tags, has_thread, problems);
    Some(Destination {
        name: name.to_owned(),
        target: target?,
        thread_id,
        username: spec.username,
        avatar_url: spec.avatar_url,
        forum,
    })
}

/// Where a destination posts: its webhook `url` (or `url_file`), or `channel_id`, where the relay
/// makes its own webhook. `None` when neither or both are given (a problem), and `Some(None)` when
/// the one given is unusable (a problem too).
fn target(at: &str, spec: &DestinationSpec, base: &Path, problems: &mut Vec<String>) -> Option<Option<Target>> {
    let Some(channel) = &spec.channel_id else {
        let url = one_of(spec.url.clone(), spec.url_file.as_deref(), base, at, "url", problems)?;
        let parsed =
            WebhookUrl::parse(&url).map_err(|e| problems.push(format!("{at}.url is not a usable webhook URL: {e}")));
        return Some(parsed.ok().map(Target::Webhook));
    };
    if spec.url.is_some() || spec.url_file.is_some() {
        problems.push(format!("{at}: give url (a webhook you made) or channel_id (the relay makes its own), not both"));
        return None;
    }
    let parsed = channel.snowflake();
    if parsed.is_none() {
        problems.push(format!("{at}.channel_id: {channel} is not a Discord id"));
    }
    Some(parsed.map(Target::Channel))
}

/// Whether two destinations post to the same webhook and thread. Each would pace itself alone
/// against the one rate limit Discord keeps for that webhook (429s for both), and in forum mode
/// keep posts of its own (a user would get two): refused, with a problem that names both (`a_at`,
/// `b_at`) and the webhook without its token.
pub(in crate::routing) fn shared_webhook(a_at: &str, a: &Destination, b_at: &str, b: &Destination) -> Option<String> {
    if let (Target::Channel(channel), Target::Channel(other)) = (&a.target, &b.target) {
        let same = channel == other && a.thread_id == b.thread_id;
        return same.then(|| {
            format!(
                "{a_at} and {b_at} post to the same channel {channel}: the relay keeps one webhook per channel, \
                 paced as one. Keep one destination and name it in the rules' `to`"
            )
        });
    }
    let (webhook, thread) = a.posts_to()?;
    if b.posts_to()? != (webhook, thread) {
        return None;
    }
    let Target::Webhook(url) = &a.target else { return None };
    let thread = thread.map(|id| format!(" (thread {id})")).unwrap_or_default();
    Some(format!(
        "{a_at} and {b_at} post to the same webhook {url}{thread}: Discord rate-limits a webhook as one, so two \
         destinations on it would each pace alone and get 429s, and forum posts would be made twice. Keep one \
         destination and name it in the rules' `to` (a rule can name several destinations, and several rules one)"
    ))
}

/// Problems of the routes file's destinations that post to the same webhook and thread.
pub(super) fn shared_webhooks(destinations: &[Destination], problems: &mut Vec<String>) {
    for (i, a) in destinations.iter().enumerate() {
        for b in &destinations[i + 1..] {
            let (a_at, b_at) = (format!("destinations.{}", a.name), format!("destinations.{}", b.name));
            problems.extend(shared_webhook(&a_at, a, &b_at, b));
        }
    }
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
