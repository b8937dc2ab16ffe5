// SPDX-License-Identifier: GPL-2.0

//! The abstraction layer: every piece of FFI the driver needs, as safe Rust APIs shaped like
//! the `rust/kernel` patches they would become.
//!
//! The driver logic (everything outside this folder) is compiled with `unsafe_code` denied and
//! never names a C binding; it reaches the kernel only through the kernel crate and the
//! modules below. Each module is one subsystem, as one patch series would add it:
//!
//! - [`pci`]: extensions of [`kernel::pci::Device`] (resets, saved state, locks, the reset
//!   scope, SR-IOV, power state, INTx, config space, BARs and the ROM) and an owned reference
//!   to a function bound to this driver.
//! - [`vfio`]: the VFIO core (a device with the driver's state embedded, its ops as a trait,
//!   registration).
//! - [`eventfd`]: references to eventfds user space hands in.
//! - [`sync`]: the reader/writer semaphore and the interrupt-saving spinlock the kernel crate
//!   lacks.
//!
//! The bindgen output (`bindings`) and `helpers.c` serve only this layer.

pub(crate) mod bindings;
pub(crate) mod eventfd;
pub(crate) mod iomap;
pub(crate) mod irq;
pub(crate) mod lazy_lock;
pub(crate) mod mm;
pub(crate) mod module_param;
pub(crate) mod pci;
pub(crate) mod print;
pub(crate) mod sync;
pub(crate) mod uuid;
pub(crate) mod vfio;
