//! Users' states in memory, for ingest's read-modify-write of them: which users a request is
//! reading and writing, so that two requests about one user take turns (the second shows the
//! change since the first, not since what both read); and the states of the users seen most
//! recently, exactly as committed, so that reading a known user's state needs no query.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

#[cfg(doc)]
use crate::event::UserState;

/// A user, by panel label (`""` for none) and username.
pub type UserKey = (String, String);

/// What a request tells about a user's state: the state it showed last, or that the user is gone.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenState {
    pub panel: String,
    pub username: String,
    /// The state as stored ([`UserState::to_json`]); `None`: the user was deleted, their state
    /// is forgotten. Shared: the cache and the write hold the same text.
    pub state: Option<Arc<str>>,
    /// When it was seen, unix ms.
    pub seen_at_ms: i64,
}

/// How many users' states are kept in memory at most: two generations of half as many each (a
/// user read or written goes into the newer one; when it is full, the older one is dropped). A
/// state takes about 300 bytes in memory, so this is about 6 MiB.
pub const CACHED_USERS: usize = 20_000;

/// How long a request waits for another request about the same user to be stored before it is
/// answered 503 (and the panel sends it again): as long as SQLite waits for its write lock.
pub const TURN_TIMEOUT: Duration = Duration::from_secs(5);

/// A state as stored ([`UserState::to_json`]) and when it was written (unix ms). Kept as its text:
/// one allocation a user, where a parsed state takes a dozen. With 20,000 parsed states in the
/// cache, half of them dropped at once every 10,000 users, every allocation of ingest got slower
/// (docs/BENCHMARKS.md, "Users' states").
pub type Stored = (Arc<str>, i64);

#[derive(Default)]
pub struct StateCache {
    inner: Mutex<Inner>,
    /// Signalled whenever users are let go.
    freed: Condvar,
}

#[derive(Default)]
struct Inner {
    newer: HashMap<UserKey, Stored>,
    older: HashMap<UserKey, Stored>,
    /// Users whose state a request has read and has not stored yet.
    busy: HashSet<UserKey>,
}

/// The turn of a request on its users: while it lives, no other request reads their states.
/// Dropping it (once the request's states are committed, or given up) lets them go.
pub struct StatesHeld {
    cache: Arc<StateCache>,
    users: Vec<UserKey>,
    /// What the cache is to hold of the users once the request is stored (see
    /// [`StatesHeld::remember`]).
    latest: Vec<SeenState>,
}

impl std::fmt::Debug for StatesHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StatesHeld({} users)", self.users.len())
    }
}

impl StatesHeld {
    /// What the cache is to hold once the request is stored: each user's last state (`None`:
    /// deleted), with the time the outbox has for it. It may be newer than what the request
    /// writes: a state that only has more usage is not written again within a day.
    pub fn remember(&mut self, latest: Vec<SeenState>) {
        self.latest = latest;
    }

    /// The request's states are committed: the cache takes the states [`StatesHeld::remember`]
    /// was given (and forgets deleted users), then the users are let go.
    pub fn stored(mut self) {
        let mut inner = self.cache.lock();
        for seen in std::mem::take(&mut self.latest) {
            let user = (seen.panel, seen.username);
            match seen.state {
                Some(state) => inner.put(user, (state, seen.seen_at_ms)),
                None => inner.forget(&user),
            }
        }
        let users = std::mem::take(&mut self.users);
        inner.release(&users);
        drop(inner);
        self.cache.freed.notify_all();
    }
}

impl Drop for StatesHeld {
    /// Let go without [`StatesHeld::stored`]: the request failed, or was dropped while its write
    /// may still commit, so what the cache has of its users may be out of date: it forgets them
    /// (the next request reads them from the outbox).
    fn drop(&mut self) {
        if self.users.is_empty() {
            return;
        }
        let mut inner = self.cache.lock();
        for user in &self.users {
            inner.forget(user);
        }
        inner.release(&self.users);
        drop(inner);
        self.cache.freed.notify_all();
    }
}

impl StateCache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change to `Inner` is a single map operation, whole once it returns.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits (blocking, at most [`TURN_TIMEOUT`]) until no other request holds any of `users`, then
    /// holds them all at once (all or none, so two requests never wait for each other), and
    /// returns the states cached of them with the users not cached. `None` on timeout.
    pub fn take_turn(
        self: &Arc<Self>,
        users: &[UserKey],
    ) -> Option<(StatesHeld, HashMap<UserKey, Stored>, Vec<UserKey>)> {
        let deadline = Instant::now().checked_add(TURN_TIMEOUT)?;
        let mut inner = self.lock();
        while users.iter().any(|user| inner.busy.contains(user)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            inner = self.freed.wait_timeout(inner, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        for user in users {
            inner.busy.insert(user.clone());
            match inner.get(user) {
                Some(stored) => {
                    found.insert(user.clone(), stored);
                }
                None => missing.push(user.clone()),
            }
        }
        Some((StatesHeld { cache: self.clone(), users: users.to_vec(), latest: Vec::new() }, found, missing))
    }

    /// Forgets every cached state: the outbox forgot some (retention, its bound, room).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.newer = HashMap::new();
        inner.older = HashMap::new();
    }
}

impl Inner {
    fn get(&mut self, user: &UserKey) -> Option<Stored> {
        if let Some(stored) = self.newer.get(user) {
            return Some(stored.clone());
        }
        let stored = self.older.remove(user)?;
        self.put(user.clone(), stored.clone());
        Some(stored)
    }

    fn forget(&mut self, user: &UserKey) {
        self.newer.remove(user);
        self.older.remove(user);
    }

    fn release(&mut self, users: &[UserKey]) {
        for user in users {
            self.busy.remove(user);
        }
    }

    fn put(&mut self, user: UserKey, stored: Stored) {
        self.older.remove(&user);
        if self.newer.len() >= CACHED_USERS / 2 && !self.newer.contains_key(&user) {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(user, stored);
    }
}
