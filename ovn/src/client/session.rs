//! The background task: connect, run a session, reconnect with backoff, re-send monitors.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nauti_api::core::backoff::Backoff;
use serde_json::{Value as Json, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use super::monitor::Registration;
use super::tls::{ConnectFailure, Connector};
use super::{ClientConfig, Command, ConnState, Endpoint, Error};
use crate::core::error::ErrorKind;
use crate::core::framing::JsonSplitter;
use crate::core::rpc::Message;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

enum Pending {
    User {
        method: String,
        reply: oneshot::Sender<Result<Json, Error>>,
    },
    Monitor {
        monitor_id: String,
        reply: Option<oneshot::Sender<Result<(), Error>>>,
    },
    MonitorCancel {
        monitor_id: String,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Echo,
}

/// Why a session ended.
enum End {
    /// Every client handle is gone.
    Shutdown,
    /// The connection broke; reconnect.
    Lost(String),
}

struct Task {
    config: ClientConfig,
    /// For `ssl:` endpoints.
    tls: Option<Connector>,
    commands: mpsc::UnboundedReceiver<Command>,
    state: watch::Sender<ConnState>,
    next_id: Arc<AtomicU64>,
    monitors: Vec<Registration>,
}

pub(super) async fn run(
    config: ClientConfig,
    tls: Option<Connector>,
    commands: mpsc::UnboundedReceiver<Command>,
    state: watch::Sender<ConnState>,
    next_id: Arc<AtomicU64>,
) {
    let mut task = Task {
        config,
        tls,
        commands,
        state,
        next_id,
        monitors: Vec::new(),
    };
    let mut backoff = Backoff::new(task.config.backoff_min, task.config.backoff_max);
    loop {
        match connect(&task.config, task.tls.as_ref()).await {
            Ok((stream, splitter)) => {
                backoff.reset();
                task.state.send_modify(|s| {
                    s.connected = true;
                    s.epoch += 1;
                    s.tls_error = None;
                });
                info!(endpoint = %task.config.endpoint, "connected to OVSDB server");
                let end = task.session(stream, splitter).await;
                task.state.send_modify(|s| s.connected = false);
                match end {
                    End::Shutdown => return,
                    End::Lost(reason) => {
                        warn!(endpoint = %task.config.endpoint, %reason, "OVSDB connection lost");
                        task.state.send_modify(|s| s.last_error = Some(reason));
                    }
                }
            }
            Err(ConnectFailure::Io(e)) => {
                debug!(endpoint = %task.config.endpoint, error = %e, "OVSDB connect failed");
                task.state.send_modify(|s| {
                    s.last_error = Some(e.to_string());
                    s.tls_error = None;
                });
            }
            Err(ConnectFailure::Tls(e)) => {
                warn!(endpoint = %task.config.endpoint, error = %e, "OVSDB TLS refused");
                task.state.send_modify(|s| {
                    s.last_error = Some(e.to_string());
                    s.tls_error = Some(e);
                });
            }
        }
        // Wait before the next attempt, answering commands with "not connected" meanwhile.
        let deadline = Instant::now() + backoff.next_delay();
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                cmd = task.commands.recv() => match cmd {
                    None => return,
                    Some(cmd) => task.refuse(cmd),
                },
            }
        }
    }
}

/// One connection attempt; for `ssl:` the handshake and the server's first answer included.
async fn connect(
    config: &ClientConfig,
    tls: Option<&Connector>,
) -> Result<(Box<dyn Stream>, JsonSplitter), ConnectFailure> {
    let timeout = Duration::from_secs(5);
    let max = config.max_message;
    let fut = async {
        let fresh = || JsonSplitter::new(max);
        Ok::<_, ConnectFailure>(match &config.endpoint {
            Endpoint::Unix(path) => (
                Box::new(tokio::net::UnixStream::connect(path).await?) as Box<dyn Stream>,
                fresh(),
            ),
            Endpoint::Tcp(addr) => (Box::new(tcp(addr).await?) as Box<dyn Stream>, fresh()),
            Endpoint::Ssl(addr) => {
                let endpoint = config.endpoint.to_string();
                let Some(connector) = tls else {
                    return Err(ConnectFailure::Tls(super::TlsError::NotConfigured {
                        endpoint,
                    }));
                };
                // Read the files again: renewed certificates count from the next connection.
                let connector = connector.reload().map_err(ConnectFailure::Tls)?;
                let host = config.endpoint.host().unwrap_or_default();
                let (stream, splitter) = connector
                    .connect(tcp(addr).await?, host, &endpoint, max)
                    .await?;
                (Box::new(stream) as Box<dyn Stream>, splitter)
            }
        })
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| {
        ConnectFailure::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("connect timed out after {timeout:?}"),
        ))
    })?
}

async fn tcp(addr: &str) -> std::io::Result<tokio::net::TcpStream> {
    let s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

async fn writer(
    mut half: tokio::io::WriteHalf<Box<dyn Stream>>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) -> std::io::Result<()> {
    while let Some(bytes) = rx.recv().await {
        half.write_all(&bytes).await?;
    }
    Ok(())
}

impl Task {
    fn endpoint(&self) -> String {
        self.config.endpoint.to_string()
    }

    fn refuse(&mut self, cmd: Command) {
        let err = || Error::NotConnected {
            endpoint: self.endpoint(),
        };
        match cmd {
            Command::Request { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Command::Monitor { reply, .. } | Command::MonitorCancel { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Command::Notify { .. } | Command::Cancel { .. } => {}
        }
    }

    async fn session(&mut self, stream: Box<dyn Stream>, mut splitter: JsonSplitter) -> End {
        let (mut read_half, write_half) = tokio::io::split(stream);
        let (out, out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let mut writer_task = tokio::spawn(writer(write_half, out_rx));
        let mut pending: HashMap<u64, Pending> = HashMap::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut echo = tokio::time::interval(self.config.echo_interval);
        echo.set_missed_tick_behavior(MissedTickBehavior::Delay);
        echo.reset();
        let mut last_rx = Instant::now();
        let mut probe_sent: Option<Instant> = None;

        // Re-establish monitors (their initial contents resync the caches).
        for reg in &self.monitors {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            pending.insert(
                id,
                Pending::Monitor {
                    monitor_id: reg.monitor_id.clone(),
                    reply: None,
                },
            );
            send(
                &out,
                &Message::Request {
                    id: json!(id),
                    method: reg.method().into(),
                    params: reg.params(),
                },
            );
        }

        // Whatever arrived with the server's first answer (TLS) is handled before reading more.
        let early = self.drain_frames(&mut splitter, &out, &mut pending);
        let end = if let Err(reason) = early {
            End::Lost(reason)
        } else {
            loop {
                tokio::select! {
                    cmd = self.commands.recv() => match cmd {
                        None => break End::Shutdown,
                        Some(cmd) => self.handle_command(cmd, &out, &mut pending),
                    },
                    read = read_half.read(&mut buf) => match read {
                        Ok(0) => break End::Lost("server closed the connection".into()),
                        Err(e) => break End::Lost(format!("read error: {e}")),
                        Ok(n) => {
                            last_rx = Instant::now();
                            probe_sent = None;
                            splitter.push(&buf[..n]);
                            if let Err(reason) = self.drain_frames(&mut splitter, &out, &mut pending) {
                                break End::Lost(reason);
                            }
                        }
                    },
                    _ = echo.tick() => {
                        if let Some(sent) = probe_sent {
                            if sent.elapsed() >= self.config.echo_interval {
                                break End::Lost(format!(
                                    "no reply to echo within {:?}", self.config.echo_interval
                                ));
                            }
                        } else if last_rx.elapsed() >= self.config.echo_interval {
                            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                            pending.insert(id, Pending::Echo);
                            send(&out, &Message::Request { id: json!(id), method: "echo".into(), params: vec![] });
                            probe_sent = Some(Instant::now());
                        }
                    },
                    res = &mut writer_task => break End::Lost(match res {
                        Ok(Err(e)) => format!("write error: {e}"),
                        _ => "writer stopped".into(),
                    }),
                }
            }
        };
        writer_task.abort();
        let endpoint = self.endpoint();
        for (_, p) in pending.drain() {
            let lost = |method: &str| Error::Disconnected {
                endpoint: endpoint.clone(),
                method: method.to_owned(),
            };
            match p {
                Pending::User { method, reply } => {
                    let _ = reply.send(Err(lost(&method)));
                }
                Pending::Monitor {
                    reply: Some(reply),
                    monitor_id,
                } => {
                    // A monitor that never started is not re-established.
                    self.monitors.retain(|m| m.monitor_id != monitor_id);
                    let _ = reply.send(Err(lost("monitor_cond")));
                }
                Pending::MonitorCancel { reply, monitor_id } => {
                    self.monitors.retain(|m| m.monitor_id != monitor_id);
                    let _ = reply.send(Ok(()));
                }
                Pending::Monitor { reply: None, .. } | Pending::Echo => {}
            }
        }
        end
    }

    fn handle_command(
        &mut self,
        cmd: Command,
        out: &mpsc::UnboundedSender<Vec<u8>>,
        pending: &mut HashMap<u64, Pending>,
    ) {
        match cmd {
            Command::Request {
                id,
                method,
                params,
                reply,
            } => {
                send(
                    out,
                    &Message::Request {
                        id: json!(id),
                        method: method.clone(),
                        params,
                    },
                );
                pending.insert(id, Pending::User { method, reply });
            }
            Command::Notify { method, params } => {
                send(out, &Message::Notification { method, params });
            }
            Command::Cancel { id } => {
                if let Some(Pending::User { method, reply }) = pending.remove(&id) {
                    send(
                        out,
                        &Message::Notification {
                            method: "cancel".into(),
                            params: vec![json!(id)],
                        },
                    );
                    let _ = reply.send(Err(Error::Canceled { method }));
                }
            }
            Command::Monitor { reg, reply } => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                send(
                    out,
                    &Message::Request {
                        id: json!(id),
                        method: reg.method().into(),
                        params: reg.params(),
                    },
                );
                pending.insert(
                    id,
                    Pending::Monitor {
                        monitor_id: reg.monitor_id.clone(),
                        reply: Some(reply),
                    },
                );
                self.monitors.push(reg);
            }
            Command::MonitorCancel { monitor_id, reply } => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                send(
                    out,
                    &Message::Request {
                        id: json!(id),
                        method: "monitor_cancel".into(),
                        params: vec![json!(monitor_id)],
                    },
                );
                pending.insert(id, Pending::MonitorCancel { monitor_id, reply });
            }
        }
    }

    /// Handles every complete frame; `Err` means the stream is unusable.
    fn drain_frames(
        &mut self,
        splitter: &mut JsonSplitter,
        out: &mpsc::UnboundedSender<Vec<u8>>,
        pending: &mut HashMap<u64, Pending>,
    ) -> Result<(), String> {
        while let Some(frame) = splitter.next_frame().map_err(|e| e.to_string())? {
            let msg = Message::decode(&frame).map_err(|e| e.to_string())?;
            self.handle_message(msg, out, pending)?;
        }
        Ok(())
    }

    fn handle_message(
        &mut self,
        msg: Message,
        out: &mpsc::UnboundedSender<Vec<u8>>,
        pending: &mut HashMap<u64, Pending>,
    ) -> Result<(), String> {
        match msg {
            Message::Request { id, method, params } => {
                let result = if method == "echo" {
                    Ok(Json::Array(params))
                } else {
                    Err(crate::core::error::ServerError {
                        kind: ErrorKind::UnknownMethod,
                        details: Some(format!("client does not serve {method}")),
                        syntax: None,
                    })
                };
                send(out, &Message::Response { id, result });
            }
            Message::Notification { method, params } => {
                if method == "update2" || method == "update" {
                    let [monitor_id, updates] = params.as_slice() else {
                        return Err(format!("{method} with {} params", params.len()));
                    };
                    let Some(reg) = self
                        .monitors
                        .iter()
                        .find(|m| Some(m.monitor_id.as_str()) == monitor_id.as_str())
                    else {
                        debug!(%monitor_id, "update for an unknown monitor");
                        return Ok(());
                    };
                    // A cache that missed an update is wrong: reconnect to resync it.
                    reg.apply(&method, updates).map_err(|e| e.to_string())?;
                }
            }
            Message::Response { id, result } => {
                let Some(id) = id.as_u64() else {
                    return Err(format!("response with foreign id {id}"));
                };
                let Some(p) = pending.remove(&id) else {
                    debug!(id, "response to a forgotten request");
                    return Ok(());
                };
                self.handle_response(id, p, result, out, pending)?;
            }
        }
        Ok(())
    }

    fn handle_response(
        &mut self,
        id: u64,
        p: Pending,
        result: Result<Json, crate::core::error::ServerError>,
        out: &mpsc::UnboundedSender<Vec<u8>>,
        pending: &mut HashMap<u64, Pending>,
    ) -> Result<(), String> {
        match p {
            Pending::User { method, reply } => {
                let _ = reply.send(result.map_err(|error| Error::Server { method, error }));
            }
            Pending::Echo => {}
            Pending::MonitorCancel { monitor_id, reply } => {
                self.monitors.retain(|m| m.monitor_id != monitor_id);
                let _ = reply.send(result.map(|_| ()).map_err(|error| Error::Server {
                    method: "monitor_cancel".into(),
                    error,
                }));
            }
            Pending::Monitor { monitor_id, reply } => {
                let Some(pos) = self
                    .monitors
                    .iter()
                    .position(|m| m.monitor_id == monitor_id)
                else {
                    return Ok(());
                };
                match result {
                    Ok(initial) => match self.monitors[pos].load_initial(&initial) {
                        Ok(()) => {
                            if let Some(reply) = reply {
                                let _ = reply.send(Ok(()));
                            }
                        }
                        Err(e) => {
                            let reg = self.monitors.remove(pos);
                            warn!(monitor = %reg.monitor_id, error = %e, "monitor initial contents rejected");
                            if let Some(reply) = reply {
                                let _ = reply.send(Err(e.into()));
                            }
                        }
                    },
                    Err(error)
                        if error.kind == ErrorKind::UnknownMethod && !self.monitors[pos].v1 =>
                    {
                        // Old server: fall back to RFC 7047 `monitor` (no conditions).
                        let reg = &mut self.monitors[pos];
                        reg.v1 = true;
                        let _ = id;
                        let new_id = self.next_id.fetch_add(1, Ordering::Relaxed);
                        send(
                            out,
                            &Message::Request {
                                id: json!(new_id),
                                method: reg.method().into(),
                                params: reg.params(),
                            },
                        );
                        pending.insert(new_id, Pending::Monitor { monitor_id, reply });
                    }
                    Err(error) => {
                        let reg = self.monitors.remove(pos);
                        let method = reg.method().to_owned();
                        if let Some(reply) = reply {
                            let _ = reply.send(Err(Error::Server { method, error }));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn send(out: &mpsc::UnboundedSender<Vec<u8>>, msg: &Message) {
    // A closed writer is noticed by the session loop, which then reconnects.
    let _ = out.send(msg.encode());
}
