//! One run of each path of the stream figures. A run's program
//! ([`PRINTER`]) waits for its `go` file, notes the time, `cat`s the data
//! file into its pane, notes the time again (its wall time, written to its
//! `time` file), prints the run's end marker and sleeps. The viewer's
//! figure stops when it has seen the marker; the program's figure is its
//! own wall time. The echo paths type one byte at a time into
//! `stty raw -echo; cat` and wait until it shows.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use serde_json::json;

use super::attach::Attached;
use super::loggers::{self, Cpu, Meter};
use super::wire::{check, Finder, Msg, Wire};
use super::Ctx;
use crate::harness::{call, tmux, tmux_server_pid, Control};
use ccmanagerd::tmux::Cmd;

/// `sh PRINTER_FILE DATA RUNDIR MARKER` (a file: the daemon refuses a
/// command argument with a newline).
const PRINTER: &str = r#"while [ ! -e "$2/go" ]; do sleep 0.01; done
t0=$(date +%s%N)
cat "$1"
t1=$(date +%s%N)
echo "$t0 $t1" > "$2/time.tmp" && mv "$2/time.tmp" "$2/time"
printf '\n%s\n' "$3"
exec sleep 100000"#;

/// The echo program: the pane's tty in raw mode, every byte typed comes
/// back as the program's own output (as a shell's line editor does).
pub const ECHOER: [&str; 3] = ["sh", "-c", "stty raw -echo; printf READY; exec cat"];

/// What one run measured, seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// The program's wall time.
    pub program_s: f64,
    /// From the program's start to the viewer seeing its end marker.
    pub viewer_s: Option<f64>,
    /// CPU of the processes involved, from `go` to the viewer's marker
    /// (or the logger's last read).
    pub cpu: Cpu,
    /// Bytes the viewer received.
    pub viewer_bytes: u64,
    /// `session.output` notifications it took (subscribe).
    pub notifications: u64,
    /// The pane had a `pipe-pane` (its logger) when the session was made.
    pub piped: bool,
}

/// One run's files and marker.
pub struct Run {
    dir: PathBuf,
    /// Printed after the data; contains `-`, which base64 never does.
    pub marker: String,
}

fn ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

impl Run {
    fn go(&self) -> Result<()> {
        std::fs::write(self.dir.join("go"), b"").context("writing the go file")
    }

    /// Waits for the program's `time` file: its (start, end), ns since the epoch.
    fn times(&self, limit: Duration) -> Result<(u64, u64)> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(t) = std::fs::read_to_string(self.dir.join("time")) {
                let v: Vec<u64> = t.split_whitespace().filter_map(|x| x.parse().ok()).collect();
                if let [a, b] = v[..] {
                    return Ok((a, b));
                }
            }
            if Instant::now() > deadline {
                bail!("the program of {} did not finish within {limit:?}", self.dir.display());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Ctx<'_> {
    fn run(&mut self) -> Result<(Run, Vec<String>)> {
        self.seq += 1;
        let dir = self.dir.path().join(format!("run{}", self.seq));
        std::fs::create_dir(&dir)?;
        let marker = format!("END-OF-RUN-{}-{}", self.seq, std::process::id());
        let script = self.dir.path().join("printer.sh");
        if !script.exists() {
            std::fs::write(&script, PRINTER)?;
        }
        let argv = [script, self.data.clone(), dir.clone()]
            .into_iter()
            .map(|p| p.display().to_string())
            .chain([marker.clone()]);
        let argv = std::iter::once("sh".to_string()).chain(argv).collect();
        Ok((Run { dir, marker }, argv))
    }

    /// How long a run may take (at 1 MB/s at worst, 60 s at least).
    fn limit(&self) -> Duration {
        Duration::from_secs((self.bytes / 1_000_000).max(60))
    }

    fn create(&mut self, argv: &[String]) -> Result<(String, String)> {
        let s = call(&mut self.d, "session.create", json!({"command": argv}))?;
        let id = s["id"].as_str().context("session.create: no id")?.to_string();
        let tmux_session = s["tmux_session"].as_str().unwrap_or_default().to_string();
        Ok((id, tmux_session))
    }

    fn kill(&mut self, id: &str) -> Result<()> {
        call(&mut self.d, "session.kill", json!({"id": id})).map(drop)
    }

    /// The program in a session of the bare baseline tmux server: no
    /// logger, no viewer.
    pub fn bare(&mut self) -> Result<Sample> {
        let (run, argv) = self.run()?;
        let name = format!("streams{}", self.seq);
        let mut args = vec!["new-session", "-d", "-s", &name, "-x", "80", "-y", "24"];
        args.extend(argv.iter().map(String::as_str));
        tmux(&self.base.socket, &args)?;
        let meter = Meter::start(self.base.server_pid, vec![], None, None);
        run.go()?;
        let (t0, t1) = run.times(self.limit())?;
        let cpu = meter.read();
        tmux(&self.base.socket, &["kill-session", "-t", &format!("={name}")])?;
        Ok(Sample { program_s: (t1 - t0) as f64 / 1e9, cpu, ..Sample::default() })
    }

    /// The loggers below the daemon's tmux servers.
    fn loggers(&self) -> Vec<Vec<i32>> {
        loggers::find(&self.daemon.dir.path().join("tmux"))
    }

    /// Counts the CPU of the daemon, its tmux server, `loggers` and `viewer`.
    fn meter(&self, loggers: Vec<Vec<i32>>, viewer: Option<i32>) -> Meter {
        let server = tmux_server_pid(&self.daemon.tmux_socket);
        Meter::start(server, loggers, Some(self.daemon.pid()), viewer)
    }

    /// The pane of a daemon session, and whether `pipe-pane` taps it.
    fn pane(&self, tmux_session: &str) -> Result<(String, bool)> {
        let sock = &self.daemon.tmux_socket;
        let target = format!("={tmux_session}");
        let out = tmux(sock, &["list-panes", "-t", &target, "-F", "#{pane_id} #{pane_pipe}"])?;
        let (pane, pipe) = out.trim().split_once(' ').context("list-panes: no pane")?;
        Ok((pane.to_string(), pipe == "1"))
    }

    /// The program in a daemon session, no viewer: with its logger (and
    /// the logger's CPU over the run), or with the logger stopped
    /// (`pipe-pane` without a command closes the pipe), which leaves the
    /// same server, options and exec-wrapper without logging.
    /// A run the daemon re-tapped (its periodic full refresh gives every
    /// unpiped pane a logger) is done again, up to 3 times.
    pub fn logged(&mut self, logger: bool) -> Result<Sample> {
        for _ in 0..3 {
            let (run, argv) = self.run()?;
            let (id, tmux_session) = self.create(&argv)?;
            let r = self.logged_inner(&run, &tmux_session, logger);
            self.kill(&id)?;
            match r? {
                Some(s) => return Ok(s),
                None => {
                    self.note("the daemon re-tapped the pane during a logger-stopped run: again")
                }
            }
        }
        bail!("the daemon re-tapped the pane during 3 logger-stopped runs in a row")
    }

    /// The run, or None if the pane was tapped again while it ran.
    fn logged_inner(
        &mut self,
        run: &Run,
        tmux_session: &str,
        logger: bool,
    ) -> Result<Option<Sample>> {
        let (pane, piped) = self.pane(tmux_session)?;
        if !logger && piped {
            tmux(&self.daemon.tmux_socket, &["pipe-pane", "-t", &pane])?;
            if self.pane(tmux_session)?.1 {
                bail!("pipe-pane did not stop the logger of {pane}");
            }
        }
        let found = if logger { self.loggers() } else { vec![] };
        let meter = self.meter(found.clone(), None);
        run.go()?;
        let (t0, t1) = run.times(self.limit())?;
        if !logger && self.pane(tmux_session)?.1 {
            // A full refresh taps unpiped panes (`tap_unpiped`).
            return Ok(None);
        }
        // The logger drains what tmux still holds: wait until its CPU stops.
        let mut last = meter.logger_ticks();
        for _ in 0..50 {
            if found.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            let now = meter.logger_ticks();
            if now == last {
                break;
            }
            last = now;
        }
        Ok(Some(Sample {
            program_s: (t1 - t0) as f64 / 1e9,
            cpu: meter.read(),
            piped,
            ..Sample::default()
        }))
    }

    /// The program in a daemon session, watched by `tmux attach` in a pty.
    pub fn attach(&mut self) -> Result<Sample> {
        let (run, argv) = self.run()?;
        let (id, tmux_session) = self.create(&argv)?;
        let viewer = Attached::start(&self.daemon.tmux_socket, &tmux_session, &run.marker)?;
        let meter = self.meter(self.loggers(), Some(viewer.pid()));
        run.go()?;
        let seen = viewer.wait_marker(self.limit());
        let cpu = meter.read();
        let viewer_bytes = viewer.stop();
        let seen = seen?;
        let (t0, t1) = run.times(self.limit())?;
        self.kill(&id)?;
        Ok(Sample {
            program_s: (t1 - t0) as f64 / 1e9,
            viewer_s: Some((ns(seen).saturating_sub(t0)) as f64 / 1e9),
            viewer_bytes,
            cpu,
            ..Sample::default()
        })
    }

    /// The program in a daemon session, watched through `session.subscribe`
    /// from offset 0: every `session.output` acknowledged as it arrives
    /// (`ack_every` 0), or once `ack_every` bytes are unacknowledged (a
    /// client that acks in batches, as VS Code's pty host does).
    pub fn subscribe(&mut self, ack_every: u64) -> Result<Sample> {
        let (run, argv) = self.run()?;
        let (id, _) = self.create(&argv)?;
        let r = self.subscribe_inner(&run, &id, ack_every);
        self.kill(&id)?;
        r
    }

    fn subscribe_inner(&mut self, run: &Run, id: &str, ack_every: u64) -> Result<Sample> {
        let mut w = Wire::connect(&self.daemon.socket)?;
        let sub = w.call("session.subscribe", json!({"id": id, "from": 0}))?;
        let subscription = sub["subscription"].as_u64().context("no subscription number")?;
        let mut next = sub["offset"].as_u64().unwrap_or(0);
        let mut acked = next;
        let mut finder = Finder::new(run.marker.as_bytes());
        let (mut bytes, mut notes) = (0u64, 0u64);
        let meter = self.meter(self.loggers(), Some(std::process::id() as i32));
        run.go()?;
        let deadline = Instant::now() + self.limit();
        let (seen, cpu) = loop {
            if Instant::now() > deadline {
                bail!("the end marker did not come through session.subscribe in time");
            }
            match w.next()? {
                Msg::Output(o) => {
                    if o.offset != next {
                        bail!("session.output at offset {}, expected {next}", o.offset);
                    }
                    next = o.offset + o.data.0.len() as u64;
                    bytes += o.data.0.len() as u64;
                    notes += 1;
                    if next - acked >= ack_every {
                        acked = next;
                        let ack = json!({"subscription": subscription, "offset": next});
                        w.send("session.ack", ack)?;
                    }
                    if finder.feed(&o.data.0) {
                        break (SystemTime::now(), meter.read());
                    }
                }
                Msg::Reply { id, result } => check(id, &result)?,
                Msg::Note { method, .. } => bail!("unexpected {method} during the stream"),
            }
        };
        let (t0, t1) = run.times(self.limit())?;
        let _ = w.call("session.unsubscribe", json!({"subscription": subscription}));
        Ok(Sample {
            program_s: (t1 - t0) as f64 / 1e9,
            viewer_s: Some(ns(seen).saturating_sub(t0) as f64 / 1e9),
            viewer_bytes: bytes,
            notifications: notes,
            cpu,
            ..Sample::default()
        })
    }

    /// `n` keystroke-to-echo times through `session.write` and the
    /// subscription (one connection), after `warm` untimed ones.
    pub fn echo_daemon(&mut self, warm: usize, n: usize) -> Result<Vec<Duration>> {
        let argv: Vec<String> = ECHOER.iter().map(|s| s.to_string()).collect();
        let (id, _) = self.create(&argv)?;
        let r = self.echo_daemon_inner(&id, warm, n);
        self.kill(&id)?;
        r
    }

    fn echo_daemon_inner(&mut self, id: &str, warm: usize, n: usize) -> Result<Vec<Duration>> {
        let mut w = Wire::connect(&self.daemon.socket)?;
        let sub = w.call("session.subscribe", json!({"id": id, "from": 0}))?;
        let subscription = sub["subscription"].as_u64().context("no subscription number")?;
        let mut ready = Finder::new(b"READY");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut acked = 0;
        while !ready_seen(&mut w, &mut ready, subscription, &mut acked)? {
            if Instant::now() > deadline {
                bail!("the echo program did not print READY through the subscription");
            }
        }
        let mut samples = Vec::with_capacity(n);
        for i in 0..warm + n {
            let c = b'a' + (i % 26) as u8;
            let data = base64::engine::general_purpose::STANDARD.encode([c]);
            let t = Instant::now();
            let want = w.send("session.write", json!({"id": id, "data": data}))?;
            let (mut echoed, mut replied) = (None, false);
            while echoed.is_none() || !replied {
                match w.next()? {
                    Msg::Output(o) => {
                        if echoed.is_none() && o.data.0.contains(&c) {
                            echoed = Some(t.elapsed());
                        }
                        acked = o.offset + o.data.0.len() as u64;
                        w.send(
                            "session.ack",
                            json!({"subscription": subscription, "offset": acked}),
                        )?;
                    }
                    Msg::Reply { id, result } => {
                        check(id, &result)?;
                        replied |= id == want;
                    }
                    Msg::Note { method, .. } => bail!("unexpected {method} during the echo test"),
                }
                if t.elapsed() > Duration::from_secs(10) {
                    bail!("no echo of {:?} within 10 s", c as char);
                }
            }
            if i >= warm {
                samples.extend(echoed);
            }
        }
        let _ = w.call("session.unsubscribe", json!({"subscription": subscription}));
        Ok(samples)
    }

    /// The same through `tmux send-keys -l` + `capture-pane -p -J` polled
    /// without pause, each a spawned `tmux` (`ctl: None`) or a command on
    /// a raw control-mode connection, on the bare server.
    pub fn echo_tmux(
        &mut self,
        ctl: Option<&Control>,
        warm: usize,
        n: usize,
    ) -> Result<Vec<Duration>> {
        self.seq += 1;
        let name = format!("echo{}", self.seq);
        let mut args = vec!["new-session", "-d", "-s", &name, "-x", "80", "-y", "24"];
        args.extend(["-P", "-F", "#{pane_id}"]);
        args.extend(ECHOER);
        let pane = tmux(&self.base.socket, &args)?.trim().to_string();
        let socket = self.base.socket.clone();
        let capture = |pane: &str| -> Result<String> {
            match ctl {
                None => tmux(&socket, &["capture-pane", "-p", "-J", "-t", pane]),
                Some(c) => {
                    let cmd = Cmd::new("capture-pane").flag("-p").flag("-J").opt("-t", pane);
                    Ok(c.run(&cmd)?.lines().collect::<Vec<_>>().join("\n"))
                }
            }
        };
        let send = |pane: &str, c: char| -> Result<()> {
            let s = c.to_string();
            match ctl {
                None => tmux(&socket, &["send-keys", "-t", pane, "-l", "--", &s]).map(drop),
                Some(ctl) => {
                    let cmd = Cmd::new("send-keys").opt("-t", pane).flag("-l").arg("--").arg(s);
                    ctl.run(&cmd).map(drop)
                }
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !capture(&pane)?.contains("READY") {
            if Instant::now() > deadline {
                bail!("the echo program did not print READY in the bare pane");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut typed = String::from("READY");
        let mut samples = Vec::with_capacity(n);
        for i in 0..warm + n {
            let c = (b'a' + (i % 26) as u8) as char;
            typed.push(c);
            let want = &typed[typed.len().saturating_sub(16)..];
            let t = Instant::now();
            send(&pane, c)?;
            while !capture(&pane)?.trim_end().ends_with(want) {
                if t.elapsed() > Duration::from_secs(10) {
                    bail!("no echo of {c:?} in capture-pane within 10 s");
                }
            }
            if i >= warm {
                samples.push(t.elapsed());
            }
        }
        tmux(&self.base.socket, &["kill-session", "-t", &format!("={name}")])?;
        Ok(samples)
    }
}

/// Reads one message while waiting for READY; true once seen.
fn ready_seen(
    w: &mut Wire,
    ready: &mut Finder,
    subscription: u64,
    acked: &mut u64,
) -> Result<bool> {
    match w.next()? {
        Msg::Output(o) => {
            *acked = o.offset + o.data.0.len() as u64;
            w.send("session.ack", json!({"subscription": subscription, "offset": *acked}))?;
            Ok(ready.feed(&o.data.0))
        }
        Msg::Reply { id, result } => check(id, &result).map(|_| false),
        Msg::Note { method, .. } => bail!("unexpected {method} before READY"),
    }
}
