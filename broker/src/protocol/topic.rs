//! Topic names and topic filters: validation and matching (MQTT 3.1.1
//! section 4.7, MQTT 5.0 section 4.7).

/// A valid UTF-8 string of the protocol (MQTT 3.1.1 section 1.5.3, 5.0
/// section 1.5.4): well-formed UTF-8, which excludes the surrogates
/// U+D800..U+DFFF ([MQTT-1.5.4-1], [MQTT-1.5.3-1]), and no U+0000
/// ([MQTT-1.5.4-2], [MQTT-1.5.3-2]). A packet carrying any other string is
/// malformed and closes the connection. Control characters and
/// non-characters are allowed (the specification says a receiver MAY
/// refuse them, [MQTT-1.5.4-3]; it does not have to).
pub fn valid_string(s: &[u8]) -> bool {
    std::str::from_utf8(s).is_ok_and(|s| !s.contains('\0'))
}

/// A valid topic name: non-empty, no wildcards, no U+0000
/// ([MQTT-4.7.1-1], [MQTT-4.7.3-1], [MQTT-4.7.3-2], [MQTT-3.3.2-2]).
pub fn valid_name(topic: &str) -> bool {
    !topic.is_empty() && !topic.bytes().any(|b| matches!(b, b'+' | b'#' | 0))
}

/// A valid topic filter: non-empty, no U+0000, `#` only as the last level
/// and alone in it, `+` alone in its level ([MQTT-4.7.1-2], [MQTT-4.7.1-3]).
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return false;
        }
        if level.contains('+') && level != "+" {
            return false;
        }
    }
    true
}

/// Whether `topic` (a name, or a filter without its `$share/{group}/`
/// prefix) has at most `max` levels: topics and filters of thousands of
/// levels are refused before anything walks them.
pub fn within_levels(topic: &str, max: u16) -> bool {
    // `n` separators make `n + 1` levels.
    topic.bytes().filter(|&b| b == b'/').take(usize::from(max)).count() < usize::from(max)
}

/// Splits a shared subscription `$share/{group}/{filter}` into its group
/// and filter, if it is one (MQTT 5.0 section 4.8.2).
pub fn shared(filter: &str) -> Option<(&str, &str)> {
    filter.strip_prefix("$share/")?.split_once('/')
}

/// A valid shared subscription: a non-empty group without `/`, `+` or `#`
/// ([MQTT-4.8.2-1], [MQTT-4.8.2-2]) and a valid filter.
pub fn valid_shared(filter: &str) -> bool {
    match shared(filter) {
        Some((group, f)) => !group.is_empty() && !group.contains(['+', '#']) && valid_filter(f),
        None => false,
    }
}

/// Whether `filter` (assumed valid) matches `topic` (assumed valid).
/// Filters starting with a wildcard do not match topics starting with `$`
/// ([MQTT-4.7.2-1]).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        assert!(valid_string(b""));
        assert!(valid_string("a/\u{1}\u{7f}\u{feff}\u{10ffff}".as_bytes()), "allowed, if discouraged");
        assert!(!valid_string(b"a\0b"), "[MQTT-1.5.4-2] U+0000");
        assert!(!valid_string(&[0xED, 0xA0, 0x80]), "[MQTT-1.5.4-1] a surrogate (U+D800)");
        assert!(!valid_string(&[0xC0, 0x80]), "[MQTT-1.5.4-1] overlong U+0000");
        assert!(!valid_string(&[0xFF]), "[MQTT-1.5.4-1] not UTF-8");
        assert!(!valid_string(&[b'a', 0xE2, 0x82]), "[MQTT-1.5.4-1] truncated sequence");
    }

    #[test]
    fn names() {
        assert!(valid_name("a/b"));
        assert!(valid_name("/"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/+"));
        assert!(!valid_name("a/#"));
        assert!(!valid_name("a\0b"));
    }

    #[test]
    fn filters() {
        for ok in ["#", "+", "a/#", "+/+", "a/+/b", "/", "$SYS/#", "a//b"] {
            assert!(valid_filter(ok), "{ok}");
        }
        for bad in ["", "a#", "a/#/b", "a+", "a/b+/c", "#/a", "a\0"] {
            assert!(!valid_filter(bad), "{bad}");
        }
    }

    #[test]
    fn level_limit() {
        assert!(within_levels("a", 1));
        assert!(!within_levels("a/b", 1));
        assert!(within_levels("a/b", 2));
        assert!(!within_levels("/", 1), "`/` is two empty levels");
        assert!(within_levels(&"/".repeat(127), 128));
        assert!(!within_levels(&"/".repeat(128), 128));
        assert!(!within_levels(&"/".repeat(65_535), u16::MAX));
    }

    #[test]
    fn shared_filters() {
        assert_eq!(shared("$share/g/a/#"), Some(("g", "a/#")));
        assert_eq!(shared("a/b"), None);
        assert!(valid_shared("$share/g/a/+"));
        assert!(!valid_shared("$share//a"));
        assert!(!valid_shared("$share/g+/a"));
        assert!(!valid_shared("$share/g"));
        assert!(!valid_shared("$share/g/a#"));
    }

    #[test]
    fn matching() {
        // [MQTT-4.7.1-2] multi-level wildcard matches the parent too.
        assert!(matches("sport/#", "sport"));
        assert!(matches("sport/#", "sport/tennis/player1"));
        assert!(matches("sport/+/player1", "sport/tennis/player1"));
        assert!(!matches("sport/+", "sport/tennis/player1"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(matches("+", ""));
        // [MQTT-4.7.2-1]
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
    }
}
