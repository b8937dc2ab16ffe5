// SPDX-License-Identifier: GPL-2.0

//! PCI INTx (`drivers/pci/pci.c`): what the PCI core found about a function's legacy interrupt
//! ([`PciIntxExt`]), and masking it with the command register's DisINTx bit
//! (`impl OwnedDevice`).

use super::{
    raw_of,
    OwnedDevice,
    PciDeviceExt, //
};
use kernel::{
    bindings,
    pci, //
};

/// Inspection of a function's INTx and the capabilities interrupt handling depends on.
pub(crate) trait PciIntxExt: PciDeviceExt {
    /// The interrupt pin the function uses (1-4 for INTA-INTD), 0 for none.
    fn intx_pin(&self) -> u8 {
        // SAFETY: Valid by the type invariant of `pci::Device`; set at enumeration.
        unsafe { (*raw_of(self.pci_device())).pin }
    }

    /// Whether a quirk marked the function's DisINTx masking as broken
    /// (`broken_intx_masking`), so that `pci_intx_mask_supported` says no.
    fn has_broken_intx_masking(&self) -> bool {
        // SAFETY: Valid by the type invariant; the flag is set at enumeration and by early
        // quirks.
        unsafe { bindings::pci_dev::broken_intx_masking_raw(raw_of(self.pci_device())) != 0 }
    }

    /// Whether the function is PCI Express (it has a PCIe capability, `pcie_cap`).
    fn is_pcie(&self) -> bool {
        // SAFETY: Valid by the type invariant; `pcie_cap` is set at enumeration.
        unsafe { (*raw_of(self.pci_device())).pcie_cap != 0 }
    }
}

impl PciIntxExt for pci::Device {}

impl OwnedDevice {
    /// Clears (`enable`) or sets the command register's DisINTx bit (`pci_intx`).
    pub(crate) fn intx(&self, enable: bool) {
        // SAFETY: Valid by the type invariant of `pci::Device`.
        unsafe { bindings::pci_intx(raw_of(self.pci_device()), i32::from(enable)) };
    }

    /// Sets DisINTx if the function is asserting INTx; returns whether it was
    /// (`pci_check_and_mask_intx`). Callable in hard-IRQ context.
    pub(crate) fn check_and_mask_intx(&self) -> bool {
        // SAFETY: Valid by the type invariant; the PCI core serialises the command and status
        // register update.
        unsafe { bindings::pci_check_and_mask_intx(raw_of(self.pci_device())) }
    }

    /// Clears DisINTx unless the function is asserting INTx; returns whether it cleared it
    /// (`pci_check_and_unmask_intx`). Callable in atomic context.
    pub(crate) fn check_and_unmask_intx(&self) -> bool {
        // SAFETY: As in `check_and_mask_intx`.
        unsafe { bindings::pci_check_and_unmask_intx(raw_of(self.pci_device())) }
    }
}
