//! Forum mode: every message goes into a post (a thread) of the forum channel, one post per user
//! (per panel), and one per day for digests. The map from user to post lives in the outbox.
//!
//! A message for a user without a known post creates one: it carries `thread_name` (the rendered
//! `forum/titles` template) and the tags of its action, and the answer's `channel_id` (with
//! `?wait=true`) is the new post's id. That id is recorded in the same transaction that marks the
//! message's rows delivered, so the relay never counts a row delivered while forgetting the post it
//! made. A crash between Discord's answer and that commit leaves the rows pending and no post
//! recorded: they are sent again and make a second post. That is the at-least-once window every
//! delivery has; in normal operation a user never gets a second post.
//!
//! A new post that Discord refuses (400) while it names tags is made again without them: a tag id
//! that is not one of the forum's is the likeliest cause, and a refused digest would otherwise go
//! out as a post per user. If it is refused without tags too, it is refused like any message.
//! A new post whose title Discord's AutoMod blocks (400, code 200001: a word in the username, or
//! in the admin's title template) is made again with a neutral title ([`neutral_title`]): the
//! post is remembered like any other, so the user's later events go into it instead of each
//! being refused. If the neutral title is blocked too, the message is refused like any.
//!
//! A post Discord no longer has (404, code 10003) or that is locked is forgotten, and the next
//! step makes a new one. After a `user_deleted` is delivered into a post, the post is forgotten,
//! so a new user of the same name gets a fresh one; a `user_created` starts a fresh post even when
//! one is remembered, for the deletion may never have reached this destination (routed elsewhere,
//! muted, dead-lettered, lost in the panel's queue).

use serenity::builder::ExecuteWebhook;
use serenity::model::id::ForumTagId;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::destination::{Destination, DIGEST_TAG_KEY};
use crate::event::is_watch_action;
use crate::outbox::{PostKey, Row, RowMeta};
use crate::render::{Part, PostTitle, Renderer, REPORT_ACTION, REPORT_USERNAME_SUFFIX};

/// The action whose delivery ends a user's post.
const USER_DELETED: &str = "user_deleted";

/// The action that begins a user: a post remembered for the username belongs to an earlier user
/// of that name whose deletion this destination never got (routed elsewhere, muted, dead-lettered,
/// or lost in the panel's queue), so it starts a post of its own.
const USER_CREATED: &str = "user_created";

/// Where a forum message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Post {
    /// Into the known post with this id (`?thread_id=`).
    Existing(u64),
    /// Into a new post with this title and these tags.
    New { name: String, tags: Vec<u64> },
}

/// `message` made to create a post titled `name` with `tags`.
pub fn new_post(message: ExecuteWebhook, name: &str, tags: &[u64]) -> ExecuteWebhook {
    let message = message.thread_name(name.to_owned());
    if tags.is_empty() {
        message
    } else {
        message.applied_tags(tags.iter().copied().map(ForumTagId::new).collect())
    }
}

/// The rows that can share the head's message in forum mode: those of the head's user (same
/// panel and username), in order, up to and including a `user_deleted` and up to but not
/// including a `user_created` (what follows the one, and the other, belong to a new user of that
/// name, in a new post).
pub fn same_post(parts: Vec<(Row, Part)>) -> Vec<(Row, Part)> {
    let taken = same_post_rows(parts.iter().map(|(row, _)| &row.meta));
    parts.into_iter().enumerate().filter(|(i, _)| taken.contains(i)).map(|(_, part)| part).collect()
}

/// The positions of the rows [`same_post`] takes from `rows`.
pub fn same_post_rows<'a>(rows: impl IntoIterator<Item = &'a RowMeta>) -> Vec<usize> {
    let mut rows = rows.into_iter().enumerate();
    let Some((_, head)) = rows.next() else { return Vec::new() };
    let mut taken = vec![0];
    if head.action == USER_DELETED {
        return taken;
    }
    let post = user_post(head);
    for (i, row) in rows {
        if user_post(row) != post {
            continue;
        }
        if row.action == USER_CREATED {
            break;
        }
        taken.push(i);
        if row.action == USER_DELETED {
            break;
        }
    }
    taken
}

/// The post a message of `rows` goes into: the post of its first row's user, or for a digest the
/// post of the day.
pub fn post_key(rows: &[RowMeta], digest: bool) -> PostKey {
    match (digest, rows.first()) {
        (false, Some(head)) => user_post(head),
        _ => digest_post(rows),
    }
}

/// The post of `row`'s user. A scheduled report is one message whatever the panels it covers, so
/// its rows (one per panel, named `daily report`, `weekly report`) share one post per report,
/// kept under [`REPORT_POSTS`] in place of a panel label, so that no user can share it, whatever
/// their name.
///
/// A node's events (node watch) share a post per node, kept under [`NODE_POSTS`] and the panel's
/// label: a user named like a node has a post of their own.
fn user_post(row: &RowMeta) -> PostKey {
    let panel = if row.action == REPORT_ACTION {
        Some(REPORT_POSTS.to_owned())
    } else if is_watch_action(&row.action) {
        return node_post(row.panel.as_deref(), &row.username);
    } else {
        row.panel.clone()
    };
    PostKey::User { panel, username: row.username.clone() }
}

/// The post of the node named `name` on `panel`. Node watch moves it to the new name when a node
/// is renamed, so that a node keeps its post as long as its id.
pub fn node_post(panel: Option<&str>, name: &str) -> PostKey {
    PostKey::User { panel: Some(node_posts(panel.unwrap_or_default())), username: name.to_owned() }
}

/// Where the node posts of the panel labelled `label` (`""`: without a label) are kept in the map
/// of posts: a panel whose label changed takes them over with its node watch.
pub fn node_posts(label: &str) -> String {
    format!("{NODE_POSTS}{label}")
}

/// What node posts' place in the map of posts begins with, before the panel's label.
const NODE_POSTS: &str = ":nodes:";

/// Where report posts are kept in the map of posts: in place of a panel label, which is only
/// letters, digits, `_` and `-`.
const REPORT_POSTS: &str = ":reports";

/// Whether the message of `rows` into `key` starts a new post even when one is remembered: it
/// begins with a user's creation.
pub fn starts_a_post(key: &PostKey, rows: &[RowMeta]) -> bool {
    matches!(key, PostKey::User { .. }) && rows.first().is_some_and(|row| row.action == USER_CREATED)
}

/// The title and tags of a new post for `key`, made by a message of `action`.
pub fn new_post_of(
    destination: &Destination,
    renderer: &Renderer,
    several_panels: bool,
    key: &PostKey,
    action: &str,
) -> (String, Vec<u64>) {
    let title = match key {
        PostKey::User { panel: Some(panel), username } if panel == REPORT_POSTS => {
            PostTitle::report(username.strip_suffix(REPORT_USERNAME_SUFFIX).unwrap_or(username), action)
        }
        PostKey::User { panel, username } => {
            let shown = panel.as_deref().map(|panel| panel.strip_prefix(NODE_POSTS).unwrap_or(panel));
            PostTitle::user(username, shown.filter(|panel| !panel.is_empty()), action)
        }
        PostKey::Digest { date } => PostTitle::digest(date, action),
    };
    let name = renderer.thread_name(&title.several_panels(several_panels));
    let tag_key = if matches!(key, PostKey::Digest { .. }) { DIGEST_TAG_KEY } else { action };
    let tags = destination.forum.as_ref().map(|forum| forum.tags_for(tag_key).to_vec()).unwrap_or_default();
    (name, tags)
}

/// The title of a new post for `key` when AutoMod blocked the usual one: nothing a user chose,
/// only the panel's label and a short hash of the username (the same for every event of the
/// user, so an admin can tell two such posts apart), or for a digest its date.
pub fn neutral_title(key: &PostKey) -> String {
    match key {
        PostKey::User { panel, username } => {
            let hash = crate::secret::lower_hex(&Sha256::digest(username.as_bytes()));
            match panel.as_deref().filter(|panel| *panel != REPORT_POSTS) {
                Some(panel) => format!("{panel} · #{}", &hash[..8]),
                None => format!("#{}", &hash[..8]),
            }
        }
        PostKey::Digest { date } => date.clone(),
    }
}

/// The post of the digest holding `rows`: the UTC day its first event was received.
pub fn digest_post(rows: &[RowMeta]) -> PostKey {
    digest_post_at(rows.first().map_or(0, |row| row.received_at_ms))
}

/// The digest post of the UTC day of `ms` (unix milliseconds).
pub fn digest_post_at(ms: i64) -> PostKey {
    let at =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    PostKey::Digest { date: at.date().to_string() }
}

/// The user posts to forget once `rows` are delivered into `key`: the post's own when its last row
/// deletes the user; for a digest of deletions, every deleted user's, and of creations, every
/// created user's earlier post (a name reused: the user's next event starts a fresh post).
pub fn ended_posts(key: &PostKey, rows: &[RowMeta]) -> Vec<PostKey> {
    match key {
        PostKey::User { .. } => {
            rows.iter().filter(|row| row.action == USER_DELETED).take(1).map(|_| key.clone()).collect()
        }
        PostKey::Digest { .. } => rows
            .iter()
            .filter(|row| row.action == USER_DELETED || row.action == USER_CREATED)
            .map(|row| PostKey::User { panel: row.panel.clone(), username: row.username.clone() })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Mentions;
    use crate::render::Draft;

    fn row(id: i64, action: &str, username: &str, panel: Option<&str>) -> (Row, Part) {
        let meta = RowMeta {
            id,
            action: action.into(),
            username: username.into(),
            panel: panel.map(str::to_owned),
            received_at_ms: 1_795_827_600_000,
            mentions: Mentions::default(),
        };
        let mut draft = Draft { title: "t".into(), ..Draft::default() };
        draft.clamp();
        (Row { meta, destination: "forum".into(), part: String::new(), attempts: 0 }, draft.into_part())
    }

    fn ids(parts: &[(Row, Part)]) -> Vec<i64> {
        parts.iter().map(|(row, _)| row.meta.id).collect()
    }

    #[test]
    fn a_message_holds_one_users_events_and_ends_with_their_deletion() {
        let window = vec![
            row(1, "user_created", "ali", None),
            row(2, "user_created", "reza", None),
            row(3, "user_updated", "ali", Some("eu")),
            row(4, "user_limited", "ali", None),
            row(5, "user_deleted", "ali", None),
            row(6, "user_created", "ali", None),
        ];
        assert_eq!(ids(&same_post(window)), [1, 4, 5], "another user, another panel, and the new ali wait");
        let recreated = vec![
            row(1, "user_updated", "ali", None),
            row(2, "user_created", "ali", None),
            row(3, "user_limited", "ali", None),
        ];
        assert_eq!(ids(&same_post(recreated)), [1], "a creation begins a new user of that name, in a new post");
    }

    #[test]
    fn a_nodes_events_share_a_post_apart_from_a_user_of_the_same_name() {
        let window = [
            row(1, "node_down", "de-1", Some("eu")),
            row(2, "user_limited", "de-1", Some("eu")),
            row(3, "node_recovered", "de-1", Some("eu")),
        ];
        let metas: Vec<RowMeta> = window.iter().map(|(row, _)| row.meta.clone()).collect();
        let node = PostKey::User { panel: Some(":nodes:eu".into()), username: "de-1".into() };
        assert_eq!((post_key(&metas[..1], false), post_key(&metas[2..], false)), (node.clone(), node));
        assert_eq!(post_key(&metas[1..2], false), PostKey::User { panel: Some("eu".into()), username: "de-1".into() });
    }

    #[test]
    fn a_reports_panels_share_one_post_of_that_report() {
        let window = vec![
            row(1, REPORT_ACTION, "daily report", None),
            row(2, REPORT_ACTION, "daily report", Some("eu")),
            row(3, "user_created", "ali", Some("eu")),
            row(4, REPORT_ACTION, "weekly report", Some("eu")),
        ];
        assert_eq!(ids(&same_post(window.clone())), [1, 2]);
        let metas: Vec<RowMeta> = window.into_iter().map(|(row, _)| row.meta).collect();
        let daily = PostKey::User { panel: Some(REPORT_POSTS.into()), username: "daily report".into() };
        assert_eq!((post_key(&metas[1..2], false), post_key(&metas[..2], false)), (daily.clone(), daily));
        let namesake = row(5, "user_created", "daily report", None).0.meta;
        assert_ne!(
            post_key(&[namesake], false),
            post_key(&metas[..1], false),
            "a user of that name has a post of theirs"
        );
        let sent_by_a_panel = row(6, "report", "daily report", Some("eu")).0.meta;
        let theirs = PostKey::User { panel: Some("eu".into()), username: "daily report".into() };
        assert_eq!(post_key(&[sent_by_a_panel], false), theirs, "a panel's `report` event is a user's");
        let ali = PostKey::User { panel: Some("eu".into()), username: "ali".into() };
        assert_eq!(post_key(&metas[2..3], false), ali, "a user's post stays per panel");
    }

    #[test]
    fn a_digest_goes_to_the_post_of_its_day_and_a_deletion_ends_a_post() {
        let metas: Vec<RowMeta> = [row(1, "user_deleted", "ali", Some("eu")), row(2, "user_deleted", "reza", None)]
            .into_iter()
            .map(|(row, _)| row.meta)
            .collect();
        assert_eq!(digest_post(&metas), PostKey::Digest { date: "2026-11-28".into() });
        let ended = ended_posts(&digest_post(&metas), &metas);
        assert_eq!(ended.len(), 2);
        let ali = PostKey::User { panel: Some("eu".into()), username: "ali".into() };
        assert_eq!(ended_posts(&ali, &metas[..1]), std::slice::from_ref(&ali));
        let created = vec![RowMeta { action: "user_created".into(), ..metas[0].clone() }];
        assert!(ended_posts(&ali, &created).is_empty());
    }

    #[test]
    fn a_new_post_carries_its_title_and_only_the_tags_it_has() {
        let body = serde_json::to_value(new_post(ExecuteWebhook::new().content("x"), "ali", &[])).unwrap();
        assert_eq!(body["thread_name"], "ali");
        assert!(body.get("applied_tags").is_none(), "{body}");
        let body = serde_json::to_value(new_post(ExecuteWebhook::new(), "ali", &[123456789012345678])).unwrap();
        assert_eq!(body["applied_tags"], serde_json::json!(["123456789012345678"]));
    }
}
