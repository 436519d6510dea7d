//! The JSON admin API under `/api/`: lists are paged (`?after=KEY&limit=N`,
//! `limit` at most [`MAX_LIMIT`], 100 by default; the answer's `next` is
//! the `after` of the next page, `null` on the last; `prefix=P` keeps the
//! keys that start with `P`) and come from the
//! router one page at a time (`router/admin.rs`); actions are `DELETE`s.
//! Keys in paths and queries are percent-decoded (`%2F` for a `/` in a
//! client identifier; a retained topic may be written as is).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::{error, reply, Http, Reply};
use crate::router::admin::{Admin, Page, PageReq, MAX_LIMIT};
use crate::router::RouterMsg;

/// How long a request waits for the router before 503.
const ROUTER_WAIT: Duration = Duration::from_secs(5);
/// A page's length when the request gives none.
const DEFAULT_LIMIT: usize = 100;

pub(super) async fn handle(http: &Http, method: &Method, rest: &str, query: &str) -> Reply {
    let (resource, key) = match rest.split_once('/') {
        Some((r, k)) => (r, Some(decode(k))),
        None => (rest, None),
    };
    let key = match key {
        Some(Some(k)) => Some(k),
        Some(None) => return error(StatusCode::BAD_REQUEST, "bad percent-encoding in the path"),
        None => None,
    };
    let page = match page_req(query) {
        Ok(p) => p,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let answer = match (method, resource, key) {
        (&Method::GET, "clients", None) => ask(http, |tx| Admin::Clients(page, tx)).await.map(clients),
        (&Method::GET, "sessions", None) => ask(http, |tx| Admin::Sessions(page, tx)).await.map(sessions),
        (&Method::GET, "subscriptions", None) => {
            ask(http, |tx| Admin::Subscriptions(page, tx)).await.map(subscriptions)
        }
        (&Method::GET, "retained", None) => ask(http, |tx| Admin::Retained(page, tx)).await.map(retained),
        (&Method::GET, "listeners", None) => Ok(listeners(http)),
        (&Method::GET, "store", None) => Ok(store(http)),
        (&Method::GET, "bridges", None) => Ok(Some(Value::Array(http.bridges.iter().map(|b| b.json()).collect()))),
        (&Method::DELETE, "clients", Some(id)) => ask(http, |tx| Admin::Disconnect(id, tx)).await.map(done),
        (&Method::DELETE, "sessions", Some(id)) => ask(http, |tx| Admin::DeleteSession(id, tx)).await.map(done),
        (&Method::DELETE, "retained", Some(t)) => ask(http, |tx| Admin::DeleteRetained(t, tx)).await.map(done),
        (_, "clients" | "sessions" | "subscriptions" | "retained" | "listeners" | "store" | "bridges", _) => {
            return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        }
        _ => return error(StatusCode::NOT_FOUND, "no such resource"),
    };
    match answer {
        Ok(Some(v)) => reply(StatusCode::OK, "application/json", v.to_string()),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such client, session or retained message"),
        Err(status) => error(status, "the router did not answer"),
    }
}

/// Sends the router a request and waits (asynchronously, bounded) for its answer.
async fn ask<T>(http: &Http, make: impl FnOnce(oneshot::Sender<T>) -> Admin) -> Result<T, StatusCode> {
    let (tx, rx) = oneshot::channel();
    let asked = async {
        http.router.send(RouterMsg::Admin(make(tx))).await.ok()?;
        rx.await.ok()
    };
    match tokio::time::timeout(ROUTER_WAIT, asked).await {
        Ok(Some(v)) => Ok(v),
        _ => Err(StatusCode::SERVICE_UNAVAILABLE),
    }
}

fn page_req(query: &str) -> Result<PageReq, &'static str> {
    let mut p = PageReq { after: None, limit: DEFAULT_LIMIT, prefix: None };
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v).ok_or("bad percent-encoding in the query")?;
        match k {
            "after" => p.after = Some(v),
            "prefix" => p.prefix = Some(v).filter(|v| !v.is_empty()),
            "limit" => {
                p.limit = v.parse::<usize>().map_err(|_| "limit must be a number")?.clamp(1, MAX_LIMIT);
            }
            _ => return Err("unknown query parameter (after, limit, prefix)"),
        }
    }
    Ok(p)
}

/// Percent-decodes `s` (UTF-8); `None` if it is not well formed.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn paged<T>(p: Page<T>, f: impl Fn(T) -> Value) -> Option<Value> {
    let items: Vec<Value> = p.items.into_iter().map(f).collect();
    Some(json!({ "items": items, "next": p.next }))
}

fn done(found: bool) -> Option<Value> {
    found.then(|| json!({ "done": true }))
}

fn clients(p: Page<crate::router::admin::ClientRow>) -> Option<Value> {
    paged(p, |c| {
        let i = c.info.as_ref();
        json!({
            "client_id": &*c.client_id,
            "user": i.and_then(|i| i.user.as_deref()),
            "address": i.map(|i| i.address.to_string()),
            "listener": i.map(|i| &*i.listener),
            "protocol": i.map(crate::router::ConnInfo::protocol),
            "keep_alive": i.map(|i| i.keep_alive),
            "connected_since": i.map(|i| i.connected_since),
            "inflight": c.inflight,
            "queue_depth": c.queued,
        })
    })
}

fn sessions(p: Page<crate::router::admin::SessionRow>) -> Option<Value> {
    paged(p, |s| {
        json!({
            "client_id": &*s.client_id,
            "online": s.online,
            "queued_messages": s.queued,
            "queued_bytes": s.queued_bytes,
            "inflight": s.inflight,
            "oldest_queued_age_secs": s.oldest_queued.map(|d| d.as_secs_f64()),
            "expiry_secs": s.expiry.map(|d| d.as_secs()),
            "expires_at": s.expires_at.map(unix),
            "subscriptions": s.subscriptions,
        })
    })
}

fn subscriptions(p: Page<crate::router::admin::SubscriptionRow>) -> Option<Value> {
    paged(p, |s| {
        let subs: Vec<Value> = s
            .filters
            .into_iter()
            .map(|(filter, o, id)| {
                json!({
                    "filter": filter,
                    "qos": o.qos as u8,
                    "no_local": o.no_local,
                    "retain_as_published": o.retain_as_published,
                    "retain_handling": o.retain_handling as u8,
                    "subscription_id": id,
                })
            })
            .collect();
        json!({ "client_id": &*s.client_id, "subscriptions": subs })
    })
}

fn retained(p: Page<crate::router::admin::RetainedRow>) -> Option<Value> {
    paged(p, |m| json!({ "topic": m.topic, "qos": m.qos as u8, "bytes": m.bytes, "age_secs": m.age.as_secs() }))
}

fn listeners(http: &Http) -> Option<Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let ls: Vec<Value> = http
        .metrics
        .listeners()
        .iter()
        .map(|l| {
            json!({
                "url": l.url,
                "open": l.open.load(Relaxed),
                "accepted": l.accepted.get(),
                "refused_full": l.refused_full.get(),
                "handshake_failures": l.handshake_failures.get(),
            })
        })
        .collect();
    Some(json!({ "items": ls }))
}

pub(super) fn store(http: &Http) -> Option<Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &http.metrics;
    let snapshot = json!({ "count": m.snapshots.get(), "last_secs": m.snapshot_micros.get() as f64 / 1e6 });
    let Some(j) = m.store() else {
        return Some(json!({ "persistence": http.persistence, "healthy": true, "snapshots": snapshot }));
    };
    let s = j.stats();
    let (sum, count, _) = s.sync_latency.snapshot();
    let last_error = s
        .last_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|(at, e)| json!({ "at": unix(*at), "message": e }));
    let failing = s.failing.load(Relaxed);
    let (quota, session_quota) = j.spill.quotas();
    Some(json!({
        "persistence": true,
        "healthy": !failing,
        "failing": failing,
        "log_bytes": j.disk_bytes(),
        "bytes_written": s.bytes_written.load(Relaxed),
        "appends": s.appends.load(Relaxed),
        "records_written": s.records_written.load(Relaxed),
        "fdatasyncs": s.syncs.load(Relaxed),
        "sync_latency": { "count": count, "sum_secs": sum, "mean_secs": if count > 0 { sum / count as f64 } else { 0.0 } },
        "write_errors": s.write_errors.load(Relaxed),
        "last_error": last_error,
        "spill_bytes": j.spill.disk_used.load(Relaxed),
        "queue_disk_quota": quota,
        "max_queued_disk_bytes": session_quota,
        "snapshots": snapshot,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_decoded_and_pages_bounded() {
        assert_eq!(decode("a%2Fb%20c").as_deref(), Some("a/b c"));
        assert_eq!(decode("x/y/+").as_deref(), Some("x/y/+"));
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%4"), None);
        let p = page_req("after=dev%2F7&limit=5000").unwrap();
        assert_eq!((p.after.as_deref(), p.limit), (Some("dev/7"), MAX_LIMIT));
        assert!(page_req("limit=x").is_err());
        assert!(page_req("offset=3").is_err());
        assert_eq!(page_req("prefix=gw%2F").unwrap().prefix.as_deref(), Some("gw/"));
        assert_eq!(page_req("prefix=").unwrap().prefix, None);
        assert_eq!(page_req("").unwrap().limit, DEFAULT_LIMIT);
    }
}
