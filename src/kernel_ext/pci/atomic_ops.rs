// SPDX-License-Identifier: GPL-2.0

//! PCIe AtomicOps: which atomic operations a function completes (Device Capabilities 2), and
//! enabling it to request them from the root complex (`pci_enable_atomic_ops_to_root()`).
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use super::{
    raw_of,
    OwnedDevice,
    PciDeviceExt, //
};
use crate::kernel_ext::error::to_result;
use kernel::{
    bindings,
    ffi::c_int,
    prelude::*, //
};

/// An AtomicOp operand size a function may complete, as Device Capabilities 2 says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AtomicOpWidth {
    /// 32-bit (`PCI_EXP_DEVCAP2_ATOMIC_COMP32`).
    Comp32,
    /// 64-bit (`PCI_EXP_DEVCAP2_ATOMIC_COMP64`).
    Comp64,
    /// 128-bit CAS (`PCI_EXP_DEVCAP2_ATOMIC_COMP128`).
    Comp128,
}

impl AtomicOpWidth {
    /// Every width, in the order vfio-pci tries them.
    pub(crate) const ALL: [Self; 3] = [Self::Comp32, Self::Comp64, Self::Comp128];

    /// The width's completer bit in Device Capabilities 2.
    const fn devcap2_bit(self) -> u32 {
        match self {
            Self::Comp32 => bindings::PCI_EXP_DEVCAP2_ATOMIC_COMP32,
            Self::Comp64 => bindings::PCI_EXP_DEVCAP2_ATOMIC_COMP64,
            Self::Comp128 => bindings::PCI_EXP_DEVCAP2_ATOMIC_COMP128,
        }
    }
}

/// A set of [`AtomicOpWidth`]s, as Device Capabilities 2 lists the widths a function
/// completes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AtomicOpWidths(u32);

impl AtomicOpWidths {
    /// The completer bits of Device Capabilities 2.
    const MASK: u32 = bindings::PCI_EXP_DEVCAP2_ATOMIC_COMP32
        | bindings::PCI_EXP_DEVCAP2_ATOMIC_COMP64
        | bindings::PCI_EXP_DEVCAP2_ATOMIC_COMP128;

    /// Whether the set holds `width`.
    pub(crate) const fn contains(self, width: AtomicOpWidth) -> bool {
        self.0 & width.devcap2_bit() != 0
    }

    /// Whether the set is empty.
    pub(crate) const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl OwnedDevice {
    /// The widths of AtomicOps this function's physical function (itself, unless it is a VF)
    /// says it completes: one read of Device Capabilities 2 (none for conventional PCI).
    pub(crate) fn physfn_atomic_completer(&self) -> AtomicOpWidths {
        let mut devcap2 = 0u32;
        // SAFETY: The physical function is valid while `self` is (see `PciDeviceExt::physfn`);
        // `devcap2` is a valid output location, left 0 when the register does not exist.
        let _ = unsafe {
            bindings::pcie_capability_read_dword(
                raw_of(self.physfn()),
                bindings::PCI_EXP_DEVCAP2 as c_int,
                &mut devcap2,
            )
        };
        AtomicOpWidths(devcap2 & AtomicOpWidths::MASK)
    }

    /// Enables the physical function to request AtomicOps of `width` if every port up to the
    /// root routes them and the root port completes them (`pci_enable_atomic_ops_to_root()`,
    /// which sets AtomicOp Requester Enable in its Device Control 2): `EINVAL` if a port on the
    /// way does not.
    pub(crate) fn enable_physfn_atomic_ops_to_root(&self, width: AtomicOpWidth) -> Result {
        // SAFETY: The physical function is valid while `self` is (see `PciDeviceExt::physfn`).
        to_result(unsafe {
            bindings::pci_enable_atomic_ops_to_root(raw_of(self.physfn()), width.devcap2_bit())
        })
    }
}
