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
    error::to_result,
    prelude::*, //
};

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
    pub(crate) fn runtime_resume_and_get(&self) -> Result {
        // SAFETY: The device is valid by the type invariant of `pci::Device`.
        to_result(unsafe { vfio::vfio_pci_rs_pm_runtime_resume_and_get(device_raw_of(self)) })
    }

    /// Resumes the function if it is suspended, without taking a reference
    /// (`pm_runtime_resume()`); it may suspend again once idle.
    pub(crate) fn runtime_resume(&self) {
        // SAFETY: The device is valid by the type invariant of `pci::Device`.
        let _ = unsafe { vfio::vfio_pci_rs_pm_runtime_resume(device_raw_of(self)) };
    }

    /// Drops a usage reference and, if it was the last, queues a suspend (`pm_runtime_put()`).
    pub(crate) fn runtime_put(&self) {
        // SAFETY: The device is valid by the type invariant of `pci::Device`.
        unsafe { vfio::vfio_pci_rs_pm_runtime_put(device_raw_of(self)) }
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
    pub(crate) fn runtime_active(&self) -> Result<RuntimeActive<'_>> {
        self.runtime_resume_and_get()?;
        Ok(RuntimeActive(self))
    }
}

/// A usage reference on a resumed function ([`OwnedDevice::runtime_active`]); dropping it is
/// `pm_runtime_put()`.
pub(crate) struct RuntimeActive<'a>(&'a OwnedDevice);

impl Drop for RuntimeActive<'_> {
    fn drop(&mut self) {
        self.0.runtime_put();
    }
}
