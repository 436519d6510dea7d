//! Writes the checked-in seed corpora under `corpus/<target>/` (run from
//! `broker/fuzz`: `cargo run --example seeds`). Each seed is in its
//! target's input format (see the `//!` docs of each target):
//! - `decode`: one valid packet of every type a client sends, for each
//!   protocol version, and whole sessions from CONNECT on;
//! - `store`: a segment written by the broker's own log, and framed lists
//!   of every record type;
//! - `config`: the repository's `edgemq.toml` and a listener-table file.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use edgemq::protocol::{decode, Decoded, PublishProps, QoS, RetainHandling, SubOptions, Version};
use edgemq::store::{Log, LogConfig, Record, StoredMessage, SyncMode};
use edgemq_fuzz::wire::{self, ConnectSpec, Prop, PublishSpec, Ver, WillSpec};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
}

/// The packets of one version, named.
fn packets(v: Ver) -> Vec<(&'static str, Vec<u8>)> {
    let v5 = v.is_v5();
    let p5 = |p: Vec<Prop>| if v5 { p } else { Vec::new() };
    let mut full = ConnectSpec::new(v, "dev-1");
    full.clean = false;
    full.will = Some(WillSpec {
        topic: "dev/1/status".into(),
        payload: b"offline".to_vec(),
        qos: 1,
        retain: true,
        props: p5(vec![Prop::U32(24, 5), Prop::Byte(1, 1), Prop::Str(3, "r/1".into())]),
    });
    full.username = Some("user".into());
    full.password = Some(b"secret".to_vec());
    full.props = p5(vec![
        Prop::U32(17, 3600),
        Prop::U16(33, 10),
        Prop::U32(39, 65536),
        Prop::U16(34, 4),
        Prop::Byte(25, 1),
        Prop::Pair("k".into(), "v".into()),
    ]);
    let mut auth_connect = ConnectSpec::new(v, "dev-2");
    auth_connect.props = p5(vec![Prop::Str(21, "fuzz".into()), Prop::Bin(22, vec![1, 2])]);
    let publish = |qos: u8, props: Vec<Prop>| {
        wire::publish(
            v,
            &PublishSpec {
                qos,
                retain: qos == 1,
                topic: "a/b".into(),
                pkid: 7,
                props: p5(props),
                payload: b"hello".to_vec(),
                ..PublishSpec::default()
            },
        )
    };
    let mut out = vec![
        ("connect", wire::connect(&ConnectSpec::new(v, "c1"))),
        ("connect-full", wire::connect(&full)),
        ("publish-qos0", publish(0, vec![])),
        ("publish-qos1", publish(1, vec![Prop::U32(2, 60), Prop::Str(8, "reply".into()), Prop::Bin(9, vec![9])])),
        ("publish-qos2", publish(2, vec![Prop::U16(35, 1), Prop::Pair("a".into(), "b".into())])),
        ("puback", wire::ack(v, 4, 7, None, &[])),
        ("pubrec", wire::ack(v, 5, 7, None, &[])),
        ("pubrel", wire::ack(v, 6, 7, None, &[])),
        ("pubcomp", wire::ack(v, 7, 7, None, &[])),
        (
            "subscribe",
            wire::subscribe(
                v,
                3,
                &p5(vec![Prop::VarInt(11, 5)]),
                &[("a/#".into(), 1), ("$share/g/t".into(), if v5 { 0x2E } else { 2 })],
            ),
        ),
        ("unsubscribe", wire::unsubscribe(v, 4, &[], &["a/#".into(), "t".into()])),
        ("pingreq", wire::pingreq()),
        ("disconnect", wire::disconnect(v, None, &[])),
    ];
    if v5 {
        out.extend([
            ("connect-auth", wire::connect(&auth_connect)),
            ("puback-reason", wire::ack(v, 4, 7, Some(0x10), &[Prop::Str(31, "no one".into())])),
            ("disconnect-reason", wire::disconnect(v, Some(4), &[Prop::U32(17, 0), Prop::Str(31, "bye".into())])),
            ("auth", wire::auth(0x18, &[Prop::Str(21, "fuzz".into()), Prop::Bin(22, vec![0])])),
        ]);
    }
    out
}

/// Checks that a seed is one whole, valid packet for the broker.
fn check_packet(bytes: &[u8], version: Option<Version>, what: &str) {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, version, 1 << 20) {
        Ok(Decoded::Packet(_, n)) if n == bytes.len() => {}
        other => panic!("seed {what} ({version:?}) does not decode: {other:?}"),
    }
}

fn decode_seeds(dir: &Path) {
    for (v, name, mode) in [(Ver::V31, "v31", 1u8), (Ver::V311, "v311", 2), (Ver::V5, "v5", 3)] {
        let version = [Version::V31, Version::V311, Version::V5][usize::from(mode - 1)];
        let all = packets(v);
        let mut session = Vec::new();
        for (what, bytes) in &all {
            let first = if what.starts_with("connect") { None } else { Some(version) };
            check_packet(bytes, first, what);
            if what.starts_with("connect") {
                // Before CONNECT: the decoder's first state.
                write(dir, &format!("{name}-{what}"), &[[0, 0].as_slice(), bytes].concat());
            } else {
                write(dir, &format!("{name}-{what}"), &[[mode, 0].as_slice(), bytes].concat());
                session.extend_from_slice(bytes);
            }
        }
        // A whole session from CONNECT on, fed in reads of 3 and 17 bytes.
        let connect = &all[0].1;
        write(dir, &format!("{name}-session"), &[[0, 2, 2, 16].as_slice(), connect, &session].concat());
    }
}

fn msg(props: bool) -> StoredMessage {
    StoredMessage {
        topic: "a/b".into(),
        payload: Bytes::from_static(b"hello"),
        qos: QoS::AtLeastOnce,
        retain: false,
        props: props.then(|| {
            Box::new(PublishProps {
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(30),
                response_topic: Some("r".into()),
                correlation_data: Some(Bytes::from_static(b"c")),
                user_properties: vec![("k".into(), "v".into())],
                content_type: Some("text/plain".into()),
                ..PublishProps::default()
            })
        }),
        origin: 1,
        received_ms: 1_700_000_000_000,
    }
}

/// A small state's worth of records of every type.
fn records() -> Vec<Record> {
    let options = SubOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: false,
        retain_handling: RetainHandling::Never,
    };
    let enq = |seq, mid| Record::Enq {
        key: 1,
        seq,
        mid,
        qos: QoS::AtLeastOnce,
        retain: false,
        sub_ids: vec![3],
        shared: (seq == 2).then(|| "$share/g/a/#".into()),
    };
    vec![
        Record::Session { key: 1, client_id: "dev-1".into(), expiry_secs: Some(3600), offline_since_ms: 0, user: None },
        Record::Sub { key: 1, filter: "a/#".into(), options, id: Some(3) },
        Record::Retain(msg(true)),
        Record::Msg { mid: 1, msg: msg(false) },
        enq(1, 1),
        Record::Msg { mid: 2, msg: msg(true) },
        Record::Routing { key: 1, pkid: 6, mid: 2, crc: 7, got: vec![] },
        enq(2, 2),
        Record::Pop { key: 1, seq: 1, pkid: 1 },
        Record::Rel { key: 1, pkid: 1 },
        Record::In2 { key: 1, pkid: 5 },
        Record::Session {
            key: 2,
            client_id: "dev-2".into(),
            expiry_secs: None,
            offline_since_ms: 5,
            user: Some("alice".into()),
        },
        Record::Unsub { key: 1, filter: "b".into() },
        Record::SnapshotBegin { id: 1 },
        Record::Snap(Box::new(Record::Session {
            key: 1,
            client_id: "dev-1".into(),
            expiry_secs: Some(3600),
            offline_since_ms: 0,
            user: None,
        })),
        Record::Snap(Box::new(Record::Routing { key: 1, pkid: 6, mid: 2, crc: 7, got: vec![(2, None)] })),
        Record::Snap(Box::new(Record::Msg { mid: 2, msg: msg(true) })),
        Record::Snap(Box::new(enq(2, 2))),
        Record::SnapshotEnd { id: 1 },
        Record::Ack { key: 1, pkid: 1 },
        Record::In2Done { key: 1, pkid: 5 },
        Record::SessionEnd { key: 2 },
    ]
}

fn store_seeds(dir: &Path) {
    // A segment as the broker writes it.
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let fs = std::sync::Arc::new(edgemq::store::fs::RealFs);
    let cfg = LogConfig { dir: tmp.path().to_owned(), segment_bytes: 1 << 20, sync: SyncMode::Never, fs };
    let (log, _) = Log::open(cfg, &mut |_, _| true).unwrap_or_else(|e| panic!("log: {e}"));
    for r in records() {
        log.append_with(|out| r.encode_into(out));
    }
    log.close();
    let seg = tmp.path().join(edgemq_fuzz::segment::file_name(1));
    let bytes = std::fs::read(&seg).unwrap_or_else(|e| panic!("{}: {e}", seg.display()));
    write(dir, "segment", &[[0u8].as_slice(), &bytes].concat());
    // The same records in the framed format, whole and split in two
    // segments, and with a torn tail.
    let mut framed = vec![1u8];
    for (i, r) in records().iter().enumerate() {
        let p = r.encode();
        assert!(p.len() < 256, "seed record too long for the framed format");
        framed.extend_from_slice(&[if i == 10 { 4 } else { 0 }, p.len() as u8]);
        framed.extend_from_slice(&p);
    }
    write(dir, "framed", &framed);
    let mut torn = framed.clone();
    torn.extend_from_slice(&[0x10, 0, 30, 0, 0, 0]);
    write(dir, "framed-torn", &torn);
    // With segment headers (mode bit 4), and with a bad checksum in the
    // middle that recovery must resynchronise past.
    let mut headers = framed.clone();
    headers[0] = 0x11;
    write(dir, "framed-headers", &headers);
    let mut damaged = headers.clone();
    let mut at = 1;
    for _ in 0..5 {
        at += 2 + usize::from(damaged[at + 1]);
    }
    // The 6th record's `ctl`: a wrong checksum.
    damaged[at] |= 1;
    write(dir, "framed-headers-damaged", &damaged);
    // A single record of each type, for the decoders alone.
    for (i, r) in records().iter().enumerate() {
        write(dir, &format!("record-{i:02}"), &[[2u8].as_slice(), &r.encode()].concat());
    }
}

fn config_seeds(dir: &Path, repo: &Path) {
    let example = std::fs::read(repo.join("edgemq.toml")).unwrap_or_else(|e| panic!("edgemq.toml: {e}"));
    write(dir, "edgemq-toml", &[[0u8].as_slice(), &example].concat());
    let listeners = "port = 1999\nmax_packet_size = 4096\n\n[[listener]]\nbind = \"0.0.0.0\"\nmax_connections = 100\n\
                     max_packet_size = 65536\nmax_keepalive = 600\nallow_anonymous = false\n\n[[listener]]\n\
                     bind = \"[::1]:2000\"\nprotocol = \"tcp\"\n";
    write(dir, "listeners", &[[0u8].as_slice(), listeners.as_bytes()].concat());
}

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = here.join("corpus");
    decode_seeds(&corpus.join("decode"));
    store_seeds(&corpus.join("store"));
    config_seeds(&corpus.join("config"), &here.join("../.."));
}
