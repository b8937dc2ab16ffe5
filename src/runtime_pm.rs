// SPDX-License-Identifier: GPL-2.0

//! Runtime power management, as vfio-pci does it.
//!
//! A bound function nobody has open is runtime-suspended (the PCI core saves its state and
//! puts it in D3hot), unless `disable_idle_d3` was set when it was bound. Whatever needs the
//! function awake holds a runtime-PM usage reference for as long as it needs it:
//!
//! - each open, from first open to last close ([`resume_for_open`], [`release_after_close`]);
//! - each ioctl (the VFIO core takes it, because the driver has runtime PM callbacks), each
//!   `read(2)`/`write(2)` ([`resume_for_access`]);
//! - a PF while it has VFs (see [`crate::sriov`]);
//! - every function of a dev_set while a hot reset or the reset of a dirty set runs
//!   ([`crate::hot_reset`]).
//!
//! `VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY*` give up the open's reference (the memory gate keeps
//! the fact, see [`crate::memory`]), so the function suspends when the ioctl ends; its BAR
//! mmaps fault with `SIGBUS` meanwhile. `LOW_POWER_EXIT`, the last close, or (with the
//! wakeup variant) any access that resumes it take the reference back; the wakeup eventfd is
//! signalled then.
//!
//! The PM core calls [`suspend`] before the PCI core moves the function to D3hot: the
//! function is first brought back to D0 (restoring the state a user's own D3hot entry saved),
//! and INTx in use is masked; [`resume`] undoes the masking after the PCI core brought it
//! back to D0.

use crate::{
    intrs::{
        self,
        IrqState, //
    },
    kernel_ext::{
        pci::{
            runtime_pm::RuntimeActive,
            OwnedDevice, //
        },
        print::dev_info_ratelimited,
        sync::RwSem, //
    },
    memory::{
        self,
        MemoryGate, //
    },
    params, //
};
use core::sync::atomic::{
    AtomicBool,
    Ordering, //
};
use kernel::{
    prelude::*,
    str::CString,
    sync::Mutex, //
};

/// The runtime-PM state of one bound function that is not the memory gate's.
pub(crate) struct RuntimePower {
    /// The function runtime-suspends while idle (`disable_idle_d3` was off when it was
    /// bound).
    idle_d3: bool,
    /// INTx was masked by [`suspend`], to unmask at [`resume`].
    intx_masked: AtomicBool,
}

impl RuntimePower {
    /// The state of a function being bound, latching `disable_idle_d3`.
    pub(crate) fn new() -> Self {
        Self {
            idle_d3: !params::disable_idle_d3(),
            intx_masked: AtomicBool::new(false),
        }
    }
}

/// The function was bound: runtime PM is allowed and, unless `disable_idle_d3`, the PCI
/// core's probe reference is dropped, so the idle function suspends.
pub(crate) fn bound(pdev: &OwnedDevice, power: &RuntimePower) {
    pdev.runtime_pm_allow();
    if power.idle_d3 {
        pdev.runtime_put();
    }
}

/// The function is being unbound: the reference [`bound`] dropped is taken back and runtime
/// PM forbidden again, as before the bind.
pub(crate) fn unbinding(pdev: &OwnedDevice, power: &RuntimePower) {
    if power.idle_d3 {
        pdev.runtime_get_noresume();
    }
    pdev.runtime_pm_forbid();
}

/// First open: resumes the function and holds it resumed until [`release_after_close`].
pub(crate) fn resume_for_open(pdev: &OwnedDevice, power: &RuntimePower) -> Result {
    if power.idle_d3 {
        pdev.runtime_resume_and_get()?;
    }
    Ok(())
}

/// Last close (or a failed open): drops the reference [`resume_for_open`] took.
pub(crate) fn release_after_close(pdev: &OwnedDevice, power: &RuntimePower) {
    if power.idle_d3 {
        pdev.runtime_put();
    }
}

/// Last close, first thing: takes the function out of the user's low power (taking back the
/// reference the entry gave up) and resumes it if it is suspended.
pub(crate) fn wake_for_close(pdev: &OwnedDevice, memory: &RwSem<MemoryGate>) {
    memory.write().exit_low_power(pdev);
    pdev.runtime_resume();
}

/// `read(2)`/`write(2)`: the function resumed for the access; `EIO` if it cannot be.
pub(crate) fn resume_for_access(pdev: &OwnedDevice) -> Result<RuntimeActive<'_>> {
    pdev.runtime_active().map_err(|e| {
        if let Ok(msg) = CString::try_from_fmt(fmt!("runtime resume failed {}", e.to_errno())) {
            dev_info_ratelimited(pdev, &msg);
        }
        EIO
    })
}

/// The PM core suspends the function: back to D0 first (the PCI core then saves the state
/// and moves it to D3hot), and INTx in use masked.
pub(crate) fn suspend(
    pdev: &OwnedDevice,
    power: &RuntimePower,
    memory: &RwSem<MemoryGate>,
    irqs: &Mutex<IrqState>,
) {
    drop(memory::wake_to_d0(memory, pdev));
    let masked = intrs::mask_intx_for_suspend(irqs);
    power.intx_masked.store(masked, Ordering::Relaxed);
}

/// The PM core resumed the function: the wakeup eventfd of a low power entry is signalled
/// (and the entry ends), and INTx masked by [`suspend`] unmasked.
pub(crate) fn resume(
    pdev: &OwnedDevice,
    power: &RuntimePower,
    memory: &RwSem<MemoryGate>,
    irqs: &Mutex<IrqState>,
) {
    memory.write().wake_from_low_power(pdev);
    if power.intx_masked.swap(false, Ordering::Relaxed) {
        intrs::unmask_intx_after_resume(irqs, pdev);
    }
}
