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
//! IDs), [`kernel_ext::vfio`] the VFIO core side (allocation, ops table, registration),
//! [`device`] the per-function state and its open/close lifecycle, [`ioctl`] the uAPI boundary,
//! [`dev_set`] which functions share a reset, and [`sriov`] with [`vf_token`] the virtual
//! functions of PFs bound here.

#![deny(unsafe_code)]

use kernel::{
    driver,
    prelude::*, //
};

mod aer;
mod bars;
mod config;
mod denylist;
mod dev_set;
mod device;
mod dma_buf;
mod feature;
mod hot_reset;
mod ids;
mod info_caps;
mod intrs;
mod ioctl;
mod ioeventfd;
#[allow(unsafe_code)]
mod kernel_ext;
mod memory;
mod mmap;
mod params;
mod pci_driver;
mod power;
mod quirks;
mod rdwr;
mod regions;
mod reset_set;
mod runtime_pm;
mod sriov;
mod vf_token;
mod vga;

module! {
    type: VfioPciRsModule,
    name: "vfio_pci_rs",
    authors: ["The vfio-pci-rs developers"],
    description: "VFIO PCI driver in Rust: user-space access to PCI functions",
    license: "GPL",
    imports_ns: ["IOMMUFD"],
}

/// The loaded module: owns the PCI driver registration and the PCI bus notifier that steers
/// new VFs of our PFs here. The notifier is registered first and unregistered last (fields
/// drop in declaration order), so it covers every moment a PF of ours could create VFs. At
/// `rmmod` dropping the driver registration unbinds, and so unregisters from the VFIO core,
/// every function still bound, removing the VFs of each PF first.
#[pin_data]
struct VfioPciRsModule {
    #[pin]
    driver: driver::Registration<kernel_ext::pci::driver::Adapter<pci_driver::VfioPciDriver>>,
    #[pin]
    vf_notifier: pci_driver::VfNotifier,
}

impl kernel::InPlaceModule for VfioPciRsModule {
    fn init(module: &'static kernel::ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            vf_notifier <- pci_driver::VfNotifier::register(),
            driver <- driver::Registration::new(pci_driver::DRIVER_NAME, module),
        })
    }
}
