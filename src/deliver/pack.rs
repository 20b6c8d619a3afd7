//! Packing: which pending rows go into the next Discord message, and how a burst becomes a digest.
//! Pure functions, tested on their own.

use std::collections::HashSet;

use serenity::builder::{CreateAllowedMentions, CreateEmbed, ExecuteWebhook};

use serenity::model::id::{RoleId, UserId};

use crate::destination::{Destination, Mentions};
use crate::event::is_watch_action;
use crate::outbox::RowMeta;
use crate::render::filters::escape_markdown;
use crate::render::{limits, Part};

/// Characters of (escaped) usernames listed in one digest embed: two such embeds and their titles
/// fit one message's 6000.
pub const DIGEST_EMBED_BUDGET: usize = 2800;

/// How many of the leading `parts` fit in one message: at most `max_parts` (and 10) embeds, 6000
/// embed characters and 2000 content characters, of which `reserved` are taken (by mentions).
/// Always at least one: each part fits alone.
pub fn fitting_parts<'a>(parts: impl IntoIterator<Item = &'a Part>, max_parts: usize, reserved: usize) -> usize {
    let max_parts = max_parts.clamp(1, limits::EMBEDS_PER_MESSAGE);
    let (mut count, mut embed_chars, mut content_chars) = (0, 0, reserved);
    for part in parts.into_iter().take(max_parts) {
        let separator = usize::from(content_chars > 0 && part.content.is_some());
        let next_embed = embed_chars + part.embed_chars();
        let next_content = content_chars + separator + part.content_chars();
        if count > 0 && (next_embed > limits::MESSAGE_EMBED_CHARS || next_content > limits::CONTENT) {
            break;
        }
        (count, embed_chars, content_chars) = (count + 1, next_embed, next_content);
    }
    count.max(1)
}

/// Most characters of the words that follow the mentions and say why the message pings.
pub const PING_REASON_CHARS: usize = 200;

/// How many of the leading parts (each with the mentions of its rule) go into the next message, and
/// whom that message mentions: as [`fitting_parts`], with room kept for the mentions' line. Only
/// parts with the same mentions as the first share a message, so a ping never rides on an embed
/// that did not ask for it.
pub fn next_message(parts: &[(&Part, &Mentions)], max_parts: usize) -> (usize, Mentions) {
    let mentions = parts.first().map(|(_, m)| (*m).clone()).unwrap_or_default();
    let alike = parts.iter().take_while(|(_, m)| **m == mentions).count();
    let count = fitting_parts(parts.iter().map(|(part, _)| *part), max_parts.min(alike), mention_chars(&mentions));
    (count, mentions)
}

/// The Discord message for `parts`, shown as `destination` says, pinging `mentions` and nobody
/// else: `allowed_mentions` is always present and lists exactly those ids, so no text from the
/// panel can ever ping. The mentions are written on the content's first line, followed by why (see
/// [`ping_line`]).
pub fn build_message<'a>(
    parts: impl IntoIterator<Item = &'a Part>,
    mentions: &Mentions,
    destination: &Destination,
) -> ExecuteWebhook {
    let parts: Vec<&Part> = parts.into_iter().collect();
    // An audit line is content only: it has no embed to send.
    let embeds: Vec<CreateEmbed> =
        parts.iter().filter(|part| part.shows_embed()).map(|part| CreateEmbed::from(part.embed.clone())).collect();
    let mut contents: Vec<String> = parts.iter().filter_map(|part| part.content.clone()).collect();
    if !mentions.is_empty() {
        let taken = contents.iter().map(|c| limits::chars(c) + 1).sum::<usize>();
        contents.insert(0, ping_line(mentions, &parts, limits::CONTENT.saturating_sub(taken)));
    }
    let allowed = CreateAllowedMentions::new()
        .roles(mentions.roles.iter().copied().map(RoleId::new))
        .users(mentions.users.iter().copied().map(UserId::new));
    let mut message = ExecuteWebhook::new().embeds(embeds).allowed_mentions(allowed);
    if !contents.is_empty() {
        message = message.content(contents.join("\n"));
    }
    if let Some(username) = &destination.username {
        message = message.username(username);
    }
    if let Some(avatar_url) = &destination.avatar_url {
        message = message.avatar_url(avatar_url);
    }
    message
}

/// The mentions and, after a dash, why they are pinged: the titles of the message's embeds
/// ("<@&1> — ⛔ Data limit reached: ali · ⛔ Data limit reached: reza", "<@&1> — 📋 312 users
/// expired (1/3)"), cut to [`PING_REASON_CHARS`] and to `room` characters in all.
pub fn ping_line(mentions: &Mentions, parts: &[&Part], room: usize) -> String {
    let mut line = mentions.to_content();
    let titles: Vec<&str> = parts.iter().filter_map(|part| part.embed.title.as_deref()).collect();
    let reason = titles.join(" · ");
    let room = room.saturating_sub(limits::chars(&line) + 3).min(PING_REASON_CHARS);
    if reason.trim().is_empty() || room < 2 {
        return line;
    }
    line.push_str(" — ");
    if limits::chars(&reason) <= room {
        line.push_str(&reason);
    } else {
        line.extend(reason.chars().take(room - 1));
        line.push('…');
    }
    line
}

/// The characters the mentions' line takes of a message's content at most (with the words saying
/// why, see [`ping_line`]), with its line break.
pub fn mention_chars(mentions: &Mentions) -> usize {
    if mentions.is_empty() {
        0
    } else {
        limits::chars(&mentions.to_content()) + 3 + PING_REASON_CHARS + 1
    }
}

/// More node watch events of one action than this (and than `DIGEST_THRESHOLD`) pending together
/// go out as a digest: twenty nodes down at once are one message.
pub const NODE_DIGEST_THRESHOLD: usize = 3;

/// The rows to summarise in one digest, if the head of the queue starts a burst: the rows of the
/// head row's action in `window` (oldest first), when there are more than `threshold` of them.
/// A row is left out (to go later, on its own) when its user has an event of another action
/// earlier in the window, so no user's events ever change order, and when it pings others than the
/// head row does, so a ping never rides on a digest of events that did not ask for it.
pub fn digest_members(window: &[RowMeta], threshold: usize) -> Option<Vec<&RowMeta>> {
    let head = window.first()?;
    // A report's embeds are summaries already, never listed in a digest; an audit line is a line.
    if threshold == 0
        || head.action == crate::render::REPORT_ACTION
        || head.action == crate::render::audit::AUDIT_ACTION
    {
        return None;
    }
    // Nodes go down together when the panel's host loses its network: a few are a digest already.
    let threshold = if is_watch_action(&head.action) { threshold.min(NODE_DIGEST_THRESHOLD) } else { threshold };
    let mut others: HashSet<&str> = HashSet::new();
    let mut members = Vec::new();
    for row in window {
        if row.action != head.action || row.mentions != head.mentions {
            others.insert(&row.username);
        } else if !others.contains(row.username.as_str()) {
            members.push(row);
        }
    }
    (members.len() > threshold).then_some(members)
}

/// Splits digest members into embeds of at most `budget` characters of escaped usernames (plus
/// a two-character separator each); every chunk holds at least one member.
pub fn digest_chunks<'a>(members: &[&'a RowMeta], budget: usize) -> Vec<Vec<&'a RowMeta>> {
    let mut chunks: Vec<Vec<&RowMeta>> = Vec::new();
    let mut used = 0;
    for &member in members {
        let cost = limits::chars(&escape_markdown(&member.username)) + 2;
        match chunks.last_mut() {
            Some(chunk) if used + cost <= budget => chunk.push(member),
            _ => {
                chunks.push(vec![member]);
                used = 0;
            }
        }
        used += cost;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Target;
    use crate::render::Draft;

    fn part(description_chars: usize, content: Option<&str>) -> Part {
        let mut draft = Draft {
            title: "t".into(),
            description: "é".repeat(description_chars),
            content: content.unwrap_or_default().into(),
            ..Draft::default()
        };
        draft.clamp();
        draft.into_part()
    }

    fn meta(id: i64, action: &str, username: &str) -> RowMeta {
        RowMeta {
            id,
            action: action.into(),
            username: username.into(),
            panel: None,
            received_at_ms: 0,
            mentions: Mentions::default(),
        }
    }

    #[test]
    fn packs_up_to_ten_embeds() {
        let parts: Vec<Part> = (0..12).map(|_| part(10, None)).collect();
        assert_eq!(fitting_parts(&parts, 10, 0), 10);
        assert_eq!(fitting_parts(&parts, 1, 0), 1);
    }

    #[test]
    fn packs_up_to_6000_characters() {
        // Each embed is 1 + 1999 = 2000 characters: three fit exactly, a fourth does not.
        let parts: Vec<Part> = (0..5).map(|_| part(1999, None)).collect();
        assert_eq!(fitting_parts(&parts, 10, 0), 3);
        let parts: Vec<Part> = (0..5).map(|_| part(2000, None)).collect();
        assert_eq!(fitting_parts(&parts, 10, 0), 2);
        let parts = vec![part(4096, None), part(4096, None)];
        assert_eq!(fitting_parts(&parts, 10, 0), 1);
    }

    #[test]
    fn packs_content_up_to_2000_characters() {
        let content = "c".repeat(1000);
        let parts: Vec<Part> = (0..3).map(|_| part(1, Some(&content))).collect();
        // 1000 + 1 (newline) + 1000 > 2000.
        assert_eq!(fitting_parts(&parts, 10, 0), 1);
    }

    #[test]
    fn messages_allow_exactly_the_configured_mentions() {
        let destination = Destination::new("d", Target::DryRun);
        let parts = vec![part(5, Some("<@&1> @everyone"))];
        let body = serde_json::to_value(build_message(&parts, &Mentions::default(), &destination)).unwrap();
        assert_eq!(body["allowed_mentions"], serde_json::json!({"parse": [], "users": [], "roles": []}));
        assert_eq!(body["content"], "<@&1> @everyone");
        assert_eq!(body["embeds"].as_array().unwrap().len(), 1);

        let mentions = Mentions { roles: [123456789012345678].into(), users: [223456789012345678].into() };
        let display = Destination { username: Some("Panel".into()), ..destination };
        let body = serde_json::to_value(build_message(&parts, &mentions, &display)).unwrap();
        assert_eq!(
            body["allowed_mentions"],
            serde_json::json!({"parse": [], "users": ["223456789012345678"], "roles": ["123456789012345678"]})
        );
        assert_eq!(body["content"], "<@&123456789012345678> <@223456789012345678> — t\n<@&1> @everyone");
        assert_eq!(body["username"], "Panel");
        assert_eq!(fitting_parts(&[part(1, Some(&"c".repeat(1990)))], 10, mention_chars(&mentions)), 1);
    }

    #[test]
    fn an_audit_line_is_content_without_an_embed_and_never_a_digest() {
        let destination = Destination::new("d", Target::DryRun);
        let line = crate::render::audit::audit_part("<@1500000000000000001> reset alice's usage · eu1");
        let body = serde_json::to_value(build_message([&line, &part(5, None)], &Mentions::default(), &destination));
        let body = body.unwrap();
        assert_eq!(body["content"], "<@1500000000000000001> reset alice's usage · eu1");
        assert_eq!(body["embeds"].as_array().unwrap().len(), 1, "only the event's embed: {body}");
        assert_eq!(body["allowed_mentions"], serde_json::json!({"parse": [], "users": [], "roles": []}));
        let window: Vec<RowMeta> = (0..5).map(|i| meta(i, crate::render::audit::AUDIT_ACTION, "alice")).collect();
        assert!(digest_members(&window, 1).is_none());
    }

    #[test]
    fn a_ping_goes_only_with_the_embeds_that_asked_for_it() {
        let support = Mentions { roles: [123456789012345678].into(), users: Default::default() };
        let (plain, pinging) = (Mentions::default(), support.clone());
        let parts: Vec<Part> = (0..5).map(|_| part(1, None)).collect();
        let first: Vec<(&Part, &Mentions)> = parts.iter().zip([&plain, &plain, &pinging, &pinging, &plain]).collect();
        let next = next_message(&first, 10);
        assert_eq!(next, (2, Mentions::default()), "the plain embeds before the pinging ones");
        let second: Vec<(&Part, &Mentions)> =
            parts.iter().zip([&pinging, &pinging, &plain, &pinging, &pinging]).collect();
        let next = next_message(&second, 10);
        assert_eq!(next, (2, support), "the pinging embeds alone");
    }

    #[test]
    fn a_ping_says_why_in_words() {
        let mentions = Mentions { roles: [1].into(), users: Default::default() };
        let titled = |title: &str| {
            let mut draft = Draft { title: title.into(), description: "d".into(), ..Draft::default() };
            draft.clamp();
            draft.into_part()
        };
        let (a, b) = (titled("⛔ Data limit reached: ali"), titled("⛔ Data limit reached: reza"));
        assert_eq!(ping_line(&mentions, &[&a], 2000), "<@&1> — ⛔ Data limit reached: ali");
        assert_eq!(
            ping_line(&mentions, &[&a, &b], 2000),
            "<@&1> — ⛔ Data limit reached: ali · ⛔ Data limit reached: reza"
        );
        assert_eq!(ping_line(&mentions, &[&a], 16), "<@&1> — ⛔ Data …", "cut to the room left");
        assert_eq!(ping_line(&mentions, &[&a], 5), "<@&1>", "no room: the mentions alone");
        let long = titled(&"x".repeat(300));
        assert_eq!(limits::chars(&ping_line(&mentions, &[&long], 2000)), 5 + 3 + PING_REASON_CHARS);
    }

    #[test]
    fn a_digest_gathers_only_events_that_ping_alike() {
        let mut window: Vec<RowMeta> = (0..4).map(|i| meta(i, "user_expired", &format!("u{i}"))).collect();
        window[2].mentions = Mentions { roles: [7].into(), users: Default::default() };
        let ids: Vec<i64> = digest_members(&window, 1).unwrap().iter().map(|m| m.id).collect();
        assert_eq!(ids, [0, 1, 3]);
    }

    #[test]
    fn mentions_take_their_room_in_the_content() {
        let parts: Vec<Part> = (0..2).map(|_| part(1, Some(&"c".repeat(990)))).collect();
        assert_eq!(fitting_parts(&parts, 10, 0), 2);
        assert_eq!(fitting_parts(&parts, 10, 30), 1);
    }

    #[test]
    fn digests_a_burst_of_the_head_action_only_above_the_threshold() {
        let window: Vec<RowMeta> = (0..5).map(|i| meta(i, "user_expired", &format!("u{i}"))).collect();
        assert!(digest_members(&window, 5).is_none());
        assert_eq!(digest_members(&window, 4).unwrap().len(), 5);
        assert!(digest_members(&window, 0).is_none(), "0 turns digests off");
        let mut mixed = window.clone();
        mixed.insert(0, meta(-1, "user_created", "x"));
        assert!(digest_members(&mixed, 1).is_none(), "the head is a single user_created");
    }

    #[test]
    fn a_digest_never_moves_an_event_ahead_of_the_same_users_other_events() {
        let window = vec![
            meta(1, "user_expired", "a"),
            meta(2, "user_deleted", "b"),
            meta(3, "user_expired", "b"),
            meta(4, "user_expired", "c"),
            meta(5, "user_updated", "a"),
            meta(6, "user_expired", "a"),
        ];
        let ids: Vec<i64> = digest_members(&window, 1).unwrap().iter().map(|m| m.id).collect();
        assert_eq!(ids, [1, 4], "b's expiry waits behind b's deletion; a's second expiry behind a's update");
    }

    #[test]
    fn splits_a_digest_by_the_length_of_the_names() {
        let rows: Vec<RowMeta> = (0..300).map(|i| meta(i, "user_expired", &format!("user_{i:05}"))).collect();
        let members: Vec<&RowMeta> = rows.iter().collect();
        let chunks = digest_chunks(&members, DIGEST_EMBED_BUDGET);
        // "user\_00001" is 11 characters escaped, 13 with the separator: 215 per chunk.
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [215, 85]);
        let huge = meta(0, "a", &"x".repeat(5000));
        assert_eq!(digest_chunks(&[&huge, &huge], 100).len(), 2, "an oversized name still gets its own chunk");
    }
}
