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
//!   of PFs whose SR-IOV this driver enabled ([`static@SRIOV_PFS`], vfio-pci's `sriov_pfs`), is
//!   brought to D0 and marked in its memory gate: while it has VFs, user space cannot move it
//!   out of D0. It leaves the list once its VFs are gone (or failed to appear).
//! - A VF added to the PCI bus whose PF is on the list gets `driver_override` set to this
//!   driver, so it binds here and nowhere else by default (the PCI driver's
//!   [`crate::pci_driver::VfNotifier`], vfio-pci's bus notifier); binding one to another
//!   driver anyway is logged as a warning.
//! - A VF bound to this driver looks its PF up on the list at bind: found, it shares the PF's
//!   token; not found (the PF is unbound, or bound to another driver — the C vfio-pci keeps
//!   its own list, so mixed bindings see each other as foreign), it has no token.
//!
//! The list holds a reference to each PF and to its token. Lock order: the list's lock is a
//! leaf, never held across a call into the PCI core.

use crate::{
    kernel_ext::{
        lazy_lock::lazy_global_lock,
        pci::{
            OwnedDevice,
            PciDeviceExt, //
        },
        sync::RwSem, //
    },
    memory::{
        self,
        MemoryGate, //
    },
    vf_token::{
        TokenRole,
        VfToken, //
    }, //
};
use kernel::{
    prelude::*,
    sync::Arc, //
};

/// A PF whose SR-IOV this driver enabled, and its token.
struct SriovPf {
    pf: OwnedDevice,
    token: Arc<VfToken>,
}

lazy_global_lock! {
    /// The PFs whose SR-IOV this driver enabled (vfio-pci's `sriov_pfs`).
    static SRIOV_PFS: Mutex<KVec<SriovPf>> = KVec::new();
}

/// The token of `pf` if this driver enabled its SR-IOV (it is on the list).
pub(crate) fn token_of_pf(pf: &kernel::pci::Device) -> Option<Arc<VfToken>> {
    SRIOV_PFS
        .lock()
        .iter()
        .find(|entry| core::ptr::eq::<kernel::pci::Device>(&*entry.pf, pf))
        .map(|entry| entry.token.clone())
}

/// `sriov_configure`: enables `count` VFs on the PF `pdev` (returning how many), or disables
/// them when `count` is 0. `role` is the PF's part in the VF token protocol and `memory` its
/// memory gate. The caller has checked `enable_sriov` and holds
/// the PF's device lock.
pub(crate) fn configure(
    pdev: &OwnedDevice,
    role: &TokenRole,
    memory: &RwSem<MemoryGate>,
    count: i32,
) -> Result<i32> {
    if count == 0 {
        disable(pdev, memory);
        return Ok(0);
    }
    // The PCI core offers this callback only for PFs, which all have a token.
    let token = role.pf_token().ok_or(EINVAL)?.clone();
    {
        let mut pfs = SRIOV_PFS.lock();
        // Enabled once, until disabled again.
        if pfs
            .iter()
            .any(|entry| core::ptr::eq::<kernel::pci::Device>(&*entry.pf, &**pdev))
        {
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
    // A PF in a low power state would take its VFs with it: resume it and bring it to D0
    // first, and keep it there while it has VFs (a runtime-PM reference, dropped when they
    // go).
    if let Err(e) = pdev.runtime_resume_and_get() {
        forget(pdev, memory);
        return Err(e);
    }
    memory::wake_to_d0(memory, pdev).set_sriov_active(true);
    if let Err(e) = pdev.enable_sriov(count) {
        pdev.runtime_put();
        forget(pdev, memory);
        return Err(e);
    }
    Ok(count)
}

/// Removes the VFs of the PF `pdev` (whose memory gate is `memory`), if it has any, and takes it off the list. Called with the
/// PF's device lock held: from `sriov_configure`, and when the PF is unbound.
///
/// As in vfio-pci, an unbind through sysfs `unbind` or driver unregistration reaches here
/// without `pci_rescan_remove_lock`, which 7.2's `pci_stop_and_remove_bus_device()` asserts
/// (a lockdep warning, for vfio-pci too); it cannot be taken here, since a removal (sysfs
/// `remove`, hot-unplug) calls the remove callback with it already held.
pub(crate) fn disable(pdev: &OwnedDevice, memory: &RwSem<MemoryGate>) {
    if pdev.num_vfs() != 0 {
        pdev.disable_sriov();
        pdev.runtime_put();
    }
    forget(pdev, memory);
}

/// Takes the PF `pdev` off the list and lets it leave D0 again.
fn forget(pdev: &OwnedDevice, memory: &RwSem<MemoryGate>) {
    memory.write().set_sriov_active(false);
    let mut pfs = SRIOV_PFS.lock();
    let at = pfs
        .iter()
        .position(|entry| core::ptr::eq::<kernel::pci::Device>(&*entry.pf, &**pdev));
    let entry = at.and_then(|i| pfs.remove(i).ok());
    // The list's buffer goes with its last entry: the list is a static, never dropped, so a
    // buffer left at module unload would leak (kmemleak found one per load that had enabled
    // SR-IOV, 16 bytes each, on the kasan kernel).
    let emptied = pfs.is_empty().then(|| core::mem::take(&mut *pfs));
    // The entry goes after the lock is released: it may hold the last reference to the PF.
    drop(pfs);
    drop(entry);
    drop(emptied);
}
