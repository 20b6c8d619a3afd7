//! Who may act, how often, and not twice: the member's roles and id against `DISCORD_ACTORS`,
//! the guild against `DISCORD_GUILD_IDS`, a rate per clicker, and one action per user and kind
//! within [`ONCE_WITHIN`] (double clicks, Discord's retries).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serenity::model::guild::Member;
use serenity::model::id::GuildId;

use super::settings::BotSettings;
use super::verify::MAX_SKEW;

/// A clicker may make this many interactions per [`RATE_WINDOW`].
pub const RATE_PER_WINDOW: usize = 20;
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// A member's autocompletes (one per keystroke) per [`RATE_WINDOW`]: a rate of their own, so
/// typing a long username does not use up the rate of the command being typed.
pub const KEYSTROKES_PER_WINDOW: usize = 60;

/// The same action on the same user within this long acts once.
pub const ONCE_WITHIN: Duration = Duration::from_secs(5);

/// The most clickers and recent actions remembered; past it, new ones are refused until old ones
/// expire (never more memory).
pub const MAX_REMEMBERED: usize = 1024;

/// An interaction id is remembered this long: a replay's signature timestamp is accepted for
/// `MAX_SKEW` either side of the relay's clock, so twice that covers every replay it lets through.
pub const SEEN_FOR: Duration = Duration::from_secs(2 * MAX_SKEW.as_secs());

/// The most interaction ids remembered; past it, new interactions are refused until old ones
/// expire (Discord's volume for one guild's admins is far below it).
pub const MAX_SEEN: usize = 8192;

pub struct Guard {
    actors: BTreeSet<u64>,
    guilds: Vec<u64>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Per clicker, the times of their interactions in the window.
    clicks: HashMap<u64, Vec<Instant>>,
    /// Per member, the times of their autocompletes in the window.
    keystrokes: HashMap<u64, Vec<Instant>>,
    /// Per (action, panel, username), when it was last claimed or done.
    recent: HashMap<Key, Stamp>,
    /// Per interaction id, when it was first answered.
    seen: HashMap<u64, Instant>,
}

/// An action on a user of a panel.
type Key = (String, String, String);

/// When an action was claimed, and whether it is still being carried out.
#[derive(Clone, Copy)]
struct Stamp {
    at: Instant,
    under_way: bool,
}

/// An action claimed by [`Guard::once`]: while it is held the same action is refused, and once
/// it is dropped (the panel answered, or gave up) for [`ONCE_WITHIN`] more.
/// A claim never [`Claim::started`] (the relay was too busy to ask the panel) is let go: nothing
/// was done, so the member may try again at once.
pub struct Claim {
    guard: Arc<Guard>,
    key: Key,
    started: bool,
}

impl Claim {
    /// The panel is being asked.
    pub fn started(mut self) -> Self {
        self.started = true;
        self
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut state = self.guard.state.lock().unwrap_or_else(|e| e.into_inner());
        let key = std::mem::take(&mut self.key);
        if self.started {
            state.recent.insert(key, Stamp { at: Instant::now(), under_way: false });
        } else {
            state.recent.remove(&key);
        }
    }
}

/// Why an interaction is not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotAnActor,
    TooFast,
    AlreadyDone,
    /// The same signed interaction again (a captured request sent a second time).
    Replayed,
}

impl Guard {
    pub fn new(settings: &BotSettings) -> Self {
        Self { actors: settings.actors.clone(), guilds: settings.guild_ids.clone(), state: Mutex::default() }
    }

    /// Whether `member`, in `guild`, may act at all: in a configured guild (any when none is
    /// configured), and their id or one of their roles listed. Outside a guild nobody may.
    pub fn is_actor(&self, guild: Option<GuildId>, member: Option<&Member>) -> bool {
        let (Some(guild), Some(member)) = (guild, member) else {
            return false;
        };
        let in_guild = self.guilds.is_empty() || self.guilds.contains(&guild.get());
        let listed = self.actors.contains(&member.user.id.get())
            || member.roles.iter().any(|role| self.actors.contains(&role.get()));
        in_guild && listed
    }

    /// Counts one interaction of `clicker` at `now`; `Err` past the rate.
    pub fn click(&self, clicker: u64, now: Instant) -> Result<(), Refusal> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        count(&mut state.clicks, clicker, now, RATE_PER_WINDOW)
    }

    /// Counts one autocomplete of `member` at `now`; `Err` past [`KEYSTROKES_PER_WINDOW`].
    pub fn keystroke(&self, member: u64, now: Instant) -> Result<(), Refusal> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        count(&mut state.keystrokes, member, now, KEYSTROKES_PER_WINDOW)
    }

    /// Claims the interaction `id` at `now`; `Err` when it was answered already (Discord sends an
    /// interaction once: a second one is a replay of a captured request).
    pub fn first_time(&self, id: u64, now: Instant) -> Result<(), Refusal> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < SEEN_FOR;
        if state.seen.contains_key(&id) {
            return Err(Refusal::Replayed);
        }
        if state.seen.len() >= MAX_SEEN {
            state.seen.retain(|_, at| fresh(at));
            if state.seen.len() >= MAX_SEEN {
                return Err(Refusal::TooFast);
            }
        }
        state.seen.insert(id, now);
        Ok(())
    }

    /// Claims `action` on `username` of `panel` at `now`; `Err` while the same is under way (a
    /// slow panel), and within [`ONCE_WITHIN`] of its end.
    pub fn once(guard: &Arc<Self>, action: &str, panel: &str, username: &str, now: Instant) -> Result<Claim, Refusal> {
        let mut state = guard.state.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = |stamp: &Stamp| stamp.under_way || now.saturating_duration_since(stamp.at) < ONCE_WITHIN;
        let key = (action.to_owned(), panel.to_owned(), username.to_owned());
        if state.recent.get(&key).is_some_and(fresh) {
            return Err(Refusal::AlreadyDone);
        }
        if state.recent.len() >= MAX_REMEMBERED {
            state.recent.retain(|_, stamp| fresh(stamp));
            if state.recent.len() >= MAX_REMEMBERED {
                return Err(Refusal::TooFast);
            }
        }
        state.recent.insert(key.clone(), Stamp { at: now, under_way: true });
        Ok(Claim { guard: Arc::clone(guard), key, started: false })
    }
}

/// Counts one of `who`'s interactions at `now` in `times`, at most `per_window` per
/// [`RATE_WINDOW`]; at most [`MAX_REMEMBERED`] members are remembered.
fn count(times: &mut HashMap<u64, Vec<Instant>>, who: u64, now: Instant, per_window: usize) -> Result<(), Refusal> {
    let fresh = |at: &Instant| now.saturating_duration_since(*at) < RATE_WINDOW;
    if times.len() >= MAX_REMEMBERED && !times.contains_key(&who) {
        times.retain(|_, times| times.iter().any(fresh));
        if times.len() >= MAX_REMEMBERED {
            return Err(Refusal::TooFast);
        }
    }
    let recent = times.entry(who).or_default();
    recent.retain(fresh);
    if recent.len() >= per_window {
        return Err(Refusal::TooFast);
    }
    recent.push(now);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard { actors: BTreeSet::from([10]), guilds: vec![1], state: Mutex::default() }
    }

    #[test]
    fn a_clicker_is_rate_limited_and_an_action_acts_once() {
        let guard = guard();
        let start = Instant::now();
        for _ in 0..RATE_PER_WINDOW {
            assert_eq!(guard.click(7, start), Ok(()));
        }
        assert_eq!(guard.click(7, start), Err(Refusal::TooFast));
        assert_eq!(guard.click(8, start), Ok(()), "another clicker has a rate of their own");
        assert_eq!(guard.click(7, start + RATE_WINDOW), Ok(()));

        let guard = Arc::new(guard);
        let once = |action: &str, panel: &str, at: Instant| {
            Guard::once(&guard, action, panel, "alice", at).map(|claim| drop(claim.started()))
        };
        let unused = Guard::once(&guard, "reset", "eu1", "alice", start).unwrap();
        drop(unused);
        let claim = Guard::once(&guard, "reset", "eu1", "alice", start).unwrap().started();
        assert_eq!(once("reset", "eu1", start + ONCE_WITHIN * 3), Err(Refusal::AlreadyDone), "still under way");
        drop(claim);
        let done = Instant::now();
        assert_eq!(once("reset", "eu1", done + Duration::from_secs(1)), Err(Refusal::AlreadyDone));
        assert_eq!(once("revoke", "eu1", start), Ok(()));
        assert_eq!(once("reset", "de2", start), Ok(()), "a namesake on another panel");
        assert_eq!(once("reset", "eu1", done + ONCE_WITHIN), Ok(()));
    }

    #[test]
    fn an_actor_is_listed_by_id_or_role_in_a_configured_guild_only() {
        let member = |id: u64, roles: &[u64]| -> Member {
            serde_json::from_value(serde_json::json!({"user": {"id": id.to_string(), "username": "m"},
                "roles": roles.iter().map(u64::to_string).collect::<Vec<_>>(), "deaf": false, "mute": false,
                "flags": 0, "joined_at": null}))
            .unwrap()
        };
        let guard = guard();
        let (home, other) = (Some(GuildId::new(1)), Some(GuildId::new(2)));
        assert!(guard.is_actor(home, Some(&member(10, &[]))), "listed by user id");
        assert!(guard.is_actor(home, Some(&member(5, &[3, 10]))), "listed by role");
        assert!(!guard.is_actor(home, Some(&member(5, &[3]))), "not listed");
        assert!(!guard.is_actor(other, Some(&member(10, &[]))), "another guild");
        assert!(!guard.is_actor(None, Some(&member(10, &[]))), "a direct message");
        assert!(!guard.is_actor(home, None));
    }

    #[test]
    fn an_interaction_is_answered_once_and_the_ids_remembered_are_bounded() {
        let guard = guard();
        let start = Instant::now();
        assert_eq!(guard.first_time(1, start), Ok(()));
        assert_eq!(guard.first_time(1, start + Duration::from_secs(299)), Err(Refusal::Replayed));
        for id in 2..=MAX_SEEN as u64 {
            guard.first_time(id, start).unwrap();
        }
        assert_eq!(guard.first_time(u64::MAX, start), Err(Refusal::TooFast), "full: refused, never grown");
        assert_eq!(guard.first_time(u64::MAX, start + SEEN_FOR), Ok(()), "expired ids make room");
    }

    #[test]
    fn remembers_a_bounded_number_of_clickers() {
        let guard = guard();
        let start = Instant::now();
        for clicker in 0..MAX_REMEMBERED as u64 {
            guard.click(clicker, start).unwrap();
        }
        assert_eq!(guard.click(u64::MAX, start), Err(Refusal::TooFast));
        assert_eq!(guard.click(u64::MAX, start + RATE_WINDOW), Ok(()), "expired clickers make room");
    }
}
