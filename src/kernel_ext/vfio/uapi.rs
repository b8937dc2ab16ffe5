// SPDX-License-Identifier: GPL-2.0

//! The VFIO uAPI (`include/uapi/linux/vfio.h`): its structures as byte-convertible types, its
//! constants, and the copy-in every device ioctl starts with.
//!
//! Every `VFIO_DEVICE_*` argument begins with `argsz`, the size user space says it passed. A
//! handler copies in the fixed part it needs (`minsz`, the end of its last required field),
//! refuses an `argsz` below that with `EINVAL`, and copies back at most `argsz` bytes:
//! [`copy_in`] and [`copy_out`] do both halves, the same way for every ioctl.

use crate::kernel_ext::bindings;
use kernel::{
    prelude::*,
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};

#[allow(unused_imports)] // The whole uAPI, whether or not the driver uses each part yet.
pub(crate) use bindings::{
    vfio_device_feature, vfio_device_info, vfio_device_ioeventfd,
    vfio_device_low_power_entry_with_wakeup, vfio_info_cap_header, vfio_irq_info, vfio_irq_set,
    vfio_pci_dependent_device, vfio_pci_hot_reset, vfio_pci_hot_reset_info, vfio_region_info,
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
    vfio_device_ioeventfd,
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
    vfio_pci_hot_reset,
    vfio_pci_hot_reset_info
);

/// Copies the first `minsz` bytes of the argument at `arg` into a zeroed `T`: `EFAULT` if user
/// memory faults, `EINVAL` if the argument's `argsz` is below `minsz` (or `minsz` exceeds `T`).
pub(crate) fn copy_in<T: Argsz>(arg: UserPtr, minsz: usize) -> Result<T> {
    let mut val = T::default();
    let bytes = val.as_bytes_mut();
    if minsz > bytes.len() {
        return Err(EINVAL);
    }
    UserSlice::new(arg, minsz)
        .reader()
        .read_slice(&mut bytes[..minsz])?;
    if (val.argsz() as usize) < minsz {
        return Err(EINVAL);
    }
    Ok(val)
}

/// Copies `val` back to `arg`, at most `argsz` bytes of it, as the C drivers'
/// `copy_to_user(arg, &val, min(argsz, sizeof(val)))`.
pub(crate) fn copy_out<T: AsBytes>(arg: UserPtr, val: &T, argsz: usize) -> Result {
    let bytes = val.as_bytes();
    let len = argsz.min(bytes.len());
    UserSlice::new(arg, len).writer().write_slice(&bytes[..len])
}
