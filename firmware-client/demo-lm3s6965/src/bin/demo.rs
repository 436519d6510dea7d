//! edgemq-client demo: publishes `N` readings at QoS 1 to
//! `sensors/<client id>/reading` over UART0 (wired by QEMU to a broker over
//! TCP), with a persistent session, subscribes to `devices/<client id>/cmd`,
//! and exits with success once every reading is acknowledged.
//!
//! Readings are produced on a timer whether or not the broker is reachable;
//! while it is not, they wait in the outbox and are sent, in order, when the
//! link comes back.
//!
//! With feature `flash-outbox` (every board) the outbox is a `FlashOutbox`
//! over RAM that survives a reset: the firmware resets itself (SYSRESETREQ)
//! after queueing half of the readings (or as many as the outbox holds, if
//! fewer) and, after the reset, sends every reading it had accepted.
//!
//! With feature `v5` it speaks MQTT 5: session expiry of one hour, readings
//! with a content type and a topic alias for the reading topic.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use edgemq_client::blocking::{BlockingClient, Error};
use edgemq_client::{Client, Config, Event, LinkError, QoS};
use edgemq_demo_lm3s6965::{clock, console, hw, hw::Uart0, params};

/// Keep polling this long after the last acknowledgement so a pending
/// command can still arrive before exiting.
const LINGER_MS: u32 = 1_000;

#[entry]
fn main() -> ! {
    let Some(cp) = cortex_m::Peripherals::take() else { console::exit(false) };
    clock::start(cp.SYST);
    let Some(uart) = Uart0::take() else { console::exit(false) };

    let mut topic: heapless::String<64> = heapless::String::new();
    let mut cmd_topic: heapless::String<64> = heapless::String::new();
    let ok = topic.push_str("sensors/").is_ok()
        && topic.push_str(params::CLIENT_ID).is_ok()
        && topic.push_str("/reading").is_ok()
        && cmd_topic.push_str("devices/").is_ok()
        && cmd_topic.push_str(params::CLIENT_ID).is_ok()
        && cmd_topic.push_str("/cmd").is_ok();
    if !ok {
        console::line(&[b"client id too long"]);
        console::exit(false);
    }

    let mut cfg = Config::new(params::CLIENT_ID);
    cfg.clean_session = false;
    cfg.keep_alive_secs = 2;
    cfg.connect_timeout_ms = 2_000;
    cfg.ping_timeout_ms = 2_000;
    cfg.max_inflight = 8;
    #[cfg(feature = "v5")]
    {
        let mut o = edgemq_client::v5::V5Options::new();
        o.session_expiry_secs = 3600;
        cfg.v5 = Some(o);
    }

    let Some(bufs) = hw::take_buffers() else { console::exit(false) };
    #[cfg(not(feature = "flash-outbox"))]
    let outbox = bufs.outbox;
    #[cfg(feature = "flash-outbox")]
    let (outbox, kept_produced, resets) = flash_outbox::open();
    #[allow(unused_mut)]
    let mut client: Client<'_, _, 2> = Client::new(cfg, bufs.tx, bufs.rx, outbox);
    #[cfg(feature = "v5")]
    client.set_topic_alias_buffers(bufs.aliases, &mut []);
    let mut mqtt = BlockingClient::new(client, uart, Some(500));

    console::line(&[b"demo: client ", params::CLIENT_ID.as_bytes(), b" start"]);
    let mut nb = [0u8; 10];
    // The client's state besides its buffers (lives on the stack).
    let state_bytes = core::mem::size_of_val(&mqtt) as u32;
    console::line(&[b"client state bytes=", console::num(state_bytes, &mut nb)]);
    #[cfg(not(feature = "flash-outbox"))]
    let mut produced: u32 = 0;
    #[cfg(feature = "flash-outbox")]
    let mut produced: u32 = *kept_produced;
    #[cfg(feature = "flash-outbox")]
    {
        use edgemq_client::OutboxStorage;
        let n = mqtt.client.outbox().len() as u32;
        let mut nb2 = [0u8; 10];
        console::line(&[b"boot resets=", console::num(*resets, &mut nb), b" recovered=", console::num(n, &mut nb2)]);
    }
    let mut acked: u32 = 0;
    let mut next_reading = clock::now();
    let mut done_at: Option<u32> = None;

    loop {
        let now = clock::now();
        if produced < params::N && now.wrapping_sub(next_reading) < 0x8000_0000 {
            let mut payload: heapless::Vec<u8, 48> = heapless::Vec::new();
            let _ = payload.extend_from_slice(b"seq=");
            let _ = payload.extend_from_slice(console::num(produced, &mut nb));
            let _ = payload.extend_from_slice(b" temp=21.");
            let _ = payload.extend_from_slice(console::num(produced % 10, &mut nb));
            #[cfg(feature = "v5")]
            let r = {
                let props =
                    edgemq_client::v5::PublishProperties { content_type: Some("text/plain"), ..Default::default() };
                mqtt.client.publish_with(&topic, &payload, QoS::AtLeastOnce, false, &props)
            };
            #[cfg(not(feature = "v5"))]
            let r = mqtt.client.publish(&topic, &payload, QoS::AtLeastOnce, false);
            match r {
                Ok(_) => {
                    console::line(&[b"queued seq=", console::num(produced, &mut nb)]);
                    produced += 1;
                    next_reading = next_reading.wrapping_add(params::INTERVAL_MS);
                    #[cfg(feature = "flash-outbox")]
                    {
                        *kept_produced = produced;
                        if *resets == 0 && produced >= params::N / 2 {
                            flash_outbox::reset(produced, resets);
                        }
                    }
                }
                Err(e) => {
                    // Outbox full before the first reset: reset now (a
                    // small board's outbox holds fewer than N / 2).
                    #[cfg(feature = "flash-outbox")]
                    if e == edgemq_client::ClientError::OutboxFull && *resets == 0 && produced > 0 {
                        flash_outbox::reset(produced, resets);
                    }
                    #[cfg(not(feature = "flash-outbox"))]
                    let _ = e;
                    next_reading = now.wrapping_add(params::INTERVAL_MS)
                }
            }
        }

        match mqtt.poll(now) {
            Ok(None) => {}
            Ok(Some(Event::Connected { session_present })) => {
                console::line(&[b"connected session_present=", if session_present { b"1" } else { b"0" }]);
                if mqtt.client.subscribe(&[(&cmd_topic, QoS::AtLeastOnce)]).is_err() {
                    console::line(&[b"subscribe failed"]);
                }
            }
            Ok(Some(Event::Delivered { .. })) => {
                acked += 1;
                console::line(&[b"acked total=", console::num(acked, &mut nb)]);
            }
            Ok(Some(Event::Message(m))) => {
                console::line(&[b"command ", m.topic.as_bytes(), b" ", m.payload]);
            }
            Ok(Some(Event::Subscribed { .. })) => console::line(&[b"subscribed"]),
            Ok(Some(_)) => {}
            Err(Error::Link(e)) => console::line(&[b"link down: ", reason(e)]),
            Err(Error::Io(_)) => console::line(&[b"link down: io"]),
        }

        #[cfg(not(feature = "flash-outbox"))]
        let all_acked = acked >= params::N;
        // Acknowledgements before a reset were counted by an earlier boot.
        #[cfg(feature = "flash-outbox")]
        let all_acked = {
            use edgemq_client::OutboxStorage;
            produced >= params::N && mqtt.client.outbox().is_empty()
        };
        if all_acked && done_at.is_none() {
            done_at = Some(now);
        }
        if let Some(t) = done_at {
            if now.wrapping_sub(t) >= LINGER_MS {
                mqtt.client.disconnect();
                let _ = mqtt.flush();
                console::line(&[b"done: all ", console::num(acked, &mut nb), b" acknowledged"]);
                console::exit(true);
            }
        }
    }
}

fn reason(e: LinkError) -> &'static [u8] {
    match e {
        LinkError::ConnectTimeout => b"no CONNACK",
        LinkError::PingTimeout => b"no PINGRESP",
        LinkError::Refused(_) => b"refused",
        LinkError::Malformed(_) => b"malformed input",
        _ => b"protocol error",
    }
}

/// The outbox on (RAM-simulated) flash and the retained counters.
#[cfg(feature = "flash-outbox")]
mod flash_outbox {
    use edgemq_client::flash::FlashOutbox;
    use edgemq_demo_lm3s6965::ramflash::RamFlash;
    use edgemq_demo_lm3s6965::{console, hw};

    pub type Outbox = FlashOutbox<RamFlash, { hw::FLASH_OUTBOX_LEN }, { hw::FLASH_OUTBOX_MSGS }>;

    /// Resets the chip with `produced` readings queued, counting the reset.
    pub fn reset(produced: u32, resets: &mut u32) -> ! {
        let mut nb = [0u8; 10];
        console::line(&[b"resetting with ", console::num(produced, &mut nb), b" queued"]);
        *resets = 1;
        hw::reset()
    }

    /// Opens the outbox (erasing the region on first boot); also returns
    /// the retained reading counter and reset count.
    pub fn open() -> (Outbox, &'static mut u32, &'static mut u32) {
        let Some(r) = hw::take_retained() else { console::exit(false) };
        let hw::Retained { magic, produced, resets, flash } = r;
        let mut f = RamFlash(flash);
        if *magic != hw::RETAINED_MAGIC {
            f.erase_all();
            *produced = 0;
            *resets = 0;
            *magic = hw::RETAINED_MAGIC;
        }
        match Outbox::open(f, 0..hw::NV_LEN as u32) {
            Ok(o) => (o, produced, resets),
            Err(_) => {
                console::line(&[b"flash outbox unreadable"]);
                console::exit(false)
            }
        }
    }
}
