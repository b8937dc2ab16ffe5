// SPDX-License-Identifier: GPL-2.0

//! `mmap(2)` of BARs: mappings are filled at fault time, through the memory gate, so that a
//! reset or a disabled memory decode can take them away (see [`crate::memory`]).
//!
//! A new mapping only records which device it belongs to and becomes an uncached PFN mapping;
//! nothing is present until user space touches it. The fault handler then inserts the BAR's
//! memory if the function decodes memory, and raises `SIGBUS` otherwise. Zapping (on reset, on
//! memory-decode off) removes everything inserted, so the next touch comes back here.
//!
//! As in vfio-pci, the MM first asks for the largest block it can (a PUD, then a PMD, then a
//! page: huge faults on kernels whose architecture maps huge PFNs), and a huge block is mapped
//! when it lies inside the mapping and its frames are aligned to its size in bus address space
//! (so the mapping's address and its offset in the BAR must be congruent modulo the block);
//! otherwise the fault falls back to the next size. Nothing aligns the address of a new
//! mapping: as with vfio-pci, user space that wants huge mappings picks an aligned address.

use crate::{
    kernel_ext::mm::{
        FaultResult,
        MapOrder,
        VmFault,
        VmaRefExt, //
    },
    kernel_ext::pci::{
        OwnedDevice,
        PciDeviceExt, //
    },
    kernel_ext::sync::RwSem,
    kernel_ext::vfio::region::{
        VFIO_PCI_NUM_REGIONS,
        VFIO_PCI_ROM_REGION_INDEX, //
    },
    memory::MemoryGate,
    regions::OFFSET_SHIFT, //
};
use kernel::{
    mm::virt::{
        flags,
        VmaNew, //
    },
    page::{
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*, //
};

/// Page-number bits of a mapping's file offset that address pages inside one region.
const PGOFF_REGION_SHIFT: u32 = OFFSET_SHIFT - PAGE_SHIFT as u32;

/// The region index and the page offset inside it of a mapping's `vm_pgoff`.
#[inline]
fn split_pgoff(pgoff: u64) -> (u64, u64) {
    (
        pgoff >> PGOFF_REGION_SHIFT,
        pgoff & ((1u64 << PGOFF_REGION_SHIFT) - 1),
    )
}

/// Checks a new mapping `vma` of a BAR of `pdev`, whose memory gate is `memory`: `EINVAL`
/// unless it is a shared mapping inside an mmappable BAR. The wiring ([`crate::device`]) then
/// makes it a PFN mapping whose faults come to [`bar_fault`].
pub(crate) fn check(memory: &RwSem<MemoryGate>, pdev: &OwnedDevice, vma: &VmaNew) -> Result {
    let (index, page) = split_pgoff(vma.pgoff() as u64);
    if index >= u64::from(VFIO_PCI_NUM_REGIONS) {
        return Err(EINVAL);
    }
    if vma.end() < vma.start() {
        return Err(EINVAL);
    }
    if vma.flags() & flags::SHARED == 0 {
        return Err(EINVAL);
    }
    if index >= u64::from(VFIO_PCI_ROM_REGION_INDEX) {
        return Err(EINVAL);
    }
    let req_len = (vma.end() - vma.start()) as u64;
    check_bar_range(memory, pdev, index as u8, page, req_len)
}

/// Whether `req_len` bytes from page `page` of BAR `bar` may be mapped: `EINVAL` unless the BAR
/// is mmappable and holds them (whole pages), the errno of the claim if it could not be claimed.
fn check_bar_range(
    memory: &RwSem<MemoryGate>,
    pdev: &OwnedDevice,
    bar: u8,
    page: u64,
    req_len: u64,
) -> Result {
    let gate = memory.read();
    let bars = gate.bars()?;
    if !bars.mmappable(bar) {
        return Err(EINVAL);
    }
    let res = pdev.resource(usize::from(bar));
    let page_size = PAGE_SIZE as u64;
    let bar_len = res.len.div_ceil(page_size) * page_size;
    let req_start = page.checked_mul(page_size).ok_or(EINVAL)?;
    if req_start
        .checked_add(req_len)
        .is_none_or(|end| end > bar_len)
    {
        return Err(EINVAL);
    }
    // The BAR must be claimed for this driver (it is, unless claiming failed at open).
    bars.mapping(bar)?;
    Ok(())
}

/// Inserts the faulting block of a BAR mapping of `pdev`, whose memory gate is `memory`, or
/// `SIGBUS` if memory access is off. A huge block that does not lie inside the mapping or whose
/// frames are not aligned to its size falls back, before the gate is looked at (as in vfio-pci:
/// the page fault that follows then refuses it if memory access is off).
#[inline]
pub(crate) fn bar_fault(
    memory: &RwSem<MemoryGate>,
    pdev: &OwnedDevice,
    fault: &VmFault<'_>,
) -> FaultResult {
    let order = fault.order();
    let vma = fault.vma();
    let Some(start) = fault.block_start() else {
        return FaultResult::FALLBACK;
    };
    let (index, first_page) = split_pgoff(vma.pgoff() as u64);
    let page = first_page + ((start - vma.start()) >> PAGE_SHIFT) as u64;
    // The mapping's extent was checked against the BAR at mmap, so only a huge block's
    // alignment can make this fail.
    let Some(frames) = u8::try_from(index)
        .ok()
        .and_then(|bar| pdev.bar_frames(bar, page, order))
    else {
        return match order {
            MapOrder::Page => FaultResult::SIGBUS,
            MapOrder::Pmd | MapOrder::Pud => FaultResult::FALLBACK,
        };
    };

    let gate = memory.read();
    if !gate.mappable(pdev) {
        return FaultResult::SIGBUS;
    }
    let ret = fault.insert(frames);
    drop(gate);
    ret
}
