//! What the binary's tests share: the broker started as a child process
//! (port 0, its address read from the startup line) and a tiny blocking
//! MQTT 3.1.1 client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_edgemq");

pub struct Broker {
    pub child: Child,
    pub addr: String,
}

impl Broker {
    pub fn start(dir: &Path, extra: &[&str]) -> Broker {
        Broker::start_logging(dir, extra, Stdio::null())
    }

    /// Starts the broker with its log (stderr) going to `log`.
    pub fn start_logging(dir: &Path, extra: &[&str], log: impl Into<Stdio>) -> Broker {
        let mut args = vec!["-p", "0", "--bind", "127.0.0.1", "--data-dir", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut child = Command::new(BIN).args(&args).stdout(Stdio::piped()).stderr(log).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.split("mqtt://").nth(1).unwrap().split([',', ';']).next().unwrap().to_owned();
        Broker { child, addr }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny MQTT 3.1.1 client over a blocking socket.
pub struct Client {
    pub s: TcpStream,
    buf: Vec<u8>,
}

pub fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![byte1];
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

impl Client {
    pub fn connect(addr: &str, id: &str, clean: bool) -> (Client, bool) {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = Client { s, buf: Vec::new() };
        let mut body = Vec::new();
        string(&mut body, "MQTT");
        body.extend_from_slice(&[4, if clean { 2 } else { 0 }, 0, 60]);
        string(&mut body, id);
        c.send(&packet(0x10, &body));
        let (byte1, ack) = c.read().unwrap();
        assert_eq!((byte1, ack[1]), (0x20, 0), "CONNACK accepted");
        (c, ack[0] & 1 == 1)
    }

    pub fn send(&mut self, p: &[u8]) {
        self.s.write_all(p).unwrap();
    }

    pub fn try_send(&mut self, p: &[u8]) -> bool {
        self.s.write_all(p).is_ok()
    }

    /// Reads one packet: (first byte, body). `None` when the connection ends.
    pub fn read(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            let (mut len, mut mult) = (0usize, 1usize);
            for i in 1..self.buf.len().min(5) {
                len += usize::from(self.buf[i] & 0x7F) * mult;
                mult *= 128;
                if self.buf[i] & 0x80 == 0 {
                    if self.buf.len() >= i + 1 + len {
                        let byte1 = self.buf[0];
                        let body = self.buf[i + 1..i + 1 + len].to_vec();
                        self.buf.drain(..i + 1 + len);
                        return Some((byte1, body));
                    }
                    break;
                }
            }
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub fn subscribe(&mut self, filter: &str, qos: u8) {
        let mut body = vec![0, 1];
        string(&mut body, filter);
        body.push(qos);
        self.send(&packet(0x82, &body));
        let (byte1, _) = self.read().unwrap();
        assert_eq!(byte1, 0x90, "SUBACK");
    }
}

/// Splits a received PUBLISH: (QoS, packet id, number in the payload).
pub fn parse_publish(byte1: u8, body: &[u8]) -> (u8, u16, u32) {
    let qos = (byte1 >> 1) & 3;
    let tlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let mut at = 2 + tlen;
    let pkid = if qos > 0 {
        at += 2;
        u16::from_be_bytes([body[at - 2], body[at - 1]])
    } else {
        0
    };
    let n = u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
    (qos, pkid, n)
}

/// A QoS 1 or 2 PUBLISH to `crash/t` carrying the number `n` (packet id
/// derived from it).
pub fn numbered(qos: u8, n: u32) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, "crash/t");
    body.extend_from_slice(&((n % 65_000) as u16 + 1).to_be_bytes());
    body.extend_from_slice(&n.to_be_bytes());
    packet(0x30 | (qos << 1), &body)
}
