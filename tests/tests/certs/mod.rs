//! Certificates for the TLS and WebSocket tests, made per test (rcgen): a
//! CA, a server certificate for 127.0.0.1, client certificates; a TLS
//! listener on them and a rustls client configuration.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::Arc;

use edgemq::config::{ListenerConfig, ListenerProtocol, TlsConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// When an issued certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From 1975 to 4096 (rcgen's default).
    Now,
    /// During the year 2000 only.
    Expired,
    /// From 2090 on.
    NotYetValid,
}

/// A certificate authority that signs server and client certificates.
pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

/// A certificate and its key, as PEM and DER.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
    pub key_der: Vec<u8>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        Ca { cert: p.self_signed(&key).unwrap(), key }
    }

    /// A certificate for `names` (DNS names or IP addresses) with subject
    /// `CN=cn, O=org`.
    pub fn issue(&self, names: &[&str], cn: &str, org: &str) -> Issued {
        self.issue_valid(names, cn, org, Validity::Now)
    }

    /// [`Ca::issue`] with the given validity.
    pub fn issue_valid(&self, names: &[&str], cn: &str, org: &str, validity: Validity) -> Issued {
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        match validity {
            Validity::Now => {}
            Validity::Expired => {
                p.not_before = rcgen::date_time_ymd(2000, 1, 1);
                p.not_after = rcgen::date_time_ymd(2000, 12, 31);
            }
            Validity::NotYetValid => {
                p.not_before = rcgen::date_time_ymd(2090, 1, 1);
                p.not_after = rcgen::date_time_ymd(2091, 1, 1);
            }
        }
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::OrganizationName, org);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

/// The files of a TLS listener, written into `dir`.
pub struct Files {
    pub ca: Ca,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

pub fn files(dir: &Path) -> Files {
    files_valid(dir, Validity::Now)
}

/// [`files`] with a server certificate of the given validity.
pub fn files_valid(dir: &Path, validity: Validity) -> Files {
    let ca = Ca::new("edgemq test CA");
    let server = ca.issue_valid(&["127.0.0.1", "localhost"], "edgemq test server", "edgemq", validity);
    let (ca_file, cert_file, key_file) = (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&ca_file, ca.cert.pem()).unwrap();
    std::fs::write(&cert_file, &server.cert_pem).unwrap();
    std::fs::write(&key_file, &server.key_pem).unwrap();
    Files { ca, ca_file, cert_file, key_file }
}

/// An `mqtts` listener on 127.0.0.1:0 with the server certificate of `f`.
pub fn tls_listener(f: &Files, tweak: impl FnOnce(&mut TlsConfig)) -> ListenerConfig {
    let mut tls =
        TlsConfig { certfile: Some(f.cert_file.clone()), keyfile: Some(f.key_file.clone()), ..TlsConfig::default() };
    tweak(&mut tls);
    ListenerConfig { protocol: ListenerProtocol::Mqtts, tls, ..ListenerConfig::tcp("127.0.0.1:0".parse().unwrap()) }
}

/// A rustls client trusting `ca`, with the client certificate `client`
/// if given, limited to `versions`.
pub fn client_config(
    ca: &Ca,
    client: Option<&Issued>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client {
        Some(c) => {
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_der.clone()));
            b.with_client_auth_cert(vec![c.der.clone()], key).unwrap()
        }
        None => b.with_no_client_auth(),
    })
}
