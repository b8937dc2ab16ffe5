// SPDX-License-Identifier: GPL-2.0

//! The functions vfio-pci refuses to bind: devices with known errata that may lead to
//! exploitable stability or security issues when user space drives them (Intel QuickAssist
//! C3xxx, C62x and DH895xCC, PFs and VFs, and the Sapphire Rapids DSA and IAA accelerators).
//!
//! Probe refuses them with `EINVAL` and vfio-pci's warning, unless the module was loaded with
//! `disable_denylist=1` (see [`crate::params`]), which binds them with vfio-pci's other warning.

use crate::{
    kernel_ext::pci::{
        OwnedDevice,
        PciDeviceExt, //
    },
    params, //
};
use kernel::{
    pci,
    prelude::*, //
};

/// The Intel device IDs of vfio-pci's denylist (`include/linux/pci_ids.h` names).
const INTEL_DENYLIST: &[u16] = &[
    0x19e2, // PCI_DEVICE_ID_INTEL_QAT_C3XXX
    0x19e3, // PCI_DEVICE_ID_INTEL_QAT_C3XXX_VF
    0x37c8, // PCI_DEVICE_ID_INTEL_QAT_C62X
    0x37c9, // PCI_DEVICE_ID_INTEL_QAT_C62X_VF
    0x0435, // PCI_DEVICE_ID_INTEL_QAT_DH895XCC
    0x0443, // PCI_DEVICE_ID_INTEL_QAT_DH895XCC_VF
    0x0b25, // PCI_DEVICE_ID_INTEL_DSA_SPR0
    0x0cfe, // PCI_DEVICE_ID_INTEL_IAX_SPR0
];

/// Whether the function is on vfio-pci's denylist, whatever `disable_denylist` says.
fn in_denylist(pdev: &pci::Device) -> bool {
    pdev.vendor_id() == pci::Vendor::INTEL && INTEL_DENYLIST.contains(&pdev.device_id())
}

/// Probe's first check: `EINVAL` for a denylisted function unless the denylist is disabled,
/// logging what vfio-pci logs either way.
pub(crate) fn check(pdev: &OwnedDevice) -> Result {
    if !in_denylist(pdev) {
        return Ok(());
    }
    let (vendor, device) = (pdev.vendor_id().as_raw(), pdev.device_id());
    if params::disable_denylist() {
        dev_warn!(
            pdev.as_device(),
            "device denylist disabled - allowing device {:04x}:{:04x}.\n",
            vendor,
            device
        );
        return Ok(());
    }
    dev_warn!(
        pdev.as_device(),
        "{:04x}:{:04x} exists in vfio-pci device denylist, driver probing disallowed.\n",
        vendor,
        device
    );
    Err(EINVAL)
}
