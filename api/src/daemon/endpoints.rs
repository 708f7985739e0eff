//! `/metrics` (OpenMetrics text), `/healthz` and `/livez` (the process serves requests) and
//! `/readyz` (200 once the daemon can do its job, 503 naming what is missing), over HTTP/1.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
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

/// Binds `addr` and serves the endpoints there in a task of its own until `shutdown` (or until
/// the returned guard is dropped).
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

/// Serves the endpoints on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, health: Arc<dyn Health>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                warn!(%error, "accepting a metrics connection failed");
                continue;
            }
        };
        let health = health.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let health = health.clone();
                async move { Ok::<_, Infallible>(respond(&req, health.as_ref())) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
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
}
