//! The control socket's lifecycle: bind (refusing a live daemon, replacing a
//! stale file, mode and group set before anyone can connect) or take it from
//! socket activation; unlink on drop only what we bound ourselves.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdListener, UnixStream as StdStream};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use tokio::net::UnixListener;

use crate::config::{FileMode, DEFAULT_SOCKET_GROUP};

/// Permissions of a socket directory the daemon creates under /run.
const SYSTEM_DIR_MODE: u32 = 0o755;
/// ... and under a user's runtime directory.
const USER_DIR_MODE: u32 = 0o700;

/// The listening socket plus what to undo at the end.
#[derive(Debug)]
pub struct Listener {
    /// The tokio listener.
    pub listener: UnixListener,
    /// The path clients use (for status and logs).
    pub path: PathBuf,
    /// Some when we bound the path and must unlink it on drop.
    unlink: Option<(PathBuf, u64, u64)>,
    /// Whether it came from systemd.
    pub activated: bool,
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Only remove the file if it is still the socket we created: another
        // daemon may have replaced it after we stopped listening.
        if let Some((path, dev, ino)) = &self.unlink {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.dev() == *dev && meta.ino() == *ino {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

/// Wraps a socket passed by systemd; it is never unlinked by us.
pub fn from_activation(fd: OwnedFd, fallback_path: &Path) -> anyhow::Result<Listener> {
    let std_listener = StdListener::from(fd);
    std_listener.set_nonblocking(true).context("socket activation fd")?;
    let path = std_listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_path_buf))
        .unwrap_or_else(|| fallback_path.to_path_buf());
    let listener = UnixListener::from_std(std_listener)
        .context("the socket passed by systemd is not a listening Unix stream socket")?;
    Ok(Listener { listener, path, unlink: None, activated: true })
}

/// Binds `path` with `mode` and `group`, set before the socket is reachable.
pub fn bind(path: &Path, mode: FileMode, group: &str) -> anyhow::Result<Listener> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    ensure_dir(parent)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match StdStream::connect(path) {
            Ok(_) => bail!(
                "another ccmanagerd is already serving on {} (stop it first, or use --socket)",
                path.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(socket = %path.display(), "replacing stale socket file");
                std::fs::remove_file(path)
                    .with_context(|| format!("removing stale {}", path.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("probing {}", path.display())),
        },
        Ok(_) => bail!("{} exists and is not a socket; refusing to replace it", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
    }
    let gid = resolve_group(group)?;
    // Bind under a private name, fix mode and group, then rename into place:
    // nobody can reach the socket before its permissions are final.
    let file_name = path.file_name().context("socket path has no file name")?.to_string_lossy();
    let tmp = parent.join(format!(".{}.{}.tmp", file_name, std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let std_listener =
        StdListener::bind(&tmp).with_context(|| format!("binding {}", tmp.display()))?;
    let finish = || -> anyhow::Result<()> {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode.0))?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&tmp, None, Some(gid))
                .with_context(|| format!("setting group {group} on the socket"))?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(())
    };
    if let Err(e) = finish() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("creating {}", path.display()));
    }
    let meta = std::fs::symlink_metadata(path)?;
    std_listener.set_nonblocking(true)?;
    let listener = UnixListener::from_std(std_listener)?;
    Ok(Listener {
        listener,
        path: path.to_path_buf(),
        unlink: Some((path.to_path_buf(), meta.dev(), meta.ino())),
        activated: false,
    })
}

/// Creates the socket directory if missing (0755 under /run, 0700 elsewhere).
fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        // e.g. /tmp/ccmanagerd-UID, which anyone could have made first.
        return crate::dirs::check_trusted(dir)
            .with_context(|| format!("checking socket directory {}", dir.display()));
    }
    let mode = if dir.starts_with("/run") && !dir.starts_with("/run/user") {
        SYSTEM_DIR_MODE
    } else {
        USER_DIR_MODE
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .with_context(|| format!("creating socket directory {}", dir.display()))
}

/// The gid of `group`; the default group may be missing (skipped with a
/// warning), a configured one may not.
fn resolve_group(group: &str) -> anyhow::Result<Option<u32>> {
    if group.is_empty() {
        return Ok(None);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(Some(g.gid.as_raw())),
        Ok(None) if group == DEFAULT_SOCKET_GROUP => {
            tracing::warn!(
                group,
                "socket group does not exist; the socket keeps the daemon's group"
            );
            Ok(None)
        }
        Ok(None) => bail!("daemon.socket_group: group {group:?} does not exist"),
        Err(e) => bail!("daemon.socket_group: looking up {group:?}: {e}"),
    }
}
