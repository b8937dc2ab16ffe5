// SPDX-License-Identifier: GPL-2.0

//! The VGA arbiter (`drivers/pci/vgaarb.c`) and the legacy VGA ranges it arbitrates.
//!
//! C header: [`include/linux/vgaarb.h`](srctree/include/linux/vgaarb.h)
//!
//! Every VGA-class function decodes, besides its BARs, the legacy VGA ranges: memory
//! `0xa0000..=0xbffff` and I/O ports `0x3b0..=0x3bb`, `0x3c0..=0x3df`. Only one function (or the
//! bridge above it) may have them routed at a time; the arbiter decides which, and asks each
//! function's driver, through a decode callback, which of them the function decodes. This
//! module offers:
//!
//! - [`VgaClient`]: a registration of a function as an arbiter client with the decode answer of
//!   a [`VgaDecoder`], unregistered on drop;
//! - [`set_legacy_decoding`]: tell the arbiter what a function decodes now;
//! - [`LegacyRouting`]: the legacy memory or I/O ranges routed to a function (`vga_get()`),
//!   until dropped (`vga_put()`);
//! - [`LegacyMapping`]: a mapping of one legacy range, as an [`IoMap`];
//! - [`for_each_vga_function`]: every VGA-class function of the system (`pci_get_class()`).
//!
//! Without `CONFIG_VGA_ARB` the arbiter's calls are inline no-ops in C; so they are here.

use super::bindings as vfio;
use super::{
    iomap::IoMap,
    pci::{
        bus_raw_of,
        device_from_raw,
        raw_of,
        OwnedDevice, //
    }, //
};
#[cfg(CONFIG_VGA_ARB)]
use crate::kernel_ext::error::to_result;
use core::{
    marker::PhantomData,
    ops::{
        BitOr,
        BitOrAssign,
        Deref, //
    }, //
};
use kernel::{
    bindings,
    pci,
    prelude::*, //
};

/// `PCI_CLASS_DISPLAY_VGA`: the class and subclass of a VGA-compatible controller.
const PCI_CLASS_DISPLAY_VGA: u32 = 0x0300;

/// Whether `pdev`'s class is VGA-compatible display controller (any programming interface), as
/// vfio-pci's `vfio_pci_is_vga()` asks.
pub(crate) fn is_vga(pdev: &pci::Device) -> bool {
    // SAFETY: `pdev` is valid by the type invariant of `pci::Device`; `class` is set at
    // enumeration.
    let class = unsafe { (*raw_of(pdev)).class };
    class >> 8 == PCI_CLASS_DISPLAY_VGA
}

/// A set of the resources the arbiter tracks (`VGA_RSRC_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decodes(u32);

impl Decodes {
    /// The legacy I/O ports.
    pub(crate) const LEGACY_IO: Self = Self(0x01);
    /// The legacy memory range.
    pub(crate) const LEGACY_MEM: Self = Self(0x02);
    /// The function's own I/O BARs.
    pub(crate) const NORMAL_IO: Self = Self(0x04);
    /// The function's own memory BARs.
    pub(crate) const NORMAL_MEM: Self = Self(0x08);
    /// Everything.
    pub(crate) const ALL: Self =
        Self(Self::LEGACY_IO.0 | Self::LEGACY_MEM.0 | Self::NORMAL_IO.0 | Self::NORMAL_MEM.0);

    /// The raw `VGA_RSRC_*` bits.
    fn bits(self) -> u32 {
        self.0
    }
}

impl BitOr for Decodes {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for Decodes {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// Where a VGA function is, as the decode answer needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VgaPlace {
    /// The PCI segment.
    pub(crate) domain: i32,
    /// The number of the bus the function is on.
    pub(crate) bus: u8,
    /// Whether that bus is a root bus.
    pub(crate) root_bus: bool,
}

impl VgaPlace {
    /// Where `pdev` is.
    pub(crate) fn of(pdev: &pci::Device) -> Self {
        let bus = bus_raw_of(pdev);
        // SAFETY: A function's bus is valid while the function is (see `bus_raw_of`).
        unsafe {
            Self {
                domain: vfio_pci_rs_domain(bus),
                bus: (*bus).number,
                root_bus: (*bus).parent.is_null(),
            }
        }
    }

    /// The highest bus number below `pdev`'s bus (`pci_bus_max_busnr()`): the bus itself when
    /// no bridge is on it.
    pub(crate) fn max_bus_below(pdev: &pci::Device) -> u8 {
        // SAFETY: The bus is valid while the function is; the PCI core's bus lists are only
        // read.
        unsafe { bindings::pci_bus_max_busnr(bus_raw_of(pdev)) }
    }
}

/// `pci_domain_nr()` of `bus`.
///
/// # Safety
///
/// `bus` must be a valid `struct pci_bus`.
unsafe fn vfio_pci_rs_domain(bus: *mut bindings::pci_bus) -> i32 {
    // SAFETY: `bus` is valid by the safety requirement.
    unsafe { super::bindings::vfio_pci_rs_pci_domain_nr(bus) }
}

/// Calls `f` with every VGA-class function of the system (class code `0x0300xx`), in the PCI
/// core's order, until it returns `true`. Each function is held (`pci_get_class()`) while `f`
/// looks at it. This can be called in atomic context (the arbiter calls its clients' decode
/// callbacks under a spinlock), as `pci_get_class()` can.
pub(crate) fn for_each_vga_function(mut f: impl FnMut(&pci::Device) -> bool) {
    let mut cur: *mut bindings::pci_dev = core::ptr::null_mut();
    loop {
        // SAFETY: `cur` is null or the function the previous call returned, whose reference
        // this call drops.
        cur = unsafe { bindings::pci_get_class(PCI_CLASS_DISPLAY_VGA << 8, cur) };
        if cur.is_null() {
            return;
        }
        // SAFETY: `pci_get_class()` returned `cur` with a reference held until the next call or
        // the `pci_dev_put()` below, which outlives the borrow.
        if f(unsafe { device_from_raw(cur) }) {
            // SAFETY: Drops the reference `pci_get_class()` took.
            unsafe { bindings::pci_dev_put(cur) };
            return;
        }
    }
}

/// What a driver answers the arbiter when it asks which resources a client function decodes.
pub(crate) trait VgaDecoder {
    /// The resources `pdev` decodes; `single_vga` says whether it is the only VGA function of
    /// the system. Called in atomic context (under the arbiter's spinlock): it must not sleep.
    fn decodes(pdev: &pci::Device, single_vga: bool) -> Decodes;
}

/// The C decode callback of a [`VgaClient<D>`].
///
/// # Safety
///
/// `pdev` must be a valid `struct pci_dev` for the duration of the call (the arbiter passes the
/// registered client's function, which it holds a reference to).
#[cfg(CONFIG_VGA_ARB)]
unsafe extern "C" fn set_decode_callback<D: VgaDecoder>(
    pdev: *mut bindings::pci_dev,
    single_vga: bool,
) -> kernel::ffi::c_uint {
    // SAFETY: Valid for the call by the safety requirement.
    let pdev = unsafe { device_from_raw(pdev) };
    D::decodes(pdev, single_vga).bits()
}

/// A function registered as a VGA arbiter client whose decode callback answers with `D`
/// (`vga_client_register()`); unregistered on drop.
///
/// # Invariants
///
/// `pdev` is registered with the arbiter with `D`'s callback until `drop`.
pub(crate) struct VgaClient<D: VgaDecoder> {
    pdev: OwnedDevice,
    _decoder: PhantomData<D>,
}

impl<D: VgaDecoder> VgaClient<D> {
    /// Registers `pdev`: `ENODEV` if the arbiter does not know it (it is not a VGA function).
    pub(crate) fn register(pdev: &OwnedDevice) -> Result<Self> {
        #[cfg(CONFIG_VGA_ARB)]
        // SAFETY: `pdev` is valid; the callback is a function of this module, which outlives
        // the registration (the module cannot go while one of its functions is bound, and
        // `drop` unregisters at unbind at the latest). The arbiter calls it only with `pdev`.
        to_result(unsafe {
            vfio::vga_client_register(raw_of(pdev), Some(set_decode_callback::<D>))
        })?;
        // INVARIANT: Registered just above.
        Ok(Self {
            pdev: pdev.clone(),
            _decoder: PhantomData,
        })
    }
}

impl<D: VgaDecoder> Drop for VgaClient<D> {
    fn drop(&mut self) {
        #[cfg(CONFIG_VGA_ARB)]
        // SAFETY: `pdev` is valid and registered (type invariant); registering no callback
        // unregisters it (`vga_client_unregister()`). The arbiter calls callbacks under the
        // lock this takes, so none runs once this returns.
        unsafe {
            vfio::vga_client_register(raw_of(&self.pdev), None);
        }
    }
}

/// Tells the arbiter that `pdev` decodes `decodes` now (`vga_set_legacy_decoding()`).
pub(crate) fn set_legacy_decoding(pdev: &OwnedDevice, decodes: Decodes) {
    #[cfg(CONFIG_VGA_ARB)]
    // SAFETY: `pdev` is valid by the type invariant of `pci::Device`.
    unsafe {
        vfio::vga_set_legacy_decoding(raw_of(pdev), decodes.bits());
    }
    #[cfg(not(CONFIG_VGA_ARB))]
    let _ = (pdev, decodes);
}

/// One legacy VGA range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LegacyRange {
    /// Memory `0xa0000..=0xbffff`.
    Memory,
    /// I/O ports `0x3b0..=0x3bb` (monochrome).
    MonoPorts,
    /// I/O ports `0x3c0..=0x3df`.
    Ports,
}

impl LegacyRange {
    /// The first address and the size of the range.
    pub(crate) const fn span(self) -> (u64, u64) {
        match self {
            Self::Memory => (0xa0000, 0x20000),
            Self::MonoPorts => (0x3b0, 0xc),
            Self::Ports => (0x3c0, 0x20),
        }
    }

    /// The arbiter resource the range belongs to.
    fn resource(self) -> Decodes {
        match self {
            Self::Memory => Decodes::LEGACY_MEM,
            Self::MonoPorts | Self::Ports => Decodes::LEGACY_IO,
        }
    }
}

/// A mapping of a legacy VGA range (`ioremap()` of the memory, `ioport_map()` of the ports),
/// unmapped on drop.
///
/// # Invariants
///
/// `io` maps the whole of `range`, made by the call `range` says, until dropped.
pub(crate) struct LegacyMapping {
    io: IoMap,
    range: LegacyRange,
}

impl LegacyMapping {
    /// Maps `range`: `ENOMEM` if it cannot be mapped.
    pub(crate) fn new(range: LegacyRange) -> Result<Self> {
        let (start, len) = range.span();
        let cookie = match range {
            // SAFETY: Mapping the legacy VGA memory range, which is never RAM the kernel
            // allocates from (it is the ISA hole).
            LegacyRange::Memory => unsafe { bindings::ioremap(start, len as usize) },
            // SAFETY: Mapping I/O ports only makes a cookie; nothing is accessed.
            LegacyRange::MonoPorts | LegacyRange::Ports => unsafe {
                bindings::ioport_map(start as usize, len as u32)
            },
        };
        if cookie.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `cookie` maps the `len` bytes of the range until `drop` unmaps it; both
        // calls return iomap cookies.
        let io = unsafe { IoMap::new(cookie, len as usize) };
        // INVARIANT: As just said.
        Ok(Self { io, range })
    }
}

impl Deref for LegacyMapping {
    type Target = IoMap;

    fn deref(&self) -> &IoMap {
        &self.io
    }
}

impl Drop for LegacyMapping {
    fn drop(&mut self) {
        let cookie = self.io.cookie();
        // SAFETY: By the type invariant `cookie` was mapped as `range` says; it is unmapped
        // once, here.
        unsafe {
            match self.range {
                LegacyRange::Memory => bindings::iounmap(cookie),
                LegacyRange::MonoPorts | LegacyRange::Ports => bindings::ioport_unmap(cookie),
            }
        }
    }
}

/// The legacy range of a [`LegacyMapping`] routed to a function by the arbiter (`vga_get()`),
/// until dropped (`vga_put()`).
///
/// # Invariants
///
/// `vga_get()` succeeded for `pdev` and `resource`; `drop` puts it.
pub(crate) struct LegacyRouting<'a> {
    pdev: &'a OwnedDevice,
    resource: Decodes,
}

impl<'a> LegacyRouting<'a> {
    /// Routes the resource `range` belongs to to `pdev`, waiting interruptibly for other
    /// users of it (`vga_get_interruptible()`): `EINTR` if a signal came first, `ENODEV` if
    /// the arbiter does not know `pdev`.
    pub(crate) fn get(pdev: &'a OwnedDevice, range: LegacyRange) -> Result<Self> {
        let resource = range.resource();
        #[cfg(CONFIG_VGA_ARB)]
        // SAFETY: `pdev` is valid; `resource` is one legacy resource bit.
        to_result(unsafe { vfio::vga_get(raw_of(pdev), resource.bits(), 1) })?;
        // INVARIANT: `vga_get()` succeeded.
        Ok(Self { pdev, resource })
    }
}

impl Drop for LegacyRouting<'_> {
    fn drop(&mut self) {
        #[cfg(CONFIG_VGA_ARB)]
        // SAFETY: By the type invariant the resource was got for `pdev` and is put once, here.
        unsafe {
            vfio::vga_put(raw_of(self.pdev), self.resource.bits());
        }
        #[cfg(not(CONFIG_VGA_ARB))]
        let _ = (self.pdev, self.resource);
    }
}
