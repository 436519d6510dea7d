//! The dashboard: its page, script and style, embedded in the binary
//! (`include_str!` of `dashboard/`: plain HTML, CSS and JavaScript, no
//! build step, nothing fetched from elsewhere), and the figures it shows
//! live: `GET /api/overview` (one JSON object, read from the registry's
//! atomics) and `GET /api/events`, the same object as a server-sent event
//! every [`EVENT_PERIOD`] (`text/event-stream`).
//!
//! The assets hold no data and are served without credentials; the
//! script sends the token (typed once, or given in the URL's fragment,
//! `/#token=...`, which browsers never send to the server) as
//! `Authorization: Bearer` with every request, and reads the event stream
//! with `fetch`, since `EventSource` cannot send a header. The page's
//! tables are the admin API's pages (`/api/sessions`, `/api/clients`),
//! polled at the same period while the page is visible.
//!
//! Cost: the assets are static bytes of the binary, paged in when served;
//! an event stream is a timer and one encoding of the overview per
//! period, no task of its own (the body is polled by its connection's
//! task and ends with it).

use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Either;
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use super::{reply, Http, Reply};

/// How often the event stream sends the overview.
pub const EVENT_PERIOD: Duration = Duration::from_secs(1);

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// The asset at `path`, if it is one.
pub(super) fn asset(path: &str) -> Option<Reply> {
    let (content_type, body) = match path {
        "/" | "/dashboard" => ("text/html; charset=utf-8", INDEX),
        "/dashboard.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "/dashboard.css" => ("text/css; charset=utf-8", STYLE),
        _ => return None,
    };
    let mut r = reply(StatusCode::OK, content_type, Bytes::from_static(body.as_bytes()));
    let h = r.headers_mut();
    // Only this broker's own script, style and API.
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(r)
}

/// The broker's figures at this moment: totals (the page computes rates
/// from two of them and their `at_ms`), levels, drops, store health.
pub(super) fn overview(http: &Http) -> Value {
    let m = &http.metrics;
    let listeners = m.listeners();
    let open: usize = listeners.iter().map(|l| l.open.load(Relaxed)).sum();
    let accepted: u64 = listeners.iter().map(|l| l.accepted.get()).sum();
    let refused: u64 = m.connect_refused.iter().map(|c| c.get()).sum();
    let (sessions, online) = (m.sessions.get(), m.sessions_online.get());
    let d = &m.drops;
    let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    json!({
        "at_ms": at_ms,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": http.started.elapsed().as_secs(),
        "messages": {
            "received": m.received.total(),
            "received_bytes": m.received_bytes.total(),
            "sent": m.sent.total(),
            "sent_bytes": m.sent_bytes.total(),
            "deliveries": m.delivered.get(),
        },
        "connections": { "open": open, "accepted": accepted, "refused": refused },
        "sessions": {
            "total": sessions,
            "online": online,
            "offline": sessions.saturating_sub(online),
            "expired": m.sessions_expired.get(),
        },
        "queues": {
            "messages": m.queued_messages.get(),
            "bytes": m.queued_bytes.get(),
            "inflight": m.inflight.get(),
        },
        "drops": {
            "queue_full": d.queue_full.get(),
            "disk_quota": d.disk_quota.get(),
            "too_large": d.too_large.get(),
            "expired": d.expired.get(),
            "acl": d.acl.get(),
            "offline_qos0": d.offline_qos0.get(),
        },
        "retained": { "messages": m.retained_messages.get(), "bytes": m.retained_bytes.get() },
        "store": super::api::store(http),
    })
}

/// `GET /api/events`: the overview now and every [`EVENT_PERIOD`].
pub(super) fn events(http: Arc<Http>) -> Reply {
    let mut tick = tokio::time::interval(EVENT_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut r = Response::new(Either::Right(Events { http, tick, retry_sent: false }));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The body of an event stream: never ends by itself (the connection's
/// end or the broker's shutdown drops it).
pub struct Events {
    http: Arc<Http>,
    tick: tokio::time::Interval,
    retry_sent: bool,
}

impl hyper::body::Body for Events {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.tick.poll_tick(cx).is_pending() {
            return Poll::Pending;
        }
        // A client that lost the stream comes back after one period.
        let retry = if std::mem::replace(&mut this.retry_sent, true) { "" } else { "retry: 1000\n" };
        let event = format!("{retry}event: overview\ndata: {}\n\n", overview(&this.http));
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
    }
}
