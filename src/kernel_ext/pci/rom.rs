// SPDX-License-Identifier: GPL-2.0

//! Mappings of a function's expansion ROM: the ROM BAR (`pci_map_rom()`) or the copy of the ROM
//! the platform firmware left in memory (`ioremap()` of the shadow the PCI core recorded).
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)
//!
//! Either way the mapping covers the ROM image and dereferences to an [`IoMap`], whose size is
//! the image's: bytes past the image (up to the size of the ROM BAR) are not reachable.

use super::{
    raw_of,
    OwnedDevice,
    PciDeviceExt, //
};
use crate::kernel_ext::iomap::IoMap;
use core::ops::Deref;
use kernel::{
    bindings,
    prelude::*, //
};

/// Where a [`RomMapping`] comes from, which says how to unmap it.
#[derive(Clone, Copy)]
enum RomSource {
    /// The ROM BAR, enabled and mapped by `pci_map_rom()`.
    Bar,
    /// The platform's shadow copy, mapped by `ioremap()`.
    Shadow,
}

/// A mapping of a function's ROM image, unmapped on drop.
///
/// # Invariants
///
/// `io.cookie()` is a mapping of `io.size()` bytes of the ROM image of `pdev`, made as `source`
/// says, and mapped until dropped.
pub(crate) struct RomMapping<'a> {
    pdev: &'a OwnedDevice,
    io: IoMap,
    source: RomSource,
}

impl OwnedDevice {
    /// Maps the ROM BAR (enabling its decode, `pci_map_rom()`), sized to the image found in it:
    /// `ENOMEM` if it cannot be mapped or holds no valid image.
    pub(crate) fn map_rom(&self) -> Result<RomMapping<'_>> {
        let mut image_len = 0usize;
        // SAFETY: `self` is a valid function (type invariant of `pci::Device`); `image_len` is a
        // valid output location.
        let ptr = unsafe { bindings::pci_map_rom(raw_of(self.pci_device()), &mut image_len) };
        if ptr.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `pci_map_rom()` mapped the ROM, whose image is `image_len` bytes long, until
        // `drop` unmaps it; its address is a valid iomap cookie.
        let io = unsafe { IoMap::new(ptr, image_len) };
        // INVARIANT: As just said.
        Ok(RomMapping {
            pdev: self,
            io,
            source: RomSource::Bar,
        })
    }

    /// Maps the platform's copy of the ROM (see [`PciDeviceExt::platform_rom`]): `EINVAL` if
    /// there is none, `ENOMEM` if it cannot be mapped.
    pub(crate) fn map_platform_rom(&self) -> Result<RomMapping<'_>> {
        let (addr, len) = self.platform_rom().ok_or(EINVAL)?;
        // SAFETY: Mapping the memory the firmware left the ROM copy in, which the PCI core
        // recorded at enumeration (it is not RAM the kernel allocates from).
        let ptr = unsafe { bindings::ioremap(addr, len) };
        if ptr.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `ioremap()` mapped the `len` bytes of the copy, until `drop` unmaps it; an
        // `ioremap()` address is a valid iomap cookie.
        let io = unsafe { IoMap::new(ptr, len) };
        // INVARIANT: As just said.
        Ok(RomMapping {
            pdev: self,
            io,
            source: RomSource::Shadow,
        })
    }
}

impl Deref for RomMapping<'_> {
    type Target = IoMap;

    #[inline]
    fn deref(&self) -> &IoMap {
        &self.io
    }
}

impl Drop for RomMapping<'_> {
    fn drop(&mut self) {
        let io = self.io.cookie();
        // SAFETY: By the type invariant `io` was mapped as `source` says, and is unmapped once,
        // here.
        unsafe {
            match self.source {
                RomSource::Bar => bindings::pci_unmap_rom(raw_of(self.pdev), io),
                RomSource::Shadow => bindings::iounmap(io),
            }
        }
    }
}
