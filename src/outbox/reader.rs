//! The reader: a connection of its own for queries, so that deliveries and `/metrics` scrapes
//! never queue behind the writer's group commit. WAL lets it read while the writer writes; each
//! query reads the last committed state as of when it began, so it sees every write whose caller
//! has been answered.

use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;

use super::OutboxError;

/// A handle to the read connection. Cheap to clone.
#[derive(Clone)]
pub struct Reader {
    conn: Arc<Mutex<Connection>>,
}

impl Reader {
    pub fn new(conn: Connection) -> Self {
        Self { conn: Arc::new(Mutex::new(conn)) }
    }

    /// Runs the query `f` on the read connection, off the async workers.
    pub async fn read<R, F>(&self, f: F) -> Result<R, OutboxError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let conn = self.conn.clone();
        let query = move || {
            // A query that panicked left nothing half-done: statements are reset when dropped.
            let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn).map_err(OutboxError::from)
        };
        tokio::task::spawn_blocking(query).await.map_err(|_| OutboxError::Closed)?
    }

    /// Runs the query `f` on the read connection on this thread: for callers already off the
    /// async workers.
    pub fn read_blocking<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R, OutboxError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&conn).map_err(OutboxError::from)
    }
}
