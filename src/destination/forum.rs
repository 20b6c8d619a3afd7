//! Forum mode of a destination: its webhook belongs to a forum channel, where every message must
//! go into a post (a thread). Each user gets a post of their own, created by their first event and
//! titled by the `forum/titles` template; later events go into it. Tags (ids of the forum's tags)
//! are applied by the action that creates a post: Discord lets a webhook set them only then.

use std::collections::BTreeMap;

use crate::event::KNOWN_ACTIONS;

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

    /// Checks a tag key and the ids given for it; the problem, if any, says what is wrong.
    pub fn check_tags(key: &str, ids: &[u64]) -> Result<(), String> {
        if key != DIGEST_TAG_KEY && !KNOWN_ACTIONS.contains(&key) {
            return Err(format!("{key:?} is neither an action ({}) nor {DIGEST_TAG_KEY:?}", KNOWN_ACTIONS.join(", ")));
        }
        if ids.len() > MAX_APPLIED_TAGS {
            return Err(format!("{key}: {} tags, but Discord applies at most {MAX_APPLIED_TAGS}", ids.len()));
        }
        Ok(())
    }
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
    for (key, ids) in &tags {
        Forum::check_tags(key, ids)?;
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
}
