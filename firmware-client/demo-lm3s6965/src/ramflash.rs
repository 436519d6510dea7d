//! A NOR flash over the RAM region retained across a reset
//! ([`hw::Retained`](crate::hw::Retained)), for the QEMU demo of the flash
//! outbox on every board: QEMU's lm3s6965evb has no writable flash model
//! (mps2-an386 has no flash), but RAM outside `.bss`/`.data` keeps its
//! contents across SYSRESETREQ on all three machines.
//!
//! It stands for flash because it keeps what was written across the reset
//! and it enforces the NOR rules the outbox code must live with: writes
//! only clear bits, in 4-byte words, and only a page erase (1 KB) sets them
//! again; `sequential-storage` drives it exactly as it would drive on-chip
//! flash. What it does not model is power loss (RAM forgets on power-off);
//! the host tests cut power in the middle of writes and erases instead.

use embedded_storage_async::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

use crate::hw::NV_LEN;

/// Page size.
const PAGE: usize = 1024;

/// An access outside the region or not aligned.
#[derive(Debug)]
pub struct BadAccess;

impl NorFlashError for BadAccess {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::OutOfBounds
    }
}

/// The retained bytes as NOR flash.
pub struct RamFlash(pub &'static mut [u8; NV_LEN]);

impl RamFlash {
    fn range(&mut self, offset: u32, len: usize) -> Result<&mut [u8], BadAccess> {
        let o = offset as usize;
        self.0.get_mut(o..o.checked_add(len).ok_or(BadAccess)?).ok_or(BadAccess)
    }

    /// Erases everything (first boot).
    pub fn erase_all(&mut self) {
        self.0.fill(0xff);
    }
}

impl ErrorType for RamFlash {
    type Error = BadAccess;
}

impl ReadNorFlash for RamFlash {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), BadAccess> {
        bytes.copy_from_slice(self.range(offset, bytes.len())?);
        Ok(())
    }

    fn capacity(&self) -> usize {
        NV_LEN
    }
}

impl NorFlash for RamFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), BadAccess> {
        if !(from as usize).is_multiple_of(PAGE) || !(to as usize).is_multiple_of(PAGE) || to < from {
            return Err(BadAccess);
        }
        self.range(from, (to - from) as usize)?.fill(0xff);
        Ok(())
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), BadAccess> {
        if !(offset as usize).is_multiple_of(4) || !bytes.len().is_multiple_of(4) {
            return Err(BadAccess);
        }
        for (d, s) in self.range(offset, bytes.len())?.iter_mut().zip(bytes) {
            // NOR: programming only clears bits.
            *d &= *s;
        }
        Ok(())
    }
}

impl MultiwriteNorFlash for RamFlash {}
