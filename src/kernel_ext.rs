// SPDX-License-Identifier: GPL-2.0

//! The abstraction layer: every piece of FFI the driver needs, as safe Rust APIs shaped like
//! the `rust/kernel` patches they would become.
//!
//! The driver logic (everything outside this folder) is compiled with `unsafe_code` denied and
//! never names a C binding; it reaches the kernel only through the kernel crate and the
//! modules below. Each module is one subsystem, as one patch series would add it:
//!
//! - [`pci`]: extensions of [`kernel::pci::Device`]: [`pci::PciDeviceExt`] inspects any
//!   function (address, driver, IOMMU group, resources, the reset-scope walk), and
//!   [`pci::OwnedDevice`], a reference to a function this driver was probed with, changes it
//!   (enable, resets, saved state, SR-IOV, power state); with one file per part: config space
//!   (`pci::config`), INTx (`pci::intx`), MSI/MSI-X vectors (`pci::msi`), BAR claims and
//!   sub-page reservations (`pci::bar`), the ROM (`pci::rom`), register constants
//!   (`pci::regs`), the PCI driver trait the kernel crate's adapter lacks (`pci::driver`:
//!   `driver_managed_dma`, `sriov_configure`, the AER handler, dynamic IDs, read-only sysfs
//!   attributes of bound functions through `dev_groups`: `pci::sysfs`) and the PCI bus
//!   notifier (`pci::notifier`).
//! - [`vfio`]: the VFIO core: a device with the driver's state embedded, its ops as a
//!   `#[vtable]` trait, registration, dev_sets, virqfds, PFN mappings of the device file, and
//!   the uAPI with its one argsz copy-in.
//! - [`iommufd`]: iommufd contexts borrowed from a locked dev_set, device ids, VFIO group
//!   files.
//! - [`dma_buf`]: dma-buf exports of BAR ranges (P2PDMA providers), revoked and restored
//!   together.
//! - [`iomap`]: I/O through `pci_iomap()` cookies, as a [`kernel::io::Io`] backend.
//! - [`vga`]: the VGA arbiter (clients, their decode callback, legacy-range routing) and
//!   mappings of the legacy VGA ranges; [`aperture`]: the aperture helpers that remove a
//!   firmware framebuffer from a function's BARs.
//! - [`irq`]: IRQ requests with a handler trait, freed on drop; [`irqbypass`]: IRQ bypass
//!   producers (the interrupt source KVM's irqfd pairs with to post interrupts).
//! - [`mm`]: PFN mappings set up in `mmap` and filled by a fault-handler trait.
//! - [`eventfd`]: references to eventfds user space hands in, and a slot hard-IRQ handlers
//!   signal without a lock.
//! - [`sync`]: the reader/writer semaphore and the interrupt-saving spinlock the kernel crate
//!   lacks; [`lazy_lock`]: global locks that initialise themselves on first use.
//! - [`module_param`]: string and boolean module parameters (`module!` has integer ones
//!   only); [`uuid`]: UUIDs; [`print`]: rate-limited device messages and messages naming an
//!   eventfd.
//! - [`small_vec`]: a vector whose first elements live in place (ioctl data and replies
//!   without an allocation); [`uaccess`]: inline copies of a few bytes from and to user
//!   memory.
//! - [`trace`]: the driver's trace events (defined in `trace.c`); [`dyndbg`]: the refusal
//!   messages of the hot-reset ioctls, as dynamic-debug call sites (in `dyndbg.c`).
//! - [`compat`]: the few items whose bodies differ between the supported kernels (7.2 and
//!   7.3); no other file depends on the kernel's version.
//!
//! The bindgen output (`bindings`) and the C files (`helpers.c`, `trace.c`, `dyndbg.c`) serve
//! only this layer.

pub(crate) mod aperture;
mod bindings;
mod compat;
pub(crate) mod dma_buf;
pub(crate) mod dyndbg;
pub(crate) mod error;
pub(crate) mod eventfd;
pub(crate) mod iomap;
pub(crate) mod iommufd;
pub(crate) mod irq;
pub(crate) mod irqbypass;
pub(crate) mod lazy_lock;
pub(crate) mod mm;
pub(crate) mod module_param;
pub(crate) mod pci;
pub(crate) mod print;
pub(crate) mod small_vec;
pub(crate) mod sync;
pub(crate) mod trace;
pub(crate) mod uaccess;
pub(crate) mod uuid;
pub(crate) mod vfio;
pub(crate) mod vga;
