// SPDX-License-Identifier: GPL-2.0

//! The PCI side: the "vfio-pci-rs" driver, its probe and remove, and its dynamic IDs.
//!
//! The kernel crate's `pci::Adapter` cannot say that the driver manages DMA itself
//! (`driver_managed_dma`), which every VFIO bus driver must: the IOMMU core would otherwise
//! give the function's group to the kernel's DMA API at bind time, and user space could never
//! claim it. So this driver registers through its own [`RegistrationOps`], which sets the flag
//! before the driver is visible, keeps the kernel crate's driver-data handling, adds the
//! `ids=` entries once the driver is registered, as vfio-pci does, and offers
//! `sriov_configure` (see [`crate::sriov`]), which the kernel crate has no hook for.

#![allow(unsafe_code)] // Transitional: this file still calls C directly.

use crate::{
    device::VfioPciDevice, ids, intrs, kernel_ext::pci::OwnedDevice,
    kernel_ext::vfio::Registration, params, sriov,
};
use core::{mem::offset_of, pin::Pin};
use kernel::{
    bindings, device,
    driver::{DriverLayout, RegistrationOps},
    error::{from_result, to_result},
    ffi::c_int,
    pci,
    prelude::*,
    types::Opaque,
    ThisModule,
};

/// The PCI driver name, as in `/sys/bus/pci/drivers/` and `driver_override`.
pub(crate) const DRIVER_NAME: &CStr = c"vfio-pci-rs";

/// The vfio-pci-rs PCI driver.
pub(crate) struct VfioPciDriver;

// SAFETY: `pci_driver` is a C struct embedding a `device_driver` at `DEVICE_DRIVER_OFFSET`; the
// driver data of a bound function is its VFIO registration.
unsafe impl DriverLayout for VfioPciDriver {
    type DriverType = bindings::pci_driver;
    type DriverData<'bound> = Registration<VfioPciDevice>;
    const DEVICE_DRIVER_OFFSET: usize = offset_of!(bindings::pci_driver, driver);
}

// SAFETY: `unregister` is only called after a successful `register` of the same driver.
unsafe impl RegistrationOps for VfioPciDriver {
    unsafe fn register(
        pdrv: &Opaque<bindings::pci_driver>,
        name: &'static CStr,
        module: &'static ThisModule,
    ) -> Result {
        let drv = pdrv.get();
        // SAFETY: The driver is not registered yet, so we are its only user. No ID table: the
        // driver binds only through driver_override and dynamic IDs.
        unsafe {
            (*drv).name = name.as_char_ptr();
            (*drv).probe = Some(probe_callback);
            (*drv).remove = Some(remove_callback);
            (*drv).sriov_configure = Some(sriov_configure_callback);
            (*drv).id_table = core::ptr::null();
            (*drv).err_handler = &ERR_HANDLERS;
            (*drv).driver_managed_dma = true;
        }
        // SAFETY: `drv` is a fully set up `pci_driver` that stays pinned until `unregister`.
        to_result(unsafe {
            bindings::__pci_register_driver(drv, module.as_ptr(), name.as_char_ptr())
        })?;
        // SAFETY: `drv` was just registered.
        unsafe { ids::add_from_param(drv) };
        Ok(())
    }

    unsafe fn unregister(pdrv: &Opaque<bindings::pci_driver>) {
        // SAFETY: `pdrv` was registered by `register`.
        unsafe { bindings::pci_unregister_driver(pdrv.get()) }
    }
}

extern "C" fn probe_callback(
    pdev: *mut bindings::pci_dev,
    _id: *const bindings::pci_device_id,
) -> c_int {
    // SAFETY: The PCI core calls probe with a valid function, which it keeps alive and locked
    // for the duration of the call; `pci::Device` is a transparent wrapper of `pci_dev`.
    let core_dev = unsafe { &*pdev.cast::<pci::Device<device::CoreInternal<'_>>>() };
    from_result(|| {
        let function = OwnedDevice::new(core_dev);
        let registration = VfioPciDevice::bind(&function)?;
        core_dev
            .as_ref()
            .set_drvdata(Ok::<_, Error>(registration))?;
        Ok(0)
    })
}

extern "C" fn remove_callback(pdev: *mut bindings::pci_dev) {
    // SAFETY: The PCI core calls remove on a function bound to this driver, with its device
    // lock held.
    let registration = unsafe { registration_of(pdev) };
    // A PF takes its VFs with it, before it goes itself (as vfio-pci does). Then the driver
    // core drops the function's driver data (see `driver::Registration`), and dropping the
    // VFIO registration unregisters the device, waiting for its users to close it.
    sriov::disable(&registration);
}

extern "C" fn sriov_configure_callback(pdev: *mut bindings::pci_dev, count: c_int) -> c_int {
    if !params::enable_sriov() {
        return ENOENT.to_errno();
    }
    // SAFETY: The PCI core calls `sriov_configure` on a PF bound to this driver, with its
    // device lock held.
    let registration = unsafe { registration_of(pdev) };
    from_result(|| sriov::configure(&registration, count))
}

/// The VFIO registration probe stored as the driver data of `pdev`.
///
/// # Safety
///
/// `pdev` must be bound to this driver (probe has returned successfully) and stay bound for
/// `'a`, typically by a PCI core callback on it that holds its device lock.
unsafe fn registration_of<'a>(
    pdev: *mut bindings::pci_dev,
) -> Pin<&'a Registration<VfioPciDevice>> {
    // SAFETY: By the safety requirement `pdev` is a valid, bound function for `'a`;
    // `pci::Device` is a transparent wrapper of `pci_dev`.
    let core_dev: &'a pci::Device<device::CoreInternal<'a>> = unsafe { &*pdev.cast() };
    // SAFETY: Probe stored a `Registration<VfioPciDevice>` before the device lock was
    // released, and the driver core drops it only after unbinding, which the caller excludes
    // for `'a`.
    unsafe {
        core_dev
            .as_ref()
            .drvdata_borrow::<Registration<VfioPciDevice>>()
    }
}

/// The AER callbacks: vfio-pci's, which only tell user space (the ERR eventfd) and let
/// recovery go on.
static ERR_HANDLERS: bindings::pci_error_handlers = bindings::pci_error_handlers {
    error_detected: Some(error_detected_callback),
    mmio_enabled: None,
    slot_reset: None,
    reset_prepare: None,
    reset_done: None,
    resume: None,
    cor_error_detected: None,
};

unsafe extern "C" fn error_detected_callback(
    pdev: *mut bindings::pci_dev,
    _state: bindings::pci_channel_state_t,
) -> bindings::pci_ers_result_t {
    // SAFETY: The AER core calls the handlers of the bound driver with the function's device
    // lock held, so the function is valid and bound to this driver for the call.
    let registration = unsafe { registration_of(pdev) };
    intrs::signal_error(&registration);
    bindings::pci_ers_result_PCI_ERS_RESULT_CAN_RECOVER
}
