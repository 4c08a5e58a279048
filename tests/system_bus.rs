//! The daemon's D-Bus handle on systemd ([`ccmanagerd::systemd::Bus`])
//! against a booted systemd (tests/common/sysbox.rs): scopes (also of
//! programs that ignore SIGTERM), services as a given user in a given slice,
//! clear errors for a unit that exists or a binary that does not, and a
//! connection that survives `systemctl daemon-reexec`. systemctl only
//! observes.
//!
//! PID 1 refuses a private-socket peer whose pid it cannot see (systemd's
//! `getpeercred` wants a valid pid), so each test runs its scenario inside
//! the box: it boots one and runs this very test binary in it (the box's
//! root is an overlay of ours), marked by [`INSIDE`].

mod common;

use std::ffi::OsString;
use std::time::{Duration, Instant};

use ccmanagerd::limits::cgroup;
use ccmanagerd::systemd::bus::{Bus, CollectMode, KillMode, Property, Target, PRIVATE_SOCKET};
use common::service::report;
use common::sysbox::{describe, skip_unless_root, SysBox};

/// Set in the environment of the copy of this binary that runs in the box.
const INSIDE: &str = "CCMANAGERD_SYSTEM_BUS_INSIDE";
/// Where a stop must be done by: far below a scope's 90 s TimeoutStopSec.
const QUICK: Duration = Duration::from_secs(5);
const SLICE: &str = "ccmtest.slice";

/// Runs `scenario` against the PID 1 of a fresh box (see the module doc).
fn in_box(test: &str, scenario: impl FnOnce(&tokio::runtime::Runtime, &Bus)) {
    if std::env::var_os(INSIDE).is_some() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let target = Target::Private(PRIVATE_SOCKET.into());
        let bus = rt.block_on(Bus::connect_to(target)).expect("connect");
        scenario(&rt, &bus);
        return;
    }
    if skip_unless_root(test) {
        return;
    }
    let sb = SysBox::boot().expect("boot");
    // The box has its own /tmp (and a checkout may live there): run a copy
    // of this test binary from a path the box is sure to see.
    let exe = std::path::Path::new("/usr/local/libexec/ccmanagerd-system-bus-test");
    sb.copy_in(&std::env::current_exe().unwrap(), exe).expect("copy the test binary in");
    std::fs::set_permissions(
        sb.root().join(exe.strip_prefix("/").unwrap()),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod the test binary");
    let inside = format!("{INSIDE}=1");
    let argv =
        ["env", &inside, exe.to_str().unwrap(), "--exact", test, "--nocapture", "--test-threads=1"];
    // ETXTBSY: a process another test thread forked while the copy was open
    // for writing held it open until its exec; that passes at once.
    let mut o = sb.run(&argv);
    for _ in 0..5 {
        if !String::from_utf8_lossy(&o.stderr).contains("Text file busy") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        o = sb.run(&argv);
    }
    let stderr = String::from_utf8_lossy(&o.stderr);
    for line in stderr.lines().filter(|l| l.starts_with("system_bus:")) {
        report(line);
    }
    let ran = String::from_utf8_lossy(&o.stdout).contains("1 passed");
    assert!(o.status.success() && ran, "{test} in the box: {}", describe(&o));
}

/// `bash -c script` here (in the box); its stdout, or a panic.
fn sh_ok(script: &str) -> String {
    let o = std::process::Command::new("bash").args(["-c", script]).output().unwrap();
    assert!(o.status.success(), "`{script}`: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Starts `script` in the background; its pid.
fn spawn(script: &str) -> u32 {
    let out = sh_ok(&format!("{script} </dev/null >/dev/null 2>&1 & echo $!"));
    out.trim().parse().unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

fn alive(pid: u32) -> bool {
    // A zombie (not yet reaped by the shell that started it) is dead too.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

/// `systemctl show` of the comma-separated `props`, one line each in that
/// order (systemctl itself prints them in its own order).
fn show(unit: &str, props: &str) -> String {
    props.split(',').map(|p| sh_ok(&format!("systemctl show -P {p} {unit}"))).collect()
}

/// A program that ignores SIGTERM (so do its children: an ignored signal
/// stays ignored across exec) is in its scope with its caps, and `stop`
/// ends it at once; a second scope of the same name is refused by name.
#[test]
fn scope_of_a_program_ignoring_sigterm_stops_at_once() {
    in_box("scope_of_a_program_ignoring_sigterm_stops_at_once", |rt, bus| {
        let pid = spawn("bash -c 'trap \"\" TERM; sleep 1000 & while :; do sleep 1; done'");
        let unit = "ccm-test-stubborn.scope";
        let props = [
            Property::MemoryMax(64 << 20),
            Property::TasksMax(16),
            Property::CollectMode(CollectMode::InactiveOrFailed),
        ];
        rt.block_on(bus.start_scope(unit, &[pid], SLICE, &props)).unwrap();
        assert_eq!(rt.block_on(bus.active_state(unit)).unwrap().as_deref(), Some("active"));
        assert_eq!(show(unit, "MemoryMax,TasksMax,Slice"), format!("67108864\n16\n{SLICE}\n"));
        let cg = sh_ok(&format!("cat /proc/{pid}/cgroup"));
        assert!(cg.contains(&format!("{SLICE}/{unit}")), "{cg}");

        // The same name again: refused, and the error says which unit and why.
        let other = spawn("sleep 1000");
        let err = rt.block_on(bus.start_scope(unit, &[other], SLICE, &[])).unwrap_err();
        assert_eq!(err.systemd_error(), Some("org.freedesktop.systemd1.UnitExists"), "{err}");
        assert!(err.to_string().contains(unit), "{err}");
        report(&format!("system_bus: a scope that exists: {err}"));

        // SIGTERM is ignored: only the SIGKILL of `cgroup::stop` ends it quickly.
        let t0 = Instant::now();
        rt.block_on(cgroup::stop(bus, unit)).unwrap();
        let took = t0.elapsed();
        report(&format!("system_bus: cgroup::stop of a scope ignoring SIGTERM: {took:?}"));
        assert!(took < QUICK, "stop took {took:?}");
        assert!(!alive(pid), "{pid} survived the stop");
        assert!(alive(other), "the bystander {other} was killed");
        assert_eq!(rt.block_on(bus.active_state(unit)).unwrap(), None);
        // Stopping what is gone is fine; killing it is NoSuchUnit.
        rt.block_on(cgroup::stop(bus, unit)).unwrap();
        rt.block_on(bus.stop_unit(unit)).unwrap();
        let err = rt.block_on(bus.kill_unit(unit, libc::SIGKILL)).unwrap_err();
        assert!(err.is_no_such_unit(), "{err}");
    });
}

/// Nearest-rank median.
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() - 1) / 2]
}

/// What `cgroup::stop` costs (KillUnit SIGKILL + StopUnit, waiting for the
/// job) against StopUnit alone (SIGTERM, then waiting for the job), on
/// scopes of programs that do exit on SIGTERM. Prints the figures.
#[test]
fn stop_costs_kill_then_stop_against_stop_alone() {
    in_box("stop_costs_kill_then_stop_against_stop_alone", |rt, bus| {
        const N: usize = 20;
        let mut start = Vec::new();
        let mut run = |stop_only: bool| -> Vec<Duration> {
            let mut took = Vec::new();
            for i in 0..N {
                let pid = spawn("sleep 1000");
                let unit = format!("ccm-test-cost-{stop_only}-{i}.scope");
                let t0 = Instant::now();
                rt.block_on(bus.start_scope(&unit, &[pid], SLICE, &[])).unwrap();
                start.push(t0.elapsed());
                let t0 = Instant::now();
                if stop_only {
                    rt.block_on(bus.stop_unit(&unit)).unwrap();
                } else {
                    rt.block_on(cgroup::stop(bus, &unit)).unwrap();
                }
                took.push(t0.elapsed());
                assert!(!alive(pid), "{unit}: {pid} survived");
            }
            took
        };
        let kill_stop = median(run(false));
        let stop = median(run(true));
        report(&format!(
            "system_bus: {N} scopes each: start_scope p50 {:?}; KillUnit(SIGKILL)+StopUnit p50 {kill_stop:?}; StopUnit alone p50 {stop:?}",
            median(start)
        ));
    });
}

/// A transient service runs argv as the given user in the given slice with
/// the given properties; a missing binary and an existing name are errors
/// that name the unit.
#[test]
fn service_runs_as_the_given_user_in_the_given_slice() {
    in_box("service_runs_as_the_given_user_in_the_given_slice", |rt, bus| {
        let unit = "ccm-test-svc.service";
        let argv: Vec<OsString> = vec!["/bin/sleep".into(), "1000".into()];
        let props = [
            Property::Description("ccmanagerd test service".into()),
            Property::MemoryMax(128 << 20),
            Property::KillMode(KillMode::ControlGroup),
            Property::CollectMode(CollectMode::InactiveOrFailed),
        ];
        let start = bus.start_service(unit, &argv, Some("nobody"), Some(SLICE), &props);
        rt.block_on(start).unwrap();
        assert_eq!(rt.block_on(bus.active_state(unit)).unwrap().as_deref(), Some("active"));
        assert_eq!(
            show(unit, "User,Slice,MemoryMax,KillMode,Description,Type"),
            format!("nobody\n{SLICE}\n134217728\ncontrol-group\nccmanagerd test service\nexec\n")
        );
        let pid: u32 = show(unit, "MainPID").trim().parse().unwrap();
        assert_eq!(sh_ok(&format!("ps -o user= -p {pid}")).trim(), "nobody");
        assert_eq!(sh_ok(&format!("ps -o args= -p {pid}")).trim(), "/bin/sleep 1000");
        // PID 1's environment, not ours: nothing of this process reaches it.
        let env = std::fs::read_to_string(format!("/proc/{pid}/environ")).unwrap();
        assert!(!env.contains(INSIDE) && env.contains("USER=nobody"), "{env:?}");

        let err = rt.block_on(bus.start_service(unit, &argv, None, None, &[])).unwrap_err();
        assert_eq!(err.systemd_error(), Some("org.freedesktop.systemd1.UnitExists"), "{err}");
        assert!(err.to_string().contains(unit), "{err}");

        let missing = "ccm-test-missing.service";
        let argv: Vec<OsString> = vec!["/nonexistent/tmux".into(), "-D".into()];
        let collect = [Property::CollectMode(CollectMode::InactiveOrFailed)];
        let err = rt.block_on(bus.start_service(missing, &argv, None, None, &collect)).unwrap_err();
        report(&format!("system_bus: a service whose binary is missing: {err}"));
        assert!(err.to_string().contains(missing) && err.to_string().contains("failed"), "{err}");

        rt.block_on(bus.stop_unit(unit)).unwrap();
        let state = rt.block_on(bus.active_state(unit)).unwrap();
        assert!(matches!(state.as_deref(), None | Some("inactive")), "{state:?}");
        assert!(!alive(pid), "{pid} still runs");
    });
}

/// PID 1 drops its private connections when it re-executes; the next calls
/// go over a new connection, and job ends are seen on it.
#[test]
fn bus_survives_daemon_reexec() {
    in_box("bus_survives_daemon_reexec", |rt, bus| {
        let state = |unit| rt.block_on(bus.active_state(unit)).unwrap();
        assert_eq!(state("init.scope").as_deref(), Some("active"));
        sh_ok("systemctl daemon-reexec");
        let t0 = Instant::now();
        assert_eq!(state("init.scope").as_deref(), Some("active"));
        report(&format!("system_bus: first call after daemon-reexec took {:?}", t0.elapsed()));
        let pid = spawn("sleep 1000");
        let unit = "ccm-test-after-reexec.scope";
        rt.block_on(bus.start_scope(unit, &[pid], SLICE, &[])).unwrap();
        rt.block_on(cgroup::stop(bus, unit)).unwrap();
        assert!(!alive(pid));
    });
}
