//! Quoting of `Cmd` checked against the real tmux parser.

mod common;

use ccmanagerd::tmux::{connect, ClientConfig, Cmd};
use common::TestServer;

const NASTY: &[&str] = &[
    "it's",
    "\"double\" 'single' ''",
    "a;b ; c \\; d",
    "$HOME ${HOME} ~ ~/x ~root",
    "#{pane_id} #[fg=red] ## #",
    "back\\slash \\\\ \\n \\' \\",
    "tab\there \u{1b}[31m esc",
    "{ braces } %if 1",
    "  leading and trailing  ",
    "ünïcødé ✓",
    "",
    "-",
    "--",
    ";",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nasty_values_round_trip_literally() {
    let server = TestServer::start().await;
    let (client, _notes) =
        connect(&ClientConfig::new(common::TMUX, server.socket())).await.unwrap();
    for (i, value) in NASTY.iter().enumerate() {
        let name = format!("@ccm_test_{i}");
        client
            .run(&Cmd::new("set-option").flag("-g").arg(name.as_str()).arg(*value))
            .await
            .unwrap_or_else(|e| panic!("set {value:?}: {e}"));
        let got =
            client.run(&Cmd::new("show-options").flag("-gv").arg(name.as_str())).await.unwrap();
        assert_eq!(got, [*value], "value {value:?}");
        // Also through a one-off client, which parses argv not a line.
        assert_eq!(server.tmux(&["show-options", "-gv", &name]), format!("{value}\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argv_reaches_a_pane_literally() {
    let server = TestServer::start().await;
    let (client, _notes) =
        connect(&ClientConfig::new(common::TMUX, server.socket())).await.unwrap();
    let out = server.dir.path().join("argv.out");
    let script = "printf '%s\\n' \"$@\" > \"$0\"";
    let mut argv = vec!["sh", "-c", script, out.to_str().unwrap()];
    argv.extend(NASTY.iter().filter(|v| !v.is_empty()));
    client
        .run(
            &Cmd::new("new-session")
                .flag("-d")
                .opt("-s", "ccmanager_sess_q")
                .args(argv.iter().copied()),
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let want: String = NASTY.iter().filter(|v| !v.is_empty()).map(|v| format!("{v}\n")).collect();
    loop {
        let got = std::fs::read_to_string(&out).unwrap_or_default();
        if got == want {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "got {got:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
