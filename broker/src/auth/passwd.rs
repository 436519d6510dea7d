//! Mosquitto password files (`password_file`): parsing, verifying a
//! CONNECT's user name and password against them, and editing them (for a
//! `edgemq passwd` command).
//!
//! A file is lines of `user:hash`; a line whose first non-blank character is
//! `#` is a comment, and blank lines are allowed. Blanks around the user name
//! and around the hash are ignored, as Mosquitto does. Every hash Mosquitto
//! writes is understood (layouts checked against Mosquitto's
//! `security_default.c` of 2.0 and `password_mosq.c` of 2.1):
//!
//! - `$7$ITERATIONS$SALT$HASH`: PBKDF2-HMAC-SHA512 of the password, 64-byte
//!   output; Mosquitto 2.0's default (`mosquitto_passwd` writes 101
//!   iterations and a 12-byte salt; 2.1 writes 1000 iterations and a 64-byte
//!   salt).
//! - `$6$SALT$HASH`: one SHA-512 of the password followed by the salt
//!   (Mosquitto 1.x, and `mosquitto_passwd -H sha512`).
//! - `$argon2id$v=19$m=KIB,t=PASSES,p=LANES$SALT$HASH`: the PHC string of
//!   the reference Argon2 library (`argon2id_hash_encoded`), Mosquitto 2.1's
//!   default (m=47104, t=1, p=1, 64-byte salt, 64-byte hash). `v=` may be
//!   absent (version 0x10), as the reference library accepts.
//!
//! SALT and HASH of `$6$`/`$7$` are standard base64 with padding (OpenSSL's);
//! padding is optional when reading. Those of `$argon2id$` are standard
//! base64 without padding. A salt of `$6$`/`$7$` is 12 or 64 bytes and a
//! hash 64 bytes, as Mosquitto requires.
//!
//! Differences from Mosquitto, all on the side of saying more:
//!
//! - A line Mosquitto would skip or drop with a log line (no `:`, no hash, an
//!   undecodable hash, a user named twice) fails the load with `file:line`.
//! - The password is all of CONNECT's Password bytes; Mosquitto stops at the
//!   first NUL byte (a C string).
//! - An indented `#` line is a comment; Mosquitto reads `  #a:HASH` as the
//!   user `#a`.
//!
//! [`PasswordFile::check`] does the same work for an unknown user as for a
//! wrong password: it verifies against a dummy hash with the parameters of
//! the file's most common kind of entry, so the time of a refusal does not
//! tell whether the user exists. Hashes are compared in constant time.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD, STANDARD_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

/// The iterations `mosquitto_passwd` (2.0) writes for a `$7$` hash.
pub const DEFAULT_PBKDF2_ITERATIONS: u32 = 101;
/// The salt length written for `$6$` and `$7$` hashes: 12 bytes, the only
/// length Mosquitto 2.0 reads (2.1 reads 12 or 64).
pub const SALT_LEN: usize = 12;
/// The SHA-512 output length, the length of every `$6$`/`$7$` hash.
const SHA512_LEN: usize = 64;
/// Mosquitto 2.1's Argon2id salt and hash length (`HASH_LEN`).
const ARGON2_SALT_LEN: usize = 64;
const ARGON2_HASH_LEN: usize = 64;
/// The largest Argon2 memory cost accepted from a file: 4 GiB. More would
/// make every verification a failed allocation.
const MAX_ARGON2_MEMORY_KIB: u32 = 4 * 1024 * 1024;
/// Mosquitto's limit on a user name.
const MAX_USER_LEN: usize = 65535;

/// Standard base64 that reads with or without padding.
const B64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a password file could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of the file is not understood.
    #[error("{origin}:{line}: {problem}")]
    Parse { origin: String, line: usize, problem: LineProblem },
    /// A user name that cannot be written to a password file.
    #[error("invalid user name {user:?}: {reason}")]
    InvalidUser { user: String, reason: &'static str },
    /// An encoded hash given to [`PasswordFile::set_hash`] is not understood.
    #[error("invalid password hash: {0}")]
    InvalidHash(HashProblem),
    /// Hashing parameters that cannot be used.
    #[error("invalid hash parameters: {0}")]
    Params(String),
    #[error("the system random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// What is wrong with one line of a password file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("expected `user:hash`, found no `:`")]
    MissingColon,
    #[error("empty user name before `:`")]
    EmptyUser,
    #[error("user {0:?} has no password hash after `:`")]
    MissingHash(String),
    #[error("user name is longer than 65535 bytes")]
    UserTooLong,
    #[error("user {user:?} is already defined on line {first}")]
    DuplicateUser { user: String, first: usize },
    #[error("password hash of user {user:?}: {problem}")]
    Hash { user: String, problem: HashProblem },
}

/// What is wrong with an encoded password hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashProblem {
    #[error("unknown hash type (expected `$7$`, `$6$` or `$argon2id$`)")]
    UnknownScheme,
    #[error("expected {expected}")]
    Layout { expected: &'static str },
    #[error("iteration count {0:?} is not an integer from 1 to 4294967295")]
    Iterations(String),
    #[error("the {field} is not valid base64")]
    Base64 { field: &'static str },
    #[error("the salt is {0} bytes, expected 12 or 64")]
    SaltLength(usize),
    #[error("the hash is {0} bytes, expected 64")]
    HashLength(usize),
    #[error("argon2 version {0:?} is not 16 or 19")]
    Argon2Version(String),
    #[error("argon2 parameters {0:?} are not `m=KIB,t=PASSES,p=LANES`")]
    Argon2Syntax(String),
    #[error("argon2 memory cost {0} KiB is above the limit of 4 GiB")]
    Argon2Memory(u32),
    #[error("argon2 parameters: {0}")]
    Argon2(String),
}

/// Argon2id costs for a new hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB (`m`).
    pub memory_kib: u32,
    /// Passes over the memory (`t`).
    pub passes: u32,
    /// Lanes (`p`).
    pub lanes: u32,
}

impl Argon2Params {
    /// Mosquitto 2.1's `MOSQ_ARGON2_M`, `_T` and `_P`: 46 MiB, one pass,
    /// one lane.
    pub const MOSQUITTO: Argon2Params = Argon2Params { memory_kib: 47104, passes: 1, lanes: 1 };
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::MOSQUITTO
    }
}

/// How a new password is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashScheme {
    /// `$7$`: PBKDF2-HMAC-SHA512 (Mosquitto 2.0's default, readable by 2.0
    /// and 2.1).
    Pbkdf2Sha512 { iterations: u32 },
    /// `$argon2id$` (Mosquitto 2.1's default; Mosquitto 2.0 cannot read it).
    Argon2id(Argon2Params),
    /// `$6$`: one salted SHA-512 (Mosquitto 1.x). Weak: for old readers only.
    Sha512,
}

impl Default for HashScheme {
    /// `$7$` with 101 iterations, what `mosquitto_passwd` 2.0 writes.
    fn default() -> Self {
        HashScheme::Pbkdf2Sha512 { iterations: DEFAULT_PBKDF2_ITERATIONS }
    }
}

/// A decoded hash, ready to verify against.
#[derive(Clone)]
enum Stored {
    Sha512 { salt: Vec<u8>, hash: Vec<u8> },
    Pbkdf2 { iterations: u32, salt: Vec<u8>, hash: Vec<u8> },
    Argon2id { version: argon2::Version, params: argon2::Params, salt: Vec<u8>, hash: Vec<u8> },
}

/// What a verification costs: entries with equal keys take equal time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CostKey {
    Sha512 { salt_len: usize },
    Pbkdf2 { iterations: u32, salt_len: usize },
    Argon2id { version: u32, m: u32, t: u32, p: u32, salt_len: usize, hash_len: usize },
}

impl Stored {
    fn decode(encoded: &str) -> Result<Stored, HashProblem> {
        if let Some(rest) = encoded.strip_prefix("$7$") {
            let fields: Vec<&str> = rest.split('$').collect();
            let [iterations, salt, hash] = fields[..] else {
                return Err(HashProblem::Layout { expected: "`$7$ITERATIONS$SALT$HASH`" });
            };
            let iterations = match iterations.parse::<u32>() {
                Ok(n) if n >= 1 && iterations.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(HashProblem::Iterations(iterations.to_owned())),
            };
            let (salt, hash) = decode_salt_hash(salt, hash)?;
            Ok(Stored::Pbkdf2 { iterations, salt, hash })
        } else if let Some(rest) = encoded.strip_prefix("$6$") {
            let fields: Vec<&str> = rest.split('$').collect();
            let [salt, hash] = fields[..] else {
                return Err(HashProblem::Layout { expected: "`$6$SALT$HASH`" });
            };
            let (salt, hash) = decode_salt_hash(salt, hash)?;
            Ok(Stored::Sha512 { salt, hash })
        } else if let Some(rest) = encoded.strip_prefix("$argon2id$") {
            decode_argon2id(rest)
        } else {
            Err(HashProblem::UnknownScheme)
        }
    }

    fn verify(&self, password: &[u8]) -> bool {
        match self {
            Stored::Sha512 { salt, hash } => {
                let mut digest = Sha512::new();
                digest.update(password);
                digest.update(salt);
                digest.finalize().as_slice().ct_eq(hash).into()
            }
            Stored::Pbkdf2 { iterations, salt, hash } => {
                let mut out = [0u8; SHA512_LEN];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out);
                out.as_slice().ct_eq(hash).into()
            }
            Stored::Argon2id { version, params, salt, hash } => {
                let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, *version, params.clone());
                let mut out = vec![0u8; hash.len()];
                match hasher.hash_password_into(password, salt, &mut out) {
                    Ok(()) => out.as_slice().ct_eq(hash).into(),
                    Err(_) => false,
                }
            }
        }
    }

    fn cost(&self) -> CostKey {
        match self {
            Stored::Sha512 { salt, .. } => CostKey::Sha512 { salt_len: salt.len() },
            Stored::Pbkdf2 { iterations, salt, .. } => {
                CostKey::Pbkdf2 { iterations: *iterations, salt_len: salt.len() }
            }
            Stored::Argon2id { version, params, salt, hash } => CostKey::Argon2id {
                version: *version as u32,
                m: params.m_cost(),
                t: params.t_cost(),
                p: params.p_cost(),
                salt_len: salt.len(),
                hash_len: hash.len(),
            },
        }
    }

    /// A hash of the same kind and cost whose password nobody knows: an
    /// all-zero hash (finding a password for it is a preimage attack).
    fn dummy_like(&self) -> Stored {
        match self {
            Stored::Sha512 { salt, hash } => Stored::Sha512 { salt: vec![0; salt.len()], hash: vec![0; hash.len()] },
            Stored::Pbkdf2 { iterations, salt, hash } => {
                Stored::Pbkdf2 { iterations: *iterations, salt: vec![0; salt.len()], hash: vec![0; hash.len()] }
            }
            Stored::Argon2id { version, params, salt, hash } => Stored::Argon2id {
                version: *version,
                params: params.clone(),
                salt: vec![0; salt.len()],
                hash: vec![0; hash.len()],
            },
        }
    }

    /// The dummy for a file with no entries: a `$7$` of `mosquitto_passwd`.
    fn default_dummy() -> Stored {
        Stored::Pbkdf2 { iterations: DEFAULT_PBKDF2_ITERATIONS, salt: vec![0; SALT_LEN], hash: vec![0; SHA512_LEN] }
    }
}

fn decode_salt_hash(salt: &str, hash: &str) -> Result<(Vec<u8>, Vec<u8>), HashProblem> {
    let salt = B64_LENIENT.decode(salt).map_err(|_| HashProblem::Base64 { field: "salt" })?;
    if salt.len() != SALT_LEN && salt.len() != SHA512_LEN {
        return Err(HashProblem::SaltLength(salt.len()));
    }
    let hash = B64_LENIENT.decode(hash).map_err(|_| HashProblem::Base64 { field: "hash" })?;
    if hash.len() != SHA512_LEN {
        return Err(HashProblem::HashLength(hash.len()));
    }
    Ok((salt, hash))
}

/// Decodes what follows `$argon2id$`: `[v=V$]m=M,t=T,p=P$SALT$HASH`, in the
/// reference library's order.
fn decode_argon2id(rest: &str) -> Result<Stored, HashProblem> {
    const LAYOUT: HashProblem = HashProblem::Layout { expected: "`$argon2id$v=19$m=KIB,t=PASSES,p=LANES$SALT$HASH`" };
    let fields: Vec<&str> = rest.split('$').collect();
    let (version, costs, salt, hash) = match fields[..] {
        [version, costs, salt, hash] => {
            let version = match version.strip_prefix("v=") {
                Some("16") => argon2::Version::V0x10,
                Some("19") => argon2::Version::V0x13,
                Some(other) => return Err(HashProblem::Argon2Version(other.to_owned())),
                None => return Err(LAYOUT),
            };
            (version, costs, salt, hash)
        }
        [costs, salt, hash] => (argon2::Version::V0x10, costs, salt, hash),
        _ => return Err(LAYOUT),
    };
    let syntax = || HashProblem::Argon2Syntax(costs.to_owned());
    let mut parts = costs.split(',');
    let mut number = |key: &str| -> Result<u32, HashProblem> {
        let value = parts.next().and_then(|p| p.strip_prefix(key)).ok_or_else(syntax)?;
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        value.parse::<u32>().map_err(|_| syntax())
    };
    let m = number("m=")?;
    let t = number("t=")?;
    let p = number("p=")?;
    if parts.next().is_some() {
        return Err(syntax());
    }
    if m > MAX_ARGON2_MEMORY_KIB {
        return Err(HashProblem::Argon2Memory(m));
    }
    let salt = STANDARD_NO_PAD.decode(salt).map_err(|_| HashProblem::Base64 { field: "salt" })?;
    let hash = STANDARD_NO_PAD.decode(hash).map_err(|_| HashProblem::Base64 { field: "hash" })?;
    if salt.len() < argon2::MIN_SALT_LEN {
        return Err(HashProblem::Argon2(format!("salt of {} bytes is below 8", salt.len())));
    }
    let params = argon2::Params::new(m, t, p, Some(hash.len())).map_err(|e| HashProblem::Argon2(e.to_string()))?;
    Ok(Stored::Argon2id { version, params, salt, hash })
}

/// One line of a file, kept to write the file back.
#[derive(Clone)]
enum Line {
    /// A comment or blank line, as read (without its line break).
    Other(String),
    Entry {
        user: String,
        encoded: String,
        stored: Stored,
    },
}

/// A loaded password file.
#[derive(Clone)]
pub struct PasswordFile {
    /// The file's name in error messages.
    origin: String,
    lines: Vec<Line>,
    /// User name to index in `lines`.
    index: HashMap<String, usize>,
    /// Verified for unknown users (see the module documentation).
    dummy: Stored,
}

impl fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordFile").field("origin", &self.origin).field("users", &self.index.len()).finish()
    }
}

impl PasswordFile {
    /// An empty file (for `passwd -c`), named `origin` in error messages.
    pub fn empty(origin: impl Into<String>) -> PasswordFile {
        PasswordFile { origin: origin.into(), lines: Vec::new(), index: HashMap::new(), dummy: Stored::default_dummy() }
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<PasswordFile, PasswdError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| PasswdError::Io { path: path.to_owned(), source })?;
        Self::parse_bytes(&bytes, &path.display().to_string())
    }

    /// Parses a file's text; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<PasswordFile, PasswdError> {
        Self::parse_bytes(text.as_bytes(), origin)
    }

    fn parse_bytes(bytes: &[u8], origin: &str) -> Result<PasswordFile, PasswdError> {
        let mut file = PasswordFile::empty(origin);
        if bytes.is_empty() {
            return Ok(file);
        }
        let mut first_line = HashMap::new();
        // A final line break ends the last line; it does not start another.
        let raw_lines = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        for (i, raw) in raw_lines.split(|&b| b == b'\n').enumerate() {
            let number = i + 1;
            let error = |problem| PasswdError::Parse { origin: origin.to_owned(), line: number, problem };
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let text = std::str::from_utf8(raw).map_err(|_| error(LineProblem::NotUtf8))?;
            let trimmed = text.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                file.lines.push(Line::Other(text.to_owned()));
                continue;
            }
            let (user, encoded) = trimmed.split_once(':').ok_or_else(|| error(LineProblem::MissingColon))?;
            let (user, encoded) = (user.trim(), encoded.trim());
            if user.is_empty() {
                return Err(error(LineProblem::EmptyUser));
            }
            if user.len() > MAX_USER_LEN {
                return Err(error(LineProblem::UserTooLong));
            }
            if encoded.is_empty() {
                return Err(error(LineProblem::MissingHash(user.to_owned())));
            }
            if let Some(&first) = first_line.get(user) {
                return Err(error(LineProblem::DuplicateUser { user: user.to_owned(), first }));
            }
            let stored = Stored::decode(encoded)
                .map_err(|problem| error(LineProblem::Hash { user: user.to_owned(), problem }))?;
            first_line.insert(user.to_owned(), number);
            file.index.insert(user.to_owned(), file.lines.len());
            file.lines.push(Line::Entry { user: user.to_owned(), encoded: encoded.to_owned(), stored });
        }
        file.refresh_dummy();
        Ok(file)
    }

    /// Whether `password` is `user`'s. An unknown user costs the same work
    /// as a wrong password.
    pub fn check(&self, user: &str, password: &[u8]) -> bool {
        match self.index.get(user).and_then(|&i| self.lines.get(i)) {
            Some(Line::Entry { stored, .. }) => stored.verify(password),
            _ => {
                std::hint::black_box(self.dummy.verify(password));
                false
            }
        }
    }

    /// Whether the file has an entry for `user`.
    pub fn contains(&self, user: &str) -> bool {
        self.index.contains_key(user)
    }

    /// The users, in file order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|line| match line {
            Line::Entry { user, .. } => Some(user.as_str()),
            Line::Other(_) => None,
        })
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Sets `user`'s password, hashed with `scheme`: replaces the user's
    /// entry in place, or appends one. Returns whether the user existed.
    pub fn set_password(&mut self, user: &str, password: &[u8], scheme: HashScheme) -> Result<bool, PasswdError> {
        validate_user(user)?;
        let encoded = hash_password(password, scheme)?;
        self.set_hash(user, &encoded)
    }

    /// Sets `user`'s entry to an already encoded hash (checked). Returns
    /// whether the user existed.
    pub fn set_hash(&mut self, user: &str, encoded: &str) -> Result<bool, PasswdError> {
        validate_user(user)?;
        let stored = Stored::decode(encoded).map_err(PasswdError::InvalidHash)?;
        let entry = Line::Entry { user: user.to_owned(), encoded: encoded.to_owned(), stored };
        let existed = match self.index.get(user) {
            Some(&i) => {
                self.lines[i] = entry;
                true
            }
            None => {
                self.index.insert(user.to_owned(), self.lines.len());
                self.lines.push(entry);
                false
            }
        };
        self.refresh_dummy();
        Ok(existed)
    }

    /// Removes `user`'s entry (for `passwd -D`). Returns whether it existed.
    pub fn remove(&mut self, user: &str) -> bool {
        let Some(i) = self.index.remove(user) else {
            return false;
        };
        self.lines.remove(i);
        for slot in self.index.values_mut() {
            if *slot > i {
                *slot -= 1;
            }
        }
        self.refresh_dummy();
        true
    }

    /// The file's text: comments and blank lines as read, entries as
    /// `user:hash`, each line ended by `\n`.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for line in &self.lines {
            match line {
                Line::Other(other) => text.push_str(other),
                Line::Entry { user, encoded, .. } => {
                    text.push_str(user);
                    text.push(':');
                    text.push_str(encoded);
                }
            }
            text.push('\n');
        }
        text
    }

    /// Writes [`Self::to_text`] to `path`, through a temporary file in the
    /// same directory renamed over it; on Unix the file is private to its
    /// owner (mode 0600).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), PasswdError> {
        use std::io::Write as _;
        let path = path.as_ref();
        let io = |source| PasswdError::Io { path: path.to_owned(), source };
        let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = options.open(&tmp).map_err(io)?;
        out.write_all(self.to_text().as_bytes()).map_err(io)?;
        out.sync_all().map_err(io)?;
        drop(out);
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Points the dummy at the most common cost among the entries (the
    /// first in file order on a tie).
    fn refresh_dummy(&mut self) {
        let mut counts: HashMap<CostKey, (usize, usize, &Stored)> = HashMap::new();
        for (order, line) in self.lines.iter().enumerate() {
            if let Line::Entry { stored, .. } = line {
                counts.entry(stored.cost()).or_insert((0, order, stored)).0 += 1;
            }
        }
        let typical = counts.values().max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1))).map(|(_, _, stored)| *stored);
        self.dummy = typical.map_or_else(Stored::default_dummy, Stored::dummy_like);
    }

    #[cfg(test)]
    fn dummy_cost(&self) -> CostKey {
        self.dummy.cost()
    }
}

fn validate_user(user: &str) -> Result<(), PasswdError> {
    let reason = if user.is_empty() {
        Some("it is empty")
    } else if user.len() > MAX_USER_LEN {
        Some("it is longer than 65535 bytes")
    } else if user.contains(':') {
        Some("it contains `:`")
    } else if user.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if user.starts_with('#') {
        Some("it starts with `#`, which makes a comment line")
    } else if user.trim() != user {
        Some("it starts or ends with a blank, which Mosquitto strips")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(PasswdError::InvalidUser { user: user.to_owned(), reason }),
        None => Ok(()),
    }
}

fn random_bytes(len: usize) -> Result<Vec<u8>, PasswdError> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(PasswdError::Random)?;
    Ok(bytes)
}

/// Hashes `password` with `scheme` and a fresh random salt, encoded as
/// Mosquitto writes it.
pub fn hash_password(password: &[u8], scheme: HashScheme) -> Result<String, PasswdError> {
    match scheme {
        HashScheme::Pbkdf2Sha512 { iterations } => hash_password_7(password, iterations),
        HashScheme::Argon2id(params) => hash_password_argon2id(password, params),
        HashScheme::Sha512 => hash_password_6(password),
    }
}

/// `$7$ITERATIONS$SALT$HASH`: PBKDF2-HMAC-SHA512 with a 12-byte salt, as
/// `mosquitto_passwd` 2.0 writes ([`DEFAULT_PBKDF2_ITERATIONS`] is its
/// count).
pub fn hash_password_7(password: &[u8], iterations: u32) -> Result<String, PasswdError> {
    if iterations == 0 {
        return Err(PasswdError::Params("PBKDF2 needs at least one iteration".to_owned()));
    }
    let salt = random_bytes(SALT_LEN)?;
    let mut hash = [0u8; SHA512_LEN];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, iterations, &mut hash);
    Ok(format!("$7${iterations}${}${}", STANDARD.encode(&salt), STANDARD.encode(hash)))
}

/// `$6$SALT$HASH`: SHA-512 of the password then a 12-byte salt (Mosquitto
/// 1.x; weak, for old readers only).
pub fn hash_password_6(password: &[u8]) -> Result<String, PasswdError> {
    let salt = random_bytes(SALT_LEN)?;
    let mut digest = Sha512::new();
    digest.update(password);
    digest.update(&salt);
    Ok(format!("$6${}${}", STANDARD.encode(&salt), STANDARD.encode(digest.finalize())))
}

/// `$argon2id$v=19$m=..,t=..,p=..$SALT$HASH` with a 64-byte salt and a
/// 64-byte hash, as Mosquitto 2.1 writes ([`Argon2Params::MOSQUITTO`] are
/// its costs).
pub fn hash_password_argon2id(password: &[u8], params: Argon2Params) -> Result<String, PasswdError> {
    let Argon2Params { memory_kib: m, passes: t, lanes: p } = params;
    if m > MAX_ARGON2_MEMORY_KIB {
        return Err(PasswdError::Params(format!("argon2 memory cost {m} KiB is above the limit of 4 GiB")));
    }
    let costs = argon2::Params::new(m, t, p, Some(ARGON2_HASH_LEN)).map_err(|e| PasswdError::Params(e.to_string()))?;
    let salt = random_bytes(ARGON2_SALT_LEN)?;
    let mut hash = [0u8; ARGON2_HASH_LEN];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, costs)
        .hash_password_into(password, &salt, &mut hash)
        .map_err(|e| PasswdError::Params(e.to_string()))?;
    Ok(format!("$argon2id$v=19$m={m},t={t},p={p}${}${}", STANDARD_NO_PAD.encode(&salt), STANDARD_NO_PAD.encode(hash)))
}

/// Verifies `password` against one encoded hash.
pub fn verify_encoded(encoded: &str, password: &[u8]) -> Result<bool, HashProblem> {
    Ok(Stored::decode(encoded)?.verify(password))
}

#[cfg(test)]
#[path = "passwd_tests.rs"]
mod tests;
