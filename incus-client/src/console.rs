//! `console`: attach to an instance's console over the operation's two websockets (`0` for
//! the terminal, `control` for window sizes), and its log.

use crate::{Client, Error, Result, escape};
use futures_util::{SinkExt, StreamExt};
use incus_core::api;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// The local ends of an attached console.
pub struct ConsoleIo {
    /// Keyboard input; the session ends when it reaches its end.
    pub input: Box<dyn AsyncRead + Unpin + Send>,
    /// Receives what the instance writes on its console.
    pub output: Box<dyn AsyncWrite + Unpin + Send>,
    /// New window sizes (columns, rows) to pass on while attached.
    pub resize: Option<tokio::sync::mpsc::Receiver<(u16, u16)>>,
}

impl std::fmt::Debug for ConsoleIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleIo").finish_non_exhaustive()
    }
}

fn resize_message(cols: u16, rows: u16) -> Message {
    let ctl = api::InstanceExecControl {
        command: "window-resize".into(),
        args: [
            ("width".to_string(), cols.to_string()),
            ("height".to_string(), rows.to_string()),
        ]
        .into_iter()
        .collect(),
        signal: 0,
    };
    Message::Text(serde_json::to_string(&ctl).unwrap_or_default().into())
}

impl Client {
    /// Attaches to a running container's console, sized `width` x `height`, until `io.input`
    /// ends or the daemon ends the session (the instance stopped). One holder at a time: a
    /// second attach is refused while the console is held.
    pub async fn console(&self, name: &str, width: u16, height: u16, io: ConsoleIo) -> Result<()> {
        let body = api::InstanceConsolePost {
            width: i64::from(width),
            height: i64::from(height),
            kind: "console".into(),
            force: false,
        };
        let (op, fds) = self
            .websocket_operation(&format!("/1.0/instances/{}/console", escape(name)), &body)
            .await?;
        let stream = |k: &str| {
            fds.get(k)
                .cloned()
                .ok_or_else(|| Error::internal(format!("console: no {k:?} websocket")))
        };
        let control = self
            .operation_websocket(&op.id, &stream("control")?)
            .await?;
        let data = self.operation_websocket(&op.id, &stream("0")?).await?;
        let ConsoleIo {
            mut input,
            mut output,
            mut resize,
        } = io;
        let (mut ctl_tx, _ctl_rx) = control.split();
        let (mut tx, mut rx) = data.split();
        let keyboard = async {
            let mut buf = vec![0u8; 4096];
            loop {
                tokio::select! {
                    r = input.read(&mut buf) => match r {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tx.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                                break;
                            }
                        }
                    },
                    size = async {
                        match resize.as_mut() {
                            Some(r) => r.recv().await,
                            None => std::future::pending().await,
                        }
                    } => match size {
                        Some((c, r)) => {
                            let _ = ctl_tx.send(resize_message(c, r)).await;
                        }
                        None => resize = None,
                    },
                }
            }
            let _ = tx.send(Message::Close(None)).await;
            let _ = ctl_tx.send(Message::Close(None)).await;
        };
        let screen = async {
            while let Some(Ok(msg)) = rx.next().await {
                match msg {
                    Message::Binary(b) => {
                        if output.write_all(&b).await.is_err() {
                            break;
                        }
                        let _ = output.flush().await;
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        };
        tokio::select! {
            () = keyboard => {}
            () = screen => {}
        }
        self.wait_operation(&op.id).await?;
        Ok(())
    }

    /// The console log: what the instance wrote on its console.
    pub async fn console_log(&self, name: &str) -> Result<String> {
        let (_, body) = self
            .get_raw(&format!("/1.0/instances/{}/console", escape(name)))
            .await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Empties the console log.
    pub async fn clear_console_log(&self, name: &str) -> Result<()> {
        self.send_empty(
            "DELETE",
            &format!("/1.0/instances/{}/console", escape(name)),
        )
        .await?;
        Ok(())
    }
}
