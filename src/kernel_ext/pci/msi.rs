// SPDX-License-Identifier: GPL-2.0

//! PCI MSI and MSI-X vectors (`drivers/pci/msi/`): allocating a function's vectors, finding
//! the Linux IRQ of each, dynamic MSI-X allocation, and rewriting an MSI-X vector's message.
//!
//! The kernel crate's `pci::Device<Bound>::alloc_irq_vectors` frees the vectors through
//! Devres at unbind; a VFIO driver allocates and frees them at the user's request, in ioctls
//! where it holds no bound device, so these are methods of [`OwnedDevice`] instead, taking the
//! kernel crate's [`pci::IrqType`].

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
    prelude::*, //
};

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

impl OwnedDevice {
    /// Allocates between `min` and `max` vectors of `kind` (`pci_alloc_irq_vectors`); returns
    /// how many it got.
    pub(crate) fn alloc_irq_vectors(&self, min: u32, max: u32, kind: pci::IrqType) -> Result<u32> {
        // SAFETY: Valid by the type invariant of `pci::Device`.
        let got = unsafe {
            bindings::pci_alloc_irq_vectors(
                raw_of(self.pci_device()),
                min,
                max,
                irq_type_flag(kind),
            )
        };
        if got < 0 {
            return Err(Error::from_errno(got));
        }
        Ok(got as u32)
    }

    /// Frees the vectors [`Self::alloc_irq_vectors`] allocated (`pci_free_irq_vectors`); a
    /// function without vectors is left alone. Every IRQ requested on them must be freed
    /// first: the PCI core frees the IRQ descriptors with any action still attached, and
    /// nothing in the types enforces the order yet: the interrupt code keeps it under its
    /// state's lock.
    pub(crate) fn free_irq_vectors(&self) {
        // SAFETY: Valid by the type invariant; the PCI core checks what is enabled.
        unsafe { bindings::pci_free_irq_vectors(raw_of(self.pci_device())) };
    }

    /// The Linux IRQ of vector `index` (`pci_irq_vector`); `EINVAL` for a vector that is not
    /// allocated.
    pub(crate) fn irq_vector(&self, index: u32) -> Result<IrqLine> {
        // SAFETY: Valid by the type invariant; the PCI core checks `index`.
        let irq = unsafe { bindings::pci_irq_vector(raw_of(self.pci_device()), index) };
        match irq {
            0 => Err(EINVAL),
            irq if irq < 0 => Err(Error::from_errno(irq)),
            irq => Ok(IrqLine::new(irq as u32)),
        }
    }

    /// Allocates MSI-X vector `index` while MSI-X is enabled (`pci_msix_alloc_irq_at`), when
    /// [`PciMsiExt::msix_can_alloc_dyn`]; returns its Linux IRQ.
    pub(crate) fn msix_alloc_irq_at(&self, index: u32) -> Result<IrqLine> {
        // SAFETY: Valid by the type invariant; a null affinity is allowed, and the PCI core
        // checks that dynamic allocation is possible.
        let map = unsafe {
            bindings::pci_msix_alloc_irq_at(raw_of(self.pci_device()), index, core::ptr::null())
        };
        if map.index < 0 {
            return Err(Error::from_errno(map.index));
        }
        Ok(IrqLine::new(map.virq as u32))
    }

    /// Writes the cached message of MSI-X vector `index` to the function's MSI-X table again
    /// (`get_cached_msi_msg`, `pci_write_msi_msg`), for a table a reset may have cleared.
    /// `EINVAL` if MSI-X is not enabled or the vector not allocated. The table is in a BAR:
    /// memory decoding must be on.
    pub(crate) fn msix_rewrite_msg(&self, index: u32) -> Result {
        // SAFETY: Valid by the type invariant; `msix_enabled` changes only in the MSI-X
        // enable and disable calls of this function's driver, which is us.
        if unsafe { bindings::pci_dev::msix_enabled_raw(raw_of(self.pci_device())) } == 0 {
            return Err(EINVAL);
        }
        let irq = self.irq_vector(index)?.number();
        let mut msg: bindings::msi_msg = pin_init::zeroed();
        // SAFETY: With MSI-X enabled, `irq` is the Linux IRQ of an allocated MSI-X vector of
        // the function, so it has an MSI descriptor; `msg` is a local.
        unsafe {
            vfio::get_cached_msi_msg(irq, &mut msg);
            vfio::pci_write_msi_msg(irq, &mut msg);
        }
        Ok(())
    }
}
