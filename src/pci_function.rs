// SPDX-License-Identifier: GPL-2.0

//! One PCI function, as the PCI core's `struct pci_dev`, and the PCI core operations the driver
//! performs on it.
//!
//! The kernel crate's `pci::Device` covers probing and BARs; handing a function to user space
//! needs more of the PCI core (enable without claiming resources, function and bus resets,
//! saved config state, device locks, the reset topology), wrapped here so the rest of the crate
//! never touches a raw `struct pci_dev`. Owners hold an `ARef<PciFunction>`; a walk of a bus
//! lends `&PciFunction` for the duration of a callback.

use crate::bindings as vfio;
use core::{
    marker::PhantomData,
    ptr::{addr_of_mut, NonNull},
};
use kernel::{
    bindings, device,
    error::to_result,
    ffi::{c_int, c_void},
    prelude::*,
    sync::aref::AlwaysRefCounted,
    types::Opaque,
};

/// A `struct pci_dev`.
///
/// # Invariants
///
/// A `&PciFunction` always refers to a valid `struct pci_dev` that stays valid for the
/// reference's lifetime.
#[repr(transparent)]
pub(crate) struct PciFunction(Opaque<bindings::pci_dev>);

// SAFETY: A `struct pci_dev` is reference counted and can be released from any thread; the PCI
// core serialises the operations this type exposes.
unsafe impl Send for PciFunction {}
// SAFETY: See `Send`; every method takes `&self` and is safe to call concurrently.
unsafe impl Sync for PciFunction {}

// SAFETY: `pci_dev_get`/`pci_dev_put` manage the reference count of the embedded device.
unsafe impl AlwaysRefCounted for PciFunction {
    fn inc_ref(&self) {
        // SAFETY: The shared reference proves the count is non-zero.
        unsafe { bindings::pci_dev_get(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller gives back a reference it owns.
        unsafe { bindings::pci_dev_put(obj.cast().as_ptr()) }
    }
}

/// Where a function sits: PCI segment, bus number and device/function number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PciAddress {
    pub(crate) segment: u16,
    pub(crate) bus: u8,
    pub(crate) devfn: u8,
}

impl PciFunction {
    /// Borrows the function `pdev` points to.
    ///
    /// # Safety
    ///
    /// `pdev` must point to a valid `struct pci_dev` that stays valid for `'a`.
    pub(crate) unsafe fn from_raw<'a>(pdev: *mut bindings::pci_dev) -> &'a Self {
        // SAFETY: `Self` is a transparent wrapper of `pci_dev`; validity is the caller's promise.
        unsafe { &*pdev.cast() }
    }

    /// Borrows the function whose embedded `struct device` is `dev`.
    ///
    /// # Safety
    ///
    /// `dev` must be the device of a valid `struct pci_dev` (a device on the PCI bus) that
    /// stays valid for `'a`.
    pub(crate) unsafe fn from_device_raw<'a>(dev: *mut bindings::device) -> &'a Self {
        // SAFETY: By the safety requirement `dev` is embedded in a `pci_dev` as its `dev`
        // field, so stepping back to the container stays inside that object.
        let pdev = unsafe { kernel::container_of!(dev, bindings::pci_dev, dev) };
        // SAFETY: `pdev` is a valid `pci_dev` for `'a` (see above).
        unsafe { Self::from_raw(pdev) }
    }

    /// The raw pointer, for calls into the C APIs that take a `struct pci_dev`.
    pub(crate) fn as_raw(&self) -> *mut bindings::pci_dev {
        self.0.get()
    }

    /// The function's generic device, for logging and for the VFIO core.
    pub(crate) fn as_device(&self) -> &device::Device {
        // SAFETY: The function is valid by the type invariant, so is its embedded device, for
        // as long as `self` is borrowed.
        unsafe { device::Device::from_raw(self.device_raw()) }
    }

    /// The embedded `struct device`.
    pub(crate) fn device_raw(&self) -> *mut bindings::device {
        // SAFETY: The function is valid by the type invariant.
        unsafe { addr_of_mut!((*self.as_raw()).dev) }
    }

    /// The header type, without the multi-function bit.
    pub(crate) fn header_type(&self) -> u8 {
        // SAFETY: Valid by the type invariant; `hdr_type` never changes after enumeration.
        unsafe { (*self.as_raw()).hdr_type }
    }

    /// Whether this function is an SR-IOV virtual function.
    pub(crate) fn is_virtfn(&self) -> bool {
        // SAFETY: Valid by the type invariant; `is_virtfn` never changes after creation.
        unsafe { bindings::pci_dev::is_virtfn_raw(self.as_raw()) != 0 }
    }

    /// The number of SR-IOV virtual functions currently enabled on this function.
    pub(crate) fn num_vfs(&self) -> i32 {
        // SAFETY: Valid by the type invariant.
        unsafe { bindings::pci_num_vf(self.as_raw()) }
    }

    /// The physical function of a VF (`pci_physfn()`); any other function is its own.
    pub(crate) fn physfn(&self) -> &PciFunction {
        if !self.is_virtfn() {
            return self;
        }
        // SAFETY: Valid by the type invariant; a VF's `physfn` is set at creation and its PF
        // outlives it (the PCI core removes every VF before its PF, and each VF holds a
        // reference to it).
        unsafe { PciFunction::from_raw((*self.as_raw()).__bindgen_anon_1.physfn) }
    }

    /// Enables `count` SR-IOV virtual functions on this PF (`pci_enable_sriov`); the PCI core
    /// adds them to the bus before it returns.
    pub(crate) fn enable_sriov(&self, count: i32) -> Result {
        // SAFETY: Valid by the type invariant.
        to_result(unsafe { bindings::pci_enable_sriov(self.as_raw(), count) })
    }

    /// Removes every virtual function of this PF and disables SR-IOV (`pci_disable_sriov`);
    /// each VF is unbound from its driver first.
    pub(crate) fn disable_sriov(&self) {
        // SAFETY: Valid by the type invariant.
        unsafe { bindings::pci_disable_sriov(self.as_raw()) }
    }

    /// Makes `driver` the only driver that may bind the function (its `driver_override`).
    pub(crate) fn set_driver_override(&self, driver: &CStr) -> Result {
        let name = driver.to_bytes();
        // SAFETY: The embedded device is valid by the type invariant; the core copies the
        // `name.len()` bytes at `name` (no NUL needed) under the override's own lock.
        to_result(unsafe {
            bindings::__device_set_driver_override(
                self.device_raw(),
                name.as_ptr().cast(),
                name.len(),
            )
        })
    }

    /// The PCI driver the function is bound to, if any.
    ///
    /// # Safety
    ///
    /// The function must stay bound to that driver (or unbound) for `'a`: its device lock is
    /// held, or the caller otherwise keeps the driver from being unbound.
    pub(crate) unsafe fn driver<'a>(&'a self) -> Option<PciDriverRef<'a>> {
        // SAFETY: Valid by the type invariant.
        let drv = NonNull::new(unsafe { bindings::pci_dev_driver(self.as_raw()) })?;
        // INVARIANT: A driver is unregistered only after it is unbound from every function,
        // which the caller excludes for `'a`.
        Some(PciDriverRef(drv, PhantomData))
    }

    /// The bus the function sits on.
    fn bus_raw(&self) -> *mut bindings::pci_bus {
        // SAFETY: Valid by the type invariant; the PCI core sets `bus` before it publishes a
        // function and the bus outlives it.
        unsafe { (*self.as_raw()).bus }
    }

    /// The hotplug slot the function sits in, if the platform describes one.
    fn slot_raw(&self) -> *mut bindings::pci_slot {
        // SAFETY: Valid by the type invariant; a slot outlives the functions in it.
        unsafe { (*self.as_raw()).slot }
    }

    /// Whether the function sits on a root bus (no bridge above it to reset).
    pub(crate) fn on_root_bus(&self) -> bool {
        // SAFETY: The bus is valid while the function is.
        unsafe { (*self.bus_raw()).parent.is_null() }
    }

    /// The slot, when the platform can reset it alone (`pci_probe_reset_slot`).
    pub(crate) fn resettable_slot(&self) -> Option<NonNull<bindings::pci_slot>> {
        let slot = NonNull::new(self.slot_raw())?;
        // SAFETY: `slot` is the function's slot, valid while the function is.
        (unsafe { bindings::pci_probe_reset_slot(slot.as_ptr()) } == 0).then_some(slot)
    }

    /// The bus, when the bridge above it can reset it (`pci_probe_reset_bus`).
    pub(crate) fn resettable_bus(&self) -> Option<NonNull<bindings::pci_bus>> {
        let bus = NonNull::new(self.bus_raw())?;
        // SAFETY: `bus` is the function's bus, valid while the function is.
        (unsafe { bindings::pci_probe_reset_bus(bus.as_ptr()) } == 0).then_some(bus)
    }

    /// The bus, as a dev_set key source (whether or not it can be reset).
    pub(crate) fn bus(&self) -> NonNull<bindings::pci_bus> {
        // SAFETY: See `bus_raw`: never null for an enumerated function.
        unsafe { NonNull::new_unchecked(self.bus_raw()) }
    }

    /// Segment, bus number and devfn.
    pub(crate) fn address(&self) -> PciAddress {
        let bus = self.bus_raw();
        // SAFETY: The bus is valid while the function is.
        let segment = unsafe { vfio::vfio_pci_rs_pci_domain_nr(bus) };
        PciAddress {
            // Segments are 16 bits wide in the uAPI, as in the C driver.
            segment: segment as u16,
            // SAFETY: The bus is valid while the function is.
            bus: unsafe { (*bus).number },
            // SAFETY: Valid by the type invariant; `devfn` never changes.
            devfn: unsafe { (*self.as_raw()).devfn as u8 },
        }
    }

    /// The id of the IOMMU group the function is in, if any.
    pub(crate) fn iommu_group_id(&self) -> Option<i32> {
        // SAFETY: The embedded device is valid while the function is.
        let group = unsafe { bindings::iommu_group_get(self.device_raw()) };
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
    pub(crate) fn upstream_bridge(&self) -> Option<&PciFunction> {
        let this = self.physfn();
        if this.on_root_bus() {
            return None;
        }
        // SAFETY: A non-root bus has a bridge, `self`, that outlives the functions below it.
        let bridge = unsafe { (*this.bus_raw()).self_ };
        // SAFETY: See above.
        NonNull::new(bridge).map(|b| unsafe { PciFunction::from_raw(b.as_ptr()) })
    }

    /// Enables I/O and memory decoding (`pci_enable_device`).
    pub(crate) fn enable(&self) -> Result {
        // SAFETY: Valid by the type invariant.
        to_result(unsafe { bindings::pci_enable_device(self.as_raw()) })
    }

    /// Disables the function (`pci_disable_device`); pairs with a successful [`Self::enable`].
    pub(crate) fn disable(&self) {
        // SAFETY: Valid by the type invariant.
        unsafe { bindings::pci_disable_device(self.as_raw()) }
    }

    /// Stops the function from mastering the bus.
    pub(crate) fn clear_master(&self) {
        // SAFETY: Valid by the type invariant.
        unsafe { bindings::pci_clear_master(self.as_raw()) }
    }

    /// Brings the function to D0; failures are left for the next access to report, as in
    /// vfio-pci.
    pub(crate) fn set_power_d0(&self) {
        // SAFETY: Valid by the type invariant.
        let _ = unsafe { bindings::pci_set_power_state(self.as_raw(), vfio::VFIO_PCI_RS_PCI_D0) };
    }

    /// Writes a 16-bit config register.
    pub(crate) fn write_config_word(&self, offset: u32, value: u16) {
        // SAFETY: Valid by the type invariant; config accesses are serialised by the PCI core.
        let _ = unsafe { bindings::pci_write_config_word(self.as_raw(), offset as c_int, value) };
    }

    /// Reads a 16-bit config register (all ones if the read fails, as the hardware would
    /// answer for a missing function).
    pub(crate) fn read_config_word(&self, offset: u32) -> u16 {
        let mut value = u16::MAX;
        // SAFETY: Valid by the type invariant; `value` is a valid output location.
        let _ = unsafe { bindings::pci_read_config_word(self.as_raw(), offset as c_int, &mut value) };
        value
    }

    /// Reads a 32-bit config register (all ones if the read fails).
    pub(crate) fn read_config_dword(&self, offset: u32) -> u32 {
        let mut value = u32::MAX;
        let pdev = self.as_raw();
        // SAFETY: Valid by the type invariant; `value` is a valid output location.
        let _ = unsafe { bindings::pci_read_config_dword(pdev, offset as c_int, &mut value) };
        value
    }

    /// The size of the function's config space: 256 bytes, or 4096 with extended config.
    pub(crate) fn cfg_size(&self) -> u32 {
        // SAFETY: Valid by the type invariant; set at enumeration.
        unsafe { (*self.as_raw()).cfg_size as u32 }
    }

    /// The offset of the MSI-X capability, if the function has one.
    pub(crate) fn msix_cap(&self) -> Option<u8> {
        // SAFETY: Valid by the type invariant; set at enumeration.
        let cap = unsafe { (*self.as_raw()).msix_cap };
        (cap != 0).then_some(cap)
    }

    /// The platform's copy of the function's ROM (address, length), if the firmware provided
    /// one and the ROM BAR is not used.
    pub(crate) fn platform_rom(&self) -> Option<(u64, usize)> {
        // SAFETY: Valid by the type invariant; set at enumeration.
        let (rom, len) = unsafe { ((*self.as_raw()).rom, (*self.as_raw()).romlen) };
        (rom != 0 && len != 0).then_some((rom, len))
    }

    /// Whether the ROM BAR holds a valid ROM image (maps and unmaps it; memory decode must
    /// be on).
    pub(crate) fn rom_has_image(&self) -> bool {
        let mut size = 0usize;
        // SAFETY: Valid by the type invariant; `size` is a valid output location.
        let io = unsafe { bindings::pci_map_rom(self.as_raw(), &mut size) };
        if io.is_null() {
            return false;
        }
        // SAFETY: `io` was just returned by `pci_map_rom` for this function.
        unsafe { bindings::pci_unmap_rom(self.as_raw(), io) };
        true
    }

    /// Whether the function is in D3hot or D3cold, where its memory does not answer.
    pub(crate) fn in_d3(&self) -> bool {
        // SAFETY: Valid by the type invariant; a racy read is what the PCI core's own
        // callers do too (the state changes only under the driver's control).
        let state = unsafe { (*self.as_raw()).current_state };
        state >= crate::bindings::VFIO_PCI_RS_PCI_D3HOT
    }

    /// Whether the function is an SR-IOV physical function (has the SR-IOV capability).
    pub(crate) fn is_physfn(&self) -> bool {
        // SAFETY: Valid by the type invariant; set at enumeration.
        unsafe { bindings::pci_dev::is_physfn_raw(self.as_raw()) != 0 }
    }

    /// Whether the function ignores the command register's memory bit (some VFs).
    pub(crate) fn has_no_command_memory(&self) -> bool {
        // SAFETY: Valid by the type invariant; set at enumeration.
        unsafe { bindings::pci_dev::no_command_memory_raw(self.as_raw()) != 0 }
    }

    /// Whether the platform forbids CPU mappings of the function's BARs.
    pub(crate) fn has_non_mappable_bars(&self) -> bool {
        // SAFETY: Valid by the type invariant; set at enumeration.
        unsafe { bindings::pci_dev::non_mappable_bars_raw(self.as_raw()) != 0 }
    }

    /// Resets the function alone with the best method it supports, unless its device lock is
    /// contended (`EAGAIN`) or it has none (`ENOTTY`).
    pub(crate) fn try_reset_function(&self) -> Result {
        // SAFETY: Valid by the type invariant.
        to_result(unsafe { bindings::pci_try_reset_function(self.as_raw()) })
    }

    /// Resets the function while its device lock is held (no state save/restore).
    pub(crate) fn reset_function_locked(&self, _locked: &PciDeviceLock<'_>) -> Result {
        // SAFETY: Valid by the type invariant; the guard proves the device lock is held.
        to_result(unsafe { bindings::__pci_reset_function_locked(self.as_raw()) })
    }

    /// Resets the slot or bus the function is on (`pci_reset_bus`), saving and restoring the
    /// state of every function it touches.
    pub(crate) fn reset_bus(&self) -> Result {
        // SAFETY: Valid by the type invariant.
        to_result(unsafe { bindings::pci_reset_bus(self.as_raw()) })
    }

    /// Takes the function's device and config-access locks, if uncontended.
    pub(crate) fn try_lock(&self) -> Option<PciDeviceLock<'_>> {
        // SAFETY: Valid by the type invariant.
        // `then`, not `then_some`: the guard must only exist (and unlock on drop) if the lock
        // was taken.
        (unsafe { bindings::pci_dev_trylock(self.as_raw()) } != 0).then(|| PciDeviceLock(self))
    }

    /// Saves the config space and returns a copy the function can be restored from later.
    pub(crate) fn save_state(&self) -> Option<SavedState> {
        // SAFETY: Valid by the type invariant.
        unsafe { bindings::pci_save_state(self.as_raw()) };
        // SAFETY: Valid by the type invariant and its state was just saved.
        let saved = unsafe { bindings::pci_store_saved_state(self.as_raw()) };
        // INVARIANT: A non-null result is a fresh allocation that we now own.
        NonNull::new(saved).map(SavedState)
    }

    /// Makes `saved` the state the next [`Self::restore_state`] writes back; consumes it.
    pub(crate) fn load_saved_state(&self, saved: Option<SavedState>) -> Result {
        let mut raw = saved.map_or(core::ptr::null_mut(), SavedState::into_raw);
        // SAFETY: Valid by the type invariant; `raw` is null or an allocation from
        // `pci_store_saved_state`, which this call consumes and frees.
        to_result(unsafe { bindings::pci_load_and_free_saved_state(self.as_raw(), &mut raw) })
    }

    /// Saves the live config state as the state to restore.
    pub(crate) fn resave_state(&self) {
        // SAFETY: Valid by the type invariant.
        unsafe { bindings::pci_save_state(self.as_raw()) };
    }

    /// Writes the saved config state back into the function.
    pub(crate) fn restore_state(&self) {
        // SAFETY: Valid by the type invariant.
        unsafe { bindings::pci_restore_state(self.as_raw()) };
    }

    /// Calls `f` on every function a reset of this one touches: the functions in its slot when
    /// `slot`, else every function on its bus and the buses below. Stops at the first error.
    pub(crate) fn for_each_in_reset_scope(
        &self,
        slot: bool,
        f: &mut dyn FnMut(&PciFunction) -> Result,
    ) -> Result {
        struct Walk<'a> {
            scope: &'a PciFunction,
            slot: bool,
            f: &'a mut dyn FnMut(&PciFunction) -> Result,
            result: Result,
        }

        extern "C" fn visit(pdev: *mut bindings::pci_dev, data: *mut c_void) -> c_int {
            // SAFETY: `data` is the `Walk` below, alive and exclusively ours during the walk.
            let walk = unsafe { &mut *data.cast::<Walk<'_>>() };
            // SAFETY: `pci_walk_bus` holds the bus semaphore, so `pdev` stays valid during the
            // callback.
            let pdev = unsafe { PciFunction::from_raw(pdev) };
            if !walk.slot || pdev.is_below_slot_of(walk.scope) {
                walk.result = (walk.f)(pdev);
            }
            // Non-zero stops the walk.
            c_int::from(walk.result.is_err())
        }

        let mut walk = Walk {
            scope: self,
            slot,
            f,
            result: Ok(()),
        };
        // SAFETY: The bus is valid while `self` is; `walk` outlives the call.
        unsafe { bindings::pci_walk_bus(self.bus_raw(), Some(visit), (&raw mut walk).cast()) };
        walk.result
    }

    /// Whether `self` is in, or below a bridge in, the slot of `scope`.
    fn is_below_slot_of(&self, scope: &PciFunction) -> bool {
        let slot = scope.slot_raw();
        if slot.is_null() {
            return false;
        }
        // SAFETY: `slot` is valid while `scope` is.
        let slot_bus = unsafe { (*slot).bus };
        let mut cur = Some(self);
        while let Some(pdev) = cur {
            if pdev.bus_raw() == slot_bus {
                return pdev.slot_raw() == slot;
            }
            // SAFETY: The bus of a valid function is valid; its bridge (`self_`) outlives it.
            let bridge = unsafe { (*pdev.bus_raw()).self_ };
            // SAFETY: As above, the bridge is valid during the walk.
            cur = NonNull::new(bridge).map(|b| unsafe { PciFunction::from_raw(b.as_ptr()) });
        }
        false
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

/// Proof that a function's device lock and config-access lock are held (`pci_dev_trylock`);
/// released on drop.
pub(crate) struct PciDeviceLock<'a>(&'a PciFunction);

impl Drop for PciDeviceLock<'_> {
    fn drop(&mut self) {
        // SAFETY: The lock was taken by `PciFunction::try_lock`.
        unsafe { bindings::pci_dev_unlock(self.0.as_raw()) };
    }
}

/// A copy of a function's config state, taken when user space opened it.
///
/// # Invariants
///
/// `self.0` is an allocation returned by `pci_store_saved_state`, owned by this object.
pub(crate) struct SavedState(NonNull<bindings::pci_saved_state>);

// SAFETY: The saved state is a plain heap buffer with no thread affinity.
unsafe impl Send for SavedState {}

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
