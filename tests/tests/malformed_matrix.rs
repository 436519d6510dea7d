//! The malformed-input matrix: valid CONNECT, PUBLISH (QoS 0, 1, 2),
//! SUBSCRIBE, UNSUBSCRIBE, PUBACK, PUBREC, PUBREL, PUBCOMP, PINGREQ and
//! DISCONNECT of MQTT 3.1, 3.1.1 and 5.0 (with properties), each mutated
//! at every byte: cut there (the bytes up to it, then the end of the
//! stream), cut there with the remaining length made to fit (a complete
//! packet with a short body), and each of its eight bits flipped. Every mutation goes over its own
//! connection (after a valid CONNECT, but for CONNECT's own), followed by
//! a PINGREQ and the end of the client's stream, so the broker answers
//! what it accepted and then closes.
//!
//! Checked for every connection: it is closed; the broker sent only
//! server packets, well framed; MQTT 5 errors are a DISCONNECT (or a
//! refusing CONNACK) with an error reason code, last; a 3.x connection
//! never gets a DISCONNECT. Where the standard says what a mutation is:
//! a malformed packet (a body cut inside a field, invalid fixed-header
//! flags [MQTT-2.2.2-2], QoS 3 [MQTT-3.3.1-4], a SUBSCRIBE or UNSUBSCRIBE
//! without a filter [MQTT-3.8.3-3] [MQTT-3.10.3-2]) closes the
//! connection before the PINGREQ is answered, with reason 0x81
//! (Malformed Packet) or 0x82 (Protocol Error) in MQTT 5
//! ([MQTT-4.13.1-1]); a packet that stays valid (a PUBLISH whose payload
//! was cut, an MQTT 5 acknowledgement without its reason code or
//! properties) is processed and the PINGREQ answered. Throughout, a
//! bystander subscriber receives a QoS 0/1 stream from another client,
//! every message in order, and no thread of the broker panics.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;

/// What the standard says a mutated packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Still a valid packet: processed, and the PINGREQ after it answered.
    Valid,
    /// Malformed or a protocol error: the connection is closed first.
    Malformed,
    /// Whatever it became: only the general rules apply.
    Any,
}

struct Case {
    what: String,
    /// A mutation of CONNECT (sent first), not of a packet after it.
    connect: bool,
    bytes: Vec<u8>,
    /// Followed by a PINGREQ (not after a cut stream).
    probe: bool,
    expect: Expect,
}

/// A valid packet, and how a cut of its body to `n` bytes reads.
struct Valid {
    name: &'static str,
    bytes: Vec<u8>,
    cut: fn(&Valid, usize) -> Expect,
    /// Its fixed-header flags are fixed (all but PUBLISH).
    fixed_flags: bool,
    /// Body bytes up to which a cut is malformed (PUBLISH).
    required: usize,
}

/// The body of a whole packet (after the remaining length).
fn body(p: &[u8]) -> &[u8] {
    let mut i = 1;
    while p[i] & 0x80 != 0 {
        i += 1;
    }
    &p[i + 1..]
}

fn all_malformed(_: &Valid, _: usize) -> Expect {
    Expect::Malformed
}

fn publish_cut(v: &Valid, n: usize) -> Expect {
    if n < v.required {
        Expect::Malformed
    } else {
        Expect::Valid
    }
}

/// MQTT 5 acknowledgement: the reason code and the properties may be
/// left out (a body of 2 or 3 bytes); a cut inside them is malformed.
fn ack_cut_v5(_: &Valid, n: usize) -> Expect {
    if n == 2 || n == 3 {
        Expect::Valid
    } else {
        Expect::Malformed
    }
}

/// MQTT 5 DISCONNECT: without a body or with its reason code only it is a
/// normal disconnect (the broker closes); a cut in the properties is
/// malformed.
fn disconnect_cut_v5(_: &Valid, n: usize) -> Expect {
    if n < 2 {
        Expect::Any
    } else {
        Expect::Malformed
    }
}

fn v5_ack(kind: u8, pid: u16) -> Vec<u8> {
    let first = if kind == PUBREL { 0x62 } else { kind << 4 };
    let mut b = pid.to_be_bytes().to_vec();
    let props = [0x1F, 0, 2, b'o', b'k'];
    b.push(0);
    b.extend(varint(props.len()));
    b.extend(props);
    packet(first, &b)
}

fn valid_packets(proto: Proto, id: &str) -> Vec<Valid> {
    let v5 = proto == Proto::V5;
    let mut out = Vec::new();
    let mut connect = ConnectOpts::new(proto, id).username("u").password(b"p");
    if v5 {
        connect = connect.props([session_expiry(0), user_prop("k", "v")].concat());
    }
    let plain =
        |name, bytes, cut: fn(&Valid, usize) -> Expect| Valid { name, bytes, cut, fixed_flags: true, required: 0 };
    out.push(plain("CONNECT", connect_packet(&connect), all_malformed));
    let props: Vec<u8> = if v5 { vec![0x01, 0x00, 0x02, 0, 0, 0, 60] } else { Vec::new() };
    for (qos, pid) in [(0u8, 0u16), (1, 1), (2, 2)] {
        let bytes = publish_packet_props(v5, "m/t", qos, false, false, pid, &props, b"hello");
        let required = 2 + 3 + if qos > 0 { 2 } else { 0 } + if v5 { 1 + props.len() } else { 0 };
        let name = ["PUBLISH0", "PUBLISH1", "PUBLISH2"][qos as usize];
        out.push(Valid { name, bytes, cut: publish_cut, fixed_flags: false, required });
    }
    let sub_props: &[u8] = if v5 { &[0x0B, 5] } else { &[] };
    out.push(plain("SUBSCRIBE", subscribe_packet_props(v5, 3, sub_props, &[("m/+", 1)]), all_malformed));
    out.push(plain("UNSUBSCRIBE", unsubscribe_packet(v5, 4, &["m/+"]), all_malformed));
    for (name, kind) in [("PUBACK", PUBACK), ("PUBREC", PUBREC), ("PUBREL", PUBREL), ("PUBCOMP", PUBCOMP)] {
        if v5 {
            out.push(plain(name, v5_ack(kind, 7), ack_cut_v5));
        } else {
            out.push(plain(name, ack_packet(kind, 7), all_malformed));
        }
    }
    out.push(plain("PINGREQ", pingreq_packet(), all_malformed));
    if v5 {
        let props = [0x1F, 0, 3, b'b', b'y', b'e'];
        let mut b = vec![0x00];
        b.extend(varint(props.len()));
        b.extend(props);
        out.push(plain("DISCONNECT", packet(0xE0, &b), disconnect_cut_v5));
    } else {
        out.push(plain("DISCONNECT", disconnect_packet(), all_malformed));
    }
    out
}

/// Every mutation of every valid packet of `proto`.
fn cases(proto: Proto, prefix: &str) -> Vec<Case> {
    let mut out = Vec::new();
    for v in valid_packets(proto, &format!("{prefix}0000")) {
        let connect = v.name == "CONNECT";
        let b = body(&v.bytes);
        let header = v.bytes.len() - b.len();
        for k in 1..v.bytes.len() {
            let what = format!("{proto:?} {} cut to {k} of {} bytes", v.name, v.bytes.len());
            out.push(Case { what, connect, bytes: v.bytes[..k].to_vec(), probe: false, expect: Expect::Any });
        }
        for n in 0..b.len() {
            let what = format!("{proto:?} {} body cut to {n} of {} bytes", v.name, b.len());
            let bytes = packet(v.bytes[0], &b[..n]);
            out.push(Case { what, connect, bytes, probe: true, expect: (v.cut)(&v, n) });
        }
        for i in 0..v.bytes.len() {
            for bit in 0..8 {
                let mut bytes = v.bytes.clone();
                bytes[i] ^= 1 << bit;
                let expect = if i == 0 && bit < 4 && proto != Proto::V31 && v.fixed_flags {
                    // [MQTT-2.2.2-2]: invalid fixed-header flags.
                    Expect::Malformed
                } else if i == 0 && !v.fixed_flags && bytes[0] & 0x06 == 0x06 {
                    // [MQTT-3.3.1-4]: QoS 3.
                    Expect::Malformed
                } else {
                    Expect::Any
                };
                let what = format!("{proto:?} {} bit {bit} of byte {i} flipped (header {header} bytes)", v.name);
                out.push(Case { what, connect, bytes, probe: true, expect });
            }
        }
    }
    // A client id of its own per connection (none may take another's over):
    // the placeholder, where no mutation touched it, becomes the case number.
    let placeholder = format!("{prefix}0000");
    for (n, c) in out.iter_mut().enumerate().filter(|(_, c)| c.connect) {
        let id = format!("{prefix}{n:04x}");
        if let Some(at) = c.bytes.windows(5).position(|w| w == placeholder.as_bytes()) {
            c.bytes[at..at + 5].copy_from_slice(id.as_bytes());
        }
    }
    out
}

/// Runs one case; returns an error text if a rule is broken.
async fn run(addr: std::net::SocketAddr, proto: Proto, prefix: &str, n: usize, case: &Case) -> Result<String, String> {
    let v5 = proto == Proto::V5;
    let is_connect = case.connect;
    let mut c = Raw::open(addr).await;
    c.v5 = v5;
    if !is_connect {
        c.send(&connect_packet(&ConnectOpts::new(proto, &format!("{prefix}c{n:x}")))).await;
        let ack = c.expect("CONNACK").await;
        if ack.kind != CONNACK || ack.connack().1 != 0 {
            return Err(format!("valid CONNECT refused: {ack:?}"));
        }
    }
    let mut bytes = case.bytes.clone();
    if case.probe {
        bytes.extend(pingreq_packet());
    }
    c.send(&bytes).await;
    let _ = c.stream.shutdown().await;
    let mut seen = Vec::new();
    loop {
        match c.recv_within(TIMEOUT).await {
            Recv::Packet(p) => seen.push(p),
            Recv::Closed => break,
            Recv::TimedOut => return Err(format!("not closed after the end of the stream; got {seen:?}")),
        }
    }
    let kinds: Vec<u8> = seen.iter().map(|p| p.kind).collect();
    let server = [CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, PINGRESP, DISCONNECT, AUTH];
    if let Some(p) = seen.iter().find(|p| !server.contains(&p.kind) || (!v5 && [DISCONNECT, AUTH].contains(&p.kind))) {
        return Err(format!("a packet a server does not send: {p:?}"));
    }
    let connack_at = kinds.iter().position(|k| *k == CONNACK);
    if connack_at.is_some_and(|i| !is_connect || i != 0) || kinds.iter().filter(|k| **k == CONNACK).count() > 1 {
        return Err(format!("CONNACK out of place: {seen:?}"));
    }
    // An error ends the connection: a refusing CONNACK or a DISCONNECT, last.
    let refused = is_connect && seen.first().is_some_and(|p| p.kind == CONNACK && p.connack().1 != 0);
    let accepted = is_connect && seen.first().is_some_and(|p| p.kind == CONNACK && p.connack().1 == 0);
    if refused && seen.len() > 1 {
        return Err(format!("packets after a refusing CONNACK: {seen:?}"));
    }
    if let Some(i) = kinds.iter().position(|k| *k == DISCONNECT) {
        if i + 1 != seen.len() || seen[i].reason() < 0x80 {
            return Err(format!("a DISCONNECT not last or without an error reason: {seen:?}"));
        }
    }
    let pong = kinds.contains(&PINGRESP);
    match case.expect {
        Expect::Any => {}
        Expect::Valid => {
            if !pong || (is_connect && !accepted) {
                return Err(format!("a valid packet, but the PINGREQ after it was not answered: {seen:?}"));
            }
        }
        Expect::Malformed => {
            if pong || accepted {
                return Err(format!("malformed, but the connection went on: {seen:?}"));
            }
            let reason = seen.last().filter(|p| p.kind == DISCONNECT || p.kind == CONNACK).map(reason_code);
            let ok: &[u8] = if is_connect && v5 {
                &[0x81, 0x82, 0x84]
            } else if is_connect {
                &[0x01]
            } else {
                &[0x81, 0x82]
            };
            if let Some(r) = reason.filter(|r| !ok.contains(r)) {
                return Err(format!(
                    "malformed, but closed with reason {r:#04x} (expected one of {ok:02x?}): {seen:?}"
                ));
            }
        }
    }
    // What it came to, for the figures.
    Ok(match seen.last() {
        _ if pong => "answered".to_owned(),
        Some(p) if p.kind == DISCONNECT => format!("DISCONNECT {:#04x}", p.reason()),
        Some(p) if p.kind == CONNACK => format!("CONNACK {:#04x}", p.connack().1),
        _ => "closed".to_owned(),
    })
}

/// DISCONNECT's reason code, or CONNACK's return code.
fn reason_code(p: &Pkt) -> u8 {
    if p.kind == CONNACK {
        p.connack().1
    } else {
        p.reason()
    }
}

/// Panics anywhere in the process (the broker runs in it), recorded.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_byte_truncated_and_flipped_closes_only_that_connection() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current().name().unwrap_or("?").to_owned();
        PANICS.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{thread}: {info}"));
        default(info);
    }));
    let b = TestBroker::start().await;
    let started = std::time::Instant::now();

    // The bystander: a QoS 0/1 stream from one client to another.
    let mut sub = Raw::v311(b.addr, "matrix-sub").await;
    assert_eq!(sub.subscribe(1, &[("matrix/stream", 1)]).await, vec![1]);
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (addr, stop) = (b.addr, stop.clone());
        tokio::spawn(async move {
            let mut p = Raw::v311(addr, "matrix-pub").await;
            let mut n = 0u16;
            while !stop.load(Ordering::Relaxed) {
                let qos = (n % 2) as u8;
                p.publish("matrix/stream", qos, false, n.max(1), format!("m{n}").as_bytes()).await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            p.publish("matrix/stream", 1, false, 1, b"end").await;
            n
        })
    };
    let receiver = tokio::spawn(async move {
        let mut got = Vec::new();
        loop {
            let m = within("the bystander's stream", sub.receive_acked()).await;
            if m.payload == b"end" {
                return got;
            }
            got.push(String::from_utf8_lossy(&m.payload).into_owned());
        }
    });

    let mut tasks = Vec::new();
    // Prefixes of client ids three bits apart: no single flip of two
    // versions' ids makes them equal.
    for (proto, prefix) in [(Proto::V31, "A"), (Proto::V311, "N"), (Proto::V5, "x")] {
        let addr = b.addr;
        tasks.push(tokio::spawn(async move {
            let cases = cases(proto, prefix);
            let mut failures = Vec::new();
            let mut counts = [0usize; 3];
            let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
            for (n, case) in cases.iter().enumerate() {
                counts[case.expect as usize] += 1;
                match run(addr, proto, prefix, n, case).await {
                    Ok(o) => *outcomes.entry(o).or_default() += 1,
                    Err(e) => failures.push(format!("{}: {e}", case.what)),
                }
            }
            (proto, cases.len(), counts, outcomes, failures)
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        let (proto, n, [valid, malformed, any], outcomes, f) = t.await.expect("matrix task");
        eprintln!(
            "{proto:?}: {n} connections ({valid} valid, {malformed} malformed, {any} either): {outcomes:?}; {} failures",
            f.len()
        );
        failures.extend(f);
    }
    stop.store(true, Ordering::Relaxed);
    let sent = within("the publisher", publisher).await.expect("publisher");
    let got = within("the bystander", receiver).await.expect("receiver");
    let want: Vec<String> = (0..sent).map(|n| format!("m{n}")).collect();
    assert!(got == want, "the bystander's stream: {} of {sent} messages, in order: {}", got.len(), got == want);
    eprintln!("bystander: {sent} messages in order; {:?} in all", started.elapsed());
    b.shutdown().await;
    let panics = PANICS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(panics.is_empty(), "panics: {panics:#?}");
    assert!(failures.is_empty(), "{} cases broke a rule:\n{}", failures.len(), failures.join("\n"));
}
