//! edgemq-client's async driver under embassy (the README example), for
//! QEMU's lm3s6965evb: publishes 10 QoS 1 readings through the outbox and
//! exits once all are acknowledged. Build: `cargo build --release` here
//! (thumbv7m-none-eabi); run: `cargo run --release` with a broker on
//! 127.0.0.1:1883.
//!
//! Board support (UART0, the SysTick millisecond clock, the semihosting
//! console, the panic handler) comes from the demo's library. On a real
//! board use its HAL instead: an `embedded-io-async` UART or TCP socket as
//! transport and the HAL's embassy time driver.
#![no_std]
#![no_main]

use core::convert::Infallible;
use core::task::Waker;

use edgemq_client::asynch::AsyncClient;
use edgemq_client::{Client, Config, Event, QoS, RamOutbox};
use edgemq_demo_lm3s6965::{clock, console, hw::Uart0};
use embassy_executor::Spawner;
use embassy_futures::select::select;
use embassy_time::{Duration, Instant, Timer};

/// Readings to publish.
const N: u32 = 10;

/// embassy time driver over the demo's 1 kHz SysTick counter (feature
/// `tick-hz-1_000`). It wakes a timer at once and lets the executor poll it
/// again until due: enough for QEMU, where power does not matter. The u32
/// counter wraps after 49 days.
struct SysTickDriver;

impl embassy_time_driver::Driver for SysTickDriver {
    fn now(&self) -> u64 {
        u64::from(clock::now())
    }
    fn schedule_wake(&self, _at: u64, waker: &Waker) {
        waker.wake_by_ref();
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver);

/// UART0 as an `embedded-io-async` transport: a read waits (yielding to
/// the executor) for the first byte, then takes what is there. Dropping a
/// pending read loses nothing, so it can race a timer.
struct AsyncUart(Uart0);

impl embedded_io_async::ErrorType for AsyncUart {
    type Error = Infallible;
}

impl embedded_io_async::Read for AsyncUart {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        loop {
            let mut n = 0;
            while n < buf.len() {
                let Some(b) = self.0.try_read() else { break };
                buf[n] = b;
                n += 1;
            }
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            embassy_futures::yield_now().await;
        }
    }
}

impl embedded_io_async::Write for AsyncUart {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &b in buf {
            self.0.write_byte(b);
        }
        Ok(buf.len())
    }
}

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    let Some(cp) = cortex_m::Peripherals::take() else { console::exit(false) };
    clock::start(cp.SYST);
    let Some(uart) = Uart0::take() else { console::exit(false) };

    // All memory is the caller's: here it lives in the main task.
    let (mut tx, mut rx) = ([0u8; 256], [0u8; 256]);
    let mut cfg = Config::new("embassy-demo");
    cfg.keep_alive_secs = 5;
    let client: Client<'_, RamOutbox<1024>> = Client::new(cfg, &mut tx, &mut rx, RamOutbox::new());
    let mut mqtt = AsyncClient::new(client, AsyncUart(uart));
    mqtt.reconnect_delay_ms = Some(1_000); // CONNECT now, again 1 s after a failure

    let mut next = Instant::now();
    let (mut seq, mut acked) = (0u32, 0u32);
    let mut nb = [0u8; 10];
    loop {
        // Publishing works offline too: the reading waits in the outbox.
        if seq < N && Instant::now() >= next {
            let payload = console::num(seq, &mut nb);
            if mqtt.client.publish("sensors/embassy/reading", payload, QoS::AtLeastOnce, false).is_ok() {
                seq += 1;
            }
            next += Duration::from_millis(500);
        }
        // Handle everything that is due (acks, pings, queued messages).
        let now = Instant::now().as_millis() as u32;
        loop {
            match mqtt.poll(now).await {
                Ok(None) => break,
                Ok(Some(Event::Connected { .. })) => console::line(&[b"connected"]),
                Ok(Some(Event::Delivered { .. })) => acked += 1,
                Ok(Some(_)) => {}
                // The link failed; the driver reconnects after the delay.
                Err(_) => break,
            }
        }
        if acked == N {
            console::line(&[b"all acknowledged"]);
            console::exit(true);
        }
        // Wait for broker bytes or 50 ms, whichever comes first, so the
        // keep-alive and timeouts run even when the broker is silent.
        let _ = select(mqtt.read(), Timer::after_millis(50)).await;
    }
}
