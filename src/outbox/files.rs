//! Keeping the outbox's files to the relay's user: the database holds owner admins' webhook URLs
//! with their tokens, so it and its `-wal`/`-shm` files are 0600, and a data folder the relay
//! creates is 0700.

use std::io;
use std::path::Path;

/// The files SQLite keeps beside the database in WAL mode.
const COMPANIONS: [&str; 2] = ["-wal", "-shm"];

/// How to make the data folder private when the relay runs in the Docker image: the container has
/// no shell, so it is done on the host. The image's own `/data` is 0700, so a volume it creates is
/// too; an open one is a volume made by an older image (which made it 0755) or a bind-mounted host
/// folder. `docker volume inspect` finds the volume's folder on the host with nothing to pull (the
/// hosts this runs on often cannot reach Docker Hub). The volume is the compose file's (its project
/// name is fixed), which the README's `docker run` uses too.
pub const OPEN_FOLDER_IN_DOCKER: &str = "In the Docker image, which has no shell, do it on the host: for the \
    compose file's volume, `sudo chmod 700 \"$(docker volume inspect -f '{{.Mountpoint}}' \
    marzban-discord-relay_relay-data)\"`; for a bind mount such as ./data:/data, `sudo chmod 700 ./data`";

/// Creates `dir` (and missing parents) readable by the relay's user only. A folder that exists
/// is the admin's choice and is left as it is, with a warning when other users may use it.
#[cfg(unix)]
pub fn create_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            log::warn!(
                "DATA_DIR {} can be used by other users (mode {mode:o}). The outbox files in it are private \
                 (0600) but the folder is not; `chmod 700` it unless others need it. {OPEN_FOLDER_IN_DOCKER}",
                dir.display()
            );
        }
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
pub fn create_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Creates the database file 0600 before SQLite opens it (SQLite would make it 0644, and it
/// gives `-wal` and `-shm` the database's mode when it creates them), and makes existing files,
/// from before the relay did this, 0600 too. A file the relay may not change is only warned
/// about: it still works.
#[cfg(unix)]
pub fn prepare_files(database: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(database)?;
    restrict(database);
    for suffix in COMPANIONS {
        let mut companion = database.as_os_str().to_owned();
        companion.push(suffix);
        restrict(Path::new(&companion));
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn prepare_files(_database: &Path) -> io::Result<()> {
    Ok(())
}

/// Makes `path`, if it exists, 0600.
#[cfg(unix)]
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = std::fs::metadata(path) else { return };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return;
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        Ok(()) => log::info!("made {} readable by the relay's user only (it was {mode:o})", path.display()),
        Err(err) => log::warn!(
            "{} can be read by other users (mode {mode:o}) and could not be made private: {err}",
            path.display()
        ),
    }
}
