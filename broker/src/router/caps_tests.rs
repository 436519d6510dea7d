use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::protocol::{QoS, SubOptions};
use crate::router::{ConnHandle, RouterMsg, Sub, SubscribeEntry};
use crate::session::state::QueueLimits;

fn router(caps: RouterCaps) -> Router {
    let limits = QueueLimits { max_messages: 100, max_bytes: 1 << 20, ..QueueLimits::default() };
    let mut r = Router::new(limits);
    r.set_caps(caps);
    r
}

fn open(r: &mut Router, client: &str, clean: bool, id: u64) -> Result<ConnectReply, SessionRefused> {
    let expiry = if clean { Some(Duration::ZERO) } else { None };
    let req = ConnectRequest {
        user: None,
        check_owner: false,
        client_id: client.into(),
        clean_start: clean,
        expiry,
        conn: ConnHandle::new(id),
    };
    r.open(req, Instant::now())
}

/// [`open`] as `user`, checking the session's owner.
fn open_as(
    r: &mut Router,
    client: &str,
    user: Option<&str>,
    clean: bool,
    id: u64,
) -> Result<ConnectReply, SessionRefused> {
    let expiry = if clean { Some(Duration::ZERO) } else { None };
    let req = ConnectRequest {
        user: user.map(Into::into),
        check_owner: true,
        client_id: client.into(),
        clean_start: clean,
        expiry,
        conn: ConnHandle::new(id),
    };
    r.open(req, Instant::now())
}

#[test]
fn a_session_is_refused_to_other_users_and_kept() {
    let mut r = router(RouterCaps::default());
    let a = open_as(&mut r, "dev1", Some("alice"), false, 1).unwrap();
    assert!(!a.session_present);
    for (user, clean) in [(Some("bob"), false), (Some("bob"), true), (None, false)] {
        assert_eq!(open_as(&mut r, "dev1", user, clean, 2).err(), Some(SessionRefused::NotOwner), "{user:?} {clean}");
    }
    assert_eq!(r.stats().sessions_not_owner, 3);
    // The session was kept: alice resumes it.
    let again = open_as(&mut r, "dev1", Some("alice"), false, 3).unwrap();
    assert!(again.session_present);
    assert_eq!(again.key, a.key);
    // Unchecked (a listener without authentication): allowed.
    assert!(open(&mut r, "dev1", false, 4).unwrap().session_present);
    // A session without owner (made unchecked) is claimed by the first
    // user who resumes it where users authenticate; then it is theirs.
    assert!(open(&mut r, "old", false, 5).is_ok());
    assert!(open_as(&mut r, "old", Some("carol"), false, 6).unwrap().session_present);
    assert_eq!(open_as(&mut r, "old", Some("bob"), false, 7).err(), Some(SessionRefused::NotOwner));
    assert_eq!(open_as(&mut r, "old", None, false, 8).err(), Some(SessionRefused::NotOwner));
}

fn retained(topic: &str, payload: &'static [u8]) -> Message {
    Message {
        topic: topic.into(),
        payload: Bytes::from_static(payload),
        qos: QoS::AtMostOnce,
        retain: true,
        props: None,
        origin: 0,
        received: Instant::now(),
    }
}

#[test]
fn max_sessions_refuses_new_sessions_but_not_resumptions() {
    let mut r = router(RouterCaps { max_sessions: 2, ..RouterCaps::default() });
    let a = open(&mut r, "a", false, 1).unwrap();
    open(&mut r, "b", false, 2).unwrap();
    assert_eq!(open(&mut r, "c", false, 3).err(), Some(SessionRefused::Quota));
    assert_eq!(r.stats().sessions_refused, 1);
    // A session that exists resumes (or restarts clean) at the cap.
    let again = open(&mut r, "a", false, 4).unwrap();
    assert!(again.session_present && again.key == a.key);
    assert!(!open(&mut r, "b", true, 5).unwrap().session_present);
    assert_eq!(r.session_count(), 2);
    // A session that ended makes room.
    r.handle(
        RouterMsg::Disconnected {
            key: again.key,
            conn_id: 4,
            will: None,
            will_delay: Duration::ZERO,
            expiry: Some(Some(Duration::ZERO)),
        },
        Instant::now(),
    );
    assert_eq!(r.session_count(), 1);
    open(&mut r, "c", false, 6).unwrap();
    assert_eq!(r.stats().sessions_refused, 1);
}

#[test]
fn retained_beyond_the_caps_is_delivered_but_not_kept() {
    let retained_caps = RetainedLimits { max_messages: 2, max_bytes: 1000 };
    let mut r = router(RouterCaps { retained: retained_caps, ..RouterCaps::default() });
    let s = open(&mut r, "s", true, 1).unwrap();
    let options = SubOptions { qos: QoS::AtMostOnce, ..SubOptions::default() };
    s.session.lock().subscriptions.insert("#".into(), (options, None));
    let sub = Sub { options, id: None };
    r.handle(
        RouterMsg::Subscribe { key: s.key, entries: vec![SubscribeEntry { filter: "#".into(), sub, existed: false }] },
        Instant::now(),
    );
    for t in ["a", "b", "c"] {
        r.publish(retained(t, b"v"));
    }
    assert_eq!(r.retained_count(), 2);
    assert_eq!(r.stats().retained_refused, 1);
    let mut got = Vec::new();
    while let Some((d, _)) = s.session.lock().next_to_send(10, Instant::now()) {
        got.push(d.msg.topic.clone());
    }
    assert_eq!(got, ["a", "b", "c"], "the one not retained was still delivered");
    // Replacing a kept topic and deleting one stay possible at the cap.
    r.publish(retained("a", b"w"));
    r.publish(retained("b", b""));
    r.publish(retained("c", b"v"));
    assert_eq!((r.retained_count(), r.stats().retained_refused), (2, 1));
}
