//! `edgemq passwd`: manages a Mosquitto password file as `mosquitto_passwd`
//! does (`-c` create, `-b` password on the command line, `-D` delete, `-U`
//! hash a plain-text file,
//! `-H`/`-I` hash choice), through [`crate::auth::passwd::PasswordFile`],
//! written atomically with mode 0600.
//!
//! Without `-b` the password is read from standard input, one line, when
//! it is not a terminal; on a terminal the command refuses rather than
//! echo the password (no no-echo prompt yet).

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;

use crate::auth::passwd::{Argon2Params, HashScheme, PasswdError, PasswordFile, DEFAULT_PBKDF2_ITERATIONS};

/// Flags of `edgemq passwd`, as `mosquitto_passwd` spells them.
#[derive(Debug, Clone, clap::Args)]
pub struct PasswdArgs {
    /// Create a new password file, overwriting an existing one.
    #[arg(short = 'c')]
    pub create: bool,
    /// Take the password from the command line.
    #[arg(short = 'b')]
    pub batch: bool,
    /// Delete the user.
    #[arg(short = 'D')]
    pub delete: bool,
    /// Convert a file of `user:password` lines in plain text to hashes.
    #[arg(short = 'U')]
    pub upgrade: bool,
    /// Hash: sha512, sha512-pbkdf2 (default) or argon2id.
    #[arg(short = 'H', value_name = "HASH", default_value = "sha512-pbkdf2")]
    pub hash: String,
    /// PBKDF2 iterations (or Argon2 passes).
    #[arg(short = 'I', value_name = "ITERATIONS")]
    pub iterations: Option<u32>,
    /// The password file.
    pub file: PathBuf,
    /// The user.
    pub user: Option<String>,
    /// The password (with -b).
    pub password: Option<String>,
}

/// Why `edgemq passwd` failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswdCmdError {
    #[error(transparent)]
    File(#[from] PasswdError),
    #[error("{0}")]
    Usage(String),
    #[error("cannot read the password from standard input: {0}")]
    Stdin(std::io::Error),
}

fn scheme(args: &PasswdArgs) -> Result<HashScheme, PasswdCmdError> {
    match args.hash.as_str() {
        "sha512-pbkdf2" => {
            Ok(HashScheme::Pbkdf2Sha512 { iterations: args.iterations.unwrap_or(DEFAULT_PBKDF2_ITERATIONS) })
        }
        "sha512" => Ok(HashScheme::Sha512),
        "argon2id" => {
            let mut params = Argon2Params::default();
            if let Some(passes) = args.iterations {
                params.passes = passes;
            }
            Ok(HashScheme::Argon2id(params))
        }
        other => Err(PasswdCmdError::Usage(format!("unknown hash {other:?} (sha512, sha512-pbkdf2 or argon2id)"))),
    }
}

fn read_password() -> Result<String, PasswdCmdError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(PasswdCmdError::Usage("give the password with -b, or on standard input".into()));
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).map_err(PasswdCmdError::Stdin)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// `-U`: hashes every `user:password` line of a plain-text file in place.
fn upgrade(args: &PasswdArgs) -> Result<(), PasswdCmdError> {
    let text =
        std::fs::read_to_string(&args.file).map_err(|source| PasswdError::Io { path: args.file.clone(), source })?;
    let scheme = scheme(args)?;
    let mut file = PasswordFile::empty(args.file.display().to_string());
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, password) = line.split_once(':').ok_or_else(|| {
            PasswdCmdError::Usage(format!("{}:{}: no `:` between user and password", args.file.display(), n + 1))
        })?;
        file.set_password(user, password.as_bytes(), scheme)?;
    }
    file.save(&args.file)?;
    Ok(())
}

/// Runs `edgemq passwd` with `args`.
pub fn run(args: &PasswdArgs) -> Result<(), PasswdCmdError> {
    if args.upgrade {
        return upgrade(args);
    }
    let user = args.user.as_deref().ok_or_else(|| PasswdCmdError::Usage("a user name is needed".into()))?;
    if args.batch != args.password.is_some() {
        return Err(PasswdCmdError::Usage("-b takes the password as the last argument, and only -b does".into()));
    }
    let mut file = if args.create {
        if args.delete {
            return Err(PasswdCmdError::Usage("-c and -D cannot be used together".into()));
        }
        PasswordFile::empty(args.file.display().to_string())
    } else {
        PasswordFile::load(&args.file)?
    };
    if args.delete {
        if !file.remove(user) {
            return Err(PasswdCmdError::Usage(format!("user {user} not in {}", args.file.display())));
        }
    } else {
        let scheme = scheme(args)?;
        let password = match &args.password {
            Some(p) => p.clone(),
            None => read_password()?,
        };
        file.set_password(user, password.as_bytes(), scheme)?;
    }
    file.save(&args.file)?;
    Ok(())
}
