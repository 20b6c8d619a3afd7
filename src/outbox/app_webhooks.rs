//! The relay's own (application-owned) webhooks, one per channel: their id and token, so that a
//! restart reuses them instead of making another. The token is a secret: it is stored like the
//! owner admins' webhook URLs (the file is 0600) and no `Debug` shows it.

use std::fmt;

use rusqlite::{params, OptionalExtension};

use super::{now_ms, Outbox, OutboxError};

/// The relay's webhook of a channel.
#[derive(Clone, PartialEq, Eq)]
pub struct AppWebhook {
    pub webhook_id: u64,
    /// The webhook's token: never log it.
    pub token: String,
}

impl fmt::Debug for AppWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppWebhook({}, [redacted])", self.webhook_id)
    }
}

/// Ids are stored as SQLite's signed integers; a snowflake fits (it is below 2^63).
fn to_sql(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

impl Outbox {
    /// The relay's webhook of `channel`, if one is stored.
    pub async fn app_webhook(&self, channel: u64) -> Result<Option<AppWebhook>, OutboxError> {
        self.reader
            .read(move |conn| {
                conn.query_row(
                    "SELECT webhook_id, token FROM app_webhooks WHERE channel_id = ?1",
                    params![to_sql(channel)],
                    |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
                )
                .optional()
            })
            .await
            .map(|found| found.and_then(|(id, token)| Some(AppWebhook { webhook_id: u64::try_from(id).ok()?, token })))
    }

    /// Stores `webhook` as the relay's webhook of `channel`, replacing the one before.
    pub async fn store_app_webhook(&self, channel: u64, webhook: AppWebhook) -> Result<(), OutboxError> {
        let now = now_ms();
        self.writer
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO app_webhooks (channel_id, webhook_id, token, created_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (channel_id) DO UPDATE SET webhook_id = ?2, token = ?3, created_at = ?4",
                    params![to_sql(channel), to_sql(webhook.webhook_id), webhook.token, now],
                )
            })
            .await
            .map(|_| ())
    }

    /// Forgets the webhook of `channel` if it is still `webhook_id` (Discord says it is gone).
    pub async fn forget_app_webhook(&self, channel: u64, webhook_id: u64) -> Result<(), OutboxError> {
        self.writer
            .call(move |conn| {
                conn.execute(
                    "DELETE FROM app_webhooks WHERE channel_id = ?1 AND webhook_id = ?2",
                    params![to_sql(channel), to_sql(webhook_id)],
                )
            })
            .await
            .map(|_| ())
    }
}
