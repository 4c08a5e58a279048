//! ControlClient against a real private tmux server.

mod common;

use std::time::Duration;

use ccmanagerd::tmux::{
    connect, BudgetHook, ClientConfig, Cmd, ControlClient, Notification, TmuxError, KEEPER_SESSION,
};
use common::TestServer;
use tokio::sync::mpsc::Receiver;

/// Generous: these tests run on a loaded 2-core machine.
const QUICK: Duration = Duration::from_secs(15);

async fn client(server: &TestServer) -> (ControlClient, Receiver<Notification>) {
    connect(&ClientConfig::new(common::TMUX, server.socket())).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_correlated() {
    let server = TestServer::start().await;
    let (client, _notes) = client(&server).await;
    let client = std::sync::Arc::new(client);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let text = format!("reply-{i}-'\"; $x");
                let got =
                    client.run(&Cmd::new("display-message").flag("-p").arg(text.as_str())).await;
                (text, got)
            })
        })
        .collect();
    for t in tasks {
        let (text, got) = t.await.unwrap();
        assert_eq!(got.unwrap().lines().collect::<Vec<_>>(), vec![text.as_str()]);
    }
    assert!(client.is_alive());
    assert!(client.pid().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_command() {
    let server = TestServer::start().await;
    let (client, _notes) = client(&server).await;
    match client.run(&Cmd::new("no-such-command")).await {
        Err(TmuxError::Command(msg)) => assert!(msg.contains("unknown command"), "{msg}"),
        other => panic!("{other:?}"),
    }
    match client.run(&Cmd::new("kill-session").opt("-t", "=does_not_exist")).await {
        Err(TmuxError::Command(msg)) => assert!(msg.contains("does_not_exist"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // The connection stays usable after errors.
    assert_eq!(
        client.run(&Cmd::new("display-message").flag("-p").arg("ok")).await.unwrap(),
        ["ok"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_one_line_each_get_a_reply_and_a_failure_skips_the_rest() {
    let server = TestServer::start().await;
    let (client, _notes) = client(&server).await;
    let say = |t: &str| Cmd::new("display-message").flag("-p").arg(t);
    let got = client.run_line(&[say("a;b"), say("c")]).await.unwrap();
    assert_eq!(got[0].as_ref().unwrap().lines().collect::<Vec<_>>(), ["a;b"]);
    assert_eq!(got[1].as_ref().unwrap().lines().collect::<Vec<_>>(), ["c"]);
    // tmux runs nothing after a failing command of the same line and
    // answers it with nothing: the client must not shift later replies.
    let bad = Cmd::new("kill-session").opt("-t", "=does_not_exist");
    let got = client.run_line(&[bad, say("never"), say("never2")]).await.unwrap();
    assert!(matches!(&got[0], Err(TmuxError::Command(m)) if m.contains("does_not_exist")));
    for r in &got[1..] {
        assert!(matches!(r, Err(TmuxError::Command(m)) if m.contains("not run")), "{r:?}");
    }
    let got = client.run_line(&[Cmd::new("no-such-command"), say("x")]).await.unwrap();
    assert!(got.iter().all(Result::is_err), "{got:?}");
    assert_eq!(client.run(&say("after")).await.unwrap(), ["after"]);
}

/// `pipe-pane` sent on the same line as the `new-session` it taps sees the
/// pane's very first bytes; sent as the next command it misses them (the
/// reason src/sessions/spawn.rs sends them together).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_pane_on_the_new_sessions_line_sees_the_first_output() {
    let server = TestServer::start().await;
    let (client, _notes) = client(&server).await;
    let dir = tempfile::tempdir().unwrap();
    const RUNS: usize = 10;
    let mut caught = [0usize; 2];
    for (variant, same_line) in [(0, true), (1, false)] {
        for i in 0..RUNS {
            let name = format!("s{variant}x{i}");
            let out = dir.path().join(&name);
            let new = Cmd::new("new-session")
                .flag("-d")
                .opt("-s", name.as_str())
                .arg("printf first; sleep 600");
            let pipe = Cmd::new("pipe-pane")
                .flag("-O")
                .opt("-t", format!("={name}:"))
                .arg(format!("exec cat > '{}'", out.display()));
            if same_line {
                for r in client.run_line(&[new, pipe]).await.unwrap() {
                    r.unwrap();
                }
            } else {
                client.run(&new).await.unwrap();
                client.run(&pipe).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            if std::fs::read(&out).unwrap_or_default().starts_with(b"first") {
                caught[variant] += 1;
            }
        }
    }
    eprintln!(
        "first output caught: same line {}/{RUNS}, next command {}/{RUNS}",
        caught[0], caught[1]
    );
    assert_eq!(caught[0], RUNS, "on the same line, pipe-pane must see every first byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_death_fails_pending_and_later_calls() {
    let server = TestServer::start().await;
    let (client, _notes) = client(&server).await;
    let client = std::sync::Arc::new(client);
    // In control mode `wait-for` is answered at once but blocks this
    // client's command queue until signalled (never), so the next request
    // stays pending. (run-shell does not block anything.)
    client.run(&Cmd::new("wait-for").arg("ccm_never")).await.unwrap();
    let slow = {
        let client = client.clone();
        tokio::spawn(
            async move { client.run(&Cmd::new("display-message").flag("-p").arg("x")).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // SIGKILL, so the server cannot answer the pending request on its way out
    // (kill-server would complete run-shell first).
    let pid = nix::unistd::Pid::from_raw(server.info.pid as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let res = tokio::time::timeout(QUICK, slow).await.expect("pending call hung").unwrap();
    assert!(matches!(res, Err(TmuxError::Unavailable(_))), "{res:?}");
    tokio::time::timeout(QUICK, client.closed()).await.expect("closed() hung");
    assert!(!client.is_alive());
    let later = tokio::time::timeout(QUICK, client.run(&Cmd::new("list-sessions"))).await.unwrap();
    assert!(matches!(later, Err(TmuxError::Unavailable(_))), "{later:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_without_server_is_unavailable() {
    let (_dir, paths) = TestServer::paths();
    let res = connect(&ClientConfig::new(common::TMUX, &paths.socket)).await;
    match res {
        Err(TmuxError::Unavailable(msg)) => {
            assert!(msg.contains("no server running") || msg.contains("error connecting"), "{msg}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("connected without a server"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeper_session_is_reused_and_not_a_shell() {
    let server = TestServer::start().await;
    let (a, _na) = client(&server).await;
    let (b, _nb) = client(&server).await;
    let sessions = server.tmux(&["list-sessions", "-F", "#{session_name}"]);
    assert_eq!(sessions.trim(), KEEPER_SESSION);
    let cmd = server.tmux(&["list-panes", "-t", KEEPER_SESSION, "-F", "#{pane_current_command}"]);
    assert_eq!(cmd.trim(), "sleep");
    drop(a);
    assert_eq!(
        b.run(&Cmd::new("display-message").flag("-p").arg("still")).await.unwrap(),
        ["still"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_and_exit_behaviour() {
    let server = TestServer::start().await;
    let (client, mut notes) = client(&server).await;
    client
        .run(&Cmd::new("new-session").flag("-d").opt("-s", "ccmanager_sess_n").args([
            "sh",
            "-c",
            "echo hi; exit 3",
        ]))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + QUICK;
    loop {
        let dead = client
            .run(
                &Cmd::new("display-message")
                    .flag("-p")
                    .opt("-t", "=ccmanager_sess_n:")
                    .arg("#{pane_dead} #{pane_dead_status}"),
            )
            .await
            .unwrap();
        // tmux may show the pane dead well before it has reaped the
        // process and knows the status.
        if dead == ["1 3"] || dead == ["1 "] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{dead:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.run(&Cmd::new("kill-session").opt("-t", "=ccmanager_sess_n")).await.unwrap();
    client.run(&Cmd::new("display-message").flag("-p").arg("sync")).await.unwrap();
    while let Ok(n) = notes.try_recv() {
        seen.push(n);
    }
    assert!(seen.contains(&Notification::SessionsChanged), "{seen:?}");
    assert!(seen.iter().any(|n| matches!(n, Notification::UnlinkedWindowAdd { .. })), "{seen:?}");
    assert!(!seen.iter().any(|n| matches!(n, Notification::Output { .. })), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_server_times_out_as_unavailable() {
    let server = TestServer::start().await;
    let mut cfg = ClientConfig::new(common::TMUX, server.socket());
    cfg.request_timeout = Duration::from_secs(2);
    let (client, _notes) = connect(&cfg).await.unwrap();
    client.run(&Cmd::new("wait-for").arg("ccm_stuck")).await.unwrap();
    let res = client.run(&Cmd::new("display-message").flag("-p").arg("x")).await;
    match res {
        Err(TmuxError::Unavailable(msg)) => assert!(msg.contains("did not answer"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // Once unblocked, the late reply is consumed by the timed-out slot and
    // correlation stays right for the next caller.
    server.tmux(&["wait-for", "-S", "ccm_stuck"]);
    assert_eq!(client.run(&Cmd::new("display-message").flag("-p").arg("y")).await.unwrap(), ["y"]);
}

/// At most `max_commands` commands are sent and unanswered, however many
/// callers there are and however long tmux takes: a slot is held until the
/// reply comes, even by a caller that gave up, so a stuck server never gets
/// more queued. A caller over the bound waits within its timeout, then gets
/// `Unavailable` naming the budget; the connection itself stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queued_on_a_server_is_bounded() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let server = TestServer::start().await;
    let hits = Arc::new(AtomicUsize::new(0));
    let mut cfg = ClientConfig::new(common::TMUX, server.socket());
    cfg.request_timeout = Duration::from_millis(1500);
    cfg.max_commands = 2;
    cfg.max_reply_bytes = 8192;
    let counted = hits.clone();
    cfg.budget_hook = BudgetHook::new(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    let (client, _notes) = connect(&cfg).await.unwrap();
    let client = Arc::new(client);
    // tmux answers nothing of this client's after this until signalled.
    client.run(&Cmd::new("wait-for").arg("ccm_budget")).await.unwrap();
    let stuck: Vec<_> = (0..2)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client.run(&Cmd::new("display-message").flag("-p").arg(format!("x{i}"))).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let over = client.run(&Cmd::new("display-message").flag("-p").arg("over")).await;
    match over {
        Err(TmuxError::Unavailable(m)) => {
            assert!(m.contains("tmux.max_commands_in_flight = 2"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    for task in stuck {
        assert!(matches!(task.await.unwrap(), Err(TmuxError::Unavailable(_))));
    }
    // The callers gave up, the commands are still queued in tmux: no slot
    // is free until they are answered.
    let still = client.run(&Cmd::new("display-message").flag("-p").arg("still")).await;
    assert!(matches!(still, Err(TmuxError::Unavailable(ref m)) if m.contains("busy")), "{still:?}");
    assert!(hits.load(Ordering::SeqCst) >= 2);
    server.tmux(&["wait-for", "-S", "ccm_budget"]);
    let back = tokio::time::timeout(QUICK, async {
        loop {
            match client.run(&Cmd::new("display-message").flag("-p").arg("back")).await {
                Ok(out) => return out,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .expect("answers again once tmux does");
    assert_eq!(back, ["back"]);
    assert!(client.is_alive());
    // A large reply takes the reply budget: a second one waits for it.
    client.run(&Cmd::new("wait-for").arg("ccm_budget2")).await.unwrap();
    let big = {
        let client = client.clone();
        tokio::spawn(async move {
            client.run_sized(&Cmd::new("display-message").flag("-p").arg("big"), 8192).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = client.run_sized(&Cmd::new("display-message").flag("-p").arg("2"), 1).await;
    match second {
        Err(TmuxError::Unavailable(m)) => {
            assert!(m.contains("tmux.max_capture_bytes_in_flight = 8192"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    server.tmux(&["wait-for", "-S", "ccm_budget2"]);
    let _ = big.await.unwrap();
}
