// SPDX-License-Identifier: GPL-2.0

//! The BARs of a function: what the PCI core assigned to them, and, while user space has the
//! function open, the driver's claim on them and their kernel mappings.
//!
//! At first open every implemented BAR is claimed for "vfio" and mapped (`pci_iomap`), as
//! vfio-pci does, so that other drivers cannot take the ranges and `read(2)`/`write(2)` need
//! no mapping of their own; a BAR that cannot be claimed or mapped keeps the errno, which
//! every access to it then returns. Whether a BAR may be mmapped is settled at the same time:
//! a memory BAR of a page or more may; so may a smaller one that starts a page, once the rest
//! of its page is reserved ([`SubPageReservation`]) so that no other BAR can be placed where
//! user space would reach it through the mapping. Everything is released at last close
//! ([`OpenBars`] dropped).

#![allow(unsafe_code)] // Transitional: this file still calls C directly.

use crate::kernel_ext::pci::{OwnedDevice, PciDeviceExt};
use core::ptr::NonNull;
use kernel::{
    bindings,
    ffi::{c_int, c_void},
    prelude::*,
    types::Opaque,
};

/// Number of standard BARs.
pub(crate) const NUM_BARS: usize = bindings::PCI_STD_NUM_BARS as usize;

/// A BAR claimed for this driver and mapped into the kernel's address space.
///
/// # Invariants
///
/// `io` is the `pci_iomap` mapping of the whole of BAR `bar` of `pdev`, whose region this
/// object has claimed; both are released on drop.
pub(crate) struct BarMapping {
    pdev: OwnedDevice,
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
    fn new(pdev: &OwnedDevice, bar: u8) -> Result<Self> {
        let mask: c_int = 1 << bar;
        // SAFETY: `pdev` is valid; the name is a static C string.
        if unsafe {
            bindings::pci_request_selected_regions(pdev.as_raw(), mask, c"vfio".as_ptr().cast())
        } != 0
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
            pdev: pdev.clone(),
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
    pub(crate) fn of(pdev: &OwnedDevice) -> Option<Self> {
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

/// The rest of the page of a memory BAR smaller than a page, held as a resource of the BAR's
/// parent window (named as vfio-pci names it), so that nothing else is assigned there while
/// user space may map the page.
///
/// # Invariants
///
/// `res` is inserted in the resource tree until dropped.
struct SubPageReservation {
    res: KBox<Opaque<bindings::resource>>,
}

// SAFETY: The resource is only inserted and released, under the resource tree's own lock,
// which any thread may take.
unsafe impl Send for SubPageReservation {}
// SAFETY: No method reads or writes the resource through `&self`.
unsafe impl Sync for SubPageReservation {}

impl SubPageReservation {
    /// Reserves the rest of the page of BAR `bar`, if the BAR is a memory BAR smaller than a
    /// page that starts a page; `None` if it is not, or the range is taken.
    fn new(pdev: &OwnedDevice, bar: usize) -> Option<Self> {
        let page = bindings::PAGE_SIZE as u64;
        let bar_res = pdev.resource(bar);
        if !bar_res.is_mem() || bar_res.len == 0 || bar_res.len >= page {
            return None;
        }
        if bar_res.start % page != 0 {
            // Not page aligned: its page is shared with whatever precedes it.
            return None;
        }
        // SAFETY: `pdev` is valid; `resource` has more than `bar` (< 6) entries; `parent` is
        // the window the PCI core placed the BAR in, or null.
        let parent = unsafe { (*pdev.as_raw()).resource.get(bar).map(|r| r.parent) }?;
        if parent.is_null() {
            return None;
        }
        let reserved = bindings::resource {
            name: c"vfio sub-page reserved".as_ptr().cast(),
            start: bar_res.start + bar_res.len,
            end: bar_res.start + page - 1,
            flags: bar_res.flags as _,
            ..Default::default()
        };
        let res = KBox::new(Opaque::new(reserved), GFP_KERNEL).ok()?;
        // SAFETY: `parent` is a live resource of the PCI core (the function's BARs stay
        // assigned while a driver is bound); `res` is a fresh, unlinked resource whose
        // allocation stays put until `drop` takes it out of the tree again.
        if unsafe { bindings::request_resource(parent, res.get()) } != 0 {
            return None;
        }
        // INVARIANT: inserted just above.
        Some(Self { res })
    }
}

impl Drop for SubPageReservation {
    fn drop(&mut self) {
        // SAFETY: Inserted in the tree by `new` (type invariant), removed once, here.
        unsafe { bindings::release_resource(self.res.get()) };
    }
}

/// The BARs of an open function.
pub(crate) struct OpenBars {
    /// Each BAR's mapping, or the errno accesses to it return.
    mappings: [Result<BarMapping>; NUM_BARS],
    /// Which BARs user space may mmap.
    mmappable: [bool; NUM_BARS],
    /// The rest of the page of the sub-page BARs that may be mmapped.
    _sub_pages: [Option<SubPageReservation>; NUM_BARS],
}

impl OpenBars {
    /// Claims and maps the BARs of `pdev` (first open).
    pub(crate) fn open(pdev: &OwnedDevice) -> Self {
        let non_mappable = pdev.has_non_mappable_bars();
        let mappings = core::array::from_fn(|bar| {
            let res = pdev.resource(bar);
            if non_mappable || res.len == 0 {
                Err(ENODEV)
            } else {
                BarMapping::new(pdev, bar as u8)
            }
        });
        let sub_pages: [Option<SubPageReservation>; NUM_BARS] = core::array::from_fn(|bar| {
            if non_mappable {
                None
            } else {
                SubPageReservation::new(pdev, bar)
            }
        });
        let mmappable = core::array::from_fn(|bar| {
            let res = pdev.resource(bar);
            let whole_pages = res.len >= bindings::PAGE_SIZE as u64;
            // Only whole pages can be handed out: a smaller BAR only once nothing else can be
            // put in the rest of its page.
            let sub_page = sub_pages.get(bar).is_some_and(Option::is_some);
            !non_mappable && res.is_mem() && (whole_pages || sub_page)
        });
        Self {
            mappings,
            mmappable,
            _sub_pages: sub_pages,
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
        self.mmappable
            .get(usize::from(bar))
            .copied()
            .unwrap_or(false)
    }
}
