//! Real PasarGuard 5.2.1 bodies (`tests/fixtures/pasarguard-5.2.1/`): arrays of at most 50 events,
//! ISO datetimes, `proxy_settings`, a real `enqueued_at`, and its own quirks.

use std::time::Duration;

use crate::fake_discord::FakeDiscord;
use crate::helpers::{capture, embed_titled, field, spawn_app, PASARGUARD};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn an_on_hold_user_shows_when_the_hold_ends() {
    // Arrange
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;

    // Act: a days-left warning for pg_limited, then pg_onhold created on hold for 7 days.
    assert_eq!(app.post(capture(PASARGUARD, "002")).await.status(), 200);
    let embeds = discord.wait_for_embeds(2, WAIT).await;

    // Assert
    let created = embed_titled(&embeds, "🆕 User created: pg\\_onhold");
    assert_eq!(field(created, "Status"), Some("🟡 On hold"));
    assert_eq!(field(created, "Expires"), Some("7d after first connection"));
    assert_eq!(field(created, "Hold ends"), Some("<t:1796691085:R>"), "on_hold_timeout, naive ISO meaning UTC");
    app.stop().await;
}
