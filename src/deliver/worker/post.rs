//! Forum mode's step: sending a message into the post of its user (or day), making the post when
//! none is known, and recording the post with the delivery. What the posts are is
//! [`crate::deliver::forum`]'s; this is what the worker does with them.

use super::record::Accepted;
use super::Worker;
use crate::deliver::forum::{ended_posts, neutral_title, new_post_of, starts_a_post, Post};
use crate::deliver::{Sent, Step};
use crate::destination::Mentions;
use crate::discord::Outcome;
use crate::outbox::{OutboxError, PostKey, RowMeta};
use crate::render::Part;

/// Forum posts made in a row without learning their id before the destination pauses: one is
/// a glitch (the next message of that user makes another post), several mean every event would.
const UNNAMED_POSTS_MAX: u32 = 3;

impl Worker {
    /// Sends `parts` (of `rows`) into the post of `key`, creating it when none is known (with the
    /// tags of `creator`, the action of the first row), and records what Discord said.
    pub(super) async fn send_in_post(
        &mut self,
        key: PostKey,
        creator: &str,
        rows: &[RowMeta],
        parts: &[Part],
        mentions: &Mentions,
        sent: Sent,
    ) -> Result<Step, OutboxError> {
        let name = self.destination.name.clone();
        let post = match self.outbox.forum_post(&name, &key).await? {
            Some(id) if !starts_a_post(&key, rows) => Post::Existing(id),
            _ => {
                let (mut name, mut tags) = self.new_post_of(&key, creator);
                let head = rows.first().map(|row| row.id);
                if self.untagged.is_some() && self.untagged == head {
                    tags.clear();
                }
                if self.neutral_title.is_some() && self.neutral_title == head {
                    name = neutral_title(&key);
                }
                Post::New { name, tags }
            }
        };
        let (outcome, channel_id) = self.send(rows, parts, mentions, Some(&post)).await;
        if let (Outcome::TitleBlocked { detail }, Post::New { name: title, .. }) = (&outcome, &post) {
            let head = rows.first().map(|row| row.id);
            if self.neutral_title != head {
                let neutral = neutral_title(&key);
                log::warn!(
                    "{name}: Discord's AutoMod blocked the title {title:?} of a new forum post ({detail}); making it \
                     titled {neutral:?}. The forum's AutoMod rules decide which titles pass"
                );
                self.neutral_title = head;
                return Ok(Step::Progress);
            }
        }
        if let (Outcome::Rejected { status: 400, detail }, Post::New { tags, .. }) = (&outcome, &post) {
            if !tags.is_empty() {
                // The tags are the likeliest cause (an id that is not one of the forum's): a
                // refused digest would otherwise go out as a post per user.
                log::warn!(
                    "{name}: Discord refused a new forum post with the tags {tags:?} ({detail}); making it without \
                     tags. Check the tag ids (DISCORD_FORUM_TAGS, or the destination's tags)"
                );
                self.untagged = rows.first().map(|row| row.id);
                return Ok(Step::Progress);
            }
        }
        match (outcome, &post) {
            (Outcome::Delivered, _) => {
                (self.untagged, self.neutral_title) = (None, None);
                let created = match (&post, channel_id) {
                    (Post::New { .. }, None) => {
                        self.posts_without_id += 1;
                        log::warn!(
                            "{name}: Discord created a forum post but its answer did not say the post's id; the \
                             next message for it makes another post"
                        );
                        None
                    }
                    (Post::New { .. }, id) => {
                        self.posts_without_id = 0;
                        id
                    }
                    (Post::Existing(_), _) => None,
                };
                if created.is_some() {
                    self.metrics.forum_posts_created.get_or_create(&self.labels).inc();
                }
                let step = self.after_delivery(rows, parts.len(), sent);
                let ids = rows.iter().map(|row| row.id).collect();
                let ended = ended_posts(&key, rows);
                // Discord has it whatever the outbox does: a failed write is retried, never the post.
                let held = self.recorder.record(Accepted::InPost { ids, key, created, ended }).await.map(Step::Wait);
                if self.posts_without_id >= UNNAMED_POSTS_MAX {
                    let paused = self.pause(&format!(
                        "{UNNAMED_POSTS_MAX} forum posts in a row were made but Discord's answer did not say the new \
                         post's id (channel_id), so every event would make a post of its own. Something in front of \
                         Discord (a proxy) may be dropping the answer's body; the relay needs it (?wait=true)"
                    ));
                    return Ok(held.unwrap_or(paused));
                }
                Ok(held.unwrap_or(step))
            }
            (Outcome::ThreadUnusable { locked, detail, .. }, Post::Existing(id)) => {
                let what = if locked { "is locked or archived" } else { "was deleted" };
                log::warn!("{name}: the forum post {id} {what} ({detail}); making a new post for these events");
                self.outbox.forget_forum_post(&name, &key, *id).await?;
                self.metrics.forum_posts_lost.get_or_create(&self.labels).inc();
                Ok(Step::Progress)
            }
            (outcome, _) => self.settle(rows, parts.len(), outcome, sent).await,
        }
    }

    /// The title and tags of a new post for `key`, made by a message of `action`.
    fn new_post_of(&self, key: &PostKey, action: &str) -> (String, Vec<u64>) {
        new_post_of(&self.destination, &self.templates.current(), self.settings.several_panels, key, action)
    }
}
