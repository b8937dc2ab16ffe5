// SPDX-License-Identifier: GPL-2.0

//! PCI MSI and MSI-X vectors (`drivers/pci/msi/`): allocating a function's vectors, finding
//! the Linux IRQ of each, dynamic MSI-X allocation, and rewriting an MSI-X vector's message.
//!
//! The kernel crate's `pci::Device<Bound>::alloc_irq_vectors` frees the vectors through
//! Devres at unbind; a VFIO driver allocates and frees them at the user's request, in ioctls
//! where it holds no bound device, so [`IrqVectors`] owns them instead: they are freed when
//! the last reference to the allocation goes, and every IRQ line of a vector holds one, so no
//! vector is freed under a requested IRQ.

use super::{
    raw_of,
    OwnedDevice,
    PciDeviceExt, //
};
use crate::kernel_ext::{
    bindings as vfio,
    irq::IrqLine, //
};
use kernel::{
    bindings,
    pci,
    prelude::*,
    sync::Arc, //
};

// `struct msi_msg` is three 32-bit words on every architecture. `kernel::bindings` declares it
// as a zero-sized placeholder (`_unused: [u8; 0]`): a local of that type has no storage, so
// `get_cached_msi_msg` wrote its 12 bytes over whatever the compiler had put there (on a KASAN
// kernel, the memory gate's write guard in `MsiVectors::set_vector`: a bad unlock balance,
// then an Oops). The type used is our bindgen's, opaque with the C layout; this keeps it so.
const _: () = assert!(
    core::mem::size_of::<vfio::msi_msg>() == 3 * core::mem::size_of::<u32>()
        && core::mem::align_of::<vfio::msi_msg>() >= core::mem::align_of::<u32>()
);

/// Inspection of a function's MSI and MSI-X capabilities.
pub(crate) trait PciMsiExt: PciDeviceExt {
    /// The offset of the MSI capability, if the function has one.
    fn msi_cap(&self) -> Option<u8> {
        // SAFETY: Valid by the type invariant of `pci::Device`; set at enumeration.
        let cap = unsafe { (*raw_of(self.pci_device())).msi_cap };
        (cap != 0).then_some(cap)
    }

    /// Whether MSI-X vectors can be allocated one at a time while MSI-X is enabled
    /// (`pci_msix_can_alloc_dyn`).
    fn msix_can_alloc_dyn(&self) -> bool {
        // SAFETY: Valid by the type invariant.
        unsafe { bindings::pci_msix_can_alloc_dyn(raw_of(self.pci_device())) }
    }
}

impl PciMsiExt for pci::Device {}

/// The `PCI_IRQ_*` flag of `kind`.
fn irq_type_flag(kind: pci::IrqType) -> u32 {
    match kind {
        pci::IrqType::Intx => bindings::PCI_IRQ_INTX,
        pci::IrqType::Msi => bindings::PCI_IRQ_MSI,
        pci::IrqType::MsiX => bindings::PCI_IRQ_MSIX,
    }
}

/// The MSI or MSI-X vectors of a function of ours, from `pci_alloc_irq_vectors` until the
/// last reference goes (`pci_free_irq_vectors`, which also writes the MSI-X table: memory
/// decoding must be on then).
///
/// # Invariants
///
/// The function's vectors are allocated while this object exists. Every [`IrqLine`] of one of
/// its vectors, and so every IRQ requested on one, holds a reference to it: the vectors are
/// never freed under a requested IRQ.
pub(crate) struct IrqVectorsAllocation {
    pdev: OwnedDevice,
}

impl Drop for IrqVectorsAllocation {
    fn drop(&mut self) {
        // SAFETY: Valid by the type invariant of `pci::Device`. No IRQ is requested on the
        // vectors any more (type invariant: each would hold a reference to `self`).
        unsafe { bindings::pci_free_irq_vectors(raw_of(self.pdev.pci_device())) };
    }
}

/// The vectors a user enabled: a reference to their allocation, through which their IRQ lines
/// are found, added (dynamic MSI-X) and their messages rewritten.
pub(crate) struct IrqVectors {
    allocation: Arc<IrqVectorsAllocation>,
    count: u32,
}

impl IrqVectors {
    /// Allocates between `min` and `max` vectors of `kind` on `pdev` (`pci_alloc_irq_vectors`).
    pub(crate) fn alloc(
        pdev: &OwnedDevice,
        min: u32,
        max: u32,
        kind: pci::IrqType,
    ) -> Result<Self> {
        // Allocated first, so that no failure can come between the vectors and their owner;
        // dropped without vectors, it frees none (`pci_free_irq_vectors` checks).
        let allocation = Arc::new(IrqVectorsAllocation { pdev: pdev.clone() }, GFP_KERNEL)?;
        let flags = irq_type_flag(kind);
        // SAFETY: Valid by the type invariant of `pci::Device`.
        let got = unsafe { bindings::pci_alloc_irq_vectors(raw_of(pdev), min, max, flags) };
        if got < 0 {
            return Err(Error::from_errno(got));
        }
        // INVARIANT: `got` vectors are allocated, owned by `allocation`.
        Ok(Self {
            allocation,
            count: got as u32,
        })
    }

    /// How many vectors were allocated.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// The Linux IRQ of vector `index` (`pci_irq_vector`); `EINVAL` for a vector that is not
    /// allocated.
    pub(crate) fn irq_vector(&self, index: u32) -> Result<IrqLine> {
        let pdev = &self.allocation.pdev;
        // SAFETY: Valid by the type invariant; the PCI core checks `index`.
        let irq = unsafe { bindings::pci_irq_vector(raw_of(pdev), index) };
        match irq {
            0 => Err(EINVAL),
            irq if irq < 0 => Err(Error::from_errno(irq)),
            irq => Ok(IrqLine::vector(irq as u32, &self.allocation)),
        }
    }

    /// Allocates MSI-X vector `index` while MSI-X is enabled (`pci_msix_alloc_irq_at`), when
    /// [`PciMsiExt::msix_can_alloc_dyn`]; returns its Linux IRQ.
    pub(crate) fn msix_alloc_irq_at(&self, index: u32) -> Result<IrqLine> {
        let pdev = raw_of(&self.allocation.pdev);
        // SAFETY: Valid by the type invariant; a null affinity is allowed, and the PCI core
        // checks that dynamic allocation is possible (MSI-X enabled: this allocation).
        let map = unsafe { bindings::pci_msix_alloc_irq_at(pdev, index, core::ptr::null()) };
        if map.index < 0 {
            return Err(Error::from_errno(map.index));
        }
        Ok(IrqLine::vector(map.virq as u32, &self.allocation))
    }

    /// Writes the cached message of MSI-X vector `index` to the function's MSI-X table again
    /// (`get_cached_msi_msg`, `pci_write_msi_msg`), for a table a reset may have cleared.
    /// `EINVAL` if these are not MSI-X vectors or the vector is not allocated. The table is in
    /// a BAR: memory decoding must be on.
    pub(crate) fn msix_rewrite_msg(&self, index: u32) -> Result {
        let pdev = &self.allocation.pdev;
        // SAFETY: Valid by the type invariant; `msix_enabled` changes only when vectors are
        // allocated or freed, and this allocation lives while `self` is borrowed.
        if unsafe { bindings::pci_dev::msix_enabled_raw(raw_of(pdev)) } == 0 {
            return Err(EINVAL);
        }
        let line = self.irq_vector(index)?;
        let irq = line.number();
        let mut msg = vfio::msi_msg::default();
        // SAFETY: With MSI-X enabled, `irq` is the Linux IRQ of an allocated MSI-X vector of
        // the function, which `line` keeps allocated, so it has an MSI descriptor. `msg` is a
        // local of the C `struct msi_msg`'s size and alignment (our bindgen's opaque type, not
        // the zero-sized placeholder of `kernel::bindings`; asserted below), so the 12 bytes
        // `get_cached_msi_msg` copies into it and `pci_write_msi_msg` reads stay inside it.
        unsafe {
            vfio::get_cached_msi_msg(irq, &mut msg);
            vfio::pci_write_msi_msg(irq, &mut msg);
        }
        Ok(())
    }
}
