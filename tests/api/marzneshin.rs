//! Real Marzneshin 0.7.4 bodies (`tests/fixtures/marzneshin-0.7.4/`): one object per request, no
//! top-level `username`, flags instead of a status, and nothing ever re-sent.

use std::time::Duration;

use crate::fake_discord::FakeDiscord;
use crate::helpers::{capture, embed_titled, field, spawn_app, MARZNESHIN};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_start_on_first_use_user_is_on_hold_until_its_activation_deadline() {
    // Arrange
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;

    // Act: u_hold, created with a 7-day usage duration and an activation deadline.
    assert_eq!(app.post(capture(MARZNESHIN, "003")).await.status(), 200);
    let embeds = discord.wait_for_embeds(1, WAIT).await;

    // Assert
    let created = embed_titled(&embeds, "🆕 User created: u\\_hold");
    assert_eq!(field(created, "Status"), Some("🟡 On hold"));
    assert_eq!(field(created, "Expires"), Some("7d after first connection"));
    assert_eq!(field(created, "Hold ends"), Some("<t:1796691660:R>"), "activation_deadline, UTC");
    app.stop().await;
}
