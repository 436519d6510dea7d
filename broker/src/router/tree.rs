//! The subscription index: a tree with one level of the topic filter per
//! node, so matching a topic walks only the branches that can match
//! (exact level, `+`, `#`), never the whole subscription list. Shared
//! subscriptions (`$share/{group}/{filter}`) sit at their filter's node,
//! one group per name.

use std::cell::Cell;
use std::collections::HashMap;

use crate::message::SessionKey;
use crate::protocol::topic::shared;
use crate::protocol::SubOptions;

/// What a session subscribed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sub {
    pub options: SubOptions,
    pub id: Option<u32>,
}

/// The members of one shared subscription group on one filter.
#[derive(Debug, Default)]
pub struct SharedGroup {
    pub members: Vec<(SessionKey, Sub)>,
    /// Where round-robin resumes.
    pub cursor: Cell<usize>,
}

/// A match: one subscriber, or a shared group to pick a member from.
pub enum Target<'a> {
    One(SessionKey, &'a Sub),
    /// The full `$share/...` filter and its group.
    Group(&'a str, &'a SharedGroup),
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    subs: HashMap<SessionKey, Sub>,
    /// Group name -> (full shared filter, members).
    shared: HashMap<Box<str>, (Box<str>, SharedGroup)>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subs.is_empty() && self.shared.is_empty()
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
        let (group, real) = match shared(filter) {
            Some((g, f)) => (Some(g), f),
            None => (None, filter),
        };
        let mut node = &mut self.root;
        for level in real.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        let new = match group {
            None => node.subs.insert(key, sub).is_none(),
            Some(g) => {
                let (_, grp) = node.shared.entry(g.into()).or_insert_with(|| (filter.into(), SharedGroup::default()));
                match grp.members.iter_mut().find(|m| m.0 == key) {
                    Some(m) => {
                        m.1 = sub;
                        false
                    }
                    None => {
                        grp.members.push((key, sub));
                        true
                    }
                }
            }
        };
        self.count += usize::from(new);
        new
    }

    /// Removes a subscription. Returns whether it existed.
    pub fn remove(&mut self, filter: &str, key: SessionKey) -> bool {
        fn walk<'a>(
            node: &mut Node,
            mut levels: impl Iterator<Item = &'a str>,
            group: Option<&str>,
            key: SessionKey,
        ) -> bool {
            match levels.next() {
                None => match group {
                    None => node.subs.remove(&key).is_some(),
                    Some(g) => {
                        let Some((_, grp)) = node.shared.get_mut(g) else { return false };
                        let before = grp.members.len();
                        grp.members.retain(|m| m.0 != key);
                        let removed = grp.members.len() != before;
                        if grp.members.is_empty() {
                            node.shared.remove(g);
                        }
                        removed
                    }
                },
                Some(level) => {
                    let Some(child) = node.children.get_mut(level) else {
                        return false;
                    };
                    let removed = walk(child, levels, group, key);
                    if child.is_empty() {
                        node.children.remove(level);
                    }
                    removed
                }
            }
        }
        let (group, real) = match shared(filter) {
            Some((g, f)) => (Some(g), f),
            None => (None, filter),
        };
        let removed = walk(&mut self.root, real.split('/'), group, key);
        self.count -= usize::from(removed);
        removed
    }

    /// The group of a full `$share/{group}/{filter}` filter.
    pub fn group(&self, filter: &str) -> Option<&SharedGroup> {
        let (g, real) = shared(filter)?;
        let mut node = &self.root;
        for level in real.split('/') {
            node = node.children.get(level)?;
        }
        node.shared.get(g).map(|(_, grp)| grp)
    }

    /// Number of subscriptions (each shared group member counts).
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Calls `f` for every subscription and shared group whose filter
    /// matches `topic` (a session with overlapping filters is reported once
    /// per filter).
    pub fn matches<'a>(&'a self, topic: &str, mut f: impl FnMut(Target<'a>)) {
        let levels: Vec<&str> = topic.split('/').collect();
        // [MQTT-4.7.2-1] wildcards at the first level do not match `$` topics.
        let dollar = topic.starts_with('$');
        Self::walk(&self.root, &levels, dollar, &mut f);
    }

    fn report<'a>(node: &'a Node, f: &mut impl FnMut(Target<'a>)) {
        node.subs.iter().for_each(|(k, s)| f(Target::One(*k, s)));
        node.shared.values().for_each(|(filter, g)| f(Target::Group(filter, g)));
    }

    fn walk<'a>(node: &'a Node, levels: &[&str], no_wild: bool, f: &mut impl FnMut(Target<'a>)) {
        if !no_wild {
            if let Some(hash) = node.children.get("#") {
                // `#` matches this level and everything below, parent included.
                Self::report(hash, f);
            }
        }
        let Some((first, rest)) = levels.split_first() else {
            Self::report(node, f);
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
        t.matches(topic, |target| match target {
            Target::One(k, _) => v.push(k),
            Target::Group(_, g) => v.extend(g.members.iter().map(|m| m.0 + 1000)),
        });
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
    fn shared_groups_sit_at_their_filter() {
        let mut t = SubscriptionTree::default();
        assert!(t.insert("$share/g/a/+", 1, sub()));
        assert!(t.insert("$share/g/a/+", 2, sub()));
        assert!(t.insert("$share/h/a/+", 3, sub()));
        assert_eq!(keys(&t, "a/x"), vec![1001, 1002, 1003]);
        assert_eq!(t.group("$share/g/a/+").map(|g| g.members.len()), Some(2));
        assert!(t.remove("$share/g/a/+", 1));
        assert!(t.remove("$share/g/a/+", 2));
        assert!(t.group("$share/g/a/+").is_none());
        assert!(t.remove("$share/h/a/+", 3));
        assert!(t.root.is_empty());
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
