// SPDX-License-Identifier: GPL-2.0

//! Devices vfio-pci treats specially that the PCI core does not quirk itself.

use kernel::pci;

/// Functions whose INTx masking is known broken in a way the PCI core does not quirk (they
/// implement DisINTx but not the pending bit): vfio-pci hides their INTx from the user.
pub(crate) fn has_broken_intx(pdev: &pci::Device) -> bool {
    pdev.vendor_id() == pci::Vendor::INTEL
        && matches!(
            pdev.device_id(),
            // i40e (XL710/X710/XXV710) 10/20/25/40GbE
            0x1572 | 0x1574 | 0x1580..=0x1581 | 0x1583..=0x158b | 0x37d0..=0x37d2
            // X550
            | 0x1563
        )
}
