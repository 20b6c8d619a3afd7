//! The writer: one thread owns the connection that writes. Every write is a job sent to it; the
//! thread takes all jobs that are waiting, runs them in one transaction (each inside its own
//! savepoint, so one failing job does not undo the others), commits once, and only then answers
//! each caller. So many concurrent requests share one fsync (group commit), and an answer always
//! means "committed".

use std::collections::VecDeque;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::OutboxError;

/// How many queued jobs one transaction takes at most.
const JOBS_PER_TRANSACTION: usize = 512;

/// How many jobs may wait for the writer before callers wait to enqueue.
const QUEUE_DEPTH: usize = 4096;

type Completion = Box<dyn FnOnce(Result<(), OutboxError>) + Send>;
/// A unit of work for the writer thread. It gets no connection when the transaction could not be
/// opened; it then must not touch storage and only hands back its completion.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Completion) + Send>;

/// A handle to the writer thread, which stops when the last handle is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn start(conn: Connection) -> Result<Self, OutboxError> {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || writer_loop(conn, queue))
            .map_err(|err| OutboxError::Storage(format!("cannot start the writer thread: {err}")))?;
        Ok(Self { jobs })
    }

    /// Runs `f` on the writer thread inside the next group transaction and returns its result once
    /// that transaction has committed. An error from `f` undoes what `f` did, and only that.
    pub async fn call<R, E, F>(&self, f: F) -> Result<R, OutboxError>
    where
        R: Send + 'static,
        E: Into<OutboxError>,
        F: FnOnce(&Connection) -> Result<R, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Some(conn) => f(conn).map_err(Into::into),
                None => Err(OutboxError::Storage("no transaction could be opened".into())),
            };
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let _ = reply.send(commit.and(result));
            });
            (ok, completion)
        });
        self.jobs.send(job).await.map_err(|_| OutboxError::Closed)?;
        answer.await.map_err(|_| OutboxError::Closed)?
    }
}

fn writer_loop(conn: Connection, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < JOBS_PER_TRANSACTION {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        run_group(&conn, jobs);
    }
}

/// Runs `jobs` in one transaction, each in a savepoint, then answers them all with the commit's
/// outcome. If SQLite rolls the whole transaction back by itself (it does on a full disk), the jobs
/// run so far are answered with the error and the rest go on in a new transaction.
fn run_group(conn: &Connection, jobs: Vec<Job>) {
    let mut jobs: VecDeque<Job> = jobs.into();
    while !jobs.is_empty() {
        if let Err(err) = conn.execute_batch("BEGIN IMMEDIATE") {
            let err = OutboxError::from(err);
            for job in jobs.drain(..) {
                let (_, complete) = job(None);
                complete(Err(err.clone()));
            }
            return;
        }
        let mut completions = Vec::new();
        let mut rolled_back = false;
        while let Some(job) = jobs.pop_front() {
            let (ok, complete) = match conn.execute_batch("SAVEPOINT job") {
                Ok(()) => job(Some(conn)),
                Err(_) => job(None),
            };
            completions.push(complete);
            if conn.is_autocommit() {
                rolled_back = true;
                break;
            }
            let end = if ok { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
            if let Err(err) = conn.execute_batch(end) {
                log::error!("outbox: could not end a savepoint: {err}");
            }
        }
        let commit =
            if rolled_back { Err(OutboxError::Full) } else { conn.execute_batch("COMMIT").map_err(OutboxError::from) };
        if let Err(err) = &commit {
            log::error!("outbox: nothing of this group of writes was stored: {err}");
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        for complete in completions {
            complete(commit.clone());
        }
    }
}
