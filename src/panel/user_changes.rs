//! Two changes to a user besides those of [`super::users`]: adding traffic (the data limit raised
//! by a number of GiB) and deleting the user.
//!
//! Marzban and PasarGuard: `PUT /api/user/{username}` with the new `data_limit` (the panel answers
//! the user as they now are, and sends `user_updated`, with `user_enabled` when a limited user is
//! active again), and `DELETE /api/user/{username}` (answered `{"detail": …}` by Marzban, `204`
//! without a body by PasarGuard; the panel sends `user_deleted`). Marzneshin's are not built yet.

use reqwest::Method;
use serde_json::json;

use super::users::{is_username, PanelUser, USER_ANSWER_MAX_BYTES};
use super::{Family, PanelClient, PanelError};

/// A gibibyte, the unit of `DISCORD_TRAFFIC_GIB`.
pub const GIB: u64 = 1 << 30;

/// The highest data limit the relay sets: 1 EiB, far above any plan and well inside the signed
/// 64-bit integer the panels store it in. An addition that would pass it stops there.
pub const TRAFFIC_LIMIT_MAX: u64 = 1 << 60;

/// What adding traffic did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrafficAdded {
    /// The data limit was raised; the user as the panel now has them.
    Raised(PanelUser),
    /// The user has no data limit: left as they are (a limit of N GiB would cut them off).
    Unlimited(PanelUser),
    /// The data limit is at [`TRAFFIC_LIMIT_MAX`] already: left as it is.
    AtMost(PanelUser),
}

impl PanelClient {
    /// Raises the user's data limit by `gib` GiB, to at most [`TRAFFIC_LIMIT_MAX`]. Reads the user
    /// first (the panel takes a new limit, not an addition): a change made by someone else between
    /// the two calls is overwritten, as with `extend`.
    pub async fn add_traffic(&self, username: &str, gib: u32) -> Result<TrafficAdded, PanelError> {
        let user = self.user(username).await?;
        let Some(limit) = user.data_limit else {
            return Ok(TrafficAdded::Unlimited(user));
        };
        let Some(raised) = raised_limit(limit, gib) else {
            return Ok(TrafficAdded::AtMost(user));
        };
        let body = json!({ "data_limit": raised });
        self.user_call(Method::PUT, username, "", Some(&body)).await.map(TrafficAdded::Raised)
    }

    /// Deletes the user from the panel. A user the panel does not know is
    /// `Status { status: 404, .. }`.
    pub async fn delete_user(&self, username: &str) -> Result<(), PanelError> {
        const NAME: &str = "/api/user/{username}";
        if !is_username(username) {
            return Err(PanelError::Status { status: 404, path: NAME });
        }
        if self.family().await == Some(Family::Marzneshin) {
            return Err(PanelError::Unsupported("user actions on Marzneshin"));
        }
        let path = format!("/api/user/{username}");
        self.call_capped(Method::DELETE, &path, None, NAME, USER_ANSWER_MAX_BYTES).await.map(|_| ())
    }
}

/// `limit` raised by `gib` GiB, at most [`TRAFFIC_LIMIT_MAX`]; `None` when it is there already.
fn raised_limit(limit: u64, gib: u32) -> Option<u64> {
    if limit >= TRAFFIC_LIMIT_MAX {
        return None;
    }
    let added = u64::from(gib).saturating_mul(GIB);
    Some(limit.checked_add(added).map_or(TRAFFIC_LIMIT_MAX, |raised| raised.min(TRAFFIC_LIMIT_MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_raised_by_whole_gib_and_never_past_the_highest() {
        assert_eq!(raised_limit(1_048_576, 10), Some(1_048_576 + 10 * GIB));
        assert_eq!(raised_limit(TRAFFIC_LIMIT_MAX - GIB, 50), Some(TRAFFIC_LIMIT_MAX), "clamped");
        assert_eq!(raised_limit(u64::MAX - 1, u32::MAX), None, "a panel's absurd limit is left as it is");
        assert_eq!(raised_limit(TRAFFIC_LIMIT_MAX, 1), None);
        assert_eq!(raised_limit(GIB, u32::MAX), Some(TRAFFIC_LIMIT_MAX), "4 EiB more: clamped, no overflow");
    }
}
