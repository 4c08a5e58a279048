//! Programs that run as a session's program and report what they saw or
//! could do: Python scripts (the only interpreter every test user can run),
//! written to a file because argv elements may not hold newlines.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

use super::caller::{sid, Caller};
use super::wait::{maybe, WAIT};

/// The Python test users can run (root's PATH may point into /root).
pub const PYTHON: &str = "/usr/bin/python3";

/// What every probe starts with: `OUT` (where `report(**fields)` writes
/// its JSON, atomically), `ARGS`, `run(*argv)` (a command's rc, stdout and
/// stderr) and `attempt(f)` (`f()`'s value, or the errno it failed with).
const PRELUDE: &str = r#"
import json, os, socket, subprocess, sys
OUT, ARGS = sys.argv[1], sys.argv[2:]
def run(*argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return {"rc": "timeout"}
    return {"rc": p.returncode, "out": p.stdout, "err": p.stderr}
def attempt(f):
    try:
        return {"ok": repr(f())}
    except OSError as e:
        return {"errno": e.errno, "error": str(e)}
def report(**r):
    with open(OUT + ".tmp", "w") as f:
        json.dump(r, f)
    os.rename(OUT + ".tmp", OUT)
"#;

/// Reports the program's argv (after OUT), cwd and environment.
pub const REPORT_SELF: &str = "report(argv=ARGS, cwd=os.getcwd(), env=dict(os.environ))\n";

/// Prints `ready`, then appends each line typed into the session to OUT as
/// a JSON string.
pub const LINE_READER: &str = r#"
print("ready", flush=True)
with open(OUT, "a") as f:
    for line in sys.stdin:
        f.write(json.dumps(line.rstrip("\n")) + "\n")
        f.flush()
"#;

/// A probe script in `dir` (which the session's user can read and write).
pub struct Probe {
    script: PathBuf,
    dir: PathBuf,
}

/// A fresh numbered path `dir/<prefix>-N.<ext>`.
fn fresh(dir: &Path, prefix: &str, ext: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    dir.join(format!("{prefix}-{}.{ext}", NEXT.fetch_add(1, Ordering::Relaxed)))
}

impl Probe {
    /// Writes the prelude and `body` to a script in `dir`.
    pub fn new(dir: &Path, body: &str) -> Probe {
        let script = fresh(dir, "probe", "py");
        std::fs::write(&script, format!("{PRELUDE}{body}")).expect("write probe");
        Probe { script, dir: dir.to_path_buf() }
    }

    /// A fresh report path and the argv that runs the probe with `args`.
    pub fn command(&self, args: &[String]) -> (PathBuf, Vec<String>) {
        let out = fresh(&self.dir, "out", "json");
        let mut argv = vec![PYTHON.to_string(), self.script.display().to_string()];
        argv.push(out.display().to_string());
        argv.extend(args.iter().cloned());
        (out, argv)
    }

    /// Runs the probe as the program of a new session of `c` (`extra`:
    /// more create params) and returns its report; panics with the
    /// session's screen if none comes.
    pub fn run_in_session(&self, c: &Caller, args: &[String], extra: Value) -> Value {
        let (out, argv) = self.command(args);
        let mut params = json!({"command": argv});
        params.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
        let s = c.create(params);
        let text = maybe(WAIT, || std::fs::read_to_string(&out).ok()).unwrap_or_else(|| {
            panic!("the probe in {}'s session wrote no report:\n{}", c.who(), c.screen(sid(&s)))
        });
        serde_json::from_str(&text).expect("probe report")
    }

    /// The report at `out` once it exists, `None` after [`WAIT`].
    pub fn report(out: &Path) -> Option<Value> {
        let text = maybe(WAIT, || std::fs::read_to_string(out).ok())?;
        Some(serde_json::from_str(&text).expect("probe report"))
    }
}

/// A session running [`LINE_READER`]: what `session.send` types arrives
/// as lines.
pub struct LineReader<'a> {
    c: Caller<'a>,
    id: String,
    out: PathBuf,
    lines: usize,
}

impl<'a> LineReader<'a> {
    /// Starts the session (as `c`, files in `dir`) and waits until it reads.
    pub fn start(c: Caller<'a>, dir: &Path) -> LineReader<'a> {
        let (out, argv) = Probe::new(dir, LINE_READER).command(&[]);
        let s = c.create(json!({"command": argv}));
        c.wait_screen(sid(&s), "ready");
        LineReader { id: sid(&s).to_string(), c, out, lines: 0 }
    }

    /// `session.send` with `params`: the error object if refused, else the
    /// line the program read (`None`: none arrived).
    pub fn send(&mut self, mut params: Value) -> Result<Option<String>, Value> {
        params["id"] = json!(self.id);
        self.c.call("session.send", params)?;
        self.lines += 1;
        Ok(maybe(WAIT, || {
            let text = std::fs::read_to_string(&self.out).unwrap_or_default();
            text.lines().nth(self.lines - 1).map(|l| serde_json::from_str::<String>(l).unwrap())
        }))
    }

    /// A problem for a line that never arrived, with what the screen shows.
    pub fn no_line(&self) -> String {
        format!("no line arrived; screen:\n{}", self.c.screen(&self.id))
    }
}
