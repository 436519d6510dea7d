//! Retained messages: one per topic, in a tree keyed by topic level so a
//! wildcard subscribe walks only the matching branches.

use std::collections::HashMap;
use std::sync::Arc;

use crate::message::Message;

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    msg: Option<Arc<Message>>,
}

/// Topic -> retained message.
#[derive(Debug, Default)]
pub struct RetainedStore {
    root: Node,
    count: usize,
}

impl RetainedStore {
    /// Stores `msg` for its topic, replacing the previous one; an empty
    /// payload deletes it ([MQTT-3.3.1-10], [MQTT-3.3.1-11]).
    pub fn set(&mut self, msg: Arc<Message>) {
        if msg.payload.is_empty() {
            self.remove(&msg.topic);
            return;
        }
        let mut node = &mut self.root;
        for level in msg.topic.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        if node.msg.replace(msg).is_none() {
            self.count += 1;
        }
    }

    fn remove(&mut self, topic: &str) {
        fn walk<'a>(node: &mut Node, mut levels: impl Iterator<Item = &'a str>) -> bool {
            match levels.next() {
                None => node.msg.take().is_some(),
                Some(level) => {
                    let Some(child) = node.children.get_mut(level) else {
                        return false;
                    };
                    let removed = walk(child, levels);
                    if child.msg.is_none() && child.children.is_empty() {
                        node.children.remove(level);
                    }
                    removed
                }
            }
        }
        if walk(&mut self.root, topic.split('/')) {
            self.count -= 1;
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// Calls `f` with every retained message.
    pub fn for_each(&self, mut f: impl FnMut(&Arc<Message>)) {
        fn walk(node: &Node, f: &mut impl FnMut(&Arc<Message>)) {
            if let Some(m) = &node.msg {
                f(m);
            }
            node.children.values().for_each(|c| walk(c, f));
        }
        walk(&self.root, &mut f);
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Calls `f` with every retained message whose topic matches `filter`.
    pub fn matching(&self, filter: &str, mut f: impl FnMut(&Arc<Message>)) {
        let levels: Vec<&str> = filter.split('/').collect();
        Self::walk(&self.root, &levels, true, &mut f);
    }

    fn walk(node: &Node, levels: &[&str], first: bool, f: &mut impl FnMut(&Arc<Message>)) {
        let Some((level, rest)) = levels.split_first() else {
            if let Some(m) = &node.msg {
                f(m);
            }
            return;
        };
        match *level {
            "#" => {
                // Matches this node (the parent level) and all below.
                if !first {
                    if let Some(m) = &node.msg {
                        f(m);
                    }
                }
                Self::all_below(node, first, f);
            }
            "+" => {
                for (name, child) in &node.children {
                    // [MQTT-4.7.2-1] no `$` topics under a leading wildcard.
                    if !(first && name.starts_with('$')) {
                        Self::walk(child, rest, false, f);
                    }
                }
            }
            exact => {
                if let Some(child) = node.children.get(exact) {
                    Self::walk(child, rest, false, f);
                }
            }
        }
    }

    fn all_below(node: &Node, first: bool, f: &mut impl FnMut(&Arc<Message>)) {
        for (name, child) in &node.children {
            if first && name.starts_with('$') {
                continue;
            }
            if let Some(m) = &child.msg {
                f(m);
            }
            Self::all_below(child, false, f);
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

    fn topics(s: &RetainedStore, filter: &str) -> Vec<String> {
        let mut v = Vec::new();
        s.matching(filter, |m| v.push(m.topic.clone()));
        v.sort();
        v
    }

    #[test]
    fn set_replace_delete() {
        let mut s = RetainedStore::default();
        s.set(msg("a/b", b"1"));
        s.set(msg("a/b", b"2"));
        let mut got = Vec::new();
        s.matching("a/b", |m| got.push(m.payload.clone()));
        assert_eq!(got, vec![Bytes::from_static(b"2")]);
        s.set(msg("a/b", b""));
        assert!(topics(&s, "#").is_empty());
        assert!(s.is_empty());
    }

    #[test]
    fn wildcard_lookup_and_dollar_rule() {
        let mut s = RetainedStore::default();
        for t in ["a", "a/b", "a/b/c", "x/b", "$SYS/up"] {
            s.set(msg(t, b"v"));
        }
        assert_eq!(topics(&s, "#"), vec!["a", "a/b", "a/b/c", "x/b"]);
        assert_eq!(topics(&s, "a/#"), vec!["a", "a/b", "a/b/c"]);
        assert_eq!(topics(&s, "+/b"), vec!["a/b", "x/b"]);
        assert_eq!(topics(&s, "+"), vec!["a"]);
        assert_eq!(topics(&s, "$SYS/#"), vec!["$SYS/up"]);
        assert_eq!(topics(&s, "+/up"), Vec::<String>::new());
    }

    #[test]
    fn hundred_thousand_topics() {
        let mut s = RetainedStore::default();
        for i in 0..100_000 {
            s.set(msg(&format!("site/{}/dev/{i}", i % 100), b"v"));
        }
        assert_eq!(s.len(), 100_000);
        assert_eq!(topics(&s, "site/7/dev/+").len(), 1000);
        assert_eq!(topics(&s, "site/7/dev/507"), vec!["site/7/dev/507"]);
    }
}
