//! The `[http]` table of the configuration file: the HTTP listener of
//! `/metrics` and the admin API, off unless the table is there.
//!
//! ```toml
//! [http]
//! bind = "127.0.0.1:8080"   # the default; loopback unless configured
//! token = "..."             # Authorization: Bearer <token>
//! username = "admin"        # and/or HTTP basic authentication
//! password = "..."
//! ```
//!
//! A bind address other than loopback without a token or a user name and
//! password is refused at start (the admin API can disconnect clients and
//! delete sessions): a configuration error naming the file, line and key.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::config::ConfigError;

/// The HTTP listener's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    /// Bearer token (`Authorization: Bearer <token>`).
    pub token: Option<String>,
    /// HTTP basic authentication (`Authorization: Basic ...`).
    pub basic: Option<(String, String)>,
}

/// The default address: loopback only.
pub const DEFAULT_BIND: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

impl HttpConfig {
    /// On `bind`, with no credentials (only for loopback addresses).
    pub fn local(bind: SocketAddr) -> HttpConfig {
        HttpConfig { bind, token: None, basic: None }
    }

    /// Whether requests must authenticate.
    pub fn has_credentials(&self) -> bool {
        self.token.is_some() || self.basic.is_some()
    }
}

/// The `[http]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileHttp {
    bind: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
}

impl FileHttp {
    /// The listener's settings, checked; errors name `path`, the line and the key.
    pub(crate) fn resolve(self, path: &Path, text: &str) -> Result<HttpConfig, ConfigError> {
        let err = |key: &str, at: usize, message: String| ConfigError::Invalid {
            file: path.display().to_string(),
            line: crate::config::line_of(text, at),
            key: format!("http.{key}"),
            message,
        };
        // Where the table is, for errors about a key it lacks.
        let table = text.find("[http]").unwrap_or(0);
        let bind = match &self.bind {
            Some(b) => b
                .get_ref()
                .parse::<SocketAddr>()
                .map_err(|_| err("bind", b.span().start, format!("`{}` is not an address IP:PORT", b.get_ref())))?,
            None => DEFAULT_BIND,
        };
        let nonempty = |v: Option<Spanned<String>>, key: &str| match v {
            Some(s) if s.get_ref().is_empty() => Err(err(key, s.span().start, "must not be empty".into())),
            Some(s) => Ok(Some((s.get_ref().clone(), s.span().start))),
            None => Ok(None),
        };
        let token = nonempty(self.token, "token")?.map(|(t, _)| t);
        let basic = match (nonempty(self.username, "username")?, nonempty(self.password, "password")?) {
            (Some((u, _)), Some((p, _))) => Some((u, p)),
            (Some((_, at)), None) => return Err(err("password", at, "`username` needs `password`".into())),
            (None, Some((_, at))) => return Err(err("username", at, "`password` needs `username`".into())),
            (None, None) => None,
        };
        let cfg = HttpConfig { bind, token, basic };
        if !bind.ip().is_loopback() && !cfg.has_credentials() {
            let at = self.bind.as_ref().map_or(table, |b| b.span().start);
            let why = format!(
                "{bind} is not a loopback address: set `token` (or `username` and `password`), the admin API can disconnect clients and delete sessions"
            );
            return Err(err("bind", at, why));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::config::{Args, Config};

    fn with_file(text: &str) -> Result<Config, ConfigError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        Config::from_args(&Args { config: Some(f.path().to_owned()), ..Args::default() })
    }

    #[test]
    fn the_http_listener_is_off_unless_its_table_is_there() {
        assert_eq!(with_file("port = 1883\n").unwrap().http, None);
        assert_eq!(with_file("[http]\n").unwrap().http, Some(HttpConfig::local(DEFAULT_BIND)));
        let c = with_file("[http]\nbind = \"0.0.0.0:9090\"\ntoken = \"t0k\"\n").unwrap().http.unwrap();
        assert_eq!((c.bind, c.token.as_deref()), ("0.0.0.0:9090".parse().unwrap(), Some("t0k")));
        let c = with_file("[http]\nbind = \"[::]:1\"\nusername = \"a\"\npassword = \"b\"\n").unwrap().http.unwrap();
        assert_eq!(c.basic, Some(("a".into(), "b".into())));
    }

    #[test]
    fn a_public_bind_without_credentials_is_refused_with_file_line_and_key() {
        let e = with_file("port = 1883\n\n[http]\nbind = \"0.0.0.0:8080\"\n").unwrap_err().to_string();
        assert!(e.contains(":4: key `http.bind`: 0.0.0.0:8080 is not a loopback address: set `token`"), "{e}");
        let e = with_file("[http]\nbind = \"nowhere\"\n").unwrap_err().to_string();
        assert!(e.contains(":2: key `http.bind`: `nowhere` is not an address"), "{e}");
        let e = with_file("[http]\ntoken = \"\"\n").unwrap_err().to_string();
        assert!(e.contains(":2: key `http.token`: must not be empty"), "{e}");
        let e = with_file("[http]\nusername = \"a\"\n").unwrap_err().to_string();
        assert!(e.contains("key `http.password`"), "{e}");
        let e = with_file("[http]\nport = 3\n").unwrap_err().to_string();
        assert!(e.contains(":2: key `port`: unknown field `port`"), "{e}");
    }
}
