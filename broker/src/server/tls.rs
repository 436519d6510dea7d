//! TLS for `mqtts` listeners: loads a listener's PEM files (certificate
//! chain, private key, client CA, CRL) into a rustls server configuration
//! on the `ring` provider (TLS 1.2 and 1.3), and a bridge's (CAs, client
//! certificate and key) into a client configuration ([`connector`]), and reads the user name a
//! client certificate gives (`use_identity_as_username`: the subject's
//! Common Name; `use_subject_as_username`: the whole subject, RFC 4514).
//!
//! Loading happens before anything is bound: a file that does not load
//! stops the start with an error naming it. The handshake itself runs in
//! the connection's task under the connect timeout (`connection.rs`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{CertUsername, TlsConfig};
use crate::ratelimit::RateLimited;

/// A TLS listener's acceptor and what its handshakes need.
pub struct TlsLayer {
    pub acceptor: TlsAcceptor,
    /// Which name of a client certificate is its user name.
    pub cert_username: CertUsername,
}

impl TlsLayer {
    pub fn new(t: &TlsConfig) -> Result<TlsLayer, TlsError> {
        Ok(TlsLayer { acceptor: acceptor(t)?, cert_username: t.cert_username })
    }

    /// The user name the certificate of the client of `stream` gives.
    pub fn cert_username<S>(&self, stream: &tokio_rustls::server::TlsStream<S>) -> Option<String> {
        match self.cert_username {
            CertUsername::No => None,
            how => stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| cert_username(c, how)),
        }
    }
}

/// A listener's failed handshakes (TLS, WebSocket upgrade): counted, and
/// logged at most once per `LOG_EVERY` with the count, never per attempt.
#[derive(Debug, Default)]
pub struct Handshakes {
    pub failures: AtomicU64,
    /// A std lock held only to count.
    log: Mutex<RateLimited>,
}

impl Handshakes {
    pub fn failed(&self, peer: std::net::SocketAddr, what: &str, why: &dyn std::fmt::Display) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let now = tokio::time::Instant::now().into_std();
        let due = self.log.lock().map(|mut l| l.event(now)).unwrap_or(None);
        if let Some(n) = due {
            tracing::info!(%peer, failed = n, "{what} failed: {why}");
        }
    }
}

/// Why a listener's TLS settings do not load; names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{file}: {why}")]
    File { file: PathBuf, why: String },
    #[error("TLS: {0}")]
    Settings(String),
}

fn file_error(file: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::File { file: file.to_owned(), why: why.to_string() }
}

/// Every certificate in the PEM file `path` (at least one).
fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, e))?;
    let certs: Vec<_> = iter.collect::<Result<_, _>>().map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate (BEGIN CERTIFICATE) in the file"));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| file_error(path, format!("no usable PEM private key (PKCS#8, RSA or EC): {e}")))
}

fn crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let iter = CertificateRevocationListDer::pem_file_iter(path).map_err(|e| file_error(path, e))?;
    iter.collect::<Result<_, _>>().map_err(|e| file_error(path, e))
}

/// The CAs of the PEM file `cafile`.
fn roots(cafile: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs(cafile)? {
        roots.add(c).map_err(|e| file_error(cafile, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The connector of a bridge's TLS to its remote: the remote's
/// certificate must chain to `t.cafile`'s CAs; `t.client` is presented.
pub fn connector(t: &crate::bridge::BridgeTls) -> Result<TlsConnector, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Settings(e.to_string()))?
        .with_root_certificates(roots(&t.cafile)?);
    let config = match &t.client {
        Some((certfile, keyfile)) => builder
            .with_client_auth_cert(certs(certfile)?, key(keyfile)?)
            .map_err(|e| file_error(keyfile, format!("does not match {}: {e}", certfile.display())))?,
        None => builder.with_no_client_auth(),
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The acceptor of a TLS listener with the settings `t` (validated by the
/// configuration: certificate and key are there, client authentication
/// has a CA file).
pub fn acceptor(t: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let (Some(certfile), Some(keyfile)) = (&t.certfile, &t.keyfile) else {
        return Err(TlsError::Settings("a TLS listener needs certfile and keyfile".into()));
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Settings(e.to_string()))?;
    let builder = match &t.cafile {
        Some(cafile) => {
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(cafile)?), provider);
            if let Some(crlfile) = &t.crlfile {
                v = v.with_crls(crls(crlfile)?);
            }
            if !t.require_certificate {
                v = v.allow_unauthenticated();
            }
            let verifier = v.build().map_err(|e| file_error(cafile, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs(certfile)?, key(keyfile)?)
        .map_err(|e| file_error(keyfile, format!("does not match {}: {e}", certfile.display())))?;
    // MQTT over TLS has no ALPN requirement; clients that offer "mqtt" get it.
    config.alpn_protocols = vec![b"mqtt".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The user name the client certificate `der` gives under `how`, if any.
pub fn cert_username(der: &[u8], how: CertUsername) -> Option<String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let subject = &cert.tbs_certificate.subject;
    match how {
        CertUsername::No => None,
        CertUsername::Subject => Some(subject.to_string()),
        CertUsername::CommonName => {
            // The last CN of the subject (the most specific), as Mosquitto.
            let cn = x509_cert::der::asn1::ObjectIdentifier::new_unwrap("2.5.4.3");
            let mut found = None;
            for rdn in subject.0.iter() {
                for atv in rdn.0.iter().filter(|a| a.oid == cn) {
                    found = atv_string(&atv.value);
                }
            }
            found
        }
    }
}

/// The text of an attribute value (UTF8String, PrintableString, IA5String).
fn atv_string(v: &x509_cert::der::Any) -> Option<String> {
    use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
    if let Ok(s) = v.decode_as::<Utf8StringRef<'_>>() {
        return Some(s.as_str().to_owned());
    }
    if let Ok(s) = v.decode_as::<PrintableStringRef<'_>>() {
        return Some(s.as_str().to_owned());
    }
    v.decode_as::<Ia5StringRef<'_>>().ok().map(|s| s.as_str().to_owned())
}

/// Over TLS the driver waits on the socket's readiness too, once rustls
/// holds no decrypted bytes (`wants_read`): an idle TLS connection then
/// holds no read buffer of the driver's. rustls reads every whole record
/// the socket has before a read of tokio-rustls returns pending, so a
/// socket that is not readable leaves nothing undecrypted to wait for.
impl super::Transport for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    const READINESS: bool = true;

    fn poll_read_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        let (tcp, conn) = self.get_ref();
        if !conn.wants_read() {
            return std::task::Poll::Ready(Ok(()));
        }
        tcp.poll_read_ready(cx)
    }
}
