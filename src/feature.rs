// SPDX-License-Identifier: GPL-2.0

//! `VFIO_DEVICE_FEATURE`: the features a VMM probes, answered as vfio-pci answers them.
//!
//! (Skeleton: being written.)

use crate::{device::VfioPciDevice, vfio_device::VfioDevice};
use kernel::{prelude::*, uaccess::UserPtr};

/// A feature the VFIO core passes to the driver.
pub(crate) fn device_feature(
    _dev: &VfioDevice<VfioPciDevice>,
    _flags: u32,
    _arg: UserPtr,
    _argsz: usize,
) -> Result {
    Err(ENOTTY)
}
