// SPDX-License-Identifier: GPL-2.0

//! PCI register offsets, bits and sizes (`include/uapi/linux/pci_regs.h`,
//! `include/linux/pci.h`), for driver code that must not name the C bindings itself.

#[allow(unused_imports)] // Not every register is used by every build of the driver.
pub(crate) use kernel::bindings::{
    IORESOURCE_MEM,
    PCI_CAP_ID_MSI,
    PCI_COMMAND,
    PCI_COMMAND_INTX_DISABLE,
    PCI_COMMAND_MEMORY,
    PCI_HEADER_TYPE_NORMAL,
    PCI_MSIX_ENTRY_SIZE,
    PCI_MSIX_FLAGS,
    PCI_MSIX_FLAGS_QSIZE,
    PCI_MSIX_TABLE,
    PCI_MSIX_TABLE_BIR,
    PCI_MSIX_TABLE_OFFSET,
    PCI_MSI_FLAGS,
    PCI_MSI_FLAGS_QMASK,
    PCI_PM_CTRL_STATE_MASK,
    PCI_ROM_RESOURCE,
    PCI_STD_NUM_BARS,
    PCI_VENDOR_ID_INTEL, //
};
