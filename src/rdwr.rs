// SPDX-License-Identifier: GPL-2.0

//! `read(2)`/`write(2)` of BARs (memory and I/O port) and of the expansion ROM.
//!
//! (Skeleton: being written.)

use crate::{device::VfioPciDevice, vfio_device::VfioDevice};
use kernel::{prelude::*, uaccess::UserPtr};

/// Moves up to `count` bytes between user memory and BAR `bar` at `offset`.
pub(crate) fn bar_rw(
    _dev: &VfioDevice<VfioPciDevice>,
    _bar: u8,
    _buf: UserPtr,
    _count: usize,
    _offset: u64,
    _write: bool,
) -> Result<usize> {
    Err(EINVAL)
}

/// Reads up to `count` bytes of the expansion ROM at `offset` (writes are refused).
pub(crate) fn rom_read(
    _dev: &VfioDevice<VfioPciDevice>,
    _buf: UserPtr,
    _count: usize,
    _offset: u64,
    _write: bool,
) -> Result<usize> {
    Err(EINVAL)
}
