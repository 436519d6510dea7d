//! Mosquitto ACL files (`acl_file`): parsing, and deciding whether a client
//! may publish to a topic, receive a message of a topic, or subscribe to a
//! topic filter.
//!
//! # The file
//!
//! ```text
//! # Before the first `user` line: the section of clients without a user name.
//! topic read public/#
//!
//! user alice
//! topic readwrite alice/#
//! topic deny alice/secret
//! # No access word: readwrite.
//! topic sensors/+/temperature
//!
//! # Patterns apply to every client, wherever they stand in the file.
//! pattern write devices/%c/state
//! pattern read users/%u/#
//! ```
//!
//! - `user NAME`: the `topic` lines after it, up to the next `user` line,
//!   are NAME's (the rest of the line, trimmed, is the name; a name given
//!   twice adds to one section). `topic` lines before the first `user` line
//!   are for clients that gave no user name.
//! - `topic [read|write|readwrite|deny] FILTER` and
//!   `pattern [read|write|readwrite|deny] FILTER`: without an access word
//!   the access is `readwrite`. FILTER is the rest of the line, trimmed, so
//!   it may hold spaces; it must be a valid MQTT topic filter.
//! - In a `pattern`, `%u` is replaced by the client's user name and `%c` by
//!   its client id; a pattern with `%u` does not apply to a client without
//!   a user name.
//! - A line whose first non-blank character is `#` is a comment (a `#`
//!   later in a line is part of it); blank lines are allowed; words are
//!   separated by spaces or tabs.
//!
//! # Decisions (Mosquitto 2.0's `mosquitto_acl_check_default`)
//!
//! 1. The client's own section (its user's, or the anonymous one) decides
//!    first: a matching `deny` refuses; otherwise a matching entry that
//!    grants the access allows. A user name with no section has none.
//! 2. Otherwise the patterns decide the same way: a matching `deny` pattern
//!    refuses, a granting one allows.
//! 3. Otherwise access is refused (so an empty ACL file refuses all).
//!
//! So a `deny` overrides every grant of its own section wherever it stands
//! in the file, as in Mosquitto, which puts denials first in each list; but
//! a user's own grant is decided before the patterns, so a `deny` pattern
//! does not take away what a user's `topic` line grants (Mosquitto's order
//! too).
//!
//! A topic starting with `$` (such as `$SYS/...`) is matched only by a
//! filter whose first level is not a wildcard: `#` and `+/...` do not grant
//! `$SYS`; only an entry such as `topic read $SYS/#` does.
//!
//! # Substitution must not widen access
//!
//! - A client whose user name or client id contains `+` or `#` gets nothing
//!   from the patterns (Mosquitto 2.0 refuses it at that step): its
//!   substitution would make a wildcard.
//! - A granting pattern does not apply when a value it substitutes contains
//!   `/` or is empty. Mosquitto 2.0 substitutes those (1.x refused `/`):
//!   user `bob/x` would get `users/bob/x/#` from `users/%u/#`, inside user
//!   `bob`'s tree. A `deny` pattern is still applied with them (it can only
//!   take away).
//!
//! # Subscriptions
//!
//! Mosquitto 2.0's default check allows every SUBSCRIBE (`FIXME - implement
//! ACL subscription strings`) and checks `read` for each message delivered.
//! Here [`Access::Subscribe`] is decided on the filter itself, in the same
//! order as above, with "the ACL filter covers the subscription" in place of
//! "matches": an ACL filter covers a subscription filter when every topic
//! the subscription can match is matched by the ACL filter (the relation of
//! `mosquitto_sub_matches_acl` in Mosquitto's newer library, which 2.0's
//! default check does not use). A `read` (or `readwrite`) entry that covers
//! the filter allows it; a `deny` that covers it refuses it; a `deny` that
//! only overlaps it (`deny a/secret` against a subscription to `a/#`) does
//! not, and its topics are kept from the client by the [`Access::Read`]
//! check, which the broker makes for every message it delivers. So `#` is
//! refused where only `a/#` is granted, and `a/+` is allowed by `a/#`.
//! A shared subscription is checked on its filter without the
//! `$share/NAME/` prefix.
//!
//! # Differences from Mosquitto
//!
//! - `topic read` (an access word and no filter) is an error; Mosquitto
//!   reads it as the filter `read` with readwrite access.
//! - An indented `#` comment is a comment; Mosquitto refuses it.
//! - Tabs separate words; Mosquitto splits on spaces only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Receive a message published to the topic (checked per delivery).
    Read,
    /// Publish to the topic (a topic name, no wildcards).
    Write,
    /// Subscribe to the topic filter (wildcards allowed).
    Subscribe,
}

/// Why an ACL file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of the file is not understood.
    #[error("{origin}:{line}: {problem}")]
    Parse { origin: String, line: usize, problem: AclProblem },
}

/// What is wrong with one line of an ACL file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclProblem {
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("unknown keyword {0:?} (expected `user`, `topic` or `pattern`)")]
    UnknownKeyword(String),
    #[error("`user` needs a user name")]
    MissingUser,
    #[error("`{0}` needs a topic filter")]
    MissingFilter(&'static str),
    #[error("`{keyword} {access}` needs a topic filter after the access word")]
    MissingFilterAfterAccess { keyword: &'static str, access: String },
    #[error("invalid access {0:?} (expected `read`, `write`, `readwrite` or `deny`)")]
    InvalidAccess(String),
    #[error("invalid topic filter {filter:?}: {reason}")]
    InvalidFilter { filter: String, reason: &'static str },
}

/// The access word of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Read,
    Write,
    ReadWrite,
}

impl Grant {
    fn allows(self, access: Access) -> bool {
        match access {
            Access::Read | Access::Subscribe => matches!(self, Grant::Read | Grant::ReadWrite),
            Access::Write => matches!(self, Grant::Write | Grant::ReadWrite),
        }
    }
}

/// One section's entries: denials are decided before grants.
#[derive(Debug, Clone)]
struct Rules<R> {
    denies: Vec<R>,
    grants: Vec<(Grant, R)>,
}

impl<R> Default for Rules<R> {
    fn default() -> Self {
        Rules { denies: Vec::new(), grants: Vec::new() }
    }
}

impl<R> Rules<R> {
    fn push(&mut self, grant: Option<Grant>, rule: R) {
        match grant {
            None => self.denies.push(rule),
            Some(grant) => self.grants.push((grant, rule)),
        }
    }

    fn is_empty(&self) -> bool {
        self.denies.is_empty() && self.grants.is_empty()
    }
}

/// A `pattern` entry's filter, with what it substitutes.
#[derive(Debug, Clone)]
struct Pattern {
    filter: String,
    uses_user: bool,
    uses_client: bool,
}

/// A loaded ACL file.
#[derive(Debug, Clone, Default)]
pub struct AclFile {
    /// `topic` entries before the first `user` line.
    anonymous: Rules<String>,
    users: HashMap<String, Rules<String>>,
    patterns: Rules<Pattern>,
}

impl AclFile {
    /// Reads and parses the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<AclFile, AclError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| AclError::Io { path: path.to_owned(), source })?;
        Self::parse_bytes(&bytes, &path.display().to_string())
    }

    /// Parses a file's text; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<AclFile, AclError> {
        Self::parse_bytes(text.as_bytes(), origin)
    }

    fn parse_bytes(bytes: &[u8], origin: &str) -> Result<AclFile, AclError> {
        let mut file = AclFile::default();
        let mut user: Option<String> = None;
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let error = |problem| AclError::Parse { origin: origin.to_owned(), line: i + 1, problem };
            let text = std::str::from_utf8(raw).map_err(|_| error(AclProblem::NotUtf8))?;
            let line = text.trim_matches(is_blank);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = split_word(line);
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(error(AclProblem::MissingUser));
                    }
                    user = Some(rest.to_owned());
                }
                "topic" | "pattern" => {
                    let keyword = if keyword == "topic" { "topic" } else { "pattern" };
                    let (grant, filter) = parse_entry(keyword, rest).map_err(error)?;
                    if keyword == "pattern" {
                        let (_, uses_user, uses_client) = substitute(filter, None, "");
                        file.patterns.push(grant, Pattern { filter: filter.to_owned(), uses_user, uses_client });
                    } else {
                        let section = match &user {
                            Some(name) => file.users.entry(name.clone()).or_default(),
                            None => &mut file.anonymous,
                        };
                        section.push(grant, filter.to_owned());
                    }
                }
                other => return Err(error(AclProblem::UnknownKeyword(other.to_owned()))),
            }
        }
        Ok(file)
    }

    /// Whether the client (`user`: CONNECT's User Name, if any) may have
    /// `access` to `topic`: a topic name for [`Access::Read`] and
    /// [`Access::Write`], a topic filter for [`Access::Subscribe`]. An
    /// invalid topic or filter is refused.
    pub fn check(&self, user: Option<&str>, client_id: &str, topic: &str, access: Access) -> bool {
        let valid = match access {
            Access::Read | Access::Write => is_topic_name(topic),
            Access::Subscribe => check_filter(topic).is_ok(),
        };
        if !valid {
            return false;
        }
        let applies = |acl: &str| match access {
            Access::Read | Access::Write => matches(acl, topic),
            Access::Subscribe => covers(acl, topic),
        };

        let own = match user {
            Some(name) => self.users.get(name),
            None => Some(&self.anonymous),
        };
        if let Some(rules) = own {
            if rules.denies.iter().any(|acl| applies(acl)) {
                return false;
            }
            if rules.grants.iter().any(|(grant, acl)| grant.allows(access) && applies(acl)) {
                return true;
            }
        }

        if self.patterns.is_empty() {
            return false;
        }
        let wildcard = |value: &str| value.contains(['+', '#']);
        if user.is_some_and(wildcard) || wildcard(client_id) {
            return false;
        }
        for pattern in &self.patterns.denies {
            if let (Some(acl), _, _) = substitute(&pattern.filter, user, client_id) {
                if applies(&acl) {
                    return false;
                }
            }
        }
        let unsafe_value = |value: &str| value.is_empty() || value.contains('/');
        for (grant, pattern) in &self.patterns.grants {
            if !grant.allows(access)
                || (pattern.uses_user && user.is_some_and(unsafe_value))
                || (pattern.uses_client && unsafe_value(client_id))
            {
                continue;
            }
            if let (Some(acl), _, _) = substitute(&pattern.filter, user, client_id) {
                if applies(&acl) {
                    return true;
                }
            }
        }
        false
    }

    /// The user names that have a section.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\r'
}

/// The first word of `line` and the rest, trimmed.
fn split_word(line: &str) -> (&str, &str) {
    match line.split_once(is_blank) {
        Some((word, rest)) => (word, rest.trim_matches(is_blank)),
        None => (line, ""),
    }
}

fn access_word(word: &str) -> Option<Option<Grant>> {
    match word {
        "read" => Some(Some(Grant::Read)),
        "write" => Some(Some(Grant::Write)),
        "readwrite" => Some(Some(Grant::ReadWrite)),
        "deny" => Some(None),
        _ => None,
    }
}

/// Parses what follows `topic` or `pattern`: the grant (`None` for `deny`)
/// and the filter.
fn parse_entry<'a>(keyword: &'static str, rest: &'a str) -> Result<(Option<Grant>, &'a str), AclProblem> {
    if rest.is_empty() {
        return Err(AclProblem::MissingFilter(keyword));
    }
    let (first, filter) = split_word(rest);
    let (grant, filter) = if filter.is_empty() {
        if access_word(first).is_some() {
            return Err(AclProblem::MissingFilterAfterAccess { keyword, access: first.to_owned() });
        }
        (Some(Grant::ReadWrite), first)
    } else {
        let grant = access_word(first).ok_or_else(|| AclProblem::InvalidAccess(first.to_owned()))?;
        (grant, filter)
    };
    check_filter(filter).map_err(|reason| AclProblem::InvalidFilter { filter: filter.to_owned(), reason })?;
    Ok((grant, filter))
}

/// Whether `filter` is a valid MQTT topic filter, and why not.
fn check_filter(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("it is empty");
    }
    if filter.len() > 65535 {
        return Err("it is longer than 65535 bytes");
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') {
            if level != "#" {
                return Err("`#` must be a whole level");
            }
            if levels.peek().is_some() {
                return Err("`#` must be the last level");
            }
        }
        if level.contains('+') && level != "+" {
            return Err("`+` must be a whole level");
        }
    }
    Ok(())
}

fn is_topic_name(topic: &str) -> bool {
    !topic.is_empty() && topic.len() <= 65535 && !topic.contains(['+', '#'])
}

/// `pattern` with `%u` replaced by `user` and `%c` by `client_id`, in one
/// pass as Mosquitto does (a replacement is not scanned again); `None` if it
/// has `%u` and there is no user. Also says whether `%u` and `%c` occur.
fn substitute(pattern: &str, user: Option<&str>, client_id: &str) -> (Option<String>, bool, bool) {
    let mut out = String::with_capacity(pattern.len());
    let (mut uses_user, mut uses_client) = (false, false);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('%', Some('c')) => {
                chars.next();
                uses_client = true;
                out.push_str(client_id);
            }
            ('%', Some('u')) => {
                chars.next();
                uses_user = true;
                out.push_str(user.unwrap_or(""));
            }
            _ => out.push(c),
        }
    }
    let out = if uses_user && user.is_none() { None } else { Some(out) };
    (out, uses_user, uses_client)
}

/// Whether the topic filter `filter` matches the topic name `topic`.
fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let (mut f, mut t) = (filter.split('/'), topic.split('/'));
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) | (None, None) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            _ => return false,
        }
    }
}

/// Whether every topic the filter `sub` matches is matched by the filter
/// `acl`.
fn covers(acl: &str, sub: &str) -> bool {
    if sub.starts_with('$') && acl.starts_with(['+', '#']) {
        return false;
    }
    let (mut a, mut s) = (acl.split('/'), sub.split('/'));
    // Whether the subscription's levels so far join to "": then the parent
    // a `#` matches (`x/#` matches `x`) is the empty topic, which is not a
    // topic name, so `+/#` there covers `#` (`+/#` covers `#`, `/+/#`
    // covers `/#`; `x/+/#` does not cover `x/#`, which matches `x`).
    let (mut empty_prefix, mut first) = (true, true);
    loop {
        let level = match (a.next(), s.next()) {
            (Some("#"), _) | (None, None) => return true,
            (Some("+"), Some("#")) if empty_prefix => return a.next() == Some("#") && a.next().is_none(),
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(sl)) => sl,
            (Some(al), Some(sl)) if al == sl && sl != "+" => sl,
            _ => return false,
        };
        empty_prefix = first && level.is_empty();
        first = false;
    }
}

#[cfg(test)]
#[path = "acl_tests.rs"]
pub(crate) mod tests;

#[cfg(test)]
#[path = "acl_interop_tests.rs"]
mod interop_tests;
