// SPDX-License-Identifier: GPL-2.0

//! Config space as user space sees it: virtualized the way vfio-pci virtualizes it.
//!
//! (Skeleton: the virtualization is being written; until then config space is not
//! accessible through the device file.)

use crate::{device::VfioPciDevice, pci_function::PciFunction, vfio_device::VfioDevice};
use kernel::{prelude::*, uaccess::UserPtr};

/// The virtual config space of an open function.
pub(crate) struct ConfigState {}

impl ConfigState {
    /// The state of a function nobody has open.
    pub(crate) const fn closed() -> Self {
        Self {}
    }

    /// Builds the virtual config space at first open (after the function's reset).
    pub(crate) fn open(&mut self, _pdev: &PciFunction) -> Result {
        Ok(())
    }

    /// Drops it at last close.
    pub(crate) fn close(&mut self) {}
}

/// Reads or writes up to `count` bytes of config space at `offset`; returns how many moved.
pub(crate) fn rw(
    _dev: &VfioDevice<VfioPciDevice>,
    _buf: UserPtr,
    _count: usize,
    _offset: u64,
    _write: bool,
) -> Result<usize> {
    Err(EINVAL)
}
