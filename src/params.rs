// SPDX-License-Identifier: GPL-2.0

//! The module parameters, named and behaving as vfio-pci's:
//!
//! - `ids=`: a string in vfio-pci's format, the initial dynamic IDs (see [`crate::ids`]).
//! - `enable_sriov=`: a bool, off by default and writable at run time through
//!   `/sys/module/vfio_pci_rs/parameters/enable_sriov` (mode 0644): whether a PF bound to this
//!   driver may create VFs (see [`crate::sriov`]).
//! - `nointxmask=`: a bool, mode 0644: functions bound while it is set never mask INTx with
//!   DisINTx (PCI 2.3 masking) but at the interrupt controller, with the line exclusive, and no
//!   quirk hides their INTx (see [`crate::intrs`]). Latched per function at bind, as vfio-pci
//!   latches it at device init.
//! - `disable_vga=`: a bool, mode 0444 (with `CONFIG_VFIO_PCI_VGA`, as vfio-pci's): a VGA-class
//!   function (class 0x0300) bound while it is off gets the legacy VGA region, and tells the
//!   VGA arbiter that it decodes the legacy ranges (see [`crate::vga`]). Without
//!   `CONFIG_VFIO_PCI_VGA` there is no parameter and the driver acts as with `disable_vga=1`.
//! - `disable_denylist=`: a bool, mode 0444, set at load only: functions vfio-pci refuses are
//!   bound anyway, with its warning (see [`crate::denylist`]).
//! - `disable_idle_d3=`: a bool, off by default, writable at run time (mode 0644): whether
//!   functions bound from now on stay in D0 while nobody uses them instead of being
//!   runtime-suspended to D3hot (see [`crate::runtime_pm`]); latched by each function at bind.
//!
//! The kernel crate's `module!` macro only declares read-only integer parameters, so these
//! are declared the way C's `module_param_string()` and `module_param()` do it, with the
//! kernel's own ops (see [`crate::kernel_ext::module_param`]). The module loader parses
//! parameters before `init` runs; `ids` has no sysfs file, so it no longer changes once the
//! module runs.

use crate::kernel_ext::module_param::{
    module_param_bool,
    module_param_string, //
};

// The buffer is 1024 bytes, terminating NUL included, as vfio-pci's.
module_param_string!(
    IDS,
    "ids",
    1024,
    "Initial PCI IDs to add to the vfio-pci-rs driver, \
format is \"vendor:device[:subvendor[:subdevice[:class[:class_mask]]]]\" and multiple comma \
separated entries can be specified"
);

module_param_bool!(
    ENABLE_SRIOV,
    "enable_sriov",
    0o644,
    "Enable support for SR-IOV configuration.  Enabling SR-IOV on a PF \
typically requires support of the userspace PF driver, enabling VFs without such support may \
result in non-functional VFs or PF."
);

module_param_bool!(
    NOINTXMASK,
    "nointxmask",
    0o644,
    "Disable support for PCI 2.3 style INTx masking.  If this resolves problems for specific \
devices, report lspci -vvvxxx to linux-pci@vger.kernel.org so the device can be fixed \
automatically via the broken_intx_masking flag."
);

#[cfg(CONFIG_VFIO_PCI_VGA)]
module_param_bool!(
    DISABLE_VGA,
    "disable_vga",
    0o444,
    "Disable VGA resource access through vfio-pci-rs"
);

/// Whether VGA access is off (`disable_vga=`, fixed at load; always with no
/// `CONFIG_VFIO_PCI_VGA`), vfio-pci's `vfio_vga_disabled()`.
pub(crate) fn disable_vga() -> bool {
    #[cfg(CONFIG_VFIO_PCI_VGA)]
    return DISABLE_VGA.get();
    #[cfg(not(CONFIG_VFIO_PCI_VGA))]
    return true;
}

module_param_bool!(
    DISABLE_DENYLIST,
    "disable_denylist",
    0o444,
    "Disable use of device denylist. Disabling the denylist allows binding to devices with \
known errata that may lead to exploitable stability or security issues when accessed by \
untrusted users."
);

/// Whether functions bound now mask INTx at the interrupt controller only (`nointxmask=`).
pub(crate) fn nointxmask() -> bool {
    NOINTXMASK.get()
}

/// Whether the denylist is lifted (`disable_denylist=`, fixed at load).
pub(crate) fn disable_denylist() -> bool {
    DISABLE_DENYLIST.get()
}

module_param_bool!(
    DISABLE_IDLE_D3,
    "disable_idle_d3",
    0o644,
    "Disable using the PCI D3 low power state for idle, unused devices"
);

/// Whether functions bound now must not runtime-suspend while idle (`disable_idle_d3=`).
pub(crate) fn disable_idle_d3() -> bool {
    DISABLE_IDLE_D3.get()
}

/// Whether PFs bound to this driver may enable SR-IOV now (`enable_sriov=`).
pub(crate) fn enable_sriov() -> bool {
    ENABLE_SRIOV.get()
}

/// The `ids=` argument as given at load time, without its terminating NUL.
pub(crate) fn ids() -> &'static [u8] {
    IDS.value()
}
