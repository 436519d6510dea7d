//! The board's UART as an `embedded-io` transport, its core clock, and the
//! statically allocated client buffers. Boards (cargo features): LM3S6965
//! UART0, a PL011 (default; QEMU `lm3s6965evb`, Cortex-M3); `microbit`:
//! the nRF51822 UART (QEMU `microbit`, Cortex-M0); `mps2-an386`: the CMSDK
//! APB UART0 (QEMU `mps2-an386`, Cortex-M4F).
//!
//! UNSAFE CODE LIVES HERE AND ONLY HERE: the two volatile register accessors,
//! the one-time hand-out of the static buffers and (feature `flash-outbox`)
//! of the state retained across a reset. The register accesses are
//! sound because the addresses are the documented, always-mapped UART
//! registers of the selected chip, accessed as aligned 32-bit words, and
//! [`Uart0::take`] hands out the only handle. The buffers are sound because
//! [`take_buffers`] returns them at most once (guarded by a flag set in a
//! critical section; Cortex-M0 has no atomic swap).
//!
//! In QEMU the UARTs need no clock gating or pin setup; on real silicon
//! enable and route them first.
#![allow(unsafe_code)]

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, Ordering};

#[cfg(not(feature = "flash-outbox"))]
use edgemq_client::RamOutbox;

/// Transmit / receive buffer size: the largest MQTT packet either way.
pub const BUF_LEN: usize = 256;
/// Outbox bytes: room for about 39 readings (52 bytes each with its
/// header) while the broker is away.
pub const OUTBOX_LEN: usize = 2048;

/// The core clock out of reset in QEMU, which SysTick counts.
#[cfg(not(any(feature = "microbit", feature = "mps2-an386")))]
pub const CORE_HZ: u32 = 12_000_000;
/// The core clock out of reset in QEMU, which SysTick counts.
#[cfg(feature = "microbit")]
pub const CORE_HZ: u32 = 16_000_000;
/// The core clock out of reset in QEMU, which SysTick counts.
#[cfg(feature = "mps2-an386")]
pub const CORE_HZ: u32 = 25_000_000;

/// The client's memory, in `.bss` so its size shows in `arm-none-eabi-size`.
pub struct Buffers {
    /// Transmit buffer.
    pub tx: &'static mut [u8; BUF_LEN],
    /// Receive buffer.
    pub rx: &'static mut [u8; BUF_LEN],
    /// The outbox (the flash outbox lives in the client instead).
    #[cfg(not(feature = "flash-outbox"))]
    pub outbox: &'static mut RamOutbox<OUTBOX_LEN>,
    /// MQTT 5 outbound topic alias table.
    #[cfg(feature = "v5")]
    pub aliases: &'static mut [u8; ALIAS_LEN],
}

/// Bytes for MQTT 5 outbound topic aliases (the demo uses one topic).
#[cfg(feature = "v5")]
pub const ALIAS_LEN: usize = 64;

/// Sets `flag`; true if it was clear. A critical section instead of an
/// atomic swap, which Cortex-M0 lacks.
fn take_once(flag: &AtomicBool) -> bool {
    cortex_m::interrupt::free(|_| {
        let was = flag.load(Ordering::Relaxed);
        flag.store(true, Ordering::Relaxed);
        !was
    })
}

static BUFFERS_TAKEN: AtomicBool = AtomicBool::new(false);

/// The static client buffers; `None` after the first call.
pub fn take_buffers() -> Option<Buffers> {
    static mut TX: [u8; BUF_LEN] = [0; BUF_LEN];
    static mut RX: [u8; BUF_LEN] = [0; BUF_LEN];
    #[cfg(not(feature = "flash-outbox"))]
    static mut OUTBOX: RamOutbox<OUTBOX_LEN> = RamOutbox::new();
    #[cfg(feature = "v5")]
    static mut ALIASES: [u8; ALIAS_LEN] = [0; ALIAS_LEN];
    if !take_once(&BUFFERS_TAKEN) {
        return None;
    }
    // SAFETY: the flag above guarantees these exclusive references are
    // created once, and nothing else names the statics.
    unsafe {
        Some(Buffers {
            tx: &mut *core::ptr::addr_of_mut!(TX),
            rx: &mut *core::ptr::addr_of_mut!(RX),
            #[cfg(not(feature = "flash-outbox"))]
            outbox: &mut *core::ptr::addr_of_mut!(OUTBOX),
            #[cfg(feature = "v5")]
            aliases: &mut *core::ptr::addr_of_mut!(ALIASES),
        })
    }
}

/// Bytes of the simulated flash (feature `flash-outbox`): 8 pages of 1 KB.
#[cfg(all(feature = "flash-outbox", not(feature = "microbit")))]
pub const NV_LEN: usize = 8 * 1024;
/// Message bytes of the flash outbox (its RAM copy): about 39 readings.
#[cfg(all(feature = "flash-outbox", not(feature = "microbit")))]
pub const FLASH_OUTBOX_LEN: usize = 2048;
/// Most messages in the flash outbox.
#[cfg(all(feature = "flash-outbox", not(feature = "microbit")))]
pub const FLASH_OUTBOX_MSGS: usize = 64;
/// Bytes of the simulated flash on the micro:bit: 4 pages of 1 KB. Its
/// 16 KB of RAM also hold the flash outbox (`2 * FLASH_OUTBOX_LEN` bytes,
/// moved a few times on the stack while the client is set up) and the
/// buffers.
#[cfg(all(feature = "flash-outbox", feature = "microbit"))]
pub const NV_LEN: usize = 4 * 1024;
/// Message bytes of the flash outbox on the micro:bit: 19 readings, so the
/// demo resets when it is full.
#[cfg(all(feature = "flash-outbox", feature = "microbit"))]
pub const FLASH_OUTBOX_LEN: usize = 1024;
/// Most messages in the flash outbox.
#[cfg(all(feature = "flash-outbox", feature = "microbit"))]
pub const FLASH_OUTBOX_MSGS: usize = 32;

/// What survives a reset (not a power-off): a RAM region in `.uninit`,
/// which cortex-m-rt neither zeroes nor initialises at start-up and QEMU
/// keeps across a system reset. The `flash` bytes stand in for a flash
/// range: see `ramflash`.
#[cfg(feature = "flash-outbox")]
#[repr(C)]
pub struct Retained {
    /// [`RETAINED_MAGIC`] once initialised.
    pub magic: u32,
    /// Readings accepted by `publish` so far, over all boots.
    pub produced: u32,
    /// Resets the firmware asked for.
    pub resets: u32,
    /// The simulated flash.
    pub flash: [u8; NV_LEN],
}

/// Marks [`Retained`] as initialised.
#[cfg(feature = "flash-outbox")]
pub const RETAINED_MAGIC: u32 = 0x4544_474d;

#[cfg(feature = "flash-outbox")]
static RETAINED_TAKEN: AtomicBool = AtomicBool::new(false);

/// The retained state; `None` after the first call. Check `magic` before
/// trusting it.
#[cfg(feature = "flash-outbox")]
pub fn take_retained() -> Option<&'static mut Retained> {
    #[link_section = ".uninit.retained"]
    static mut RETAINED: core::mem::MaybeUninit<Retained> = core::mem::MaybeUninit::uninit();
    if !take_once(&RETAINED_TAKEN) {
        return None;
    }
    // SAFETY: handed out once (flag above). `Retained` is plain integers
    // and bytes, so every bit pattern of this RAM is a valid value (QEMU
    // zero-fills RAM at power-on); the caller checks `magic` and
    // initialises the contents on first boot.
    unsafe { Some((*core::ptr::addr_of_mut!(RETAINED)).assume_init_mut()) }
}

/// Resets the chip (SYSRESETREQ); RAM in `.uninit` keeps its contents.
#[cfg(feature = "flash-outbox")]
pub fn reset() -> ! {
    cortex_m::peripheral::SCB::sys_reset()
}

fn read(addr: usize) -> u32 {
    // SAFETY: see module docs; `addr` is one of the UART register constants.
    unsafe { read_volatile(addr as *const u32) }
}

fn write(addr: usize, v: u32) {
    // SAFETY: see module docs; `addr` is one of the UART register constants.
    unsafe { write_volatile(addr as *mut u32, v) }
}

/// LM3S6965 UART0, a PL011.
#[cfg(not(any(feature = "microbit", feature = "mps2-an386")))]
mod regs {
    use super::{read, write};
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

    pub fn init() {
        write(LCRH, LCRH_8N1_FIFO);
    }
    pub fn rx_ready() -> bool {
        read(FR) & FR_RXFE == 0
    }
    pub fn rx_byte() -> u8 {
        read(DR) as u8
    }
    pub fn tx_byte(b: u8) {
        while read(FR) & FR_TXFF != 0 {}
        write(DR, u32::from(b));
    }
}

/// nRF51822 UART (QEMU `microbit`).
#[cfg(feature = "microbit")]
mod regs {
    use super::{read, write};
    const BASE: usize = 0x4000_2000;
    const STARTRX: usize = BASE;
    const STARTTX: usize = BASE + 0x008;
    const RXDRDY: usize = BASE + 0x108;
    const TXDRDY: usize = BASE + 0x11c;
    const ENABLE: usize = BASE + 0x500;
    const RXD: usize = BASE + 0x518;
    const TXD: usize = BASE + 0x51c;

    pub fn init() {
        write(ENABLE, 4);
        write(STARTRX, 1);
        write(STARTTX, 1);
    }
    pub fn rx_ready() -> bool {
        read(RXDRDY) != 0
    }
    pub fn rx_byte() -> u8 {
        // Clear the event first: reading RXD raises it again if more bytes
        // are waiting.
        write(RXDRDY, 0);
        read(RXD) as u8
    }
    pub fn tx_byte(b: u8) {
        write(TXD, u32::from(b));
        while read(TXDRDY) == 0 {}
        write(TXDRDY, 0);
    }
}

/// CMSDK APB UART0 (QEMU `mps2-an386`).
#[cfg(feature = "mps2-an386")]
mod regs {
    use super::{read, write};
    const BASE: usize = 0x4000_4000;
    const DATA: usize = BASE;
    const STATE: usize = BASE + 0x04;
    const CTRL: usize = BASE + 0x08;
    const BAUDDIV: usize = BASE + 0x10;
    const STATE_TXFULL: u32 = 1;
    const STATE_RXFULL: u32 = 2;

    pub fn init() {
        // QEMU moves no data while BAUDDIV is below 16.
        write(BAUDDIV, 16);
        write(CTRL, 0b11);
    }
    pub fn rx_ready() -> bool {
        read(STATE) & STATE_RXFULL != 0
    }
    pub fn rx_byte() -> u8 {
        read(DATA) as u8
    }
    pub fn tx_byte(b: u8) {
        while read(STATE) & STATE_TXFULL != 0 {}
        write(DATA, u32::from(b));
    }
}

/// The board's UART; at most one instance exists.
pub struct Uart0 {
    _private: (),
}

static TAKEN: AtomicBool = AtomicBool::new(false);

impl Uart0 {
    /// The UART, configured 8N1; `None` if already taken.
    pub fn take() -> Option<Uart0> {
        if !take_once(&TAKEN) {
            return None;
        }
        regs::init();
        Some(Uart0 { _private: () })
    }

    /// A received byte, if one is waiting.
    pub fn try_read(&mut self) -> Option<u8> {
        regs::rx_ready().then(regs::rx_byte)
    }

    /// Sends one byte, waiting for room.
    pub fn write_byte(&mut self, b: u8) {
        regs::tx_byte(b);
    }
}

impl embedded_io::ErrorType for Uart0 {
    type Error = Infallible;
}

impl embedded_io::ReadReady for Uart0 {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(regs::rx_ready())
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
