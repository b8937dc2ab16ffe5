// SPDX-License-Identifier: GPL-2.0

//! The BARs of a function: what the PCI core assigned to them, and, while user space has the
//! function open, the driver's claim on them and their kernel mappings.
//!
//! At first open every implemented BAR is claimed for "vfio" and mapped (`pci_iomap`), as
//! vfio-pci does, so that other drivers cannot take the ranges and `read(2)`/`write(2)` need
//! no mapping of their own; a BAR that cannot be claimed or mapped keeps the errno, which
//! every access to it then returns. Whether a BAR may be mmapped is settled at the same time:
//! a memory BAR of a page or more may; so may a smaller one that starts a page, once the rest
//! of its page is reserved ([`BarWindowReservation`]) so that no other BAR can be placed where
//! user space would reach it through the mapping. Everything is released at last close
//! ([`OpenBars`] dropped).

use crate::kernel_ext::pci::{
    bar::{
        BarMapping,
        BarWindowReservation, //
    },
    regs,
    OwnedDevice,
    PciDeviceExt, //
};
use kernel::{
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::{
        Atomic,
        Relaxed, //
    }, //
};

/// Number of standard BARs.
pub(crate) const NUM_BARS: usize = regs::PCI_STD_NUM_BARS as usize;

/// The name of the claim on every BAR, as vfio-pci names it.
const CLAIM_NAME: &CStr = c"vfio";

/// Claims and maps BAR `bar` of `pdev`; `EBUSY` if the range is taken, `ENOMEM` if it cannot
/// be mapped.
fn map_bar(pdev: &OwnedDevice, bar: u8) -> Result<BarMapping> {
    BarMapping::new(pdev, bar, CLAIM_NAME).inspect_err(|e| {
        if *e == EBUSY {
            dev_dbg!(pdev.as_device(), "Failed to reserve region {}\n", bar);
        } else {
            dev_dbg!(pdev.as_device(), "Failed to iomap region {}\n", bar);
        }
    })
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
        let flags = pdev.read_config_word(u32::from(cap) + regs::PCI_MSIX_FLAGS);
        let table = pdev.read_config_dword(u32::from(cap) + regs::PCI_MSIX_TABLE);
        let entries = u64::from(flags & regs::PCI_MSIX_FLAGS_QSIZE as u16) + 1;
        Some(Self {
            bar: (table & regs::PCI_MSIX_TABLE_BIR) as u8,
            offset: u64::from(table & regs::PCI_MSIX_TABLE_OFFSET),
            size: entries * u64::from(regs::PCI_MSIX_ENTRY_SIZE),
        })
    }

    /// The part of `[start, start + len)` of BAR `bar` that is not the table, split at it:
    /// `(excluded_start, excluded_end)` relative to the BAR, or `None` for another BAR.
    pub(crate) fn excluded_in(&self, bar: u8) -> Option<(u64, u64)> {
        (bar == self.bar).then(|| (self.offset, self.offset + self.size))
    }
}

/// Reserves the rest of the page of BAR `bar`, if the BAR is a memory BAR smaller than a page
/// that starts a page, as a resource of the BAR's parent window (named as vfio-pci names it),
/// so that nothing else is assigned there while user space may map the page; `None` if it is
/// not, or the range is taken.
fn reserve_sub_page(pdev: &OwnedDevice, bar: u8) -> Option<BarWindowReservation> {
    let page = PAGE_SIZE as u64;
    let bar_res = pdev.resource(usize::from(bar));
    if !bar_res.is_mem() || bar_res.len == 0 || bar_res.len >= page {
        return None;
    }
    if bar_res.start % page != 0 {
        // Not page aligned: its page is shared with whatever precedes it.
        return None;
    }
    BarWindowReservation::new(
        pdev,
        bar,
        bar_res.start + bar_res.len,
        page - bar_res.len,
        c"vfio sub-page reserved",
    )
    .ok()
}

/// The BARs of an open function.
pub(crate) struct OpenBars {
    /// Each BAR's mapping, or the errno accesses to it return.
    mappings: [Result<BarMapping>; NUM_BARS],
    /// Which BARs user space may mmap.
    mmappable: [bool; NUM_BARS],
    /// The rest of the page of the sub-page BARs that may be mmapped.
    _sub_pages: [Option<BarWindowReservation>; NUM_BARS],
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
                map_bar(pdev, bar as u8)
            }
        });
        let sub_pages: [Option<BarWindowReservation>; NUM_BARS] = core::array::from_fn(|bar| {
            if non_mappable {
                None
            } else {
                reserve_sub_page(pdev, bar as u8)
            }
        });
        let mmappable = core::array::from_fn(|bar| {
            let res = pdev.resource(bar);
            let whole_pages = res.len >= PAGE_SIZE as u64;
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

/// What the BARs of the open function allow, beside the memory gate, so that ioctls read it
/// without the gate: which BARs user space may mmap (one bit per BAR, as vfio-pci reads its
/// `bar_mmap_supported` for `GET_REGION_INFO`), and whether each BAR is mapped or the errno
/// accesses to it get (for `VFIO_DEVICE_IOEVENTFD`, which vfio-pci answers without a lock).
/// Written only with the gate held for writing, when the BARs are opened and released; the
/// VFIO core runs no ioctl before the open has finished or after the close has begun.
pub(crate) struct BarsInfo {
    mmappable: Atomic<u32>,
    /// Per BAR, 0 when it is mapped, else the (negative) errno of [`OpenBars::mapping`].
    mapped: [Atomic<i32>; NUM_BARS],
}

impl BarsInfo {
    /// No BAR (the function is not open).
    pub(crate) fn new() -> Self {
        Self {
            mmappable: Atomic::new(0),
            mapped: core::array::from_fn(|_| Atomic::new(EINVAL.to_errno())),
        }
    }

    /// Records what `bars` allows, or nothing when the BARs are released.
    pub(crate) fn publish(&self, bars: Option<&OpenBars>) {
        let bits = bars.map_or(0, |bars| {
            (0..NUM_BARS as u8)
                .filter(|&bar| bars.mmappable(bar))
                .fold(0, |bits, bar| bits | 1 << bar)
        });
        self.mmappable.store(bits, Relaxed);
        for (bar, mapped) in self.mapped.iter().enumerate() {
            let errno = match bars.map(|bars| bars.mapping(bar as u8)) {
                Some(Ok(_)) => 0,
                Some(Err(e)) => e.to_errno(),
                // As `MemoryGate::bars` answers when the function is not open.
                None => EINVAL.to_errno(),
            };
            mapped.store(errno, Relaxed);
        }
    }

    /// Whether user space may mmap BAR `bar`.
    pub(crate) fn mmappable(&self, bar: u8) -> bool {
        bar < NUM_BARS as u8 && self.mmappable.load(Relaxed) & (1 << bar) != 0
    }

    /// Whether BAR `bar` is mapped: the errno [`OpenBars::mapping`] gives if not.
    pub(crate) fn mapped(&self, bar: u8) -> Result {
        match self.mapped.get(usize::from(bar)).map(|m| m.load(Relaxed)) {
            Some(0) => Ok(()),
            Some(errno) => Err(Error::from_errno(errno)),
            None => Err(EINVAL),
        }
    }
}
