//! The tokio adapter: one background task per client owns the socket, and [`Client`] handles
//! talk to it over a channel.
//!
//! Guarantees:
//! - A request in flight when the connection drops fails with [`Error::Disconnected`]; whether a
//!   `transact` was applied is then unknown (callers re-read, as the typed operations do).
//! - Requests made while disconnected fail at once with [`Error::NotConnected`].
//! - After a reconnect every monitor is sent again and its initial contents replace the cached
//!   tables, so the cache converges to the server's state: no change is lost, even one made
//!   while the client was away.
//! - The server's `echo` requests are answered; when the connection is idle the client sends its
//!   own and drops a connection whose peer stays silent for two echo intervals.
//! - `ssl:` remotes speak TLS with a client certificate ([`tls`]); every reconnect is a new
//!   handshake with the files read again.

mod lb;
mod monitor;
mod nb;
mod router;
pub mod sb;
mod session;
pub mod tls;
mod vswitch;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use nauti_api::core::backoff::Backoff;
use serde_json::{Value as Json, json};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::core::cache::{Cache, CacheError};
use crate::core::error::{ErrorKind, ServerError};
use crate::core::framing::DEFAULT_MAX_MESSAGE;
use crate::core::nb::PlanError;
use crate::core::ops::{Operation, OperationResult, TransactError, parse_transact_result};
use crate::core::schema::{DatabaseSchema, SchemaError};

pub use monitor::{Monitor, MonitorRequest};
pub use nb::Northbound;
pub use tls::{TlsArgs, TlsError, TlsFile, TlsFiles};
pub use vswitch::OpenVswitch;

/// Everything a client call can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// The first connection could not be made in time.
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect {
        /// Where we tried to connect.
        endpoint: String,
        /// The last connection error.
        reason: String,
    },
    /// TLS to an `ssl:` remote cannot work: a file, or a certificate one side refuses.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The client is between connections.
    #[error("not connected to {endpoint} (reconnecting)")]
    NotConnected {
        /// The server.
        endpoint: String,
    },
    /// The connection dropped while the request was in flight.
    #[error(
        "connection to {endpoint} lost while {method} was in flight; it may or may not have been applied"
    )]
    Disconnected {
        /// The server.
        endpoint: String,
        /// The request's method.
        method: String,
    },
    /// The server answered with an error.
    #[error("{method} failed: {error}")]
    Server {
        /// The request's method.
        method: String,
        /// The server's error.
        error: ServerError,
    },
    /// A transaction was refused; nothing of it was committed.
    #[error(transparent)]
    Transact(#[from] TransactError),
    /// An operation does not fit the database schema (checked before sending).
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A monitor notification could not be applied to the cache.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The server's reply is not what the protocol says.
    #[error("malformed {method} reply: {reason}")]
    BadReply {
        /// The request's method.
        method: String,
        /// What is wrong.
        reason: String,
    },
    /// No reply in time.
    #[error("{method} got no reply within {after:?}")]
    Timeout {
        /// The request's method.
        method: String,
        /// How long we waited.
        after: Duration,
    },
    /// The wanted rows cannot be planned (missing switch or bridge, ...).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Concurrent writers kept invalidating our reads.
    #[error(
        "{what}: the database kept changing concurrently; gave up after {attempts} attempts (last: {last})"
    )]
    Conflict {
        /// What we tried to ensure.
        what: String,
        /// How many read-plan-write rounds ran.
        attempts: u32,
        /// The last conflict the server reported.
        last: Box<Error>,
    },
    /// The request was canceled by the caller.
    #[error("{method} canceled")]
    Canceled {
        /// The request's method.
        method: String,
    },
    /// The client's background task is gone.
    #[error("the OVSDB client task has stopped")]
    Closed,
}

impl Error {
    /// The server error behind this failure, if any.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Self::Server { error, .. } => Some(error),
            Self::Transact(t) => t.server_error(),
            _ => None,
        }
    }

    /// The kind of the server error behind this failure, if any.
    pub fn server_kind(&self) -> Option<&ErrorKind> {
        self.server_error().map(|e| &e.kind)
    }
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
    /// `host:port`, over TLS with a client certificate.
    Ssl(String),
}

impl Endpoint {
    /// Parses OVS remote syntax: `unix:PATH`, `tcp:HOST:PORT` or `ssl:HOST:PORT` (an IPv6
    /// host in brackets).
    pub fn parse(remote: &str) -> Option<Self> {
        if let Some(path) = remote.strip_prefix("unix:") {
            return (!path.is_empty()).then(|| Self::Unix(PathBuf::from(path)));
        }
        let (make, addr): (fn(String) -> Self, &str) = if let Some(a) = remote.strip_prefix("tcp:")
        {
            (Self::Tcp, a)
        } else {
            (Self::Ssl, remote.strip_prefix("ssl:")?)
        };
        addr.rsplit_once(':')
            .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            .map(|_| make(addr.to_owned()))
    }

    /// The host part of a `tcp:` or `ssl:` remote (brackets kept).
    pub(crate) fn host(&self) -> Option<&str> {
        match self {
            Self::Unix(_) => None,
            Self::Tcp(a) | Self::Ssl(a) => a.rsplit_once(':').map(|(h, _)| h),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp:{a}"),
            Self::Ssl(a) => write!(f, "ssl:{a}"),
        }
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server.
    pub endpoint: Endpoint,
    /// How long [`Client::connect`] waits for the first connection.
    pub connect_timeout: Duration,
    /// How long a request waits for its reply.
    pub request_timeout: Duration,
    /// Idle time after which the client sends an `echo`; a peer silent for twice this long is
    /// considered gone.
    pub echo_interval: Duration,
    /// First reconnect delay; doubles up to `backoff_max`, each stretched by a random factor in
    /// `[1, 2)` so that many clients of one server do not reconnect in step.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Largest message accepted from the server.
    pub max_message: usize,
    /// Key, certificate and CA for an `ssl:` endpoint (ignored for the others).
    pub tls: Option<TlsFiles>,
}

impl ClientConfig {
    /// Defaults for an endpoint.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            echo_interval: Duration::from_secs(5),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            max_message: DEFAULT_MAX_MESSAGE,
            tls: None,
        }
    }
}

/// Connection state published by the background task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnState {
    /// Connected right now.
    pub connected: bool,
    /// Number of connections made so far.
    pub epoch: u64,
    /// Why the last connection attempt or connection failed.
    pub last_error: Option<String>,
    /// The last attempt's failure when TLS refused it (cleared by a connection).
    pub tls_error: Option<TlsError>,
}

pub(crate) enum Command {
    Request {
        id: u64,
        method: String,
        params: Vec<Json>,
        reply: oneshot::Sender<Result<Json, Error>>,
    },
    Notify {
        method: String,
        params: Vec<Json>,
    },
    Cancel {
        id: u64,
    },
    Monitor {
        reg: monitor::Registration,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    MonitorCancel {
        monitor_id: String,
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

struct Inner {
    config: ClientConfig,
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<ConnState>,
    next_id: Arc<AtomicU64>,
    schemas: Mutex<HashMap<String, Arc<DatabaseSchema>>>,
}

/// A handle on one OVSDB connection (cheap to clone; the connection lives while a handle does).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.config.endpoint)
            .finish()
    }
}

impl Client {
    /// Starts the connection task and waits for the first connection.
    ///
    /// Fails at once when TLS cannot work (files missing or invalid, a certificate refused by
    /// either side): retrying would not change the verdict. Network failures are retried until
    /// `connect_timeout`.
    pub async fn connect(config: ClientConfig) -> Result<Self, Error> {
        let connector = match &config.endpoint {
            Endpoint::Ssl(_) => {
                let files = config.tls.as_ref().ok_or_else(|| TlsError::NotConfigured {
                    endpoint: config.endpoint.to_string(),
                })?;
                Some(tls::Connector::load(files)?)
            }
            Endpoint::Unix(_) | Endpoint::Tcp(_) => None,
        };
        let (commands, rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(ConnState::default());
        let next_id = Arc::new(AtomicU64::new(1));
        tokio::spawn(session::run(
            config.clone(),
            connector,
            rx,
            state_tx,
            next_id.clone(),
        ));
        let client = Self {
            inner: Arc::new(Inner {
                config,
                commands,
                state,
                next_id,
                schemas: Mutex::new(HashMap::new()),
            }),
        };
        let timeout = client.inner.config.connect_timeout;
        let mut rx = client.inner.state.clone();
        let settled = rx.wait_for(|s| s.connected || s.tls_error.is_some());
        let state = match tokio::time::timeout(timeout, settled).await {
            Ok(Ok(state)) => state.clone(),
            Ok(Err(_)) => return Err(Error::Closed),
            Err(_) => client.inner.state.borrow().clone(),
        };
        if state.connected {
            return Ok(client);
        }
        if let Some(refused) = state.tls_error {
            return Err(Error::Tls(refused));
        }
        Err(Error::Connect {
            endpoint: client.endpoint(),
            reason: state
                .last_error
                .unwrap_or_else(|| format!("no connection within {timeout:?}")),
        })
    }

    /// Connects, trying again after a failure with backoff (`first_retry` doubling up to
    /// `max_retry`, with jitter) until the server answers; `None` once `stop` is cancelled. Each
    /// failure is logged naming `what` (e.g. "the OVN northbound database"), the attempt and the
    /// wait. Once connected, the client reconnects by itself.
    pub async fn connect_retrying(
        config: ClientConfig,
        what: &str,
        first_retry: Duration,
        max_retry: Duration,
        stop: &CancellationToken,
    ) -> Option<Self> {
        let mut backoff = Backoff::new(first_retry, max_retry);
        let endpoint = config.endpoint.to_string();
        let mut attempt: u64 = 0;
        loop {
            attempt += 1;
            let connect = tokio::select! {
                () = stop.cancelled() => return None,
                result = Self::connect(config.clone()) => result,
            };
            match connect {
                Ok(client) => {
                    tracing::info!(%endpoint, "connected to {what}");
                    return Some(client);
                }
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        %error,
                        %endpoint,
                        attempt,
                        retry_in = ?delay,
                        "cannot reach {what}; retrying"
                    );
                    tokio::select! {
                        () = stop.cancelled() => return None,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Connects to an endpoint with default settings.
    pub async fn connect_to(endpoint: Endpoint) -> Result<Self, Error> {
        Self::connect(ClientConfig::new(endpoint)).await
    }

    /// The server's address.
    pub fn endpoint(&self) -> String {
        self.inner.config.endpoint.to_string()
    }

    /// The connection state (watch it to see reconnects).
    pub fn state(&self) -> watch::Receiver<ConnState> {
        self.inner.state.clone()
    }

    /// Waits until connected, at most `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), Error> {
        let mut rx = self.inner.state.clone();
        let wait = rx.wait_for(|s| s.connected);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::NotConnected {
                endpoint: self.endpoint(),
            }),
        }
    }

    fn send(&self, cmd: Command) -> Result<(), Error> {
        self.inner.commands.send(cmd).map_err(|_| Error::Closed)
    }

    fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    async fn await_reply<T>(
        &self,
        method: &str,
        rx: oneshot::Receiver<Result<T, Error>>,
    ) -> Result<T, Error> {
        let after = self.inner.config.request_timeout;
        match tokio::time::timeout(after, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout {
                method: method.to_owned(),
                after,
            }),
        }
    }

    /// Sends any request and returns its raw result.
    pub async fn request(&self, method: &str, params: Vec<Json>) -> Result<Json, Error> {
        let (reply, rx) = oneshot::channel();
        let id = self.next_id();
        self.send(Command::Request {
            id,
            method: method.to_owned(),
            params,
            reply,
        })?;
        self.await_reply(method, rx).await
    }

    /// Sends a notification (a request without reply).
    pub fn notify(&self, method: &str, params: Vec<Json>) -> Result<(), Error> {
        self.send(Command::Notify {
            method: method.to_owned(),
            params,
        })
    }

    /// `list_dbs`.
    pub async fn list_dbs(&self) -> Result<Vec<String>, Error> {
        let result = self.request("list_dbs", vec![]).await?;
        serde_json::from_value(result).map_err(|e| Error::BadReply {
            method: "list_dbs".into(),
            reason: e.to_string(),
        })
    }

    /// `get_schema`, cached per database for the life of the client.
    pub async fn get_schema(&self, db: &str) -> Result<Arc<DatabaseSchema>, Error> {
        if let Some(s) = self.lock_schemas().get(db) {
            return Ok(s.clone());
        }
        let json = self.request("get_schema", vec![json!(db)]).await?;
        let schema = Arc::new(DatabaseSchema::from_json(&json)?);
        self.lock_schemas().insert(db.to_owned(), schema.clone());
        Ok(schema)
    }

    fn lock_schemas(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<DatabaseSchema>>> {
        self.inner
            .schemas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `echo`: a round trip to the server.
    pub async fn echo(&self) -> Result<(), Error> {
        let payload = json!("nauti");
        let result = self.request("echo", vec![payload.clone()]).await?;
        if result != json!([payload]) {
            return Err(Error::BadReply {
                method: "echo".into(),
                reason: format!("got {result}"),
            });
        }
        Ok(())
    }

    /// `transact`, after checking every operation against the schema.
    pub async fn transact(
        &self,
        db: &str,
        ops: Vec<Operation>,
    ) -> Result<Vec<OperationResult>, Error> {
        self.start_transact(db, ops).await?.result().await
    }

    /// Sends a `transact` and returns a handle that can `cancel` it (useful for `wait`s).
    pub async fn start_transact(
        &self,
        db: &str,
        ops: Vec<Operation>,
    ) -> Result<PendingTransact, Error> {
        let schema = self.get_schema(db).await?;
        for op in &ops {
            op.check(&schema)?;
        }
        Ok(self.send_transact(db, ops, Some(schema)))
    }

    /// `transact` without the local schema check (to see what the server says).
    pub async fn transact_unchecked(
        &self,
        db: &str,
        ops: Vec<Operation>,
    ) -> Result<Vec<OperationResult>, Error> {
        self.send_transact(db, ops, None).result().await
    }

    fn send_transact(
        &self,
        db: &str,
        ops: Vec<Operation>,
        schema: Option<Arc<DatabaseSchema>>,
    ) -> PendingTransact {
        let mut params = Vec::with_capacity(ops.len() + 1);
        params.push(json!(db));
        params.extend(ops.iter().map(Operation::to_json));
        let (reply, rx) = oneshot::channel();
        let id = self.next_id();
        let sent = self.send(Command::Request {
            id,
            method: "transact".into(),
            params,
            reply,
        });
        PendingTransact {
            client: self.clone(),
            id,
            ops,
            schema,
            rx,
            sent,
        }
    }

    /// Starts a monitor (`monitor_cond`, or `monitor` on servers without it) whose rows feed a
    /// cache; returns once the initial contents are in.
    pub async fn monitor(&self, db: &str, requests: Vec<MonitorRequest>) -> Result<Monitor, Error> {
        let schema = self.get_schema(db).await?;
        for r in &requests {
            r.check(&schema)?;
        }
        let (reg, handle) =
            monitor::Registration::new(self.clone(), db, schema, requests, self.next_id());
        let (reply, rx) = oneshot::channel();
        self.send(Command::Monitor { reg, reply })?;
        self.await_reply("monitor_cond", rx).await?;
        Ok(handle)
    }

    pub(crate) async fn monitor_cancel(&self, monitor_id: String) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::MonitorCancel { monitor_id, reply })?;
        self.await_reply("monitor_cancel", rx).await
    }
}

/// A `transact` in flight.
pub struct PendingTransact {
    client: Client,
    id: u64,
    ops: Vec<Operation>,
    schema: Option<Arc<DatabaseSchema>>,
    rx: oneshot::Receiver<Result<Json, Error>>,
    sent: Result<(), Error>,
}

impl PendingTransact {
    /// Gives up on the transaction: sends RFC 7047 `cancel` and fails the request at once with
    /// [`Error::Canceled`] (unless its reply already arrived).
    ///
    /// Caveat: `ovsdb-server` 3.1 receives the `cancel` but neither answers it nor drops the
    /// request, so a blocked `wait` may still commit later if its condition comes true. Treat a
    /// canceled transaction like a lost one: re-read before acting on it.
    pub fn cancel(&self) -> Result<(), Error> {
        self.client.send(Command::Cancel { id: self.id })
    }

    /// Waits for the outcome.
    pub async fn result(self) -> Result<Vec<OperationResult>, Error> {
        self.sent?;
        let json = self.client.await_reply("transact", self.rx).await?;
        Ok(parse_transact_result(
            &self.ops,
            &json,
            self.schema.as_deref(),
        )?)
    }
}

pub(crate) fn read_cache(cache: &RwLock<Cache>) -> std::sync::RwLockReadGuard<'_, Cache> {
    cache
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn write_cache(cache: &RwLock<Cache>) -> std::sync::RwLockWriteGuard<'_, Cache> {
    cache
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_in_ovs_syntax_parse() {
        assert_eq!(
            Endpoint::parse("unix:/run/ovn/nb.sock"),
            Some(Endpoint::Unix("/run/ovn/nb.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp:127.0.0.1:6641"),
            Some(Endpoint::Tcp("127.0.0.1:6641".into()))
        );
        let ssl = Endpoint::parse("ssl:ovn-central.example:6641").unwrap();
        assert_eq!(ssl, Endpoint::Ssl("ovn-central.example:6641".into()));
        assert_eq!(ssl.to_string(), "ssl:ovn-central.example:6641");
        assert_eq!(ssl.host(), Some("ovn-central.example"));
        assert_eq!(
            Endpoint::parse("ssl:[fd00::1]:6641").unwrap().host(),
            Some("[fd00::1]")
        );
        for bad in [
            "",
            "unix:",
            "tcp:1.2.3.4",
            "tcp::1",
            "ssl:1.2.3.4",
            "ssl::6641",
            "pssl:6641",
            "tcp:h:99999",
        ] {
            assert_eq!(Endpoint::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn an_ssl_remote_without_files_is_refused_naming_the_flags() {
        let config = ClientConfig::new(Endpoint::parse("ssl:127.0.0.1:1").unwrap());
        let err = Client::connect(config).await.unwrap_err();
        assert!(
            matches!(err, Error::Tls(TlsError::NotConfigured { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("--ovsdb-ca-cert"), "{err}");
    }
}
