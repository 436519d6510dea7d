//! Property tests of topic matching (`protocol::topic::matches`) and of
//! the subscription tree against a naive reference: a list of
//! subscriptions, each matched level by level. Topics and filters are made
//! of a few levels that collide often: empty levels, `$`-levels (`$SYS`,
//! `$x`), `+`, `#`, and `$share/{group}/` shared subscriptions.

use proptest::prelude::*;

use super::{SubscriptionTree, Target};
use crate::protocol::topic::{matches, shared, valid_filter, valid_name, valid_shared};
use crate::protocol::SubOptions;

const LEVELS: [&str; 6] = ["a", "b", "", "$SYS", "$x", "a b"];

/// The reference matcher: level by level, a `$` topic never matched by a
/// first-level wildcard ([MQTT-4.7.2-1]), `#` also matching the parent
/// level ([MQTT-4.7.1-2]), `+` exactly one level, empty levels included
/// (the ACL tests' reference).
use crate::auth::acl::tests::ref_matches as reference;

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&LEVELS[..]), 1..5)
        .prop_map(|l| l.join("/"))
        .prop_filter("a topic name", |t| valid_name(t))
}

fn filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![3 => prop::sample::select(&LEVELS[..]), 2 => Just("+")];
    let group = prop::option::weighted(0.25, prop::sample::select(vec!["g1", "g2"]));
    (group, prop::collection::vec(level, 0..4), any::<bool>()).prop_filter_map("a filter", |(group, mut l, hash)| {
        if hash || l.is_empty() {
            l.push("#");
        }
        let f = l.join("/");
        let f = match group {
            Some(g) => format!("$share/{g}/{f}"),
            None => f,
        };
        (valid_filter(&f) && (shared(&f).is_none() || valid_shared(&f))).then_some(f)
    })
}

#[derive(Debug, Clone)]
enum Op {
    Insert(String, u64, u8),
    Remove(String, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (filter(), 1..5u64, 0..3u8).prop_map(|(f, k, q)| Op::Insert(f, k, q)),
        1 => (filter(), 1..5u64).prop_map(|(f, k)| Op::Remove(f, k)),
    ]
}

/// What a topic matches: every (filter, session) that is not shared, and
/// every shared filter with its members, sorted.
type Matched = (Vec<u64>, Vec<(String, Vec<u64>)>);

fn tree_matches(tree: &SubscriptionTree, topic: &str) -> Matched {
    let (mut one, mut groups) = (Vec::new(), Vec::new());
    tree.matches(topic, |t| match t {
        Target::One(k, _) => one.push(k),
        Target::Group(f, g) => {
            let mut m: Vec<u64> = g.members.iter().map(|m| m.0).collect();
            m.sort_unstable();
            groups.push((f.to_owned(), m));
        }
    });
    one.sort_unstable();
    groups.sort();
    (one, groups)
}

fn reference_matches(subs: &[(String, u64, u8)], topic: &str) -> Matched {
    let (mut one, mut groups) = (Vec::new(), Vec::<(String, Vec<u64>)>::new());
    for (f, k, _) in subs {
        match shared(f) {
            None if reference(f, topic) => one.push(*k),
            Some((_, real)) if reference(real, topic) => match groups.iter_mut().find(|g| g.0 == *f) {
                Some(g) => g.1.push(*k),
                None => groups.push((f.clone(), vec![*k])),
            },
            _ => {}
        }
    }
    one.sort_unstable();
    groups.iter_mut().for_each(|g| g.1.sort_unstable());
    groups.sort();
    (one, groups)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn matching_agrees_with_the_reference(f in filter(), t in topic()) {
        let plain = shared(&f).map_or(f.as_str(), |(_, real)| real);
        prop_assert_eq!(matches(plain, &t), reference(plain, &t), "{} {}", plain, t);
    }

    /// Inserts and removes in any order leave a tree that matches every
    /// topic as the list of its subscriptions does, counts them as the
    /// list does, and answers inserts and removes (new, existed) alike.
    #[test]
    fn the_tree_agrees_with_a_list_of_subscriptions(
        ops in prop::collection::vec(op(), 0..40),
        topics in prop::collection::vec(topic(), 1..12),
    ) {
        let mut tree = SubscriptionTree::default();
        let mut list: Vec<(String, u64, u8)> = Vec::new();
        for op in &ops {
            match op {
                Op::Insert(f, k, q) => {
                    let qos = crate::protocol::QoS::from_u8(*q).unwrap_or_default();
                    let sub = super::Sub { options: SubOptions { qos, ..SubOptions::default() }, id: None };
                    let new = tree.insert(f, *k, sub);
                    let at = list.iter().position(|s| s.0 == *f && s.1 == *k);
                    prop_assert_eq!(new, at.is_none(), "insert {} {}", f, k);
                    match at {
                        Some(i) => list[i].2 = *q,
                        None => list.push((f.clone(), *k, *q)),
                    }
                }
                Op::Remove(f, k) => {
                    let at = list.iter().position(|s| s.0 == *f && s.1 == *k);
                    prop_assert_eq!(tree.remove(f, *k), at.is_some(), "remove {} {}", f, k);
                    if let Some(i) = at {
                        list.remove(i);
                    }
                }
            }
            prop_assert_eq!(tree.len(), list.len());
        }
        for t in &topics {
            prop_assert_eq!(tree_matches(&tree, t), reference_matches(&list, t), "topic {:?}, subscriptions {:?}", t, list);
        }
        // Removing everything leaves an empty tree.
        for (f, k, _) in &list {
            prop_assert!(tree.remove(f, *k));
        }
        prop_assert!(tree.is_empty() && tree.root.is_empty(), "pruned to nothing");
    }
}
