// SPDX-License-Identifier: GPL-2.0

//! Interrupts: `VFIO_DEVICE_GET_IRQ_INFO` and `VFIO_DEVICE_SET_IRQS` for INTx, MSI, MSI-X,
//! ERR and REQ, delivered to user space through eventfds.
//!
//! (Skeleton: interrupt delivery is being written.)

use crate::{device::VfioPciDevice, pci_function::PciFunction, vfio_device::VfioDevice};
use kernel::{prelude::*, uaccess::UserPtr};

/// The interrupt state of a function.
pub(crate) struct IrqState {}

impl IrqState {
    /// The state of a function nobody has open.
    pub(crate) const fn closed() -> Self {
        Self {}
    }

    /// Prepares interrupt handling at first open.
    pub(crate) fn open(&mut self, _pdev: &PciFunction) -> Result {
        Ok(())
    }
}

/// `VFIO_DEVICE_GET_IRQ_INFO`.
pub(crate) fn get_irq_info(_dev: &VfioDevice<VfioPciDevice>, _arg: UserPtr) -> Result<isize> {
    Err(ENOTTY)
}

/// `VFIO_DEVICE_SET_IRQS`.
pub(crate) fn set_irqs(_dev: &VfioDevice<VfioPciDevice>, _arg: UserPtr) -> Result<isize> {
    Err(ENOTTY)
}

/// Disables every interrupt and releases every eventfd (last close).
pub(crate) fn teardown(_dev: &VfioDevice<VfioPciDevice>) {}

/// Masks INTx because the user set INTX_DISABLE in the virtual command register; returns
/// whether it was unmasked before.
pub(crate) fn intx_mask(_dev: &VfioDevice<VfioPciDevice>) -> bool {
    false
}

/// Unmasks INTx because the user cleared INTX_DISABLE in the virtual command register.
pub(crate) fn intx_unmask(_dev: &VfioDevice<VfioPciDevice>) {}

/// The uAPI index of the interrupt type in use (INTx, MSI or MSI-X), if any.
pub(crate) fn active_irq_type(_dev: &VfioDevice<VfioPciDevice>) -> Option<u32> {
    None
}

/// Signals the REQ eventfd (the core asks the user to release the device); false when user
/// space registered none.
pub(crate) fn signal_request(_dev: &VfioDevice<VfioPciDevice>) -> bool {
    false
}
