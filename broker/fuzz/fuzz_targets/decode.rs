//! cargo-fuzz target `decode`: `edgemq::protocol::decode`, the broker's
//! framing and decoding of every packet a client can send, in every state
//! (before CONNECT, or after it at MQTT 3.1, 3.1.1 or 5.0) and under any
//! Maximum Packet Size.
//!
//! Input: `[mode, n, chunk_1 .. chunk_n, stream...]`.
//! - `mode` bits 0-1: the decoder's starting state (0: before CONNECT,
//!   1: MQTT 3.1, 2: 3.1.1, 3: 5.0); bits 2-4: the maximum packet size
//!   (one of [`MAX_SIZES`]); bit 5: keep the starting version after a
//!   CONNECT instead of switching to the version it announces, as the
//!   connection driver does.
//! - `n` (mod 8) chunk sizes (each byte + 1) that the stream is cut into,
//!   cyclically, as if it arrived in reads of those sizes.
//!
//! The stream is decoded as the connection driver does (until a packet
//! is incomplete or an error, which closes the connection), once fed
//! whole and once fed chunk by chunk into the same buffer. Checked:
//! - no panic;
//! - the same packets, sizes and final error (or leftover) both ways;
//! - a packet's reported size is what it consumed, within the limit;
//!   `Incomplete` consumes nothing, and its `frame_len` is beyond what is
//!   buffered and within the limit;
//! - packets the broker also sends (PUBLISH, PUBACK, PUBREC, PUBREL,
//!   PUBCOMP) re-encode and decode back to the same packet.
#![no_main]

use bytes::BytesMut;
use edgemq::protocol::{decode, encode, DecodeError, Decoded, Packet, Version};
use libfuzzer_sys::fuzz_target;

/// Maximum packet sizes the fuzzer picks from (the configuration allows
/// 16 to 268,435,460; smaller ones probe the limit check itself).
const MAX_SIZES: [usize; 8] = [1 << 20, 2, 5, 16, 127, 130, 16_384, 268_435_460];

/// How a stream ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Waiting for more: bytes buffered, `frame_len` of the last call.
    Incomplete(usize, Option<usize>),
    Error(DecodeError),
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    packets: Vec<(Packet, usize)>,
    end: End,
}

struct Decoder {
    buf: BytesMut,
    version: Option<Version>,
    follow_connect: bool,
    max: usize,
    packets: Vec<(Packet, usize)>,
    error: Option<DecodeError>,
    last_frame_len: Option<usize>,
}

impl Decoder {
    fn new(version: Option<Version>, follow_connect: bool, max: usize) -> Decoder {
        Decoder {
            buf: BytesMut::new(),
            version,
            follow_connect,
            max,
            packets: Vec::new(),
            error: None,
            last_frame_len: None,
        }
    }

    /// Appends `bytes` and decodes what is whole, like the driver's
    /// `on_readable`.
    fn feed(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            let before = self.buf.len();
            match decode(&mut self.buf, self.version, self.max) {
                Ok(Decoded::Packet(p, n)) => {
                    assert_eq!(before - self.buf.len(), n, "reported size is not what was consumed: {p:?}");
                    assert!(n >= 2 && n <= self.max, "size {n} outside 2..={}", self.max);
                    if let (None, Packet::Connect(c)) = (self.version, &p) {
                        if self.follow_connect {
                            self.version = Some(c.version);
                        }
                    }
                    if let Some(v) = self.version {
                        round_trip(&p, v, self.max);
                    }
                    self.packets.push((p, n));
                }
                Ok(Decoded::Incomplete { frame_len }) => {
                    assert_eq!(self.buf.len(), before, "Incomplete consumed bytes");
                    if let Some(f) = frame_len {
                        assert!(f > before && f <= self.max, "frame_len {f} with {before} buffered, max {}", self.max);
                    }
                    self.last_frame_len = frame_len;
                    return;
                }
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            }
        }
    }

    fn finish(self) -> Outcome {
        let end = match self.error {
            Some(e) => End::Error(e),
            None => End::Incomplete(self.buf.len(), self.last_frame_len),
        };
        Outcome { packets: self.packets, end }
    }
}

/// A packet the broker also sends must survive encoding and decoding.
fn round_trip(p: &Packet, v: Version, max: usize) {
    if !matches!(p, Packet::Publish(_) | Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_))
    {
        return;
    }
    let mut out = BytesMut::new();
    if encode(p, v, &mut out).is_err() {
        return;
    }
    let len = out.len();
    match decode(&mut out, Some(v), max.max(len)) {
        Ok(Decoded::Packet(back, n)) => {
            assert_eq!(&back, p, "re-encoded packet decodes differently ({v:?})");
            assert_eq!(n, len);
        }
        other => panic!("re-encoded {p:?} ({v:?}) does not decode: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, n, rest @ ..] = data else { return };
    let n = usize::from(*n % 8).min(rest.len());
    let (chunks, stream) = rest.split_at(n);
    let version = match mode & 3 {
        0 => None,
        1 => Some(Version::V31),
        2 => Some(Version::V311),
        _ => Some(Version::V5),
    };
    let max = MAX_SIZES[usize::from((mode >> 2) & 7)];
    let follow = mode & 0x20 == 0;

    let mut whole = Decoder::new(version, follow, max);
    whole.feed(stream);
    let whole = whole.finish();

    let mut split = Decoder::new(version, follow, max);
    let mut at = 0;
    let mut i = 0;
    while at < stream.len() {
        let size = chunks.get(i % n.max(1)).map_or(1, |c| usize::from(*c) + 1);
        let end = (at + size).min(stream.len());
        split.feed(&stream[at..end]);
        at = end;
        i += 1;
    }
    let split = split.finish();
    assert_eq!(whole, split, "fed whole and in chunks {chunks:?}, the stream decodes differently");
});
