// SPDX-License-Identifier: GPL-2.0

//! The gate between user space and the function's memory: BAR access through `read(2)`/
//! `write(2)` and through mmaps.
//!
//! User space may reach the BARs only while the function decodes memory (the virtual command
//! register says so) and no reset is in progress. Every access holds the gate's lock for the
//! duration of the access; a reset or a change of the memory-decode bit holds it across the
//! change, after removing every mmap of the BARs so that the next touch faults back into the
//! driver (and is refused or remapped). Lock order: virtual config, then this gate; the mmap
//! lock of a faulting process, then this gate.

use crate::{device::VfioPciDevice, regions::Region, vfio_device::VfioDevice};
use kernel::sync::MutexGuard;

/// What the gate guards: whether the function currently decodes memory.
pub(crate) struct MemoryGate {
    decode_enabled: bool,
}

impl MemoryGate {
    /// A gate for a function that is not open: no decode.
    pub(crate) const fn new() -> Self {
        Self {
            decode_enabled: false,
        }
    }

    /// Whether BAR access is allowed now.
    pub(crate) fn decode_enabled(&self) -> bool {
        self.decode_enabled
    }

    /// Records the virtual command register's memory-decode bit.
    pub(crate) fn set_decode_enabled(&mut self, enabled: bool) {
        self.decode_enabled = enabled;
    }
}

/// The locked gate: no BAR access through this device file can start while it lives.
pub(crate) type MemoryAccess<'a> = MutexGuard<'a, MemoryGate>;

/// Locks `dev`'s gate for a plain access (or to read the decode bit).
pub(crate) fn lock(dev: &VfioDevice<VfioPciDevice>) -> MemoryAccess<'_> {
    dev.memory.lock()
}

/// Locks `dev`'s gate and removes every user mapping of its BARs: after this, user space can
/// touch the function's memory only through the driver, which waits for the gate.
pub(crate) fn lock_and_zap(dev: &VfioDevice<VfioPciDevice>) -> MemoryAccess<'_> {
    let access = dev.memory.lock();
    zap_bars(dev);
    access
}

/// As [`lock_and_zap`], but gives up (`None`) when the gate is held by someone else.
pub(crate) fn try_lock_and_zap(dev: &VfioDevice<VfioPciDevice>) -> Option<MemoryAccess<'_>> {
    let access = dev.memory.try_lock()?;
    zap_bars(dev);
    Some(access)
}

/// Removes every user mapping of the BAR regions of `dev`'s file.
fn zap_bars(dev: &VfioDevice<VfioPciDevice>) {
    let start = Region::Bar(0).file_offset();
    let end = Region::Rom.file_offset();
    dev.zap_mappings(start, end - start);
}
