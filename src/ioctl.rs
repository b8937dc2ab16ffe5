// SPDX-License-Identifier: GPL-2.0

//! The uAPI boundary: one function per `VFIO_DEVICE_*` ioctl the driver implements.
//!
//! Each handler copies the fixed part of its argument in, checks `argsz` in one place, acts,
//! and copies the result out, returning the errno vfio-pci returns for the same input. Nothing
//! changes on an error path.

use crate::{
    device::VfioPciDevice,
    hot_reset, intrs, ioeventfd,
    kernel_ext::vfio::{uapi, VfioDevice},
    memory,
};
use core::mem::{offset_of, size_of};
use kernel::{prelude::*, uaccess::UserPtr};

/// Routes an ioctl to its handler; unknown commands get `ENOTTY`, as from vfio-pci.
pub(crate) fn dispatch(dev: &VfioDevice<VfioPciDevice>, cmd: u32, arg: usize) -> Result<isize> {
    let arg = UserPtr::from_addr(arg);
    match cmd {
        uapi::VFIO_PCI_RS_IOCTL_VFIO_DEVICE_GET_INFO => get_info(dev, arg),
        uapi::VFIO_PCI_RS_IOCTL_VFIO_DEVICE_RESET => reset(dev),
        uapi::VFIO_PCI_RS_IOCTL_VFIO_DEVICE_GET_IRQ_INFO => {
            intrs::get_irq_info(dev.irqs(), dev.pdev(), arg)
        }
        uapi::VFIO_PCI_RS_IOCTL_VFIO_DEVICE_SET_IRQS => {
            intrs::set_irqs(dev.irqs(), dev.memory(), dev.pdev(), dev.config(), arg)
        }
        uapi::VFIO_PCI_RS_IOCTL_VFIO_DEVICE_GET_PCI_HOT_RESET_INFO => hot_reset::get_info(dev, arg),
        uapi::VFIO_PCI_RS_IOCTL_VFIO_DEVICE_PCI_HOT_RESET => hot_reset::hot_reset(dev, arg),
        uapi::VFIO_PCI_RS_IOCTL_VFIO_DEVICE_IOEVENTFD => {
            ioeventfd::ioctl(dev, dev.ioeventfds(), dev.msix_table(), arg)
        }
        _ => Err(ENOTTY),
    }
}

/// `VFIO_DEVICE_GET_INFO`: the device's flags and its numbers of regions and interrupts.
fn get_info(dev: &VfioDevice<VfioPciDevice>, arg: UserPtr) -> Result<isize> {
    const MINSZ: usize = offset_of!(uapi::vfio_device_info, num_irqs) + size_of::<u32>();
    let mut info: uapi::vfio_device_info = uapi::copy_in(arg, MINSZ)?;
    let argsz = info.argsz as usize;

    info.flags = uapi::VFIO_DEVICE_FLAGS_PCI;
    if dev.reset_works() {
        info.flags |= uapi::VFIO_DEVICE_FLAGS_RESET;
    }
    info.num_regions = uapi::VFIO_PCI_NUM_REGIONS;
    info.num_irqs = uapi::VFIO_PCI_NUM_IRQS;

    uapi::copy_out(arg, &info, argsz)?;
    Ok(0)
}

/// `VFIO_DEVICE_RESET`: a function-level reset (FLR, PM, slot or bus, whichever the PCI core
/// finds for this function alone), with memory access blocked for the duration.
fn reset(dev: &VfioDevice<VfioPciDevice>) -> Result<isize> {
    if !dev.reset_works() {
        return Err(EINVAL);
    }
    let _blocked = memory::lock_and_zap(dev.memory(), dev.mappings());
    dev.pdev().set_power_d0();
    dev.pdev().try_reset_function().map(|()| 0)
}
