//! Usernames that match what an admin is typing, for `/user`'s autocomplete.
//!
//! Marzban and PasarGuard: `GET /api/users?search=…&limit=25` answers `{users, total}`;
//! Marzneshin: `GET /api/users?username=…&size=25` answers a page `{items, total, …}` (its
//! `username` filter is a case-insensitive "contains"). Either shape is read whatever the family,
//! and the names are matched again here: a panel that ignored the filter still gives only matches.
//! Only names that are usernames (see [`is_username`]) are kept, at most [`SEARCH_RESULTS`].

use reqwest::Method;
use serde_json::Value;

use super::client::{unreadable, PanelClient};
use super::users::{is_username, USERNAME_MAX_CHARS};
use super::{Family, PanelError};

/// The most usernames answered: Discord shows at most 25 choices.
pub const SEARCH_RESULTS: usize = 25;

/// What the admin typed is cut to this many characters.
pub const SEARCH_MAX_CHARS: usize = USERNAME_MAX_CHARS;

const USERS: &str = "/api/users";

impl PanelClient {
    /// Up to [`SEARCH_RESULTS`] usernames containing `typed` (any case); all users' first ones when
    /// `typed` is empty. What no username can contain is answered with none, without asking.
    pub async fn search_users(&self, typed: &str) -> Result<Vec<String>, PanelError> {
        let typed: String = typed.trim().chars().take(SEARCH_MAX_CHARS).collect();
        if !typed.is_empty() && !typed.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b)) {
            return Ok(Vec::new());
        }
        // Only letters, digits and `_-.@` are left: nothing in it needs escaping in a query.
        let path = match (self.family().await, typed.is_empty()) {
            (Some(Family::Marzneshin), true) => format!("{USERS}?page=1&size={SEARCH_RESULTS}"),
            (Some(Family::Marzneshin), false) => format!("{USERS}?username={typed}&page=1&size={SEARCH_RESULTS}"),
            (_, true) => format!("{USERS}?offset=0&limit={SEARCH_RESULTS}"),
            (_, false) => format!("{USERS}?search={typed}&offset=0&limit={SEARCH_RESULTS}"),
        };
        let answer = self.call(Method::GET, &path, None, USERS).await?;
        usernames(&answer, &typed).map_err(|reason| unreadable(USERS, reason))
    }
}

/// The usernames of a user list that contain `typed` (any case), at most [`SEARCH_RESULTS`].
pub fn usernames(answer: &Value, typed: &str) -> Result<Vec<String>, String> {
    let items = ["users", "items"]
        .iter()
        .find_map(|key| answer.get(key).and_then(Value::as_array))
        .ok_or("no list of users")?;
    let typed = typed.to_ascii_lowercase();
    Ok(items
        .iter()
        .filter_map(|item| item.get("username").and_then(Value::as_str))
        .filter(|name| is_username(name) && name.to_ascii_lowercase().contains(&typed))
        .take(SEARCH_RESULTS)
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_either_list_and_keeps_only_matching_usernames() {
        let marzban = json!({"users": [{"username": "alice"}, {"username": "Malice"}, {"username": "bob"},
            {"username": "al/../x"}, {"username": 5}], "total": 5});
        assert_eq!(usernames(&marzban, "AL").unwrap(), vec!["alice", "Malice"]);
        let marzneshin = json!({"items": [{"username": "alice"}], "total": 1, "page": 1, "size": 25, "pages": 1});
        assert_eq!(usernames(&marzneshin, "").unwrap(), vec!["alice"]);
        let many: Vec<Value> = (0..100).map(|i| json!({"username": format!("u{i}")})).collect();
        assert_eq!(usernames(&json!({"users": many}), "u").unwrap().len(), SEARCH_RESULTS);
        assert!(usernames(&json!([]), "").is_err());
    }
}
