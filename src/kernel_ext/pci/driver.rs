// SPDX-License-Identifier: GPL-2.0

//! PCI drivers that hand functions to user space, registered with what the kernel crate's
//! [`kernel::pci::Adapter`] cannot set.
//!
//! A VFIO bus driver differs from an ordinary PCI driver in five ways, and `pci::Adapter`
//! offers none of them:
//!
//! - it manages DMA itself (`driver_managed_dma`): the IOMMU core would otherwise hand the
//!   function's group to the kernel's DMA API at bind time, and user space could never claim
//!   it;
//! - it binds only through `driver_override` and dynamic IDs: its ID table has one entry,
//!   override-only, matching every function ([`VFIO_OVERRIDE_ONLY_IDS`]), which the PCI core
//!   matches only for a function whose `driver_override` names the driver, and which modpost
//!   turns into the module's `vfio_pci:` alias, as for vfio-pci;
//! - it adds dynamic IDs (`pci_add_dynid`) once it is registered, from a module parameter;
//! - it lets user space create the VFs of a PF (`sriov_configure`);
//! - it reports AER errors to user space (`err_handler->error_detected`);
//! - it runtime-suspends functions nobody uses (`driver.pm`, runtime callbacks only), which
//!   also makes the VFIO core resume a function around every ioctl on it.
//!
//! [`Adapter`] implements [`driver::RegistrationOps`] for a [`Driver`], so the driver is
//! registered with the kernel crate's [`driver::Registration`], which keeps handling the driver
//! data: probe stores it, every other callback borrows it, and the driver core drops it after
//! the function is unbound.

use core::{
    marker::PhantomData,
    mem::offset_of,
    pin::Pin, //
};
use kernel::{
    bindings,
    device,
    driver,
    error::{
        from_result,
        to_result, //
    },
    ffi::c_int,
    pci,
    prelude::*,
    types::Opaque,
    ThisModule, //
};

/// The state of a function's link when AER reports an error of it (`pci_channel_state_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChannelState {
    /// A non-fatal error: the link still works (`pci_channel_io_normal`).
    Normal,
    /// A fatal error: I/O is blocked until the port's link is reset (`pci_channel_io_frozen`).
    Frozen,
    /// Recovery failed; the function is about to be disconnected
    /// (`pci_channel_io_perm_failure`).
    PermFailure,
}

impl ChannelState {
    /// The state the AER core passed; an unknown value is taken as the worst.
    fn from_raw(state: bindings::pci_channel_state_t) -> Self {
        match state {
            bindings::pci_channel_io_normal => Self::Normal,
            bindings::pci_channel_io_frozen => Self::Frozen,
            _ => Self::PermFailure,
        }
    }
}

/// What an AER `error_detected` handler asks of the recovery that follows.
pub(crate) enum ErsResult {
    /// Recovery may go on without a reset (`PCI_ERS_RESULT_CAN_RECOVER`).
    CanRecover,
}

impl ErsResult {
    fn to_raw(&self) -> bindings::pci_ers_result_t {
        match self {
            Self::CanRecover => bindings::pci_ers_result_PCI_ERS_RESULT_CAN_RECOVER,
        }
    }
}

/// A PCI driver that binds only on request, manages DMA itself and may enable SR-IOV.
///
/// Every callback but `probe` and `registered` gets the driver data `probe` made, borrowed
/// while the PCI core holds the function's device lock.
pub(crate) trait Driver: 'static {
    /// The driver data of a bound function.
    type Data: Send + 'static;

    /// Binds the function `dev` and makes its driver data.
    fn probe(dev: &pci::Device<device::Core<'_>>) -> impl PinInit<Self::Data, Error>;

    /// The function is being unbound; its driver data is dropped right after.
    fn unbind(data: Pin<&Self::Data>);

    /// `sriov_configure`: enables `num_vfs` VFs of the PF, or disables them (`num_vfs` 0).
    /// Returns how many VFs are enabled.
    fn sriov_configure(data: Pin<&Self::Data>, num_vfs: i32) -> Result<i32>;

    /// AER reports an uncorrectable error of the function, whose link is in `state`.
    fn error_detected(data: Pin<&Self::Data>, state: ChannelState) -> ErsResult;

    /// The driver was just registered: the moment to add dynamic IDs.
    fn registered(ids: &DynamicIds<'_>);

    /// Probe succeeded and the driver data is stored: from now on the runtime PM callbacks
    /// may be called, once the driver lets the function's usage count drop to zero (the PCI
    /// core holds a reference across probe).
    fn bound(_data: Pin<&Self::Data>) {}

    /// Whether the driver has runtime PM callbacks ([`Self::runtime_suspend`],
    /// [`Self::runtime_resume`]): they are registered as the driver's `dev_pm_ops`.
    const RUNTIME_PM: bool = false;

    /// The PM core is runtime-suspending the function: after this returns `Ok`, the PCI core
    /// saves its state and puts it in a low power state (D3hot).
    fn runtime_suspend(_data: Pin<&Self::Data>) -> Result {
        Ok(())
    }

    /// The PM core has brought the function back to D0 and restored its state.
    fn runtime_resume(_data: Pin<&Self::Data>) -> Result {
        Ok(())
    }

    /// The directory of every bound function its read-only sysfs attributes are in (see
    /// [`super::sysfs`]).
    const ATTRIBUTE_GROUP: &'static CStr = c"";

    /// The names of the attributes (at most [`super::sysfs::MAX_ATTRIBUTES`]); none by default.
    const ATTRIBUTES: &'static [&'static CStr] = &[];

    /// Writes the content of the attribute `ATTRIBUTES[index]` of the function whose driver
    /// data is `data`.
    fn show_attribute(_data: Pin<&Self::Data>, _index: usize, _out: &mut super::sysfs::Text<'_>) {}
}

/// The dynamic IDs of a registered driver (its `new_id` list).
///
/// # Invariants
///
/// `self.0` is a `pci_driver` registered with the PCI core for `'a`.
pub(crate) struct DynamicIds<'a>(&'a Opaque<bindings::pci_driver>);

impl DynamicIds<'_> {
    /// Adds `id` to the driver (`pci_add_dynid`), as writing it to `new_id` does; matching
    /// functions that have no driver are bound at once.
    pub(crate) fn add(&self, id: &DynamicId) -> Result {
        // SAFETY: The driver is registered, by the type invariant.
        to_result(unsafe {
            bindings::pci_add_dynid(
                self.0.get(),
                id.vendor,
                id.device,
                id.subvendor,
                id.subdevice,
                id.class,
                id.class_mask,
                0,
            )
        })
    }
}

/// One dynamic ID, the fields of a `new_id` line: `u32::MAX` (`PCI_ANY_ID`) in the first four
/// matches anything; the class matches under its mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DynamicId {
    pub(crate) vendor: u32,
    pub(crate) device: u32,
    pub(crate) subvendor: u32,
    pub(crate) subdevice: u32,
    pub(crate) class: u32,
    pub(crate) class_mask: u32,
}

/// An ID entry of vfio-pci's `PCI_DRIVER_OVERRIDE_DEVICE_VFIO(vendor, device)`: any subsystem
/// and class, matched only through `driver_override` (`PCI_ID_F_VFIO_DRIVER_OVERRIDE`).
const fn vfio_override_only(vendor: u32, device: u32) -> bindings::pci_device_id {
    bindings::pci_device_id {
        vendor,
        device,
        subvendor: !0,
        subdevice: !0,
        class: 0,
        class_mask: 0,
        driver_data: 0,
        override_only: bindings::PCI_ID_F_VFIO_DRIVER_OVERRIDE,
    }
}

/// The ID table of every [`Adapter`] driver, vfio-pci's: one override-only entry for any
/// vendor and device (`PCI_ANY_ID`), then the all-zero end of the table.
///
/// Named as the kernel's `MODULE_DEVICE_TABLE(pci, ...)` names its tables, so that modpost
/// (`scripts/mod/file2alias.c`) finds it in the module and writes its alias,
/// `vfio_pci:v*d*sv*sd*bc*sc*i*`, into `.modinfo`; depmod copies that into `modules.alias`,
/// where libvirt and driverctl look VFIO drivers up. The kernel crate's
/// `module_device_table!` cannot say override-only (its `pci::DeviceId` constructors leave the
/// flag 0) and its form differs between kernel versions.
#[export_name = concat!(
    "__mod_device_table__",
    line!(),
    "__kmod_",
    module_path!(),
    "__pci__vfio_override_only_ids"
)]
static VFIO_OVERRIDE_ONLY_IDS: [bindings::pci_device_id; 2] = [
    vfio_override_only(!0, !0),
    bindings::pci_device_id {
        vendor: 0,
        device: 0,
        subvendor: 0,
        subdevice: 0,
        class: 0,
        class_mask: 0,
        driver_data: 0,
        override_only: 0,
    },
];

/// Registers a [`Driver`] through [`driver::Registration`].
pub(crate) struct Adapter<T: Driver>(PhantomData<T>);

// SAFETY:
// - `bindings::pci_driver` is a C type declared as `repr(C)`.
// - `T::Data` is the type of the driver data `probe_callback` stores.
// - `DEVICE_DRIVER_OFFSET` is the offset of the `struct device_driver` embedded in
//   `struct pci_driver`.
unsafe impl<T: Driver> driver::DriverLayout for Adapter<T> {
    type DriverType = bindings::pci_driver;
    type DriverData<'bound> = T::Data;
    const DEVICE_DRIVER_OFFSET: usize = offset_of!(bindings::pci_driver, driver);
}

// SAFETY: `unregister` is only called after a successful `register` of the same driver, whose
// `pci_driver` stays pinned in between (guaranteed by `driver::Registration`).
unsafe impl<T: Driver> driver::RegistrationOps for Adapter<T> {
    unsafe fn register(
        pdrv: &Opaque<bindings::pci_driver>,
        name: &'static CStr,
        module: &'static ThisModule,
    ) -> Result {
        let drv = pdrv.get();
        // SAFETY: The driver is not registered yet, so we are its only user. The ID table
        // lives as long as the module and matches only through driver_override.
        unsafe {
            (*drv).name = name.as_char_ptr();
            (*drv).probe = Some(Self::probe_callback);
            (*drv).remove = Some(Self::remove_callback);
            (*drv).sriov_configure = Some(Self::sriov_configure_callback);
            (*drv).id_table = VFIO_OVERRIDE_ONLY_IDS.as_ptr();
            (*drv).err_handler = Self::err_handlers();
            (*drv).driver_managed_dma = true;
            (*drv).driver.pm = Self::pm_ops();
            (*drv).dev_groups = Self::dev_groups();
        }
        // SAFETY: `drv` is a fully set up `pci_driver` that stays pinned until `unregister`
        // (the safety requirement of this function).
        to_result(unsafe {
            bindings::__pci_register_driver(drv, module.as_ptr(), name.as_char_ptr())
        })?;
        // INVARIANT: The driver was just registered and is unregistered only by `unregister`,
        // which cannot run before this function returns.
        T::registered(&DynamicIds(pdrv));
        Ok(())
    }

    unsafe fn unregister(pdrv: &Opaque<bindings::pci_driver>) {
        // SAFETY: `pdrv` was registered by `register` (the safety requirement).
        unsafe { bindings::pci_unregister_driver(pdrv.get()) }
    }
}

impl<T: Driver> Adapter<T> {
    /// The AER callbacks: only `error_detected`, as vfio-pci's (no `cor_error_detected`, so
    /// correctable errors are only logged; no `mmio_enabled`, `slot_reset` or `resume`, which
    /// recovery skips for a driver that answers "can recover").
    const ERR_HANDLERS: bindings::pci_error_handlers = bindings::pci_error_handlers {
        error_detected: Some(Self::error_detected_callback),
        mmio_enabled: None,
        slot_reset: None,
        reset_prepare: None,
        reset_done: None,
        resume: None,
        cor_error_detected: None,
    };

    const fn err_handlers() -> &'static bindings::pci_error_handlers {
        &Self::ERR_HANDLERS
    }

    /// The runtime PM callbacks; the PCI core's own `dev_pm_ops` call them around its work.
    const PM_OPS: bindings::dev_pm_ops = bindings::dev_pm_ops {
        runtime_suspend: Some(Self::runtime_suspend_callback),
        runtime_resume: Some(Self::runtime_resume_callback),
        // SAFETY: Every other field is an `Option` of a function pointer, for which all zeroes
        // is `None`.
        ..unsafe { core::mem::zeroed() }
    };

    /// The driver's `dev_pm_ops`, if it has runtime PM callbacks (else null).
    fn pm_ops() -> *const bindings::dev_pm_ops {
        if T::RUNTIME_PM {
            &Self::PM_OPS
        } else {
            core::ptr::null()
        }
    }

    /// The driver data of `pdev`, a function bound to this driver.
    ///
    /// # Safety
    ///
    /// `pdev` must be valid and bound to this driver (probe has returned successfully, and the
    /// driver data is not dropped) for `'a`: the PCI core is calling back this driver on it
    /// with its device lock held, or sysfs is reading one of the driver's attributes of it
    /// (see [`super::sysfs`]).
    pub(super) unsafe fn data_of<'a>(pdev: *mut bindings::pci_dev) -> Pin<&'a T::Data> {
        // SAFETY: By the safety requirement `pdev` is a valid function for `'a`; `pci::Device`
        // is a transparent wrapper of `pci_dev`.
        let pdev: &'a pci::Device<device::CoreInternal<'a>> = unsafe { &*pdev.cast() };
        // SAFETY: Probe stored a `T::Data` before the device lock was released, and the driver
        // core drops it only after unbinding, which the caller excludes for `'a`.
        unsafe { pdev.as_ref().drvdata_borrow::<T::Data>() }
    }

    /// # Safety
    ///
    /// Called by the PCI core only, as this driver's `probe`.
    unsafe extern "C" fn probe_callback(
        pdev: *mut bindings::pci_dev,
        _id: *const bindings::pci_device_id,
    ) -> c_int {
        // SAFETY: The PCI core calls probe with a valid function, which it keeps alive and
        // locked for the duration of the call; `pci::Device` is a transparent wrapper of
        // `pci_dev`.
        //
        // INVARIANT: `pdev` is valid for the duration of `probe_callback()`.
        let dev = unsafe { &*pdev.cast::<pci::Device<device::CoreInternal<'_>>>() };
        from_result(|| {
            let data = T::probe(dev);
            dev.as_ref().set_drvdata(data)?;
            // SAFETY: Probe has succeeded and stored the driver data, which stays until the
            // function is unbound, which cannot start before this callback returns.
            T::bound(unsafe { Self::data_of(pdev) });
            Ok(0)
        })
    }

    /// The driver data of `dev`, the device of a PCI function, if a runtime PM callback of
    /// this driver may use it: `None` while probe has not stored it yet.
    ///
    /// # Safety
    ///
    /// Called only from this driver's runtime PM callbacks, by the PCI core's, which call the
    /// driver's only while the function is bound to this driver (`pci_dev->driver` set, from
    /// before probe until after remove; the driver data is dropped after that) and never
    /// during remove (the PCI core holds the function resumed and waits for callbacks in
    /// flight before calling remove).
    unsafe fn bound_data_of<'a>(dev: *mut bindings::device) -> Option<Pin<&'a T::Data>> {
        // SAFETY: The PCI core calls its runtime PM callbacks with the device of a valid
        // `pci_dev`, embedded as its `dev` field.
        let pdev = unsafe { kernel::container_of!(dev, bindings::pci_dev, dev) };
        // SAFETY: `dev` is valid (see above); the driver data pointer is null until probe
        // stores the driver data, fully initialized, and stays set until after the driver
        // data is dropped.
        if unsafe { (*dev).driver_data }.is_null() {
            return None;
        }
        // SAFETY: The function is bound to this driver and its driver data stored and not
        // dropped for the duration of the callback (see above and the safety requirement).
        Some(unsafe { Self::data_of(pdev) })
    }

    /// # Safety
    ///
    /// Called by the PM core only, as this driver's `runtime_suspend`, through the PCI core's
    /// `pci_pm_runtime_suspend()`.
    unsafe extern "C" fn runtime_suspend_callback(dev: *mut bindings::device) -> c_int {
        // SAFETY: This is a runtime PM callback of this driver.
        match unsafe { Self::bound_data_of(dev) } {
            None => 0,
            Some(data) => from_result(|| T::runtime_suspend(data).map(|()| 0)),
        }
    }

    /// # Safety
    ///
    /// Called by the PM core only, as this driver's `runtime_resume`, through the PCI core's
    /// `pci_pm_runtime_resume()`.
    unsafe extern "C" fn runtime_resume_callback(dev: *mut bindings::device) -> c_int {
        // SAFETY: This is a runtime PM callback of this driver.
        match unsafe { Self::bound_data_of(dev) } {
            None => 0,
            Some(data) => from_result(|| T::runtime_resume(data).map(|()| 0)),
        }
    }

    /// # Safety
    ///
    /// Called by the PCI core only, as this driver's `remove`.
    unsafe extern "C" fn remove_callback(pdev: *mut bindings::pci_dev) {
        // SAFETY: The PCI core calls remove on a function bound to this driver, with its
        // device lock held.
        let data = unsafe { Self::data_of(pdev) };
        T::unbind(data);
    }

    /// # Safety
    ///
    /// Called by the PCI core only, as this driver's `sriov_configure`.
    unsafe extern "C" fn sriov_configure_callback(
        pdev: *mut bindings::pci_dev,
        count: c_int,
    ) -> c_int {
        // SAFETY: The PCI core calls `sriov_configure` on a PF bound to this driver, with its
        // device lock held.
        let data = unsafe { Self::data_of(pdev) };
        from_result(|| T::sriov_configure(data, count))
    }

    /// # Safety
    ///
    /// Called by the AER core only, on a function bound to this driver.
    unsafe extern "C" fn error_detected_callback(
        pdev: *mut bindings::pci_dev,
        state: bindings::pci_channel_state_t,
    ) -> bindings::pci_ers_result_t {
        // SAFETY: The AER core calls the handlers of the bound driver with the function's
        // device lock held, so the function is valid and bound to this driver for the call.
        let data = unsafe { Self::data_of(pdev) };
        T::error_detected(data, ChannelState::from_raw(state)).to_raw()
    }
}
