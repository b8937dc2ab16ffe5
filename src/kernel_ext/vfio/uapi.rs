// SPDX-License-Identifier: GPL-2.0

//! The VFIO uAPI (`include/uapi/linux/vfio.h`): its structures as byte-convertible types, its
//! constants, and the copy-in every device ioctl starts with.
//!
//! Every `VFIO_DEVICE_*` argument begins with `argsz`, the size user space says it passed. A
//! handler copies in the fixed part it needs (`minsz`, the end of its last required field),
//! refuses an `argsz` below that with `EINVAL`, and copies back at most `argsz` bytes:
//! [`copy_in`] and [`copy_out`] do both halves, the same way for every ioctl.

use crate::kernel_ext::bindings;
use crate::kernel_ext::uaccess;
use kernel::{
    prelude::*,
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::UserPtr, //
};

#[allow(unused_imports)] // The whole uAPI, whether or not the driver uses each part yet.
pub(crate) use bindings::{
    vfio_device_feature,
    vfio_device_info,
    vfio_device_info_cap_pci_atomic_comp,
    vfio_device_ioeventfd,
    vfio_device_low_power_entry_with_wakeup,
    vfio_info_cap_header,
    vfio_irq_info,
    vfio_irq_set,
    vfio_pci_dependent_device,
    vfio_pci_hot_reset,
    vfio_pci_hot_reset_info,
    vfio_region_info, //
};

/// An ioctl argument whose first field is `argsz`.
pub(crate) trait Argsz: FromBytes + AsBytes + Default {
    /// The size of the argument, as user space declares it.
    fn argsz(&self) -> u32;
}

macro_rules! impl_uapi_struct {
    ($($name:ident),* $(,)?) => {$(
        // SAFETY: A uAPI structure is plain integers (and unions of them) laid out without
        // padding, as the ABI requires: every bit pattern is a valid value, and every byte is
        // initialised.
        unsafe impl FromBytes for bindings::$name {}
        // SAFETY: See `FromBytes` above.
        unsafe impl AsBytes for bindings::$name {}
    )*};
}

impl_uapi_struct!(
    vfio_device_info,
    vfio_device_info_cap_pci_atomic_comp,
    vfio_device_ioeventfd,
    vfio_irq_info,
    vfio_irq_set,
    vfio_pci_dependent_device,
    vfio_pci_hot_reset,
    vfio_pci_hot_reset_info,
);

macro_rules! impl_argsz {
    ($($name:ident),* $(,)?) => {$(
        impl Argsz for bindings::$name {
            fn argsz(&self) -> u32 {
                self.argsz
            }
        }
    )*};
}

impl_argsz!(
    vfio_device_info,
    vfio_device_ioeventfd,
    vfio_irq_info,
    vfio_irq_set,
    vfio_pci_hot_reset,
    vfio_pci_hot_reset_info
);

/// Copies the first `minsz` bytes of the argument at `arg` into a zeroed `T`: `EFAULT` if user
/// memory faults, `EINVAL` if the argument's `argsz` is below `minsz` (or `minsz` exceeds `T`).
/// Every ioctl starts here: the copy inlines ([`crate::kernel_ext::uaccess`] says why).
#[inline]
pub(crate) fn copy_in<T: Argsz>(arg: UserPtr, minsz: usize) -> Result<T> {
    let mut val = T::default();
    let bytes = val.as_bytes_mut().get_mut(..minsz).ok_or(EINVAL)?;
    uaccess::copy_from_user(arg, bytes)?;
    if (val.argsz() as usize) < minsz {
        return Err(EINVAL);
    }
    Ok(val)
}

/// Copies `val` back to `arg`, at most `argsz` bytes of it, as the C drivers'
/// `copy_to_user(arg, &val, min(argsz, sizeof(val)))`; `EFAULT` if user memory faults.
#[inline]
pub(crate) fn copy_out<T: AsBytes>(arg: UserPtr, val: &T, argsz: usize) -> Result {
    let bytes = val.as_bytes();
    uaccess::copy_to_user(arg, &bytes[..argsz.min(bytes.len())])
}

// The VFIO core concern (ioctl dispatch, GET_INFO, hot reset, features): ioctl numbers, flags,
// and the hot-reset entries.

pub(crate) use bindings::{
    VFIO_DEVICE_FEATURE_DMA_BUF,
    VFIO_DEVICE_FEATURE_GET,
    VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
    VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
    VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
    VFIO_DEVICE_FEATURE_MASK,
    VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
    VFIO_DEVICE_FEATURE_PROBE,
    VFIO_DEVICE_FEATURE_SET,
    VFIO_DEVICE_FLAGS_CAPS,
    VFIO_DEVICE_FLAGS_PCI,
    VFIO_DEVICE_FLAGS_RESET,
    VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP,
    VFIO_PCI_ATOMIC_COMP128,
    VFIO_PCI_ATOMIC_COMP32,
    VFIO_PCI_ATOMIC_COMP64,
    VFIO_PCI_HOT_RESET_FLAG_DEV_ID,
    VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED,
    VFIO_PCI_NUM_IRQS,
    VFIO_PCI_NUM_REGIONS,
    VFIO_PCI_RS_IOCTL_VFIO_DEVICE_GET_INFO,
    VFIO_PCI_RS_IOCTL_VFIO_DEVICE_GET_IRQ_INFO,
    VFIO_PCI_RS_IOCTL_VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
    VFIO_PCI_RS_IOCTL_VFIO_DEVICE_IOEVENTFD,
    VFIO_PCI_RS_IOCTL_VFIO_DEVICE_PCI_HOT_RESET,
    VFIO_PCI_RS_IOCTL_VFIO_DEVICE_RESET,
    VFIO_PCI_RS_IOCTL_VFIO_DEVICE_SET_IRQS, //
};

/// `VFIO_PCI_DEVID_OWNED` as it is stored in a `vfio_pci_dependent_device`'s `devid`.
pub(crate) const VFIO_PCI_DEVID_OWNED: u32 = bindings::VFIO_PCI_DEVID_OWNED;
/// `VFIO_PCI_DEVID_NOT_OWNED` (-1) as it is stored in a `vfio_pci_dependent_device`'s `devid`.
pub(crate) const VFIO_PCI_DEVID_NOT_OWNED: u32 = bindings::VFIO_PCI_DEVID_NOT_OWNED as u32;

impl bindings::vfio_pci_dependent_device {
    /// The entry of the function at `segment`, `bus`, `devfn` with `id` in its `group_id`/`devid`
    /// union (which of the two the reply's flags say).
    pub(crate) fn new(segment: u16, bus: u8, devfn: u8, id: u32) -> Self {
        let mut entry = Self {
            segment,
            bus,
            devfn,
            ..Default::default()
        };
        // SAFETY: Both members of the union are `u32` at offset 0, so writing through either is
        // the same store, and every bit pattern is valid for both.
        unsafe { *entry.__bindgen_anon_1.devid.as_mut() = id };
        entry
    }
}
