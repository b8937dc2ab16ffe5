// SPDX-License-Identifier: GPL-2.0

//! vfio-pci-rs: hands PCI functions to user space through the kernel's VFIO core.
//!
//! The module registers one PCI driver, "vfio-pci-rs", with no static ID table: it binds a
//! function only when user space asks for it through `driver_override`, `new_id`, or the `ids=`
//! module parameter, exactly like vfio-pci. Each bound function becomes a physical
//! `vfio_device` of the VFIO core, reachable through its group (`/dev/vfio/N`) and its cdev
//! (`/dev/vfio/devices/vfioN`).
//!
//! The crate is split by concern: [`pci_driver`] is the PCI bus side (probe, remove, dynamic
//! IDs), [`vfio_device`] the VFIO core side (allocation, ops table, registration), [`device`]
//! the per-function state and its open/close lifecycle, [`ioctl`] the uAPI boundary, and
//! [`dev_set`] which functions share a reset.

use kernel::{driver, prelude::*};

mod bars;
mod bindings;
mod config;
mod dev_set;
mod device;
mod eventfd;
mod feature;
mod hot_reset;
mod ids;
mod intrs;
mod ioctl;
mod ioeventfd;
mod memory;
mod mmap;
mod params;
mod pci_driver;
mod pci_function;
mod rdwr;
mod regions;
mod rwsem;
mod vf_token;
mod vfio_device;

module! {
    type: VfioPciRsModule,
    name: "vfio_pci_rs",
    authors: ["The vfio-pci-rs developers"],
    description: "VFIO PCI driver in Rust: user-space access to PCI functions",
    license: "GPL",
    imports_ns: ["IOMMUFD"],
}

/// The loaded module: owns the PCI driver registration, dropped (unregistered) at `rmmod`,
/// which unbinds, and so unregisters from the VFIO core, every function still bound.
#[pin_data]
struct VfioPciRsModule {
    #[pin]
    driver: driver::Registration<pci_driver::VfioPciDriver>,
}

impl kernel::InPlaceModule for VfioPciRsModule {
    fn init(module: &'static kernel::ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            driver <- driver::Registration::new(pci_driver::DRIVER_NAME, module),
        })
    }
}
