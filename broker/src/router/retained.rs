//! Retained messages: one per topic, in a tree keyed by topic level so a
//! wildcard subscribe walks only the matching branches; and their caps
//! (`max_retained_messages`, `max_retained_bytes`): a message that would go
//! beyond them is not retained (the router still delivers it).

use std::collections::HashMap;
use std::sync::Arc;

use crate::message::Message;
use crate::router::tree::{drop_levels, prune, LevelNode};

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    msg: Option<Arc<Message>>,
}

impl LevelNode for Node {
    fn children(&mut self) -> &mut HashMap<Box<str>, Node> {
        &mut self.children
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop_levels(self);
    }
}

/// How many retained messages, and how many bytes of them, may be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedLimits {
    pub max_messages: usize,
    pub max_bytes: u64,
}

impl Default for RetainedLimits {
    fn default() -> Self {
        RetainedLimits { max_messages: usize::MAX, max_bytes: u64::MAX }
    }
}

/// A retained message that was not kept: the store is at a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RetainedFull {
    #[error("retained messages at max_retained_messages")]
    Messages,
    #[error("retained messages at max_retained_bytes")]
    Bytes,
}

/// Topic -> retained message.
#[derive(Debug, Default)]
pub struct RetainedStore {
    root: Node,
    count: usize,
    /// Of `count`, the broker's own (`$SYS/broker/...`, see `sys.rs`):
    /// not held against the caps.
    internal: usize,
    /// Topic and payload bytes of the retained messages but the broker's own.
    bytes: u64,
    limits: RetainedLimits,
}

/// Whether `topic` is one of the broker's own (`$SYS/broker/...`), which
/// clients cannot publish (`session/handlers.rs`).
pub fn is_internal(topic: &str) -> bool {
    topic.starts_with("$SYS/broker/")
}

/// What a retained message counts against `max_retained_bytes`.
fn cost(m: &Message) -> u64 {
    if is_internal(&m.topic) {
        return 0;
    }
    (m.topic.len() + m.payload.len()) as u64
}

impl RetainedStore {
    pub fn set_limits(&mut self, limits: RetainedLimits) {
        self.limits = limits;
    }

    /// Stores `msg` for its topic, replacing the previous one; an empty
    /// payload deletes it ([MQTT-3.3.1-10], [MQTT-3.3.1-11]). Beyond a cap
    /// the message is not stored and the previous one of its topic, if
    /// any, stays.
    pub fn set(&mut self, msg: Arc<Message>) -> Result<(), RetainedFull> {
        if msg.payload.is_empty() {
            self.remove(&msg.topic);
            return Ok(());
        }
        // One walk: the path is made as it goes, and cut again (rare) if
        // a cap refuses the message.
        let internal = is_internal(&msg.topic);
        let (count, held, limits) = (self.count - self.internal, self.bytes, self.limits);
        let mut node = &mut self.root;
        for level in msg.topic.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        let old = node.msg.as_ref().map(|m| cost(m));
        let bytes = held - old.unwrap_or(0) + cost(&msg);
        let refused = if old.is_none() && !internal && count >= limits.max_messages {
            Some(RetainedFull::Messages)
        } else if bytes > limits.max_bytes {
            Some(RetainedFull::Bytes)
        } else {
            None
        };
        if let Some(full) = refused {
            if old.is_none() {
                prune(&mut self.root, &msg.topic, |n| n.msg.is_some());
            }
            return Err(full);
        }
        if node.msg.replace(msg).is_none() {
            self.count += 1;
            self.internal += usize::from(internal);
        }
        self.bytes = bytes;
        Ok(())
    }

    fn remove(&mut self, topic: &str) {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            match node.children.get_mut(level) {
                Some(child) => node = child,
                None => return,
            }
        }
        if let Some(m) = node.msg.take() {
            self.count -= 1;
            self.internal -= usize::from(is_internal(&m.topic));
            self.bytes -= cost(&m);
            prune(&mut self.root, topic, |n| n.msg.is_some());
        }
    }

    /// Topic and payload bytes of the retained messages.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Retained messages but the broker's own (`$SYS/broker/...`).
    pub fn clients_len(&self) -> usize {
        self.count - self.internal
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// Calls `f` with every retained message.
    pub fn for_each(&self, mut f: impl FnMut(&Arc<Message>)) {
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            if let Some(m) = &node.msg {
                f(m);
            }
            stack.extend(node.children.values());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Calls `f` with every retained message whose topic matches `filter`,
    /// in topic order for a wildcard filter: the levels are hashed with
    /// random keys (clients choose them: no hash flooding), so the walk's
    /// order differs from one process to the next, and a subscriber's
    /// retained messages would with it (a simulation seed would not replay).
    pub fn matching(&self, filter: &str, mut f: impl FnMut(&Arc<Message>)) {
        if !filter.contains(['+', '#']) {
            return self.walk(filter, f);
        }
        let mut found = Vec::new();
        self.walk(filter, |m| found.push(m.clone()));
        found.sort_unstable_by(|a, b| a.topic.cmp(&b.topic));
        found.iter().for_each(&mut f);
    }

    /// [`RetainedStore::matching`] in the tree's order. Walks with a stack
    /// of its own, not recursion: topics and filters may have thousands of
    /// levels.
    fn walk(&self, filter: &str, mut f: impl FnMut(&Arc<Message>)) {
        let levels: Vec<&str> = filter.split('/').collect();
        // (node, depth in the filter)
        let mut stack = vec![(&self.root, 0usize)];
        while let Some((node, depth)) = stack.pop() {
            // [MQTT-4.7.2-1] no `$` topics under a leading wildcard.
            let first = depth == 0;
            let Some(level) = levels.get(depth) else {
                if let Some(m) = &node.msg {
                    f(m);
                }
                continue;
            };
            match *level {
                "#" => {
                    // Matches this node (the parent level) and all below.
                    if !first {
                        if let Some(m) = &node.msg {
                            f(m);
                        }
                    }
                    Self::all_below(node, first, &mut f);
                }
                "+" => {
                    for (name, child) in &node.children {
                        if !(first && name.starts_with('$')) {
                            stack.push((child, depth + 1));
                        }
                    }
                }
                exact => {
                    if let Some(child) = node.children.get(exact) {
                        stack.push((child, depth + 1));
                    }
                }
            }
        }
    }

    fn all_below(node: &Node, first: bool, f: &mut impl FnMut(&Arc<Message>)) {
        let mut stack: Vec<&Node> =
            node.children.iter().filter(|(name, _)| !(first && name.starts_with('$'))).map(|(_, c)| c).collect();
        while let Some(n) = stack.pop() {
            if let Some(m) = &n.msg {
                f(m);
            }
            stack.extend(n.children.values());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;

    use super::*;
    use crate::protocol::QoS;

    fn msg(topic: &str, payload: &'static [u8]) -> Arc<Message> {
        Arc::new(Message {
            topic: topic.into(),
            payload: Bytes::from_static(payload),
            qos: QoS::AtMostOnce,
            retain: true,
            props: None,
            origin: 0,
            received: Instant::now(),
        })
    }

    /// Whatever order the randomly keyed levels take, a wildcard's retained
    /// messages come in topic order (a simulation seed replays across
    /// processes).
    #[test]
    fn a_wildcards_retained_messages_come_in_topic_order() {
        let mut s = RetainedStore::default();
        let names: Vec<String> = (0..40).rev().map(|i| format!("r/{i:02}/x")).collect();
        for t in &names {
            s.set(msg(t, b"p")).unwrap();
        }
        let mut sorted = names.clone();
        sorted.sort();
        for filter in ["r/#", "r/+/x", "+/+/+", "#"] {
            let mut got = Vec::new();
            s.matching(filter, |m| got.push(m.topic.to_string()));
            assert_eq!(got, sorted, "{filter}");
        }
    }

    fn topics(s: &RetainedStore, filter: &str) -> Vec<String> {
        let mut v = Vec::new();
        s.matching(filter, |m| v.push(m.topic.clone()));
        v.sort();
        v
    }

    #[test]
    fn set_replace_delete() {
        let mut s = RetainedStore::default();
        s.set(msg("a/b", b"1")).unwrap();
        s.set(msg("a/b", b"2")).unwrap();
        let mut got = Vec::new();
        s.matching("a/b", |m| got.push(m.payload.clone()));
        assert_eq!(got, vec![Bytes::from_static(b"2")]);
        s.set(msg("a/b", b"")).unwrap();
        assert!(topics(&s, "#").is_empty());
        assert!(s.is_empty());
    }

    #[test]
    fn wildcard_lookup_and_dollar_rule() {
        let mut s = RetainedStore::default();
        for t in ["a", "a/b", "a/b/c", "x/b", "$SYS/up"] {
            s.set(msg(t, b"v")).unwrap();
        }
        assert_eq!(topics(&s, "#"), vec!["a", "a/b", "a/b/c", "x/b"]);
        assert_eq!(topics(&s, "a/#"), vec!["a", "a/b", "a/b/c"]);
        assert_eq!(topics(&s, "+/b"), vec!["a/b", "x/b"]);
        assert_eq!(topics(&s, "+"), vec!["a"]);
        assert_eq!(topics(&s, "$SYS/#"), vec!["$SYS/up"]);
        assert_eq!(topics(&s, "+/up"), Vec::<String>::new());
    }

    #[test]
    fn topics_of_65536_levels_are_walked_without_recursion() {
        let deep = "/".repeat(65_535);
        let mut s = RetainedStore::default();
        s.set(msg(&deep, b"v")).unwrap();
        s.set(msg(&format!("{deep}a"), b"v")).unwrap();
        assert_eq!(topics(&s, "#").len(), 2);
        assert_eq!(topics(&s, &format!("{deep}+")).len(), 2);
        assert_eq!(topics(&s, &deep).len(), 1);
        let mut n = 0;
        s.for_each(|_| n += 1);
        assert_eq!(n, 2);
        s.set(msg(&deep, b"")).unwrap();
        assert_eq!(s.len(), 1);
        s.set(msg(&format!("{deep}a"), b"")).unwrap();
        assert!(s.is_empty() && s.root.children.is_empty(), "the chain is pruned");
        s.set(msg(&deep, b"v")).unwrap();
        drop(s);
    }

    #[test]
    fn hundred_thousand_topics() {
        let mut s = RetainedStore::default();
        for i in 0..100_000 {
            s.set(msg(&format!("site/{}/dev/{i}", i % 100), b"v")).unwrap();
        }
        assert_eq!(s.len(), 100_000);
        assert_eq!(topics(&s, "site/7/dev/+").len(), 1000);
        assert_eq!(topics(&s, "site/7/dev/507"), vec!["site/7/dev/507"]);
    }

    #[test]
    fn caps_keep_the_old_message_and_count_replacements_by_their_bytes() {
        let mut s = RetainedStore::default();
        s.set_limits(RetainedLimits { max_messages: 2, max_bytes: 10 });
        s.set(msg("a", b"1234")).unwrap(); // 5 bytes
        s.set(msg("b", b"12")).unwrap(); // 3 bytes
        assert_eq!(s.set(msg("c", b"1")), Err(RetainedFull::Messages));
        assert!(!s.root.children.contains_key("c"), "a refused topic leaves no node behind");
        assert_eq!(s.set(msg("a", b"12345678")), Err(RetainedFull::Bytes));
        assert_eq!(topics(&s, "#"), vec!["a", "b"]);
        let mut got = Vec::new();
        s.matching("a", |m| got.push(m.payload.clone()));
        assert_eq!(got, vec![Bytes::from_static(b"1234")], "the refused one did not replace it");
        s.set(msg("a", b"123456")).unwrap(); // 7 + 3 = 10: fits
        assert_eq!(s.bytes(), 10);
        s.set(msg("b", b"")).unwrap();
        assert_eq!((s.len(), s.bytes()), (1, 7));
        s.set(msg("c", b"1")).unwrap();
        assert_eq!((s.len(), s.bytes()), (2, 9));
    }
}
