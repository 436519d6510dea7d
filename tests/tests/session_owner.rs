//! A persistent session belongs to the user that created it: with a
//! password file, a CONNECT with the same client identifier under another
//! user name is refused (MQTT 5 CONNACK 0x87 Not authorized, 3.1.1 0x05)
//! and the session, its subscriptions and queued messages stay the
//! owner's, across a broker restart too (the owner is in the store).
//! A session made without authentication is claimed by its first user.
//! `check_session_owner = false` allows it (Mosquitto's behaviour);
//! `use_username_as_clientid` makes the user name the client identifier.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use edgemq::auth::passwd::{hash_password, HashScheme};

fn passwd(dir: &Path) -> PathBuf {
    let p = dir.join("passwd");
    let h = |pw: &[u8]| hash_password(pw, HashScheme::Pbkdf2Sha512 { iterations: 101 }).unwrap();
    std::fs::write(&p, format!("alice:{}\nbob:{}\n", h(b"a-pass"), h(b"b-pass"))).unwrap();
    p
}

async fn broker(dir: &Path, tweak: impl FnOnce(&mut edgemq::Config)) -> TestBroker {
    let (pw, data) = (passwd(dir), dir.join("data"));
    TestBroker::start_with(|c| {
        c.password_file = Some(pw);
        c.allow_anonymous = false;
        c.data_dir = data;
        tweak(c);
    })
    .await
}

fn login(proto: Proto, id: &str, user: &str, pw: &[u8]) -> ConnectOpts {
    ConnectOpts::new(proto, id).username(user).password(pw)
}

/// The CONNACK of `o`: (session present, code).
async fn connack(addr: std::net::SocketAddr, o: &ConnectOpts) -> (bool, u8) {
    let mut c = Raw::open(addr).await;
    c.v5 = o.proto == Proto::V5;
    c.send(&connect_packet(o)).await;
    c.expect("CONNACK").await.connack()
}

/// alice's persistent session `dev1` with a subscription and two queued
/// QoS 1 messages.
async fn alice_leaves_messages(addr: std::net::SocketAddr) {
    let (mut a, _) = Raw::connect(addr, &login(Proto::V311, "dev1", "alice", b"a-pass").clean(false)).await;
    assert_eq!(a.subscribe(1, &[("q/t", 1)]).await, vec![1]);
    a.disconnect().await;
    let (mut p, _) = Raw::connect(addr, &login(Proto::V311, "pub", "alice", b"a-pass")).await;
    p.publish("q/t", 1, false, 1, b"m1").await;
    p.publish("q/t", 1, false, 2, b"m2").await;
    p.disconnect().await;
}

/// bob cannot resume, take over or clean alice's session, in either
/// protocol version.
async fn bob_is_refused(addr: std::net::SocketAddr) {
    for clean in [false, true] {
        let o = login(Proto::V311, "dev1", "bob", b"b-pass").clean(clean);
        assert_eq!(connack(addr, &o).await, (false, 0x05), "3.1.1 Not authorized (clean {clean})");
        let o = login(Proto::V5, "dev1", "bob", b"b-pass").clean(clean);
        assert_eq!(connack(addr, &o).await, (false, 0x87), "5.0 Not authorized (clean {clean})");
    }
}

/// alice resumes `dev1` and gets both queued messages.
async fn alice_resumes(addr: std::net::SocketAddr) -> Raw {
    let (mut a, present) = Raw::connect(addr, &login(Proto::V311, "dev1", "alice", b"a-pass").clean(false)).await;
    // [MQTT-3.2.2-2] Session Present: the session was kept intact.
    assert!(present, "alice's session survived bob's attempts");
    let got: Vec<Vec<u8>> = vec![a.receive_acked().await.payload.to_vec(), a.receive_acked().await.payload.to_vec()];
    assert_eq!(got, [b"m1".to_vec(), b"m2".to_vec()]);
    a
}

#[tokio::test]
async fn another_user_cannot_take_a_persistent_session_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), |_| {}).await;
    alice_leaves_messages(b.addr).await;
    bob_is_refused(b.addr).await;
    assert_eq!(b.broker.auth_counts().auth_failures, 4, "each refusal counted");
    // While alice is connected, bob cannot take her connection over either.
    let mut a = alice_resumes(b.addr).await;
    bob_is_refused(b.addr).await;
    a.publish("q/t", 1, false, 3, b"still alice's").await;
    assert_eq!(&a.receive_acked().await.payload[..], b"still alice's", "alice's connection stays open");
    a.disconnect().await;
    let (mut p, _) = Raw::connect(b.addr, &login(Proto::V311, "pub", "alice", b"a-pass")).await;
    p.publish("q/t", 1, false, 1, b"m1").await;
    p.publish("q/t", 1, false, 2, b"m2").await;
    p.disconnect().await;
    b.shutdown().await;

    // The owner is in the store.
    let b = broker(dir.path(), |_| {}).await;
    bob_is_refused(b.addr).await;
    let a = alice_resumes(b.addr).await;
    a.disconnect().await;
    // A clean session of alice's ends it: then the identifier is free.
    let (a, _) = Raw::connect(b.addr, &login(Proto::V311, "dev1", "alice", b"a-pass")).await;
    a.disconnect().await;
    let (bob, present) = Raw::connect(b.addr, &login(Proto::V311, "dev1", "bob", b"b-pass").clean(false)).await;
    assert!(!present);
    bob.disconnect().await;
    b.shutdown().await;
}

#[tokio::test]
async fn check_session_owner_false_allows_it_as_mosquitto() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), |c| c.check_session_owner = false).await;
    alice_leaves_messages(b.addr).await;
    let (mut bob, present) = Raw::connect(b.addr, &login(Proto::V311, "dev1", "bob", b"b-pass").clean(false)).await;
    assert!(present, "bob resumes alice's session");
    assert_eq!(&bob.receive_acked().await.payload[..], b"m1");
    bob.disconnect().await;
    b.shutdown().await;
}

#[tokio::test]
async fn use_username_as_clientid_names_the_session_by_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), |c| {
        c.allow_anonymous = true;
        c.listeners[0].use_username_as_clientid = true;
    })
    .await;
    let (mut a, present) = Raw::connect(b.addr, &login(Proto::V311, "first", "alice", b"a-pass").clean(false)).await;
    assert!(!present);
    assert_eq!(a.subscribe(1, &[("u/t", 1)]).await, vec![1]);
    a.disconnect().await;
    // Another client id: the same session, alice's.
    let (a, present) = Raw::connect(b.addr, &login(Proto::V311, "second", "alice", b"a-pass").clean(false)).await;
    assert!(present, "the client id is the user name");
    a.disconnect().await;
    // Without a user name there is no client id to take (as Mosquitto).
    let anon = ConnectOpts::new(Proto::V5, "anon");
    assert_eq!(connack(b.addr, &anon).await, (false, 0x87));
    assert_eq!(connack(b.addr, &ConnectOpts::new(Proto::V311, "anon")).await, (false, 0x05));
    b.shutdown().await;
}

/// Sessions made before users authenticated (no password file, as with
/// a release before owners) have no owner: once a password file is
/// configured, the first user to resume one owns it, and another user is
/// then refused.
#[tokio::test]
async fn sessions_made_without_authentication_are_claimed_by_their_first_user() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let b = TestBroker::start_with(|c| c.data_dir = data.clone()).await;
    alice_leaves_messages(b.addr).await;
    b.shutdown().await;
    let b = broker(dir.path(), |_| {}).await;
    let a = alice_resumes(b.addr).await;
    a.disconnect().await;
    bob_is_refused(b.addr).await;
    b.shutdown().await;
}
