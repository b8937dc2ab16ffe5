// SPDX-License-Identifier: GPL-2.0

//! Runtime power management of a function this driver owns: the runtime-PM usage count the
//! PM core keeps for it (`pm_runtime_*()`), which must drop to zero for the function to be
//! runtime-suspended (the PCI core then saves its state and puts it in D3hot), and a scoped
//! reference ([`RuntimeActive`]) that keeps it resumed.
//!
//! A counting mistake cannot break memory safety (the PM core never lets the count go below
//! zero through these calls); it only keeps a function awake or lets it sleep too early, so
//! the calls are safe methods of [`OwnedDevice`], as their C counterparts are plain calls.
//! The callbacks the PM core calls when it suspends or resumes a function are the driver's
//! (see [`super::driver::Driver::runtime_suspend`]).

use super::{
    device_raw_of,
    OwnedDevice, //
};
use crate::kernel_ext::bindings as vfio;
use kernel::{
    bindings,
    ffi,
    prelude::*, //
};

/// The PM core's request flags (`include/linux/pm_runtime.h`), as its entry points take them.
#[cfg(CONFIG_PM)]
const RPM_GET_PUT: ffi::c_int = bindings::RPM_GET_PUT as ffi::c_int;
#[cfg(CONFIG_PM)]
const RPM_ASYNC: ffi::c_int = bindings::RPM_ASYNC as ffi::c_int;

impl OwnedDevice {
    /// Lets the PM core runtime-suspend the function once its usage count is zero
    /// (`pm_runtime_allow()`: drops the reference `pm_runtime_forbid()` took).
    pub(crate) fn runtime_pm_allow(&self) {
        // SAFETY: The device is valid by the type invariant of `pci::Device`.
        unsafe { vfio::vfio_pci_rs_pm_runtime_allow(device_raw_of(self)) }
    }

    /// Keeps the function from runtime-suspending whatever its usage count, resuming it
    /// (`pm_runtime_forbid()`: takes a reference).
    pub(crate) fn runtime_pm_forbid(&self) {
        // SAFETY: The device is valid by the type invariant of `pci::Device`.
        unsafe { vfio::vfio_pci_rs_pm_runtime_forbid(device_raw_of(self)) }
    }

    /// Resumes the function if it is suspended and takes a usage reference
    /// (`pm_runtime_resume_and_get()`); on failure no reference is held.
    ///
    /// It runs on every config and BAR access, so it calls the PM core itself, as the inline
    /// does, rather than a C helper around the inline (one call and return less per access).
    #[inline]
    pub(crate) fn runtime_resume_and_get(&self) -> Result {
        #[cfg(CONFIG_PM)]
        {
            // SAFETY: The device is valid by the type invariant of `pci::Device`;
            // `__pm_runtime_resume()` with `RPM_GET_PUT` takes a usage reference and resumes it
            // synchronously, which the caller's context allows (it may sleep, as the C inline's
            // callers may).
            let ret = unsafe { bindings::__pm_runtime_resume(device_raw_of(self), RPM_GET_PUT) };
            if ret < 0 {
                // As the inline: the reference was taken even though the resume failed.
                self.runtime_put_noidle();
                return Err(Error::from_errno(ret));
            }
            Ok(())
        }
        #[cfg(not(CONFIG_PM))]
        {
            // SAFETY: The device is valid by the type invariant of `pci::Device`.
            crate::kernel_ext::error::to_result(unsafe {
                vfio::vfio_pci_rs_pm_runtime_resume_and_get(device_raw_of(self))
            })
        }
    }

    /// Resumes the function if it is suspended, without taking a reference
    /// (`pm_runtime_resume()`); it may suspend again once idle.
    pub(crate) fn runtime_resume(&self) {
        // SAFETY: The device is valid by the type invariant of `pci::Device`.
        let _ = unsafe { vfio::vfio_pci_rs_pm_runtime_resume(device_raw_of(self)) };
    }

    /// Drops a usage reference and, if it was the last, queues a suspend (`pm_runtime_put()`).
    ///
    /// Called directly, as [`Self::runtime_resume_and_get`] is.
    #[inline]
    pub(crate) fn runtime_put(&self) {
        #[cfg(CONFIG_PM)]
        {
            // SAFETY: The device is valid by the type invariant of `pci::Device`; with
            // `RPM_GET_PUT | RPM_ASYNC`, `__pm_runtime_idle()` drops a usage reference (never
            // below zero) and only queues the idle check, so it does not sleep.
            let _ = unsafe {
                bindings::__pm_runtime_idle(device_raw_of(self), RPM_GET_PUT | RPM_ASYNC)
            };
        }
        #[cfg(not(CONFIG_PM))]
        {
            // SAFETY: The device is valid by the type invariant of `pci::Device`.
            unsafe { vfio::vfio_pci_rs_pm_runtime_put(device_raw_of(self)) }
        }
    }

    /// Takes a usage reference without resuming the function (`pm_runtime_get_noresume()`).
    pub(crate) fn runtime_get_noresume(&self) {
        // SAFETY: The device is valid by the type invariant of `pci::Device`.
        unsafe { vfio::vfio_pci_rs_pm_runtime_get_noresume(device_raw_of(self)) }
    }

    /// Drops a usage reference without queueing a suspend (`pm_runtime_put_noidle()`): the
    /// next [`Self::runtime_put`] that reaches zero suspends the function.
    pub(crate) fn runtime_put_noidle(&self) {
        // SAFETY: The device is valid by the type invariant of `pci::Device`.
        unsafe { vfio::vfio_pci_rs_pm_runtime_put_noidle(device_raw_of(self)) }
    }

    /// Resumes the function and keeps it resumed while the returned reference lives.
    #[inline]
    pub(crate) fn runtime_active(&self) -> Result<RuntimeActive<'_>> {
        self.runtime_resume_and_get()?;
        Ok(RuntimeActive(self))
    }
}

/// A usage reference on a resumed function ([`OwnedDevice::runtime_active`]); dropping it is
/// `pm_runtime_put()`.
pub(crate) struct RuntimeActive<'a>(&'a OwnedDevice);

impl<'a> RuntimeActive<'a> {
    /// The function held resumed.
    #[inline]
    pub(crate) fn device(&self) -> &'a OwnedDevice {
        self.0
    }
}

impl Drop for RuntimeActive<'_> {
    fn drop(&mut self) {
        self.0.runtime_put();
    }
}
