//! The state file: session metadata that must survive the daemon (and is
//! copied into each tmux session's `@ccm_meta` option too). Written
//! atomically (temp file, fsync, rename), coalescing bursts of changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::protocol::types::Session;

/// Bursts of changes within this window are written once.
pub const WRITE_COALESCE: Duration = Duration::from_millis(100);
/// File name inside the state directory.
pub const STATE_FILE: &str = "sessions.json";
/// Format version of the file.
const FORMAT_VERSION: u32 = 1;

/// One persisted session: the wire view plus what the daemon needs to find
/// it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// The session as clients see it.
    pub session: Session,
    /// The systemd scope holding its processes, when cgroups are used.
    #[serde(default)]
    pub scope: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    sessions: Vec<Stored>,
}

/// Reads and writes the state file.
pub struct Store {
    path: PathBuf,
    dirty: tokio::sync::Notify,
}

impl Store {
    /// A store in `dir` (created with mode 0700 when missing).
    pub fn open(dir: &Path) -> std::io::Result<Arc<Store>> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        crate::dirs::check_trusted(dir)?;
        Ok(Arc::new(Store { path: dir.join(STATE_FILE), dirty: tokio::sync::Notify::new() }))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the saved sessions; a missing file is an empty list, a corrupt
    /// one is logged and moved aside (never silently overwritten).
    pub fn load(&self) -> Vec<Stored> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot read the state file");
                return Vec::new();
            }
        };
        match serde_json::from_slice::<File>(&text) {
            Ok(f) => f.sessions,
            Err(e) => {
                let aside = self.path.with_extension("json.corrupt");
                let _ = std::fs::rename(&self.path, &aside);
                tracing::error!(path = %self.path.display(), moved_to = %aside.display(), error = %e,
                    "state file is corrupt; moved aside, sessions are re-adopted from tmux");
                Vec::new()
            }
        }
    }

    /// Writes `sessions` now, atomically.
    pub fn save(&self, sessions: Vec<Stored>) -> std::io::Result<()> {
        use std::io::Write;
        let data = serde_json::to_vec(&File { version: FORMAT_VERSION, sessions })?;
        let tmp = self.path.with_extension(format!("json.tmp.{}", std::process::id()));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Asks the writer task for a save soon.
    pub fn mark_dirty(&self) {
        self.dirty.notify_one();
    }

    /// Waits for the next change request, then for the coalescing window.
    pub async fn wait_dirty(&self) {
        self.dirty.notified().await;
        tokio::time::sleep(WRITE_COALESCE).await;
    }
}
