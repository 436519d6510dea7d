//! Opening a bridge's connection: TCP or TLS to one address, CONNECT and
//! CONNACK within the connect timeout, and the fallbacks when a remote
//! refuses the bridge mark (`try_private`) or the state's will.

use tokio_rustls::rustls::pki_types::ServerName;

use super::*;
use crate::protocol::client::{ClientConnect, ClientWill};

/// Connects to `addr` and completes CONNECT/CONNACK within the connect timeout.
/// Returns the stream, the CONNACK and what the remote sent after it (a
/// persistent session's messages may come in the same read).
///
/// Mosquitto's `try_private`: a 3.1.1 remote that answers the bridge
/// mark (level 0x84) with CONNACK 0x01 (unacceptable protocol version,
/// as [MQTT-3.1.2-2] says) or closes before any CONNACK is connected to
/// again at once with level 4, and, if it takes that, so from then on (as
/// Mosquitto, until a restart; logged once).
///
/// The remote state's will: a remote that refuses a CONNECT carrying it
/// (its topic too deep, `$SYS` or retained not allowed there: a refusal
/// for the will's sake, or a close before CONNACK) and takes the same
/// CONNECT without it is connected to without the will and without the
/// state on the remote from then on (logged once; the state stays
/// published locally).
pub(super) async fn connect_one(link: &Link, addr: &str) -> Result<(Stream, ConnAck, BytesMut), LinkError> {
    let private = link.private.load(Ordering::Relaxed) && version(&link.cfg) == Version::V311;
    let will = link.remote_state.load(Ordering::Relaxed);
    match attempt(link, addr, private, will).await {
        Err(e) if private && refuses_private(&e) => {
            let r = attempt(link, addr, false, will).await;
            let r = without_will_if_refused(link, addr, (false, will), r).await;
            // Given up for good only if the remote takes a CONNECT without
            // the mark: one that closes them all (down behind a proxy,
            // restarting) said nothing about the mark.
            if r.is_ok() {
                tracing::warn!(bridge = %link.cfg.name, %addr, "bridge: the remote refused the bridge mark (try_private, level 0x84: {e}) and took the CONNECT without it; connecting as an ordinary 3.1.1 client from now on");
                link.private.store(false, Ordering::Relaxed);
            }
            r
        }
        r => without_will_if_refused(link, addr, (private, will), r).await,
    }
}

/// `r`, or, if it may be a refusal of the state's will, the same CONNECT
/// (`private`, `will`) again without it; taken, the will is given up for
/// good (logged once).
async fn without_will_if_refused(
    link: &Link,
    addr: &str,
    (private, will): (bool, bool),
    r: Result<(Stream, ConnAck, BytesMut), LinkError>,
) -> Result<(Stream, ConnAck, BytesMut), LinkError> {
    match r {
        Err(e) if will && refuses_will(&e) => {
            let r = attempt(link, addr, private, false).await;
            if r.is_ok() {
                tracing::warn!(bridge = %link.cfg.name, %addr, topic = %link.cfg.notification_topic, "bridge: the remote refused the will of the bridge's state ({e}) and took the CONNECT without it; the state is published here only from now on");
                link.remote_state.store(false, Ordering::Relaxed);
            }
            r
        }
        r => r,
    }
}

/// Whether the remote's answer to a CONNECT with a will may be about the
/// will (its topic, retain flag, QoS or permission).
fn refuses_will(e: &LinkError) -> bool {
    use ConnectReason::*;
    match e {
        LinkError::Refused(code) => matches!(
            code,
            NotAuthorized
                | TopicNameInvalid
                | RetainNotSupported
                | QosNotSupported
                | PayloadFormatInvalid
                | ImplementationSpecificError
                | UnspecifiedError
        ),
        LinkError::Closed => true,
        _ => false,
    }
}

/// Whether the remote's answer to a CONNECT with level 0x84 says it does
/// not take that level.
fn refuses_private(e: &LinkError) -> bool {
    match e {
        // 3.1.1's return code 0x01 (unacceptable protocol version) reads as 0x84.
        LinkError::Refused(code) => *code == ConnectReason::UnsupportedProtocolVersion,
        LinkError::Closed => true,
        _ => false,
    }
}

/// One connection attempt, `private`: with the bridge mark; `will`: with
/// the state's will.
async fn attempt(link: &Link, addr: &str, private: bool, will: bool) -> Result<(Stream, ConnAck, BytesMut), LinkError> {
    let timeout = Duration::from_secs(link.cfg.connect_timeout_secs);
    let connect = async {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        match &link.tls {
            None => {
                let mut s = s;
                let (ack, rbuf) = mqtt_connect(link, &mut s, private, will).await?;
                Ok((Stream::Tcp(s), ack, rbuf))
            }
            Some(connector) => {
                let name = server_name(link, addr)?;
                let mut t = Box::new(connector.connect(name, s).await?);
                let (ack, rbuf) = mqtt_connect(link, &mut t, private, will).await?;
                Ok((Stream::Tls(t), ack, rbuf))
            }
        }
    };
    tokio::time::timeout(timeout, connect).await.map_err(|_| LinkError::Timeout)?
}

/// The name the remote's certificate must carry: `tls_server_name`, or
/// the host part of `addr` (a DNS name or an IP address).
fn server_name(link: &Link, addr: &str) -> Result<ServerName<'static>, LinkError> {
    let given = link.cfg.tls.as_ref().and_then(|t| t.server_name.clone());
    let host = given.unwrap_or_else(|| {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        host.trim_start_matches('[').trim_end_matches(']').to_owned()
    });
    ServerName::try_from(host.clone()).map_err(|_| LinkError::ServerName(host))
}

/// CONNECT with the configured options, then the CONNACK; what the remote
/// sent after it.
async fn mqtt_connect<S: AsyncRead + AsyncWrite + Unpin>(
    link: &Link,
    s: &mut S,
    private: bool,
    will: bool,
) -> Result<(ConnAck, BytesMut), LinkError> {
    let cfg = &link.cfg;
    let v = version(cfg);
    let c = ClientConnect {
        version: v,
        bridge: private,
        client_id: cfg.client_id.clone(),
        clean_start: cfg.clean_session,
        keep_alive: cfg.keep_alive_secs,
        username: cfg.username.clone(),
        password: cfg.password.clone(),
        session_expiry: if cfg.clean_session { 0 } else { u32::MAX },
        receive_maximum: u16::MAX,
        maximum_packet_size: MAX_IN_PACKET as u32,
        // The remote's copy of the state: `0` if this link dies.
        will: will.then(|| ClientWill {
            topic: cfg.notification_topic.clone(),
            payload: b"0".to_vec(),
            qos: QoS::AtLeastOnce,
            retain: true,
        }),
    };
    let mut buf = BytesMut::new();
    encode_client(&ClientPacket::Connect(c), v, &mut buf).map_err(|e| LinkError::Protocol(e.to_string()))?;
    s.write_all(&buf).await?;
    let mut rbuf = BytesMut::with_capacity(4096);
    loop {
        if let Some(p) = decode_server(&mut rbuf, v, MAX_IN_PACKET).map_err(|e| LinkError::Protocol(e.to_string()))? {
            return match p {
                ServerPacket::ConnAck(a) if a.code == ConnectReason::Success => Ok((a, rbuf)),
                ServerPacket::ConnAck(a) => Err(LinkError::Refused(a.code)),
                other => Err(LinkError::Protocol(format!("{other:?} before CONNACK"))),
            };
        }
        // A reset instead of an orderly close is the same answer.
        match s.read_buf(&mut rbuf).await {
            Ok(0) => return Err(LinkError::Closed),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Err(LinkError::Closed),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
    }
}
