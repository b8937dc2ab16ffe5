// SPDX-License-Identifier: GPL-2.0

//! A counted reference to one PCI function, and the PCI core operations the driver performs on
//! it.
//!
//! The kernel crate's `pci::Device` covers probing and BARs; the lifecycle of a function handed
//! to user space needs more of the PCI core (enable without a driver's resources, function
//! reset, saved config state, the reset topology), wrapped here so the rest of the crate never
//! touches a raw `struct pci_dev`.

use core::ptr::{addr_of_mut, NonNull};
use kernel::{bindings, device, error::to_result, prelude::*};

/// An owned reference to a `struct pci_dev`.
///
/// # Invariants
///
/// `self.0` points to a valid `struct pci_dev` on which this object holds a reference
/// (`pci_dev_get`), released on drop.
pub(crate) struct PciFunction(NonNull<bindings::pci_dev>);

// SAFETY: A `struct pci_dev` is reference counted and its reference can be dropped from any
// thread; the PCI core serialises the operations this type exposes internally.
unsafe impl Send for PciFunction {}
// SAFETY: See `Send`; every method takes `&self` and is safe to call concurrently.
unsafe impl Sync for PciFunction {}

impl PciFunction {
    /// Takes a new reference to `pdev`.
    ///
    /// # Safety
    ///
    /// `pdev` must point to a valid `struct pci_dev` with a non-zero reference count.
    pub(crate) unsafe fn get(pdev: *mut bindings::pci_dev) -> Result<Self> {
        // SAFETY: `pdev` is valid by the safety requirement; `pci_dev_get` returns it with one
        // more reference.
        let pdev = unsafe { bindings::pci_dev_get(pdev) };
        // INVARIANT: A non-null result of `pci_dev_get` is the device with a reference taken.
        NonNull::new(pdev).map(Self).ok_or(ENODEV)
    }

    /// The raw pointer, for calls into the C APIs that take a `struct pci_dev`.
    pub(crate) fn as_raw(&self) -> *mut bindings::pci_dev {
        self.0.as_ptr()
    }

    /// The function's generic device, for logging and for the VFIO core.
    pub(crate) fn as_device(&self) -> &device::Device {
        // SAFETY: `self.0` is valid by the type invariant, so is its embedded `struct device`,
        // and the reference we hold keeps it alive as long as `self`.
        unsafe { device::Device::from_raw(addr_of_mut!((*self.as_raw()).dev)) }
    }

    /// The header type, without the multi-function bit.
    pub(crate) fn header_type(&self) -> u8 {
        // SAFETY: `self.0` is valid by the type invariant; `hdr_type` is set at enumeration and
        // never changes afterwards.
        unsafe { (*self.as_raw()).hdr_type }
    }

    /// Whether this function is an SR-IOV virtual function.
    pub(crate) fn is_virtfn(&self) -> bool {
        // SAFETY: `self.0` is valid by the type invariant; `is_virtfn` is set when the VF is
        // created and never changes afterwards.
        unsafe { bindings::pci_dev::is_virtfn_raw(self.as_raw()) != 0 }
    }

    /// The number of SR-IOV virtual functions currently enabled on this function.
    pub(crate) fn num_vfs(&self) -> i32 {
        // SAFETY: `self.0` is valid by the type invariant.
        unsafe { bindings::pci_num_vf(self.as_raw()) }
    }

    /// Whether the function sits on a root bus (no bridge above it to reset).
    pub(crate) fn on_root_bus(&self) -> bool {
        // SAFETY: `self.0` is valid by the type invariant, and so is its bus, which outlives it.
        unsafe { (*(*self.as_raw()).bus).parent.is_null() }
    }

    /// The hotplug slot the function sits in, if the platform describes one.
    pub(crate) fn slot(&self) -> Option<NonNull<bindings::pci_slot>> {
        // SAFETY: `self.0` is valid by the type invariant; `slot` is set before a driver binds
        // and a slot outlives the functions in it.
        NonNull::new(unsafe { (*self.as_raw()).slot })
    }

    /// The bus the function sits on.
    pub(crate) fn bus(&self) -> NonNull<bindings::pci_bus> {
        // SAFETY: `self.0` is valid by the type invariant, and the PCI core sets `bus` before
        // it publishes a function, so the pointer is never null.
        unsafe { NonNull::new_unchecked((*self.as_raw()).bus) }
    }

    /// Enables I/O and memory decoding (`pci_enable_device`).
    pub(crate) fn enable(&self) -> Result {
        // SAFETY: `self.0` is valid by the type invariant.
        to_result(unsafe { bindings::pci_enable_device(self.as_raw()) })
    }

    /// Disables the function (`pci_disable_device`); pairs with a successful [`Self::enable`].
    pub(crate) fn disable(&self) {
        // SAFETY: `self.0` is valid by the type invariant.
        unsafe { bindings::pci_disable_device(self.as_raw()) }
    }

    /// Stops the function from mastering the bus.
    pub(crate) fn clear_master(&self) {
        // SAFETY: `self.0` is valid by the type invariant.
        unsafe { bindings::pci_clear_master(self.as_raw()) }
    }

    /// Resets the function alone with the best method it supports, unless its device lock is
    /// contended (`EAGAIN`) or it has none (`ENOTTY`).
    pub(crate) fn try_reset_function(&self) -> Result {
        // SAFETY: `self.0` is valid by the type invariant.
        to_result(unsafe { bindings::pci_try_reset_function(self.as_raw()) })
    }

    /// Saves the config space and returns a copy the function can be restored from later.
    pub(crate) fn save_state(&self) -> Option<SavedState> {
        // SAFETY: `self.0` is valid by the type invariant.
        unsafe { bindings::pci_save_state(self.as_raw()) };
        // SAFETY: `self.0` is valid by the type invariant and its state was just saved.
        let saved = unsafe { bindings::pci_store_saved_state(self.as_raw()) };
        // INVARIANT: A non-null result is a fresh allocation that we now own.
        NonNull::new(saved).map(SavedState)
    }

    /// Loads `saved` back as the state to restore, then restores it into the function.
    pub(crate) fn restore_state(&self, saved: Option<SavedState>) {
        if let Some(saved) = saved {
            let mut raw = saved.into_raw();
            // SAFETY: `self.0` is valid by the type invariant; `raw` is an allocation from
            // `pci_store_saved_state`, which this call consumes and frees.
            unsafe { bindings::pci_load_and_free_saved_state(self.as_raw(), &mut raw) };
        }
        // SAFETY: `self.0` is valid by the type invariant.
        unsafe { bindings::pci_restore_state(self.as_raw()) };
    }
}

impl Clone for PciFunction {
    /// Takes another reference to the same function.
    fn clone(&self) -> Self {
        // SAFETY: `self.0` is valid by the type invariant; `pci_dev_get` takes one more
        // reference and returns the same pointer.
        unsafe { bindings::pci_dev_get(self.as_raw()) };
        // INVARIANT: The reference just taken belongs to the new object.
        Self(self.0)
    }
}

impl Drop for PciFunction {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we hold one reference, given back here.
        unsafe { bindings::pci_dev_put(self.as_raw()) };
    }
}

/// A copy of a function's config state, taken when user space opened it.
///
/// # Invariants
///
/// `self.0` is an allocation returned by `pci_store_saved_state`, owned by this object.
pub(crate) struct SavedState(NonNull<bindings::pci_saved_state>);

// SAFETY: The saved state is a plain heap buffer with no thread affinity.
unsafe impl Send for SavedState {}

impl SavedState {
    fn into_raw(self) -> *mut bindings::pci_saved_state {
        let raw = self.0.as_ptr();
        core::mem::forget(self);
        raw
    }
}

impl Drop for SavedState {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own this allocation from `pci_store_saved_state`.
        unsafe { bindings::kfree(self.0.as_ptr().cast()) };
    }
}
