//! The simulated broker's ACL (one seed in three): a Mosquitto ACL file
//! drawn from the seed, giving some clients only some topics (publish,
//! read, subscribe), loaded by the broker as `acl_file` is; and the
//! oracle's own model of what it allows, decided independently of
//! `auth::acl` (Mosquitto 2.0's order on a section: a matching `deny`
//! refuses, else a matching grant allows, else refused; a subscription is
//! decided on its filter, allowed when a `read` entry covers it and no
//! `deny` does). The clients connect with their client identifier as user
//! name (each has a section), one in five without one (the anonymous
//! section, shared).

use std::collections::BTreeMap;

use edgemq::auth::acl::Access;
use edgemq::protocol::topic::matches;
use edgemq::store::powerloss::Rng;

use crate::check::shared_filter;

/// An entry's access word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Deny,
    Read,
    Write,
    ReadWrite,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Deny => "deny",
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::ReadWrite => "readwrite",
        }
    }

    fn grants(self, access: Access) -> bool {
        match access {
            Access::Read | Access::Subscribe => matches!(self, Kind::Read | Kind::ReadWrite),
            Access::Write => matches!(self, Kind::Write | Kind::ReadWrite),
        }
    }
}

type Rules = Vec<(Kind, &'static str)>;

/// Denials drawn (each denies every access to what it matches).
const DENY: [&str; 8] = ["t/a", "t/b", "t/c/#", "r/1", "r/#", "t/w", "t/+", "+/b"];
/// Write grants of a client that may otherwise only read.
const WRITES: [&str; 7] = ["t/a", "t/b", "t/c/d", "t/#", "r/#", "r/1", "t/w"];
/// Read grants of a client that may otherwise only write.
const READS: [&str; 7] = ["t/#", "t/a", "t/c/#", "r/#", "+/b", "t/w", "r/+"];

/// The ACL: each section's entries, and each client's user name.
#[derive(Debug, Clone)]
pub struct Acl {
    anonymous: Rules,
    users: BTreeMap<usize, Rules>,
}

fn draw_rules(rng: &mut Rng) -> Rules {
    let pick = |rng: &mut Rng, from: &[&'static str]| from[rng.below(from.len() as u64) as usize];
    let mut rules = Vec::new();
    match rng.below(10) {
        0..=3 => rules.push((Kind::ReadWrite, "#")),
        4..=6 => {
            rules.push((Kind::ReadWrite, "#"));
            for _ in 0..1 + rng.below(2) {
                rules.push((Kind::Deny, pick(rng, &DENY)));
            }
        }
        7..=8 => {
            rules.push((Kind::Read, "#"));
            for w in WRITES {
                if rng.chance(40) {
                    rules.push((Kind::Write, w));
                }
            }
        }
        _ => {
            rules.push((Kind::Write, "#"));
            for _ in 0..1 + rng.below(2) {
                rules.push((Kind::Read, pick(rng, &READS)));
            }
        }
    }
    if rules.len() > 1 && rng.chance(30) {
        rules.push((Kind::Deny, pick(rng, &DENY)));
    }
    rules
}

impl Acl {
    pub fn draw(rng: &mut Rng, clients: usize) -> Acl {
        let anonymous = draw_rules(rng);
        let mut users = BTreeMap::new();
        for c in 0..clients {
            // One in five connects without a user name.
            if !rng.chance(20) {
                users.insert(c, draw_rules(rng));
            }
        }
        Acl { anonymous, users }
    }

    /// The user name client `c` connects with.
    pub fn user(&self, c: usize) -> Option<String> {
        self.users.contains_key(&c).then(|| format!("c{c}"))
    }

    /// The file the broker loads.
    pub fn text(&self) -> String {
        let mut out = String::from("# the anonymous section\n");
        let lines = |out: &mut String, rules: &Rules| {
            for (k, f) in rules {
                out.push_str(&format!("topic {} {f}\n", k.word()));
            }
        };
        lines(&mut out, &self.anonymous);
        for (c, rules) in &self.users {
            out.push_str(&format!("\nuser c{c}\n"));
            lines(&mut out, rules);
        }
        out
    }

    /// Whether client `c` may have `access` to `topic` (a topic name, or
    /// for [`Access::Subscribe`] a filter, `$share/G/` checked as its
    /// filter).
    pub fn may(&self, c: usize, topic: &str, access: Access) -> bool {
        let rules = self.users.get(&c).unwrap_or(&self.anonymous);
        let topic = shared_filter(topic).map_or(topic, |(_, f)| f);
        let applies = |f: &str| match access {
            Access::Read | Access::Write => matches(f, topic),
            Access::Subscribe => covers(f, topic),
        };
        if rules.iter().any(|(k, f)| *k == Kind::Deny && applies(f)) {
            return false;
        }
        rules.iter().any(|(k, f)| k.grants(access) && applies(f))
    }
}

/// Whether the ACL filter `acl` matches every topic the subscription
/// filter `sub` can match (level by level: `#` covers the rest, the
/// parent level included; `+` covers one level but `#`; a name covers
/// only itself).
fn covers(acl: &str, sub: &str) -> bool {
    let (a, s): (Vec<&str>, Vec<&str>) = (acl.split('/').collect(), sub.split('/').collect());
    for i in 0.. {
        match (a.get(i).copied(), s.get(i).copied()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(x)) if x != "#" => {}
            (Some(l), Some(x)) if l == x && x != "+" && x != "#" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
    false
}

#[test]
fn covers_is_the_relation_the_broker_decides_on() {
    assert!(covers("#", "t/+"));
    assert!(covers("t/#", "t"));
    assert!(covers("t/#", "t/c/#"));
    assert!(covers("t/+", "t/+"));
    assert!(!covers("t/+", "t/#"));
    assert!(!covers("t/#", "+/b"));
    assert!(!covers("t/a", "t/+"));
    assert!(covers("+/b", "t/b"));
}
