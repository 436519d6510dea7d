//! Mosquitto's password and ACL files, end to end with raw clients, and
//! the bypass attempts that must fail: wrong, empty and missing passwords,
//! unknown and huge user names, wildcard and shared subscriptions around a
//! denied topic, `$SYS`, client-id spoofing against `%c`, a topic alias to
//! a denied topic, a will to one, a retained message on one.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use edgemq::auth::passwd::{hash_password, Argon2Params, HashScheme};

const ACL: &str = "\
# anonymous clients: their own bystander topics only
topic readwrite bystander/#
user alice
topic readwrite a/#
topic deny a/secret
user carol
topic write a/#
user bob
topic read a/#
pattern readwrite dev/%c/#
";

/// A password file with alice (by Debian's `mosquitto_passwd` when it is
/// installed), carol ($7$), bob ($6$) and dave (argon2id), and the ACL.
fn write_files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let passwd = dir.join("passwd");
    let by_mosquitto = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwd)
        .args(["alice", "wonderland"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !by_mosquitto {
        assert!(
            std::env::var("EDGEMQ_REQUIRE_INTEROP").as_deref() != Ok("1"),
            "mosquitto_passwd not found and EDGEMQ_REQUIRE_INTEROP=1"
        );
        println!("NOTE: mosquitto_passwd not found: alice's entry is written by edgemq");
    }
    let mut text = if by_mosquitto { std::fs::read_to_string(&passwd).expect("read passwd") } else { String::new() };
    let h = |pw: &[u8], scheme| hash_password(pw, scheme).expect("hash");
    if !by_mosquitto {
        text.push_str(&format!("alice:{}\n", h(b"wonderland", HashScheme::Pbkdf2Sha512 { iterations: 101 })));
    }
    text.push_str(&format!("carol:{}\n", h(b"c-pass", HashScheme::Pbkdf2Sha512 { iterations: 101 })));
    text.push_str(&format!("bob:{}\n", h(b"b-pass", HashScheme::Sha512)));
    let argon = Argon2Params { memory_kib: 1024, passes: 1, lanes: 1 };
    text.push_str(&format!("dave:{}\n", h(b"d-pass", HashScheme::Argon2id(argon))));
    std::fs::write(&passwd, text).expect("write passwd");
    let acl = dir.join("acl");
    std::fs::write(&acl, ACL).expect("write acl");
    (passwd, acl)
}

async fn broker(allow_anonymous: bool) -> (TestBroker, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (passwd, acl) = write_files(dir.path());
    let b = TestBroker::start_with(|c| {
        c.allow_anonymous = allow_anonymous;
        c.password_file = Some(passwd);
        c.acl_file = Some(acl);
    })
    .await;
    (b, dir)
}

fn login(proto: Proto, id: &str, user: &str, password: &[u8]) -> ConnectOpts {
    ConnectOpts::new(proto, id).username(user).password(password)
}

/// The CONNACK code a CONNECT gets.
async fn connack_code(addr: std::net::SocketAddr, o: &ConnectOpts) -> u8 {
    let mut c = Raw::open(addr).await;
    c.send(&connect_packet(o)).await;
    c.expect("CONNACK").await.connack().1
}

/// `allow_anonymous = false` with a password file admits exactly the users
/// with their passwords: $7$ (as Debian's mosquitto_passwd writes), $6$,
/// argon2id. Wrong, empty or missing passwords, unknown and 65,535-byte
/// user names get 0x04 / 0x86, no user name 0x05 / 0x87.
#[tokio::test]
async fn password_file_admits_exactly_the_right_users() {
    let (b, _dir) = broker(false).await;
    for (proto, bad_user, no_user) in [(Proto::V311, 0x04, 0x05), (Proto::V5, 0x86, 0x87)] {
        for (user, pw) in [("alice", &b"wonderland"[..]), ("carol", b"c-pass"), ("bob", b"b-pass"), ("dave", b"d-pass")]
        {
            let code = connack_code(b.addr, &login(proto, &format!("{user}-ok"), user, pw)).await;
            assert_eq!(code, 0, "{proto:?} {user} with the right password");
        }
        let long = "u".repeat(65_535);
        let refused = [
            login(proto, "wrong", "alice", b"Wonderland"),
            login(proto, "empty", "alice", b""),
            ConnectOpts::new(proto, "nopw").username("alice"),
            login(proto, "unknown", "mallory", b"wonderland"),
            login(proto, "long", &long, b"x"),
        ];
        for o in &refused {
            let code = connack_code(b.addr, o).await;
            assert_eq!(code, bad_user, "{proto:?} {} refused", o.client_id);
        }
        assert_eq!(connack_code(b.addr, &ConnectOpts::new(proto, "anon")).await, no_user, "{proto:?} anonymous");
    }
    // Each refusal counted (`Broker::auth_counts`): five bad credentials
    // and one anonymous client, per protocol version.
    let n = b.broker.auth_counts();
    assert_eq!((n.auth_failures, n.publish_denied, n.subscribe_denied), (12, 0, 0));
    b.shutdown().await;
}

/// Without a password file nothing can verify a user name: with
/// `allow_anonymous = false` no client is admitted, whatever it sends
/// (once any user name was).
#[tokio::test]
async fn without_a_password_file_allow_anonymous_false_admits_no_one() {
    let b = TestBroker::start_with(|c| c.allow_anonymous = false).await;
    assert_eq!(connack_code(b.addr, &login(Proto::V311, "x", "anyone", b"anything")).await, 0x04);
    assert_eq!(connack_code(b.addr, &login(Proto::V5, "y", "anyone", b"anything")).await, 0x86);
    b.shutdown().await;
}

/// Subscriptions are checked by what they could receive: `#`, `+/secret`,
/// `$SYS/#` and a shared `#` are refused to a user granted `a/#` (0x80 /
/// 0x87); `a/#` and a shared `a/+` are granted, and a message or retained
/// message on the denied `a/secret` is not delivered through them.
#[tokio::test]
async fn acl_subscriptions_and_deliveries() {
    let (b, _dir) = broker(false).await;
    let (mut carol, _) = Raw::connect(b.addr, &login(Proto::V311, "carol-1", "carol", b"c-pass")).await;
    carol.publish("a/secret", 1, true, 1, b"hidden").await;
    carol.publish("a/open", 1, true, 2, b"shown").await;
    for (proto, refused) in [(Proto::V311, 0x80), (Proto::V5, 0x87)] {
        let (mut alice, _) =
            Raw::connect(b.addr, &login(proto, &format!("alice-{proto:?}"), "alice", b"wonderland")).await;
        let filters = [("#", 1), ("+/secret", 1), ("$SYS/#", 1), ("$share/g/#", 1), ("$share/g/a/+", 1), ("a/#", 1)];
        let codes = alice.subscribe(1, &filters).await;
        assert_eq!(codes, vec![refused, refused, refused, refused, 1, 1], "{proto:?}");
        // Retained on subscribe: only the readable one, through both granted filters.
        let m = alice.receive_acked().await;
        assert_eq!((m.topic.as_str(), m.retain), ("a/open", true), "{proto:?}");
        carol.publish("a/secret", 1, false, 3, b"live hidden").await;
        carol.publish("a/open", 1, false, 4, b"live shown").await;
        let mut live = Vec::new();
        while let Recv::Packet(p) = alice.recv_within(QUIET).await {
            let m = p.publish(alice.v5);
            if m.qos > 0 {
                alice.send(&ack_packet(PUBACK, m.pid)).await;
            }
            live.push((m.topic, m.payload));
        }
        assert!(live.iter().all(|(t, _)| t != "a/secret"), "{proto:?}: a denied topic was delivered: {live:?}");
        assert!(live.iter().any(|(_, p)| p == b"live shown"), "{proto:?}: {live:?}");
        alice.disconnect().await;
    }
    // Counted: four filters and the retained a/secret per version; the
    // live a/secret through a/# (and the shared a/+) as deliveries.
    let n = b.broker.auth_counts();
    assert_eq!((n.subscribe_denied, n.retained_denied, n.auth_failures), (8, 2, 0));
    assert!(n.delivery_denied >= 4, "{n:?}");
    b.shutdown().await;
}

/// PUBLISH to a denied topic: 3.1.1 acknowledged and dropped (as
/// Mosquitto), MQTT 5 PUBACK 0x87, also when the topic comes through a
/// topic alias; `%c` patterns give each client only its own subtree (a
/// client id cannot reach another's); a will to a denied topic refuses
/// CONNECT.
#[tokio::test]
async fn acl_publishes_aliases_patterns_and_wills() {
    let (b, _dir) = broker(false).await;
    let (mut watch, _) = Raw::connect(b.addr, &login(Proto::V311, "watch", "bob", b"b-pass")).await;
    assert_eq!(watch.subscribe(1, &[("a/#", 1)]).await, vec![1]);
    // bob may only read a/#.
    let (mut bob, _) = Raw::connect(b.addr, &login(Proto::V311, "d1", "bob", b"b-pass")).await;
    bob.publish("a/x", 1, false, 1, b"denied").await;
    let (mut bob5, _) = Raw::connect(b.addr, &login(Proto::V5, "d2", "bob", b"b-pass")).await;
    bob5.send(&publish_packet(true, "a/x", 1, false, false, 7, b"denied")).await;
    let ack = bob5.expect_kind(PUBACK, "PUBACK").await;
    assert_eq!((ack.pid(), ack.body[2]), (7, 0x87), "v5 PUBACK 0x87 Not authorized");
    // Through a topic alias: set on the first (denied) PUBLISH, used alone after.
    let alias = [0x23, 0, 1];
    bob5.send(&publish_packet_props(true, "a/y", 1, false, false, 8, &alias, b"denied")).await;
    assert_eq!(bob5.expect_kind(PUBACK, "PUBACK").await.body[2], 0x87);
    bob5.send(&publish_packet_props(true, "", 1, false, false, 9, &alias, b"denied")).await;
    assert_eq!(bob5.expect_kind(PUBACK, "PUBACK").await.body[2], 0x87, "denied through the alias too");
    // %c: client d1 writes its own subtree, not d2's.
    bob.publish("dev/d1/t", 1, false, 2, b"own").await;
    bob.publish("dev/d2/t", 1, false, 3, b"spoofed").await;
    let (mut d2, _) = Raw::connect(b.addr, &login(Proto::V311, "d2", "bob", b"b-pass")).await;
    assert_eq!(d2.subscribe(1, &[("dev/d2/#", 1)]).await, vec![1]);
    bob.publish("dev/d2/t", 1, false, 4, b"spoofed").await;
    assert!(matches!(d2.recv_within(QUIET).await, Recv::TimedOut), "d1 wrote into d2's subtree");
    assert!(matches!(watch.recv_within(QUIET).await, Recv::TimedOut), "a denied PUBLISH was routed");
    // A will to a topic alice may not write.
    for (proto, code) in [(Proto::V311, 0x05), (Proto::V5, 0x87)] {
        let o = login(proto, "alice-will", "alice", b"wonderland").will("b/gone", b"w", 1, false);
        assert_eq!(connack_code(b.addr, &o).await, code, "{proto:?} will to a denied topic");
        let o = login(proto, "alice-will2", "alice", b"wonderland").will("a/secret", b"w", 1, false);
        assert_eq!(connack_code(b.addr, &o).await, code, "{proto:?} will to a denied topic");
    }
    // Counted: bob's six denied PUBLISHes (two through the alias, two
    // spoofing d2) and the four wills.
    let n = b.broker.auth_counts();
    assert_eq!((n.publish_denied, n.will_denied, n.auth_failures), (6, 4, 0));
    b.shutdown().await;
}

/// A burst of CONNECTs with wrong passwords is verified off the async
/// workers, at most cores - 1 hashes (at least one) at a time: a connected client keeps
/// its PINGRESP and its messages meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_burst_does_not_stall_others() {
    let (b, _dir) = broker(true).await;
    let mut by = Bystander::new(b.addr, "hash-bystander").await;
    let mut tasks = Vec::new();
    // Both protocol versions: 3.1.1 refuses with 0x04, MQTT 5 with 0x86
    // Bad user name or password.
    for i in 0..60 {
        let addr = b.addr;
        let (proto, code) = if i % 2 == 0 { (Proto::V311, 0x04) } else { (Proto::V5, 0x86) };
        tasks.push(tokio::spawn(async move {
            (connack_code(addr, &login(proto, &format!("burst-{i}"), "dave", b"wrong")).await, code)
        }));
    }
    by.check("during a burst of wrong passwords").await;
    for t in tasks {
        let (got, want) = within("refusal", t).await.expect("task");
        assert_eq!(got, want, "a wrong password during a burst");
    }
    by.check("after a burst of wrong passwords").await;
    b.shutdown().await;
}
