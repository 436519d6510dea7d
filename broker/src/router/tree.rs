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
    /// Keyed by the broker's own numbers, so hashed with fixed keys: a
    /// publish reaches its subscribers (and the log gets their records) in
    /// the same order in every process (a simulation seed replays).
    subs: HashMap<SessionKey, Sub, std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>>,
    /// Group name -> (full shared filter, members); ordered (the names are
    /// the clients', so not hashed with fixed keys).
    shared: std::collections::BTreeMap<Box<str>, (Box<str>, SharedGroup)>,
}

impl Node {
    #[cfg(test)]
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

    /// Removes a subscription. Returns whether it existed. Walks and
    /// prunes without recursion: a filter may have thousands of levels.
    pub fn remove(&mut self, filter: &str, key: SessionKey) -> bool {
        let (group, real) = match shared(filter) {
            Some((g, f)) => (Some(g), f),
            None => (None, filter),
        };
        let mut node = &mut self.root;
        for level in real.split('/') {
            match node.children.get_mut(level) {
                Some(child) => node = child,
                None => return false,
            }
        }
        let removed = match group {
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
        };
        if removed {
            self.count -= 1;
            prune(&mut self.root, real, |n| !n.subs.is_empty() || !n.shared.is_empty());
        }
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
    /// per filter). Depth first, `+` before the exact level, with a stack
    /// of its own instead of recursion: a topic may have thousands of levels.
    pub fn matches<'a>(&'a self, topic: &str, mut f: impl FnMut(Target<'a>)) {
        let levels: Vec<&str> = topic.split('/').collect();
        // [MQTT-4.7.2-1] wildcards at the first level do not match `$` topics.
        let dollar = topic.starts_with('$');
        // (node, depth, no wildcards at this node)
        let mut stack = vec![(&self.root, 0usize, dollar)];
        while let Some((node, depth, no_wild)) = stack.pop() {
            if !no_wild {
                if let Some(hash) = node.children.get("#") {
                    // `#` matches this level and everything below, parent included.
                    Self::report(hash, &mut f);
                }
            }
            let Some(level) = levels.get(depth) else {
                Self::report(node, &mut f);
                continue;
            };
            if let Some(child) = node.children.get(*level) {
                stack.push((child, depth + 1, false));
            }
            if !no_wild {
                if let Some(plus) = node.children.get("+") {
                    stack.push((plus, depth + 1, false));
                }
            }
        }
    }

    fn report<'a>(node: &'a Node, f: &mut impl FnMut(Target<'a>)) {
        node.subs.iter().for_each(|(k, s)| f(Target::One(*k, s)));
        node.shared.values().for_each(|(filter, g)| f(Target::Group(filter, g)));
    }
}

/// A tree keyed by topic level whose nodes can be pruned and dropped
/// without recursion (the subscription index and the retained store).
pub(crate) trait LevelNode: Sized {
    fn children(&mut self) -> &mut HashMap<Box<str>, Self>;
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

/// Empties `node`'s subtree one node at a time, so dropping a chain of
/// 65,536 levels does not overflow the stack. For `Drop` implementations.
pub(crate) fn drop_levels<N: LevelNode>(node: &mut N) {
    let mut stack: Vec<N> = node.children().drain().map(|(_, n)| n).collect();
    while let Some(mut n) = stack.pop() {
        stack.extend(n.children().drain().map(|(_, c)| c));
    }
}

/// After a removal at `path`, removes the nodes on it left with neither
/// content (`keeps`) nor other children, deepest first, without recursion.
pub(crate) fn prune<N: LevelNode>(root: &mut N, path: &str, keeps: impl Fn(&mut N) -> bool) {
    let levels: Vec<&str> = path.split('/').collect();
    // The depth of the deepest node on the path that stays; its child on
    // the path heads a chain of empty nodes.
    let mut cut = 0;
    let mut node = &mut *root;
    for (depth, level) in levels.iter().enumerate() {
        let last = depth + 1 == levels.len();
        let Some(child) = node.children().get_mut(*level) else { return };
        if keeps(child) || child.children().len() > usize::from(!last) {
            cut = depth + 1;
        }
        node = child;
    }
    if cut == levels.len() {
        return;
    }
    let mut node = root;
    for level in &levels[..cut] {
        let Some(child) = node.children().get_mut(*level) else { return };
        node = child;
    }
    node.children().remove(levels[cut]);
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
    fn a_filter_of_65536_empty_levels_is_walked_without_recursion() {
        // 65,535 `/`: a legal 3.1.1 filter that once overflowed the stack
        // when matched, removed or dropped.
        let deep = "/".repeat(65_535);
        let mut t = SubscriptionTree::default();
        assert!(t.insert(&deep, 1, sub()));
        assert!(t.insert(&format!("{deep}#"), 2, sub()));
        assert!(t.insert(&format!("$share/g/{deep}+"), 3, sub()));
        assert_eq!(keys(&t, &deep), vec![1, 2, 1003]);
        assert_eq!(keys(&t, &format!("{deep}x/y")), vec![2]);
        assert!(t.remove(&deep, 1));
        assert_eq!(keys(&t, &deep), vec![2, 1003]);
        assert!(t.remove(&format!("$share/g/{deep}+"), 3));
        assert!(t.remove(&format!("{deep}#"), 2));
        assert!(t.root.is_empty(), "the whole chain is pruned");
        // Dropping a deep tree does not recurse either.
        let mut t = SubscriptionTree::default();
        t.insert(&deep, 1, sub());
        drop(t);
    }

    #[test]
    fn prune_keeps_what_other_filters_need() {
        let mut t = SubscriptionTree::default();
        t.insert("a/b/c/d", 1, sub());
        t.insert("a/b", 2, sub());
        t.insert("a/x/c/d", 3, sub());
        assert!(t.remove("a/b/c/d", 1));
        assert_eq!(keys(&t, "a/b"), vec![2]);
        assert_eq!(keys(&t, "a/x/c/d"), vec![3]);
        let b = &t.root.children["a"].children["b"];
        assert!(b.children.is_empty(), "c/d below a/b pruned");
        assert!(t.remove("a/x/c/d", 3));
        assert_eq!(t.root.children["a"].children.len(), 1, "only a/b left under a");
        assert!(t.remove("a/b", 2));
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

#[cfg(test)]
#[path = "tree_props.rs"]
mod props;
