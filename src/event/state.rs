//! What a card shows of a user, kept between events so an edit can say what it changed.
//!
//! The panels send `user_updated` with the user's new state only. [`UserState`] is the part of a
//! user the cards show (status, limits, expiry, protocols or groups, next plan, note, owner; never
//! a secret), small enough to keep for every user; [`UserState::changes_since`] lists what differs
//! between two of them, as data: the words are the templates' (see `render`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Event;

/// The longest note kept, in bytes: a note edited only after this many bytes is not seen as changed.
pub const NOTE_KEPT_BYTES: usize = 256;

/// The most protocols or groups kept, each cut to [`NAME_KEPT_BYTES`].
pub const NAMES_KEPT: usize = 16;

/// The longest protocol, group, status or owner name kept, in bytes.
pub const NAME_KEPT_BYTES: usize = 32;

/// The largest a kept state is once serialised, in bytes ([`UserState::to_json`]).
pub const STATE_MAX_BYTES: usize = 1536;

/// The part of a user the cards show, as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_traffic: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_hold_expire_duration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_hold_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<String>,
    /// PasarGuard's `group_names`: what decides a PasarGuard user's access.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_plan: Option<PlanState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A next plan, as far as a card shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanState {
    pub data_limit: Option<i64>,
    pub expire_duration: Option<i64>,
    pub expire_date: Option<i64>,
    pub add_remaining_traffic: bool,
}

/// One field that differs between two states. `before`/`after` are the field's values as the
/// event gives them (bytes, unix seconds, words as the panel sends them), `null` for none; for
/// lists, `added` and `removed` name what came and went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `status`, `data_limit`, `used_traffic` (only when it went down: a usage reset), `expire`,
    /// `on_hold_expire_duration`, `on_hold_timeout`, `reset_strategy`, `protocols`, `groups`,
    /// `next_plan`, `note` or `owner`.
    pub field: &'static str,
    pub before: Value,
    pub after: Value,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl UserState {
    /// What `event` shows of its user; `None` for an event without one (`user_deleted`).
    pub fn of(event: &Event) -> Option<Self> {
        let user = event.user.as_ref()?;
        let groups = user
            .extra
            .get("group_names")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>());
        let state = Self {
            status: user.status.as_deref().map(|s| cut(s, NAME_KEPT_BYTES)),
            data_limit: user.data_limit,
            used_traffic: user.used_traffic,
            expire: user.expire,
            on_hold_expire_duration: user.on_hold_expire_duration,
            on_hold_timeout: user.on_hold_timeout,
            reset_strategy: user.data_limit_reset_strategy.as_deref().map(|s| cut(s, NAME_KEPT_BYTES)),
            protocols: names(&user.protocols),
            groups: names(&groups.unwrap_or_default()),
            next_plan: user.next_plan.as_ref().map(|plan| PlanState {
                data_limit: plan.data_limit,
                expire_duration: plan.expire_duration,
                expire_date: plan.expire_date,
                add_remaining_traffic: plan.add_remaining_traffic,
            }),
            note: user.note.as_deref().filter(|note| !note.is_empty()).map(|note| cut(note, NOTE_KEPT_BYTES)),
            owner: event.admin.as_ref().and_then(|a| a.username.as_deref()).map(|s| cut(s, NAME_KEPT_BYTES)),
        };
        Some(state.fitted())
    }

    /// `self` as [`UserState::to_json`] keeps it. The state an event shows is compared with one
    /// kept (read back from its JSON): were one cut and the other not, every later event would
    /// claim the dropped names and note as added.
    fn fitted(mut self) -> Self {
        if self.json_len_bound() <= STATE_MAX_BYTES {
            return self;
        }
        // Too large: drop the last protocol or group, else the note, else the names, until it fits.
        while serialised(&self).len() > STATE_MAX_BYTES {
            let dropped_a_name = self.groups.pop().is_some() || self.protocols.pop().is_some();
            if !dropped_a_name && self.note.take().is_none() {
                self.owner = None;
                self.status = None;
                self.reset_strategy = None;
            }
        }
        self
    }

    /// At least as long as the state's JSON, in bytes, counted without serialising it: every
    /// key, number and bracket fit in [`JSON_FIXED_BYTES`], and a string's byte takes at most
    /// six once escaped. An ordinary state is far under [`STATE_MAX_BYTES`] by this bound.
    fn json_len_bound(&self) -> usize {
        let strings = [&self.status, &self.reset_strategy, &self.note, &self.owner].into_iter().flatten();
        let strings = strings.chain(&self.protocols).chain(&self.groups);
        strings
            .fold(JSON_FIXED_BYTES, |bound, text| bound.saturating_add(text.len().saturating_mul(6)).saturating_add(3))
    }

    /// The state as JSON of at most [`STATE_MAX_BYTES`]: names escaped in JSON can take six
    /// times their bytes, so a state too large drops the last protocols and groups, then the
    /// note, until it fits ([`UserState::of`] cuts the same way). A change there is not seen;
    /// nothing else is.
    pub fn to_json(&self) -> String {
        let text = serialised(self);
        if text.len() <= STATE_MAX_BYTES {
            return text;
        }
        serialised(&self.clone().fitted())
    }

    /// What differs from `before` to `self`, in the order a card lists it. Used traffic counts only
    /// when it went down (a reset): it grows between any two events of an active user.
    pub fn changes_since(&self, before: &UserState) -> Vec<Change> {
        let mut changes = Vec::new();
        // Values are built only for the fields that differ: most events change nothing but usage.
        fn scalar<T: PartialEq + Clone + Into<Value>>(
            changes: &mut Vec<Change>,
            field: &'static str,
            old: &T,
            new: &T,
        ) {
            if old != new {
                let (before, after) = (old.clone().into(), new.clone().into());
                changes.push(Change { field, before, after, added: Vec::new(), removed: Vec::new() });
            }
        }
        scalar(&mut changes, "status", &before.status, &self.status);
        scalar(&mut changes, "data_limit", &before.data_limit, &self.data_limit);
        if self.used_traffic.unwrap_or(0) < before.used_traffic.unwrap_or(0) {
            scalar(&mut changes, "used_traffic", &before.used_traffic, &self.used_traffic);
        }
        scalar(&mut changes, "expire", &before.expire, &self.expire);
        scalar(&mut changes, "on_hold_expire_duration", &before.on_hold_expire_duration, &self.on_hold_expire_duration);
        scalar(&mut changes, "on_hold_timeout", &before.on_hold_timeout, &self.on_hold_timeout);
        scalar(&mut changes, "reset_strategy", &before.reset_strategy, &self.reset_strategy);
        for (field, old, new) in
            [("protocols", &before.protocols, &self.protocols), ("groups", &before.groups, &self.groups)]
        {
            if old == new {
                continue;
            }
            let added: Vec<String> = new.iter().filter(|name| !old.contains(name)).cloned().collect();
            let removed: Vec<String> = old.iter().filter(|name| !new.contains(name)).cloned().collect();
            if !added.is_empty() || !removed.is_empty() {
                changes.push(Change { field, before: old.clone().into(), after: new.clone().into(), added, removed });
            }
        }
        if before.next_plan != self.next_plan {
            let plan = |plan: &Option<PlanState>| serde_json::to_value(plan).unwrap_or(Value::Null);
            let (old, new) = (plan(&before.next_plan), plan(&self.next_plan));
            changes.push(Change {
                field: "next_plan",
                before: old,
                after: new,
                added: Vec::new(),
                removed: Vec::new(),
            });
        }
        scalar(&mut changes, "note", &before.note, &self.note);
        scalar(&mut changes, "owner", &before.owner, &self.owner);
        changes
    }

    /// Whether `self` is `kept` with the same or more usage, and nothing else changed.
    pub fn only_more_usage_than(&self, kept: &UserState) -> bool {
        // Every field named, so that a field added later is not forgotten here.
        let UserState {
            status,
            data_limit,
            used_traffic,
            expire,
            on_hold_expire_duration,
            on_hold_timeout,
            reset_strategy,
            protocols,
            groups,
            next_plan,
            note,
            owner,
        } = self;
        used_traffic.unwrap_or(0) >= kept.used_traffic.unwrap_or(0)
            && *status == kept.status
            && *data_limit == kept.data_limit
            && *expire == kept.expire
            && *on_hold_expire_duration == kept.on_hold_expire_duration
            && *on_hold_timeout == kept.on_hold_timeout
            && *reset_strategy == kept.reset_strategy
            && *protocols == kept.protocols
            && *groups == kept.groups
            && *next_plan == kept.next_plan
            && *note == kept.note
            && *owner == kept.owner
    }
}

/// More than a state's JSON takes besides its strings: the keys (about 200 bytes), eight numbers
/// of at most 20 characters, a boolean, and the brackets, colons and commas.
const JSON_FIXED_BYTES: usize = 512;

/// `state` as JSON, whatever its size.
fn serialised(state: &UserState) -> String {
    serde_json::to_string(state).expect("a user state always serialises")
}

/// At most [`NAMES_KEPT`] names, each cut to [`NAME_KEPT_BYTES`].
fn names(list: &[String]) -> Vec<String> {
    list.iter().take(NAMES_KEPT).map(|name| cut(name, NAME_KEPT_BYTES)).collect()
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_kept_as_it_reads_back_and_its_bound_is_never_short() {
        let hidden = "\u{1}".repeat(1000);
        let numbers = UserState {
            status: Some(String::new()),
            data_limit: Some(i64::MIN),
            used_traffic: Some(i64::MIN),
            expire: Some(i64::MIN),
            on_hold_expire_duration: Some(i64::MIN),
            on_hold_timeout: Some(i64::MIN),
            reset_strategy: Some(String::new()),
            next_plan: Some(PlanState {
                data_limit: Some(i64::MIN),
                expire_duration: Some(i64::MIN),
                expire_date: Some(i64::MIN),
                add_remaining_traffic: false,
            }),
            note: Some(String::new()),
            owner: Some(String::new()),
            ..UserState::default()
        };
        let too_large = UserState {
            note: Some(cut(&hidden, NOTE_KEPT_BYTES)),
            protocols: names(&vec![hidden.clone(); 100]),
            groups: names(&vec!["\"".repeat(32); 100]),
            ..numbers.clone()
        };
        for state in [UserState::default(), numbers, too_large.clone()] {
            assert!(state.json_len_bound() >= serialised(&state).len(), "the bound is at least the length: {state:?}");
        }
        let kept: UserState = serde_json::from_str(&too_large.to_json()).unwrap();
        assert_ne!(kept, too_large, "a state too large loses its last names");
        assert_eq!(too_large.fitted(), kept, "the state of an event is cut as the kept one reads back");
    }

    #[test]
    fn the_largest_state_stays_under_its_bound() {
        let long = "ж".repeat(1000);
        let state = UserState {
            status: Some(cut(&long, NAME_KEPT_BYTES)),
            data_limit: Some(i64::MIN),
            used_traffic: Some(i64::MIN),
            expire: Some(i64::MIN),
            on_hold_expire_duration: Some(i64::MIN),
            on_hold_timeout: Some(i64::MIN),
            reset_strategy: Some(cut(&long, NAME_KEPT_BYTES)),
            protocols: names(&vec![long.clone(); 100]),
            groups: names(&vec![long.clone(); 100]),
            next_plan: Some(PlanState {
                data_limit: Some(i64::MIN),
                expire_duration: Some(i64::MIN),
                expire_date: Some(i64::MIN),
                add_remaining_traffic: true,
            }),
            note: Some(cut(&long, NOTE_KEPT_BYTES)),
            owner: Some(cut(&long, NAME_KEPT_BYTES)),
        };
        let size = state.to_json().len();
        assert!(size <= STATE_MAX_BYTES, "{size} bytes");
        let hidden = "\u{1}".repeat(1000);
        let escaped = UserState {
            note: Some(cut(&hidden, NOTE_KEPT_BYTES)),
            protocols: names(&vec![hidden.clone(); 100]),
            owner: Some(cut(&hidden, NAME_KEPT_BYTES)),
            ..state.clone()
        };
        assert!(escaped.to_json().len() <= STATE_MAX_BYTES, "six bytes a character once escaped");
        let kept: UserState = serde_json::from_str(&state.to_json()).unwrap();
        assert_eq!((kept.data_limit, kept.next_plan), (state.data_limit, state.next_plan.clone()), "numbers stay");
    }

    #[test]
    fn lists_only_what_changed() {
        let before = UserState {
            status: Some("active".into()),
            data_limit: Some(10),
            used_traffic: Some(5),
            protocols: vec!["vless".into(), "vmess".into()],
            ..UserState::default()
        };
        let after = UserState {
            data_limit: Some(20),
            used_traffic: Some(7),
            protocols: vec!["vless".into(), "trojan".into()],
            ..before.clone()
        };
        let changes = after.changes_since(&before);
        let fields: Vec<&str> = changes.iter().map(|c| c.field).collect();
        assert_eq!(fields, ["data_limit", "protocols"], "usage that grew is no change");
        assert_eq!(
            (changes[1].added.clone(), changes[1].removed.clone()),
            (vec!["trojan".into()], vec!["vmess".into()])
        );
        let reset = UserState { used_traffic: Some(0), ..before.clone() };
        assert_eq!(reset.changes_since(&before)[0].field, "used_traffic");
        assert!(before.changes_since(&before).is_empty());
    }
}
