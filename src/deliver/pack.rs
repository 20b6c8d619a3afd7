//! Packing: which pending rows go into the next Discord message, and how a burst becomes a digest.
//! Pure functions, tested on their own.

use std::collections::HashSet;

use serenity::builder::{CreateAllowedMentions, CreateEmbed, ExecuteWebhook};

use serenity::model::id::{RoleId, UserId};

use crate::destination::{Destination, Mentions};
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

/// How many of the leading parts (each with the mentions of its rule) go into the next message, and
/// whom that message mentions: as [`fitting_parts`], with room kept for the mentions' line.
pub fn next_message(parts: &[(&Part, &Mentions)], max_parts: usize) -> (usize, Mentions) {
    let candidates = Mentions::union(parts.iter().take(max_parts.min(limits::EMBEDS_PER_MESSAGE)).map(|(_, m)| *m));
    let count = fitting_parts(parts.iter().map(|(part, _)| *part), max_parts, mention_chars(&candidates));
    (count, Mentions::union(parts[..count.min(parts.len())].iter().map(|(_, m)| *m)))
}

/// The Discord message for `parts`, shown as `destination` says, pinging `mentions` (written on
/// the content's first line) and nobody else: `allowed_mentions` is always present and lists
/// exactly those ids, so no text from the panel can ever ping.
pub fn build_message<'a>(
    parts: impl IntoIterator<Item = &'a Part>,
    mentions: &Mentions,
    destination: &Destination,
) -> ExecuteWebhook {
    let mut embeds = Vec::new();
    let mut contents = Vec::new();
    if !mentions.is_empty() {
        contents.push(mentions.to_content());
    }
    for part in parts {
        embeds.push(CreateEmbed::from(part.embed.clone()));
        contents.extend(part.content.clone());
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

/// The characters `mentions` take of a message's content, with their line break.
pub fn mention_chars(mentions: &Mentions) -> usize {
    if mentions.is_empty() {
        0
    } else {
        limits::chars(&mentions.to_content()) + 1
    }
}

/// The rows to summarise in one digest, if the head of the queue starts a burst: the rows of the
/// head row's action in `window` (oldest first), when there are more than `threshold` of them.
/// A row is left out (to go later, on its own) when its user has an event of another action
/// earlier in the window, so no user's events ever change order.
pub fn digest_members(window: &[RowMeta], threshold: usize) -> Option<Vec<&RowMeta>> {
    let head = window.first()?;
    if threshold == 0 {
        return None;
    }
    let mut others: HashSet<&str> = HashSet::new();
    let mut members = Vec::new();
    for row in window {
        if row.action != head.action {
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
        assert_eq!(body["content"], "<@&123456789012345678> <@223456789012345678>\n<@&1> @everyone");
        assert_eq!(body["username"], "Panel");
        assert_eq!(fitting_parts(&[part(1, Some(&"c".repeat(1990)))], 10, mention_chars(&mentions)), 1);
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
