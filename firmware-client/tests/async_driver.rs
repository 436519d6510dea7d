//! The async driver over an in-memory `embedded-io-async` transport, run by
//! a minimal executor (every future here is ready immediately), with the
//! test playing the broker (packets parsed and built with `mqttbytes`).
//! The same cases as `blocking_driver.rs`: partial reads and writes, an
//! I/O error and automatic reconnection with DUP retransmission, end of
//! stream, CONNACK timeout and retry after the delay.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use edgemq_client::asynch::AsyncClient;
use edgemq_client::blocking::Error;
use edgemq_client::{Client, Config, Event, LinkError, QoS, RamOutbox};
use mqttbytes::v4 as mb;

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Broken;

impl embedded_io_async::Error for Broken {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        embedded_io_async::ErrorKind::BrokenPipe
    }
}

#[derive(Default)]
struct Pipe {
    to_client: VecDeque<u8>,
    from_client: Vec<u8>,
    fail_writes: bool,
    eof: bool,
}

impl embedded_io_async::ErrorType for Pipe {
    type Error = Broken;
}

impl embedded_io_async::Read for Pipe {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Broken> {
        // Deliver at most 3 bytes per read to exercise reassembly.
        let n = buf.len().min(self.to_client.len()).min(3);
        for b in buf.iter_mut().take(n) {
            *b = self.to_client.pop_front().unwrap();
        }
        Ok(n)
    }
}

impl embedded_io_async::Write for Pipe {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Broken> {
        if self.fail_writes {
            return Err(Broken);
        }
        // Accept at most 5 bytes per write to exercise partial writes.
        let n = buf.len().min(5);
        self.from_client.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Pipe {
    fn take_packets(&mut self) -> Vec<mb::Packet> {
        let mut b = BytesMut::from(&self.from_client[..]);
        self.from_client.clear();
        let mut v = vec![];
        while !b.is_empty() {
            v.push(mb::read(&mut b, 1 << 16).unwrap());
        }
        v
    }
    fn send(&mut self, p: mb::Packet) {
        let mut b = BytesMut::new();
        match p {
            mb::Packet::ConnAck(x) => x.write(&mut b),
            mb::Packet::PubAck(x) => x.write(&mut b),
            mb::Packet::Publish(x) => x.write(&mut b),
            other => panic!("{other:?}"),
        }
        .unwrap();
        self.to_client.extend(b.iter().copied());
    }
}

type Dev = AsyncClient<'static, Pipe, RamOutbox<1024>, 2>;

fn device() -> Dev {
    let mut cfg = Config::new("async-1");
    cfg.connect_timeout_ms = 1000;
    let tx = Box::leak(vec![0u8; 256].into_boxed_slice());
    let rx = Box::leak(vec![0u8; 256].into_boxed_slice());
    let mut d = AsyncClient::new(Client::new(cfg, tx, rx, RamOutbox::new()), Pipe::default());
    d.reconnect_delay_ms = Some(500);
    d
}

/// What an application loop does: poll until idle, reading whenever the
/// transport has bytes (or has ended). Returns event and error summaries.
fn run(d: &mut Dev, now: u32) -> Vec<String> {
    block_on(async {
        let mut out = vec![];
        for _ in 0..50 {
            match d.poll(now).await {
                Ok(None) => {
                    if !d.transport.to_client.is_empty() || d.transport.eof {
                        if let Err(e) = d.read().await {
                            out.push(format!("err {e:?}"));
                        }
                        if d.transport.eof {
                            break;
                        }
                    } else if d.client.transmit_data().is_empty() {
                        break;
                    }
                }
                Ok(Some(Event::Message(p))) => out.push(format!("msg {}", p.topic)),
                Ok(Some(e)) => out.push(format!("{e:?}")),
                Err(e) => out.push(format!("err {e:?}")),
            }
        }
        out
    })
}

fn connack(d: &mut Dev, sp: bool) {
    d.transport.send(mb::Packet::ConnAck(mb::ConnAck::new(mb::ConnectReturnCode::Success, sp)));
}

#[test]
fn connects_publishes_and_recovers_from_io_errors() {
    let mut d = device();
    assert!(run(&mut d, 0).is_empty());
    assert!(matches!(d.transport.take_packets().as_slice(), [mb::Packet::Connect(_)]));
    connack(&mut d, false);
    assert_eq!(run(&mut d, 10), ["Connected { session_present: false }"]);

    let pid = d.client.publish("s/1", b"hello", QoS::AtLeastOnce, false).unwrap().unwrap();
    run(&mut d, 20);
    let sent = d.transport.take_packets();
    assert!(matches!(&sent[..], [mb::Packet::Publish(p)] if p.pkid == pid && !p.dup));

    // The transport breaks: an I/O error, then automatic reconnection after
    // the delay, and the unacknowledged messages go out again with DUP.
    d.transport.fail_writes = true;
    d.client.publish("s/1", b"again", QoS::AtLeastOnce, false).unwrap();
    let r = run(&mut d, 30);
    assert!(r.iter().any(|e| e.contains("Io(Broken)")), "{r:?}");
    d.transport.fail_writes = false;
    assert!(run(&mut d, 300).is_empty(), "no reconnect before the delay");
    assert!(d.transport.take_packets().is_empty());
    run(&mut d, 600);
    assert!(matches!(d.transport.take_packets().as_slice(), [mb::Packet::Connect(_)]));
    connack(&mut d, true);
    assert_eq!(run(&mut d, 610), ["Connected { session_present: true }"]);
    let pubs: Vec<(u16, bool)> = d
        .transport
        .take_packets()
        .iter()
        .filter_map(|p| match p {
            mb::Packet::Publish(p) => Some((p.pkid, p.dup)),
            _ => None,
        })
        .collect();
    assert_eq!(pubs, [(pid, true), (pid + 1, true)]);
    d.transport.send(mb::Packet::PubAck(mb::PubAck::new(pid)));
    d.transport.send(mb::Packet::PubAck(mb::PubAck::new(pid + 1)));
    let mut p = mb::Publish::new("cmd/x", mqttbytes::QoS::AtMostOnce, b"go".to_vec());
    p.pkid = 0;
    d.transport.send(mb::Packet::Publish(p));
    assert_eq!(
        run(&mut d, 620),
        [format!("Delivered {{ pid: {pid} }}"), format!("Delivered {{ pid: {} }}", pid + 1), "msg cmd/x".into()]
    );
}

#[test]
fn end_of_stream_is_a_lost_link() {
    let mut d = device();
    run(&mut d, 0);
    d.transport.take_packets();
    connack(&mut d, false);
    run(&mut d, 10);
    assert!(d.client.is_connected());
    d.transport.eof = true;
    run(&mut d, 20);
    assert!(!d.client.is_connected());
}

#[test]
fn connect_timeout_then_retry() {
    let mut d = device();
    run(&mut d, 0);
    d.transport.take_packets();
    let r = run(&mut d, 1000);
    assert_eq!(r, [format!("err {:?}", Error::<Broken>::Link(LinkError::ConnectTimeout))]);
    run(&mut d, 1400);
    assert!(d.transport.take_packets().is_empty());
    run(&mut d, 1500);
    assert!(matches!(d.transport.take_packets().as_slice(), [mb::Packet::Connect(_)]));
}

#[test]
fn manual_connect_without_reconnect_delay() {
    block_on(async {
        let (mut tx, mut rx) = ([0u8; 256], [0u8; 256]);
        let client: Client<'_, RamOutbox<512>> =
            Client::new(Config::new("async-2"), &mut tx, &mut rx, RamOutbox::new());
        let mut c = AsyncClient::new(client, Pipe::default());
        // No reconnect delay: nothing happens until the caller connects.
        assert_eq!(c.poll(0).await.unwrap(), None);
        assert!(c.transport.from_client.is_empty());
        c.client.connect(0).unwrap();
        while !c.client.transmit_data().is_empty() {
            c.poll(0).await.unwrap();
        }
        assert!(matches!(c.transport.take_packets().as_slice(), [mb::Packet::Connect(_)]));
    });
}
