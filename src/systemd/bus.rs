//! One kept D-Bus connection to systemd (PID 1), shared as the small
//! cloneable [`Bus`] handle: the transient scope of a session, the transient
//! service of a tmux server, killing and stopping units, and their state.
//!
//! Why a connection and not `busctl`/`systemctl`/`systemd-run`: one spawned
//! process cost about +3 ms per session create and +5 ms per kill
//! (docs/performance.md); a method call on a kept connection is a round trip
//! on a Unix socket.
//!
//! As root we talk to PID 1 on its private socket ([`PRIVATE_SOCKET`],
//! peer-to-peer, what `systemctl` uses as root): it needs no dbus-daemon.
//! Otherwise (or if that fails) the system bus.
//!
//! Jobs: `StartTransientUnit` and `StopUnit` answer with a job path at once;
//! the job's end comes later as the manager's `JobRemoved` signal. One stream
//! per connection reads those signals and fans them out (a tokio broadcast);
//! a caller subscribes to it *before* its call, so a job that ends before the
//! reply has been read is never missed. Every wait is bounded
//! ([`CALL_TIMEOUT`], [`JOB_TIMEOUT`], [`CONNECT_TIMEOUT`]).
//!
//! zbus cannot read what PID 1 sends on its private socket as it comes
//! (a well-known sender name): `systemd/private.rs` fixes that up underneath.
//!
//! PID 1 drops its private connections on `systemctl daemon-reexec`: a dead
//! connection is noticed (the signal stream ends, or a call fails on the
//! socket) and replaced by a new one at the next call.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, Mutex};
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};
use zbus::{Connection, MatchRule, MessageStream};

pub use super::error::BusError;
pub use super::unit::{slice_of_cgroup, CollectMode, KillMode, Property};

/// systemd's private socket: the manager itself, no bus daemon in between.
pub const PRIVATE_SOCKET: &str = "/run/systemd/private";
/// How long systemd may take to answer one method call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a job (start or stop of a unit) may take to finish. Stopping a
/// scope after SIGKILL takes milliseconds; a service start with `Type=exec`
/// ends once the binary was executed.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting and authenticating may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `JobRemoved` signals buffered per connection for callers still waiting;
/// a caller that falls further behind asks systemd about its job instead.
const JOB_EVENTS: usize = 1024;

const DESTINATION: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// Where to reach systemd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A manager's private socket (peer-to-peer), e.g. [`PRIVATE_SOCKET`].
    Private(PathBuf),
    /// The system bus (dbus-daemon or dbus-broker in between).
    SystemBus,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Private(p) => write!(f, "unix:path={}", p.display()),
            Target::SystemBus => f.write_str("the system bus"),
        }
    }
}

/// One `JobRemoved(u id, o job, s unit, s result)` signal.
#[derive(Debug, Clone)]
struct JobRemoved {
    job: OwnedObjectPath,
    result: String,
}

/// Aborts the task reading a connection's signals when the last clone of its
/// [`Link`] goes (the task holds the connection open).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One live connection with its `JobRemoved` fan-out.
#[derive(Clone)]
struct Link {
    conn: Connection,
    jobs: broadcast::Sender<JobRemoved>,
    /// Cleared when the signal stream ends: the connection is gone.
    alive: Arc<AtomicBool>,
    _reader: Arc<AbortOnDrop>,
}

impl Link {
    async fn open(target: &Target) -> Result<Link, BusError> {
        let failed = |reason: String| BusError::Connect { target: target.to_string(), reason };
        let connecting = async {
            let builder = match target {
                Target::Private(path) => {
                    let (socket, guid) = super::private::connect(path).await?;
                    zbus::connection::Builder::authenticated_socket(socket, guid)?.p2p()
                }
                Target::SystemBus => zbus::connection::Builder::system()?,
            };
            let conn = builder.method_timeout(CALL_TIMEOUT).build().await?;
            // Subscribed before anyone can queue a job on this connection.
            let rule = MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .sender(DESTINATION)?
                .path(MANAGER_PATH)?
                .interface(MANAGER)?
                .member("JobRemoved")?
                .build();
            let stream = MessageStream::for_match_rule(rule, &conn, Some(JOB_EVENTS)).await?;
            // PID 1 sends its signals to private connections unconditionally,
            // on the bus only to clients that called Subscribe.
            conn.call_method(Some(DESTINATION), MANAGER_PATH, Some(MANAGER), "Subscribe", &())
                .await?;
            Ok::<_, zbus::Error>((conn, stream))
        };
        let (conn, mut stream) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| failed(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| failed(e.to_string()))?;
        let (jobs, _) = broadcast::channel(JOB_EVENTS);
        let alive = Arc::new(AtomicBool::new(true));
        let (tx, flag) = (jobs.clone(), alive.clone());
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let body = msg.body();
                if let Ok((_, job, _, result)) =
                    body.deserialize::<(u32, OwnedObjectPath, String, String)>()
                {
                    // No receiver is fine: nobody waits for that job.
                    let _ = tx.send(JobRemoved { job, result });
                }
            }
            flag.store(false, Ordering::SeqCst);
            tracing::info!("the connection to systemd closed");
        });
        Ok(Link { conn, jobs, alive, _reader: Arc::new(AbortOnDrop(reader.abort_handle())) })
    }

    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    async fn call<B, R>(&self, path: &str, iface: &str, method: &str, body: &B) -> zbus::Result<R>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        let reply =
            self.conn.call_method(Some(DESTINATION), path, Some(iface), method, body).await?;
        reply.body().deserialize::<R>()
    }
}

/// Whether a failed call means the connection is gone (and a new one may
/// succeed). A call that timed out is not retried: systemd is busy or hung.
fn is_disconnect(e: &zbus::Error) -> bool {
    match e {
        zbus::Error::InputOutput(io) => io.kind() != std::io::ErrorKind::TimedOut,
        _ => false,
    }
}

/// A cloneable handle on one kept connection to systemd (see the module doc).
#[derive(Clone)]
pub struct Bus {
    target: Arc<Target>,
    link: Arc<Mutex<Option<Link>>>,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus").field("target", &self.target).finish_non_exhaustive()
    }
}

impl Bus {
    /// As root, PID 1's private socket ([`PRIVATE_SOCKET`]); otherwise, or if
    /// that fails, the system bus.
    pub async fn connect() -> Result<Bus, BusError> {
        let private = Target::Private(PathBuf::from(PRIVATE_SOCKET));
        if nix::unistd::geteuid().is_root() {
            match Bus::connect_to(private).await {
                Ok(bus) => return Ok(bus),
                Err(e) => tracing::warn!(error = %e, "falling back to the system bus"),
            }
        }
        Bus::connect_to(Target::SystemBus).await
    }

    /// Connects to `target` now (so a wrong setup shows at start).
    pub async fn connect_to(target: Target) -> Result<Bus, BusError> {
        let link = Link::open(&target).await?;
        tracing::info!(address = %target, "connected to systemd");
        Ok(Bus { target: Arc::new(target), link: Arc::new(Mutex::new(Some(link))) })
    }

    /// Where this handle talks to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The live connection, made anew if the last one died.
    async fn link(&self) -> Result<Link, BusError> {
        let mut slot = self.link.lock().await;
        if let Some(link) = slot.as_ref().filter(|l| l.is_alive()) {
            return Ok(link.clone());
        }
        let link = Link::open(&self.target).await?;
        tracing::info!(address = %self.target, "reconnected to systemd");
        *slot = Some(link.clone());
        Ok(link)
    }

    /// Drops `dead` unless it was replaced already.
    async fn forget(&self, dead: &Link) {
        let mut slot = self.link.lock().await;
        if slot.as_ref().is_some_and(|l| Arc::ptr_eq(&l.alive, &dead.alive)) {
            *slot = None;
        }
    }

    /// Calls a manager method; on a lost connection, once more on a new one.
    /// With `jobs`, also subscribes to the new connection's job ends before
    /// the call and returns that receiver.
    async fn manager<B, R>(
        &self,
        method: &'static str,
        unit: &str,
        body: &B,
    ) -> Result<(R, broadcast::Receiver<JobRemoved>), BusError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        let mut retried = false;
        loop {
            let link = self.link().await?;
            let jobs = link.jobs.subscribe();
            match link.call(MANAGER_PATH, MANAGER, method, body).await {
                Ok(r) => return Ok((r, jobs)),
                Err(e) if is_disconnect(&e) && !retried => {
                    tracing::info!(method, unit, error = %e, "the connection to systemd is gone; reconnecting");
                    self.forget(&link).await;
                    retried = true;
                }
                Err(e) => return Err(BusError::from_call(method, unit, e)),
            }
        }
    }

    /// Calls a manager method that queues a job and waits (at most
    /// [`JOB_TIMEOUT`]) for the job to end; `done` is success.
    async fn run_job<B>(&self, method: &'static str, unit: &str, body: &B) -> Result<(), BusError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        let (job, mut jobs): (OwnedObjectPath, _) = self.manager(method, unit, body).await?;
        let lost = |why: String| BusError::JobLost {
            method,
            unit: unit.to_string(),
            job: job.to_string(),
            why,
        };
        let ended = async {
            loop {
                match jobs.recv().await {
                    Ok(ev) if ev.job == job => return Ok(Some(ev.result)),
                    Ok(_) => {}
                    // Too far behind to have seen it: ask whether it still exists.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if !self.job_exists(&job).await {
                            return Ok(None);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(lost("was not seen to end: the connection closed".into()))
                    }
                }
            }
        };
        let result = tokio::time::timeout(JOB_TIMEOUT, ended)
            .await
            .map_err(|_| lost(format!("did not end within {JOB_TIMEOUT:?}")))??;
        match result {
            Some(r) if r != "done" => Err(BusError::Job {
                method,
                unit: unit.to_string(),
                job: job.to_string(),
                result: r,
            }),
            Some(_) => Ok(()),
            None => {
                tracing::debug!(unit, job = %job, "job ended unseen (signals lagged); assuming done");
                Ok(())
            }
        }
    }

    async fn job_exists(&self, job: &OwnedObjectPath) -> bool {
        let Ok(link) = self.link().await else { return false };
        let got: zbus::Result<OwnedValue> = link
            .call(job.as_str(), PROPERTIES, "Get", &("org.freedesktop.systemd1.Job", "State"))
            .await;
        got.is_ok()
    }

    /// A transient `.scope` named `unit` holding `pids`, in `slice`, with
    /// `props`; waits until its start job ended. `StartTransientUnit` with
    /// mode `fail`: a unit of that name that is still loaded is an error
    /// (`org.freedesktop.systemd1.UnitExists`).
    pub async fn start_scope(
        &self,
        unit: &str,
        pids: &[u32],
        slice: &str,
        props: &[Property],
    ) -> Result<(), BusError> {
        let mut all: Vec<(&str, Value<'_>)> =
            vec![("PIDs", Value::from(pids.to_vec())), ("Slice", Value::from(slice))];
        all.extend(props.iter().map(Property::to_dbus));
        self.start_transient(unit, all).await
    }

    /// A transient `.service` named `unit` running `argv` (`ExecStart=`,
    /// `Type=exec`: the start job fails if the binary cannot be executed), as
    /// `user` (`User=`, a name or a uid) and in `slice` when given, with
    /// `props`; waits until its start job ended. PID 1 starts it with its own
    /// clean environment (plus what `User=` implies): nothing of ours, such
    /// as `NOTIFY_SOCKET`, reaches it.
    pub async fn start_service(
        &self,
        unit: &str,
        argv: &[OsString],
        user: Option<&str>,
        slice: Option<&str>,
        props: &[Property],
    ) -> Result<(), BusError> {
        let strings = argv
            .iter()
            .map(|a| {
                a.to_str()
                    .map(str::to_owned)
                    .ok_or_else(|| BusError::NotUtf8 { unit: unit.into(), arg: a.clone() })
            })
            .collect::<Result<Vec<String>, _>>()?;
        let path = strings.first().cloned().unwrap_or_default();
        // ExecStart is a(sasb): (binary, argv including argv[0], ignore failure).
        let exec = vec![(path, strings, false)];
        let mut all: Vec<(&str, Value<'_>)> =
            vec![("Type", Value::from("exec")), ("ExecStart", Value::from(exec))];
        if let Some(user) = user {
            all.push(("User", Value::from(user)));
        }
        if let Some(slice) = slice {
            all.push(("Slice", Value::from(slice)));
        }
        all.extend(props.iter().map(Property::to_dbus));
        self.start_transient(unit, all).await
    }

    async fn start_transient(
        &self,
        unit: &str,
        props: Vec<(&str, Value<'_>)>,
    ) -> Result<(), BusError> {
        // No auxiliary units: the a(sa(sv)) stays empty.
        let aux: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();
        self.run_job("StartTransientUnit", unit, &(unit, "fail", props, aux)).await
    }

    /// Sends `signal` to every process of `unit` (`KillUnit(unit, "all", signal)`).
    pub async fn kill_unit(&self, unit: &str, signal: i32) -> Result<(), BusError> {
        self.manager::<_, ()>("KillUnit", unit, &(unit, "all", signal)).await.map(drop)
    }

    /// Stops `unit` (`StopUnit(unit, "replace")`) and waits for the job. A
    /// unit that is not loaded is already stopped: `Ok`.
    pub async fn stop_unit(&self, unit: &str) -> Result<(), BusError> {
        match self.run_job("StopUnit", unit, &(unit, "replace")).await {
            Err(e) if e.is_no_such_unit() => Ok(()),
            other => other,
        }
    }

    /// `ActiveState` of `unit` (`active`, `activating`, `failed`...), or
    /// `None` when it is not loaded.
    pub async fn active_state(&self, unit: &str) -> Result<Option<String>, BusError> {
        let path: OwnedObjectPath = match self.manager("GetUnit", unit, &(unit,)).await {
            Ok((path, _)) => path,
            Err(e) if e.is_no_such_unit() => return Ok(None),
            Err(e) => return Err(e),
        };
        let link = self.link().await?;
        let value: OwnedValue = link
            .call(path.as_str(), PROPERTIES, "Get", &(UNIT, "ActiveState"))
            .await
            .map_err(|e| BusError::from_call("Get ActiveState", unit, e))?;
        let state = String::try_from(value)
            .map_err(|e| BusError::from_call("Get ActiveState", unit, e.into()))?;
        Ok(Some(state))
    }

    /// The slice this process runs in, e.g. `system.slice`: systemd's answer
    /// (`GetUnitByPID`, then the unit's `Slice`), else read from
    /// `/proc/self/cgroup`. `None` when neither knows.
    pub async fn own_slice(&self) -> Option<String> {
        let pid = std::process::id();
        let me = "own unit";
        let asked = async {
            let (path, _): (OwnedObjectPath, _) = self.manager("GetUnitByPID", me, &(pid,)).await?;
            let link = self.link().await?;
            let value: OwnedValue = link
                .call(path.as_str(), PROPERTIES, "Get", &(UNIT, "Slice"))
                .await
                .map_err(|e| BusError::from_call("Get Slice", me, e))?;
            String::try_from(value).map_err(|e| BusError::from_call("Get Slice", me, e.into()))
        };
        match asked.await {
            Ok(slice) if !slice.is_empty() => Some(slice),
            Ok(_) => slice_of_cgroup(&std::fs::read_to_string("/proc/self/cgroup").ok()?),
            Err(e) => {
                tracing::debug!(error = %e, "systemd does not know our unit; reading /proc/self/cgroup");
                slice_of_cgroup(&std::fs::read_to_string("/proc/self/cgroup").ok()?)
            }
        }
    }
}
