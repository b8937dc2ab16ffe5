// SPDX-License-Identifier: GPL-2.0

//! PFN mappings of a VFIO device file whose faults the device handles.
//!
//! A mapping of the device file holds the file, and the file holds the device's registration,
//! which the device outlives (unregistration waits for every file to be released): so a
//! mapping of the device's file can point to the device, as vfio-pci's `vm_private_data` does.
//! [`VfioDevice::init_pfnmap`] checks that a mapping is one of its files and makes it a PFN
//! mapping whose faults go to the device's [`PfnFaultHandler`].

use super::{
    VfioDevice,
    VfioDeviceOps, //
};
use crate::kernel_ext::mm::{
    PfnFaultHandler,
    VmaNewExt, //
};
use kernel::{
    mm::virt::VmaNew,
    prelude::*, //
};

impl<T: VfioDeviceOps> VfioDevice<T>
where
    Self: PfnFaultHandler,
{
    /// Makes `vma`, a mapping of this device's file being created, an uncached PFN mapping
    /// whose faults go to [`PfnFaultHandler::fault`] on `self` (see [`VmaNewExt::init_pfnmap`]):
    /// `EINVAL` if the mapping is not shared or not of this device's file.
    pub(crate) fn init_pfnmap(&self, vma: &VmaNew) -> Result {
        let raw = vma.as_ptr();
        // SAFETY: `raw` is valid while `vma` is borrowed (type invariant of `VmaNew`); the file
        // of a file mapping is set before the `mmap` hook runs and held by the mapping. The VFIO
        // core sets `inode` at allocation and keeps it until release; it gives every file it
        // opens for the device the inode's mapping, and no other file.
        let ours = unsafe {
            let file = (*raw).vm_file;
            !file.is_null() && (*file).f_mapping == (*(*self.as_raw()).inode).i_mapping
        };
        if !ours {
            return Err(EINVAL);
        }
        // SAFETY: The mapping is of a file of this device (checked above), which it holds until
        // it is gone; the file holds the device's registration, and the device is not freed
        // before its registration ends. Every mapping the MM splits or copies from it holds the
        // file too.
        unsafe { vma.init_pfnmap(self) }
    }
}
