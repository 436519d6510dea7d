//! UART0 of the LM3S6965 (a PL011) as an `embedded-io` transport, and the
//! statically allocated client buffers.
//!
//! UNSAFE CODE LIVES HERE AND ONLY HERE: the two volatile register accessors
//! and the one-time hand-out of the static buffers. The register accesses are
//! sound because the addresses are the documented, always-mapped UART0
//! registers of this chip, accessed as aligned 32-bit words, and
//! [`Uart0::take`] hands out the only handle. The buffers are sound because
//! [`take_buffers`] returns them at most once (guarded by an atomic flag).
//!
//! In QEMU the UART needs no clock gating or baud setup; on real silicon
//! enable it in SYSCTL RCGC1 and set the baud divisors first.
#![allow(unsafe_code)]

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, Ordering};

use edgemq_client::RamOutbox;

/// Transmit / receive buffer size: the largest MQTT packet either way.
pub const BUF_LEN: usize = 256;
/// Outbox bytes: room for ~60 readings while the broker is away.
pub const OUTBOX_LEN: usize = 2048;

/// The client's memory, in `.bss` so its size shows in `arm-none-eabi-size`.
pub struct Buffers {
    /// Transmit buffer.
    pub tx: &'static mut [u8; BUF_LEN],
    /// Receive buffer.
    pub rx: &'static mut [u8; BUF_LEN],
    /// The outbox.
    pub outbox: &'static mut RamOutbox<OUTBOX_LEN>,
    /// MQTT 5 outbound topic alias table.
    #[cfg(feature = "v5")]
    pub aliases: &'static mut [u8; ALIAS_LEN],
}

/// Bytes for MQTT 5 outbound topic aliases (the demo uses one topic).
#[cfg(feature = "v5")]
pub const ALIAS_LEN: usize = 64;

static BUFFERS_TAKEN: AtomicBool = AtomicBool::new(false);

/// The static client buffers; `None` after the first call.
pub fn take_buffers() -> Option<Buffers> {
    static mut TX: [u8; BUF_LEN] = [0; BUF_LEN];
    static mut RX: [u8; BUF_LEN] = [0; BUF_LEN];
    static mut OUTBOX: RamOutbox<OUTBOX_LEN> = RamOutbox::new();
    #[cfg(feature = "v5")]
    static mut ALIASES: [u8; ALIAS_LEN] = [0; ALIAS_LEN];
    if BUFFERS_TAKEN.swap(true, Ordering::Relaxed) {
        return None;
    }
    // SAFETY: the flag above guarantees these exclusive references are
    // created once, and nothing else names the statics.
    unsafe {
        Some(Buffers {
            tx: &mut *core::ptr::addr_of_mut!(TX),
            rx: &mut *core::ptr::addr_of_mut!(RX),
            outbox: &mut *core::ptr::addr_of_mut!(OUTBOX),
            #[cfg(feature = "v5")]
            aliases: &mut *core::ptr::addr_of_mut!(ALIASES),
        })
    }
}

const BASE: usize = 0x4000_C000;
const DR: usize = BASE;
const FR: usize = BASE + 0x18;
const LCRH: usize = BASE + 0x2c;
/// Receive FIFO empty.
const FR_RXFE: u32 = 1 << 4;
/// Transmit FIFO full.
const FR_TXFF: u32 = 1 << 5;
/// 8 data bits, FIFOs enabled.
const LCRH_8N1_FIFO: u32 = 0x70;

fn read(addr: usize) -> u32 {
    // SAFETY: see module docs; `addr` is one of the UART0 register constants.
    unsafe { read_volatile(addr as *const u32) }
}

fn write(addr: usize, v: u32) {
    // SAFETY: see module docs; `addr` is one of the UART0 register constants.
    unsafe { write_volatile(addr as *mut u32, v) }
}

/// The UART0 peripheral; at most one instance exists.
pub struct Uart0 {
    _private: (),
}

static TAKEN: AtomicBool = AtomicBool::new(false);

impl Uart0 {
    /// The UART, configured 8N1 with FIFOs; `None` if already taken.
    pub fn take() -> Option<Uart0> {
        if TAKEN.swap(true, Ordering::Relaxed) {
            return None;
        }
        write(LCRH, LCRH_8N1_FIFO);
        Some(Uart0 { _private: () })
    }

    /// A received byte, if one is waiting.
    pub fn try_read(&mut self) -> Option<u8> {
        if read(FR) & FR_RXFE != 0 {
            None
        } else {
            Some(read(DR) as u8)
        }
    }

    /// Sends one byte, waiting for FIFO space.
    pub fn write_byte(&mut self, b: u8) {
        while read(FR) & FR_TXFF != 0 {}
        write(DR, u32::from(b));
    }
}

impl embedded_io::ErrorType for Uart0 {
    type Error = Infallible;
}

impl embedded_io::ReadReady for Uart0 {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(read(FR) & FR_RXFE == 0)
    }
}

impl embedded_io::Read for Uart0 {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut n = 0;
        // Block for the first byte, then take what is already there.
        loop {
            if let Some(b) = self.try_read() {
                buf[n] = b;
                n += 1;
                break;
            }
        }
        while n < buf.len() {
            match self.try_read() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        Ok(n)
    }
}

impl embedded_io::Write for Uart0 {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &b in buf {
            self.write_byte(b);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}
