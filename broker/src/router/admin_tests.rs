use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::*;
use crate::router::{ConnHandle, ConnectRequest, RouterMsg};
use crate::session::state::QueueLimits;

fn ask<T>(r: &mut Router, make: impl FnOnce(oneshot::Sender<T>) -> Admin) -> T {
    let (tx, mut rx) = oneshot::channel();
    r.handle(RouterMsg::Admin(make(tx)), Instant::now());
    rx.try_recv().unwrap()
}

fn open(r: &mut Router, id: &str, n: u64) -> ConnHandle {
    let conn = ConnHandle::new(n);
    let req = ConnectRequest {
        client_id: id.into(),
        clean_start: false,
        expiry: None,
        conn: conn.clone(),
        user: None,
        check_owner: false,
    };
    r.open(req, Instant::now()).unwrap();
    conn
}

/// Publishes a retained message on each of `topics`.
fn retain(r: &mut Router, topics: &[&str]) {
    for t in topics {
        r.publish(Message {
            topic: (*t).into(),
            payload: Bytes::from_static(b"v"),
            qos: QoS::AtMostOnce,
            retain: true,
            props: None,
            origin: 0,
            received: Instant::now(),
        });
    }
}

#[test]
fn sessions_are_paged_in_order_and_bounded() {
    let mut r = Router::new(QueueLimits::default());
    for i in 0..250 {
        open(&mut r, &format!("c{i:04}"), i);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = ask(&mut r, |tx| Admin::Sessions(PageReq { after: after.clone(), limit: 100, prefix: None }, tx));
        assert!(page.items.len() <= 100);
        seen.extend(page.items.iter().map(|s| s.client_id.to_string()));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let want: Vec<String> = (0..250).map(|i| format!("c{i:04}")).collect();
    assert_eq!(seen, want);
    // A huge limit is capped.
    let page = ask(&mut r, |tx| Admin::Sessions(PageReq { after: None, limit: usize::MAX, prefix: None }, tx));
    assert_eq!(page.items.len(), 250);
}

#[test]
fn a_page_of_clients_among_many_offline_sessions_ends_early() {
    let mut r = Router::new(QueueLimits::default());
    for i in 0..100 {
        let c = open(&mut r, &format!("off{i:03}"), i);
        r.handle(
            RouterMsg::Disconnected { key: i + 1, conn_id: c.id, will: None, will_delay: Duration::ZERO, expiry: None },
            Instant::now(),
        );
    }
    open(&mut r, "zz-online", 1000);
    let page = ask(&mut r, |tx| Admin::Clients(PageReq { after: None, limit: 2, prefix: None }, tx));
    assert!(page.items.is_empty(), "examined at most limit * SCAN sessions");
    assert_eq!(page.next.as_deref(), Some("off015"));
    let mut after = page.next;
    let mut found = Vec::new();
    while let Some(a) = after {
        let page = ask(&mut r, |tx| Admin::Clients(PageReq { after: Some(a), limit: 2, prefix: None }, tx));
        found.extend(page.items.into_iter().map(|c| c.client_id.to_string()));
        after = page.next;
    }
    assert_eq!(found, ["zz-online"]);
}

#[test]
fn actions_disconnect_delete_session_and_retained() {
    let mut r = Router::new(QueueLimits::default());
    let conn = open(&mut r, "a", 1);
    retain(&mut r, &["x/1", "x/2", "x/3"]);
    let page = ask(&mut r, |tx| Admin::Retained(PageReq { after: None, limit: 2, prefix: None }, tx));
    let topics: Vec<_> = page.items.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!((topics, page.next.as_deref()), (vec!["x/1", "x/2"], Some("x/2")));
    let page = ask(&mut r, |tx| Admin::Retained(PageReq { after: Some("x/2".into()), limit: 2, prefix: None }, tx));
    assert_eq!((page.items.len(), page.next), (1, None));
    assert!(ask(&mut r, |tx| Admin::DeleteRetained("x/2".into(), tx)));
    assert!(!ask(&mut r, |tx| Admin::DeleteRetained("x/2".into(), tx)));
    assert_eq!(r.retained_count(), 2);

    assert!(ask(&mut r, |tx| Admin::Disconnect("a".into(), tx)));
    assert_eq!(conn.close_reason(), Some(DisconnectReason::AdministrativeAction));
    assert!(!ask(&mut r, |tx| Admin::Disconnect("nobody".into(), tx)));
    assert!(ask(&mut r, |tx| Admin::DeleteSession("a".into(), tx)));
    assert_eq!(r.session_count(), 0);
    assert!(!ask(&mut r, |tx| Admin::DeleteSession("a".into(), tx)));
}

#[test]
fn a_page_of_100_000_sessions_holds_one_page() {
    let mut r = Router::new(QueueLimits::default());
    for i in 0..100_000u64 {
        let req = ConnectRequest {
            client_id: format!("d{i:06}"),
            clean_start: false,
            expiry: None,
            conn: ConnHandle::new(i),
            user: None,
            check_owner: false,
        };
        r.open(req, Instant::now()).unwrap();
    }
    let page = ask(&mut r, |tx| {
        Admin::Sessions(PageReq { after: Some("d049999".into()), limit: MAX_LIMIT + 1, prefix: None }, tx)
    });
    assert_eq!(page.items.len(), MAX_LIMIT, "the limit is capped");
    assert_eq!(&*page.items[0].client_id, "d050000");
    assert_eq!(page.next.as_deref(), Some("d050999"));
    let last =
        ask(&mut r, |tx| Admin::Sessions(PageReq { after: Some("d099998".into()), limit: 10, prefix: None }, tx));
    assert_eq!((last.items.len(), last.next), (1, None));
}

#[test]
fn a_prefix_keeps_the_sessions_and_topics_that_start_with_it() {
    let mut r = Router::new(QueueLimits::default());
    for (i, id) in ["gw-a", "gw-b", "gw-c", "gx", "sensor-1"].into_iter().enumerate() {
        open(&mut r, id, i as u64);
    }
    let ids = |p: Page<SessionRow>| p.items.iter().map(|s| s.client_id.to_string()).collect::<Vec<_>>();
    let gw = |after: Option<&str>, limit| PageReq { after: after.map(Into::into), limit, prefix: Some("gw-".into()) };
    let page = ask(&mut r, |tx| Admin::Sessions(gw(None, 2), tx));
    assert_eq!(page.next.as_deref(), Some("gw-b"));
    assert_eq!(ids(page), ["gw-a", "gw-b"]);
    let page = ask(&mut r, |tx| Admin::Sessions(gw(Some("gw-b"), 2), tx));
    assert_eq!(page.next, None, "the walk ends past the prefix");
    assert_eq!(ids(page), ["gw-c"]);
    // An `after` before the prefix starts at the prefix.
    assert_eq!(ids(ask(&mut r, |tx| Admin::Sessions(gw(Some("a"), 10), tx))), ["gw-a", "gw-b", "gw-c"]);
    retain(&mut r, &["a/1", "b/1", "b/2"]);
    let page = ask(&mut r, |tx| Admin::Retained(PageReq { prefix: Some("b/".into()), ..gw(None, 10) }, tx));
    assert_eq!(page.items.iter().map(|m| m.topic.as_str()).collect::<Vec<_>>(), ["b/1", "b/2"]);
}
