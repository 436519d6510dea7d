//! A blocking HTTP client (`ureq`) for the broker's HTTP listener, run off
//! the async workers, and the headless browser of the tests that drive a
//! page: Debian's `chromium`, through puppeteer-core from `tests/npm`
//! (no browser download).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::within;

/// `method` (GET or DELETE) on `path`, with `auth` as the Authorization
/// header; the status and the body.
pub async fn request(http: SocketAddr, method: &'static str, path: &str, auth: Option<String>) -> (u16, String) {
    let url = format!("http://{http}{path}");
    let call = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut resp = match method {
            "DELETE" => {
                let r = agent.delete(&url);
                match auth {
                    Some(a) => r.header("Authorization", a).call(),
                    None => r.call(),
                }
            }
            _ => {
                let r = agent.get(&url);
                match auth {
                    Some(a) => r.header("Authorization", a).call(),
                    None => r.call(),
                }
            }
        }
        .expect("HTTP request");
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().expect("body"))
    });
    within("HTTP request", call).await.expect("request task")
}

/// `GET path` with the bearer `token`, answered 200 with JSON.
pub async fn get_json(http: SocketAddr, path: &str, token: &str) -> serde_json::Value {
    let (status, body) = request(http, "GET", path, Some(format!("Bearer {token}"))).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

/// Debian's chromium and the npm packages a page test needs.
pub struct Browser {
    pub chromium: PathBuf,
    /// `tests/npm/node_modules`: NODE_PATH of the driver.
    pub modules: PathBuf,
}

impl Browser {
    /// The browser, or `None` (with a line saying what is missing) where
    /// `chromium`, `node` or puppeteer-core is not there; a failure instead
    /// when `EDGEMQ_REQUIRE_INTEROP=1` (`.ci/run`).
    pub fn find(also_needed: &[&str]) -> Option<Browser> {
        let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("npm/node_modules");
        let runs = |p: &str| std::process::Command::new(p).arg("--version").stdout(Stdio::null()).status().is_ok();
        let present = runs("chromium")
            && runs("node")
            && std::iter::once("puppeteer-core").chain(also_needed.iter().copied()).all(|m| modules.join(m).exists());
        if !present {
            assert!(std::env::var("EDGEMQ_REQUIRE_INTEROP").as_deref() != Ok("1"), "chromium or tests/npm missing");
            println!("SKIPPED: chromium, node or the npm packages of tests/npm not found");
            return None;
        }
        Some(Browser { chromium: which("chromium"), modules })
    }

    /// Runs `script` in node (puppeteer-core on its NODE_PATH) with
    /// `args` after the chromium path (`process.argv[1]`, then `[2..]`),
    /// within `limit`; its standard output, once it exited 0.
    pub async fn drive(&self, script: &str, args: &[&str], limit: std::time::Duration) -> String {
        let out = tokio::process::Command::new("node")
            .args(["-e", script])
            .arg(&self.chromium)
            .args(args)
            .env("NODE_PATH", &self.modules)
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(limit, out).await.expect("chromium in time").expect("node runs");
        assert!(out.status.success(), "puppeteer-core: {:?}", out.status);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The absolute path of `program` on PATH.
pub fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(program)).find(|f| f.is_file()))
        .unwrap_or_else(|| program.into())
}
