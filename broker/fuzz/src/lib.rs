//! Helpers shared by the broker's fuzz targets and by the seed generator
//! (`examples/seeds.rs`): a writer of the packets an MQTT client sends
//! ([`wire`]), in the three protocol versions the broker speaks, and the
//! write-ahead log's frame format ([`segment`]).
//!
//! The writer is deliberately independent of the broker's own code (it
//! follows the MQTT 3.1, 3.1.1 and 5.0 texts), so the targets check the
//! decoder against a second reading of the standard instead of itself.

pub mod wire {
    //! Client-to-server MQTT packets, written byte by byte.

    /// Protocol version of a packet.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Ver {
        /// MQTT 3.1 (`MQIsdp`, level 3).
        V31,
        /// MQTT 3.1.1 (`MQTT`, level 4).
        V311,
        /// MQTT 5.0 (`MQTT`, level 5).
        V5,
    }

    impl Ver {
        pub fn is_v5(self) -> bool {
            self == Ver::V5
        }
    }

    /// One MQTT 5 property: identifier and value.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Prop {
        Byte(u8, u8),
        U16(u8, u16),
        U32(u8, u32),
        VarInt(u8, u32),
        Str(u8, String),
        Bin(u8, Vec<u8>),
        /// User Property (38).
        Pair(String, String),
    }

    /// A byte buffer with the MQTT field encodings.
    #[derive(Debug, Default)]
    pub struct Buf(pub Vec<u8>);

    impl Buf {
        pub fn u8(&mut self, v: u8) -> &mut Self {
            self.0.push(v);
            self
        }
        pub fn u16(&mut self, v: u16) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        pub fn u32(&mut self, v: u32) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        /// A two-byte length and the bytes (truncated to 65,535).
        pub fn bin(&mut self, b: &[u8]) -> &mut Self {
            let b = &b[..b.len().min(usize::from(u16::MAX))];
            self.u16(b.len() as u16);
            self.0.extend_from_slice(b);
            self
        }
        pub fn str(&mut self, s: &str) -> &mut Self {
            self.bin(s.as_bytes())
        }
        /// A variable byte integer (values above 268,435,455 are clamped).
        pub fn varint(&mut self, v: u32) -> &mut Self {
            let mut v = v.min(268_435_455);
            loop {
                let mut b = (v % 128) as u8;
                v /= 128;
                if v > 0 {
                    b |= 0x80;
                }
                self.0.push(b);
                if v == 0 {
                    return self;
                }
            }
        }
        pub fn raw(&mut self, b: &[u8]) -> &mut Self {
            self.0.extend_from_slice(b);
            self
        }
        /// A property section: its length, then each property.
        pub fn props(&mut self, props: &[Prop]) -> &mut Self {
            let mut p = Buf::default();
            for prop in props {
                match prop {
                    Prop::Byte(id, v) => p.u8(*id).u8(*v),
                    Prop::U16(id, v) => p.u8(*id).u16(*v),
                    Prop::U32(id, v) => p.u8(*id).u32(*v),
                    Prop::VarInt(id, v) => p.u8(*id).varint(*v),
                    Prop::Str(id, v) => p.u8(*id).str(v),
                    Prop::Bin(id, v) => p.u8(*id).bin(v),
                    Prop::Pair(k, v) => p.u8(38).str(k).str(v),
                };
            }
            self.varint(p.0.len() as u32);
            self.raw(&p.0)
        }
    }

    /// A whole packet: fixed header byte, remaining length, body.
    pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
        let mut b = Buf::default();
        b.u8(first).varint(body.len() as u32).raw(body);
        b.0
    }

    /// The will of a CONNECT.
    #[derive(Debug, Clone, Default)]
    pub struct WillSpec {
        pub topic: String,
        pub payload: Vec<u8>,
        pub qos: u8,
        pub retain: bool,
        /// MQTT 5 only.
        pub props: Vec<Prop>,
    }

    /// The fields of a CONNECT.
    #[derive(Debug, Clone)]
    pub struct ConnectSpec {
        pub version: Ver,
        pub client_id: String,
        pub clean: bool,
        pub keep_alive: u16,
        pub will: Option<WillSpec>,
        pub username: Option<String>,
        pub password: Option<Vec<u8>>,
        /// MQTT 5 only.
        pub props: Vec<Prop>,
    }

    impl ConnectSpec {
        /// A plain CONNECT: clean, keep-alive 60, no will, no login.
        pub fn new(version: Ver, client_id: &str) -> ConnectSpec {
            ConnectSpec {
                version,
                client_id: client_id.into(),
                clean: true,
                keep_alive: 60,
                will: None,
                username: None,
                password: None,
                props: Vec::new(),
            }
        }
    }

    pub fn connect(c: &ConnectSpec) -> Vec<u8> {
        let mut b = Buf::default();
        match c.version {
            Ver::V31 => b.str("MQIsdp").u8(3),
            Ver::V311 => b.str("MQTT").u8(4),
            Ver::V5 => b.str("MQTT").u8(5),
        };
        let mut flags = 0u8;
        if c.clean {
            flags |= 0x02;
        }
        if let Some(w) = &c.will {
            flags |= 0x04 | (w.qos & 3) << 3 | u8::from(w.retain) << 5;
        }
        if c.password.is_some() {
            flags |= 0x40;
        }
        if c.username.is_some() {
            flags |= 0x80;
        }
        b.u8(flags).u16(c.keep_alive);
        if c.version.is_v5() {
            b.props(&c.props);
        }
        b.str(&c.client_id);
        if let Some(w) = &c.will {
            if c.version.is_v5() {
                b.props(&w.props);
            }
            b.str(&w.topic).bin(&w.payload);
        }
        if let Some(u) = &c.username {
            b.str(u);
        }
        if let Some(p) = &c.password {
            b.bin(p);
        }
        frame(0x10, &b.0)
    }

    /// The fields of a PUBLISH.
    #[derive(Debug, Clone, Default)]
    pub struct PublishSpec {
        pub dup: bool,
        pub qos: u8,
        pub retain: bool,
        pub topic: String,
        /// Written only at QoS 1 and 2.
        pub pkid: u16,
        /// MQTT 5 only.
        pub props: Vec<Prop>,
        pub payload: Vec<u8>,
    }

    pub fn publish(v: Ver, p: &PublishSpec) -> Vec<u8> {
        let mut b = Buf::default();
        b.str(&p.topic);
        if p.qos > 0 {
            b.u16(p.pkid);
        }
        if v.is_v5() {
            b.props(&p.props);
        }
        b.raw(&p.payload);
        let first = 0x30 | u8::from(p.dup) << 3 | (p.qos & 3) << 1 | u8::from(p.retain);
        frame(first, &b.0)
    }

    /// PUBACK (4), PUBREC (5), PUBREL (6) or PUBCOMP (7). In MQTT 5 the
    /// reason code is written if given, the properties if there are any.
    pub fn ack(v: Ver, ptype: u8, pkid: u16, reason: Option<u8>, props: &[Prop]) -> Vec<u8> {
        let mut b = Buf::default();
        b.u16(pkid);
        if v.is_v5() && (reason.is_some() || !props.is_empty()) {
            b.u8(reason.unwrap_or(0));
            if !props.is_empty() {
                b.props(props);
            }
        }
        let flags = if ptype == 6 { 0b0010 } else { 0 };
        frame(ptype << 4 | flags, &b.0)
    }

    /// SUBSCRIBE with (filter, options byte) pairs.
    pub fn subscribe(v: Ver, pkid: u16, props: &[Prop], filters: &[(String, u8)]) -> Vec<u8> {
        let mut b = Buf::default();
        b.u16(pkid);
        if v.is_v5() {
            b.props(props);
        }
        for (f, o) in filters {
            b.str(f).u8(*o);
        }
        frame(0x82, &b.0)
    }

    pub fn unsubscribe(v: Ver, pkid: u16, props: &[Prop], filters: &[String]) -> Vec<u8> {
        let mut b = Buf::default();
        b.u16(pkid);
        if v.is_v5() {
            b.props(props);
        }
        for f in filters {
            b.str(f);
        }
        frame(0xA2, &b.0)
    }

    pub fn pingreq() -> Vec<u8> {
        vec![0xC0, 0]
    }

    /// DISCONNECT; reason and properties are MQTT 5 only.
    pub fn disconnect(v: Ver, reason: Option<u8>, props: &[Prop]) -> Vec<u8> {
        let mut b = Buf::default();
        if v.is_v5() && (reason.is_some() || !props.is_empty()) {
            b.u8(reason.unwrap_or(0));
            if !props.is_empty() {
                b.props(props);
            }
        }
        frame(0xE0, &b.0)
    }

    /// AUTH (MQTT 5).
    pub fn auth(reason: u8, props: &[Prop]) -> Vec<u8> {
        let mut b = Buf::default();
        b.u8(reason).props(props);
        frame(0xF0, &b.0)
    }
}

pub mod segment {
    //! The write-ahead log's segment format (see
    //! `broker/src/store/segment.rs`): a 48-byte header (`"EDGEMQ\x1aL"`,
    //! format `u16 LE`, header length `u16 LE` = 48, first LSN `u64 LE`,
    //! 24 bytes of creator name, CRC-32 of the 44 bytes before it), absent
    //! in format 0; then frames `len: u32 LE | crc: u32 LE | lsn: u64 LE |
    //! payload`, where the CRC-32 covers the LSN and the payload. Segment
    //! files are named after their first LSN, zero-padded to 20 digits,
    //! with `.log`.

    /// The format the broker writes.
    pub const FORMAT: u16 = 1;

    /// Appends a segment header of `format` for a segment starting at `first`.
    pub fn push_header(out: &mut Vec<u8>, format: u16, first: u64) {
        let at = out.len();
        out.extend_from_slice(b"EDGEMQ\x1aL");
        out.extend_from_slice(&format.to_le_bytes());
        out.extend_from_slice(&48u16.to_le_bytes());
        out.extend_from_slice(&first.to_le_bytes());
        let mut by = [0u8; 24];
        by[..10].copy_from_slice(b"edgemq-fuz");
        out.extend_from_slice(&by);
        let sum = crc32fast::hash(&out[at..]);
        out.extend_from_slice(&sum.to_le_bytes());
    }

    /// Appends one framed record.
    pub fn push_frame(out: &mut Vec<u8>, lsn: u64, payload: &[u8]) {
        let mut h = crc32fast::Hasher::new();
        h.update(&lsn.to_le_bytes());
        h.update(payload);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&h.finalize().to_le_bytes());
        out.extend_from_slice(&lsn.to_le_bytes());
        out.extend_from_slice(payload);
    }

    /// The file name of a segment whose first record has LSN `first`.
    pub fn file_name(first: u64) -> String {
        format!("{first:020}.log")
    }
}
