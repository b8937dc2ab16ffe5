// SPDX-License-Identifier: GPL-2.0

//! Which functions share a reset, and the VFIO core dev_set that groups them.
//!
//! A function joins the set of everything a reset of it also touches: its slot when the
//! platform can reset that slot alone, else its whole bus; a function on a root bus or a virtual
//! function is reset on its own. The VFIO core keys dev_sets by an opaque pointer and serialises
//! open and close over each set; vfio-pci-core uses the `pci_slot` or `pci_bus` address itself.
//! This driver must never share a set with it (the C driver would take our devices for its own),
//! so its keys are addresses no other user of `vfio_assign_device_set()` can hold: one byte
//! into the slot or bus object, where no object of anyone else's can start.

use crate::pci_function::PciFunction;
use core::ptr::NonNull;
use kernel::{bindings, ffi::c_void};

/// The extent of a reset of one function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResetScope {
    /// Only the function itself (root bus, or an SR-IOV virtual function).
    Function,
    /// The hotplug slot, which the platform can reset without its neighbours.
    Slot(NonNull<bindings::pci_slot>),
    /// The whole secondary bus of the bridge above the function.
    Bus(NonNull<bindings::pci_bus>),
}

impl ResetScope {
    /// Determines the scope the way the VFIO PCI drivers do: slot when a slot reset is
    /// possible, else bus.
    pub(crate) fn of(pdev: &PciFunction) -> Self {
        if pdev.on_root_bus() || pdev.is_virtfn() {
            return Self::Function;
        }
        if let Some(slot) = pdev.slot() {
            // SAFETY: `slot` is the function's slot, valid while the function is.
            if unsafe { bindings::pci_probe_reset_slot(slot.as_ptr()) } == 0 {
                return Self::Slot(slot);
            }
        }
        Self::Bus(pdev.bus())
    }

    /// The key of this scope's dev_set. `own` is the function's own `vfio_device`, which keys a
    /// set of one.
    pub(crate) fn dev_set_key(self, own: *mut c_void) -> *mut c_void {
        match self {
            Self::Function => own,
            Self::Slot(slot) => slot.as_ptr().cast::<u8>().wrapping_add(1).cast(),
            Self::Bus(bus) => bus.as_ptr().cast::<u8>().wrapping_add(1).cast(),
        }
    }
}
