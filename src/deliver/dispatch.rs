//! Starting, waking and stopping the destination tasks: one per destination, started when a
//! destination is first named (an owner admin's webhook) and stopped when it is forgotten; and the
//! hourly pruning of delivered rows, unused owner webhooks and the reports' old tally.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::supervise::{keep_running, supervise, PRUNE_TASK};
use super::Services;
use crate::destination::{Destination, Origin, OwnerDestinations};
use crate::outbox::{now_ms, OutboxError};
use crate::routing::Router;

/// How often delivered rows past their retention are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// The running delivery tasks, one per destination, and the hourly pruning of delivered rows and
/// of owner admins' webhooks that are no longer used.
pub struct Delivery {
    dispatch: Dispatch,
}

/// Starts and wakes destination tasks. Cheap to clone. A destination named for the first time (an
/// owner admin's webhook) gets its task then; one that is forgotten loses it.
#[derive(Clone)]
pub struct Dispatch {
    inner: Arc<DispatchInner>,
}

struct DispatchInner {
    services: Services,
    /// The owner admins' webhooks in use, with `DELIVER_TO_OWNER_ADMIN`.
    owners: Option<Arc<OwnerDestinations>>,
    /// By destination name. A stopped task stays until it is replaced or has finished.
    tasks: Mutex<HashMap<String, Task>>,
    prune: Mutex<Option<JoinHandle<()>>>,
    shutdown: CancellationToken,
}

/// One destination's task.
struct Task {
    wake: Arc<Notify>,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl Dispatch {
    fn new(services: Services, owners: Option<Arc<OwnerDestinations>>) -> Self {
        let inner = DispatchInner {
            services,
            owners,
            tasks: Mutex::new(HashMap::new()),
            prune: Mutex::new(None),
            shutdown: CancellationToken::new(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Tells `destination`'s task that new rows are waiting, starting the task if it has none.
    pub fn wake(&self, destination: &Arc<Destination>) {
        let inner = &self.inner;
        let Ok(mut tasks) = inner.tasks.lock() else { return };
        if inner.shutdown.is_cancelled() {
            return;
        }
        let stopped = match tasks.get(&destination.name) {
            Some(task) if !task.stop.is_cancelled() => {
                task.wake.notify_one();
                return;
            }
            Some(_) => tasks.remove(&destination.name).map(|task| task.handle),
            None => None,
        };
        if let Some(owners) = inner.owners.as_ref().filter(|_| destination.origin() == Origin::Owner) {
            // Rows were stored for it: it is in use, even if it was forgotten meanwhile.
            owners.restore(destination);
        }
        let wake = Arc::new(Notify::new());
        let stop = inner.shutdown.child_token();
        let run = supervise(destination.clone(), inner.services.clone(), wake.clone(), stop.clone());
        let handle = tokio::spawn(async move {
            // A stopped task of the same destination may still be finishing its last request; two
            // tasks never send for one destination at once.
            if let Some(stopped) = stopped {
                let _ = stopped.await;
            }
            run.await;
        });
        tasks.insert(destination.name.clone(), Task { wake, stop, handle });
    }

    /// The destinations that have a running task.
    pub fn running(&self) -> Vec<String> {
        let Ok(tasks) = self.inner.tasks.lock() else { return Vec::new() };
        tasks.iter().filter(|(_, task)| !task.stop.is_cancelled()).map(|(name, _)| name.clone()).collect()
    }

    /// Deletes delivered rows that were delivered before `before_ms`, then forgets every owner
    /// admin's webhook that has no rows left: its URL leaves the outbox, its task stops and its
    /// place under `OWNER_DESTINATIONS_MAX` is free. Returns how many rows and webhooks went.
    pub async fn prune(&self, before_ms: i64) -> Result<(usize, usize), OutboxError> {
        let outbox = &self.inner.services.outbox;
        let deleted = outbox.purge_delivered(before_ms).await?;
        outbox.forget_old_digest_posts().await?;
        let candidates = self.inner.owners.as_ref().map(|owners| owners.names()).unwrap_or_default();
        let dispatch = self.clone();
        let forgotten = outbox.forget_unused_destinations(candidates, move |names| dispatch.stop_tasks(names)).await?;
        Ok((deleted, forgotten.len()))
    }

    /// Stops the tasks of `names` (forgotten destinations) and frees their places.
    fn stop_tasks(&self, names: &[String]) {
        let inner = &self.inner;
        if let Ok(mut tasks) = inner.tasks.lock() {
            tasks.retain(|_, task| !(task.stop.is_cancelled() && task.handle.is_finished()));
            for task in names.iter().filter_map(|name| tasks.get(name)) {
                task.stop.cancel();
            }
        }
        for name in names {
            if let Some(owners) = &inner.owners {
                owners.forget(name);
            }
            inner.services.health.forget(name);
        }
    }
}

impl Delivery {
    /// Starts a task for every destination of `router` and for `stored` ones (owner admins' webhooks
    /// with rows still pending), and one that prunes what is older than its retention.
    pub fn start(router: &Router, stored: Vec<Destination>, services: Services, retention: Retention) -> Self {
        let dispatch = Dispatch::new(services, router.owners().cloned());
        for destination in router.destinations().iter().cloned().chain(stored.into_iter().map(Arc::new)) {
            dispatch.wake(&destination);
        }
        let prune = {
            let (dispatch, shutdown) = (dispatch.clone(), dispatch.inner.shutdown.child_token());
            tokio::spawn(async move {
                let services = &dispatch.inner.services;
                let (health, metrics) = (services.health.clone(), services.metrics.clone());
                keep_running(PRUNE_TASK, &health, &metrics, &shutdown, || {
                    prune(dispatch.clone(), retention, shutdown.clone())
                })
                .await;
            })
        };
        if let Ok(mut slot) = dispatch.inner.prune.lock() {
            *slot = Some(prune);
        }
        Self { dispatch }
    }

    /// A handle that wakes (and starts) destination tasks.
    pub fn dispatch(&self) -> Dispatch {
        self.dispatch.clone()
    }

    /// Stops every task and waits for them.
    pub async fn stop(self) {
        let inner = &self.dispatch.inner;
        inner.shutdown.cancel();
        let prune = inner.prune.lock().ok().and_then(|mut prune| prune.take());
        let tasks = inner.tasks.lock().map(|mut tasks| std::mem::take(&mut *tasks)).unwrap_or_default();
        for handle in prune.into_iter().chain(tasks.into_values().map(|task| task.handle)) {
            let _ = handle.await;
        }
    }
}

/// How long the prune task keeps what it prunes.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// `DELIVERED_RETENTION`: delivered rows, from their delivery.
    pub delivered: Duration,
    /// `USER_STATE_RETENTION`: a user's last state, from the last event of that user.
    pub user_states: Duration,
}

/// Prunes what is older than its retention, now and every hour.
async fn prune(dispatch: Dispatch, retention: Retention, shutdown: CancellationToken) {
    let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let (retention_ms, states_ms) = (millis(retention.delivered), millis(retention.user_states));
    let retention = retention.delivered;
    loop {
        match dispatch.prune(now_ms().saturating_sub(retention_ms)).await {
            Ok((0, 0)) => {}
            Ok((rows, webhooks)) => log::info!(
                "deleted {rows} delivered rows older than {retention:?}, and forgot {webhooks} owner webhooks \
                 without rows"
            ),
            Err(err) => log::warn!("could not prune old delivered rows: {err}"),
        }
        // The reports' tally is kept for its own span, whatever DELIVERED_RETENTION says.
        let keep_ms = crate::outbox::TALLY_KEEP_DAYS.saturating_mul(86_400_000);
        if let Err(err) = dispatch.inner.services.outbox.prune_tally(now_ms().saturating_sub(keep_ms)).await {
            log::warn!("could not prune the reports' old tally: {err}");
        }
        match dispatch.inner.services.outbox.prune_user_states(now_ms().saturating_sub(states_ms)).await {
            Ok(0) => {}
            Ok(forgotten) => log::info!("forgot the last state of {forgotten} users not seen for a while"),
            Err(err) => log::warn!("could not prune the users' old states: {err}"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(PRUNE_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::deliver::DeliverySettings;
    use crate::destination::OwnerMetrics;
    use crate::destination::{Mentions, Target};
    use crate::discord::{self, WebhookUrl};
    use crate::metrics::{Health, Metrics};
    use crate::outbox::{NewRow, Outbox, StoredDestination};
    use crate::render::{Lang, Templates};

    fn services(dir: &std::path::Path) -> Services {
        Services {
            outbox: Outbox::open(dir).unwrap(),
            client: discord::Client::new(discord::Timeouts::default()).unwrap(),
            templates: Arc::new(Templates::load(dir.join("no-templates"), Lang::default()).0),
            settings: Arc::new(DeliverySettings::default()),
            metrics: Arc::new(Metrics::new()),
            health: Arc::new(Health::default()),
            app_webhooks: None,
        }
    }

    fn webhook(id: u64) -> WebhookUrl {
        WebhookUrl::parse_discord_only(&format!("https://discord.com/api/webhooks/{id}/token")).unwrap()
    }

    /// Stores a row for `destination` and marks it delivered, as if Discord had it.
    async fn delivered_row(outbox: &Outbox, destination: &Destination) {
        let Target::Webhook(url) = &destination.target else { unreachable!() };
        let row = NewRow {
            destination: destination.name.clone(),
            received_at_ms: now_ms(),
            action: "user_created".into(),
            username: "u".into(),
            panel: None,
            part: "{}".into(),
            fingerprint: None,
            may_be_resend: false,
            mentions: Mentions::default(),
        };
        let remember =
            StoredDestination { name: destination.name.clone(), url: url.expose().to_owned(), thread_id: None };
        outbox.enqueue_with(vec![row], vec![remember], None).await.unwrap();
        let ids = outbox.due(&destination.name, 10).await.unwrap().iter().map(|row| row.meta.id).collect();
        outbox.mark_delivered(ids).await.unwrap();
    }

    #[tokio::test]
    async fn forgets_an_owner_webhook_once_its_rows_are_older_than_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = OwnerMetrics::default();
        let owners = Arc::new(OwnerDestinations::new(1, metrics.clone()));
        let services = services(dir.path());
        let outbox = services.outbox.clone();
        let dispatch = Dispatch::new(services, Some(owners.clone()));
        let alice = owners.admit(webhook(1), "alice").unwrap();
        delivered_row(&outbox, &alice).await;
        dispatch.wake(&alice);
        let delivered_at = now_ms();

        // Delivered an hour ago, with a longer retention: kept, and its place stays taken.
        assert_eq!(dispatch.prune(delivered_at - 3_600_000).await.unwrap(), (0, 0));
        assert_eq!(dispatch.running(), [alice.name.as_str()]);
        assert!(owners.admit(webhook(2), "bob").is_none(), "OWNER_DESTINATIONS_MAX is 1");

        // The retention has passed: the row, the URL, the task and the place all go.
        assert_eq!(dispatch.prune(delivered_at + 1).await.unwrap(), (1, 1));
        assert!(dispatch.running().is_empty());
        assert_eq!((owners.names().len(), metrics.in_use.get()), (0, 0));
        assert!(outbox.forget_unused_destinations(Vec::new(), |_| {}).await.unwrap().is_empty(), "URL deleted");
        let bob = owners.admit(webhook(2), "bob").expect("the place is free again");

        // Rows stored for a forgotten webhook (routed just before it was forgotten) still get a task.
        dispatch.wake(&alice);
        assert_eq!(dispatch.running(), [alice.name.as_str()]);
        let names: BTreeSet<String> = owners.names().into_iter().collect();
        assert_eq!(names, BTreeSet::from([alice.name.clone(), bob.name.clone()]));
        Delivery { dispatch }.stop().await;
    }
}
