//! Small wrappers around rumqttc event loops (3.1.1 and 5).

#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;

// ---------------------------------------------------------------------------
// rumqttc wrappers
// ---------------------------------------------------------------------------

/// A rumqttc 3.1.1 client whose event loop runs in a task; incoming
/// packets arrive on `rx`.
pub struct V4Client {
    pub client: rumqttc::AsyncClient,
    pub rx: mpsc::UnboundedReceiver<rumqttc::Packet>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for V4Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl V4Client {
    /// Connects and waits for the CONNACK; returns the client and session present.
    pub async fn connect(opts: rumqttc::MqttOptions) -> (V4Client, bool) {
        let (client, mut el) = rumqttc::AsyncClient::new(opts, 1000);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(p)) => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        let sp = within("rumqttc CONNACK", async {
            loop {
                match rx.recv().await {
                    Some(rumqttc::Packet::ConnAck(a)) => {
                        assert_eq!(a.code, rumqttc::ConnectReturnCode::Success);
                        return a.session_present;
                    }
                    Some(_) => {}
                    None => panic!("rumqttc connection failed before CONNACK"),
                }
            }
        })
        .await;
        (V4Client { client, rx, task }, sp)
    }

    pub fn options(addr: SocketAddr, id: &str) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        // rumqttc's default limit (10 KiB) is below the payloads tested here.
        o.set_max_packet_size(1 << 20, 1 << 20);
        o
    }

    pub async fn simple(addr: SocketAddr, id: &str) -> V4Client {
        V4Client::connect(V4Client::options(addr, id)).await.0
    }

    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.expect("subscribe request");
        within("SUBACK", async {
            loop {
                match self.rx.recv().await {
                    Some(rumqttc::Packet::SubAck(a)) => return a.return_codes,
                    Some(_) => {}
                    None => panic!("connection lost before SUBACK"),
                }
            }
        })
        .await
    }

    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        within("PUBLISH (rumqttc)", async {
            loop {
                match self.rx.recv().await {
                    Some(rumqttc::Packet::Publish(p)) => return p,
                    Some(_) => {}
                    None => panic!("connection lost while waiting for PUBLISH"),
                }
            }
        })
        .await
    }
}

/// A rumqttc 5.0 client whose event loop runs in a task.
pub struct V5Client {
    pub client: rumqttc::v5::AsyncClient,
    pub rx: mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Packet>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for V5Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl V5Client {
    pub fn options(addr: SocketAddr, id: &str) -> rumqttc::v5::MqttOptions {
        let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    pub async fn connect(opts: rumqttc::v5::MqttOptions) -> V5Client {
        use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
        let (client, mut el) = rumqttc::v5::AsyncClient::new(opts, 1000);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::v5::Event::Incoming(p)) => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        within("rumqttc v5 CONNACK", async {
            loop {
                match rx.recv().await {
                    Some(Packet::ConnAck(a)) => {
                        assert_eq!(a.code, ConnectReturnCode::Success);
                        return;
                    }
                    Some(_) => {}
                    None => panic!("rumqttc v5 connection failed before CONNACK"),
                }
            }
        })
        .await;
        V5Client { client, rx, task }
    }

    pub async fn simple(addr: SocketAddr, id: &str) -> V5Client {
        V5Client::connect(V5Client::options(addr, id)).await
    }

    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::v5::mqttbytes::QoS) -> Vec<u8> {
        use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
        self.client.subscribe(filter, qos).await.expect("subscribe request");
        within("v5 SUBACK", async {
            loop {
                match self.rx.recv().await {
                    Some(Packet::SubAck(a)) => {
                        return a
                            .return_codes
                            .iter()
                            .map(|c| match c {
                                SubscribeReasonCode::Success(q) => *q as u8,
                                SubscribeReasonCode::Failure | SubscribeReasonCode::Unspecified => 0x80,
                                SubscribeReasonCode::TopicFilterInvalid => 0x8F,
                                other => panic!("unexpected SUBACK code {other:?}"),
                            })
                            .collect();
                    }
                    Some(_) => {}
                    None => panic!("connection lost before SUBACK"),
                }
            }
        })
        .await
    }

    pub async fn next_publish(&mut self) -> rumqttc::v5::mqttbytes::v5::Publish {
        use rumqttc::v5::mqttbytes::v5::Packet;
        within("PUBLISH (rumqttc v5)", async {
            loop {
                match self.rx.recv().await {
                    Some(Packet::Publish(p)) => return p,
                    Some(_) => {}
                    None => panic!("connection lost while waiting for PUBLISH"),
                }
            }
        })
        .await
    }
}
