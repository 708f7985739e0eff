//! `/metrics` (OpenMetrics text), `/healthz` and `/livez` (the process serves requests) and
//! `/readyz` (200 once the daemon can do its job, 503 naming what is missing), over HTTP/1.
//!
//! The listener is reachable by whatever shares the daemon's network namespace (the host's, for
//! node daemons), so it bounds what a peer can hold: at most [`ListenerLimits::max_connections`]
//! connections are served at once, and a connection that has not sent a whole request head within
//! [`ListenerLimits::header_read_timeout`] (also between requests on a kept-alive connection) is
//! closed. Connections beyond the cap are not refused: they wait, unaccepted, in the kernel's
//! backlog and are served as soon as a slot frees, so a scrape or a probe behind a crowd of idle
//! peers is answered within one header-read timeout instead of being dropped.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// What a daemon reports on its endpoint.
pub trait Health: Send + Sync + 'static {
    /// The metrics in the OpenMetrics text exposition.
    fn render_metrics(&self) -> String;
    /// `None` when ready, else what is missing.
    fn not_ready(&self) -> Option<String>;
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What one peer may hold of the endpoint listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// How long a connection may take to send a whole request head, counted from when the
    /// server starts waiting for it (the connection's start, or the previous answer).
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the backlog until one ends.
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    /// 5 s for a request head (a scraper or a probe sends it at once; Prometheus' own scrape
    /// timeout is 10 s) and 32 connections (a few scrapers and probes, with room to spare).
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            max_connections: 32,
        }
    }
}

/// Binds `addr` and serves the endpoints there, with the default [`ListenerLimits`], in a task of
/// its own until `shutdown` (or until the returned guard is dropped).
pub async fn start_endpoints(
    addr: std::net::SocketAddr,
    health: Arc<dyn Health>,
    shutdown: CancellationToken,
) -> std::io::Result<super::AbortOnDrop> {
    let listener = TcpListener::bind(addr).await?;
    if let Ok(bound) = listener.local_addr() {
        tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    }
    Ok(super::AbortOnDrop(tokio::spawn(serve(
        listener, health, shutdown,
    ))))
}

/// Serves the endpoints on `listener` with the default [`ListenerLimits`] until `shutdown`.
pub async fn serve(listener: TcpListener, health: Arc<dyn Health>, shutdown: CancellationToken) {
    serve_with_limits(listener, health, shutdown, ListenerLimits::default()).await;
}

/// Serves the endpoints on `listener` within `limits` until `shutdown`.
pub async fn serve_with_limits(
    listener: TcpListener,
    health: Arc<dyn Health>,
    shutdown: CancellationToken,
    limits: ListenerLimits,
) {
    // At least one slot, or nothing would ever be served.
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        // Take a slot before accepting: at the cap, new connections stay in the backlog.
        let slot = tokio::select! {
            () = shutdown.cancelled() => return,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else {
            // The semaphore is never closed; stop rather than spin if it were.
            return;
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                warn!(%error, "accepting a metrics connection failed");
                // Out of descriptors fails again at once: do not spin on it.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if slots.available_permits() == 0 {
            debug!(
                max_connections = limits.max_connections,
                "metrics listener at its connection cap: further connections wait"
            );
        }
        let health = health.clone();
        let shutdown = shutdown.clone();
        let conn = http.serve_connection(
            TokioIo::new(stream),
            service_fn(move |req| {
                let health = health.clone();
                async move { Ok::<_, Infallible>(respond(&req, health.as_ref())) }
            }),
        );
        tokio::spawn(async move {
            // Held until the connection ends.
            let _slot = slot;
            tokio::select! {
                result = conn => if let Err(error) = result {
                    debug!(%error, "metrics connection ended with an error");
                },
                () = shutdown.cancelled() => {}
            }
        });
    }
}

fn respond(req: &Request<Incoming>, health: &dyn Health) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "only GET\n", "text/plain");
    }
    match req.uri().path() {
        "/metrics" => reply(StatusCode::OK, health.render_metrics(), OPENMETRICS),
        "/healthz" | "/livez" => reply(StatusCode::OK, "ok\n", "text/plain"),
        "/readyz" => match health.not_ready() {
            None => reply(StatusCode::OK, "ok\n", "text/plain"),
            Some(why) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
                "text/plain",
            ),
        },
        _ => reply(StatusCode::NOT_FOUND, "not found\n", "text/plain"),
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>, content_type: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    struct Fake {
        ready: AtomicBool,
    }

    impl Health for Fake {
        fn render_metrics(&self) -> String {
            "# TYPE fake_total counter\nfake_total 7\n# EOF\n".into()
        }
        fn not_ready(&self) -> Option<String> {
            (!self.ready.load(Ordering::Relaxed)).then(|| "fake not connected".into())
        }
    }

    async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn the_endpoints_answer_over_a_real_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Arc::new(Fake {
            ready: AtomicBool::new(false),
        });
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, fake.clone(), shutdown.clone()));

        let metrics = request(addr, "GET", "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(
            metrics.contains("application/openmetrics-text"),
            "{metrics}"
        );
        assert!(metrics.contains("fake_total 7"), "{metrics}");
        assert!(
            request(addr, "GET", "/healthz")
                .await
                .starts_with("HTTP/1.1 200")
        );

        let unready = request(addr, "GET", "/readyz").await;
        assert!(unready.starts_with("HTTP/1.1 503"), "{unready}");
        assert!(
            unready.contains("not ready: fake not connected"),
            "{unready}"
        );
        fake.ready.store(true, Ordering::Relaxed);
        assert!(
            request(addr, "GET", "/readyz")
                .await
                .starts_with("HTTP/1.1 200")
        );

        assert!(
            request(addr, "GET", "/nope")
                .await
                .starts_with("HTTP/1.1 404")
        );
        assert!(
            request(addr, "POST", "/metrics")
                .await
                .starts_with("HTTP/1.1 405")
        );

        shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .expect("the server stops when told to")
            .unwrap();
    }

    /// Serves on a loopback port within `limits`; the server stops when the token is cancelled.
    async fn serving(limits: ListenerLimits) -> (std::net::SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Arc::new(Fake {
            ready: AtomicBool::new(true),
        });
        let shutdown = CancellationToken::new();
        tokio::spawn(serve_with_limits(listener, fake, shutdown.clone(), limits));
        (addr, shutdown)
    }

    /// Reads until the server closes the connection (a reset counts as closed); what it sent.
    async fn until_closed(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        match stream.read_to_end(&mut got).await {
            Ok(_) => {}
            Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}"),
        }
        got
    }

    #[tokio::test]
    async fn a_connection_that_sends_no_whole_header_is_closed_after_the_timeout() {
        let timeout = Duration::from_millis(300);
        let (addr, shutdown) = serving(ListenerLimits {
            header_read_timeout: timeout,
            max_connections: 8,
        })
        .await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut partial = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        // Half a request head, never finished.
        partial
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n")
            .await
            .unwrap();
        let bound = timeout + Duration::from_secs(3);
        let silent_got = tokio::time::timeout(bound, until_closed(&mut silent))
            .await
            .expect("a silent connection is closed");
        let partial_got = tokio::time::timeout(bound, until_closed(&mut partial))
            .await
            .expect("a connection with half a header is closed");
        let elapsed = started.elapsed();
        assert!(
            elapsed >= timeout,
            "closed after {elapsed:?}, before the timeout"
        );
        // Nothing is served to either: at most an error status.
        for got in [silent_got, partial_got] {
            let text = String::from_utf8_lossy(&got);
            assert!(!text.contains("200 OK"), "{text}");
        }
        shutdown.cancel();
    }

    #[tokio::test]
    async fn idle_connections_at_twice_the_cap_delay_a_request_by_at_most_two_timeouts() {
        let timeout = Duration::from_millis(500);
        let cap = 4;
        let (addr, shutdown) = serving(ListenerLimits {
            header_read_timeout: timeout,
            max_connections: cap,
        })
        .await;
        let mut idle = Vec::new();
        for _ in 0..2 * cap {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(
            2 * timeout + Duration::from_secs(3),
            request(addr, "GET", "/readyz"),
        )
        .await
        .expect("a request behind idle connections is answered");
        let waited = started.elapsed();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // It waited behind the cap: the first idle batch had to time out before it got a slot.
        assert!(
            waited >= timeout,
            "answered after {waited:?}: no cap held it back"
        );
        // And every idle connection was closed by the server, not left open.
        for mut stream in idle {
            tokio::time::timeout(Duration::from_secs(3), until_closed(&mut stream))
                .await
                .expect("an idle connection is closed");
        }
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_kept_alive_connection_that_goes_quiet_gives_its_slot_back() {
        let timeout = Duration::from_millis(300);
        let (addr, shutdown) = serving(ListenerLimits {
            header_read_timeout: timeout,
            max_connections: 1,
        })
        .await;
        let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 12];
        kept.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        // The only slot is held by a quiet kept-alive connection; the next peer still gets in.
        let answer = tokio::time::timeout(
            timeout + Duration::from_secs(3),
            request(addr, "GET", "/healthz"),
        )
        .await
        .expect("the quiet connection's slot is given back");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        shutdown.cancel();
    }
}
