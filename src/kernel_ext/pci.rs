// SPDX-License-Identifier: GPL-2.0

//! Extensions of [`kernel::pci::Device`] for a driver that hands functions to user space.
//!
//! The kernel crate's `pci::Device` covers probing, IDs and driver-owned BAR mappings. A VFIO
//! bus driver needs more of the PCI core: enable without claiming resources, function and bus
//! resets, saved config state, device locks, the reset topology, SR-IOV. They come in two
//! parts:
//!
//! - [`PciDeviceExt`], implemented for every `pci::Device`, only inspects a function (where it
//!   sits, which driver and IOMMU group it has, what the PCI core found at enumeration) or
//!   takes its device lock. Functions of other drivers, reached by the reset-scope walk, are
//!   lent as `&pci::Device` and so can be looked at, never changed.
//! - [`OwnedDevice`], a counted reference to a function this driver was probed with, adds the
//!   operations that change a function (enable, reset, save and restore its state, SR-IOV).
//!   It can only be made from the `pci::Device<Core>` of a probe.

use crate::kernel_ext::error::to_result;
use crate::kernel_ext::{
    bindings as vfio,
    irq::IrqLine, //
};
use core::{
    marker::PhantomData,
    ops::Deref,
    ptr::{
        addr_of_mut,
        NonNull, //
    }, //
};
use kernel::{
    bindings,
    device,
    ffi::{
        c_int,
        c_void, //
    },
    pci,
    prelude::*,
    sync::aref::ARef, //
};

pub(crate) mod atomic_ops;
pub(crate) mod bar;
pub(crate) mod config;
pub(crate) mod driver;
pub(crate) mod intx;
pub(crate) mod msi;
pub(crate) mod notifier;
pub(crate) mod regs;
mod rom;
pub(crate) mod runtime_pm;
pub(crate) mod sysfs;

/// The raw `struct pci_dev` of `pdev`.
pub(in crate::kernel_ext) fn raw_of(pdev: &pci::Device) -> *mut bindings::pci_dev {
    // CAST: `pci::Device` is a `repr(transparent)` wrapper of `Opaque<pci_dev>`, whose
    // interior mutability makes handing out a mutable pointer sound.
    core::ptr::from_ref(pdev).cast_mut().cast()
}

/// The length of the array at `_array`, known from its type alone (no reference is made).
const fn array_len<T, const N: usize>(_array: *const [T; N]) -> usize {
    N
}

/// The embedded `struct device` of `pdev`.
pub(in crate::kernel_ext) fn device_raw_of(pdev: &pci::Device) -> *mut bindings::device {
    // SAFETY: `raw_of` is a valid `pci_dev` (type invariant of `pci::Device`).
    unsafe { addr_of_mut!((*raw_of(pdev)).dev) }
}

/// The bus `pdev` sits on.
pub(in crate::kernel_ext) fn bus_raw_of(pdev: &pci::Device) -> *mut bindings::pci_bus {
    // SAFETY: Valid by the type invariant; the PCI core sets `bus` before it publishes a
    // function and the bus outlives it.
    unsafe { (*raw_of(pdev)).bus }
}

/// The hotplug slot `pdev` sits in, if the platform describes one (else null).
pub(in crate::kernel_ext) fn slot_raw_of(pdev: &pci::Device) -> *mut bindings::pci_slot {
    // SAFETY: Valid by the type invariant; a slot outlives the functions in it.
    unsafe { (*raw_of(pdev)).slot }
}

/// Borrows the function `pdev` points to.
///
/// # Safety
///
/// `pdev` must point to a valid `struct pci_dev` that stays valid for `'a`.
pub(in crate::kernel_ext) unsafe fn device_from_raw<'a>(
    pdev: *mut bindings::pci_dev,
) -> &'a pci::Device {
    // SAFETY: `pci::Device` is a transparent wrapper of `pci_dev`; validity for `'a` is the
    // caller's promise.
    unsafe { &*pdev.cast() }
}

/// Borrows the function whose embedded `struct device` is `dev`.
///
/// # Safety
///
/// `dev` must be the device of a valid `struct pci_dev` (a device on the PCI bus) that stays
/// valid for `'a`.
pub(in crate::kernel_ext) unsafe fn device_from_device_raw<'a>(
    dev: *mut bindings::device,
) -> &'a pci::Device {
    // SAFETY: By the safety requirement `dev` is embedded in a `pci_dev` as its `dev` field,
    // so stepping back to the container stays inside that object.
    let pdev = unsafe { kernel::container_of!(dev, bindings::pci_dev, dev) };
    // SAFETY: `pdev` is a valid `pci_dev` for `'a` (see above).
    unsafe { device_from_raw(pdev) }
}

/// Where a function sits: PCI segment, bus number and device/function number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PciAddress {
    pub(crate) segment: u16,
    pub(crate) bus: u8,
    pub(crate) devfn: u8,
}

impl PciAddress {
    /// The address packed as `segment << 16 | bus << 8 | devfn`, the form the trace events take.
    pub(in crate::kernel_ext) fn packed(self) -> u32 {
        u32::from(self.segment) << 16 | u32::from(self.bus) << 8 | u32::from(self.devfn)
    }
}

/// As the PCI core names functions (`pci_name()`): `dddd:bb:dd.f`.
impl core::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.segment,
            self.bus,
            self.devfn >> 3,
            self.devfn & 7
        )
    }
}

/// A BAR or ROM resource: where the PCI core placed it and what it decodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PciResource {
    /// Bus address of the first byte (0 when unassigned).
    pub(crate) start: u64,
    /// Size in bytes (0 when the resource is not implemented or not assigned).
    pub(crate) len: u64,
    /// `IORESOURCE_*` flags.
    pub(crate) flags: u64,
}

impl PciResource {
    /// Whether the resource decodes memory (not I/O ports).
    pub(crate) fn is_mem(&self) -> bool {
        self.flags & u64::from(regs::IORESOURCE_MEM) != 0
    }
}

/// What any function can be asked: where it sits, what it is, which driver and IOMMU group
/// it has. Nothing here changes a function, so functions of other drivers can be handed out
/// as `&pci::Device` and inspected safely.
pub(crate) trait PciDeviceExt {
    /// The function itself, as the kernel crate's type.
    fn pci_device(&self) -> &pci::Device;

    /// The function's generic device, for logging and for the VFIO core.
    fn as_device(&self) -> &device::Device;

    /// The header type, without the multi-function bit.
    fn header_type(&self) -> u8 {
        // SAFETY: Valid by the type invariant; `hdr_type` never changes after enumeration.
        unsafe { (*raw_of(self.pci_device())).hdr_type }
    }

    /// Whether this function is an SR-IOV virtual function.
    fn is_virtfn(&self) -> bool {
        // SAFETY: Valid by the type invariant; `is_virtfn` never changes after creation.
        unsafe { bindings::pci_dev::is_virtfn_raw(raw_of(self.pci_device())) != 0 }
    }

    /// Whether the function is an SR-IOV physical function (has the SR-IOV capability).
    fn is_physfn(&self) -> bool {
        // SAFETY: Valid by the type invariant; set at enumeration.
        unsafe { bindings::pci_dev::is_physfn_raw(raw_of(self.pci_device())) != 0 }
    }

    /// The number of SR-IOV virtual functions currently enabled on this function.
    fn num_vfs(&self) -> i32 {
        // SAFETY: Valid by the type invariant.
        unsafe { bindings::pci_num_vf(raw_of(self.pci_device())) }
    }

    /// The physical function of a VF (`pci_physfn()`); any other function is its own.
    fn physfn(&self) -> &pci::Device {
        let raw = raw_of(self.pci_device());
        if !self.is_virtfn() {
            // SAFETY: `raw` is `self`, valid for as long as `self` is borrowed.
            return unsafe { device_from_raw(raw) };
        }
        // SAFETY: Valid by the type invariant; a VF's `physfn` is set at creation and its PF
        // outlives it (the PCI core removes every VF before its PF, and each VF holds a
        // reference to it).
        unsafe { device_from_raw((*raw).__bindgen_anon_1.physfn) }
    }

    /// The PCI driver the function is bound to, if any.
    ///
    /// # Safety
    ///
    /// The function must stay bound to that driver (or unbound) for `'a`: its device lock is
    /// held, or the caller otherwise keeps the driver from being unbound.
    unsafe fn driver<'a>(&'a self) -> Option<PciDriverRef<'a>> {
        // SAFETY: Valid by the type invariant.
        let drv = NonNull::new(unsafe { bindings::pci_dev_driver(raw_of(self.pci_device())) })?;
        // INVARIANT: A driver is unregistered only after it is unbound from every function,
        // which the caller excludes for `'a`.
        Some(PciDriverRef(drv, PhantomData))
    }

    /// The driver the function is bound to now, its name copied while the function's device
    /// lock was held ([`CurrentDriver::Busy`] when that lock is contended: it is not waited for,
    /// so this can be asked with other locks held, in any order).
    fn current_driver(&self) -> CurrentDriver {
        let Some(_lock) = try_lock(self.pci_device()) else {
            return CurrentDriver::Busy;
        };
        // SAFETY: The device lock, held until `_lock` drops at the end of this function, keeps
        // the function bound to its driver (or unbound).
        match unsafe { self.driver() } {
            None => CurrentDriver::None,
            Some(driver) => CurrentDriver::Bound(DriverName::copy(driver.name())),
        }
    }

    /// Whether the function sits on a root bus (no bridge above it to reset).
    fn on_root_bus(&self) -> bool {
        // SAFETY: The bus is valid while the function is.
        unsafe { (*bus_raw_of(self.pci_device())).parent.is_null() }
    }

    /// The slot, when the platform can reset it alone (`pci_probe_reset_slot`).
    fn resettable_slot(&self) -> Option<SlotRef<'_>> {
        let slot = NonNull::new(slot_raw_of(self.pci_device()))?;
        // SAFETY: `slot` is the function's slot, valid while the function is.
        if unsafe { bindings::pci_probe_reset_slot(slot.as_ptr()) } != 0 {
            return None;
        }
        // INVARIANT: A slot outlives the functions in it, so it is valid while `self` is
        // borrowed.
        Some(SlotRef(slot, PhantomData))
    }

    /// The bus, when the bridge above it can reset it (`pci_probe_reset_bus`).
    fn resettable_bus(&self) -> Option<BusRef<'_>> {
        let bus = self.bus();
        // SAFETY: `bus` is the function's bus, valid while the function is.
        (unsafe { bindings::pci_probe_reset_bus(bus.as_raw()) } == 0).then_some(bus)
    }

    /// The bus the function sits on (whether or not it can be reset).
    fn bus(&self) -> BusRef<'_> {
        // SAFETY: The PCI core sets `bus` before it publishes a function and never clears it,
        // so it is not null for any function we can be handed.
        let bus = unsafe { NonNull::new_unchecked(bus_raw_of(self.pci_device())) };
        // INVARIANT: A bus outlives the functions on it, so it is valid while `self` is
        // borrowed.
        BusRef(bus, PhantomData)
    }

    /// Segment, bus number and devfn.
    fn address(&self) -> PciAddress {
        let bus = bus_raw_of(self.pci_device());
        // SAFETY: The bus is valid while the function is.
        let segment = unsafe { vfio::vfio_pci_rs_pci_domain_nr(bus) };
        PciAddress {
            // Segments are 16 bits wide in the uAPI, as in the C driver.
            segment: segment as u16,
            // SAFETY: The bus is valid while the function is.
            bus: unsafe { (*bus).number },
            // SAFETY: Valid by the type invariant; `devfn` never changes.
            devfn: unsafe { (*raw_of(self.pci_device())).devfn as u8 },
        }
    }

    /// The id of the IOMMU group the function is in, if any.
    fn iommu_group_id(&self) -> Option<i32> {
        // SAFETY: The embedded device is valid while the function is.
        let group = unsafe { bindings::iommu_group_get(device_raw_of(self.pci_device())) };
        if group.is_null() {
            return None;
        }
        // SAFETY: `group` is a valid group on which `iommu_group_get` took a reference, which
        // is released right after reading its id.
        let id = unsafe {
            let id = bindings::iommu_group_id(group);
            bindings::iommu_group_put(group);
            id
        };
        Some(id)
    }

    /// The bridge directly upstream, as `pci_upstream_bridge()` computes it.
    fn upstream_bridge(&self) -> Option<&pci::Device> {
        let this = self.physfn();
        if this.on_root_bus() {
            return None;
        }
        // SAFETY: A non-root bus has a bridge, `self`, that outlives the functions below it.
        let bridge = unsafe { (*bus_raw_of(this)).self_ };
        // SAFETY: See above.
        NonNull::new(bridge).map(|b| unsafe { device_from_raw(b.as_ptr()) })
    }

    /// The size of the function's config space: 256 bytes, or 4096 with extended config.
    fn cfg_size(&self) -> u32 {
        // SAFETY: Valid by the type invariant; set at enumeration.
        unsafe { (*raw_of(self.pci_device())).cfg_size as u32 }
    }

    /// The offset of the MSI-X capability, if the function has one.
    fn msix_cap(&self) -> Option<u8> {
        // SAFETY: Valid by the type invariant; set at enumeration.
        let cap = unsafe { (*raw_of(self.pci_device())).msix_cap };
        (cap != 0).then_some(cap)
    }

    /// The platform's copy of the function's ROM (address, length), if the firmware provided
    /// one and the ROM BAR is not used.
    fn platform_rom(&self) -> Option<(u64, usize)> {
        // SAFETY: Valid by the type invariant; set at enumeration.
        let (rom, len) = unsafe {
            (
                (*raw_of(self.pci_device())).rom,
                (*raw_of(self.pci_device())).romlen,
            )
        };
        (rom != 0 && len != 0).then_some((rom, len))
    }

    /// Whether the function is in D3hot or D3cold, where its memory does not answer.
    fn in_d3(&self) -> bool {
        // SAFETY: Valid by the type invariant; a racy read is what the PCI core's own
        // callers do too (the state changes only under the driver's control).
        let state = unsafe { (*raw_of(self.pci_device())).current_state };
        state >= vfio::VFIO_PCI_RS_PCI_D3HOT
    }

    /// Whether the function ignores the command register's memory bit (some VFs).
    fn has_no_command_memory(&self) -> bool {
        // SAFETY: Valid by the type invariant; set at enumeration.
        unsafe { bindings::pci_dev::no_command_memory_raw(raw_of(self.pci_device())) != 0 }
    }

    /// Whether the platform forbids CPU mappings of the function's BARs.
    fn has_non_mappable_bars(&self) -> bool {
        // SAFETY: Valid by the type invariant; set at enumeration.
        unsafe { bindings::pci_dev::non_mappable_bars_raw(raw_of(self.pci_device())) != 0 }
    }

    /// Resource `index` (0-5 the BARs, [`regs::PCI_ROM_RESOURCE`] the ROM) as the PCI core
    /// assigned it; an unassigned or out-of-range one is empty. Resources are assigned before a
    /// driver binds and do not move while one is bound.
    fn resource(&self, index: usize) -> PciResource {
        let raw = raw_of(self.pci_device());
        // SAFETY: Valid by the type invariant; the resource array is part of the function.
        // Only the three fields are read, through a raw place: the PCI core writes others
        // (the resource tree links) under `resource_lock` while we look.
        let (start, end, flags) = unsafe {
            if index >= array_len(&raw const (*raw).resource) {
                return PciResource::default();
            }
            let res = &raw const (*raw).resource[index];
            ((*res).start, (*res).end, (*res).flags)
        };
        // As `pci_resource_len`: an unassigned resource (end 0) has no length.
        let len = if end == 0 {
            0
        } else {
            end.wrapping_sub(start).wrapping_add(1)
        };
        PciResource {
            start,
            len,
            flags: flags as u64,
        }
    }

    /// Calls `f` on every function a reset of this one touches: the functions in its slot when
    /// `slot`, else every function on its bus and the buses below. Stops at the first error.
    /// The functions are lent for inspection only: they may belong to other drivers. `f` runs
    /// with the PCI bus semaphore held for reading: it must not add or remove functions (for
    /// example enable or disable SR-IOV), which takes it for writing.
    // Generic over `f`, so that each caller's closure inlines into the walk's callback (a
    // `dyn` closure was a second indirect call per function).
    fn for_each_in_reset_scope<F: FnMut(&pci::Device) -> Result>(
        &self,
        slot: bool,
        f: F,
    ) -> Result {
        struct Walk<'a, F> {
            scope: &'a pci::Device,
            slot: bool,
            f: F,
            result: Result,
        }

        /// The `pci_walk_bus()` callback.
        ///
        /// # Safety
        ///
        /// `pdev` must be a function on the walked bus, kept valid by the walk for the call,
        /// and `data` the `Walk<F>` the walk was started with, not otherwise borrowed.
        unsafe extern "C" fn visit<F: FnMut(&pci::Device) -> Result>(
            pdev: *mut bindings::pci_dev,
            data: *mut c_void,
        ) -> c_int {
            // SAFETY: `data` is the `Walk<F>` below, alive and exclusively ours during the walk.
            let walk = unsafe { &mut *data.cast::<Walk<'_, F>>() };
            // SAFETY: `pci_walk_bus` holds the bus semaphore, so `pdev` stays valid during the
            // callback.
            let pdev = unsafe { device_from_raw(pdev) };
            if !walk.slot || is_below_slot_of(pdev, walk.scope) {
                walk.result = (walk.f)(pdev);
            }
            // Non-zero stops the walk.
            c_int::from(walk.result.is_err())
        }

        let scope = self.pci_device();
        let mut walk = Walk {
            scope,
            slot,
            f,
            result: Ok(()),
        };
        // SAFETY: The bus is valid while `self` is; `walk` outlives the call, and `visit::<F>`
        // is the callback for a `Walk<F>`.
        unsafe {
            bindings::pci_walk_bus(
                bus_raw_of(self.pci_device()),
                Some(visit::<F>),
                (&raw mut walk).cast(),
            )
        };
        walk.result
    }
}

impl PciDeviceExt for pci::Device {
    fn pci_device(&self) -> &pci::Device {
        self
    }

    fn as_device(&self) -> &device::Device {
        self.as_ref()
    }
}

/// Takes `pdev`'s device and config-access locks, if uncontended.
fn try_lock(pdev: &pci::Device) -> Option<PciDeviceLock<'_>> {
    // SAFETY: `pdev` is valid by the type invariant of `pci::Device`.
    if unsafe { bindings::pci_dev_trylock(raw_of(pdev)) } == 0 {
        return None;
    }
    // INVARIANT: The lock was just taken by the current task.
    Some(PciDeviceLock(pdev, kernel::types::NotThreadSafe))
}

/// Whether `pdev` is in, or below a bridge in, the slot of `scope`.
fn is_below_slot_of(pdev: &pci::Device, scope: &pci::Device) -> bool {
    let slot = slot_raw_of(scope);
    if slot.is_null() {
        return false;
    }
    // SAFETY: `slot` is valid while `scope` is.
    let slot_bus = unsafe { (*slot).bus };
    let mut cur = Some(pdev);
    while let Some(pdev) = cur {
        if bus_raw_of(pdev) == slot_bus {
            return slot_raw_of(pdev) == slot;
        }
        // SAFETY: The bus of a valid function is valid; its bridge (`self_`) outlives it.
        let bridge = unsafe { (*bus_raw_of(pdev)).self_ };
        // SAFETY: As above, the bridge is valid during the walk.
        cur = NonNull::new(bridge).map(|b| unsafe { device_from_raw(b.as_ptr()) });
    }
    false
}

/// A PCI hotplug slot (`struct pci_slot`), borrowed from a function in it: compared and used
/// as a key by identity, never dereferenced outside this layer.
///
/// # Invariants
///
/// `self.0` points to a valid `pci_slot` that stays valid for `'a`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotRef<'a>(NonNull<bindings::pci_slot>, PhantomData<&'a pci::Device>);

impl SlotRef<'_> {
    /// The raw `struct pci_slot`, for the calls of this layer.
    pub(in crate::kernel_ext) fn as_raw(self) -> *mut bindings::pci_slot {
        self.0.as_ptr()
    }
}

/// A PCI bus (`struct pci_bus`), borrowed from a function on it: compared and used as a key by
/// identity, never dereferenced outside this layer.
///
/// # Invariants
///
/// `self.0` points to a valid `pci_bus` that stays valid for `'a`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BusRef<'a>(NonNull<bindings::pci_bus>, PhantomData<&'a pci::Device>);

impl BusRef<'_> {
    /// The raw `struct pci_bus`, for the calls of this layer.
    pub(in crate::kernel_ext) fn as_raw(self) -> *mut bindings::pci_bus {
        self.0.as_ptr()
    }
}

/// A counted reference to a PCI function this driver was probed with, and the operations
/// that change it.
///
/// # Invariants
///
/// The function was handed to this driver's probe (made only from a `pci::Device<Core>`).
#[derive(Clone)]
pub(crate) struct OwnedDevice(ARef<pci::Device>);

impl Deref for OwnedDevice {
    type Target = pci::Device;

    fn deref(&self) -> &pci::Device {
        &self.0
    }
}

impl OwnedDevice {
    /// Takes a reference to the function being probed.
    pub(crate) fn new(pdev: &pci::Device<device::Core<'_>>) -> Self {
        let pdev: &pci::Device = pdev;
        // INVARIANT: `pdev` is the function of a probe.
        Self(pdev.into())
    }

    /// The interrupt line the function's INTx is routed to, if it has one (not 0, not
    /// `IRQ_NOTCONNECTED`).
    pub(crate) fn intx_line(&self) -> Option<IrqLine> {
        // SAFETY: Valid by the type invariant; `irq` is set at enumeration.
        let irq = unsafe { (*raw_of(self)).irq };
        (irq != 0 && irq != bindings::IRQ_NOTCONNECTED).then(|| IrqLine::intx(irq))
    }

    /// Takes the function's device and config-access locks, if uncontended.
    pub(crate) fn try_lock(&self) -> Option<PciDeviceLock<'_>> {
        try_lock(self)
    }

    /// Takes the device lock of the bridge directly upstream, for a reset of this function
    /// alone that must not race with one of the bridge: `Ok(None)` when there is no bridge,
    /// `EBUSY` when its lock is contended. The bridge belongs to another driver (the PCIe port
    /// driver); it is only locked, never changed.
    pub(crate) fn try_lock_upstream_bridge(&self) -> Result<Option<PciDeviceLock<'_>>> {
        match self.upstream_bridge() {
            None => Ok(None),
            Some(bridge) => try_lock(bridge).map(Some).ok_or(EBUSY),
        }
    }

    /// Enables I/O and memory decoding (`pci_enable_device`).
    pub(crate) fn enable(&self) -> Result {
        // SAFETY: Valid by the type invariant of `pci::Device`.
        to_result(unsafe { bindings::pci_enable_device(raw_of(self.pci_device())) })
    }

    /// Disables the function (`pci_disable_device`); pairs with a successful [`Self::enable`].
    pub(crate) fn disable(&self) {
        // SAFETY: Valid by the type invariant of `pci::Device`.
        unsafe { bindings::pci_disable_device(raw_of(self.pci_device())) }
    }

    /// Stops the function from mastering the bus.
    pub(crate) fn clear_master(&self) {
        // SAFETY: Valid by the type invariant of `pci::Device`.
        unsafe { bindings::pci_clear_master(raw_of(self.pci_device())) }
    }

    /// Writes a 16-bit config register.
    pub(crate) fn write_config_word(&self, offset: u32, value: u16) {
        // SAFETY: Valid by the type invariant; config accesses are serialised by the PCI core.
        let _ = unsafe {
            bindings::pci_write_config_word(raw_of(self.pci_device()), offset as c_int, value)
        };
    }

    /// Reads a 16-bit config register (all ones if the read fails, as the hardware would
    /// answer for a missing function).
    pub(crate) fn read_config_word(&self, offset: u32) -> u16 {
        let mut value = u16::MAX;
        // SAFETY: Valid by the type invariant; `value` is a valid output location.
        let _ = unsafe {
            bindings::pci_read_config_word(raw_of(self.pci_device()), offset as c_int, &mut value)
        };
        value
    }

    /// Reads a 32-bit config register (all ones if the read fails).
    pub(crate) fn read_config_dword(&self, offset: u32) -> u32 {
        let mut value = u32::MAX;
        let pdev = raw_of(self.pci_device());
        // SAFETY: Valid by the type invariant; `value` is a valid output location.
        let _ = unsafe { bindings::pci_read_config_dword(pdev, offset as c_int, &mut value) };
        value
    }

    /// Whether the ROM BAR holds a valid ROM image (maps and unmaps it; memory decode must
    /// be on).
    pub(crate) fn rom_has_image(&self) -> bool {
        self.map_rom().is_ok()
    }

    /// Runs `f` with the function's memory decoding on (for accesses to a BAR or the ROM
    /// while user space has decoding off), then writes the command register back as it was,
    /// as vfio-pci's `vfio_pci_memory_lock_and_enable()` and `_unlock_and_restore()` do.
    pub(crate) fn with_memory_decode<R>(&self, f: impl FnOnce() -> R) -> R {
        let cmd = self.read_config_word(regs::PCI_COMMAND);
        let memory = regs::PCI_COMMAND_MEMORY as u16;
        if cmd & memory == 0 {
            self.write_config_word(regs::PCI_COMMAND, cmd | memory);
        }
        let result = f();
        self.write_config_word(regs::PCI_COMMAND, cmd);
        result
    }

    /// Enables `count` SR-IOV virtual functions on this PF (`pci_enable_sriov`); the PCI core
    /// adds them to the bus before it returns.
    pub(crate) fn enable_sriov(&self, count: i32) -> Result {
        // SAFETY: Valid by the type invariant of `pci::Device`.
        to_result(unsafe { bindings::pci_enable_sriov(raw_of(self.pci_device()), count) })
    }

    /// Removes every virtual function of this PF and disables SR-IOV (`pci_disable_sriov`);
    /// each VF is unbound from its driver first.
    pub(crate) fn disable_sriov(&self) {
        // SAFETY: Valid by the type invariant of `pci::Device`.
        unsafe { bindings::pci_disable_sriov(raw_of(self.pci_device())) }
    }

    /// Resets the function alone with the best method it supports, unless its device lock is
    /// contended (`EAGAIN`) or it has none (`ENOTTY`).
    pub(crate) fn try_reset_function(&self) -> Result {
        // SAFETY: Valid by the type invariant of `pci::Device`.
        to_result(unsafe { bindings::pci_try_reset_function(raw_of(self.pci_device())) })
    }

    /// Resets the function while its device lock is held (no state save/restore); `EINVAL`
    /// if `locked` is another function's lock.
    pub(crate) fn reset_function_locked(&self, locked: &PciDeviceLock<'_>) -> Result {
        if !core::ptr::eq(locked.0, &**self) {
            return Err(EINVAL);
        }
        // SAFETY: Valid by the type invariant; the guard proves this function's device lock
        // is held.
        to_result(unsafe { bindings::__pci_reset_function_locked(raw_of(self.pci_device())) })
    }

    /// Resets the slot or bus the function is on (`pci_reset_bus`), saving and restoring the
    /// state of every function it touches.
    pub(crate) fn reset_bus(&self) -> Result {
        // SAFETY: Valid by the type invariant of `pci::Device`.
        to_result(unsafe { bindings::pci_reset_bus(raw_of(self.pci_device())) })
    }

    /// Saves the config space and returns a copy the function can be restored from later.
    pub(crate) fn save_state(&self) -> Option<SavedState> {
        // SAFETY: Valid by the type invariant of `pci::Device`.
        unsafe { bindings::pci_save_state(raw_of(self.pci_device())) };
        // SAFETY: Valid by the type invariant and its state was just saved.
        let saved = unsafe { bindings::pci_store_saved_state(raw_of(self.pci_device())) };
        // INVARIANT: A non-null result is a fresh allocation that we now own.
        NonNull::new(saved).map(SavedState)
    }

    /// Makes `saved` the state the next [`Self::restore_state`] writes back; consumes it.
    pub(crate) fn load_saved_state(&self, saved: Option<SavedState>) -> Result {
        let mut raw = saved.map_or(core::ptr::null_mut(), SavedState::into_raw);
        // SAFETY: Valid by the type invariant; `raw` is null or an allocation from
        // `pci_store_saved_state`, which this call consumes and frees.
        to_result(unsafe {
            bindings::pci_load_and_free_saved_state(raw_of(self.pci_device()), &mut raw)
        })
    }

    /// Saves the live config state as the state to restore.
    pub(crate) fn resave_state(&self) {
        // SAFETY: Valid by the type invariant of `pci::Device`.
        unsafe { bindings::pci_save_state(raw_of(self.pci_device())) };
    }

    /// Writes the saved config state back into the function.
    pub(crate) fn restore_state(&self) {
        // SAFETY: Valid by the type invariant of `pci::Device`.
        unsafe { bindings::pci_restore_state(raw_of(self.pci_device())) };
    }
}

/// The PCI driver a function is bound to: compared by identity, named in messages.
///
/// # Invariants
///
/// `self.0` points to a registered `pci_driver` that stays registered for `'a`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct PciDriverRef<'a>(NonNull<bindings::pci_driver>, PhantomData<&'a ()>);

impl PciDriverRef<'_> {
    /// The driver's name.
    pub(crate) fn name(&self) -> &CStr {
        // SAFETY: Valid by the type invariant; a driver's name is a NUL-terminated string
        // that lives as long as the driver.
        unsafe { CStr::from_char_ptr((*self.0.as_ptr()).name) }
    }
}

/// What [`PciDeviceExt::current_driver`] found.
pub(crate) enum CurrentDriver {
    /// The function is bound to no driver.
    None,
    /// The function is bound to the driver of this name.
    Bound(DriverName),
    /// The function's device lock was contended (being bound, unbound or reset): unknown.
    Busy,
}

/// The longest driver name kept by [`DriverName`], in bytes; longer ones are cut.
const DRIVER_NAME_LEN: usize = 47;

/// A copy of a PCI driver's name, NUL-terminated, cut to [`DRIVER_NAME_LEN`] bytes.
pub(crate) struct DriverName {
    bytes: [u8; DRIVER_NAME_LEN + 1],
    len: usize,
}

impl DriverName {
    fn copy(name: &CStr) -> Self {
        let src = name.to_bytes();
        let len = src.len().min(DRIVER_NAME_LEN);
        let mut bytes = [0u8; DRIVER_NAME_LEN + 1];
        bytes[..len].copy_from_slice(&src[..len]);
        Self { bytes, len }
    }

    /// The name, NUL-terminated, for the C calls of this layer.
    pub(in crate::kernel_ext) fn as_char_ptr(&self) -> *const kernel::ffi::c_char {
        self.bytes.as_ptr().cast()
    }
}

impl core::fmt::Display for DriverName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Driver names are ASCII; anything else is shown as "?".
        f.write_str(core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?"))
    }
}

/// Proof that a function's device lock and config-access lock are held (`pci_dev_trylock`);
/// released on drop.
///
/// # Invariants
///
/// The device lock of the function `self.0` is held by the current task, which alone releases
/// it (the guard is not `Send`: a mutex is released by its owner).
pub(crate) struct PciDeviceLock<'a>(&'a pci::Device, kernel::types::NotThreadSafe);

impl Drop for PciDeviceLock<'_> {
    fn drop(&mut self) {
        // SAFETY: The lock was taken by `PciDeviceExt::try_lock`.
        unsafe { bindings::pci_dev_unlock(raw_of(self.0)) };
    }
}

/// A copy of a function's config state (taken at open, and on the way into D3hot).
///
/// # Invariants
///
/// `self.0` is an allocation returned by `pci_store_saved_state`, owned by this object.
pub(crate) struct SavedState(NonNull<bindings::pci_saved_state>);

// SAFETY: The saved state is a plain heap buffer with no thread affinity.
unsafe impl Send for SavedState {}

// SAFETY: No method takes `&self`: a shared reference gives no access to the buffer, so
// sharing one between threads cannot race.
unsafe impl Sync for SavedState {}

impl SavedState {
    fn into_raw(self) -> *mut bindings::pci_saved_state {
        let raw = self.0.as_ptr();
        core::mem::forget(self);
        raw
    }
}

impl Drop for SavedState {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own this allocation from `pci_store_saved_state`.
        unsafe { bindings::kfree(self.0.as_ptr().cast()) };
    }
}
