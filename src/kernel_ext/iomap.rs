// SPDX-License-Identifier: GPL-2.0

//! I/O through `lib/iomap.c` cookies: a [`kernel::io::Io`] backend for mappings made by
//! `pci_iomap()` and `pci_map_rom()`.
//!
//! C header: [`include/asm-generic/iomap.h`](srctree/include/asm-generic/iomap.h)
//!
//! A cookie of `pci_iomap()` is either a kernel virtual address of MMIO or an encoded I/O port
//! (for an I/O port BAR); `ioread8()` and friends decode it on every access, so one accessor
//! serves both kinds of BAR. The kernel crate's [`kernel::io::Mmio`] uses `readl()` and friends,
//! which only work on MMIO, so it cannot back a BAR that may be an I/O port BAR.
//!
//! [`IoMap`] is to a cookie what [`kernel::io::Mmio`] is to an MMIO address: owners of a
//! mapping (a claimed BAR, a mapped ROM) dereference to it. Besides the [`Io`] accessors it offers
//! [`IoMap::read_width`] and [`IoMap::write_width`], bounds-checked accesses whose width is a
//! run-time value ([`Width`]), as `read(2)`/`write(2)` of a region and ioeventfds need.
//! 64-bit accesses are two 32-bit ones, low half first (`ioread64_lo_hi()`): the platform may
//! have no atomic 64-bit port or iomap access.

use kernel::{
    ffi::c_void,
    io::Io,
    prelude::*, //
};

/// The width of one device access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Width {
    /// 1 byte.
    W1 = 1,
    /// 2 bytes.
    W2 = 2,
    /// 4 bytes.
    W4 = 4,
    /// 8 bytes (two 4-byte accesses, low half first).
    W8 = 8,
}

/// A range of device I/O (MMIO or I/O ports) reached through an iomap cookie.
///
/// The accessors of the kernel crate's [`Io`] trait work on it (on a reference to it, with the
/// 7.3 kernel crate); its implementations of the kernel crate's I/O traits are in
/// `kernel_ext::compat`, as their shape differs between the kernels.
///
/// # Invariants
///
/// `cookie` is an iomap cookie valid for `ioread*` and `iowrite*` at every offset below `size`,
/// for as long as the value can be reached (its owner unmaps it only when it drops it).
pub(crate) struct IoMap {
    cookie: usize,
    size: usize,
}

impl IoMap {
    /// Wraps the cookie of a mapping of `size` bytes.
    ///
    /// # Safety
    ///
    /// `cookie` must be an iomap cookie (as `pci_iomap()`, `pci_map_rom()` or `ioremap()`
    /// return) valid for `size` bytes until the returned value is dropped.
    #[inline]
    pub(in crate::kernel_ext) unsafe fn new(cookie: *mut c_void, size: usize) -> Self {
        // INVARIANT: By the safety requirement.
        Self {
            cookie: cookie as usize,
            size,
        }
    }

    /// The cookie, for the owner to unmap it.
    #[inline]
    pub(in crate::kernel_ext) fn cookie(&self) -> *mut c_void {
        self.cookie as *mut c_void
    }

    /// The size of the mapping in bytes.
    #[inline]
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Reads `width` bytes at `offset`: `EINVAL` unless the access lies inside the mapping and
    /// `offset` is aligned to `width`.
    #[inline]
    pub(crate) fn read_width(&self, width: Width, offset: u64) -> Result<u64> {
        let offset = usize::try_from(offset)?;
        Ok(match width {
            Width::W1 => self.try_read8(offset)?.into(),
            Width::W2 => self.try_read16(offset)?.into(),
            Width::W4 => self.try_read32(offset)?.into(),
            Width::W8 => self.try_read64(offset)?,
        })
    }

    /// Writes the low `width` bytes of `value` at `offset`: `EINVAL` unless the access lies
    /// inside the mapping and `offset` is aligned to `width`.
    #[inline]
    pub(crate) fn write_width(&self, width: Width, offset: u64, value: u64) -> Result {
        let offset = usize::try_from(offset)?;
        // The truncations keep the bytes written.
        match width {
            Width::W1 => self.try_write8(value as u8, offset),
            Width::W2 => self.try_write16(value as u16, offset),
            Width::W4 => self.try_write32(value as u32, offset),
            Width::W8 => self.try_write64(value, offset),
        }
    }
}
