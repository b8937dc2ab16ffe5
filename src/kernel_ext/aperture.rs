// SPDX-License-Identifier: GPL-2.0

//! The aperture helpers (`drivers/video/aperture.c`): firmware framebuffers (efifb, vesafb,
//! simpledrm...) register the memory they scan out of; a driver taking over the hardware asks
//! them to let go of it.
//!
//! C header: [`include/linux/aperture.h`](srctree/include/linux/aperture.h)
//!
//! Without `CONFIG_APERTURE_HELPERS` (no framebuffer driver that uses them is built) the call is
//! an inline no-op in C; so it is here.

use super::pci::OwnedDevice;
#[cfg(CONFIG_APERTURE_HELPERS)]
use super::{
    bindings as vfio,
    pci::raw_of, //
};
use crate::kernel_ext::error::to_result;
use kernel::prelude::*;

/// Removes the firmware framebuffer devices whose apertures overlap a memory BAR of `pdev`
/// (and, when `pdev` is the boot VGA device, the legacy VGA framebuffer and the VGA text
/// console), on behalf of the driver `name` (`aperture_remove_conflicting_pci_devices()`).
pub(crate) fn remove_conflicting_pci_devices(pdev: &OwnedDevice, name: &CStr) -> Result {
    #[cfg(CONFIG_APERTURE_HELPERS)]
    // SAFETY: `pdev` is valid by the type invariant of `pci::Device`; `name` is a
    // NUL-terminated string that outlives the call (the helpers do not keep it).
    to_result(unsafe {
        vfio::aperture_remove_conflicting_pci_devices(raw_of(pdev), name.as_char_ptr())
    })?;
    #[cfg(not(CONFIG_APERTURE_HELPERS))]
    let _ = (pdev, name);
    Ok(())
}
