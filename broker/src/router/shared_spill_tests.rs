//! A shared subscriber's spilled backlog when it leaves: at a disconnect
//! only what its queue holds in memory goes to the other members (the
//! router reads no file; MQTT 5.0 section 4.8.2: the Server MAY wait for
//! the Client to reconnect), the entries on disk wait with the session;
//! when the session ends they go to the group too, none lost or doubled.

use std::time::{Duration, Instant};

use super::super::*;
use super::spill_tests::written;
use super::tests::{disconnect, persistent, publish, stored, subscribe};

#[test]
fn spilled_shared_entries_wait_at_a_disconnect_and_go_to_the_group_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (mut r, j) = stored(dir.path());
    let a = persistent(&mut r, "a", 1);
    let b = persistent(&mut r, "b", 2);
    subscribe(&mut r, a.key, "$share/g/t");
    subscribe(&mut r, b.key, "$share/g/t");
    const N: usize = 20_000;
    for n in 0..N as u32 {
        publish(&mut r, "t", n);
    }
    written(&j.spill);
    let held = a.session.lock().queued();
    assert!(held > N / 4, "a holds its share of the group's messages: {held}");
    disconnect(&mut r, a.key, 1);
    let (kept, given) = (a.session.lock().queued(), b.session.lock().queued());
    assert!(kept > 0 && kept < held, "a keeps what is on disk, gives what was in memory: {kept} of {held}");
    assert_eq!(kept + given, N, "nothing lost or doubled at the disconnect");
    // A Clean Start ends a's session: what it kept on disk goes to b.
    let req = ConnectRequest {
        user: None,
        check_owner: false,
        client_id: "a".into(),
        clean_start: true,
        expiry: Some(Duration::ZERO),
        conn: ConnHandle::new(3),
    };
    let fresh = r.connect(req, Instant::now());
    assert!(!fresh.session_present);
    assert_eq!(b.session.lock().queued(), N, "every message with the group's other member, once");
    assert_eq!(fresh.session.lock().queued(), 0);
}
