// SPDX-License-Identifier: GPL-2.0

//! The interrupt and ioeventfd part of the VFIO uAPI (`include/uapi/linux/vfio.h`): the
//! vfio-pci IRQ indexes, the `GET_IRQ_INFO`, `SET_IRQS` and `IOEVENTFD` flags, and the VFIO
//! core's `SET_IRQS` header check.

use crate::kernel_ext::error::to_result;
use crate::kernel_ext::{
    bindings,
    compat,
    pci::intx::PciIntxExt, //
};
use kernel::{
    ffi::c_int,
    pci,
    prelude::*, //
};

#[allow(unused_imports)] // The whole of this part of the uAPI, used or not.
pub(crate) use bindings::{
    VFIO_DEVICE_IOEVENTFD_16,
    VFIO_DEVICE_IOEVENTFD_32,
    VFIO_DEVICE_IOEVENTFD_64,
    VFIO_DEVICE_IOEVENTFD_8,
    VFIO_IRQ_INFO_AUTOMASKED,
    VFIO_IRQ_INFO_EVENTFD,
    VFIO_IRQ_INFO_MASKABLE,
    VFIO_IRQ_INFO_NORESIZE,
    VFIO_IRQ_SET_ACTION_MASK,
    VFIO_IRQ_SET_ACTION_TRIGGER,
    VFIO_IRQ_SET_ACTION_TYPE_MASK,
    VFIO_IRQ_SET_ACTION_UNMASK,
    VFIO_IRQ_SET_DATA_BOOL,
    VFIO_IRQ_SET_DATA_EVENTFD,
    VFIO_IRQ_SET_DATA_NONE,
    VFIO_IRQ_SET_DATA_TYPE_MASK, //
};

/// Whether `VFIO_DEVICE_IOEVENTFD` takes 8-byte writes (`VFIO_DEVICE_IOEVENTFD_64`) on the
/// kernel the module is built for, as that kernel's vfio-pci does: 7.2's refuses them, 7.3's
/// accepts them.
pub(crate) use crate::kernel_ext::compat::IOEVENTFD_64;

/// Whether the ERR IRQ index (AER error reports) is offered on `pdev`, as the kernel's vfio-pci
/// offers it: on PCI Express functions only in 7.2, on every function from 7.3 on.
#[inline]
pub(crate) fn err_irq_offered(pdev: &pci::Device) -> bool {
    compat::ERR_IRQ_ON_CONVENTIONAL_PCI || pdev.is_pcie()
}

/// The vfio-pci IRQ indexes (`VFIO_PCI_*_IRQ_INDEX`) and their count.
pub(crate) const VFIO_PCI_INTX_IRQ_INDEX: u32 = bindings::VFIO_PCI_INTX_IRQ_INDEX;
/// MSI.
pub(crate) const VFIO_PCI_MSI_IRQ_INDEX: u32 = bindings::VFIO_PCI_MSI_IRQ_INDEX;
/// MSI-X.
pub(crate) const VFIO_PCI_MSIX_IRQ_INDEX: u32 = bindings::VFIO_PCI_MSIX_IRQ_INDEX;
/// AER errors.
pub(crate) const VFIO_PCI_ERR_IRQ_INDEX: u32 = bindings::VFIO_PCI_ERR_IRQ_INDEX;
/// Device release requests.
pub(crate) const VFIO_PCI_REQ_IRQ_INDEX: u32 = bindings::VFIO_PCI_REQ_IRQ_INDEX;
/// How many indexes there are.
pub(crate) const VFIO_PCI_NUM_IRQS: u32 = bindings::VFIO_PCI_NUM_IRQS;

/// The header of a `VFIO_DEVICE_SET_IRQS` argument.
#[derive(Clone, Copy)]
pub(crate) struct SetIrqsHeader {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) index: u32,
    pub(crate) start: u32,
    pub(crate) count: u32,
}

/// Checks a `SET_IRQS` header as every VFIO driver must (`vfio_set_irqs_validate_and_prepare`)
/// for an index with `max` interrupts out of `num_irqs` indexes; returns the size of the data
/// that follows the header (`EINVAL` for a bad header).
pub(crate) fn validate_set_irqs(header: &SetIrqsHeader, max: u32, num_irqs: u32) -> Result<usize> {
    let mut raw = bindings::vfio_irq_set {
        argsz: header.argsz,
        flags: header.flags,
        index: header.index,
        start: header.start,
        count: header.count,
        ..Default::default()
    };
    let mut data_size: usize = 0;
    // SAFETY: `raw` and `data_size` are locals the call reads and writes.
    to_result(unsafe {
        bindings::vfio_set_irqs_validate_and_prepare(
            &mut raw,
            max as c_int,
            num_irqs as c_int,
            &mut data_size,
        )
    })?;
    Ok(data_size)
}
