//! The async driver over an in-memory `embedded-io-async` transport, run by
//! a minimal executor (every future here is ready immediately).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use edgemq_client::asynch::AsyncClient;
use edgemq_client::{Client, Config, Event, QoS, RamOutbox};

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[derive(Default)]
struct Pipe {
    to_client: VecDeque<u8>,
    from_client: Vec<u8>,
}

impl embedded_io_async::ErrorType for Pipe {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Read for Pipe {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.to_client.len());
        for b in buf.iter_mut().take(n) {
            *b = self.to_client.pop_front().unwrap();
        }
        Ok(n)
    }
}

impl embedded_io_async::Write for Pipe {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.from_client.extend_from_slice(buf);
        Ok(buf.len())
    }
}

#[test]
fn async_connect_publish_ack() {
    block_on(async {
        let (mut tx, mut rx) = ([0u8; 256], [0u8; 256]);
        let client: Client<'_, RamOutbox<512>> =
            Client::new(Config::new("async-1"), &mut tx, &mut rx, RamOutbox::new());
        let mut c = AsyncClient::new(client, Pipe::default());
        let pid = c.client.publish("s/a", b"x", QoS::AtLeastOnce, false).unwrap().unwrap();
        c.client.connect(0).unwrap();
        assert_eq!(c.poll(0).await.unwrap(), None);
        assert_eq!(c.transport.from_client[0], 0x10, "CONNECT written");
        c.transport.from_client.clear();
        c.transport.to_client.extend([0x20, 0x02, 0x00, 0x00]);
        c.read().await.unwrap();
        assert_eq!(c.poll(1).await.unwrap(), Some(Event::Connected { session_present: false }));
        assert_eq!(c.poll(2).await.unwrap(), None);
        assert_eq!(c.poll(3).await.unwrap(), None); // flushes the PUBLISH
        assert_eq!(c.transport.from_client[0], 0x32, "QoS 1 PUBLISH written");
        let [hi, lo] = pid.to_be_bytes();
        c.transport.to_client.extend([0x40, 0x02, hi, lo]);
        c.read().await.unwrap();
        assert_eq!(c.poll(4).await.unwrap(), Some(Event::Delivered { pid }));
        // End of stream: the link is marked lost.
        assert_eq!(c.read().await.unwrap(), 0);
        assert!(!c.client.is_connected());
    });
}
