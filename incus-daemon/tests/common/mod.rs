//! What the daemon tests share: running the `incus` client against a state directory,
//! checking its outcome, and stopping the containers a daemon left running.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs the `incus` client on the daemon of `dir`, with its own config in `conf`, feeding
/// `stdin`.
pub fn incus(dir: &Path, conf: &Path, args: &[&str], stdin: &[u8]) -> Output {
    run_client(Path::new("incus"), dir, conf, args, stdin)
}

/// Our own command line (`incus` of the incus-cli crate, built next to `incusd`).
pub fn our_cli() -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_incusd")).with_file_name("incus");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p incus-cli`",
        path.display()
    );
    path
}

/// Runs the client `program` on the daemon of `dir`, with its own config in `conf`, feeding
/// `stdin`.
pub fn run_client(program: &Path, dir: &Path, conf: &Path, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut c = Command::new(program)
        .args(args)
        .env("INCUS_DIR", dir)
        .env("INCUS_CONF", conf)
        .env("HOME", conf)
        .env_remove("INCUS_SOCKET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the incus client");
    let mut input = c.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    c.wait_with_output().expect("incus output")
}

/// The stdout of a client run that must have succeeded.
pub fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "incus {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The stderr of a client run that must have failed.
pub fn failed(args: &[&str], out: Output) -> String {
    assert!(
        !out.status.success(),
        "incus {args:?} unexpectedly succeeded"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Force-stops every container the daemon of `dir` left running (also after a panic),
/// through its helper subcommand; `wrapper` prefixes the command (`ip netns exec NS` for a
/// daemon in a network namespace: liblxc's command socket is abstract, so per namespace).
pub fn stop_leftover_containers(dir: &Path, wrapper: &[&str]) {
    let Ok(entries) = std::fs::read_dir(dir.join("logs")) else {
        return;
    };
    for e in entries.flatten() {
        let d = e.path();
        if !d.join("init.pid").exists() {
            continue;
        }
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(env!("CARGO_BIN_EXE_incusd"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_incusd")),
        };
        let _ = cmd
            .arg("forklxc")
            .arg("stop")
            .arg(dir.join("containers"))
            .arg(e.file_name())
            .arg(d.join("lxc.conf"))
            .arg(d.join("lxc.log"))
            .status();
    }
}
