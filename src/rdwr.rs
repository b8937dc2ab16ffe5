// SPDX-License-Identifier: GPL-2.0

//! `read(2)`/`write(2)` of BARs (memory and I/O ports) and of the expansion ROM.
//!
//! An access is split into naturally aligned 8-, 4-, 2- and 1-byte device accesses, as
//! vfio-pci splits it. Bytes of the MSI-X table (user space must program vectors through
//! `VFIO_DEVICE_SET_IRQS`, never directly) and ROM bytes past the ROM image are not touched:
//! reads of them return `0xff`, writes to them are dropped. Memory BARs are reached only
//! through the memory gate ([`crate::memory`]), one device access at a time, and only while
//! the function decodes memory (`EIO` otherwise); the copy to or from user memory happens
//! outside the gate, since it may fault on an mmap of this very device.

use crate::{
    bars::MsixTable,
    kernel_ext::iomap::IoMap,
    kernel_ext::pci::{
        regs,
        OwnedDevice,
        PciDeviceExt, //
    },
    kernel_ext::sync::RwSem,
    kernel_ext::uaccess,
    memory::MemoryGate, //
};
use kernel::{
    prelude::*,
    uaccess::UserPtr, //
};

pub(crate) use crate::kernel_ext::iomap::Width;

/// The widest access up to `max` that `offset` is aligned for and `fillable` bytes hold.
fn pick_width(offset: u64, fillable: u64, max: Width) -> Width {
    [Width::W8, Width::W4, Width::W2]
        .into_iter()
        .find(|&w| w <= max && fillable >= w as u64 && offset % w as u64 == 0)
        .unwrap_or(Width::W1)
}

/// One `read(2)` or `write(2)` of a region: `count` bytes at `offset` of the region, to or
/// from user memory at `buf`.
#[derive(Clone, Copy)]
pub(crate) struct Transfer {
    pub(crate) buf: UserPtr,
    pub(crate) count: usize,
    pub(crate) offset: u64,
    pub(crate) write: bool,
}

/// The user side of a transfer: where the next read byte goes, or the next written byte comes
/// from. The copies are [`uaccess`]'s (inlined), one device access's bytes at a time.
struct UserBuffer {
    at: UserPtr,
    write: bool,
}

impl UserBuffer {
    fn new(buf: UserPtr, write: bool) -> Self {
        Self { at: buf, write }
    }

    /// Moves one device access: `access` does the device side with the value to write (if
    /// any) and returns the value read.
    fn transfer(
        &mut self,
        width: Width,
        access: impl FnOnce(Option<u64>) -> Result<u64>,
    ) -> Result {
        let n = width as usize;
        let mut bytes = [0u8; 8];
        let data = bytes.get_mut(..n).ok_or(EINVAL)?;
        if self.write {
            uaccess::copy_from_user(self.at, data)?;
            access(Some(u64::from_le_bytes(bytes)))?;
        } else {
            let value = access(None)?.to_le_bytes();
            uaccess::copy_to_user(self.at, value.get(..n).ok_or(EINVAL)?)?;
        }
        self.at = self.at.wrapping_byte_add(n);
        Ok(())
    }

    /// Skips `n` bytes of an excluded range: reads give `0xff`, writes are dropped.
    fn fill_excluded(&mut self, n: usize) -> Result {
        if !self.write {
            let ones = [0xffu8; 64];
            let mut left = n;
            while left > 0 {
                let chunk = left.min(ones.len());
                uaccess::copy_to_user(
                    self.at.wrapping_byte_add(n - left),
                    ones.get(..chunk).ok_or(EINVAL)?,
                )?;
                left -= chunk;
            }
        }
        self.at = self.at.wrapping_byte_add(n);
        Ok(())
    }
}

/// The bytes of a region an access may not touch, relative to the region.
#[derive(Clone, Copy)]
struct Excluded {
    start: u64,
    end: u64,
}

/// Moves `count` bytes at `offset` of a region, one device access at a time; `access` performs
/// one device access at a region offset. Returns the bytes moved; any error discards them.
fn split_rw(
    user: &mut UserBuffer,
    mut offset: u64,
    count: u64,
    excluded: Option<Excluded>,
    max: Width,
    mut access: impl FnMut(u64, Width, Option<u64>) -> Result<u64>,
) -> Result<usize> {
    let end = offset + count;
    while offset < end {
        let left = end - offset;
        let fillable = match excluded {
            Some(x) if offset < x.start => left.min(x.start - offset),
            Some(x) if offset < x.end => 0,
            _ => left,
        };
        let step = if fillable == 0 {
            // Inside the excluded range: skip to its end.
            let skip = left.min(excluded.map_or(left, |x| x.end - offset));
            user.fill_excluded(skip as usize)?;
            skip
        } else {
            let width = pick_width(offset, fillable, max);
            user.transfer(width, |value| access(offset, width, value))?;
            width as u64
        };
        offset += step;
    }
    Ok(count as usize)
}

/// Moves up to `xfer.count` bytes between user memory and BAR `bar` at `xfer.offset`, through
/// the memory gate `memory` of `pdev`; bytes of `msix_table` are not touched.
pub(crate) fn bar_rw(
    memory: &RwSem<MemoryGate>,
    pdev: &OwnedDevice,
    msix_table: Option<MsixTable>,
    bar: u8,
    xfer: Transfer,
) -> Result<usize> {
    let Transfer {
        buf,
        count,
        offset,
        write,
    } = xfer;
    let res = pdev.resource(usize::from(bar));
    if res.start == 0 || offset >= res.len {
        return Err(EINVAL);
    }
    let count = (count as u64).min(res.len - offset);
    let test_mem = res.is_mem();

    let excluded = msix_table
        .and_then(|table| table.excluded_in(bar))
        .map(|(start, end)| Excluded { start, end });
    // A BAR that could not be claimed or mapped fails before any byte moves, as in vfio-pci,
    // even when the access touches only the MSI-X table (which no device access reaches);
    // any other access fails at its first device access.
    if excluded.is_some_and(|x| offset < x.end && offset + count > x.start) {
        memory.read().bars()?.mapping(bar)?;
    }

    let mut user = UserBuffer::new(buf, write);
    split_rw(
        &mut user,
        offset,
        count,
        excluded,
        Width::W8,
        |at, width, value| {
            let gate = memory.read();
            if test_mem && !gate.accessible(pdev) {
                return Err(EIO);
            }
            // The gate keeps the mapping alive while we hold it; `split_rw` never crosses
            // `offset + count <= len`.
            let mapping = gate.bars()?.mapping(bar)?;
            match value {
                Some(v) => mapping.write_width(width, at, v).map(|()| 0),
                None => mapping.read_width(width, at),
            }
        },
    )
}

/// Moves `xfer.count` bytes between user memory and `io` at `xfer.offset` (both inside `io`),
/// at most `max` bytes per device access and outside any memory gate: for ranges that are no
/// BAR of the function, which its memory decode does not govern (the legacy VGA ranges).
pub(crate) fn io_rw(io: &IoMap, xfer: Transfer, max: Width) -> Result<usize> {
    let mut user = UserBuffer::new(xfer.buf, xfer.write);
    split_rw(
        &mut user,
        xfer.offset,
        xfer.count as u64,
        None,
        max,
        |at, width, value| match value {
            Some(v) => io.write_width(width, at, v).map(|()| 0),
            None => io.read_width(width, at),
        },
    )
}

/// Reads up to `xfer.count` bytes of the expansion ROM of `pdev` at `xfer.offset`, through its
/// memory gate `memory` (writes are refused: the ROM region is read-only, as its region info
/// says). As in vfio-pci, the reads need the function to decode memory (`EIO` otherwise) only
/// when the ROM resource is a memory resource: the platform's copy of the ROM of a function
/// without a ROM BAR is read whatever the function decodes.
pub(crate) fn rom_read(
    memory: &RwSem<MemoryGate>,
    pdev: &OwnedDevice,
    xfer: Transfer,
) -> Result<usize> {
    let Transfer {
        buf,
        count,
        offset,
        write,
    } = xfer;
    if write {
        return Err(EINVAL);
    }
    let res = pdev.resource(regs::PCI_ROM_RESOURCE as usize);
    let len = if res.start != 0 {
        res.len
    } else {
        let (_, image_len) = pdev.platform_rom().ok_or(EINVAL)?;
        (image_len as u64).next_power_of_two()
    };
    if offset >= len {
        return Err(EINVAL);
    }
    let count = (count as u64).min(len - offset);
    let test_mem = res.is_mem();
    let rom = if res.start != 0 {
        pdev.map_rom()?
    } else {
        pdev.map_platform_rom()?
    };
    // Bytes past the image are not read.
    let excluded = Some(Excluded {
        start: rom.size() as u64,
        end: len,
    });
    let mut user = UserBuffer::new(buf, false);
    // Some devices fault on 64-bit ROM reads: at most 32 bits, as vfio-pci.
    split_rw(
        &mut user,
        offset,
        count,
        excluded,
        Width::W4,
        |at, width, _| {
            let gate = memory.read();
            if test_mem && !gate.accessible(pdev) {
                return Err(EIO);
            }
            rom.read_width(width, at)
        },
    )
}
