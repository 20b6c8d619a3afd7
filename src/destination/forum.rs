//! Forum mode of a destination: its webhook belongs to a forum channel, where every message must
//! go into a post (a thread). Each user gets a post of their own, created by their first event and
//! titled by the `forum/titles` template; later events go into it. Tags (ids of the forum's tags)
//! are applied by the action that creates a post: Discord lets a webhook set them only then.

use std::collections::BTreeMap;

use crate::event::{is_known_action, known_actions_list};

/// Discord applies at most this many tags to a post.
pub const MAX_APPLIED_TAGS: usize = 5;

/// The tag key for a day's digest post, beside the action names.
pub const DIGEST_TAG_KEY: &str = "digest";

/// How a forum destination labels the posts it creates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forum {
    /// Action (or `digest`) → the tag ids a post created by it gets.
    pub tags: BTreeMap<String, Vec<u64>>,
}

impl Forum {
    /// The tags a post created by `action` (or [`DIGEST_TAG_KEY`]) gets.
    pub fn tags_for(&self, action: &str) -> &[u64] {
        self.tags.get(action).map_or(&[], Vec::as_slice)
    }

    /// Checks a tag key and the ids given for it (an id given twice counts once, see
    /// [`distinct_tags`]); the problem, if any, says what is wrong.
    pub fn check_tags(key: &str, ids: &[u64]) -> Result<(), String> {
        if key != DIGEST_TAG_KEY && !is_known_action(key) {
            return Err(format!("{key:?} is neither an action ({}) nor {DIGEST_TAG_KEY:?}", known_actions_list()));
        }
        let count = distinct_tags(ids.to_vec()).len();
        if count > MAX_APPLIED_TAGS {
            return Err(format!("{key}: {count} tags, but Discord applies at most {MAX_APPLIED_TAGS}"));
        }
        Ok(())
    }
}

/// `ids` without repeats, in the order first given. Discord does not document what it does with a
/// tag applied twice, and applying one twice is never useful, so a repeated id is sent once.
pub fn distinct_tags(ids: Vec<u64>) -> Vec<u64> {
    let mut seen = std::collections::BTreeSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

/// A Discord id (snowflake): a positive 64-bit number of at least 15 digits (ids from 2015 on).
pub fn snowflake(text: &str) -> Option<u64> {
    let n: u64 = text.trim().parse().ok()?;
    (100_000_000_000_000..1 << 63).contains(&n).then_some(n)
}

/// `DISCORD_FORUM_TAGS`: `action:tag_id,…` (an action may appear several times, up to
/// [`MAX_APPLIED_TAGS`] ids).
pub fn parse_tags(value: &str) -> Result<BTreeMap<String, Vec<u64>>, String> {
    let mut tags: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let (key, id) = item.split_once(':').ok_or_else(|| format!("{item:?} is not action:tag_id"))?;
        let id = snowflake(id).ok_or_else(|| format!("{item:?}: {:?} is not a Discord id", id.trim()))?;
        tags.entry(key.trim().to_owned()).or_default().push(id);
    }
    for (key, ids) in &mut tags {
        Forum::check_tags(key, ids)?;
        *ids = distinct_tags(std::mem::take(ids));
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tags_by_action_and_refuses_what_discord_would() {
        let tags =
            parse_tags("user_expired:123456789012345678, user_expired:223456789012345678,digest:323456789012345678")
                .unwrap();
        let forum = Forum { tags };
        assert_eq!(forum.tags_for("user_expired"), [123456789012345678, 223456789012345678]);
        assert_eq!(forum.tags_for(DIGEST_TAG_KEY), [323456789012345678]);
        assert!(forum.tags_for("user_created").is_empty());
        assert!(parse_tags("user_expird:123456789012345678").unwrap_err().contains("neither an action"));
        assert!(parse_tags("user_expired:12").unwrap_err().contains("not a Discord id"));
        assert!(parse_tags("user_expired").unwrap_err().contains("action:tag_id"));
        let six = (0..6).map(|i| format!("user_limited:12345678901234567{i}")).collect::<Vec<_>>().join(",");
        assert!(parse_tags(&six).unwrap_err().contains("at most 5"));
    }

    #[test]
    fn sends_a_tag_given_twice_once_and_counts_distinct_tags_against_the_limit() {
        let (a, b) = (123456789012345678_u64, 223456789012345678_u64);
        let tags = parse_tags(&format!("user_expired:{b},user_expired:{a},user_expired:{b}")).unwrap();
        assert_eq!(Forum { tags }.tags_for("user_expired"), [b, a], "first given first, each once");

        let five: Vec<String> = (0..5).map(|i| format!("user_limited:12345678901234567{i}")).collect();
        let repeated = format!("{},{}", five.join(","), five.join(","));
        let tags = parse_tags(&repeated).unwrap();
        assert_eq!(tags["user_limited"].len(), 5, "ten ids, five distinct: within Discord's limit");
        assert_eq!(Forum::check_tags("user_limited", &[a, a, a, a, a, a, b]), Ok(()));
        assert!(distinct_tags(vec![a, b, a, b]) == [a, b]);
    }

    #[test]
    fn a_routes_file_tag_given_twice_is_sent_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.toml");
        let six = (0..6).map(|i| format!("\"22345678901234567{}\"", i % 3)).collect::<Vec<_>>().join(", ");
        let text = format!(
            "[destinations.support]\nurl = \"https://discord.com/api/webhooks/1/aaa\"\nforum = true\n\
             tags = {{ user_expired = [\"123456789012345678\", 123456789012345678], user_limited = [{six}] }}\n\
             [[rules]]\nto = [\"support\"]\n"
        );
        std::fs::write(&path, text).unwrap();
        let routes = crate::routing::Routes::load(&path, &[]).unwrap();
        let forum = routes.destinations[0].forum.clone().unwrap();
        assert_eq!(forum.tags_for("user_expired"), [123456789012345678]);
        assert_eq!(forum.tags_for("user_limited"), [223456789012345670, 223456789012345671, 223456789012345672]);
    }
}
