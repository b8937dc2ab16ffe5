// SPDX-License-Identifier: GPL-2.0

//! The regions of a VFIO PCI device file (`include/uapi/linux/vfio.h`): their indices, the flags
//! of `VFIO_DEVICE_GET_REGION_INFO` and its capabilities.

use super::InfoCaps;
use crate::kernel_ext::bindings;
use kernel::{
    prelude::*,
    transmute::AsBytes, //
};

#[allow(unused_imports)]
// The whole region uAPI, whether or not the driver uses each part yet.
pub(crate) use bindings::{
    VFIO_PCI_BAR0_REGION_INDEX,
    VFIO_PCI_BAR5_REGION_INDEX,
    VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_PCI_NUM_REGIONS,
    VFIO_PCI_ROM_REGION_INDEX,
    VFIO_PCI_VGA_REGION_INDEX,
    VFIO_REGION_INFO_FLAG_CAPS,
    VFIO_REGION_INFO_FLAG_MMAP,
    VFIO_REGION_INFO_FLAG_READ,
    VFIO_REGION_INFO_FLAG_WRITE, //
};

/// vfio-pci's layout of a device file (`include/linux/vfio_pci_core.h`): region `index` starts
/// at file offset `index << VFIO_PCI_OFFSET_SHIFT`.
pub(crate) const VFIO_PCI_OFFSET_SHIFT: u32 = 40;

/// The file offset at which region `index` starts (`VFIO_PCI_INDEX_TO_OFFSET`).
#[inline]
pub(crate) const fn vfio_pci_index_to_offset(index: u32) -> u64 {
    (index as u64) << VFIO_PCI_OFFSET_SHIFT
}

// SAFETY: Two `u16` and a `u32`, no padding: every byte is initialised.
unsafe impl AsBytes for bindings::vfio_info_cap_header {}

impl InfoCaps<'_> {
    /// Appends `VFIO_REGION_INFO_CAP_MSIX_MAPPABLE` (version 1, no body): the region holds the
    /// MSI-X table and may be mmapped whole anyway.
    pub(crate) fn add_msix_mappable(&mut self) -> Result {
        let cap = bindings::vfio_info_cap_header {
            id: bindings::VFIO_REGION_INFO_CAP_MSIX_MAPPABLE as u16,
            version: 1,
            next: 0,
        };
        self.add(cap.as_bytes())
    }
}
