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

use crate::kernel_ext::{
    pci::{
        atomic_ops::AtomicOpWidth,
        OwnedDevice, //
    },
    vfio::uapi, //
};
use kernel::{
    prelude::*,
    transmute::AsBytes, //
};

/// The uAPI flag of an AtomicOps width.
fn comp_flag(width: AtomicOpWidth) -> u32 {
    match width {
        AtomicOpWidth::Comp32 => uapi::VFIO_PCI_ATOMIC_COMP32,
        AtomicOpWidth::Comp64 => uapi::VFIO_PCI_ATOMIC_COMP64,
        AtomicOpWidth::Comp128 => uapi::VFIO_PCI_ATOMIC_COMP128,
    }
}

/// The AtomicOps completer capability of `pdev`, if it has one: the widths its physical
/// function completes and the root complex can be reached with.
fn atomic_comp(pdev: &OwnedDevice) -> Option<uapi::vfio_device_info_cap_pci_atomic_comp> {
    let flags = AtomicOpWidth::ALL
        .into_iter()
        .filter(|&w| {
            pdev.physfn_completes_atomic(w) && pdev.enable_physfn_atomic_ops_to_root(w).is_ok()
        })
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

/// The capability chain of `pdev`'s `GET_INFO` reply, to be placed right after the fixed
/// reply; empty when the function has none. It has at most one capability, whose `next` is 0
/// (the end of the chain) wherever the chain is placed.
pub(crate) fn chain(pdev: &OwnedDevice) -> Result<KVec<u8>> {
    let mut chain = KVec::new();
    if let Some(cap) = atomic_comp(pdev) {
        chain.extend_from_slice(cap.as_bytes(), GFP_KERNEL)?;
    }
    Ok(chain)
}
