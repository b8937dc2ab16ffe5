// SPDX-License-Identifier: GPL-2.0

//! User mappings of device memory: PFN mappings set up in an `mmap` hook and filled page by
//! page by a fault handler.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h)
//!
//! Extends [`kernel::mm::virt`]: [`VmaRefExt`] reads a mapping's file offset, and
//! [`VmaNewExt::init_pfnmap`] turns a mapping being created into an uncached `VM_PFNMAP`
//! mapping whose faults call [`PfnFaultHandler::fault`] on a driver object. No page is present
//! until user space touches one; the handler then inserts one page frame of device memory
//! ([`VmFault::insert_pfn`]) or refuses the access ([`FaultResult::SIGBUS`]). Zapping the
//! mapping removes the inserted pages, so the next touch faults back into the handler.
//!
//! Only frames of I/O memory ([`IoPfn`], which the bus layers make from what they know is device
//! memory) can be inserted: a frame of RAM would hand kernel memory to user space.

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
}

/// A page frame of I/O memory, which may be mapped into user space.
///
/// # Invariants
///
/// `self.0` is the number of a page frame of device memory (MMIO), never of system RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IoPfn(usize);

impl IoPfn {
    /// Wraps the page frame number `pfn`.
    ///
    /// # Safety
    ///
    /// `pfn` must be a page frame of device memory (MMIO), not of system RAM.
    #[inline]
    pub(in crate::kernel_ext) unsafe fn new(pfn: usize) -> Self {
        // INVARIANT: By the safety requirement.
        Self(pfn)
    }
}

/// The handler of the page faults of a PFN mapping made by [`VmaNewExt::init_pfnmap`].
pub(crate) trait PfnFaultHandler: Sync {
    /// Resolves `fault`: inserts a page ([`VmFault::insert_pfn`]) and returns what that
    /// returned, or returns [`FaultResult::SIGBUS`].
    fn fault(&self, fault: &VmFault<'_>) -> FaultResult;
}

/// A page fault in a PFN mapping made by [`VmaNewExt::init_pfnmap`].
///
/// # Invariants
///
/// `vmf` is the MM's fault descriptor of a fault in progress, in a `VM_PFNMAP`, `VM_SHARED`
/// mapping, valid for `'a`, with the mmap lock or the mapping's lock held for reading.
pub(crate) struct VmFault<'a> {
    vmf: &'a Opaque<bindings::vm_fault>,
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

    /// Maps `pfn` at the faulting address (`vmf_insert_pfn()`).
    #[inline]
    pub(crate) fn insert_pfn(&self, pfn: IoPfn) -> FaultResult {
        // SAFETY: By the type invariant the mapping is a shared (so not copy-on-write)
        // `VM_PFNMAP` one, read-locked for the fault, and the address is the faulting one,
        // inside it; `pfn` is I/O memory (type invariant of `IoPfn`).
        FaultResult(unsafe { bindings::vmf_insert_pfn(self.vma().as_ptr(), self.address(), pfn.0) })
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
        // SAFETY: The MM passes a valid descriptor of a fault in progress, live until we return;
        // `Opaque` is a transparent wrapper of the descriptor.
        let vmf = unsafe { &*vmf.cast::<Opaque<bindings::vm_fault>>() };
        // INVARIANT: The mapping is read-locked for the fault; it got these ops from
        // `init_pfnmap`, which made it a shared PFN mapping (the MM keeps those flags on every
        // split or copy of it, and `mprotect()` cannot change them).
        let fault = VmFault {
            vmf,
            _not_send: PhantomData,
        };
        // SAFETY: `init_pfnmap` stored a `&H` as the mapping's private data, which its caller
        // keeps valid while the mapping exists.
        let handler = unsafe { &*(*fault.vma().as_ptr()).vm_private_data.cast::<H>() };
        handler.fault(&fault).0
    }
}
