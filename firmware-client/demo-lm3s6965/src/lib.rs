//! Board support shared by the demo firmware (`src/bin/demo.rs`) and the
//! baseline firmware without the MQTT client (`src/bin/baseline.rs`), so the
//! two differ only by the client and their size difference is its cost.
//!
//! * [`hw`]: the only module with `unsafe`: the board's UART registers
//!   (LM3S6965 by default, `microbit` or `mps2-an386` by feature).
//! * `ramflash` (feature `flash-outbox`): a NOR flash over retained RAM.
//! * [`clock`]: a millisecond counter driven by SysTick.
//! * [`console`]: semihosting output without `core::fmt`.
//! * [`params`]: build-time parameters (`EDGEMQ_DEMO_*` env vars).
#![no_std]

pub mod hw;
#[cfg(feature = "flash-outbox")]
pub mod ramflash;

/// Build-time parameters, read with `option_env!` when the firmware is
/// compiled.
pub mod params {
    const fn parse_u32(s: Option<&str>, default: u32) -> u32 {
        let Some(s) = s else {
            return default;
        };
        let b = s.as_bytes();
        let mut i = 0;
        let mut v: u32 = 0;
        while i < b.len() {
            assert!(b[i].is_ascii_digit(), "EDGEMQ_DEMO_* must be a number");
            v = v * 10 + (b[i] - b'0') as u32;
            i += 1;
        }
        v
    }

    /// MQTT client id (`EDGEMQ_DEMO_CLIENT_ID`, default `lm3s6965-demo`, for
    /// every board).
    pub const CLIENT_ID: &str = match option_env!("EDGEMQ_DEMO_CLIENT_ID") {
        Some(s) => s,
        None => "lm3s6965-demo",
    };
    /// Number of readings to publish (`EDGEMQ_DEMO_N`, default 20).
    pub const N: u32 = parse_u32(option_env!("EDGEMQ_DEMO_N"), 20);
    /// Milliseconds between readings (`EDGEMQ_DEMO_INTERVAL_MS`, default 250).
    pub const INTERVAL_MS: u32 = parse_u32(option_env!("EDGEMQ_DEMO_INTERVAL_MS"), 250);
}

/// Millisecond clock from SysTick.
pub mod clock {
    use core::sync::atomic::{AtomicU32, Ordering};

    use cortex_m::peripheral::{syst::SystClkSource, SYST};
    use cortex_m_rt::exception;

    /// SysTick reload for 1 ms at the board's core clock.
    const CYCLES_PER_MS: u32 = crate::hw::CORE_HZ / 1000;

    static MILLIS: AtomicU32 = AtomicU32::new(0);

    /// Starts the 1 kHz SysTick interrupt.
    pub fn start(mut syst: SYST) {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(CYCLES_PER_MS - 1);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
    }

    /// Milliseconds since [`start`], wrapping.
    pub fn now() -> u32 {
        MILLIS.load(Ordering::Relaxed)
    }

    #[exception]
    fn SysTick() {
        // The only writer, so load + store (Cortex-M0 has no fetch_add).
        MILLIS.store(MILLIS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }
}

/// Semihosting console output with hand-rolled number formatting (no
/// `core::fmt`, which would dwarf the client in the footprint numbers).
pub mod console {
    use cortex_m_semihosting::{debug, hio};

    /// Writes `parts` as one line to the host's stdout.
    pub fn line(parts: &[&[u8]]) {
        if let Ok(mut out) = hio::hstdout() {
            for p in parts {
                let _ = out.write_all(p);
            }
            let _ = out.write_all(b"\n");
        }
    }

    /// Decimal digits of `v` in `buf`; returns the used tail.
    pub fn num(v: u32, buf: &mut [u8; 10]) -> &[u8] {
        let mut i = buf.len();
        let mut v = v;
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                return &buf[i..];
            }
        }
    }

    /// Ends the QEMU run with a success or failure exit code.
    pub fn exit(ok: bool) -> ! {
        debug::exit(if ok { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
        #[allow(clippy::empty_loop)]
        loop {}
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    console::line(&[b"panic"]);
    console::exit(false)
}
