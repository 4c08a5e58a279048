//! The shell completions and the man page the package installs
//! (packaging/completions/, packaging/man/) are what `ccmanagerctl
//! completions SHELL` and `ccmanagerctl manpage` generate from the clap
//! definitions now: a changed option without regenerated files fails here.
//! Refresh with `CCM_UPDATE_GENERATED=1 cargo test --test cli_generated`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::daemon::bin;

fn generated(args: &[&str]) -> Vec<u8> {
    let out = Command::new(bin("ccmanagerctl")).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    out.stdout
}

#[test]
fn packaged_completions_and_man_page_are_current() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging");
    let update = std::env::var_os("CCM_UPDATE_GENERATED").is_some();
    let mut stale = Vec::new();
    for (file, args) in [
        ("completions/ccmanagerctl.bash", &["completions", "bash"][..]),
        ("completions/_ccmanagerctl", &["completions", "zsh"]),
        ("completions/ccmanagerctl.fish", &["completions", "fish"]),
        ("man/ccmanagerctl.1", &["manpage"]),
    ] {
        let want = generated(args);
        let path = root.join(file);
        if std::fs::read(&path).ok().as_deref() != Some(&want[..]) {
            if update {
                std::fs::write(&path, &want).unwrap();
            } else {
                stale.push(file);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale in packaging/: {stale:?}; run `CCM_UPDATE_GENERATED=1 cargo test --test cli_generated` and commit"
    );
    // The man page has what an operator looks for.
    let man = String::from_utf8(generated(&["manpage"])).unwrap();
    for section in
        [".SH \"EXIT STATUS\"", ".SH FILES", "CCMANAGERD_SOCKET", "ccmanagerctl\\-attach"]
    {
        assert!(man.contains(section), "man page lacks {section}");
    }
    let bash = String::from_utf8(generated(&["completions", "bash"])).unwrap();
    assert!(bash.contains("complete -F _ccmanagerctl"), "{}", &bash[..200.min(bash.len())]);
}
