//! Topic names and filters: validation, and [`Topic`], the zero-copy
//! topic of a received PUBLISH (bytes checked as UTF-8 without linking
//! `core::str::from_utf8`).

use core::fmt;

/// A PUBLISH topic name: bytes known to be valid UTF-8.
///
/// Decoded topics are validated by a small built-in checker instead of
/// `core::str::from_utf8`, which would add ~600 bytes of flash to every
/// firmware. Compare with `==` against a `&str`, or get a `&str` with
/// [`as_str`](Topic::as_str) (which links `from_utf8`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Topic<'a>(pub(crate) &'a [u8]);

impl<'a> Topic<'a> {
    /// Wraps `bytes` if they are valid UTF-8.
    pub fn new(bytes: &'a [u8]) -> Option<Topic<'a>> {
        is_utf8(bytes).then_some(Topic(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The topic as `&str`.
    pub fn as_str(&self) -> &'a str {
        core::str::from_utf8(self.0).unwrap_or_default()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty topic (never valid in a PUBLISH).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> From<&'a str> for Topic<'a> {
    fn from(s: &'a str) -> Self {
        Topic(s.as_bytes())
    }
}

impl PartialEq<str> for Topic<'_> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Topic<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl fmt::Debug for Topic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Topic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compact UTF-8 validation (rejects overlong forms, surrogates and code
/// points above U+10FFFF, like `core::str::from_utf8`).
pub fn is_utf8(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let (n, min) = match c {
            0x00..=0x7f => (0, 0),
            0xc0..=0xdf => (1, 0x80),
            0xe0..=0xef => (2, 0x800),
            0xf0..=0xf7 => (3, 0x1_0000),
            _ => return false,
        };
        let mut cp = u32::from(c) & (0x7f >> if n == 0 { 0 } else { n + 1 });
        for k in 1..=n {
            match b.get(i + k) {
                Some(&cc) if cc & 0xc0 == 0x80 => cp = (cp << 6) | u32::from(cc & 0x3f),
                _ => return false,
            }
        }
        if cp < min || cp > 0x10_ffff || (0xd800..=0xdfff).contains(&cp) {
            return false;
        }
        i += n + 1;
    }
    true
}

/// True if `t` is a valid PUBLISH topic name: non-empty, at most 65535
/// bytes, no `+`/`#` wildcards and no NUL.
pub fn valid_topic_name(t: &str) -> bool {
    valid_topic_bytes(t.as_bytes())
}

pub(crate) fn valid_topic_bytes(t: &[u8]) -> bool {
    !t.is_empty() && t.len() <= u16::MAX as usize && !t.iter().any(|&b| b == b'+' || b == b'#' || b == 0)
}

/// True if `f` is a valid topic filter: non-empty, `#` only as the last
/// level, `+` only as a whole level.
pub fn valid_topic_filter(f: &str) -> bool {
    let b = f.as_bytes();
    if b.is_empty() || b.len() > u16::MAX as usize {
        return false;
    }
    for (i, &c) in b.iter().enumerate() {
        let alone = (i == 0 || b[i - 1] == b'/') && (i + 1 == b.len() || b[i + 1] == b'/');
        let ok = match c {
            0 => false,
            b'+' => alone,
            b'#' => alone && i + 1 == b.len(),
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert!(valid_topic_filter("a/+/#"));
        assert!(valid_topic_filter("#"));
        assert!(!valid_topic_filter("a/#/b"));
        assert!(!valid_topic_filter("a+"));
        assert!(!valid_topic_filter("+a/b"));
        assert!(!valid_topic_filter("a/#b"));
        assert!(!valid_topic_filter(""));
        assert!(valid_topic_filter("+/+/x"));
        assert!(valid_topic_filter("a//b/+"));
        assert!(!valid_topic_name("a/+"));
        assert!(valid_topic_name("a/b"));
    }

    #[test]
    fn utf8() {
        for s in ["", "abc", "ünï", "€", "𝄞", "\u{10ffff}", "\u{7ff}\u{800}\u{ffff}"] {
            assert!(is_utf8(s.as_bytes()), "{s}");
        }
        let bad: [&[u8]; 8] = [
            &[0x80],
            &[0xc0, 0x80],
            &[0xe0, 0x80, 0x80],
            &[0xed, 0xa0, 0x80],
            &[0xf4, 0x90, 0x80, 0x80],
            &[0xf8, 0x88, 0x80, 0x80],
            &[0xe2, 0x82],
            &[b'a', 0xff],
        ];
        for b in bad {
            assert!(!is_utf8(b), "{b:?}");
        }
    }
}
