//! cargo-fuzz target: arbitrary broker bytes fed to a connected client core
//! must never panic; errors leave it disconnected.
#![no_main]

use edgemq_client::{Client, Config, QoS, RamOutbox, State};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mut tx, mut rx) = ([0u8; 256], [0u8; 128]);
    let mut c: Client<'_, RamOutbox<512>, 2> = Client::new(Config::new("fuzz"), &mut tx, &mut rx, RamOutbox::new());
    let _ = c.publish("s/x", b"v", QoS::ExactlyOnce, false);
    c.connect(0).expect("connect");
    c.feed(&[0x20, 0x02, 0x00, 0x00]);
    let mut now = 0u32;
    for chunk in data.chunks(7) {
        now = now.wrapping_add(u32::from(chunk[0]) * 40);
        let mut rest = chunk;
        while !rest.is_empty() {
            let n = c.feed(rest);
            rest = &rest[n..];
            loop {
                match c.poll(now) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        assert_eq!(c.state(), State::Disconnected);
                        break;
                    }
                }
            }
            let t = c.transmit_data().len();
            c.commit_transmitted(t);
            if n == 0 || c.state() == State::Disconnected {
                break;
            }
        }
        if c.state() == State::Disconnected {
            c.connect(now).expect("connect");
            c.feed(&[0x20, 0x02, 0x01, 0x00]);
        }
    }
});
