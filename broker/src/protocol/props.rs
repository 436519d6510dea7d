//! Validation of MQTT 5 property sections before `mqttbytes` reads them.
//!
//! `mqttbytes` 0.6 lets a property run past the section's declared length,
//! accepts duplicates of single-valued properties and accepts the forbidden
//! value 0 for Topic Alias, Receive Maximum, Subscription Identifier and
//! Maximum Packet Size. This walker checks every property of a section
//! against the rules of the MQTT 5.0 standard (section 2.2.2) and tells the
//! caller where the section ends.

use super::topic::valid_string;
use super::DecodeError;

/// Which packet a property section belongs to: decides which ids are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Connect,
    Will,
    Publish,
    Ack,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Auth,
}

enum Kind {
    Byte,
    U16,
    U32,
    VarInt,
    Str,
    Bin,
    Pair,
}

fn kind(id: u8) -> Option<Kind> {
    Some(match id {
        1 | 23 | 25 | 36 | 37 | 40 | 41 | 42 => Kind::Byte,
        19 | 33 | 34 | 35 => Kind::U16,
        2 | 17 | 24 | 39 => Kind::U32,
        11 => Kind::VarInt,
        3 | 8 | 18 | 21 | 26 | 28 | 31 => Kind::Str,
        9 | 22 => Kind::Bin,
        38 => Kind::Pair,
        _ => return None,
    })
}

fn allowed(section: Section, id: u8) -> bool {
    match section {
        Section::Connect => matches!(id, 17 | 21 | 22 | 23 | 25 | 33 | 34 | 38 | 39),
        Section::Will => matches!(id, 1 | 2 | 3 | 8 | 9 | 24 | 38),
        Section::Publish => matches!(id, 1 | 2 | 3 | 8 | 9 | 11 | 35 | 38),
        Section::Ack => matches!(id, 31 | 38),
        Section::Subscribe => matches!(id, 11 | 38),
        Section::Unsubscribe => matches!(id, 38),
        Section::Disconnect => matches!(id, 17 | 28 | 31 | 38),
        Section::Auth => matches!(id, 21 | 22 | 31 | 38),
    }
}

/// Reads a variable byte integer at `buf[0..]`; returns (value, bytes used).
/// `Ok(None)` means the buffer ends inside the integer.
pub(crate) fn read_varint(buf: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value: u32 = 0;
    for (i, byte) in buf.iter().enumerate().take(4) {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            // [MQTT-1.5.5-1]: the encoding must use the minimum number of bytes.
            if i > 0 && *byte == 0 {
                return Err(DecodeError::Malformed("non-minimal variable byte integer"));
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(DecodeError::Malformed("variable byte integer longer than 4 bytes"))
    } else {
        Ok(None)
    }
}

fn be_u16(buf: &[u8], at: usize) -> Result<u16, DecodeError> {
    match buf.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(DecodeError::Malformed("property runs past its section")),
    }
}

/// Validates the property section that starts at `buf[0]` (its length
/// prefix). Returns the total size of the section, prefix included.
pub(crate) fn validate(buf: &[u8], section: Section) -> Result<usize, DecodeError> {
    let (len, prefix) = read_varint(buf)?.ok_or(DecodeError::Malformed("truncated property length"))?;
    let end = prefix + len as usize;
    let body = buf.get(prefix..end).ok_or(DecodeError::Malformed("property length exceeds the packet"))?;
    let mut seen: u64 = 0;
    let mut at = 0;
    while at < body.len() {
        let id = body[at];
        at += 1;
        let kind = kind(id).ok_or(DecodeError::Malformed("unknown property identifier"))?;
        if !allowed(section, id) {
            return Err(DecodeError::Protocol("property not allowed in this packet"));
        }
        let repeatable = id == 38 || (id == 11 && section == Section::Publish);
        if !repeatable {
            let bit = 1u64 << id;
            if seen & bit != 0 {
                return Err(DecodeError::Protocol("duplicate property"));
            }
            seen |= bit;
        }
        let size = match kind {
            Kind::Byte => {
                let v = *body.get(at).ok_or(DecodeError::Malformed("property runs past its section"))?;
                // Payload Format Indicator, Request Problem/Response Information: 0 or 1.
                if matches!(id, 1 | 23 | 25) && v > 1 {
                    return Err(DecodeError::Protocol("property value must be 0 or 1"));
                }
                1
            }
            Kind::U16 => {
                let v = be_u16(body, at)?;
                // [MQTT-3.3.2-8] Topic Alias 0 is not permitted (0x94).
                if id == 35 && v == 0 {
                    return Err(DecodeError::TopicAliasZero);
                }
                // Receive Maximum must not be 0.
                if id == 33 && v == 0 {
                    return Err(DecodeError::Protocol("property value must not be 0"));
                }
                2
            }
            Kind::U32 => {
                let b = body.get(at..at + 4).ok_or(DecodeError::Malformed("property runs past its section"))?;
                // Maximum Packet Size must not be 0.
                if id == 39 && b == [0, 0, 0, 0] {
                    return Err(DecodeError::Protocol("maximum packet size must not be 0"));
                }
                4
            }
            Kind::VarInt => {
                let (v, n) =
                    read_varint(&body[at..])?.ok_or(DecodeError::Malformed("property runs past its section"))?;
                if v == 0 {
                    return Err(DecodeError::Protocol("subscription identifier must not be 0"));
                }
                n
            }
            Kind::Str | Kind::Bin => 2 + usize::from(be_u16(body, at)?),
            Kind::Pair => {
                let first = 2 + usize::from(be_u16(body, at)?);
                first + 2 + usize::from(be_u16(body, at + first)?)
            }
        };
        if at + size > body.len() {
            return Err(DecodeError::Malformed("property runs past its section"));
        }
        let strings_ok = match kind {
            Kind::Str => valid_string(&body[at + 2..at + size]),
            Kind::Pair => {
                let first = 2 + usize::from(be_u16(body, at)?);
                valid_string(&body[at + 2..at + first]) && valid_string(&body[at + first + 2..at + size])
            }
            _ => true,
        };
        if !strings_ok {
            // [MQTT-1.5.4-1], [MQTT-1.5.4-2]
            return Err(DecodeError::Malformed("property string is not valid UTF-8 or contains U+0000"));
        }
        at += size;
    }
    Ok(end)
}

/// The entries of a section that [`validate`] accepted: (id, value bytes).
/// String and binary values are given without their length prefix; a user
/// property is given whole (both prefixed strings).
/// One property: its identifier and value bytes.
pub(crate) type Entry<'a> = (u8, &'a [u8]);

pub(crate) fn entries(section: &[u8]) -> Vec<Entry<'_>> {
    let mut out = Vec::new();
    let Ok(Some((len, prefix))) = read_varint(section) else {
        return out;
    };
    let body = section.get(prefix..prefix + len as usize).unwrap_or(&[]);
    let mut at = 0;
    while at < body.len() {
        let id = body[at];
        at += 1;
        let (skip, size) = match kind(id) {
            Some(Kind::Byte) => (0, 1),
            Some(Kind::U16) => (0, 2),
            Some(Kind::U32) => (0, 4),
            Some(Kind::VarInt) => match read_varint(&body[at..]) {
                Ok(Some((_, n))) => (0, n),
                _ => return out,
            },
            Some(Kind::Str | Kind::Bin) => (2, usize::from(be_u16(body, at).unwrap_or(0))),
            Some(Kind::Pair) => {
                let first = 2 + usize::from(be_u16(body, at).unwrap_or(0));
                (0, first + 2 + usize::from(be_u16(body, at + first).unwrap_or(0)))
            }
            None => return out,
        };
        let Some(value) = body.get(at + skip..at + skip + size) else {
            return out;
        };
        out.push((id, value));
        at += skip + size;
    }
    out
}

/// Splits a user-property value given by [`entries`] into its two strings.
pub(crate) fn user_property(value: &[u8]) -> Option<(String, String)> {
    let n = usize::from(u16::from_be_bytes([*value.first()?, *value.get(1)?]));
    let name = std::str::from_utf8(value.get(2..2 + n)?).ok()?;
    let v = std::str::from_utf8(value.get(4 + n..)?).ok()?;
    Some((name.to_owned(), v.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_empty_and_well_formed_sections() {
        assert_eq!(validate(&[0], Section::Publish), Ok(1));
        // Message Expiry Interval 10, then a user property ("a", "b").
        let sec = [12, 2, 0, 0, 0, 10, 38, 0, 1, b'a', 0, 1, b'b'];
        assert_eq!(validate(&sec, Section::Publish), Ok(13));
    }

    #[test]
    fn rejects_property_running_past_the_section() {
        // Declared length 3 but a u32 property needs 5 bytes.
        assert!(matches!(validate(&[3, 2, 0, 0, 0, 10], Section::Publish), Err(DecodeError::Malformed(_))));
        // Declared length larger than the buffer.
        assert!(matches!(validate(&[9, 1, 0], Section::Publish), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn rejects_duplicates_but_allows_repeated_user_properties() {
        // [MQTT-3.3.2-?] / 2.2.2.2: a single-valued property twice is a protocol error.
        assert_eq!(validate(&[4, 1, 0, 1, 1], Section::Publish), Err(DecodeError::Protocol("duplicate property")));
        let two_users = [10, 38, 0, 1, b'a', 0, 0, 38, 0, 0, 0, 0];
        assert!(validate(&two_users[..11], Section::Publish).is_err());
        let two_users = [13, 38, 0, 1, b'a', 0, 0, 38, 0, 1, b'a', 0, 1, b'b'];
        assert_eq!(validate(&two_users, Section::Publish), Ok(14));
    }

    #[test]
    fn rejects_zero_values() {
        // [MQTT-3.3.2-8] Topic Alias 0 is not permitted.
        assert!(validate(&[3, 35, 0, 0], Section::Publish).is_err());
        // [MQTT-3.1.2-?] Receive Maximum 0 is a protocol error.
        assert!(validate(&[3, 33, 0, 0], Section::Connect).is_err());
        // Subscription Identifier 0 is a protocol error.
        assert!(validate(&[2, 11, 0], Section::Subscribe).is_err());
        assert!(validate(&[5, 39, 0, 0, 0, 0], Section::Connect).is_err());
    }

    #[test]
    fn rejects_properties_of_other_packets() {
        // Session Expiry Interval in a PUBLISH.
        assert!(validate(&[5, 17, 0, 0, 0, 1], Section::Publish).is_err());
        assert!(validate(&[1, 0x7F], Section::Publish).is_err());
    }

    #[test]
    fn varint_rules() {
        assert_eq!(read_varint(&[0x7F]), Ok(Some((127, 1))));
        assert_eq!(read_varint(&[0x80, 0x01]), Ok(Some((128, 2))));
        assert_eq!(read_varint(&[0x80]), Ok(None));
        assert!(read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]).is_err());
        assert!(read_varint(&[0x80, 0x00]).is_err());
    }
}
