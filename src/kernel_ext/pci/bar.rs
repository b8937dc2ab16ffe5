// SPDX-License-Identifier: GPL-2.0

//! BARs of a function bound to this driver: claimed and mapped whole, with accessors that work
//! for memory and I/O port BARs alike; reservations of bus address space next to a BAR; the
//! page frames of a memory BAR, for user mappings.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)
//!
//! The kernel crate's [`kernel::pci::Bar`] does not fit a VFIO driver: it reaches the BAR
//! through `readl()`-style MMIO accessors, which do not work on an I/O port BAR, and it needs a
//! `pci::Device<Bound>`, a borrow that only lasts a driver callback, whereas these mappings live
//! from a first open of the device file to its last close. [`BarMapping`] therefore keeps a
//! counted reference to the function and dereferences to an [`IoMap`], whose `ioread*()` and
//! `iowrite*()` accessors decode MMIO and port cookies alike.

use super::{
    raw_of,
    OwnedDevice,
    PciDeviceExt, //
};
use crate::kernel_ext::{
    iomap::IoMap,
    mm::{
        IoFrames,
        MapOrder, //
    }, //
};
use core::ops::Deref;
use kernel::{
    bindings,
    ffi::{
        c_int,
        c_ulong, //
    },
    page::{
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*,
    types::Opaque, //
};

/// A BAR claimed for this driver (`pci_request_selected_regions()`) and mapped whole into the
/// kernel's address space (`pci_iomap()`); both are released on drop.
///
/// # Invariants
///
/// `io.cookie()` is the `pci_iomap()` cookie of the whole of BAR `bar` of `pdev`, `io.size()`
/// bytes long, and this object holds the claim on the BAR's region.
pub(crate) struct BarMapping {
    pdev: OwnedDevice,
    bar: u8,
    io: IoMap,
}

impl BarMapping {
    /// Claims BAR `bar` of `pdev` under `name` and maps it: `EINVAL` if there is no such BAR
    /// or it is empty, `EBUSY` if its range is taken, `ENOMEM` if it cannot be mapped.
    pub(crate) fn new(pdev: &OwnedDevice, bar: u8, name: &'static CStr) -> Result<Self> {
        if u32::from(bar) >= bindings::PCI_STD_NUM_BARS {
            return Err(EINVAL);
        }
        let len = usize::try_from(pdev.resource(usize::from(bar)).len)?;
        if len == 0 {
            return Err(EINVAL);
        }
        let mask: c_int = 1 << bar;
        // SAFETY: `pdev` is a valid function (type invariant of `pci::Device`); `name` is a
        // NUL-terminated string that lives forever, as the resource tree keeps pointing to it.
        if unsafe { bindings::pci_request_selected_regions(raw_of(pdev), mask, name.as_char_ptr()) }
            != 0
        {
            return Err(EBUSY);
        }
        // SAFETY: `pdev` is valid and `bar` is one of its standard BARs (checked above), which is
        // now claimed; a length of 0 maps the whole BAR.
        let ptr = unsafe { bindings::pci_iomap(raw_of(pdev), c_int::from(bar), 0) };
        if ptr.is_null() {
            // SAFETY: Claimed just above, not mapped.
            unsafe { bindings::pci_release_selected_regions(raw_of(pdev), mask) };
            return Err(ENOMEM);
        }
        // SAFETY: `pci_iomap()` with length 0 mapped the `len` bytes of the claimed BAR, until
        // `drop` unmaps it.
        let io = unsafe { IoMap::new(ptr, len) };
        // INVARIANT: As just said.
        Ok(Self {
            pdev: pdev.clone(),
            bar,
            io,
        })
    }
}

impl Deref for BarMapping {
    type Target = IoMap;

    #[inline]
    fn deref(&self) -> &IoMap {
        &self.io
    }
}

impl Drop for BarMapping {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `io` maps BAR `bar` of `pdev`, whose region we claimed;
        // neither is used again.
        unsafe {
            bindings::pci_iounmap(raw_of(&self.pdev), self.io.cookie());
            bindings::pci_release_selected_regions(raw_of(&self.pdev), 1 << self.bar);
        }
    }
}

/// A range of bus addresses held, as a resource of its own, in the bridge window a BAR was
/// placed in (`request_resource()`), so that the PCI core assigns nothing else there; released
/// (`release_resource()`) on drop.
///
/// # Invariants
///
/// `res` is inserted in the resource tree, below the window of a BAR, until dropped.
pub(crate) struct BarWindowReservation {
    res: Pin<KBox<Opaque<bindings::resource>>>,
}

// SAFETY: The resource is only inserted and released, under the resource tree's own lock, which
// any thread may take.
unsafe impl Send for BarWindowReservation {}
// SAFETY: No method reads or writes the resource through `&self`.
unsafe impl Sync for BarWindowReservation {}

impl BarWindowReservation {
    /// Reserves the `len` bytes at bus address `start`, with the flags of BAR `bar` of `pdev`,
    /// in the window that holds the BAR, as a resource named `name`: `EINVAL` if there is no such
    /// BAR or `len` is 0, `ENOENT` if the BAR sits in no window, `EBUSY` if the range is not
    /// free inside the window.
    pub(crate) fn new(
        pdev: &OwnedDevice,
        bar: u8,
        start: u64,
        len: u64,
        name: &'static CStr,
    ) -> Result<Self> {
        if u32::from(bar) >= bindings::PCI_STD_NUM_BARS || len == 0 {
            return Err(EINVAL);
        }
        let end = start.checked_add(len - 1).ok_or(EINVAL)?;
        // SAFETY: `pdev` is valid (type invariant of `pci::Device`); `parent` is the window the
        // PCI core placed the BAR in, or null, and does not change while a driver is bound.
        // The `parent` field is read through a raw place, as `PciDeviceExt::resource` does.
        let parent = unsafe { (*raw_of(pdev)).resource[usize::from(bar)].parent };
        if parent.is_null() {
            return Err(ENOENT);
        }
        let reserved = bindings::resource {
            name: name.as_char_ptr(),
            start,
            end,
            flags: pdev.resource(usize::from(bar)).flags as c_ulong,
            ..Default::default()
        };
        let res = KBox::pin(Opaque::new(reserved), GFP_KERNEL)?;
        // SAFETY: `parent` is a live resource of the PCI core (a bound function's BARs and their
        // windows stay assigned); `res` is a fresh, unlinked resource in a pinned allocation that
        // stays put until `drop` takes it out of the tree again; `name` lives forever.
        if unsafe { bindings::request_resource(parent, res.get()) } != 0 {
            return Err(EBUSY);
        }
        // INVARIANT: Inserted just above.
        Ok(Self { res })
    }
}

impl Drop for BarWindowReservation {
    fn drop(&mut self) {
        // SAFETY: Inserted in the tree by `new` (type invariant), removed once, here.
        unsafe { bindings::release_resource(self.res.get()) };
    }
}

impl OwnedDevice {
    /// The block of `order` page frames from page `page` of memory BAR `bar`, for a user
    /// mapping of the BAR; the last page of a BAR is whole, even when the BAR ends before it.
    /// `None` if `bar` is not a memory BAR, the block is not aligned to its size in bus address
    /// space, or it does not lie inside the BAR.
    #[inline]
    pub(crate) fn bar_frames(&self, bar: u8, page: u64, order: MapOrder) -> Option<IoFrames> {
        if u32::from(bar) >= bindings::PCI_STD_NUM_BARS {
            return None;
        }
        let res = self.resource(usize::from(bar));
        // An unassigned BAR (no address, or `IORESOURCE_UNSET`) has no frames of its own: its
        // start is not an address in a host bridge window.
        let unset = res.flags & u64::from(bindings::IORESOURCE_UNSET) != 0;
        let bar_pages = res.len.div_ceil(PAGE_SIZE as u64);
        if !res.is_mem() || unset || res.start == 0 || page.checked_add(order.pages())? > bar_pages
        {
            return None;
        }
        let first = usize::try_from((res.start >> PAGE_SHIFT) + page).ok()?;
        // SAFETY: The frames lie in pages of memory BAR `bar` of a function bound to this
        // driver (checked above): bus address space the PCI core assigned from a host bridge
        // window, which never overlaps system RAM.
        unsafe { IoFrames::new(first, order) }
    }
}
