//! Directories the daemon creates or trusts: per-uid tmux directories and the
//! runtime and state fallbacks under /tmp. A directory someone else could
//! have planted (another owner, writable by others, a symlink) is refused
//! with an error that says what is wrong, never used or silently fixed.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Permission bits that let others change what is inside a directory.
const WRITABLE_BY_OTHERS: u32 = 0o022;

fn refuse(path: &Path, why: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: {why}; refusing to use it (remove it or fix it by hand)", path.display()),
    )
}

/// Checks that an existing directory is safe for this process to trust: a
/// real directory (not a symlink), owned by us or root, and not writable by
/// anyone else (a group-writable directory is accepted only from root, as
/// systemd's RuntimeDirectory= may make it).
pub fn check_trusted(path: &Path) -> io::Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_dir() {
        return Err(refuse(path, "is not a directory (a symlink or a file)".into()));
    }
    if meta.uid() != me && meta.uid() != 0 {
        return Err(refuse(path, format!("is owned by uid {}, not by uid {me}", meta.uid())));
    }
    let mode = meta.mode() & 0o7777;
    let sticky = mode & 0o1000 != 0;
    if mode & 0o002 != 0 && !sticky || (mode & 0o020 != 0 && meta.uid() != 0) {
        return Err(refuse(path, format!("is writable by others (mode {mode:04o})")));
    }
    Ok(())
}

/// Creates `path` (its parents must exist) with `mode` for `uid`:`gid`, or
/// checks that the existing one is exactly that: a real directory owned by
/// `uid`, not writable by others. A directory of ours with a looser mode is
/// tightened.
pub fn ensure_owned(path: &Path, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {
            // lchown: the name is ours (its parent is not writable by others),
            // and never follows a link.
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            return Ok(());
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_dir() {
        return Err(refuse(path, "is not a directory (a symlink or a file)".into()));
    }
    if meta.uid() != uid {
        return Err(refuse(path, format!("is owned by uid {}, not by uid {uid}", meta.uid())));
    }
    if meta.mode() & 0o777 != mode {
        if meta.mode() & WRITABLE_BY_OTHERS != 0 && meta.uid() != nix::unistd::geteuid().as_raw() {
            return Err(refuse(path, format!("is writable by others (mode {:04o})", meta.mode())));
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_world_writable_or_foreign_dir_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_trusted(&open).unwrap_err();
        assert!(e.to_string().contains("writable by others"), "{e}");
        let link = base.path().join("link");
        std::os::unix::fs::symlink(base.path(), &link).unwrap();
        assert!(check_trusted(&link).unwrap_err().to_string().contains("not a directory"));
        let mine = base.path().join("mine");
        std::fs::create_dir(&mine).unwrap();
        std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o700)).unwrap();
        check_trusted(&mine).unwrap();
        check_trusted(Path::new("/tmp")).expect("sticky /tmp is fine");
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::lchown(&mine, Some(65534), None).unwrap();
            let e = check_trusted(&mine).unwrap_err();
            assert!(e.to_string().contains("owned by uid 65534"), "{e}");
        }
    }

    #[test]
    fn ensure_owned_creates_tightens_and_refuses() {
        let base = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let d = base.path().join("d");
        ensure_owned(&d, me, gid, 0o700).unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_owned(&d, me, gid, 0o700).unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o777, 0o700, "tightened");
        let f = base.path().join("f");
        std::fs::write(&f, "").unwrap();
        assert!(ensure_owned(&f, me, gid, 0o700).is_err());
        if nix::unistd::geteuid().is_root() {
            let e = ensure_owned(&d, 65534, 65534, 0o700).unwrap_err();
            assert!(e.to_string().contains(&format!("owned by uid {me}")), "{e}");
            let theirs = base.path().join("theirs");
            ensure_owned(&theirs, 65534, 65534, 0o700).unwrap();
            assert_eq!(std::fs::metadata(&theirs).unwrap().uid(), 65534);
        }
    }
}
