//! `incus exec`: pty or pipes, terminal size and resize, signals forwarded, exit status
//! passed through.

use super::Ctx;
use crate::CliError;
use incus_client::{ExecArgs, ExecIo};
use incus_core::api::InstanceExecControl;
use std::io::IsTerminal;

/// The flags of `incus exec`.
pub struct Opts {
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub user: Option<u32>,
    pub group: Option<u32>,
    pub force_interactive: bool,
    pub force_noninteractive: bool,
}

/// Puts the local terminal in raw mode until dropped.
pub(super) struct RawMode(Option<rustix::termios::Termios>);

impl RawMode {
    pub(super) fn enable() -> RawMode {
        let stdin = rustix::stdio::stdin();
        match rustix::termios::tcgetattr(stdin) {
            Ok(orig) => {
                let mut raw = orig.clone();
                raw.make_raw();
                let _ =
                    rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &raw);
                RawMode(Some(orig))
            }
            Err(_) => RawMode(None),
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(orig) = &self.0 {
            let _ = rustix::termios::tcsetattr(
                rustix::stdio::stdin(),
                rustix::termios::OptionalActions::Now,
                orig,
            );
        }
    }
}

pub(super) fn window_size() -> (u16, u16) {
    rustix::termios::tcgetwinsize(rustix::stdio::stdout())
        .map(|w| (w.ws_col, w.ws_row))
        .unwrap_or((80, 24))
}

pub async fn exec(ctx: &Ctx, name: &str, o: Opts) -> Result<i32, CliError> {
    if o.force_interactive && o.force_noninteractive {
        return Err(CliError::msg("You can't pass -t and -T at the same time"));
    }
    let (client, name) = ctx.resolve(name)?;
    let interactive = if o.force_interactive {
        true
    } else if o.force_noninteractive {
        false
    } else {
        std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
    };
    let mut environment = super::key_values(&o.env)?;
    if interactive && let Ok(term) = std::env::var("TERM") {
        environment.entry("TERM".into()).or_insert(term);
    }
    let (width, height) = if interactive { window_size() } else { (0, 0) };
    let args = ExecArgs {
        command: o.command,
        environment,
        cwd: o.cwd,
        user: o.user,
        group: o.group,
        interactive,
        width,
        height,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    // Window resizes (interactive) and signals (both modes) go over the control socket.
    let signals = tokio::spawn(forward_signals(tx, interactive));
    let _raw = (interactive && std::io::stdin().is_terminal()).then(RawMode::enable);
    let io = ExecIo {
        stdin: Box::new(tokio::io::stdin()),
        stdout: Box::new(tokio::io::stdout()),
        stderr: Box::new(tokio::io::stderr()),
        control: Some(rx),
    };
    let code = client.exec(name, &args, io).await;
    signals.abort();
    Ok(code?)
}

async fn forward_signals(tx: tokio::sync::mpsc::Sender<InstanceExecControl>, interactive: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut winch), Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::window_change()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    loop {
        let msg = tokio::select! {
            _ = winch.recv() => {
                if !interactive { continue; }
                let (w, h) = window_size();
                InstanceExecControl {
                    command: "window-resize".into(),
                    args: [("width".to_string(), w.to_string()), ("height".to_string(), h.to_string())].into_iter().collect(),
                    signal: 0,
                }
            }
            _ = int.recv() => sig(2),
            _ = term.recv() => sig(15),
            _ = hup.recv() => sig(1),
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}

fn sig(n: i32) -> InstanceExecControl {
    InstanceExecControl {
        command: "signal".into(),
        args: Default::default(),
        signal: n,
    }
}
