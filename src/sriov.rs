// SPDX-License-Identifier: GPL-2.0

//! SR-IOV as vfio-pci does it: a PF bound to this driver creates and removes its virtual
//! functions through sysfs (`sriov_numvfs`, the PCI driver's `sriov_configure`), the new VFs
//! are steered to this driver, and they share the PF's VF token (see [`crate::vf_token`]).
//!
//! - Enabling VFs is opt-in, as in vfio-pci: the `enable_sriov` module parameter (off by
//!   default, writable at run time; see [`crate::params`]) must be set, or `sriov_configure`
//!   fails with `ENOENT` — disabling too. A PF being unbound always disables its VFs first.
//! - The PCI core calls `sriov_configure` with the PF's device lock held and only when the
//!   number of VFs changes from or to zero. Before the VFs are created the PF joins the list
//!   of PFs whose SR-IOV this driver enabled ([`SRIOV_PFS`], vfio-pci's `sriov_pfs`), is
//!   brought to D0 and marked in its memory gate: while it has VFs, user space cannot move it
//!   out of D0. It leaves the list once its VFs are gone (or failed to appear).
//! - A VF added to the PCI bus whose PF is on the list gets `driver_override` set to this
//!   driver, so it binds here and nowhere else by default ([`VfNotifier`], vfio-pci's bus
//!   notifier); binding one to another driver anyway is logged as a warning.
//! - A VF bound to this driver looks its PF up on the list at bind: found, it shares the PF's
//!   token; not found (the PF is unbound, or bound to another driver — the C vfio-pci keeps
//!   its own list, so mixed bindings see each other as foreign), it has no token.
//!
//! The list holds a reference to each PF and to its token. Lock order: the list's lock is a
//! leaf, never held across a call into the PCI core.

#![allow(unsafe_code)] // Transitional: this file still calls C directly.

use crate::{
    config,
    device::VfioPciDevice,
    kernel_ext::pci::{OwnedDevice, PciDeviceExt},
    kernel_ext::vfio::VfioDevice,
    pci_driver::DRIVER_NAME,
    vf_token::VfToken,
};
use kernel::{
    bindings,
    error::to_result,
    ffi::{c_int, c_ulong, c_void},
    prelude::*,
    sync::Arc,
    types::Opaque,
};

/// A PF whose SR-IOV this driver enabled, and its token.
struct SriovPf {
    pf: OwnedDevice,
    token: Arc<VfToken>,
}

kernel::sync::global_lock! {
    // SAFETY: Initialised by `init`, which the module calls before it registers anything that
    // could use the lock.
    unsafe(uninit) static SRIOV_PFS: Mutex<KVec<SriovPf>> = KVec::new();
}

/// Sets up the list of SR-IOV PFs.
///
/// # Safety
///
/// To be called once, at module load, before the PCI driver and the bus notifier register.
pub(crate) unsafe fn init() {
    // SAFETY: Called once, before any other use (the function's safety requirement).
    unsafe { SRIOV_PFS.init() };
}

/// The token of `pf` if this driver enabled its SR-IOV (it is on the list).
pub(crate) fn token_of_pf(pf: &kernel::pci::Device) -> Option<Arc<VfToken>> {
    SRIOV_PFS
        .lock()
        .iter()
        .find(|entry| core::ptr::eq::<kernel::pci::Device>(&*entry.pf, pf))
        .map(|entry| entry.token.clone())
}

/// `sriov_configure`: enables `count` VFs on the PF `dev` (returning how many), or disables
/// them when `count` is 0. The caller has checked `enable_sriov` and holds the PF's device
/// lock.
pub(crate) fn configure(dev: &VfioDevice<VfioPciDevice>, count: i32) -> Result<i32> {
    if count == 0 {
        disable(dev);
        return Ok(0);
    }
    let pdev: &OwnedDevice = dev.pdev();
    // The PCI core offers this callback only for PFs, which all have a token.
    let token = dev.token_role().pf_token().ok_or(EINVAL)?.clone();
    {
        let mut pfs = SRIOV_PFS.lock();
        // Enabled once, until disabled again.
        if pfs.iter().any(|entry| entry.pf.as_raw() == pdev.as_raw()) {
            return Err(EINVAL);
        }
        pfs.push(
            SriovPf {
                pf: pdev.clone(),
                token,
            },
            GFP_KERNEL,
        )?;
    }
    // A PF in a low power state would take its VFs with it: bring it to D0 first, and keep
    // it there while it has VFs.
    config::wake_to_d0(dev).set_sriov_active(true);
    if let Err(e) = pdev.enable_sriov(count) {
        forget(dev);
        return Err(e);
    }
    Ok(count)
}

/// Removes the VFs of the PF `dev`, if it has any, and takes it off the list. Called with the
/// PF's device lock held: from `sriov_configure`, and when the PF is unbound.
///
/// As in vfio-pci, an unbind through sysfs `unbind` or driver unregistration reaches here
/// without `pci_rescan_remove_lock`, which 7.2's `pci_stop_and_remove_bus_device()` asserts
/// (a lockdep warning, for vfio-pci too); it cannot be taken here, since a removal (sysfs
/// `remove`, hot-unplug) calls the remove callback with it already held.
pub(crate) fn disable(dev: &VfioDevice<VfioPciDevice>) {
    if dev.pdev().num_vfs() != 0 {
        dev.pdev().disable_sriov();
    }
    forget(dev);
}

/// Takes the PF `dev` off the list and lets it leave D0 again.
fn forget(dev: &VfioDevice<VfioPciDevice>) {
    crate::memory::lock(dev).set_sriov_active(false);
    let mut pfs = SRIOV_PFS.lock();
    let at = pfs
        .iter()
        .position(|entry| entry.pf.as_raw() == dev.pdev().as_raw());
    let entry = at.and_then(|i| pfs.remove(i).ok());
    // The entry goes after the lock is released: it may hold the last reference to the PF.
    drop(pfs);
    drop(entry);
}

/// The PCI bus notifier that steers the VFs of this driver's PFs to this driver, as
/// vfio-pci's does for its own.
///
/// # Invariants
///
/// `nb` is registered on the PCI bus for as long as the value lives.
#[pin_data(PinnedDrop)]
pub(crate) struct VfNotifier {
    #[pin]
    nb: Opaque<bindings::notifier_block>,
}

// SAFETY: Only the bus notifier chain touches the block after registration, under its own
// lock; this value only unregisters it.
unsafe impl Sync for VfNotifier {}
// SAFETY: As above; the block is not tied to a thread.
unsafe impl Send for VfNotifier {}

impl VfNotifier {
    /// Registers the notifier on the PCI bus.
    pub(crate) fn register() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            nb <- Opaque::try_ffi_init(|nb: *mut bindings::notifier_block| {
                // SAFETY: `nb` is valid for writes and pinned: it stays where it is until
                // `drop` unregisters it.
                unsafe {
                    nb.write(bindings::notifier_block {
                        notifier_call: Some(notify),
                        next: core::ptr::null_mut(),
                        priority: 0,
                    });
                    to_result(bindings::bus_register_notifier(
                        &raw const bindings::pci_bus_type,
                        nb,
                    ))
                }
            }),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for VfNotifier {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Registered on the PCI bus by the type invariant; after this call the chain
        // no longer calls it.
        unsafe {
            bindings::bus_unregister_notifier(&raw const bindings::pci_bus_type, self.nb.get())
        };
    }
}

unsafe extern "C" fn notify(
    _nb: *mut bindings::notifier_block,
    action: c_ulong,
    data: *mut c_void,
) -> c_int {
    // SAFETY: The PCI bus notifies with the `struct device` of one of its `pci_dev`s, valid
    // for the call.
    let pdev = unsafe { crate::kernel_ext::pci::device_from_device_raw(data.cast()) };
    if !pdev.is_virtfn() {
        return bindings::NOTIFY_DONE as c_int;
    }
    let pf = pdev.physfn();
    if token_of_pf(pf).is_none() {
        return bindings::NOTIFY_DONE as c_int;
    }
    match action as u32 {
        bindings::bus_notifier_event_BUS_NOTIFY_ADD_DEVICE => {
            dev_info!(
                pf.as_device(),
                "Captured SR-IOV VF {} driver_override\n",
                pdev.as_device().name()
            );
            if let Err(e) = crate::kernel_ext::pci::set_driver_override(pdev, DRIVER_NAME) {
                dev_warn!(
                    pf.as_device(),
                    "Cannot set driver_override of VF {}: {:?}\n",
                    pdev.as_device().name(),
                    e
                );
            }
        }
        bindings::bus_notifier_event_BUS_NOTIFY_BOUND_DRIVER => {
            // SAFETY: The VF's device lock is held while its binding is notified. Its PF is on
            // the list, so it is bound to this driver, and it cannot be unbound before this VF
            // is removed, which waits for the VF's device lock.
            let (vf_driver, pf_driver) = unsafe { (pdev.driver(), pf.driver()) };
            if let (Some(vf_driver), Some(pf_driver)) = (vf_driver, pf_driver) {
                if vf_driver != pf_driver {
                    dev_warn!(
                        pf.as_device(),
                        "VF {} bound to driver {} while PF bound to driver {}\n",
                        pdev.as_device().name(),
                        vf_driver.name(),
                        pf_driver.name()
                    );
                }
            }
        }
        _ => {}
    }
    bindings::NOTIFY_DONE as c_int
}
