//! Interop test of the ACL decisions against the real Mosquitto 2.0 broker:
//! what it lets each client publish (MQTT 5 PUBACK codes) and deliver (a
//! subscription to `#`, which 2.0 always grants) is what
//! [`AclFile::check`] says, on one ACL file exercising the precedence rules
//! and the patterns, where they agree by design; and the one deliberate
//! difference (a `/` in a substituted client id). Skipped (with a note)
//! when `mosquitto` is absent, unless `EDGEMQ_REQUIRE_INTEROP=1`.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::*;

const ACL: &str = "\
topic read public/#
user alice
topic readwrite alice/#
topic deny alice/secret
topic read shared/+/data
user admin
topic readwrite #
user e+vil
topic read evil/own
pattern readwrite dev/%c/#
pattern read users/%u/#
pattern deny users/%u/private
pattern deny alice/blocked
";

/// Topics written and read by every client of the matrix (topic names: a
/// `+` in one is a protocol error).
const TOPICS: &[&str] = &[
    "public/x",
    "alice/x",
    "alice/secret",
    "alice/blocked",
    "shared/a/data",
    "shared/a/b/data",
    "dev/c1/x",
    "dev/c2/x",
    "dev/c3/x",
    "users/bob/x",
    "users/bob/private",
    "users/alice/x",
    "evil/own",
    "other",
];

/// (user name, client id) of each client of the matrix; the client ids
/// differ, as the read test connects them all at once.
const CLIENTS: &[(Option<&str>, &str)] =
    &[(None, "c1"), (Some("alice"), "c2"), (Some("bob"), "c3"), (Some("e+vil"), "c4"), (Some("bob"), "c+1")];

/// A Mosquitto broker started for this test, ended (by its handle) on drop.
struct Broker(std::process::Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        out.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// Reads one packet: its first byte and body.
fn read_packet(stream: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut first = [0u8; 1];
    stream.read_exact(&mut first)?;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte)?;
        len |= usize::from(byte[0] & 0x7f) << shift;
        shift += 7;
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    Ok((first[0], body))
}

/// Connects with MQTT 5 (a user name, no password); panics unless accepted.
fn connect(port: u16, user: Option<&str>, client_id: &str) -> std::io::Result<TcpStream> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, if user.is_some() { 0x82 } else { 0x02 }, 0, 60, 0];
    string(&mut body, client_id.as_bytes());
    if let Some(user) = user {
        string(&mut body, user.as_bytes());
    }
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(&packet(0x10, &body))?;
    let (kind, body) = read_packet(&mut stream)?;
    assert_eq!((kind, body[1]), (0x20, 0), "CONNACK success for {user:?} {client_id:?}");
    Ok(stream)
}

/// Publishes at QoS 1; whether the broker took it (PUBACK 0x00 or 0x10 No
/// matching subscribers) rather than refusing it (0x87 Not authorized).
fn publish(stream: &mut TcpStream, topic: &str, id: u16) -> bool {
    let mut body = Vec::new();
    string(&mut body, topic.as_bytes());
    body.extend_from_slice(&id.to_be_bytes());
    body.push(0);
    body.extend_from_slice(b"payload");
    stream.write_all(&packet(0x32, &body)).unwrap();
    loop {
        let (kind, body) = read_packet(stream).unwrap();
        if kind == 0x40 {
            assert_eq!(body[..2], id.to_be_bytes());
            let code = body.get(2).copied().unwrap_or(0);
            assert!(matches!(code, 0x00 | 0x10 | 0x87), "PUBACK code {code:#x} for {topic}");
            return code != 0x87;
        }
    }
}

fn subscribe_all(stream: &mut TcpStream) {
    let mut body = vec![0, 1, 0];
    string(&mut body, b"#");
    body.push(0);
    stream.write_all(&packet(0x82, &body)).unwrap();
    let (kind, body) = read_packet(stream).unwrap();
    assert_eq!((kind, body.last().copied()), (0x90, Some(0)), "SUBACK granting QoS 0");
}

/// The topics of the PUBLISH packets received until a quiet half second.
fn received(stream: &mut TcpStream) -> Vec<String> {
    stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut topics = Vec::new();
    while let Ok((kind, body)) = read_packet(stream) {
        if kind & 0xf0 == 0x30 {
            let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
            topics.push(String::from_utf8(body[2..2 + len].to_vec()).unwrap());
        }
    }
    topics
}

#[test]
fn decisions_agree_with_the_mosquitto_broker() {
    let required = std::env::var("EDGEMQ_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().unwrap();
    let acl_path = dir.path().join("acl");
    std::fs::write(&acl_path, ACL).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let conf = dir.path().join("mosquitto.conf");
    let conf_text = format!(
        "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\nacl_file {}\npersistence false\n",
        acl_path.display()
    );
    std::fs::write(&conf, conf_text).unwrap();
    let child = std::process::Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let _broker = match child {
        Ok(child) => Broker(child),
        Err(e) => {
            assert!(!required, "EDGEMQ_REQUIRE_INTEROP=1 but mosquitto cannot run: {e}");
            eprintln!("note: skipping the Mosquitto ACL interop test: {e}");
            return;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut admin = loop {
        match connect(port, Some("admin"), "adm") {
            Ok(stream) => break stream,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("the broker did not answer on port {port}: {e}"),
        }
    };
    let file = AclFile::parse(ACL, "acl").unwrap();

    // Write: each client publishes each topic.
    for &(user, client_id) in CLIENTS {
        let mut stream = connect(port, user, client_id).unwrap();
        for (i, topic) in TOPICS.iter().enumerate() {
            let mosquitto = publish(&mut stream, topic, i as u16 + 1);
            let ours = file.check(user, client_id, topic, Access::Write);
            assert_eq!(ours, mosquitto, "write {topic} by {user:?} {client_id:?}");
        }
    }

    // The one difference on purpose: a `/` in a substituted value. Mosquitto
    // 2.0 lets client `c1/z` write under `dev/c1/`, client `c1`'s tree.
    let mut stream = connect(port, None, "c1/z").unwrap();
    assert!(publish(&mut stream, "dev/c1/z/x", 1), "Mosquitto 2.0 substitutes a `/`");
    assert!(!file.check(None, "c1/z", "dev/c1/z/x", Access::Write), "edgemq does not");
    drop(stream);

    // Read: each client subscribes to `#`; admin publishes every topic.
    let mut subscribers: Vec<_> = CLIENTS
        .iter()
        .map(|&(user, client_id)| {
            let mut stream = connect(port, user, client_id).unwrap();
            subscribe_all(&mut stream);
            (user, client_id, stream)
        })
        .collect();
    for (i, topic) in TOPICS.iter().enumerate() {
        assert!(publish(&mut admin, topic, i as u16 + 1), "admin may write everything");
    }
    for (user, client_id, stream) in &mut subscribers {
        let got = received(stream);
        let expected: Vec<String> =
            TOPICS.iter().filter(|t| file.check(*user, client_id, t, Access::Read)).map(|t| t.to_string()).collect();
        assert_eq!(got, expected, "read by {user:?} {client_id:?}");
    }
}
