// SPDX-License-Identifier: GPL-2.0

//! Which functions share a reset, and what this driver keeps per function in their dev_set.
//!
//! A function joins the set of everything a reset of it also touches: its slot when the
//! platform can reset that slot alone, else its whole bus; a function on a root bus or a
//! virtual function is alone. The VFIO core holds the set's mutex around
//! `open_device`/`close_device`; the keys (see [`crate::kernel_ext::vfio::DevSetKey`]) keep our
//! sets apart from vfio-pci-core's, so every device in one of our sets is ours.
//!
//! Per-device state that belongs to the set (whether a function still needs a reset) is a
//! [`SetState`], reachable only through a [`SetMember`], which only a locked dev_set hands out:
//! holding the set's lock is checked by the compiler, not by a comment.

use crate::kernel_ext::{
    pci::{
        BusRef,
        OwnedDevice,
        PciDeviceExt,
        SlotRef, //
    },
    vfio::{
        DevSetKey,
        SetMember,
        VfioDeviceOps, //
    }, //
};
use kernel::prelude::*;

/// The extent of a reset of one function, as fixed when it is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResetScope<'a> {
    /// Only the function itself (root bus, or an SR-IOV virtual function).
    Function,
    /// The hotplug slot, which the platform can reset without its neighbours.
    Slot(SlotRef<'a>),
    /// The whole secondary bus of the bridge above the function.
    Bus(BusRef<'a>),
}

impl<'a> ResetScope<'a> {
    /// Determines the scope the way the VFIO PCI drivers do: slot when a slot reset is
    /// possible, else bus.
    pub(crate) fn of(pdev: &'a OwnedDevice) -> Self {
        if pdev.on_root_bus() || pdev.is_virtfn() {
            Self::Function
        } else if let Some(slot) = pdev.resettable_slot() {
            Self::Slot(slot)
        } else {
            Self::Bus(pdev.bus())
        }
    }

    /// The key of this scope's dev_set; a function alone keys a set of one by itself.
    pub(crate) fn dev_set_key(self) -> DevSetKey<'a> {
        match self {
            Self::Function => DevSetKey::Device,
            Self::Slot(slot) => DevSetKey::Slot(slot),
            Self::Bus(bus) => DevSetKey::Bus(bus),
        }
    }
}

/// Whether a reset of a function, probed now, resets its slot (`true`) or its bus (`false`);
/// `ENODEV` when neither can be reset, as from vfio-pci.
pub(crate) fn probe_hot_reset(pdev: &OwnedDevice) -> Result<bool> {
    if pdev.resettable_slot().is_some() {
        Ok(true)
    } else if pdev.resettable_bus().is_some() {
        Ok(false)
    } else {
        Err(ENODEV)
    }
}

/// The per-device state a dev_set's lock protects.
#[derive(Clone, Copy, Default)]
pub(crate) struct SetState {
    /// The function was used and not reset since; a bus or slot reset of the set clears it
    /// once no function of the set is open.
    needs_reset: bool,
}

/// The needs-reset mark of a member of a locked dev_set.
pub(crate) trait NeedsReset {
    /// Whether the function still needs a reset.
    fn needs_reset(&self) -> bool;

    /// Marks whether the function still needs a reset.
    fn set_needs_reset(&self, needs_reset: bool);
}

impl<T: VfioDeviceOps<SetState = SetState>> NeedsReset for SetMember<'_, T> {
    fn needs_reset(&self) -> bool {
        self.state().needs_reset
    }

    fn set_needs_reset(&self, needs_reset: bool) {
        self.set_state(SetState { needs_reset });
    }
}
