//! With nothing configured the relay runs dry: it accepts events and logs the messages.

use std::time::Duration;

use crate::helpers::{eventually, fixture, logs, spawn_app_in, Options};

#[tokio::test]
async fn runs_dry_with_no_configuration_and_logs_each_message() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::new()).await;

    let response = app.post_to("/", fixture("marzban-0.8.4/user_expired.json"), None).await;
    assert_eq!(response.status(), 200);

    eventually(Duration::from_secs(30), "the dry-run log line", || {
        logs().iter().any(|l| l.contains("would send") && l.contains("User expired: h5b5cf44\\\\_expired"))
    })
    .await;
    assert!(logs().iter().any(|l| l.contains("running dry") && l.starts_with("WARN")));
    app.stop().await;
}
