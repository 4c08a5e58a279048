//! A throwaway systemd for system tests.
//!
//! [`SysBox::boot`] starts `/lib/systemd/systemd` as PID 1 of a new PID, mount
//! and cgroup namespace, on an overlay of `/` whose writes go to a tmpfs, and
//! waits until `systemctl is-system-running` says `running` or `degraded`.
//! Commands run inside with `nsenter`; every one is bounded by a timeout.
//! Nothing the box writes reaches the host's filesystem: the box gets its own
//! `/run` and `/tmp` (a plain boot on the real root would run systemd-tmpfiles
//! and empty the host's `/tmp`).
//!
//! Each box gets its own cgroup (`<our cgroup>/ccmanagerd-sysbox-<id>`) in
//! every hierarchy and a cgroup namespace rooted there, so the box's systemd
//! manages only that subtree: boxes can run in parallel and never touch the
//! host's cgroups. This works on cgroup v1 hybrid hosts (these machines) and
//! on unified hosts.
//!
//! Teardown ([`Drop`]) always happens: on success, on panic (unwinding), when
//! a box outlives [`MAX_LIFETIME`] (a watchdog thread kills it), and when the
//! test process dies outright (the box's launcher has `PR_SET_PDEATHSIG`, and
//! leftovers of such a box — its state directory and cgroups — are swept by
//! the next [`SysBox::boot`]). State lives under `/var/tmp`, never `/tmp`.
//!
//! A `SysBox` must be dropped on the thread that booted it: the kernel sends
//! the parent-death signal when that *thread* exits.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a box may take from launch to `running|degraded`.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound for one command run in a box.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// A box still alive after this long is killed by its watchdog, so a test that
/// loops forever against a box fails instead of hanging `cargo test`.
/// `CCMANAGERD_SYSBOX_MAX_LIFETIME_S` overrides it.
pub const MAX_LIFETIME: Duration = Duration::from_secs(600);
/// Where the boxes' state directories live (never /tmp: see the module doc).
pub const STATE_BASE: &str = "/var/tmp";
/// Prefix of state directories and cgroup names; the sweep relies on it.
const PREFIX: &str = "ccmanagerd-sysbox-";
const SYSTEMD: &str = "/lib/systemd/systemd";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Units that make no sense in a box and would otherwise wait for devices or
/// the network; masked in the box's /etc (which is on the overlay).
const MASKED_UNITS: &[&str] = &[
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "getty.target",
    "console-getty.service",
    "systemd-networkd.service",
    "systemd-resolved.service",
    "systemd-timesyncd.service",
    "postgresql.service",
    "e2scrub_reap.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
];

/// Runs inside the new namespaces (as PID 1 until it execs systemd): builds the
/// overlay root, gives it fresh /proc, /run, /tmp and cgroup mounts rooted at the
/// box's cgroup namespace, pivots into it, and execs systemd.
/// `$1` is the state directory; `$1/cgmounts` lists "fstype options relpath".
const INIT_SCRIPT: &str = r#"
set -eu
st=$1
mount -t tmpfs -o mode=0755 sysbox "$st/box"
mkdir -p "$st/box/upper" "$st/box/work" "$st/box/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$st/box/upper,workdir=$st/box/work" "$st/box/root"
r=$st/box/root
mount -t proc proc "$r/proc"
# Every box is a boot of its own: the kernel's boot id is not namespaced, so
# each box gets a fresh one over it (ccmanagerd tells a reboot by it).
cat /proc/sys/kernel/random/uuid > "$st/box/boot_id"
mount --bind "$st/box/boot_id" "$r/proc/sys/kernel/random/boot_id"
# Directories kept across boxes ("host-dir box-path" per line): a state
# directory that survives a "reboot" (tear down, boot a new box).
if [ -f "$st/keep" ]; then
  while read -r host path; do
    mkdir -p "$r$path"
    mount --bind "$host" "$r$path"
  done < "$st/keep"
fi
mount --rbind /sys "$r/sys"
if ! grep -q ' cgroup2 \.$' "$st/cgmounts"; then
  mount -t tmpfs -o mode=0755 cgroup "$r/sys/fs/cgroup"
fi
while read -r fstype opts rel; do
  d=$r/sys/fs/cgroup/${rel#.}
  mkdir -p "$d"
  if [ "$opts" = - ]; then mount -t "$fstype" "$fstype" "$d"
  else mount -t "$fstype" -o "$opts" "$fstype" "$d"; fi
done < "$st/cgmounts"
for l in /sys/fs/cgroup/*; do
  if [ -L "$l" ]; then cp -P "$l" "$r/sys/fs/cgroup/"; fi
done
mount --rbind /dev "$r/dev"
mount -t tmpfs -o mode=0755 tmpfs "$r/run"
# Services see the box's boot id too: ProtectKernelTunables= mounts /proc/sys
# afresh (without the bind above); a bind of their own is applied after it.
cp "$st/box/boot_id" "$r/run/sysbox-boot-id"
mkdir -p "$r/run/systemd/system/service.d"
printf '[Service]\nBindReadOnlyPaths=/run/sysbox-boot-id:/proc/sys/kernel/random/boot_id\n' \
  > "$r/run/systemd/system/service.d/sysbox-boot-id.conf"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
cd "$r"
mkdir -p .sysbox-oldroot
pivot_root . .sysbox-oldroot
umount -l /.sysbox-oldroot
rmdir /.sysbox-oldroot || true
mkdir -p /etc/systemd/system
for u in $MASKED; do ln -sf /dev/null "/etc/systemd/system/$u"; done
echo sysbox > /etc/hostname
exec env -i container=ccmanagerd-sysbox PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  /lib/systemd/systemd --system --unit=multi-user.target --log-target=null
"#;

static BOX_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Prints `SKIP <test>: <reason>` to stderr and returns true when system tests
/// cannot run here: not root, or unshare/nsenter/systemd missing.
pub fn skip_unless_root(test: &str) -> bool {
    let reason = if unsafe { libc::geteuid() } != 0 {
        Some("needs root (boots systemd in new PID/mount/cgroup namespaces)".to_string())
    } else if !Path::new(SYSTEMD).exists() {
        Some(format!("needs systemd installed ({SYSTEMD} missing)"))
    } else {
        ["unshare", "nsenter", "bash", "mount"]
            .iter()
            .find(|t| which(t).is_none())
            .map(|t| format!("needs `{t}` on PATH (util-linux)"))
    };
    match reason {
        Some(r) => {
            skip(test, &r);
            true
        }
        None => false,
    }
}

/// Prints `SKIP <test>: <reason>` on the real stderr: libtest captures
/// `eprintln!` of passing tests, and a skip must never be silent.
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {reason}");
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// One cgroup hierarchy mounted under /sys/fs/cgroup on the host.
struct Hierarchy {
    fstype: String,
    /// Super options without rw/ro, e.g. "memory" or "name=systemd"; "-" for none.
    options: String,
    /// Mount point relative to /sys/fs/cgroup ("." when it is /sys/fs/cgroup).
    rel: String,
    /// Our own cgroup in it, as a host path.
    ours: PathBuf,
}

/// The cgroup hierarchies mounted under /sys/fs/cgroup and our cgroup in each.
fn hierarchies() -> Result<Vec<Hierarchy>> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    let own = fs::read_to_string("/proc/self/cgroup")?;
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(dash) = f.iter().position(|x| *x == "-") else { continue };
        let (root, mp) = (f[3], f[4]);
        let fstype = f.get(dash + 1).copied().unwrap_or("");
        let superopts = f.get(dash + 3).copied().unwrap_or("");
        if !(fstype == "cgroup" || fstype == "cgroup2") || !mp.starts_with(CGROUP_ROOT) {
            continue;
        }
        let opts: Vec<&str> = superopts.split(',').filter(|o| *o != "rw" && *o != "ro").collect();
        // Find the /proc/self/cgroup line for this hierarchy.
        let path = own.lines().find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, ctrl, path) = (p.next()?, p.next()?, p.next()?);
            let matches = if fstype == "cgroup2" {
                ctrl.is_empty()
            } else {
                !ctrl.is_empty() && ctrl.split(',').all(|c| opts.contains(&c))
            };
            matches.then(|| path.to_string())
        });
        let Some(path) = path else { continue };
        let inside = path.strip_prefix(root.trim_end_matches('/')).unwrap_or(&path);
        let rel = mp.strip_prefix(CGROUP_ROOT).unwrap().trim_start_matches('/');
        out.push(Hierarchy {
            fstype: fstype.to_string(),
            options: if opts.is_empty() { "-".into() } else { opts.join(",") },
            rel: if rel.is_empty() { ".".into() } else { rel.to_string() },
            ours: Path::new(mp).join(inside.trim_start_matches('/')),
        });
    }
    if out.is_empty() {
        bail!("no cgroup hierarchy mounted under {CGROUP_ROOT}");
    }
    Ok(out)
}

/// Removes a cgroup and everything below it (children first); cgroup
/// directories can be removed once no process is left in them.
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Pids in a cgroup tree (as the host sees them).
fn cgroup_pids(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                pids.extend(cgroup_pids(&e.path()));
            }
        }
    }
    pids
}

/// Kills whatever is left in the cgroups, waits until they are empty (bounded)
/// and removes them.
fn destroy_cgroups(cgroups: &[PathBuf]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids: Vec<i32> = cgroups.iter().flat_map(|c| cgroup_pids(c)).collect();
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        for p in pids {
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        thread::sleep(Duration::from_millis(20));
    }
    for c in cgroups {
        remove_cgroup_tree(c);
    }
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes what boxes of dead test processes left behind (a SIGKILLed
/// `cargo test` runs no destructors): their cgroups and state directories.
fn sweep_stale() {
    let Ok(entries) = fs::read_dir(STATE_BASE) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let dir = e.path();
        let owner: Option<i32> =
            fs::read_to_string(dir.join("owner")).ok().and_then(|s| s.trim().parse().ok());
        // Leave boxes of live processes, and directories too young to have an owner file.
        match owner {
            Some(p) if pid_alive(p) => continue,
            None if e
                .metadata()
                .and_then(|m| m.modified())
                .map_or(true, |m| m.elapsed().unwrap_or_default() < Duration::from_secs(60)) =>
            {
                continue
            }
            _ => {}
        }
        let cgroups: Vec<PathBuf> = fs::read_to_string(dir.join("cgroups"))
            .unwrap_or_default()
            .lines()
            .map(PathBuf::from)
            .collect();
        destroy_cgroups(&cgroups);
        let _ = fs::remove_dir_all(&dir);
    }
}

/// Output collected from a pipe by a reader thread, readable at any time.
type Collected = Arc<Mutex<Vec<u8>>>;

fn collect(mut r: impl Read + Send + 'static) -> Collected {
    let buf: Collected = Arc::default();
    let b = buf.clone();
    thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

/// Waits for `child` up to `timeout`; on timeout kills its process group.
/// Output is whatever the pipes delivered (processes left running in the
/// background may keep them open, so we never wait for EOF past the deadline).
fn wait_bounded(mut child: Child, timeout: Duration, what: &str) -> Output {
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            _ => {
                timed_out = true;
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.kill();
                break child.wait().unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL));
            }
        }
    };
    // Give the readers a moment to drain what is already in the pipes.
    let drain_until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < drain_until
        && (Arc::strong_count(&out) > 1 || Arc::strong_count(&err) > 1)
    {
        thread::sleep(Duration::from_millis(2));
    }
    let stdout = out.lock().unwrap().clone();
    let mut stderr = err.lock().unwrap().clone();
    if timed_out {
        stderr.extend_from_slice(
            format!("\nsysbox: `{what}` timed out after {timeout:?} and was killed\n").as_bytes(),
        );
    }
    Output { status, stdout, stderr }
}

/// A booted throwaway systemd. Dropping it tears it down.
pub struct SysBox {
    id: String,
    state: PathBuf,
    /// The box's PID 1 as the host sees it.
    pid1: i32,
    /// `unshare`, the box's launcher (parent of PID 1).
    launcher: Option<Child>,
    /// The box's cgroups on the host, one per hierarchy.
    cgroups: Vec<PathBuf>,
    /// Where commands run by `sh`/`run` are placed (NUL-terminated cgroup.procs paths).
    exec_procs: Vec<CString>,
    watchdog: Option<(mpsc::Sender<()>, thread::JoinHandle<()>)>,
    boot_time: Duration,
}

impl SysBox {
    /// Boots a box and waits (at most [`BOOT_TIMEOUT`]) until it is up.
    pub fn boot() -> Result<SysBox> {
        SysBox::boot_keeping(&[])
    }

    /// [`SysBox::boot`] with host directories bind-mounted into the box
    /// (`(host dir, absolute path in the box)`): what the box writes there
    /// outlives it, so a second box booted with the same ones sees a
    /// "reboot" of the first (each box has its own boot id).
    pub fn boot_keeping(keep: &[(&Path, &Path)]) -> Result<SysBox> {
        sweep_stale();
        let t0 = Instant::now();
        let id = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            BOX_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let state = Path::new(STATE_BASE).join(&id);
        let _ = fs::remove_dir_all(&state);
        fs::create_dir_all(state.join("box"))?;
        fs::write(state.join("owner"), std::process::id().to_string())?;
        let mut sb = SysBox {
            id: id.clone(),
            state: state.clone(),
            pid1: 0,
            launcher: None,
            cgroups: Vec::new(),
            exec_procs: Vec::new(),
            watchdog: None,
            boot_time: Duration::ZERO,
        };
        // From here on, Drop cleans up whatever has been set up so far.
        let hier = hierarchies()?;
        let mut cgmounts = String::new();
        let mut procs = Vec::new();
        for h in &hier {
            let cg = h.ours.join(&id);
            fs::create_dir_all(&cg).with_context(|| format!("mkdir {}", cg.display()))?;
            sb.cgroups.push(cg.clone());
            fs::write(
                state.join("cgroups"),
                sb.cgroups.iter().map(|c| format!("{}\n", c.display())).collect::<String>(),
            )?;
            // cgroup v1 cpuset refuses tasks until cpus and mems are set.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if cg.join(f).exists() {
                    fs::write(cg.join(f), fs::read(h.ours.join(f))?)?;
                }
            }
            procs.push(CString::new(cg.join("cgroup.procs").as_os_str().as_bytes())?);
            cgmounts.push_str(&format!("{} {} {}\n", h.fstype, h.options, h.rel));
        }
        fs::write(state.join("cgmounts"), cgmounts)?;
        fs::write(state.join("init"), INIT_SCRIPT)?;
        if !keep.is_empty() {
            let mut lines = String::new();
            for (host, path) in keep {
                let (h, p) = (host.display().to_string(), path.display().to_string());
                if !path.is_absolute()
                    || h.contains(char::is_whitespace)
                    || p.contains(char::is_whitespace)
                {
                    bail!("boot_keeping: {h} -> {p}: absolute paths without spaces only");
                }
                lines.push_str(&format!("{h} {p}\n"));
            }
            fs::write(state.join("keep"), lines)?;
        }

        let log = fs::File::create(state.join("boot.log"))?;
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--kill-child", "--mount", "--cgroup"])
            .args(["--propagation", "private", "bash"])
            .arg(state.join("init"))
            .arg(&state)
            .env("MASKED", MASKED_UNITS.join(" "))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let procs_for_child = procs.clone();
        // Safety: only async-signal-safe calls (prctl, open, write, close) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                join_cgroups(&procs_for_child)
            });
        }
        sb.launcher = Some(cmd.spawn().context("spawning unshare")?);
        let launcher_pid = sb.launcher.as_ref().unwrap().id() as i32;

        // PID 1 of the box is the launcher's only child.
        let deadline = t0 + BOOT_TIMEOUT;
        while sb.pid1 == 0 {
            if let Some(p) = children_of(launcher_pid).first() {
                sb.pid1 = *p;
            } else if Instant::now() > deadline
                || sb.launcher.as_mut().unwrap().try_wait()?.is_some()
            {
                bail!("box did not start:\n{}", sb.boot_log());
            } else {
                thread::sleep(Duration::from_millis(5));
            }
        }
        sb.start_watchdog(launcher_pid);

        loop {
            let o = sb.run_in(&["systemctl", "is-system-running"], Duration::from_secs(5), false);
            let state_seen = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if state_seen == "running" || state_seen == "degraded" {
                break;
            }
            if Instant::now() > deadline || !pid_alive(sb.pid1) {
                bail!(
                    "systemd did not finish booting within {BOOT_TIMEOUT:?} (state: {state_seen:?})\n{}",
                    sb.boot_log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        // Commands run inside join the box's init.scope where it exists (v1 hierarchies
        // systemd does not track have none), so they look like box processes.
        sb.exec_procs = sb
            .cgroups
            .iter()
            .map(|c| {
                let scope = c.join("init.scope");
                let dir = if scope.is_dir() { scope } else { c.clone() };
                CString::new(dir.join("cgroup.procs").as_os_str().as_bytes()).unwrap()
            })
            .collect();
        sb.boot_time = t0.elapsed();
        Ok(sb)
    }

    fn start_watchdog(&mut self, launcher_pid: i32) {
        let lifetime = std::env::var("CCMANAGERD_SYSBOX_MAX_LIFETIME_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(MAX_LIFETIME);
        let (tx, rx) = mpsc::channel::<()>();
        let pid1 = self.pid1;
        let id = self.id.clone();
        let handle = thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(lifetime) {
                eprintln!("sysbox {id}: alive after {lifetime:?}; killing it (watchdog)");
                unsafe {
                    libc::kill(pid1, libc::SIGKILL);
                    libc::kill(launcher_pid, libc::SIGKILL);
                }
            }
        });
        self.watchdog = Some((tx, handle));
    }

    /// Time from launch to `running|degraded`.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// The box's PID 1 as seen from the host.
    pub fn pid1(&self) -> i32 {
        self.pid1
    }

    /// The box's cgroups on the host (one per hierarchy).
    pub fn cgroups(&self) -> &[PathBuf] {
        &self.cgroups
    }

    /// The box's state directory on the host (under /var/tmp).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The box's root as a host path (`/proc/<pid1>/root`): read and write
    /// files in the box through it while the box runs.
    pub fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid1))
    }

    /// `bash -c script` inside the box, bounded by [`COMMAND_TIMEOUT`].
    pub fn sh(&self, script: &str) -> Output {
        self.sh_timeout(script, COMMAND_TIMEOUT)
    }

    pub fn sh_timeout(&self, script: &str, timeout: Duration) -> Output {
        self.run_timeout(&["bash", "-c", script], timeout)
    }

    /// Like [`sh`](Self::sh) but panics with the command's output unless it
    /// exits 0; returns its stdout.
    pub fn sh_ok(&self, script: &str) -> String {
        let o = self.sh(script);
        assert!(o.status.success(), "in box: `{script}` failed: {}", describe(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs argv inside the box (root, cwd /), bounded by [`COMMAND_TIMEOUT`].
    pub fn run(&self, argv: &[&str]) -> Output {
        self.run_timeout(argv, COMMAND_TIMEOUT)
    }

    pub fn run_timeout(&self, argv: &[&str], timeout: Duration) -> Output {
        self.run_in(argv, timeout, true)
    }

    fn run_in(&self, argv: &[&str], timeout: Duration, join: bool) -> Output {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.pid1.to_string())
            .args(["-m", "-p", "-C", "--"])
            .args([
                "env",
                "-i",
                // nsenter's --wd opens the directory before entering the mount namespace.
                "-C",
                "/",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ])
            .args(["HOME=/root", "LANG=C.UTF-8", "SYSBOX=1"])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if join {
            let procs = self.exec_procs.clone();
            // Safety: join_cgroups only calls open/write/close.
            unsafe { cmd.pre_exec(move || join_cgroups(&procs)) };
        }
        match cmd.spawn() {
            Ok(child) => wait_bounded(child, timeout, &argv.join(" ")),
            Err(e) => Output {
                status: ExitStatus::from_raw(127 << 8),
                stdout: Vec::new(),
                stderr: format!("sysbox: cannot run nsenter: {e}").into_bytes(),
            },
        }
    }

    /// Copies a host file or directory (recursively, keeping modes) into the box.
    pub fn copy_in(&self, host_path: &Path, box_path: &Path) -> Result<()> {
        let dest = self.root().join(box_path.strip_prefix("/").unwrap_or(box_path));
        copy_tree(host_path, &dest).with_context(|| {
            format!("copying {} into box:{}", host_path.display(), box_path.display())
        })
    }

    /// Writes a file in the box (parents created) with the given mode.
    pub fn write_file(&self, box_path: &Path, contents: &[u8], mode: u32) -> Result<()> {
        let dest = self.root().join(box_path.strip_prefix("/").unwrap_or(box_path));
        if let Some(p) = dest.parent() {
            fs::create_dir_all(p)?;
        }
        fs::write(&dest, contents)?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    fn boot_log(&self) -> String {
        fs::read_to_string(self.state.join("boot.log")).unwrap_or_default()
    }
}

/// Moves the calling process into the cgroups (writing "0" to cgroup.procs
/// moves the writer). Async-signal-safe: runs between fork and exec.
fn join_cgroups(procs: &[CString]) -> std::io::Result<()> {
    for p in procs {
        unsafe {
            let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if n != 1 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

fn children_of(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(from)?;
    if meta.is_dir() {
        fs::create_dir_all(to)?;
        fs::set_permissions(to, meta.permissions())?;
        for e in fs::read_dir(from)? {
            let e = e?;
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
    } else if meta.file_type().is_symlink() {
        let _ = fs::remove_file(to);
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
    } else {
        if let Some(p) = to.parent() {
            fs::create_dir_all(p)?;
        }
        fs::copy(from, to)?;
    }
    Ok(())
}

/// "exit status ...; stdout: ...; stderr: ..." for assertion messages.
pub fn describe(o: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Drop for SysBox {
    fn drop(&mut self) {
        // Killing PID 1 of a PID namespace kills every process in it.
        if self.pid1 > 0 {
            unsafe { libc::kill(self.pid1, libc::SIGKILL) };
        }
        // unshare (--kill-child) reaps PID 1 and exits; kill it only if it does not.
        if let Some(mut l) = self.launcher.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(l.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            let _ = l.kill();
            let _ = l.wait();
        }
        if let Some((tx, handle)) = self.watchdog.take() {
            let _ = tx.send(());
            let _ = handle.join();
        }
        // The overlay and tmpfs were mounted only in the box's mount namespace,
        // which is gone with its last process; what remains on the host is the
        // cgroups and the state directory.
        destroy_cgroups(&self.cgroups);
        let _ = fs::remove_dir_all(&self.state);
    }
}

// --- Installing the package's files in a box ---------------------------------

/// One file the .deb installs: `[package.metadata.deb].assets` resolved.
#[derive(Debug, Clone)]
pub struct Asset {
    /// Host path of the source.
    pub src: PathBuf,
    /// Absolute path in the box.
    pub dest: PathBuf,
    pub mode: u32,
}

/// The assets of `[package.metadata.deb]` in `repo_root/Cargo.toml`, with
/// `target/release/` sources taken from `bin_dir` instead and `*` globs in
/// the last path component expanded. Missing sources are left in the list
/// (see [`install_files`]).
pub fn deb_assets(repo_root: &Path, bin_dir: &Path) -> Result<Vec<Asset>> {
    let manifest: toml::Table = fs::read_to_string(repo_root.join("Cargo.toml"))?.parse()?;
    let assets = manifest
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("deb"))
        .and_then(|d| d.get("assets"))
        .and_then(|a| a.as_array())
        .context("Cargo.toml has no [package.metadata.deb].assets")?;
    let mut out = Vec::new();
    for a in assets {
        let f: Vec<&str> = a.as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
        let [src, dest, mode] = f[..] else { bail!("asset {a} is not [src, dest, mode]") };
        let mode = u32::from_str_radix(mode, 8).with_context(|| format!("mode of {src}"))?;
        let src = match src.strip_prefix("target/release/") {
            Some(bin) => bin_dir.join(bin),
            None => repo_root.join(src),
        };
        for s in expand_glob(&src)? {
            let dest = if dest.ends_with('/') {
                Path::new("/").join(dest).join(s.file_name().unwrap())
            } else {
                Path::new("/").join(dest)
            };
            out.push(Asset { src: s, dest, mode });
        }
    }
    Ok(out)
}

fn expand_glob(p: &Path) -> Result<Vec<PathBuf>> {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let Some((prefix, suffix)) = name.split_once('*') else { return Ok(vec![p.to_path_buf()]) };
    let dir = p.parent().unwrap();
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|e| {
                    let n = e.file_name().unwrap().to_string_lossy();
                    n.len() >= prefix.len() + suffix.len()
                        && n.starts_with(prefix)
                        && n.ends_with(suffix)
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    Ok(found)
}

/// Where [`install_files`] puts the maintainer scripts in the box.
pub const BOX_PKG_SCRIPTS: &str = "/usr/local/lib/ccmanagerd-pkg";

/// Installs in the box the same files as the .deb (from
/// `[package.metadata.deb].assets`, binaries from `bin_dir`), then runs the
/// package's own `postinst configure` (sysusers, tmpfiles, daemon-reload,
/// enable + start). Documentation and the /etc conffile are skipped (with a
/// printed line) when their source is missing; any other missing source is an
/// error. The maintainer scripts stay in
/// [`BOX_PKG_SCRIPTS`] so tests can run `prerm remove` / `postinst configure
/// <old-version>` like dpkg does.
pub fn install_files(sb: &SysBox, repo_root: &Path, bin_dir: &Path) -> Result<()> {
    for a in deb_assets(repo_root, bin_dir)? {
        if !a.src.exists() {
            // Docs and the example config are optional here: the daemon runs on
            // built-in defaults without /etc/ccmanagerd/config.toml.
            if a.dest.starts_with("/usr/share/doc") || a.dest.starts_with("/etc") {
                skip(&format!("install of {}", a.dest.display()), "source missing");
                continue;
            }
            bail!("asset {} is missing (build it first?)", a.src.display());
        }
        sb.copy_in(&a.src, &a.dest)?;
        fs::set_permissions(
            sb.root().join(a.dest.strip_prefix("/").unwrap()),
            fs::Permissions::from_mode(a.mode),
        )?;
    }
    for s in ["postinst", "prerm", "postrm"] {
        sb.copy_in(
            &repo_root.join("packaging/debian").join(s),
            &Path::new(BOX_PKG_SCRIPTS).join(s),
        )?;
    }
    let o = sb.run(&["sh", &format!("{BOX_PKG_SCRIPTS}/postinst"), "configure"]);
    if !o.status.success() {
        bail!("postinst configure failed: {}", describe(&o));
    }
    Ok(())
}

/// The newest .deb built by `cargo deb` under `repo_root/target/debian`.
pub fn built_deb(repo_root: &Path) -> Option<PathBuf> {
    fs::read_dir(repo_root.join("target/debian"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .max_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
}

/// Installs (or upgrades to) a .deb in the box with dpkg.
pub fn install_deb(sb: &SysBox, deb: &Path) -> Result<()> {
    let in_box = Path::new("/var/cache/ccmanagerd-test").join(deb.file_name().unwrap());
    sb.copy_in(deb, &in_box)?;
    let o = sb.run(&["dpkg", "-i", in_box.to_str().unwrap()]);
    if !o.status.success() {
        bail!("dpkg -i failed: {}", describe(&o));
    }
    Ok(())
}
