//! `edgemq import-mosquitto`: reads a Mosquitto configuration (with the
//! files its `include_dir` lines name) and writes the equivalent
//! `edgemq.toml`. This module owns reading the Mosquitto files into
//! [`Line`]s and the command itself; [`translate`] owns what each Mosquitto
//! key becomes, [`bridge`] what a `connection` section becomes.
//!
//! Every key carried over is preceded by a comment naming the Mosquitto
//! file, line and text it comes from. A key that cannot be carried over, or
//! that edgemq treats differently, gives a warning: on standard error and
//! as a `# WARNING:` comment at the top of the output. A malformed line (an
//! unreadable number or boolean, a `listener` without a port, an
//! `include_dir` that cannot be listed) stops the import with its file
//! and line, as it would stop Mosquitto.

pub mod bridge;
pub mod translate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use translate::{translate, Imported};

/// Flags of `edgemq import-mosquitto`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The Mosquitto configuration file (e.g. /etc/mosquitto/mosquitto.conf).
    pub mosquitto_conf: PathBuf,
    /// Where to write the edgemq configuration (default: standard output).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// One line of a Mosquitto configuration: `key value...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The file it is in, as named (by the command line or `include_dir`).
    pub file: Arc<str>,
    /// 1-based.
    pub line: usize,
    pub key: String,
    /// The rest of the line after the key, trimmed (paths may hold spaces).
    pub value: String,
}

impl Line {
    /// `file:line`, for messages.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// The line as written (key and value).
    pub fn text(&self) -> String {
        if self.value.is_empty() {
            self.key.clone()
        } else {
            format!("{} {}", self.key, self.value)
        }
    }

    /// The whitespace-separated words of the value.
    pub fn words(&self) -> Vec<&str> {
        self.value.split_whitespace().collect()
    }
}

/// A line that Mosquitto would refuse too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: `{key}`: {message}")]
pub struct Malformed {
    pub file: String,
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl Malformed {
    pub fn at(l: &Line, message: impl Into<String>) -> Malformed {
        Malformed { file: l.file.to_string(), line: l.line, key: l.key.clone(), message: message.into() }
    }
}

/// Why the import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Malformed(Vec<Malformed>),
    #[error("{file}: cannot write: {source}")]
    Write { file: String, source: std::io::Error },
}

/// How deep `include_dir` may nest (a directory including itself stops here).
const MAX_INCLUDE_DEPTH: usize = 8;

/// The lines of `text` (read from `file`); `include_dir` lines are kept
/// for [`read`] to expand.
pub fn parse_lines(file: &str, text: &str) -> Vec<Line> {
    let file: Arc<str> = Arc::from(file);
    text.lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                return None;
            }
            let (key, value) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
            Some(Line { file: file.clone(), line: i + 1, key: key.to_owned(), value: value.trim().to_owned() })
        })
        .collect()
}

/// The lines of the configuration at `path`, the files of each
/// `include_dir` (those ending in `.conf`, in name order, as Mosquitto)
/// in place of its line.
pub fn read(path: &Path) -> Result<Vec<Line>, ImportError> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    read_into(path, 0, &mut out, &mut bad)?;
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(ImportError::Malformed(bad))
    }
}

fn read_into(path: &Path, depth: usize, out: &mut Vec<Line>, bad: &mut Vec<Malformed>) -> Result<(), ImportError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read { file: name.clone(), source })?;
    for l in parse_lines(&name, &text) {
        if l.key != "include_dir" {
            out.push(l);
            continue;
        }
        if l.value.is_empty() {
            bad.push(Malformed::at(&l, "needs a directory"));
            continue;
        }
        if depth >= MAX_INCLUDE_DEPTH {
            bad.push(Malformed::at(&l, format!("included more than {MAX_INCLUDE_DEPTH} deep (a loop?)")));
            continue;
        }
        let dir = PathBuf::from(&l.value);
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "conf") && p.is_file())
                .collect(),
            Err(e) => {
                bad.push(Malformed::at(&l, format!("cannot list `{}`: {e}", dir.display())));
                continue;
            }
        };
        files.sort();
        for f in files {
            read_into(&f, depth + 1, out, bad)?;
        }
    }
    Ok(())
}

/// Reads and translates the configuration at `path`.
pub fn import(path: &Path) -> Result<Imported, ImportError> {
    let lines = read(path)?;
    translate(&path.display().to_string(), &lines).map_err(ImportError::Malformed)
}

/// The command: imports, prints each warning on standard error, writes
/// the result.
pub fn run(args: &ImportArgs) -> Result<(), ImportError> {
    let imported = import(&args.mosquitto_conf)?;
    for w in &imported.warnings {
        eprintln!("edgemq import-mosquitto: warning: {w}");
    }
    match &args.output {
        Some(out) => std::fs::write(out, &imported.toml)
            .map_err(|source| ImportError::Write { file: out.display().to_string(), source }),
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .write_all(imported.toml.as_bytes())
                .map_err(|source| ImportError::Write { file: "standard output".into(), source })
        }
    }
}

#[cfg(test)]
mod tests;
