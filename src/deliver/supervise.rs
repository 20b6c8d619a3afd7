//! Keeping each destination's task alive: a task that ends before shutdown (it panicked) is
//! counted, logged, shown in `/readyz` while it is down, and started again after a backoff.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Services, Worker};
use crate::destination::Destination;
use crate::discord;
use crate::metrics::{DestinationLabels, Health, Metrics};

/// The wait before a stopped delivery task is started again the first time; it doubles with each
/// restart in a row, up to [`RESTART_DELAY_MAX`].
const RESTART_DELAY_FIRST: Duration = Duration::from_secs(1);
const RESTART_DELAY_MAX: Duration = Duration::from_secs(60);

/// Runs `destination`'s delivery task until `shutdown`, starting it again whenever it ends any
/// other way.
pub(super) async fn supervise(
    destination: Arc<Destination>,
    services: Services,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let (health, metrics) = (services.health.clone(), services.metrics.clone());
    keep_running(&destination.name.clone(), &health, &metrics, &shutdown, || {
        Worker::new(destination.clone(), services.clone(), wake.clone()).run(shutdown.clone())
    })
    .await;
}

/// The names the relay's own background tasks are supervised, counted and shown in `/readyz`
/// under: not names a destination can have (a destination's name has no ':').
pub const REPORTS_TASK: &str = "task:reports";
pub const PRUNE_TASK: &str = "task:prune";

/// Runs the task `start` makes until `shutdown`. A task that ends before that (it panicked) is
/// counted in `relay_delivery_task_restarts_total` (labelled with `name`), logged at error, shown
/// in `/readyz` while it is down, and started again after a backoff that doubles up to
/// [`RESTART_DELAY_MAX`]. The report producer and the hourly prune run under it too, as
/// [`REPORTS_TASK`] and [`PRUNE_TASK`].
pub(crate) async fn keep_running<F, Fut>(
    name: &str,
    health: &Health,
    metrics: &Metrics,
    shutdown: &CancellationToken,
    mut start: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut restarts: u32 = 0;
    loop {
        let started = Instant::now();
        let ended = tokio::spawn(start()).await;
        if shutdown.is_cancelled() {
            return;
        }
        let reason = match ended {
            Ok(()) => "it returned".to_owned(),
            Err(err) if err.is_panic() => format!("it panicked: {}", panic_text(err.into_panic())),
            Err(_) => "it was cancelled".to_owned(),
        };
        if started.elapsed() >= RESTART_DELAY_MAX.saturating_mul(10) {
            restarts = 0;
        }
        restarts = restarts.saturating_add(1);
        let wait = RESTART_DELAY_FIRST.saturating_mul(1 << restarts.saturating_sub(1).min(16)).min(RESTART_DELAY_MAX);
        metrics.task_restarts.get_or_create(&DestinationLabels::of(name)).inc();
        health.task_stopped(name, &reason);
        log::error!("{name}: the task stopped unexpectedly ({reason}); starting it again in {wait:?}");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        health.task_restarted(name, std::time::SystemTime::now());
    }
}

/// A panic's message, short and without tokens.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    discord::redact(&text, None).chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::metrics;

    #[tokio::test]
    async fn a_task_that_panics_is_counted_shown_and_started_again() {
        let (health, metrics, shutdown) =
            (Arc::new(Health::default()), Arc::new(Metrics::new()), CancellationToken::new());
        let starts = Arc::new(AtomicUsize::new(0));
        let supervisor = {
            let (health, metrics, shutdown, starts) =
                (health.clone(), metrics.clone(), shutdown.clone(), starts.clone());
            tokio::spawn(async move {
                keep_running("default", &health, &metrics, &shutdown.clone(), || {
                    let (start, shutdown) = (starts.fetch_add(1, Ordering::SeqCst), shutdown.clone());
                    async move {
                        if start == 0 {
                            panic!("a delay out of range");
                        }
                        shutdown.cancelled().await;
                    }
                })
                .await
            })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut saw_down = false;
        while starts.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "the task was not started again");
            saw_down |= health
                .problems(std::time::SystemTime::now())
                .iter()
                .any(|(name, problem)| name == "default" && problem.contains("a delay out of range"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(saw_down, "/readyz showed the stopped task while it was down");
        assert!(health.problems(std::time::SystemTime::now()).is_empty(), "up again after the restart");
        let text = metrics.render(&[], &health, 0);
        assert!(text.contains(r#"relay_delivery_task_restarts_total{destination="default"} 1"#), "{text}");
        shutdown.cancel();
        supervisor.await.unwrap();
        assert_eq!(starts.load(Ordering::SeqCst), 2, "a task that ends at shutdown is not started again");
    }

    #[test]
    fn a_stopped_background_task_is_shown_as_the_task_it_is_not_as_a_destination() {
        let health = Health::default();
        let now = std::time::SystemTime::now();
        health.task_stopped(PRUNE_TASK, "it panicked: disk I/O error");
        for _ in 0..metrics::CRASH_LOOP_RESTARTS {
            health.task_restarted(REPORTS_TASK, now);
        }
        let reasons = health.reasons(now, |_| true);
        assert!(
            reasons.contains(
                &"task:prune stopped unexpectedly (it panicked: disk I/O error) and is being restarted".into()
            ),
            "{reasons:?}"
        );
        assert!(reasons.iter().any(|r| r.starts_with("task:reports keeps stopping: restarted 3 times")), "{reasons:?}");
        assert!(!reasons.iter().any(|r| r.contains("destination") || r.contains("delivery task")), "{reasons:?}");
        health.task_stopped("default", "it returned");
        assert!(health
            .reasons(now, |_| true)
            .iter()
            .any(|r| r.starts_with("destination default has no delivery task")));
        assert!(!health.reasons(now, |name| name != "default").iter().any(|r| r.contains("default")), "filtered");
    }

    #[test]
    fn restarts_in_a_row_make_a_crash_loop_in_readiness() {
        let health = Health::default();
        let now = std::time::SystemTime::now();
        for _ in 0..metrics::CRASH_LOOP_RESTARTS {
            health.task_restarted("default", now);
        }
        let problems = health.problems(now);
        assert!(problems.iter().any(|(_, p)| p.contains("keeps losing its delivery task")), "{problems:?}");
        let later = now + metrics::CRASH_LOOP_WINDOW;
        assert!(health.problems(later).is_empty(), "old restarts are forgotten");
    }
}
