// SPDX-License-Identifier: GPL-2.0

//! The BARs of a function: what the PCI core assigned to them, and, while user space has the
//! function open, the driver's claim on them and their kernel mappings.
//!
//! At first open every implemented BAR is claimed for "vfio" and mapped (`pci_iomap`), as
//! vfio-pci does, so that other drivers cannot take the ranges and `read(2)`/`write(2)` need
//! no mapping of their own; a BAR that cannot be claimed or mapped keeps the errno, which
//! every access to it then returns. Whether a BAR may be mmapped, and where the MSI-X table
//! sits, is settled at the same time. Everything is released at last close ([`OpenBars`]
//! dropped).

use crate::pci_function::PciFunction;
use core::ptr::NonNull;
use kernel::{
    bindings,
    ffi::{c_int, c_void},
    prelude::*,
    sync::aref::ARef,
};

/// Number of standard BARs.
pub(crate) const NUM_BARS: usize = bindings::PCI_STD_NUM_BARS as usize;

/// What the PCI core assigned to one BAR (or the ROM, resource 6).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BarResource {
    /// Bus address of the first byte (0 when unassigned).
    pub(crate) start: u64,
    /// Size in bytes (0 when the BAR is not implemented or not assigned).
    pub(crate) len: u64,
    /// `IORESOURCE_*` flags.
    flags: u64,
}

impl BarResource {
    /// Resource `index` (0-5 BARs, 6 ROM) of `pdev`.
    pub(crate) fn of(pdev: &PciFunction, index: usize) -> Self {
        let raw = pdev.as_raw();
        // SAFETY: `raw` is valid while `pdev` is; `resource` has `DEVICE_COUNT_RESOURCE`
        // entries, more than the 7 this driver asks for (`index` is at most 6 by callers, and
        // an out-of-range one is caught by `get`).
        let res = unsafe { (*raw).resource.get(index).copied() };
        let Some(res) = res else {
            return Self {
                start: 0,
                len: 0,
                flags: 0,
            };
        };
        // As `pci_resource_len`: an unassigned resource (end 0) has no length.
        let len = if res.end == 0 {
            0
        } else {
            res.end.wrapping_sub(res.start).wrapping_add(1)
        };
        Self {
            start: res.start,
            len,
            flags: res.flags as u64,
        }
    }

    /// Whether the BAR decodes memory (not I/O ports).
    pub(crate) fn is_mem(&self) -> bool {
        self.flags & u64::from(bindings::IORESOURCE_MEM) != 0
    }
}

/// A BAR claimed for this driver and mapped into the kernel's address space.
///
/// # Invariants
///
/// `io` is the `pci_iomap` mapping of the whole of BAR `bar` of `pdev`, whose region this
/// object has claimed; both are released on drop.
pub(crate) struct BarMapping {
    pdev: ARef<PciFunction>,
    bar: u8,
    io: NonNull<c_void>,
}

// SAFETY: The mapping is a plain MMIO/port cookie; the accessors used on it are callable from
// any thread.
unsafe impl Send for BarMapping {}
// SAFETY: As above; concurrent accesses are the device's business, as in C.
unsafe impl Sync for BarMapping {}

impl BarMapping {
    /// Claims and maps BAR `bar` of `pdev`; `EBUSY` if the range is taken, `ENOMEM` if it
    /// cannot be mapped.
    fn new(pdev: &PciFunction, bar: u8) -> Result<Self> {
        let mask: c_int = 1 << bar;
        // SAFETY: `pdev` is valid; the name is a static C string.
        if unsafe { bindings::pci_request_selected_regions(pdev.as_raw(), mask, c"vfio".as_ptr().cast()) }
            != 0
        {
            dev_dbg!(pdev.as_device(), "Failed to reserve region {}\n", bar);
            return Err(EBUSY);
        }
        // SAFETY: `pdev` is valid and its BAR `bar` is claimed; length 0 maps the whole BAR.
        let io = unsafe { bindings::pci_iomap(pdev.as_raw(), c_int::from(bar), 0) };
        let Some(io) = NonNull::new(io) else {
            dev_dbg!(pdev.as_device(), "Failed to iomap region {}\n", bar);
            // SAFETY: Claimed just above, not mapped.
            unsafe { bindings::pci_release_selected_regions(pdev.as_raw(), mask) };
            return Err(ENOMEM);
        };
        // INVARIANT: claimed and mapped above.
        Ok(Self {
            pdev: pdev.into(),
            bar,
            io,
        })
    }

    /// The kernel cookie of the BAR's first byte, for `ioread*`/`iowrite*`.
    pub(crate) fn io(&self) -> *mut c_void {
        self.io.as_ptr()
    }
}

impl Drop for BarMapping {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `io` maps BAR `bar` of `pdev`, which we claimed.
        unsafe {
            bindings::pci_iounmap(self.pdev.as_raw(), self.io.as_ptr());
            bindings::pci_release_selected_regions(self.pdev.as_raw(), 1 << self.bar);
        }
    }
}

/// Where the MSI-X table sits: the BAR and the byte range inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MsixTable {
    pub(crate) bar: u8,
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

impl MsixTable {
    /// Reads the MSI-X capability of `pdev`, if it has one (its location is fixed in
    /// hardware: read once, at bind).
    pub(crate) fn of(pdev: &PciFunction) -> Option<Self> {
        let cap = pdev.msix_cap()?;
        let flags = pdev.read_config_word(u32::from(cap) + bindings::PCI_MSIX_FLAGS);
        let table = pdev.read_config_dword(u32::from(cap) + bindings::PCI_MSIX_TABLE);
        let entries = u64::from(flags & bindings::PCI_MSIX_FLAGS_QSIZE as u16) + 1;
        Some(Self {
            bar: (table & bindings::PCI_MSIX_TABLE_BIR) as u8,
            offset: u64::from(table & bindings::PCI_MSIX_TABLE_OFFSET),
            size: entries * u64::from(bindings::PCI_MSIX_ENTRY_SIZE),
        })
    }

    /// The part of `[start, start + len)` of BAR `bar` that is not the table, split at it:
    /// `(excluded_start, excluded_end)` relative to the BAR, or `None` for another BAR.
    pub(crate) fn excluded_in(&self, bar: u8) -> Option<(u64, u64)> {
        (bar == self.bar).then(|| (self.offset, self.offset + self.size))
    }
}

/// The BARs of an open function.
pub(crate) struct OpenBars {
    /// Each BAR's mapping, or the errno accesses to it return.
    mappings: [Result<BarMapping>; NUM_BARS],
    /// Which BARs user space may mmap.
    mmappable: [bool; NUM_BARS],
}

impl OpenBars {
    /// Claims and maps the BARs of `pdev` (first open).
    pub(crate) fn open(pdev: &PciFunction) -> Self {
        let non_mappable = pdev.has_non_mappable_bars();
        let mappings = core::array::from_fn(|bar| {
            let res = BarResource::of(pdev, bar);
            if non_mappable || res.len == 0 {
                Err(ENODEV)
            } else {
                BarMapping::new(pdev, bar as u8)
            }
        });
        let mmappable = core::array::from_fn(|bar| {
            let res = BarResource::of(pdev, bar);
            // Only whole pages can be handed out: a BAR smaller than a page would expose
            // whatever else shares its page.
            !non_mappable && res.is_mem() && res.len >= bindings::PAGE_SIZE as u64
        });
        Self {
            mappings,
            mmappable,
        }
    }

    /// BAR `bar`'s mapping, or the errno an access to it gets.
    pub(crate) fn mapping(&self, bar: u8) -> Result<&BarMapping> {
        match self.mappings.get(usize::from(bar)) {
            Some(Ok(mapping)) => Ok(mapping),
            Some(Err(e)) => Err(*e),
            None => Err(EINVAL),
        }
    }

    /// Whether user space may mmap BAR `bar`.
    pub(crate) fn mmappable(&self, bar: u8) -> bool {
        self.mmappable.get(usize::from(bar)).copied().unwrap_or(false)
    }
}
