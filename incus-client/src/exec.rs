//! `exec`: the command's streams over the operation's websockets, in both modes (separate
//! stdin/stdout/stderr, or one pty stream), with a control channel for window size and
//! signals, and the exit status from the finished operation.

use crate::{Client, Error, Result, escape};
use futures_util::{SinkExt, StreamExt};
use incus_core::api;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct ExecArgs {
    /// Command and arguments.
    pub command: Vec<String>,
    /// Extra environment.
    pub environment: api::ConfigMap,
    /// Working directory.
    pub cwd: Option<String>,
    /// User id.
    pub user: Option<u32>,
    /// Group id.
    pub group: Option<u32>,
    /// Allocate a pty (one combined stream) instead of three pipes.
    pub interactive: bool,
    /// Terminal width (interactive).
    pub width: u16,
    /// Terminal height (interactive).
    pub height: u16,
}

/// The local ends of the command's streams. In interactive mode `stderr` is unused: the pty
/// carries both output streams on `stdout`.
pub struct ExecIo {
    /// Copied to the command's standard input until it ends.
    pub stdin: Box<dyn AsyncRead + Unpin + Send>,
    /// Receives standard output (and, interactive, standard error).
    pub stdout: Box<dyn AsyncWrite + Unpin + Send>,
    /// Receives standard error.
    pub stderr: Box<dyn AsyncWrite + Unpin + Send>,
    /// Control messages (`window-resize`, `signal`) forwarded while the command runs.
    pub control: Option<tokio::sync::mpsc::Receiver<api::InstanceExecControl>>,
}

impl std::fmt::Debug for ExecIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecIo").finish_non_exhaustive()
    }
}

use crate::Ws;

/// Copies `r` to the websocket. At end of input the stdin websocket is closed (the command
/// sees EOF); the pty websocket (`keep_open`) also carries the output, so it stays open.
async fn pump_in(
    mut ws: futures_util::stream::SplitSink<Ws, Message>,
    mut r: Box<dyn AsyncRead + Unpin + Send>,
    keep_open: bool,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if ws
                    .send(Message::Binary(buf[..n].to_vec().into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    if keep_open {
        // Closing would end the output too; the task is aborted when the command ends.
        std::future::pending::<()>().await;
    }
    let _ = ws.send(Message::Close(None)).await;
}

async fn pump_out(
    mut ws: futures_util::stream::SplitStream<Ws>,
    mut w: Box<dyn AsyncWrite + Unpin + Send>,
) {
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Binary(b) => {
                if w.write_all(&b).await.is_err() {
                    break;
                }
                let _ = w.flush().await;
            }
            Message::Text(t) if t.is_empty() => break,
            Message::Close(_) => break,
            _ => {}
        }
    }
    let _ = w.flush().await;
}

impl Client {
    /// Runs a command in an instance with its streams connected to `io`; returns its exit
    /// status (127 for a command not found, as Incus reports it).
    pub async fn exec(&self, name: &str, args: &ExecArgs, io: ExecIo) -> Result<i32> {
        let body = api::InstanceExecPost {
            command: args.command.clone(),
            wait_for_websocket: true,
            interactive: args.interactive,
            environment: args.environment.clone(),
            width: i64::from(args.width),
            height: i64::from(args.height),
            record_output: false,
            user: args.user,
            group: args.group,
            cwd: args.cwd.clone(),
        };
        let (op, fds) = self
            .websocket_operation(&format!("/1.0/instances/{}/exec", escape(name)), &body)
            .await?;
        let stream = |k: &str| {
            fds.get(k)
                .cloned()
                .ok_or_else(|| Error::internal(format!("exec: no {k:?} websocket")))
        };
        let control = self
            .operation_websocket(&op.id, &stream("control")?)
            .await?;
        let ExecIo {
            stdin,
            stdout,
            stderr,
            control: mut control_rx,
        } = io;
        let mut outputs = Vec::new();
        let ws0 = self.operation_websocket(&op.id, &stream("0")?).await?;
        let stdin_task;
        if args.interactive {
            let (tx, rx) = ws0.split();
            stdin_task = tokio::spawn(pump_in(tx, stdin, true));
            outputs.push(tokio::spawn(pump_out(rx, stdout)));
        } else {
            let ws1 = self.operation_websocket(&op.id, &stream("1")?).await?;
            let ws2 = self.operation_websocket(&op.id, &stream("2")?).await?;
            let (tx, _rx0) = ws0.split();
            stdin_task = tokio::spawn(pump_in(tx, stdin, false));
            outputs.push(tokio::spawn(pump_out(ws1.split().1, stdout)));
            outputs.push(tokio::spawn(pump_out(ws2.split().1, stderr)));
        }
        let (mut ctl_tx, mut ctl_rx) = control.split();
        let control_task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    msg = async {
                        match control_rx.as_mut() {
                            Some(rx) => rx.recv().await,
                            None => std::future::pending().await,
                        }
                    } => {
                        let Some(msg) = msg else { break };
                        let Ok(text) = serde_json::to_string(&msg) else { continue };
                        if ctl_tx.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                    }
                    m = ctl_rx.next() => if m.is_none() { break },
                }
            }
        });
        let done = self.wait_operation(&op.id).await;
        for o in outputs {
            let _ = o.await;
        }
        stdin_task.abort();
        control_task.abort();
        let done = done?;
        Ok(done
            .metadata
            .as_ref()
            .and_then(|m| m.get("return"))
            .and_then(|v| v.as_i64())
            .map(|v| v as i32)
            .unwrap_or(-1))
    }
}
