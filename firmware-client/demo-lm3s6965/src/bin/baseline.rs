//! Baseline firmware for footprint comparison: the same board support,
//! clock, console output, reading generation and UART traffic as the demo,
//! but with no MQTT client (readings are written raw to the UART and
//! received bytes are discarded). `demo` minus `baseline` is the client's
//! own cost.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use edgemq_demo_lm3s6965::{clock, console, hw::Uart0, params};
use embedded_io::{Read, ReadReady, Write};

#[entry]
fn main() -> ! {
    let Some(cp) = cortex_m::Peripherals::take() else { console::exit(false) };
    clock::start(cp.SYST);
    let Some(mut uart) = Uart0::take() else { console::exit(false) };
    console::line(&[b"baseline: client ", params::CLIENT_ID.as_bytes(), b" start"]);
    let mut produced: u32 = 0;
    let mut next_reading = clock::now();
    let mut nb = [0u8; 10];
    let mut rx = [0u8; 256];
    loop {
        let now = clock::now();
        if now.wrapping_sub(next_reading) < 0x8000_0000 {
            let mut payload: heapless::Vec<u8, 48> = heapless::Vec::new();
            let _ = payload.extend_from_slice(b"seq=");
            let _ = payload.extend_from_slice(console::num(produced, &mut nb));
            let _ = payload.extend_from_slice(b" temp=21.");
            let _ = payload.extend_from_slice(console::num(produced % 10, &mut nb));
            let _ = uart.write_all(&payload);
            console::line(&[b"queued seq=", console::num(produced, &mut nb)]);
            produced += 1;
            next_reading = next_reading.wrapping_add(params::INTERVAL_MS);
            if produced >= params::N {
                console::exit(true);
            }
        }
        if uart.read_ready().unwrap_or(false) {
            let _ = uart.read(&mut rx);
        }
    }
}
