//! The fake Discord's forum channels, as Discord documents Execute Webhook for them: a forum
//! webhook's message must say where it goes, `thread_name` (with optional `applied_tags`) creating
//! a post whose id is the created message's `channel_id`, or `?thread_id=` naming an existing post.
//!
//! Answers, each Discord's documented code:
//! * neither `thread_name` nor `thread_id`: 400, code 220001 ("Webhooks posted to forum channels
//!   must have a thread_name or thread_id");
//! * `thread_name` on a webhook of a text channel: 400, code 220003 ("Webhooks can only create
//!   threads in forum channels");
//! * `thread_id` of a post that does not exist or was deleted: 404, code 10003 ("Unknown Channel");
//! * `thread_name` without `applied_tags` in a forum whose settings require a tag on every post:
//!   400, code 40067 ("A tag is required to create a forum post in this channel");
//! * `thread_name` holding a word the forum's AutoMod blocks (a keyword rule on titles): 400, code
//!   200001 ("Title was blocked by automatic moderation");
//! * `thread_id` of a locked post: 403, code 160005 ("Thread is locked"). Discord's opcode table
//!   has 160005 for a locked thread and 50083 for an archived one; posting into an archived but
//!   unlocked post unarchives it, so only locking refuses a webhook's message. The status is 403,
//!   Discord's status for an action the caller may not take.
//!
//! Tests delete or lock posts by hand, and read what each post holds.

use serde_json::{json, Value};

/// Thread ids the fake hands out start here (snowflake-sized).
const FIRST_THREAD_ID: u64 = 1_300_000_000_000_000_000;

/// One post of a forum channel.
#[derive(Debug, Clone)]
pub struct Thread {
    pub id: u64,
    /// The webhook (channel) it belongs to.
    pub webhook: u64,
    pub name: String,
    pub applied_tags: Vec<String>,
    pub deleted: bool,
    pub locked: bool,
    /// Every message in it, the first one (which created it) included.
    pub messages: Vec<Value>,
}

/// The forum webhooks of the fake and their posts.
#[derive(Debug, Default)]
pub struct Forums {
    webhooks: Vec<u64>,
    /// Forum webhooks whose channel requires a tag on every new post.
    tags_required: Vec<u64>,
    /// Words AutoMod blocks in new posts' titles (any forum), lowercase.
    blocked_words: Vec<String>,
    pub threads: Vec<Thread>,
}

/// Where an accepted message went.
pub enum Placed {
    /// Not a forum webhook: the channel itself.
    Channel,
    /// Into this post (created or existing).
    Thread(u64),
}

impl Forums {
    pub fn add_webhook(&mut self, id: u64) {
        if !self.webhooks.contains(&id) {
            self.webhooks.push(id);
        }
    }

    /// The forum of `webhook` requires a tag on every new post (a setting of the channel).
    pub fn require_tags(&mut self, webhook: u64) {
        self.tags_required.push(webhook);
    }

    /// AutoMod blocks every new post whose title holds `word` (case aside).
    pub fn block_title_word(&mut self, word: &str) {
        self.blocked_words.push(word.to_lowercase());
    }

    pub fn is_forum(&self, webhook: u64) -> bool {
        self.webhooks.contains(&webhook)
    }

    pub fn thread_mut(&mut self, id: u64) -> Option<&mut Thread> {
        self.threads.iter_mut().find(|thread| thread.id == id)
    }

    /// Decides where `message` to `webhook` (with `query`) goes, or Discord's refusal. Nothing is
    /// changed: [`Forums::place`] does that once the message is accepted.
    pub fn check(&self, webhook: u64, query: &str, message: &Value) -> Result<(), (u16, Value)> {
        let thread_id = thread_id(query);
        let named = message.get("thread_name").is_some_and(|name| !name.is_null());
        if !self.is_forum(webhook) {
            return if named {
                Err((400, json!({"message": "Webhooks can only create threads in forum channels", "code": 220003})))
            } else {
                Ok(())
            };
        }
        match (thread_id, named) {
            (None, false) => Err((
                400,
                json!({"message": "Webhooks posted to forum channels must have a thread_name or thread_id", "code": 220001}),
            )),
            (Some(id), _) => match self.threads.iter().find(|t| t.id == id && t.webhook == webhook && !t.deleted) {
                None => Err((404, json!({"message": "Unknown Channel", "code": 10003}))),
                Some(thread) if thread.locked => Err((403, json!({"message": "Thread is locked", "code": 160005}))),
                Some(_) => Ok(()),
            },
            (None, true) => {
                let title = message["thread_name"].as_str().unwrap_or_default().to_lowercase();
                if self.blocked_words.iter().any(|word| title.contains(word.as_str())) {
                    return Err((400, json!({"message": "Title was blocked by automatic moderation", "code": 200001})));
                }
                let tagged = message["applied_tags"].as_array().is_some_and(|tags| !tags.is_empty());
                if self.tags_required.contains(&webhook) && !tagged {
                    return Err((
                        400,
                        json!({"message": "A tag is required to create a forum post in this channel", "code": 40067}),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Puts an accepted `message` where [`Forums::check`] said it goes.
    pub fn place(&mut self, webhook: u64, query: &str, message: &Value) -> Placed {
        if !self.is_forum(webhook) {
            return Placed::Channel;
        }
        if let Some(id) = thread_id(query) {
            if let Some(thread) = self.thread_mut(id) {
                thread.messages.push(message.clone());
            }
            return Placed::Thread(id);
        }
        let id = FIRST_THREAD_ID + self.threads.len() as u64;
        let tags = message["applied_tags"].as_array().cloned().unwrap_or_default();
        self.threads.push(Thread {
            id,
            webhook,
            name: message["thread_name"].as_str().unwrap_or_default().to_owned(),
            applied_tags: tags.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect(),
            deleted: false,
            locked: false,
            messages: vec![message.clone()],
        });
        Placed::Thread(id)
    }
}

/// The forum fields of a message, checked against Discord's documented limits.
pub fn validate(message: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(name) = message.get("thread_name").filter(|name| !name.is_null()) {
        match name.as_str() {
            Some(name) if name.trim().is_empty() => problems.push("thread_name: must not be empty".into()),
            Some(name) if name.chars().count() > 100 => {
                problems.push(format!("thread_name: {} > 100", name.chars().count()));
            }
            Some(_) => {}
            None => problems.push("thread_name: not a string".into()),
        }
    }
    if let Some(tags) = message.get("applied_tags").filter(|tags| !tags.is_null()) {
        let tags = tags.as_array().cloned().unwrap_or_default();
        if tags.len() > 5 {
            problems.push(format!("applied_tags: {} > 5", tags.len()));
        }
        if tags.iter().any(|tag| tag.as_str().is_none_or(|t| t.parse::<u64>().is_err())) {
            problems.push("applied_tags: every tag is a snowflake string".into());
        }
    }
    problems
}

/// The `thread_id` of a query string, if it has one that reads as a number.
fn thread_id(query: &str) -> Option<u64> {
    query.split('&').find_map(|pair| pair.strip_prefix("thread_id=")).and_then(|id| id.parse().ok())
}
