// SPDX-License-Identifier: GPL-2.0

//! The PCI side: the "vfio-pci-rs" driver, its probe and remove, and its dynamic IDs.
//!
//! The kernel crate's `pci::Adapter` cannot say that the driver manages DMA itself
//! (`driver_managed_dma`), which every VFIO bus driver must: the IOMMU core would otherwise
//! give the function's group to the kernel's DMA API at bind time, and user space could never
//! claim it. So this driver registers through the layer's [`pci::driver::Adapter`], which sets
//! the flag before the driver is visible, has no ID table, keeps the kernel crate's
//! driver-data handling, lets us add the `ids=` entries once the driver is registered, as
//! vfio-pci does, and offers `sriov_configure` (see [`crate::sriov`]) and the AER
//! `error_detected`, which the kernel crate has no hook for. The PCI bus notifier that steers
//! the VFs of this driver's PFs here ([`VfNotifier`]) is on this side too.

use crate::{
    aer,
    denylist,
    device::VfioPciDevice,
    ids,
    kernel_ext::{
        pci::{
            self,
            driver::{
                ChannelState,
                DynamicIds,
                ErsResult, //
            },
            notifier::{
                BusEvent,
                BusListener,
                BusNotifier, //
            },
            sysfs::Text,
            OwnedDevice,
            PciDeviceExt, //
        },
        vfio::{
            Registration,
            VfioDeviceOps, //
        }, //
    },
    params,
    reset_set,
    runtime_pm,
    sriov, //
};
use core::pin::Pin;
use kernel::{
    device,
    prelude::*, //
};

/// The PCI driver name, as in `/sys/bus/pci/drivers/` and `driver_override`: the name of the
/// VFIO device ops, as in vfio-pci, whose bus notifier steers VFs to the ops' name.
pub(crate) const DRIVER_NAME: &CStr = <VfioPciDevice as VfioDeviceOps>::NAME;

/// The vfio-pci-rs PCI driver.
pub(crate) struct VfioPciDriver;

impl pci::driver::Driver for VfioPciDriver {
    /// A bound function's driver data is its VFIO registration.
    type Data = Registration<VfioPciDevice>;

    fn probe(dev: &kernel::pci::Device<device::Core<'_>>) -> impl PinInit<Self::Data, Error> {
        let pdev = OwnedDevice::new(dev);
        // vfio-pci refuses a denylisted function before anything else.
        denylist::check(&pdev).and_then(|()| VfioPciDevice::bind(&pdev))
    }

    fn unbind(registration: Pin<&Self::Data>) {
        // A PF takes its VFs with it, before it goes itself (as vfio-pci does). Then the driver
        // core drops the function's driver data (see `driver::Registration`), and dropping the
        // VFIO registration unregisters the device, waiting for its users to close it.
        sriov::disable(registration.pdev(), registration.memory());
        runtime_pm::unbinding(registration.pdev(), registration.power());
    }

    fn bound(registration: Pin<&Self::Data>) {
        runtime_pm::bound(registration.pdev(), registration.power());
    }

    const RUNTIME_PM: bool = true;

    fn runtime_suspend(registration: Pin<&Self::Data>) -> Result {
        runtime_pm::suspend(
            registration.pdev(),
            registration.power(),
            registration.memory(),
            registration.irqs(),
        );
        Ok(())
    }

    fn runtime_resume(registration: Pin<&Self::Data>) -> Result {
        runtime_pm::resume(
            registration.pdev(),
            registration.power(),
            registration.memory(),
            registration.irqs(),
        );
        Ok(())
    }

    fn sriov_configure(registration: Pin<&Self::Data>, num_vfs: i32) -> Result<i32> {
        if !params::enable_sriov() {
            return Err(ENOENT);
        }
        sriov::configure(
            registration.pdev(),
            registration.token_role(),
            registration.memory(),
            num_vfs,
        )
    }

    /// vfio-pci's AER handling: see [`crate::aer`].
    fn error_detected(registration: Pin<&Self::Data>, state: ChannelState) -> ErsResult {
        aer::error_detected(registration.irqs(), state)
    }

    fn registered(dynamic_ids: &DynamicIds<'_>) {
        ids::add_from_param(dynamic_ids);
        if params::disable_denylist() {
            pr_warn!("device denylist disabled.\n");
        }
    }

    /// `/sys/bus/pci/devices/BDF/vfio_pci_rs/`: see [`crate::reset_set`].
    const ATTRIBUTE_GROUP: &'static CStr = c"vfio_pci_rs";

    const ATTRIBUTES: &'static [&'static CStr] = &[c"reset_set", c"reset_scope"];

    fn show_attribute(registration: Pin<&Self::Data>, index: usize, out: &mut Text<'_>) {
        match index {
            0 => reset_set::show(&registration, out),
            _ => reset_set::show_scope(&registration, out),
        }
    }
}

/// The PCI bus listener that steers the VFs of this driver's PFs to this driver, as
/// vfio-pci's bus notifier does for its own.
pub(crate) struct VfSteering;

/// The registered [`VfSteering`].
pub(crate) type VfNotifier = BusNotifier<VfSteering>;

impl BusListener for VfSteering {
    fn notify(event: BusEvent<'_>) {
        let pdev = match &event {
            BusEvent::AddDevice(added) => added.device(),
            BusEvent::BoundDriver(bound) => bound.device(),
        };
        if !pdev.is_virtfn() {
            return;
        }
        let pf = pdev.physfn();
        if sriov::token_of_pf(pf).is_none() {
            return;
        }
        match event {
            BusEvent::AddDevice(added) => {
                dev_info!(
                    pf.as_device(),
                    "Captured SR-IOV VF {} driver_override\n",
                    pdev.as_device().name()
                );
                if let Err(e) = added.set_driver_override(DRIVER_NAME) {
                    dev_warn!(
                        pf.as_device(),
                        "Cannot set driver_override of VF {}: {:?}\n",
                        pdev.as_device().name(),
                        e
                    );
                }
            }
            BusEvent::BoundDriver(bound) => {
                // The PF is on the list, so it is bound to this driver, and it cannot be
                // unbound before this VF is removed, which waits for the VF's device lock,
                // held while its binding is notified.
                if let Some(vf_driver) = bound.driver() {
                    if vf_driver.name() != DRIVER_NAME {
                        dev_warn!(
                            pf.as_device(),
                            "VF {} bound to driver {} while PF bound to driver {}\n",
                            pdev.as_device().name(),
                            vf_driver.name(),
                            DRIVER_NAME
                        );
                    }
                }
            }
        }
    }
}
