//! The subscription index: a tree with one level of the topic filter per
//! node, so matching a topic walks only the branches that can match
//! (exact level, `+`, `#`), never the whole subscription list.

use std::collections::HashMap;

use crate::message::SessionKey;
use crate::protocol::SubOptions;

/// What a session subscribed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sub {
    pub options: SubOptions,
    pub id: Option<u32>,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    subs: HashMap<SessionKey, Sub>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subs.is_empty()
    }
}

/// Topic filter -> subscribers.
#[derive(Debug, Default)]
pub struct SubscriptionTree {
    root: Node,
    count: usize,
}

impl SubscriptionTree {
    /// Adds or replaces a subscription. Returns whether it is new.
    pub fn insert(&mut self, filter: &str, key: SessionKey, sub: Sub) -> bool {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        let new = node.subs.insert(key, sub).is_none();
        self.count += usize::from(new);
        new
    }

    /// Removes a subscription. Returns whether it existed.
    pub fn remove(&mut self, filter: &str, key: SessionKey) -> bool {
        fn walk<'a>(node: &mut Node, mut levels: impl Iterator<Item = &'a str>, key: SessionKey) -> bool {
            match levels.next() {
                None => node.subs.remove(&key).is_some(),
                Some(level) => {
                    let Some(child) = node.children.get_mut(level) else {
                        return false;
                    };
                    let removed = walk(child, levels, key);
                    if child.is_empty() {
                        node.children.remove(level);
                    }
                    removed
                }
            }
        }
        let removed = walk(&mut self.root, filter.split('/'), key);
        self.count -= usize::from(removed);
        removed
    }

    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Calls `f` for every subscription whose filter matches `topic`
    /// (a session with overlapping filters is reported once per filter).
    pub fn matches(&self, topic: &str, mut f: impl FnMut(SessionKey, &Sub)) {
        let levels: Vec<&str> = topic.split('/').collect();
        // [MQTT-4.7.2-1] wildcards at the first level do not match `$` topics.
        let dollar = topic.starts_with('$');
        Self::walk(&self.root, &levels, dollar, &mut f);
    }

    fn walk(node: &Node, levels: &[&str], no_wild: bool, f: &mut impl FnMut(SessionKey, &Sub)) {
        if !no_wild {
            if let Some(hash) = node.children.get("#") {
                // `#` matches this level and everything below, parent included.
                hash.subs.iter().for_each(|(k, s)| f(*k, s));
            }
        }
        let Some((first, rest)) = levels.split_first() else {
            node.subs.iter().for_each(|(k, s)| f(*k, s));
            return;
        };
        if !no_wild {
            if let Some(plus) = node.children.get("+") {
                Self::walk(plus, rest, false, f);
            }
        }
        if let Some(child) = node.children.get(*first) {
            Self::walk(child, rest, false, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub() -> Sub {
        Sub { options: SubOptions::default(), id: None }
    }

    fn keys(t: &SubscriptionTree, topic: &str) -> Vec<SessionKey> {
        let mut v = Vec::new();
        t.matches(topic, |k, _| v.push(k));
        v.sort();
        v
    }

    #[test]
    fn wildcards_and_dollar_topics() {
        let mut t = SubscriptionTree::default();
        t.insert("a/b", 1, sub());
        t.insert("a/+", 2, sub());
        t.insert("a/#", 3, sub());
        t.insert("#", 4, sub());
        t.insert("+/b", 5, sub());
        t.insert("$SYS/#", 6, sub());
        t.insert("+/+/c", 7, sub());
        assert_eq!(keys(&t, "a/b"), vec![1, 2, 3, 4, 5]);
        assert_eq!(keys(&t, "a"), vec![3, 4]);
        assert_eq!(keys(&t, "a/b/c"), vec![3, 4, 7]);
        // [MQTT-4.7.2-1]
        assert_eq!(keys(&t, "$SYS/b"), vec![6]);
        assert_eq!(t.len(), 7);
    }

    #[test]
    fn remove_prunes_and_reports() {
        let mut t = SubscriptionTree::default();
        assert!(t.insert("a/b/c", 1, sub()));
        assert!(!t.insert("a/b/c", 1, sub()), "replacing is not new");
        assert!(t.remove("a/b/c", 1));
        assert!(!t.remove("a/b/c", 1));
        assert!(t.root.is_empty());
        assert!(t.is_empty());
    }

    #[test]
    fn many_subscriptions_match_by_walking() {
        let mut t = SubscriptionTree::default();
        for i in 0..100_000u64 {
            t.insert(&format!("dev/{i}/temp"), i, sub());
        }
        t.insert("dev/+/temp", 1_000_000, sub());
        assert_eq!(keys(&t, "dev/42/temp"), vec![42, 1_000_000]);
    }
}
