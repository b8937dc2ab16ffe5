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
    bindings,
    ffi::c_void,
    io::{
        Io,
        IoCapable,
        MmioRaw, //
    },
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
/// # Invariants
///
/// The [`MmioRaw`] this is made from holds, as its address, an iomap cookie valid for `ioread*`
/// and `iowrite*` at every offset below its size, for as long as the reference lives.
#[repr(transparent)]
pub(crate) struct IoMap(MmioRaw);

impl IoMap {
    /// Views `raw` as a mapping.
    ///
    /// # Safety
    ///
    /// `raw.addr()` must be an iomap cookie (as `pci_iomap()`, `pci_map_rom()` or `ioremap()`
    /// return) valid for `raw.maxsize()` bytes for as long as the returned reference lives.
    #[inline]
    pub(in crate::kernel_ext) unsafe fn from_raw(raw: &MmioRaw) -> &Self {
        // SAFETY: `IoMap` is a transparent wrapper of `MmioRaw`.
        // INVARIANT: By the safety requirement.
        unsafe { &*core::ptr::from_ref(raw).cast() }
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

impl Io for IoMap {
    #[inline]
    fn addr(&self) -> usize {
        self.0.addr()
    }

    #[inline]
    fn maxsize(&self) -> usize {
        self.0.maxsize()
    }
}

/// Implements [`IoCapable`] on [`IoMap`] for `$ty` with the iomap accessors `$read` and `$write`.
macro_rules! impl_iomap_io_capable {
    ($ty:ty, $read:ident, $write:ident) => {
        impl IoCapable<$ty> for IoMap {
            #[inline]
            unsafe fn io_read(&self, address: usize) -> $ty {
                // SAFETY: By the trait's safety requirement `address` and the bytes after it up
                // to the access width lie inside the mapping, whose cookie the type invariant
                // says is valid for iomap accessors. The accessor returns the value zero-extended,
                // so the cast keeps every bit read.
                unsafe { bindings::$read(address as *const c_void) as $ty }
            }

            #[inline]
            unsafe fn io_write(&self, value: $ty, address: usize) {
                // SAFETY: As in `io_read`.
                unsafe { bindings::$write(value, address as *mut c_void) }
            }
        }
    };
}

impl_iomap_io_capable!(u8, ioread8, iowrite8);
impl_iomap_io_capable!(u16, ioread16, iowrite16);
impl_iomap_io_capable!(u32, ioread32, iowrite32);
impl_iomap_io_capable!(u64, __ioread64_lo_hi, __iowrite64_lo_hi);
