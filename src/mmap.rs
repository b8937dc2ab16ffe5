// SPDX-License-Identifier: GPL-2.0

//! `mmap(2)` of BARs: mappings are filled page by page at fault time, through the memory gate,
//! so that a reset or a disabled memory decode can take them away (see [`crate::memory`]).
//!
//! (Skeleton: being written.)

use crate::{device::VfioPciDevice, vfio_device::VfioDevice};
use kernel::{mm::virt::VmaNew, prelude::*};

/// Sets up a new mapping of a BAR.
pub(crate) fn mmap(_dev: &VfioDevice<VfioPciDevice>, _vma: &VmaNew) -> Result {
    Err(EINVAL)
}
