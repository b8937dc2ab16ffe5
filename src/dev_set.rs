// SPDX-License-Identifier: GPL-2.0

//! Which functions share a reset, and the VFIO core dev_set that groups them.
//!
//! A function joins the set of everything a reset of it also touches: its slot when the
//! platform can reset that slot alone, else its whole bus; a function on a root bus or a
//! virtual function is alone. The VFIO core keys dev_sets by an opaque pointer and holds the
//! set's mutex around `open_device`/`close_device`; vfio-pci-core uses the `pci_slot` or
//! `pci_bus` address itself. This driver must never share a set with it (the C driver would
//! take our devices for its own), so its keys are addresses no other user of
//! `vfio_assign_device_set()` can hold: one byte into the slot or bus object, where no object
//! of anyone else's can start. Hence every device in one of our sets is ours.
//!
//! Per-device state that belongs to the set (whether a function still needs a reset) lives in
//! a [`SetLocked`] cell, reachable only through a [`SetMember`], which only a
//! [`LockedDevSet`] hands out: holding the set's lock is checked by the compiler, not by a
//! comment.

#![allow(unsafe_code)] // Transitional: this file still calls C directly.

use crate::{
    device::VfioPciDevice,
    kernel_ext::bindings as vfio,
    kernel_ext::pci::{OwnedDevice, PciDeviceExt},
    kernel_ext::vfio::VfioDevice,
};
use core::{cell::UnsafeCell, marker::PhantomData, mem::offset_of, ptr::NonNull};
use kernel::{bindings, ffi::c_void, prelude::*};

/// The extent of a reset of one function, as fixed when it is bound.
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
    pub(crate) fn of(pdev: &OwnedDevice) -> Self {
        if pdev.on_root_bus() || pdev.is_virtfn() {
            Self::Function
        } else if let Some(slot) = pdev.resettable_slot() {
            Self::Slot(slot)
        } else {
            Self::Bus(pdev.bus())
        }
    }

    /// The key of this scope's dev_set. `own` is the function's own `vfio_device`, which keys
    /// a set of one.
    pub(crate) fn dev_set_key(self, own: *mut c_void) -> *mut c_void {
        match self {
            Self::Function => own,
            Self::Slot(slot) => slot.as_ptr().cast::<u8>().wrapping_add(1).cast(),
            Self::Bus(bus) => bus.as_ptr().cast::<u8>().wrapping_add(1).cast(),
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
#[derive(Default)]
pub(crate) struct SetState {
    /// The function was used and not reset since; a bus or slot reset of the set clears it
    /// once no function of the set is open.
    needs_reset: bool,
}

/// A [`SetState`] behind the lock of the dev_set its device is in.
///
/// # Invariants
///
/// The inner value is only accessed through a [`SetMember`], which exists only while the
/// set's lock is held.
pub(crate) struct SetLocked(UnsafeCell<SetState>);

impl SetLocked {
    pub(crate) fn new() -> Self {
        Self(UnsafeCell::new(SetState::default()))
    }
}

// SAFETY: Accesses are serialised by the dev_set lock (type invariant).
unsafe impl Sync for SetLocked {}
// SAFETY: `SetState` is plain data.
unsafe impl Send for SetLocked {}

/// The dev_set of one of our devices, with its lock held for `'a`.
///
/// # Invariants
///
/// `set` is the dev_set of a registered or being-opened/closed device of ours, its mutex is
/// held for the lifetime of this value, and (see the module doc) every device in it is a
/// `VfioDevice<VfioPciDevice>`.
pub(crate) struct LockedDevSet<'a> {
    /// The device whose set this is.
    dev: &'a VfioDevice<VfioPciDevice>,
    set: NonNull<vfio::vfio_device_set>,
    /// Whether dropping this value releases the lock (false when the VFIO core holds it).
    unlock_on_drop: bool,
}

impl<'a> LockedDevSet<'a> {
    fn set_of(dev: &VfioDevice<VfioPciDevice>) -> NonNull<vfio::vfio_device_set> {
        // SAFETY: `dev_set` is assigned before registration and never changes afterwards; our
        // devices are always assigned one (`VfioPciDevice::bind`).
        unsafe { NonNull::new_unchecked((*dev.as_raw()).dev_set) }
    }

    /// Locks the dev_set of `dev`.
    pub(crate) fn lock(dev: &'a VfioDevice<VfioPciDevice>) -> Self {
        let set = Self::set_of(dev);
        // SAFETY: The set lives as long as any of its devices, and `dev` is alive for `'a`.
        unsafe { bindings::mutex_lock(&raw mut (*set.as_ptr()).lock) };
        // INVARIANT: We just took the lock and release it on drop.
        Self {
            dev,
            set,
            unlock_on_drop: true,
        }
    }

    /// The dev_set of `dev`, whose lock the VFIO core holds around `open_device` and
    /// `close_device`.
    ///
    /// # Safety
    ///
    /// Only to be called from those callbacks, for the device they are called for; the result
    /// must not outlive the callback.
    pub(crate) unsafe fn held_by_core(dev: &'a VfioDevice<VfioPciDevice>) -> Self {
        // INVARIANT: The core holds the lock for the duration of the callback.
        Self {
            dev,
            set: Self::set_of(dev),
            unlock_on_drop: false,
        }
    }

    /// The members of the set, in the order they joined it.
    pub(crate) fn members(&self) -> Members<'_> {
        // SAFETY: The set is valid and locked by the type invariant.
        let head = unsafe { &raw mut (*self.set.as_ptr()).device_list };
        // SAFETY: As above: the list is stable while the lock is held.
        let next = unsafe { (*head).next };
        Members {
            head,
            next,
            _set: PhantomData,
        }
    }

    /// The member through which the set was locked.
    pub(crate) fn this(&self) -> SetMember<'_> {
        SetMember {
            dev: self.dev,
            _set: PhantomData,
        }
    }

    /// The member bound to `pdev`, if `pdev` is in this set.
    pub(crate) fn find(&self, pdev: &kernel::pci::Device) -> Option<SetMember<'_>> {
        let set = self.set.as_ptr();
        // SAFETY: The set is valid and locked by the type invariant; `pdev` is valid.
        let found = unsafe { vfio::vfio_find_device_in_devset(set, pdev.device_raw()) };
        NonNull::new(found).map(|d| {
            // SAFETY: Every device in our sets is a `VfioDevice<VfioPciDevice>` (type
            // invariant), alive while it is in the set, which stays locked for `'_`.
            let dev = unsafe { VfioDevice::from_core(d.as_ptr()) };
            SetMember {
                dev,
                _set: PhantomData,
            }
        })
    }

    /// How many devices of the set are open.
    pub(crate) fn open_count(&self) -> u32 {
        // SAFETY: The set is valid and locked by the type invariant.
        unsafe { vfio::vfio_device_set_open_count(self.set.as_ptr()) }
    }

    /// The function through which a reset of the whole set is done, if such a reset is possible
    /// now and touches only functions in this set (so all of them are ours and can coordinate
    /// with it). Functions bound to another driver, or to none, make this `None`.
    pub(crate) fn resettable(&self) -> Option<&OwnedDevice> {
        let first = self.members().next()?;
        let pdev: &OwnedDevice = &first.device().pdev;
        let slot = probe_hot_reset(pdev).ok()?;
        pdev.for_each_in_reset_scope(slot, &mut |other| {
            self.find(other).map(|_| ()).ok_or(ENODEV)
        })
        .ok()?;
        // The first member lives in the set as long as the lock is held.
        Some(pdev)
    }
}

impl Drop for LockedDevSet<'_> {
    fn drop(&mut self) {
        if self.unlock_on_drop {
            // SAFETY: `lock` took the mutex, released here once.
            unsafe { bindings::mutex_unlock(&raw mut (*self.set.as_ptr()).lock) };
        }
    }
}

/// A device of a locked dev_set: the only way to its [`SetState`].
pub(crate) struct SetMember<'g> {
    dev: &'g VfioDevice<VfioPciDevice>,
    _set: PhantomData<&'g LockedDevSet<'g>>,
}

impl<'g> SetMember<'g> {
    /// The device.
    pub(crate) fn device(&self) -> &'g VfioDevice<VfioPciDevice> {
        self.dev
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut SetState) -> R) -> R {
        // SAFETY: A `SetMember` exists only while its set's lock is held, and no reference to
        // the state escapes `f`, so this is the only access.
        f(unsafe { &mut *self.dev.set_state.0.get() })
    }

    /// Whether the function still needs a reset.
    pub(crate) fn needs_reset(&self) -> bool {
        self.with_state(|s| s.needs_reset)
    }

    /// Marks whether the function still needs a reset.
    pub(crate) fn set_needs_reset(&self, needs_reset: bool) {
        self.with_state(|s| s.needs_reset = needs_reset)
    }
}

/// Iterator over the members of a locked dev_set.
pub(crate) struct Members<'g> {
    head: *mut bindings::list_head,
    next: *mut bindings::list_head,
    _set: PhantomData<&'g LockedDevSet<'g>>,
}

impl<'g> Iterator for Members<'g> {
    type Item = SetMember<'g>;

    fn next(&mut self) -> Option<SetMember<'g>> {
        if self.next == self.head {
            return None;
        }
        let entry = self.next;
        // SAFETY: `entry` is a node of the locked set's device list, so it is the
        // `dev_set_list` field of a `vfio_device` in the set.
        let core = unsafe {
            self.next = (*entry).next;
            entry
                .cast::<u8>()
                .sub(offset_of!(vfio::vfio_device, dev_set_list))
                .cast::<vfio::vfio_device>()
        };
        Some(SetMember {
            // SAFETY: Every device of our sets is a `VfioDevice<VfioPciDevice>` that stays in
            // the set, alive, while its lock is held.
            dev: unsafe { VfioDevice::from_core(core) },
            _set: PhantomData,
        })
    }
}
