// SPDX-License-Identifier: GPL-2.0

//! User mappings of device memory: PFN mappings set up in an `mmap` hook and filled at fault
//! time by a fault handler, a page, a PMD or a PUD at a time.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h),
//! [`include/linux/huge_mm.h`](srctree/include/linux/huge_mm.h)
//!
//! Extends [`kernel::mm::virt`]: [`VmaRefExt`] reads a mapping's file offset, and
//! [`VmaNewExt::init_pfnmap`] turns a mapping being created into an uncached `VM_PFNMAP`
//! mapping whose faults call [`PfnFaultHandler::fault`] on a driver object. No page is present
//! until user space touches one; the handler then inserts a block of device memory of the size
//! the MM asks for ([`VmFault::order`], [`VmFault::insert`]: a page from the `fault` op, a PMD
//! or a PUD from the `huge_fault` op on kernels whose architecture maps huge PFNs), asks the MM
//! to fall back to a smaller size ([`FaultResult::FALLBACK`]) or refuses the access
//! ([`FaultResult::SIGBUS`]). Zapping the mapping removes whatever was inserted, so the next
//! touch faults back into the handler.
//!
//! Only frames of I/O memory ([`IoFrames`], which the bus layers make from what they know is
//! device memory) can be inserted: a frame of RAM would hand kernel memory to user space.

use crate::kernel_ext::bindings as vfio;
use core::marker::PhantomData;
use kernel::{
    bindings,
    mm::virt::{
        flags,
        VmaNew,
        VmaRef, //
    },
    prelude::*,
    types::Opaque, //
};

/// The outcome of a page fault, as the MM expects it from a `fault` handler (`vm_fault_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FaultResult(bindings::vm_fault_t);

impl FaultResult {
    /// The access is refused: the faulting task gets `SIGBUS`.
    pub(crate) const SIGBUS: Self =
        Self(bindings::vm_fault_reason_VM_FAULT_SIGBUS as bindings::vm_fault_t);

    /// A huge fault is not served at this size: the MM retries with a smaller one (a PUD
    /// fault as PMD faults, a PMD fault as page faults).
    pub(crate) const FALLBACK: Self =
        Self(bindings::vm_fault_reason_VM_FAULT_FALLBACK as bindings::vm_fault_t);
}

/// The size of the block a fault maps: a page, or the whole range one page-middle (PMD) or
/// page-upper (PUD) directory entry maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MapOrder {
    /// One page (`fault`).
    Page,
    /// One PMD entry, 2 MiB on x86-64 (`huge_fault` with `PMD_ORDER`).
    Pmd,
    /// One PUD entry, 1 GiB on x86-64 (`huge_fault` with `PUD_ORDER`).
    Pud,
}

impl MapOrder {
    /// The base-2 logarithm of the block's size in pages.
    #[inline]
    pub(crate) const fn order(self) -> u32 {
        match self {
            Self::Page => 0,
            Self::Pmd => bindings::PMD_SHIFT - bindings::PAGE_SHIFT,
            Self::Pud => bindings::PUD_SHIFT - bindings::PAGE_SHIFT,
        }
    }

    /// The block's size in pages.
    #[inline]
    pub(crate) const fn pages(self) -> u64 {
        1 << self.order()
    }

    /// The block's size in bytes.
    #[inline]
    pub(crate) const fn bytes(self) -> usize {
        kernel::page::PAGE_SIZE << self.order()
    }

    /// The order the MM passes to `huge_fault`, if it is one this layer maps.
    #[cfg_attr(not(CONFIG_ARCH_SUPPORTS_HUGE_PFNMAP), allow(dead_code))]
    #[inline]
    fn of_huge_fault(order: u32) -> Option<Self> {
        [Self::Pmd, Self::Pud]
            .into_iter()
            .find(|o| o.order() == order)
    }
}

/// A naturally aligned block of page frames of I/O memory, which may be mapped into user space
/// as one page, PMD or PUD.
///
/// # Invariants
///
/// The `order.pages()` frames from `first` are device memory (MMIO), never system RAM, and
/// `first` is a multiple of `order.pages()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IoFrames {
    first: usize,
    order: MapOrder,
}

impl IoFrames {
    /// The block of `order` at page frame `first`: `None` unless `first` is aligned to the
    /// block's size.
    ///
    /// # Safety
    ///
    /// The `order.pages()` frames from `first` must be device memory (MMIO), not system RAM.
    #[inline]
    pub(in crate::kernel_ext) unsafe fn new(first: usize, order: MapOrder) -> Option<Self> {
        if first as u64 % order.pages() != 0 {
            return None;
        }
        // INVARIANT: Aligned (checked); device memory by the safety requirement.
        Some(Self { first, order })
    }
}

/// The handler of the page faults of a PFN mapping made by [`VmaNewExt::init_pfnmap`].
pub(crate) trait PfnFaultHandler: Sync {
    /// Resolves `fault`: inserts a block of the fault's order ([`VmFault::insert`]) and returns
    /// what that returned, or returns [`FaultResult::FALLBACK`] (huge faults only) or
    /// [`FaultResult::SIGBUS`].
    fn fault(&self, fault: &VmFault<'_>) -> FaultResult;
}

/// A page fault in a PFN mapping made by [`VmaNewExt::init_pfnmap`].
///
/// # Invariants
///
/// `vmf` is the MM's fault descriptor of a fault in progress, in a `VM_PFNMAP`, `VM_SHARED`
/// mapping, valid for `'a`, with the mmap lock or the mapping's lock held for reading; it came
/// to the `fault` op if `order` is [`MapOrder::Page`], else to the `huge_fault` op with
/// `order`.
pub(crate) struct VmFault<'a> {
    vmf: &'a Opaque<bindings::vm_fault>,
    order: MapOrder,
    _not_send: PhantomData<*mut ()>,
}

impl VmFault<'_> {
    /// The mapping the fault is in.
    #[inline]
    pub(crate) fn vma(&self) -> &VmaRef {
        // SAFETY: By the type invariant `vmf` is valid and its `vma` is the faulting mapping,
        // which is read-locked for the duration of the fault, so for as long as `self` lives.
        unsafe { VmaRef::from_raw((*self.vmf.get()).__bindgen_anon_1.vma) }
    }

    /// The faulting user address, rounded down to its page.
    #[inline]
    pub(crate) fn address(&self) -> usize {
        // SAFETY: By the type invariant `vmf` is valid; the MM does not change it during the
        // fault.
        unsafe { (*self.vmf.get()).__bindgen_anon_1.address }
    }

    /// The size of the block the MM asks this fault to map.
    #[inline]
    pub(crate) fn order(&self) -> MapOrder {
        self.order
    }

    /// The first address of the block of [`Self::order`] that holds the faulting address,
    /// if the whole block lies inside the mapping (vfio-pci's `is_aligned_for_order()`, less
    /// the frame's alignment, which [`IoFrames`] ensures): the MM does not check this before
    /// a huge fault. Always `Some` for a page.
    #[inline]
    pub(crate) fn block_start(&self) -> Option<usize> {
        let vma = self.vma();
        let size = self.order.bytes();
        let start = self.address() & !(size - 1);
        (start >= vma.start() && start.checked_add(size)? <= vma.end()).then_some(start)
    }

    /// Maps `frames` at [`Self::block_start`] (`vmf_insert_pfn()`, `vmf_insert_pfn_pmd()`,
    /// `vmf_insert_pfn_pud()`): [`FaultResult::FALLBACK`] if they are not a block of the
    /// fault's order, the block does not lie inside the mapping, or the kernel cannot map
    /// huge PFNs of that order.
    #[inline]
    pub(crate) fn insert(&self, frames: IoFrames) -> FaultResult {
        if frames.order != self.order {
            return FaultResult::FALLBACK;
        }
        let Some(start) = self.block_start() else {
            return FaultResult::FALLBACK;
        };
        let ret = match self.order {
            MapOrder::Page => {
                // SAFETY: By the type invariant the mapping is a shared (so not copy-on-write)
                // `VM_PFNMAP` one, read-locked for the fault, and `start` is the faulting page,
                // inside it; `frames` is I/O memory (type invariant of `IoFrames`).
                unsafe { bindings::vmf_insert_pfn(self.vma().as_ptr(), start, frames.first) }
            }
            #[cfg(CONFIG_ARCH_SUPPORTS_PMD_PFNMAP)]
            MapOrder::Pmd => {
                // SAFETY: By the type invariant this is a `huge_fault` for a PMD in a shared
                // `VM_PFNMAP` mapping, read-locked; the block at `start` lies inside the mapping
                // (checked above), and `frames` is a PMD-aligned block of I/O memory of the
                // fault's order (type invariant of `IoFrames`).
                unsafe { bindings::vmf_insert_pfn_pmd(self.vmf.get(), frames.first, false) }
            }
            #[cfg(CONFIG_ARCH_SUPPORTS_PUD_PFNMAP)]
            MapOrder::Pud => {
                // SAFETY: As for a PMD, with a `huge_fault` for a PUD and a PUD-aligned block.
                unsafe { bindings::vmf_insert_pfn_pud(self.vmf.get(), frames.first, false) }
            }
            #[allow(unreachable_patterns)]
            _ => return FaultResult::FALLBACK,
        };
        FaultResult(ret)
    }
}

/// What a mapping can be asked with its mmap or mapping lock held for reading.
pub(crate) trait VmaRefExt {
    /// The file offset of the mapping's first byte, in pages (`vm_pgoff`).
    fn pgoff(&self) -> usize;
}

impl VmaRefExt for VmaRef {
    #[inline]
    fn pgoff(&self) -> usize {
        // SAFETY: By the type invariant of `VmaRef` the mapping is valid and read-locked, so
        // the read is not a data race.
        unsafe { (*self.as_ptr()).vm_pgoff }
    }
}

/// Setup of a mapping being created, beyond what [`VmaNew`] offers.
pub(crate) trait VmaNewExt {
    /// Makes the mapping an uncached PFN mapping of device memory (`VM_PFNMAP | VM_IO |
    /// VM_DONTEXPAND | VM_DONTDUMP`, any uncached type allowed), whose faults are passed to
    /// `handler`: `EINVAL` unless the mapping is shared.
    ///
    /// # Safety
    ///
    /// `handler` must stay valid for as long as the mapping, or any mapping the MM splits or
    /// copies from it, exists.
    unsafe fn init_pfnmap<H: PfnFaultHandler>(&self, handler: &H) -> Result;
}

impl VmaNewExt for VmaNew {
    unsafe fn init_pfnmap<H: PfnFaultHandler>(&self, handler: &H) -> Result {
        // A private writable PFN mapping would be copy-on-write, which PFN mappings cannot be.
        if self.flags() & flags::SHARED == 0 {
            return Err(EINVAL);
        }
        let vma = self.as_ptr();
        // SAFETY: The mapping is being set up (type invariant of `VmaNew`), so not yet visible
        // to anyone else; `handler` outlives it (safety requirement), and the ops are static.
        unsafe {
            (*vma).vm_private_data = core::ptr::from_ref(handler).cast_mut().cast();
            vfio::vfio_pci_rs_vma_init_pfnmap(vma);
            (*vma).vm_ops = PfnVmOps::<H>::ops();
        }
        Ok(())
    }
}

/// The `vm_operations_struct` of the PFN mappings handled by `H`.
struct PfnVmOps<H>(PhantomData<H>);

impl<H: PfnFaultHandler> PfnVmOps<H> {
    const OPS: bindings::vm_operations_struct = bindings::vm_operations_struct {
        fault: Some(Self::fault_callback),
        #[cfg(CONFIG_ARCH_SUPPORTS_HUGE_PFNMAP)]
        huge_fault: Some(Self::huge_fault_callback),
        ..pin_init::zeroed()
    };

    /// The ops, as the static the MM keeps pointing to.
    const fn ops() -> &'static bindings::vm_operations_struct {
        &Self::OPS
    }

    /// The `fault` op: passes the fault to the mapping's handler.
    ///
    /// # Safety
    ///
    /// Called by the MM only, for a fault in a mapping set up by [`VmaNewExt::init_pfnmap`] with
    /// a handler of type `H`.
    unsafe extern "C" fn fault_callback(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
        // SAFETY: As this function's own safety requirement; a `fault` op maps a page.
        unsafe { Self::dispatch(vmf, MapOrder::Page) }
    }

    /// The `huge_fault` op: passes a PMD or PUD fault to the mapping's handler (any other order
    /// falls back).
    ///
    /// # Safety
    ///
    /// Called by the MM only, for a huge fault of `order` in a mapping set up by
    /// [`VmaNewExt::init_pfnmap`] with a handler of type `H`.
    #[cfg(CONFIG_ARCH_SUPPORTS_HUGE_PFNMAP)]
    unsafe extern "C" fn huge_fault_callback(
        vmf: *mut bindings::vm_fault,
        order: kernel::ffi::c_uint,
    ) -> bindings::vm_fault_t {
        match MapOrder::of_huge_fault(order) {
            // SAFETY: As this function's own safety requirement, with the order the MM asked.
            Some(order) => unsafe { Self::dispatch(vmf, order) },
            None => FaultResult::FALLBACK.0,
        }
    }

    /// Passes a fault to the mapping's handler.
    ///
    /// # Safety
    ///
    /// `vmf` is the MM's descriptor of a fault in progress in a mapping set up by
    /// [`VmaNewExt::init_pfnmap`] with a handler of type `H`, passed to the `fault` op if
    /// `order` is [`MapOrder::Page`], else to the `huge_fault` op with `order`.
    #[inline]
    unsafe fn dispatch(vmf: *mut bindings::vm_fault, order: MapOrder) -> bindings::vm_fault_t {
        // SAFETY: The MM passes a valid descriptor of a fault in progress, live until we return;
        // `Opaque` is a transparent wrapper of the descriptor.
        let vmf = unsafe { &*vmf.cast::<Opaque<bindings::vm_fault>>() };
        // INVARIANT: The mapping is read-locked for the fault; it got these ops from
        // `init_pfnmap`, which made it a shared PFN mapping (the MM keeps those flags on every
        // split or copy of it, and `mprotect()` cannot change them); `order` is the op's
        // (safety requirement).
        let fault = VmFault {
            vmf,
            order,
            _not_send: PhantomData,
        };
        // SAFETY: `init_pfnmap` stored a `&H` as the mapping's private data, which its caller
        // keeps valid while the mapping exists.
        let handler = unsafe { &*(*fault.vma().as_ptr()).vm_private_data.cast::<H>() };
        handler.fault(&fault).0
    }
}
