//! The outbox holds owner admins' webhook URLs, tokens included: its files are the relay's user's
//! alone.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::fake_discord::FakeDiscord;
use crate::helpers::{fixture, logs, spawn_app_in, Options};

/// The permission bits of `path`, in octal as `ls` and `chmod` write them.
fn mode(path: &Path) -> String {
    let metadata = std::fs::metadata(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    format!("{:o}", metadata.permissions().mode() & 0o777)
}

fn outbox_files(dir: &Path) -> Vec<std::path::PathBuf> {
    ["outbox.sqlite3", "outbox.sqlite3-wal", "outbox.sqlite3-shm"].iter().map(|name| dir.join(name)).collect()
}

#[tokio::test]
async fn the_data_folder_it_creates_and_the_outbox_files_are_private() {
    let discord = FakeDiscord::start().await;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data").join("relay");
    let app = spawn_app_in(&data, Options::delivering_to(&discord)).await;
    assert_eq!(app.post(fixture("marzban-0.8.4/user_created.json")).await.status(), 200);
    discord.wait_for_embeds(1, Duration::from_secs(30)).await;

    assert_eq!(mode(&data), "700");
    assert_eq!(mode(data.parent().unwrap()), "700", "folders made on the way too");
    for file in outbox_files(&data) {
        assert_eq!(mode(&file), "600", "{}", file.display());
    }
    app.stop().await;
}

#[tokio::test]
async fn an_existing_open_folder_is_left_alone_with_a_warning_and_old_files_are_made_private() {
    let discord = FakeDiscord::start().await;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("shared");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    // An outbox written by an earlier version, world-readable.
    for file in outbox_files(&data).iter().take(2) {
        std::fs::write(file, b"").unwrap();
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let app = spawn_app_in(&data, Options::delivering_to(&discord)).await;
    assert_eq!(app.post(fixture("marzban-0.8.4/user_created.json")).await.status(), 200);
    discord.wait_for_embeds(1, Duration::from_secs(30)).await;

    assert_eq!(mode(&data), "755", "the admin's folder keeps its mode");
    let warned = format!("DATA_DIR {} can be used by other users (mode 755)", data.display());
    let warning = logs().into_iter().find(|line| line.contains(&warned)).expect("warned about the folder");
    // The Docker image has no shell: the advice is what to run on the host, for the compose
    // file's volume and for a bind mount.
    assert!(warning.contains("`chmod 700` it unless others need it"), "{warning}");
    let volume = "`sudo chmod 700 \"$(docker volume inspect -f '{{.Mountpoint}}' marzban-discord-relay_relay-data)\"`";
    assert!(
        warning.contains(&format!(
            "In the Docker image, which has no shell, do it on the host: for the compose file's volume, {volume}"
        )),
        "{warning}"
    );
    assert!(warning.contains("for a bind mount such as ./data:/data, `sudo chmod 700 ./data`"), "{warning}");
    for file in outbox_files(&data) {
        assert_eq!(mode(&file), "600", "{}", file.display());
    }
    app.stop().await;
}

/// The volume the data folder warning names is the one the compose file makes: its project name
/// and volume, which the README's `docker run` uses too.
#[test]
fn the_warning_names_the_compose_files_volume() {
    let compose = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml")).unwrap();
    assert!(compose.lines().any(|line| line == "name: marzban-discord-relay"), "the compose project's name");
    assert!(compose.lines().any(|line| line.trim() == "- relay-data:/data"), "the volume at /data");
}
