// SPDX-License-Identifier: GPL-2.0

//! The capability chain of `VFIO_DEVICE_GET_INFO`: on x86 one capability, the PCI AtomicOps
//! completer capability (`VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP`), which QEMU uses to advertise
//! atomics to a guest.
//!
//! As in vfio-pci, the capability is present exactly when the function's physical function
//! says it completes AtomicOps of some width (32, 64 or 128 bits) and the path to the root
//! complex routes and completes them: `pci_enable_atomic_ops_to_root()` for each width the
//! function completes, which also enables the function to request them. The chain is placed
//! right after the fixed reply ([`crate::ioctl::get_info`] decides whether it fits).
//!
//! The widths the function completes come from Device Capabilities 2, a read-only register:
//! read once at bind ([`AtomicCompleter::of`]), not at every call as vfio-pci reads it, so a
//! function that completes none (the common case) answers without a config read. For one that
//! completes some, every call asks `pci_enable_atomic_ops_to_root()` again, as vfio-pci does:
//! the ports' settings may change, and the call sets the requester enable bit, which user
//! space or a reset may have cleared.

use crate::kernel_ext::{
    pci::{
        atomic_ops::{
            AtomicOpWidth,
            AtomicOpWidths, //
        },
        OwnedDevice, //
    },
    vfio::uapi, //
};
/// The uAPI flag of an AtomicOps width.
fn comp_flag(width: AtomicOpWidth) -> u32 {
    match width {
        AtomicOpWidth::Comp32 => uapi::VFIO_PCI_ATOMIC_COMP32,
        AtomicOpWidth::Comp64 => uapi::VFIO_PCI_ATOMIC_COMP64,
        AtomicOpWidth::Comp128 => uapi::VFIO_PCI_ATOMIC_COMP128,
    }
}

/// The AtomicOps widths a bound function's physical function completes, as read at bind.
#[derive(Clone, Copy)]
pub(crate) struct AtomicCompleter(AtomicOpWidths);

impl AtomicCompleter {
    /// Reads the widths `pdev`'s physical function completes (Device Capabilities 2).
    pub(crate) fn of(pdev: &OwnedDevice) -> Self {
        Self(pdev.physfn_atomic_completer())
    }
}

/// The capability chain of `pdev`'s `GET_INFO` reply, to be placed right after the fixed
/// reply, given what its physical function completes: `None` when the function has no
/// capability. The chain has at most one capability, whose `next` is 0 (the end of the chain)
/// wherever the chain is placed.
#[inline]
pub(crate) fn chain(
    completer: AtomicCompleter,
    pdev: &OwnedDevice,
) -> Option<uapi::vfio_device_info_cap_pci_atomic_comp> {
    if completer.0.is_empty() {
        return None;
    }
    atomic_comp(completer.0, pdev)
}

/// The AtomicOps completer capability of `pdev`, whose physical function completes `widths`:
/// the widths the root complex can be reached with, if any.
fn atomic_comp(
    widths: AtomicOpWidths,
    pdev: &OwnedDevice,
) -> Option<uapi::vfio_device_info_cap_pci_atomic_comp> {
    let flags = AtomicOpWidth::ALL
        .into_iter()
        .filter(|&w| widths.contains(w) && pdev.enable_physfn_atomic_ops_to_root(w).is_ok())
        .fold(0, |flags, w| flags | comp_flag(w));
    if flags == 0 {
        return None;
    }
    let mut cap = uapi::vfio_device_info_cap_pci_atomic_comp {
        flags,
        ..Default::default()
    };
    cap.header.id = uapi::VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP as u16;
    cap.header.version = 1;
    Some(cap)
}
