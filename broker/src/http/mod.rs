//! The HTTP listener (`[http]`, off by default): `GET /metrics` in the
//! Prometheus text format and the JSON admin API (`api.rs`), on hyper 1
//! with hyper-util's tokio glue (chosen over axum by measured size and
//! memory: README, "HTTP API").
//!
//! One task accepts; each connection is served in its own task (HTTP/1.1,
//! keep-alive, at most [`MAX_CONNECTIONS`] at once, headers within
//! [`HEADER_TIMEOUT`]). Requests are authenticated first (bearer token or
//! basic authentication, compared in constant time). Nothing here blocks
//! a thread: the router is asked through its channel, and answers one
//! bounded page at a time (`router/admin.rs`). The dashboard's page and
//! its live figures (`GET /api/overview`, the `text/event-stream` of
//! `GET /api/events`) are in `dashboard.rs`. When `[http]` is absent
//! nothing of this runs and nothing is allocated for it.

mod api;
pub mod config;
mod dashboard;

pub use config::HttpConfig;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use crate::router::RouterMsg;

/// HTTP connections served at once; beyond them a connection is closed
/// as soon as it is accepted.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the HTTP side needs of the broker.
pub struct Http {
    pub cfg: HttpConfig,
    pub router: mpsc::Sender<RouterMsg>,
    pub metrics: Arc<Metrics>,
    pub persistence: bool,
    /// When the broker started (the overview's uptime).
    pub started: std::time::Instant,
    /// Every `[[bridge]]`'s state (`GET /api/bridges`).
    pub bridges: Vec<Arc<crate::bridge::BridgeStatus>>,
}

/// A whole body, or the event stream of `GET /api/events`.
type Body = Either<Full<Bytes>, dashboard::Events>;
type Reply = Response<Body>;

/// Serves `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, http: Arc<Http>, shutdown: CancellationToken, tracker: TaskTracker) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors and the like: try again shortly.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let (http, shutdown) = (http.clone(), shutdown.clone());
        tracker.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let http = http.clone();
                async move { Ok::<_, Infallible>(handle(&http, req).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = shutdown.cancelled() => {}
            }
            drop(slot);
        });
    }
}

/// Whether the request carries the configured credentials.
fn authorized(cfg: &HttpConfig, req: &Request<Incoming>) -> bool {
    if !cfg.has_credentials() {
        return true;
    }
    let Some(value) = req.headers().get(hyper::header::AUTHORIZATION).map(|v| v.as_bytes()) else {
        return false;
    };
    if let (Some(token), Some(given)) = (&cfg.token, value.strip_prefix(b"Bearer ")) {
        if bool::from(token.as_bytes().ct_eq(given)) {
            return true;
        }
    }
    if let (Some((user, password)), Some(given)) = (&cfg.basic, value.strip_prefix(b"Basic ")) {
        use base64::Engine;
        let want = format!("{user}:{password}");
        if let Ok(given) = base64::engine::general_purpose::STANDARD.decode(given) {
            return bool::from(want.as_bytes().ct_eq(&given));
        }
    }
    false
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Either::Left(Full::new(body.into())));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    r
}

fn error(status: StatusCode, message: &str) -> Reply {
    let body = serde_json::json!({ "error": message }).to_string();
    reply(status, "application/json", body)
}

async fn handle(http: &Arc<Http>, req: Request<Incoming>) -> Reply {
    // The dashboard's page, script and style hold no data: served to
    // anyone, the script then sends the token with each request.
    if req.method() == hyper::Method::GET {
        if let Some(asset) = dashboard::asset(req.uri().path()) {
            return asset;
        }
    }
    if !authorized(&http.cfg, &req) {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
        let challenge = if http.cfg.token.is_some() { "Bearer" } else { "Basic realm=\"edgemq\"" };
        r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static(challenge));
        return r;
    }
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    if req.method() == hyper::Method::GET && path == "/metrics" {
        return match crate::metrics::encode(&http.metrics) {
            Ok(text) => reply(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", text),
            Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the metrics"),
        };
    }
    match path.strip_prefix("/api/") {
        Some("overview") if req.method() == hyper::Method::GET => {
            reply(StatusCode::OK, "application/json", dashboard::overview(http).to_string())
        }
        Some("events") if req.method() == hyper::Method::GET => dashboard::events(http.clone()),
        Some(rest) => api::handle(http, req.method(), rest, &query).await,
        None => error(StatusCode::NOT_FOUND, "no such resource"),
    }
}
