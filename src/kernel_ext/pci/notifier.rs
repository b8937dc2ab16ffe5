// SPDX-License-Identifier: GPL-2.0

//! PCI bus notifiers (`bus_register_notifier(&pci_bus_type, ...)`).
//!
//! A [`BusNotifier`] calls its [`BusListener`] for the two events a VFIO bus driver follows:
//! a function added to the bus, before any driver can bind it ([`BusEvent::AddDevice`]), and
//! a function just bound to a driver ([`BusEvent::BoundDriver`]). Each event lends the
//! function for inspection; a newly added one also offers the single change a listener may
//! make before drivers see it: its `driver_override`.

use super::{
    device_raw_of,
    PciDeviceExt,
    PciDriverRef, //
};
use crate::kernel_ext::error::to_result;
use core::{
    marker::PhantomData,
    ptr::NonNull, //
};
use kernel::{
    bindings,
    ffi::{
        c_int,
        c_ulong,
        c_void, //
    },
    pci,
    prelude::*,
    types::Opaque, //
};

/// A function just added to the PCI bus: no driver has seen it yet.
///
/// # Invariants
///
/// `self.0` is being added to the bus (`BUS_NOTIFY_ADD_DEVICE`) during `'a`.
pub(crate) struct AddedDevice<'a>(&'a pci::Device);

impl<'a> AddedDevice<'a> {
    /// The function.
    pub(crate) fn device(&self) -> &'a pci::Device {
        self.0
    }

    /// Makes `driver` the only driver that may bind the function (its `driver_override`).
    pub(crate) fn set_driver_override(&self, driver: &CStr) -> Result {
        let name = driver.to_bytes();
        // SAFETY: The embedded device is valid by the type invariant of `pci::Device`; the
        // core copies the `name.len()` bytes at `name` (no NUL needed) under the override's
        // own lock. The function is new (type invariant): no driver is bound to it that the
        // override could surprise.
        to_result(unsafe {
            bindings::__device_set_driver_override(
                device_raw_of(self.0),
                name.as_ptr().cast(),
                name.len(),
            )
        })
    }
}

/// A function just bound to a driver, whose device lock is held while it is notified.
///
/// # Invariants
///
/// `self.0` is bound to a driver, and its device lock is held, during `'a`.
pub(crate) struct BoundDevice<'a>(&'a pci::Device);

impl<'a> BoundDevice<'a> {
    /// The function.
    pub(crate) fn device(&self) -> &'a pci::Device {
        self.0
    }

    /// The driver the function was just bound to.
    pub(crate) fn driver(&self) -> Option<PciDriverRef<'a>> {
        // SAFETY: The device lock is held for `'a` (type invariant), so the function stays
        // bound to this driver for `'a`.
        unsafe { self.0.driver() }
    }
}

/// A PCI bus event, as a [`BusListener`] receives it.
pub(crate) enum BusEvent<'a> {
    /// `BUS_NOTIFY_ADD_DEVICE`.
    AddDevice(AddedDevice<'a>),
    /// `BUS_NOTIFY_BOUND_DRIVER`.
    BoundDriver(BoundDevice<'a>),
}

/// What a [`BusNotifier`] calls on each event of the PCI bus.
pub(crate) trait BusListener: 'static {
    /// Called for each event, from the context of the bus operation that caused it.
    fn notify(event: BusEvent<'_>);
}

/// A notifier registered on the PCI bus; unregistered when dropped.
///
/// # Invariants
///
/// `nb` is registered on the PCI bus, with `notify_callback::<T>` as its callback, for as long
/// as the value lives.
#[pin_data(PinnedDrop)]
pub(crate) struct BusNotifier<T: BusListener> {
    #[pin]
    nb: Opaque<bindings::notifier_block>,
    _listener: PhantomData<T>,
}

// SAFETY: Only the bus notifier chain touches the block after registration, under its own
// lock; this value only unregisters it.
unsafe impl<T: BusListener> Sync for BusNotifier<T> {}
// SAFETY: As above; the block is not tied to a thread.
unsafe impl<T: BusListener> Send for BusNotifier<T> {}

impl<T: BusListener> BusNotifier<T> {
    /// Registers `T` on the PCI bus.
    pub(crate) fn register() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            nb <- Opaque::try_ffi_init(|nb: *mut bindings::notifier_block| {
                // SAFETY: `nb` is valid for writes and pinned: it stays where it is until
                // `drop` unregisters it.
                //
                // INVARIANT: Registered here with `notify_callback::<T>`.
                unsafe {
                    nb.write(bindings::notifier_block {
                        notifier_call: Some(Self::notify_callback),
                        next: core::ptr::null_mut(),
                        priority: 0,
                    });
                    to_result(bindings::bus_register_notifier(
                        &raw const bindings::pci_bus_type,
                        nb,
                    ))
                }
            }),
            _listener: PhantomData,
        })
    }

    /// # Safety
    ///
    /// Called by the PCI bus notifier chain only, with the `struct device` of one of its
    /// `pci_dev`s as `data`.
    unsafe extern "C" fn notify_callback(
        _nb: *mut bindings::notifier_block,
        action: c_ulong,
        data: *mut c_void,
    ) -> c_int {
        let Some(dev) = NonNull::new(data.cast::<bindings::device>()) else {
            return bindings::NOTIFY_DONE as c_int;
        };
        // SAFETY: The PCI bus notifies with the `struct device` of one of its `pci_dev`s,
        // valid for the call.
        let pdev = unsafe { super::device_from_device_raw(dev.as_ptr()) };
        match u32::try_from(action) {
            Ok(bindings::bus_notifier_event_BUS_NOTIFY_ADD_DEVICE) => {
                // INVARIANT: `device_add()` notifies `BUS_NOTIFY_ADD_DEVICE` before it tries
                // to bind a driver to the new function.
                T::notify(BusEvent::AddDevice(AddedDevice(pdev)))
            }
            Ok(bindings::bus_notifier_event_BUS_NOTIFY_BOUND_DRIVER) => {
                // INVARIANT: `driver_bound()` notifies with the device lock held (its callers
                // hold it), after `dev->driver` is set.
                T::notify(BusEvent::BoundDriver(BoundDevice(pdev)))
            }
            _ => {}
        }
        bindings::NOTIFY_DONE as c_int
    }
}

#[pinned_drop]
impl<T: BusListener> PinnedDrop for BusNotifier<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Registered on the PCI bus by the type invariant; after this call the chain
        // no longer calls it.
        unsafe {
            bindings::bus_unregister_notifier(&raw const bindings::pci_bus_type, self.nb.get())
        };
    }
}
