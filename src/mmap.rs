// SPDX-License-Identifier: GPL-2.0

//! `mmap(2)` of BARs: mappings are filled page by page at fault time, through the memory gate,
//! so that a reset or a disabled memory decode can take them away (see [`crate::memory`]).
//!
//! A new mapping only records which device it belongs to and becomes an uncached PFN mapping;
//! no page is present until user space touches it. The fault handler then inserts the BAR's
//! page if the function decodes memory, and raises `SIGBUS` otherwise. Zapping (on reset, on
//! memory-decode off) removes every inserted page, so the next touch comes back here.

#![allow(unsafe_code)] // Transitional: this file still calls C directly.

use crate::kernel_ext::pci::PciDeviceExt;
use crate::{
    device::VfioPciDevice, kernel_ext::bindings as vfio, kernel_ext::vfio::VfioDevice, memory,
    regions::OFFSET_SHIFT,
};
use kernel::{bindings, mm::virt::VmaNew, prelude::*};

/// Page-number bits of a mapping's file offset that address pages inside one region.
const PGOFF_REGION_SHIFT: u32 = OFFSET_SHIFT - bindings::PAGE_SHIFT;

/// The region index and the page offset inside it of a mapping's `vm_pgoff`.
fn split_pgoff(pgoff: u64) -> (u64, u64) {
    (
        pgoff >> PGOFF_REGION_SHIFT,
        pgoff & ((1u64 << PGOFF_REGION_SHIFT) - 1),
    )
}

/// Sets up a new mapping of a BAR.
pub(crate) fn mmap(dev: &VfioDevice<VfioPciDevice>, vma: &VmaNew) -> Result {
    let raw = vma.as_ptr();
    // SAFETY: `raw` is the mapping being created, which the core lends us for this call.
    let pgoff = unsafe { (*raw).vm_pgoff } as u64;
    let (index, page) = split_pgoff(pgoff);
    if index >= u64::from(vfio::VFIO_PCI_NUM_REGIONS) {
        return Err(EINVAL);
    }
    if vma.end() < vma.start() {
        return Err(EINVAL);
    }
    if vma.flags() & bindings::VM_SHARED == 0 {
        return Err(EINVAL);
    }
    if index >= u64::from(vfio::VFIO_PCI_ROM_REGION_INDEX) {
        return Err(EINVAL);
    }
    let bar = index as u8;
    {
        let gate = memory::read(dev);
        let bars = gate.bars()?;
        if !bars.mmappable(bar) {
            return Err(EINVAL);
        }
        let res = dev.pdev().resource(usize::from(bar));
        let page_size = bindings::PAGE_SIZE as u64;
        let bar_len = res.len.div_ceil(page_size) * page_size;
        let req_len = (vma.end() - vma.start()) as u64;
        let req_start = page.checked_mul(page_size).ok_or(EINVAL)?;
        if req_start
            .checked_add(req_len)
            .is_none_or(|end| end > bar_len)
        {
            return Err(EINVAL);
        }
        // The BAR must be claimed for this driver (it is, unless claiming failed at open).
        bars.mapping(bar)?;
    }

    // SAFETY: `raw` is the mapping being created; the device outlives it (the mapping holds
    // the device file, which holds the device), so the private pointer stays valid for every
    // fault; `BAR_VM_OPS` is static.
    unsafe {
        (*raw).vm_private_data = dev.as_raw().cast();
        vfio::vfio_pci_rs_vma_init_pfnmap(raw);
        (*raw).vm_ops = &BAR_VM_OPS;
    }
    Ok(())
}

static BAR_VM_OPS: bindings::vm_operations_struct = bindings::vm_operations_struct {
    fault: Some(bar_fault),
    ..pin_init::zeroed()
};

/// Inserts the faulting page of a BAR mapping, or `SIGBUS` if memory access is off.
unsafe extern "C" fn bar_fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    // SAFETY: The MM calls `fault` with a valid fault descriptor for one of our mappings.
    let (vma, address) = unsafe { ((*vmf).__bindgen_anon_1.vma, (*vmf).__bindgen_anon_1.address) };
    // SAFETY: `vma` is valid during the fault; `mmap` set its private data to our device,
    // which outlives the mapping.
    let (private, vm_start, pgoff) = unsafe {
        (
            (*vma).vm_private_data,
            (*vma).__bindgen_anon_1.__bindgen_anon_1.vm_start,
            (*vma).vm_pgoff as u64,
        )
    };
    // SAFETY: `mmap` stored the `vfio_device` of a `VfioDevice<VfioPciDevice>`.
    let dev = unsafe { VfioDevice::<VfioPciDevice>::from_core(private.cast()) };
    let (index, first_page) = split_pgoff(pgoff);
    let res = dev.pdev().resource(index as usize);
    let pfn = (res.start >> bindings::PAGE_SHIFT)
        + first_page
        + ((address - vm_start) >> bindings::PAGE_SHIFT) as u64;

    let gate = memory::read(dev);
    if !gate.mappable(dev.pdev()) {
        return bindings::vm_fault_reason_VM_FAULT_SIGBUS as bindings::vm_fault_t;
    }
    // SAFETY: `vma` is a PFN mapping set up by `mmap`; the MM holds the locks a fault needs;
    // `pfn` lies inside the BAR (the mapping's extent was checked against the BAR at mmap).
    let ret = unsafe { bindings::vmf_insert_pfn(vma, address, pfn as _) };
    drop(gate);
    ret
}
