//! The file-based authentication and authorization of a listener:
//! Mosquitto's password file and ACL file, loaded together. The session
//! machine asks it at CONNECT (the password; verified off the async
//! workers, see `server/connection.rs`), and the ACL on PUBLISH (write),
//! SUBSCRIBE (the filter), every delivery (read, retained messages
//! included) and when a will is published (write).

use std::path::Path;

use super::acl::{Access, AclError, AclFile};
use super::passwd::{PasswdError, PasswordFile};

/// A listener's password and ACL files, either optional.
#[derive(Clone, Default)]
pub struct FileAuth {
    pub passwords: Option<PasswordFile>,
    pub acl: Option<AclFile>,
}

impl std::fmt::Debug for FileAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileAuth")
            .field("passwords", &self.passwords.as_ref().map(PasswordFile::len))
            .field("acl", &self.acl.is_some())
            .finish()
    }
}

/// A password or ACL file that does not load (names the file and line).
#[derive(Debug, thiserror::Error)]
pub enum FileAuthError {
    #[error(transparent)]
    Passwords(#[from] PasswdError),
    #[error(transparent)]
    Acl(#[from] AclError),
}

impl FileAuth {
    /// Loads the files named; `None` if neither is.
    pub fn load(passwords: Option<&Path>, acl: Option<&Path>) -> Result<Option<FileAuth>, FileAuthError> {
        if passwords.is_none() && acl.is_none() {
            return Ok(None);
        }
        Ok(Some(FileAuth {
            passwords: passwords.map(PasswordFile::load).transpose()?,
            acl: acl.map(AclFile::load).transpose()?,
        }))
    }

    /// Loads the files named again (SIGHUP): a file that does not load
    /// keeps what `old` had from it, and its error is returned to be
    /// logged; a file no longer named is dropped.
    pub fn reload(
        old: Option<&FileAuth>,
        passwords: Option<&Path>,
        acl: Option<&Path>,
    ) -> (Option<FileAuth>, Vec<FileAuthError>) {
        let mut errors = Vec::new();
        let passwords = passwords.and_then(|p| match PasswordFile::load(p) {
            Ok(f) => Some(f),
            Err(e) => {
                errors.push(e.into());
                old.and_then(|o| o.passwords.clone())
            }
        });
        let acl = acl.and_then(|p| match AclFile::load(p) {
            Ok(f) => Some(f),
            Err(e) => {
                errors.push(e.into());
                old.and_then(|o| o.acl.clone())
            }
        });
        let files = (passwords.is_some() || acl.is_some()).then_some(FileAuth { passwords, acl });
        (files, errors)
    }

    /// Whether the ACL (if any) grants `access` to `topic`.
    pub fn allows(&self, user: Option<&str>, client_id: &str, topic: &str, access: Access) -> bool {
        self.acl.as_ref().is_none_or(|a| a.check(user, client_id, topic, access))
    }

    /// Whether a password file decides who may connect.
    pub fn has_passwords(&self) -> bool {
        self.passwords.is_some()
    }

    /// Verifies `user`'s password: CPU work of a hash (PBKDF2, argon2id),
    /// to be run off the async workers. Without a password file, false.
    pub fn check_password(&self, user: &str, password: &[u8]) -> bool {
        self.passwords.as_ref().is_some_and(|p| p.check(user, password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn will_topics_check_quickly() {
        let acl = AclFile::parse(
            "topic readwrite bystander/#\nuser alice\ntopic readwrite a/#\ntopic deny a/secret\nuser bob\ntopic read a/#\npattern readwrite dev/%c/#\n",
            "acl",
        )
        .unwrap();
        let f = FileAuth { passwords: None, acl: Some(acl) };
        assert!(!f.allows(Some("alice"), "alice-will", "b/gone", Access::Write));
        assert!(!f.allows(Some("alice"), "alice-will2", "a/secret", Access::Write));
    }
}
