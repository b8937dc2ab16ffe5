// SPDX-License-Identifier: GPL-2.0

//! The VFIO core's dev_sets (`struct vfio_device_set`): the devices that must be opened,
//! closed and reset together, and the mutex the core holds around `open_device` and
//! `close_device`.
//!
//! The core keys dev_sets by an opaque address. vfio-pci-core uses the `pci_slot` or `pci_bus`
//! address itself; a driver that must never share a set with it (the C driver would take its
//! devices for its own) keys its sets one byte into the slot or bus object instead, where no
//! object of anyone else's can start ([`DevSetKey`]). Hence every device in a set keyed by a
//! slot or a bus is a [`VfioDevice`] of this layer; each records its driver type, which the
//! set's walks check before they lend a member as a [`VfioDevice<T>`] (a device of another
//! driver type of this layer, were there one, is not lent).
//!
//! Per-device state that belongs to the set (for vfio-pci: whether a function still needs a
//! reset) lives in a [`SetLocked`] cell of every [`VfioDevice`], reachable only through a
//! [`SetMember`], which only a [`LockedDevSet`] hands out: holding the set's lock is checked by
//! the compiler, not by a comment.

use super::{
    VfioDevice,
    VfioDeviceOps, //
};
use crate::kernel_ext::error::to_result;
use crate::kernel_ext::{
    bindings,
    pci::{
        device_raw_of,
        BusRef,
        SlotRef, //
    }, //
};
use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    mem::offset_of,
    ptr::NonNull, //
};
use kernel::{
    ffi::c_void,
    pci,
    prelude::*, //
};

/// What a device's dev_set is keyed by.
#[derive(Clone, Copy, Debug)]
pub(crate) enum DevSetKey<'a> {
    /// The device itself: a set of one.
    Device,
    /// A hotplug slot: every function of the driver in it.
    Slot(SlotRef<'a>),
    /// A bus: every function of the driver on it.
    Bus(BusRef<'a>),
}

/// Puts `dev` in the dev_set keyed by `key`; called once, before the device is registered or
/// reachable by anyone else.
pub(super) fn assign<T: VfioDeviceOps>(dev: &VfioDevice<T>, key: DevSetKey<'_>) -> Result {
    let key: *mut c_void = match key {
        DevSetKey::Device => dev.as_raw().cast(),
        // One byte into the object: no other user of `vfio_assign_device_set()` can hold
        // this address (see the module doc).
        DevSetKey::Slot(slot) => slot.as_raw().cast::<u8>().wrapping_add(1).cast(),
        DevSetKey::Bus(bus) => bus.as_raw().cast::<u8>().wrapping_add(1).cast(),
    };
    // SAFETY: `dev` is a valid VFIO device, not yet registered nor assigned a set (the
    // caller's promise); the key is only compared by the core, never dereferenced.
    to_result(unsafe { bindings::vfio_assign_device_set(dev.as_raw(), key) })
}

/// The per-device state `S` behind the lock of the dev_set its device is in.
///
/// # Invariants
///
/// The inner value is only accessed through a [`SetMember`], which exists only while the
/// set's lock is held, and only by copy: no reference to it is ever handed out.
pub(crate) struct SetLocked<S>(UnsafeCell<S>);

impl<S: Copy + Default> SetLocked<S> {
    pub(super) fn new() -> Self {
        Self(UnsafeCell::new(S::default()))
    }
}

// SAFETY: Accesses are serialised by the dev_set lock (type invariant).
unsafe impl<S: Send> Sync for SetLocked<S> {}
// SAFETY: `S` is `Send`.
unsafe impl<S: Send> Send for SetLocked<S> {}

/// The dev_set of one of the driver's devices, with its lock held for `'a`.
///
/// # Invariants
///
/// `set` is the dev_set of `dev`, a registered or being-opened/closed device, its mutex is
/// held for the lifetime of this value, and (see the module doc) every device in it is a
/// `VfioDevice<U>` of this layer for some `U`.
pub(crate) struct LockedDevSet<'a, T: VfioDeviceOps> {
    /// The device whose set this is.
    dev: &'a VfioDevice<T>,
    set: NonNull<bindings::vfio_device_set>,
    /// Whether dropping this value releases the lock (false when the VFIO core holds it).
    unlock_on_drop: bool,
}

impl<'a, T: VfioDeviceOps> LockedDevSet<'a, T> {
    fn set_of(dev: &VfioDevice<T>) -> NonNull<bindings::vfio_device_set> {
        // SAFETY: `dev_set` is assigned in `VfioDevice::new`, before anyone else can reach the
        // device, and never changes afterwards.
        unsafe { NonNull::new_unchecked((*dev.as_raw()).dev_set) }
    }

    /// Locks the dev_set of `dev`.
    pub(crate) fn lock(dev: &'a VfioDevice<T>) -> Self {
        let set = Self::set_of(dev);
        // SAFETY: The set lives as long as any of its devices, and `dev` is alive for `'a`.
        unsafe { kernel::bindings::mutex_lock(&raw mut (*set.as_ptr()).lock) };
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
    pub(super) unsafe fn held_by_core(dev: &'a VfioDevice<T>) -> Self {
        // INVARIANT: The core holds the lock for the duration of the callback.
        Self {
            dev,
            set: Self::set_of(dev),
            unlock_on_drop: false,
        }
    }

    /// The members of the set, in the order they joined it.
    pub(crate) fn members(&self) -> Members<'_, T> {
        // SAFETY: The set is valid and locked by the type invariant.
        let head = unsafe { &raw mut (*self.set.as_ptr()).device_list };
        // SAFETY: As above: the list is stable while the lock is held.
        let next = unsafe { (*head).next };
        // INVARIANT: The set is locked for as long as `self` is borrowed.
        Members {
            head,
            next,
            _set: PhantomData,
        }
    }

    /// The member through which the set was locked.
    pub(crate) fn this(&self) -> SetMember<'_, T> {
        // INVARIANT: `self.dev` is in the set, locked for as long as `self` is borrowed.
        SetMember {
            dev: self.dev,
            _set: PhantomData,
        }
    }

    /// The member bound to `pdev`, if `pdev` is in this set.
    pub(crate) fn find(&self, pdev: &pci::Device) -> Option<SetMember<'_, T>> {
        let set = self.set.as_ptr();
        // SAFETY: The set is valid and locked by the type invariant; `pdev` is valid.
        let found = unsafe { bindings::vfio_find_device_in_devset(set, device_raw_of(pdev)) };
        let found = NonNull::new(found)?;
        // SAFETY: Every device in the set is a `VfioDevice<U>` of this layer (type invariant),
        // alive while it is in the set, which stays locked for `'_`. One of another `U` is not
        // a member we can lend.
        let dev = unsafe { VfioDevice::<T>::from_core_of_type(found.as_ptr()) }?;
        // INVARIANT: `dev` is in the set, locked for as long as `self` is borrowed.
        Some(SetMember {
            dev,
            _set: PhantomData,
        })
    }

    /// How many devices of the set are open.
    pub(crate) fn open_count(&self) -> u32 {
        // SAFETY: The set is valid and locked by the type invariant.
        unsafe { bindings::vfio_device_set_open_count(self.set.as_ptr()) }
    }
}

impl<T: VfioDeviceOps> Drop for LockedDevSet<'_, T> {
    fn drop(&mut self) {
        if self.unlock_on_drop {
            // SAFETY: `lock` took the mutex, released here once.
            unsafe { kernel::bindings::mutex_unlock(&raw mut (*self.set.as_ptr()).lock) };
        }
    }
}

/// How an open device was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpenPath {
    /// Through its VFIO group (`VFIO_GROUP_GET_DEVICE_FD`), on the legacy path.
    Group,
    /// Through its cdev (`/dev/vfio/devices/vfioN`, bound to an iommufd).
    Cdev,
}

/// A device of a locked dev_set: the only way to its set state ([`VfioDeviceOps::SetState`]).
///
/// # Invariants
///
/// `dev` is a device of a dev_set whose lock is held for `'g`.
pub(crate) struct SetMember<'g, T: VfioDeviceOps> {
    dev: &'g VfioDevice<T>,
    _set: PhantomData<&'g LockedDevSet<'g, T>>,
}

impl<'g, T: VfioDeviceOps> SetMember<'g, T> {
    /// The device, for this layer only: a member may be on its way out (its last reference
    /// dropped, its release waiting for the set lock we hold), so it must not be lent where
    /// an `ARef` could be taken of it.
    pub(in crate::kernel_ext) fn device(&self) -> &'g VfioDevice<T> {
        self.dev
    }

    /// The driver's state of the device, valid while the set is locked (a release waits for
    /// the lock before it drops the state).
    pub(crate) fn data(&self) -> &'g T {
        self.dev
    }

    /// The user mappings of the device's file.
    pub(crate) fn mappings(&self) -> &'g super::FileMappings {
        self.dev.mappings()
    }

    /// Whether the device is open, and through which path: `None` when closed.
    pub(crate) fn open_path(&self) -> Option<OpenPath> {
        let raw = self.dev.as_raw();
        // SAFETY: The device is valid while the set is locked (type invariant); the core
        // changes `open_count` and `cdev_opened` only with the set's lock held, which a
        // `SetMember` proves.
        let (open_count, cdev) = unsafe {
            (
                (*raw).open_count,
                bindings::vfio_device::cdev_opened_raw(raw) != 0,
            )
        };
        match (open_count, cdev) {
            (0, _) => None,
            (_, true) => Some(OpenPath::Cdev),
            (_, false) => Some(OpenPath::Group),
        }
    }

    /// The device's set state.
    pub(crate) fn state(&self) -> T::SetState {
        // SAFETY: A `SetMember` exists only while its set's lock is held, and the state is
        // only ever copied in or out (type invariant of `SetLocked`), so this read races with
        // nothing and no reference to the state outlives it.
        unsafe { *self.dev.set_state.0.get() }
    }

    /// Replaces the device's set state.
    pub(crate) fn set_state(&self, state: T::SetState) {
        // SAFETY: As in `state`.
        unsafe { *self.dev.set_state.0.get() = state };
    }
}

/// Iterator over the members of a locked dev_set.
///
/// # Invariants
///
/// `head` is the device list of a dev_set whose lock is held for `'g`, and `next` is `head` or
/// a node of that list.
pub(crate) struct Members<'g, T: VfioDeviceOps> {
    head: *mut kernel::bindings::list_head,
    next: *mut kernel::bindings::list_head,
    _set: PhantomData<&'g LockedDevSet<'g, T>>,
}

impl<'g, T: VfioDeviceOps> Iterator for Members<'g, T> {
    type Item = SetMember<'g, T>;

    fn next(&mut self) -> Option<SetMember<'g, T>> {
        loop {
            if self.next == self.head {
                return None;
            }
            if let Some(member) = self.step() {
                return Some(member);
            }
        }
    }
}

impl<'g, T: VfioDeviceOps> Members<'g, T> {
    /// Moves past the next device of the list; lends it if it is a `VfioDevice<T>`.
    fn step(&mut self) -> Option<SetMember<'g, T>> {
        let entry = self.next;
        // SAFETY: `entry` is a node of the locked set's device list, so it is the
        // `dev_set_list` field of a `vfio_device` in the set.
        let core = unsafe {
            self.next = (*entry).next;
            entry
                .cast::<u8>()
                .sub(offset_of!(bindings::vfio_device, dev_set_list))
                .cast::<bindings::vfio_device>()
        };
        // SAFETY: Every device of the set is a `VfioDevice<U>` of this layer that stays in
        // the set, alive, while its lock is held; one of another `U` is skipped.
        let dev = unsafe { VfioDevice::<T>::from_core_of_type(core) }?;
        // INVARIANT: The device is in the set, locked for `'g` (invariant of `Members`).
        Some(SetMember {
            dev,
            _set: PhantomData,
        })
    }
}
