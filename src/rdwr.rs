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

#![allow(unsafe_code)] // Transitional: this file still calls C directly.

use crate::{
    device::VfioPciDevice,
    kernel_ext::pci::{OwnedDevice, PciDeviceExt},
    kernel_ext::vfio::VfioDevice,
    memory,
};
use core::ptr::NonNull;
use kernel::{
    bindings,
    ffi::c_void,
    prelude::*,
    uaccess::{UserPtr, UserSlice, UserSliceReader, UserSliceWriter},
};

/// The width of one device access.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Width {
    W1 = 1,
    W2 = 2,
    W4 = 4,
    W8 = 8,
}

impl Width {
    /// The widest access up to `max` that `offset` is aligned for and `fillable` bytes hold.
    fn pick(offset: u64, fillable: u64, max: Width) -> Width {
        [Width::W8, Width::W4, Width::W2]
            .into_iter()
            .find(|&w| w <= max && fillable >= w as u64 && offset % w as u64 == 0)
            .unwrap_or(Width::W1)
    }
}

/// One device access of `width` bytes at the kernel cookie `io`.
///
/// # Safety
///
/// `io` must be a live `pci_iomap`/`pci_map_rom` cookie with at least `width` bytes behind it.
unsafe fn io_read(io: *mut c_void, width: Width) -> u64 {
    // SAFETY: By the function's safety requirement. The 64-bit access is two 32-bit ones,
    // low half first, as in vfio-pci (x86 has no atomic 64-bit port or iomap access).
    unsafe {
        match width {
            Width::W1 => u64::from(bindings::ioread8(io)),
            Width::W2 => u64::from(bindings::ioread16(io)),
            Width::W4 => u64::from(bindings::ioread32(io)),
            Width::W8 => bindings::__ioread64_lo_hi(io),
        }
    }
}

/// One device write of `width` bytes (the low bytes of `value`) at the kernel cookie `io`.
///
/// # Safety
///
/// As [`io_read`].
pub(crate) unsafe fn io_write(io: *mut c_void, width: Width, value: u64) {
    // SAFETY: By the function's safety requirement; the truncations keep the bytes written.
    unsafe {
        match width {
            Width::W1 => bindings::iowrite8(value as u8, io),
            Width::W2 => bindings::iowrite16(value as u16, io),
            Width::W4 => bindings::iowrite32(value as u32, io),
            Width::W8 => bindings::__iowrite64_lo_hi(value, io),
        }
    }
}

/// The user side of a transfer: where read bytes go or written bytes come from.
enum UserBuffer {
    Read(UserSliceWriter),
    Write(UserSliceReader),
}

impl UserBuffer {
    fn new(buf: UserPtr, count: usize, write: bool) -> Self {
        let slice = UserSlice::new(buf, count);
        if write {
            Self::Write(slice.reader())
        } else {
            Self::Read(slice.writer())
        }
    }

    /// Moves one device access: `access` does the device side with the value to write (if
    /// any) and returns the value read.
    fn transfer(
        &mut self,
        width: Width,
        access: impl FnOnce(Option<u64>) -> Result<u64>,
    ) -> Result {
        let n = width as usize;
        match self {
            Self::Write(reader) => {
                let mut bytes = [0u8; 8];
                reader.read_slice(&mut bytes[..n])?;
                access(Some(u64::from_le_bytes(bytes)))?;
            }
            Self::Read(writer) => {
                let value = access(None)?;
                writer.write_slice(&value.to_le_bytes()[..n])?;
            }
        }
        Ok(())
    }

    /// Skips `n` bytes of an excluded range: reads give `0xff`, writes are dropped.
    fn fill_excluded(&mut self, n: usize) -> Result {
        match self {
            Self::Write(reader) => reader.skip(n),
            Self::Read(writer) => {
                let ones = [0xffu8; 64];
                let mut left = n;
                while left > 0 {
                    let chunk = left.min(ones.len());
                    writer.write_slice(&ones[..chunk])?;
                    left -= chunk;
                }
                Ok(())
            }
        }
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
            let width = Width::pick(offset, fillable, max);
            user.transfer(width, |value| access(offset, width, value))?;
            width as u64
        };
        offset += step;
    }
    Ok(count as usize)
}

/// Moves up to `count` bytes between user memory and BAR `bar` at `offset`.
pub(crate) fn bar_rw(
    dev: &VfioDevice<VfioPciDevice>,
    bar: u8,
    buf: UserPtr,
    count: usize,
    offset: u64,
    write: bool,
) -> Result<usize> {
    let pdev: &OwnedDevice = dev.pdev();
    let res = pdev.resource(usize::from(bar));
    if res.start == 0 || offset >= res.len {
        return Err(EINVAL);
    }
    let count = (count as u64).min(res.len - offset);
    let test_mem = res.is_mem();

    let excluded = dev
        .msix_table()
        .and_then(|table| table.excluded_in(bar))
        .map(|(start, end)| Excluded { start, end });
    // A BAR that could not be claimed or mapped fails before any byte moves, as in vfio-pci,
    // even when the access touches only the MSI-X table (which no device access reaches);
    // any other access fails at its first device access.
    if excluded.is_some_and(|x| offset < x.end && offset + count > x.start) {
        memory::read(dev).bars()?.mapping(bar)?;
    }

    let mut user = UserBuffer::new(buf, count as usize, write);
    split_rw(
        &mut user,
        offset,
        count,
        excluded,
        Width::W8,
        |at, width, value| {
            let gate = memory::read(dev);
            if test_mem && !gate.accessible(pdev) {
                return Err(EIO);
            }
            let io = gate
                .bars()?
                .mapping(bar)?
                .io()
                .wrapping_byte_add(at as usize);
            // SAFETY: `io` lies inside the mapping of BAR `bar` (`at + width <= len`, as
            // `split_rw` never crosses `offset + count <= len`), which the gate keeps alive
            // while we hold it.
            unsafe {
                match value {
                    Some(v) => {
                        io_write(io, width, v);
                        Ok(0)
                    }
                    None => Ok(io_read(io, width)),
                }
            }
        },
    )
}

/// A mapping of the expansion ROM for one access, unmapped on drop.
struct RomMapping<'a> {
    pdev: &'a OwnedDevice,
    io: NonNull<c_void>,
    /// The size of the ROM image (bytes past it are not read).
    image_len: u64,
    /// Whether it is a copy of a platform-provided ROM (`ioremap`) rather than the BAR.
    shadow: bool,
}

impl<'a> RomMapping<'a> {
    fn map(pdev: &'a OwnedDevice, bar_assigned: bool) -> Result<Self> {
        let mut image_len = 0usize;
        let (io, shadow) = if bar_assigned {
            // SAFETY: `pdev` is valid; `image_len` is a valid output location.
            (
                unsafe { bindings::pci_map_rom(pdev.as_raw(), &mut image_len) },
                false,
            )
        } else {
            let (addr, len) = pdev.platform_rom().ok_or(EINVAL)?;
            image_len = len;
            // SAFETY: Mapping the platform's copy of the ROM, which the PCI core recorded.
            (unsafe { bindings::ioremap(addr, len) }.cast(), true)
        };
        let io = NonNull::new(io).ok_or(ENOMEM)?;
        Ok(Self {
            pdev,
            io,
            image_len: image_len as u64,
            shadow,
        })
    }
}

impl Drop for RomMapping<'_> {
    fn drop(&mut self) {
        // SAFETY: `io` came from the matching map call in `map`.
        unsafe {
            if self.shadow {
                bindings::iounmap(self.io.as_ptr().cast());
            } else {
                bindings::pci_unmap_rom(self.pdev.as_raw(), self.io.as_ptr());
            }
        }
    }
}

/// Reads up to `count` bytes of the expansion ROM at `offset` (writes are refused: the ROM
/// region is read-only, as its region info says).
pub(crate) fn rom_read(
    dev: &VfioDevice<VfioPciDevice>,
    buf: UserPtr,
    count: usize,
    offset: u64,
    write: bool,
) -> Result<usize> {
    if write {
        return Err(EINVAL);
    }
    let pdev: &OwnedDevice = dev.pdev();
    let res = pdev.resource(bindings::PCI_ROM_RESOURCE as usize);
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
    let rom = RomMapping::map(pdev, res.start != 0)?;
    let excluded = Some(Excluded {
        start: rom.image_len,
        end: len,
    });
    let mut user = UserBuffer::new(buf, count as usize, false);
    // Some devices fault on 64-bit ROM reads: at most 32 bits, as vfio-pci.
    split_rw(
        &mut user,
        offset,
        count,
        excluded,
        Width::W4,
        |at, width, _| {
            let gate = memory::read(dev);
            if !gate.accessible(pdev) {
                return Err(EIO);
            }
            let io = rom.io.as_ptr().wrapping_byte_add(at as usize);
            // SAFETY: `at + width <= image_len`: the excluded range starts at the image's end, so
            // `split_rw` only reads inside the mapped image.
            Ok(unsafe { io_read(io, width) })
        },
    )
}
