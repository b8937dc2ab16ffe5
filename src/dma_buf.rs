// SPDX-License-Identifier: GPL-2.0

//! `VFIO_DEVICE_FEATURE_DMA_BUF`: ranges of a memory BAR exported as a dma-buf, for
//! peer-to-peer DMA by another device (an importer), as vfio-pci does it
//! (`drivers/vfio/pci/vfio_pci_dmabuf.c`).
//!
//! GET takes a `vfio_device_feature_dma_buf` (BAR index, `open_flags` for the new file
//! descriptor, `flags` 0, and `nr_ranges` page-aligned `{offset, length}` ranges of the BAR)
//! and returns a dma-buf file descriptor whose size is the sum of the lengths. Each rule
//! answers with vfio-pci's errno, in vfio-pci's order, and a refused request changes nothing.
//!
//! The dma-bufs of a function live in its memory gate ([`crate::memory::MemoryGate`]) and
//! follow BAR access: every place that cuts it with the mmaps zapped ([`crate::memory`]'s
//! `lock_and_zap`: resets, memory decode turned off, D3hot through PMCSR, low power entry)
//! revokes them, and the same places restore them once access is back ([`restore`]); the
//! last close revokes them for good ([`close`]). A dma-buf created while access is cut starts
//! revoked. Only an importer the VFIO and iommufd cores already know can map a vfio-pci
//! dma-buf through iommufd: see the admin guide's "Differences from vfio-pci".

use crate::{
    kernel_ext::{
        dma_buf::{
            BarSlices,
            P2pProvider,
            PhysRange, //
        },
        pci::{
            OwnedDevice,
            PciDeviceExt, //
        },
        sync::RwSem,
        vfio::region::VFIO_PCI_ROM_REGION_INDEX,
        vfio::uapi, //
    },
    memory::MemoryGate, //
};
use kernel::{
    page::PAGE_SIZE,
    prelude::*,
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};

/// The fixed part of `struct vfio_device_feature_dma_buf`: `region_index`, `open_flags`,
/// `flags`, `nr_ranges`, four `u32`s.
const HEADER_SIZE: usize = 16;
/// One `struct vfio_region_dma_range`: `offset` and `length`, two `u64`s.
const RANGE_SIZE: usize = 16;
/// The bit `dma_iova_try_alloc()` keeps for itself in a size (`DMA_IOVA_USE_SWIOTLB`): a
/// dma-buf at least that large is refused.
const IOVA_USE_SWIOTLB: u64 = 1 << 63;

/// A range of the BAR as user space asks for it.
#[derive(Clone, Copy)]
struct Range {
    offset: u64,
    length: u64,
}

/// The ranges, checked as vfio-pci's `validate_dmabuf_input()` does: each non-empty and
/// page-aligned, and their total neither overflowing nor reaching `DMA_IOVA_USE_SWIOTLB`
/// (`EINVAL`); returns the total.
fn total_length(ranges: &[Range]) -> Result<usize> {
    let page = PAGE_SIZE as u64;
    let mut total: usize = 0;
    for range in ranges {
        if range.length == 0 || range.offset % page != 0 || range.length % page != 0 {
            return Err(EINVAL);
        }
        let length = usize::try_from(range.length).map_err(|_| EINVAL)?;
        total = total.checked_add(length).ok_or(EINVAL)?;
    }
    if total as u64 & IOVA_USE_SWIOTLB != 0 {
        return Err(EINVAL);
    }
    Ok(total)
}

/// The physical ranges of a BAR at `start`, `len` bytes long, for `ranges`, as vfio-pci's
/// `vfio_pci_core_fill_phys_vec()` computes them: `EOVERFLOW` if an address overflows,
/// `EINVAL` for an empty range or one that ends past the BAR.
fn phys_ranges(ranges: &[Range], start: u64, len: u64) -> Result<KVec<PhysRange>> {
    let max = start.wrapping_add(len);
    let mut phys = KVec::with_capacity(ranges.len(), GFP_KERNEL)?;
    for range in ranges {
        if range.length == 0 {
            return Err(EINVAL);
        }
        let addr = start.checked_add(range.offset).ok_or(EOVERFLOW)?;
        let end = addr.checked_add(range.length).ok_or(EOVERFLOW)?;
        if end > max {
            return Err(EINVAL);
        }
        phys.push(
            PhysRange {
                addr,
                len: range.length,
            },
            GFP_KERNEL,
        )?;
    }
    Ok(phys)
}

/// Reads the `nr_ranges` ranges after the header at `arg`, allocated first as vfio-pci's
/// `memdup_array_user()` allocates them (`ENOMEM` for an array too large to allocate, without
/// a warning), then copied (`EFAULT`).
fn read_ranges(arg: UserPtr, nr_ranges: u32) -> Result<KVec<Range>> {
    let count = usize::try_from(nr_ranges).map_err(|_| ENOMEM)?;
    let bytes = count.checked_mul(RANGE_SIZE).ok_or(EOVERFLOW)?;
    let mut ranges = KVec::with_capacity(count, GFP_KERNEL | __GFP_NOWARN)?;
    let mut reader = UserSlice::new(arg.wrapping_byte_add(HEADER_SIZE), bytes).reader();
    for _ in 0..count {
        let offset = reader.read::<u64>()?;
        let length = reader.read::<u64>()?;
        // Cannot fail: the capacity was reserved above.
        ranges.push(Range { offset, length }, GFP_KERNEL)?;
    }
    Ok(ranges)
}

/// `VFIO_DEVICE_FEATURE_DMA_BUF` on the open function `pdev`, whose memory gate is `memory`:
/// PROBE answers 0 for GET (SET is `EINVAL`), GET returns a new dma-buf file descriptor.
pub(crate) fn feature(
    pdev: &OwnedDevice,
    memory: &RwSem<MemoryGate>,
    flags: u32,
    arg: UserPtr,
    argsz: usize,
) -> Result<i32> {
    // vfio_check_feature() for a GET-only feature with a 16-byte argument.
    const GET: u32 = uapi::VFIO_DEVICE_FEATURE_GET;
    const GET_SET: u32 = GET | uapi::VFIO_DEVICE_FEATURE_SET;
    if flags & GET_SET & !GET != 0 {
        return Err(EINVAL);
    }
    if flags & uapi::VFIO_DEVICE_FEATURE_PROBE != 0 {
        return Ok(0);
    }
    if flags & GET_SET == 0 || argsz < HEADER_SIZE {
        return Err(EINVAL);
    }

    let mut header = UserSlice::new(arg, HEADER_SIZE).reader();
    let region_index = header.read::<u32>()?;
    let open_flags = header.read::<u32>()?;
    let request_flags = header.read::<u32>()?;
    let nr_ranges = header.read::<u32>()?;
    if nr_ranges == 0 || request_flags != 0 {
        return Err(EINVAL);
    }
    // A BAR (not the ROM or beyond) that was claimed and mapped at open.
    let bar = u8::try_from(region_index).map_err(|_| ENODEV)?;
    if region_index >= VFIO_PCI_ROM_REGION_INDEX || memory.read().bars()?.mapping(bar).is_err() {
        return Err(ENODEV);
    }

    let ranges = read_ranges(arg, nr_ranges)?;
    let size = total_length(&ranges)?;
    let provider = P2pProvider::of(pdev, bar)?;
    let resource = pdev.resource(usize::from(bar));
    let phys = phys_ranges(&ranges, resource.start, resource.len)?;
    let slices = BarSlices::new(provider, &phys, size)?;

    let mut gate = memory.write();
    let revoked = !gate.accessible(pdev);
    gate.dma_bufs().export(slices, open_flags, revoked)
}

/// Restores the dma-bufs of `pdev`, whose memory gate is held in `gate`, if its memory is
/// accessible again (vfio-pci: `if (__vfio_pci_memory_enabled(vdev))
/// vfio_pci_dma_buf_move(vdev, false)`).
#[inline]
pub(crate) fn restore(gate: &mut MemoryGate, pdev: &OwnedDevice) {
    if gate.accessible(pdev) {
        gate.dma_bufs().restore();
    }
}

pub(crate) use crate::kernel_ext::dma_buf::{
    init_p2pdma,
    p2pdma_unsupported, //
};

/// Last close: revokes the function's dma-bufs for good (they may outlive the device file,
/// but never reach the function again).
pub(crate) fn close(memory: &RwSem<MemoryGate>) {
    memory.write().dma_bufs().detach_all();
}
