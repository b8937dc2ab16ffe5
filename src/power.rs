// SPDX-License-Identifier: GPL-2.0

//! The function's power state as the driver changes it: `pci_set_power_state()` wrapped the
//! way vfio-pci wraps it (`vfio_pci_set_power_state()`).
//!
//! A function without `No_Soft_Reset` in its PMCSR loses its config state on the way from
//! D3hot back to D0. So its state is saved on the way into D3hot and written back when it
//! returns to D0 through [`PmRestore::set_power_state`], whoever asks for D0: a PMCSR write,
//! `VFIO_DEVICE_RESET`, a hot reset, the last close, enabling SR-IOV. Every one of them goes
//! through here before anything that would bring the function to D0 behind the driver's back
//! (a reset does), so the state saved at D3hot entry is never lost.
//!
//! The saved state belongs to the bound function, not to one open: a close with the function
//! in D3hot consumes it on its way back to D0. It lives in the memory gate
//! ([`crate::memory::MemoryGate`]) and changes only with the gate held exclusive, as vfio-pci
//! keeps its `pm_save` under its `memory_lock`.

use crate::kernel_ext::pci::{
    config::{
        regs,
        PowerState, //
    },
    OwnedDevice,
    PciDeviceExt,
    SavedState, //
};
use kernel::prelude::*;

/// Whether the function loses its state in D3hot, and the state saved for its return to D0.
pub(crate) struct PmRestore {
    /// The function has no `No_Soft_Reset` (probed at bind, as vfio-pci does at register).
    needed: bool,
    /// The state saved on the last way into D3hot, until the function is back in D0.
    saved: Option<SavedState>,
}

impl PmRestore {
    /// Nothing to restore, until [`Self::probe`] looked at the function.
    pub(crate) const fn new() -> Self {
        Self {
            needed: false,
            saved: None,
        }
    }

    /// Reads whether `pdev` keeps its state in D3hot (`No_Soft_Reset` in PMCSR); a function
    /// without the PM capability never changes power state through it.
    pub(crate) fn probe(&mut self, pdev: &OwnedDevice) {
        let pm = usize::from(pdev.pm_cap());
        if pm == 0 {
            return;
        }
        let pmcsr = pdev
            .read_config(pm + regs::PCI_PM_CTRL as usize, 2)
            .unwrap_or(0);
        self.needed = pmcsr & regs::PCI_PM_CTRL_NO_SOFT_RESET == 0;
    }

    /// Puts `pdev` in `state`: on the way from D0-D2 into D3hot the state is saved first (and
    /// kept only if the function really got there: quirks keep some out of D3); on the way
    /// from D3 back to D0 the saved state, if any, is loaded and written back.
    pub(crate) fn set_power_state(&mut self, pdev: &OwnedDevice, state: PowerState) -> Result {
        let was_d3 = pdev.in_d3();
        let save = self.needed && !was_d3 && state == PowerState::D3Hot;
        let restore = self.needed && was_d3 && state == PowerState::D0;
        let saved = if save { pdev.save_state() } else { None };
        pdev.set_power_state(state)?;
        if save {
            if pdev.in_d3() {
                // The state of an earlier D3hot entry the function left without us (a
                // reset outside the driver) is dropped.
                self.saved = saved;
            }
        } else if restore {
            // As vfio-pci: with nothing saved, loading clears the PCI core's saved state and
            // the restore writes nothing.
            let _ = pdev.load_saved_state(self.saved.take());
            pdev.restore_state();
        }
        Ok(())
    }
}
