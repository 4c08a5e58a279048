//! Peer credentials (SO_PEERCRED, SO_PEERGROUPS) and the access rule: root,
//! the daemon's own uid, `allowed_uids`, and members of the socket group or
//! `allowed_groups` may connect; `admin_group` members see every session.

use std::os::fd::AsRawFd;

use tokio::net::UnixStream;

use crate::config::Config;

/// Most supplementary groups read from SO_PEERGROUPS (Linux NGROUPS_MAX).
const MAX_PEER_GROUPS: usize = 65536;

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Process id at connect time (0 if unknown).
    pub pid: i32,
    /// Supplementary groups at connect time.
    pub groups: Vec<u32>,
}

impl Peer {
    /// Reads the credentials of a connected stream.
    pub fn of(stream: &UnixStream) -> std::io::Result<Peer> {
        let cred = stream.peer_cred()?;
        Ok(Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid().unwrap_or(0),
            groups: peer_groups(stream).unwrap_or_default(),
        })
    }

    /// Whether the peer is in group `gid` (primary or supplementary).
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// Whether the peer may use the daemon at all.
    pub fn allowed(&self, config: &Config) -> bool {
        let d = &config.daemon;
        if self.uid == 0
            || self.uid == nix::unistd::geteuid().as_raw()
            || d.allowed_uids.contains(&self.uid)
        {
            return true;
        }
        std::iter::once(&d.socket_group)
            .chain(d.allowed_groups.iter())
            .filter_map(|name| group_id(name))
            .any(|gid| self.in_group(gid))
    }

    /// Whether the peer sees and manages every session.
    pub fn is_admin(&self, config: &Config) -> bool {
        self.uid == 0 || group_id(&config.daemon.admin_group).is_some_and(|gid| self.in_group(gid))
    }
}

/// gid of a group name, if it exists.
fn group_id(name: &str) -> Option<u32> {
    if name.is_empty() {
        return None;
    }
    nix::unistd::Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw())
}

/// SO_PEERGROUPS: the peer's supplementary groups as of connect().
fn peer_groups(stream: &UnixStream) -> std::io::Result<Vec<u32>> {
    let fd = stream.as_raw_fd();
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: the buffer is valid for `len` bytes and the kernel writes at most that.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            groups.truncate(len as usize / std::mem::size_of::<libc::gid_t>());
            return Ok(groups);
        }
        let err = std::io::Error::last_os_error();
        let needed = len as usize / std::mem::size_of::<libc::gid_t>();
        if err.raw_os_error() == Some(libc::ERANGE)
            && needed > groups.len()
            && needed <= MAX_PEER_GROUPS
        {
            groups.resize(needed, 0);
            continue;
        }
        return Err(err);
    }
}
