// SPDX-License-Identifier: GPL-2.0

//! The gate between user space and the function's memory: BAR access through `read(2)`/
//! `write(2)` and through mmaps.
//!
//! User space may reach the BARs only while the function decodes memory (the virtual command
//! register says so) and no reset is in progress. Every access holds the gate shared for the
//! duration of the access ([`RwSem::read`]), so accesses from several threads run side by side, as
//! under vfio-pci's `memory_lock`; a reset or a change of the memory-decode bit holds it
//! exclusive across the change ([`RwSem::write`], [`lock_and_zap`]), after removing every mmap of the BARs so that the
//! next touch faults back into the driver (and is refused or remapped). Lock order: virtual
//! config, then this gate; the mmap lock of a faulting process, then this gate.

use crate::{
    bars::OpenBars,
    kernel_ext::dma_buf::ExportSet,
    kernel_ext::eventfd::EventFd,
    kernel_ext::pci::{
        config::PowerState,
        regs,
        OwnedDevice,
        PciDeviceExt, //
    },
    kernel_ext::sync::{
        RwSem,
        WriteGuard, //
    },
    kernel_ext::vfio::region::{
        vfio_pci_index_to_offset,
        VFIO_PCI_BAR0_REGION_INDEX,
        VFIO_PCI_ROM_REGION_INDEX, //
    },
    kernel_ext::vfio::{
        FileMappings,
        VfioDeviceOps, //
    },
    power::PmRestore, //
};
use kernel::prelude::*;

/// The user's permission for the function to sit in a low power state
/// (`VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY*`), with the eventfd to signal if an access wakes it
/// up. While it lasts, the function's runtime-PM usage count lacks the reference the entry
/// gave up (see [`crate::runtime_pm`]).
struct LowPower {
    wake: Option<EventFd>,
}

/// What the gate guards: the BARs claimed while the function is open, whether its virtual
/// command register enables memory decode, whether user space let it go to low power, whether
/// it is a PF with VFs enabled through this driver (which must stay in D0, see
/// [`crate::sriov`]), the state it loses in D3hot (see [`crate::power`]), and the dma-bufs
/// exported from its BARs, revoked whenever BAR access is cut (see [`crate::dma_buf`]).
pub(crate) struct MemoryGate {
    decode_enabled: bool,
    low_power: Option<LowPower>,
    bars: Option<OpenBars>,
    sriov_active: bool,
    power: PmRestore,
    dma_bufs: ExportSet,
}

impl MemoryGate {
    /// A gate for a function that is not open: no BARs, no decode, no VFs.
    pub(crate) const fn new() -> Self {
        Self {
            decode_enabled: false,
            low_power: None,
            bars: None,
            sriov_active: false,
            power: PmRestore::new(),
            dma_bufs: ExportSet::new(),
        }
    }

    /// Looks at whether the function keeps its state in D3hot (once, at bind).
    pub(crate) fn probe_power_state(&mut self, pdev: &OwnedDevice) {
        self.power.probe(pdev);
    }

    /// Changes the power state of `pdev`, the function of this gate (see
    /// [`PmRestore::set_power_state`]); a PF with VFs enabled through this driver cannot leave
    /// D0 (`EBUSY`).
    // Inline, with the no-op (a function already in `state`, where nothing is saved or
    // restored and `pci_set_power_state()` returns at once) done without a call: the hot
    // reset brings every function of its set to D0 this way, almost always from D0.
    #[inline]
    pub(crate) fn set_power_state(&mut self, pdev: &OwnedDevice, state: PowerState) -> Result {
        if state != PowerState::D0 && self.sriov_active {
            return Err(EBUSY);
        }
        if pdev.is_in_power_state(state) {
            return Ok(());
        }
        self.power.set_power_state(pdev, state)
    }

    /// Records whether the function is a PF with VFs enabled through this driver.
    pub(crate) fn set_sriov_active(&mut self, active: bool) {
        self.sriov_active = active;
    }

    /// Claims and maps the BARs at first open. Decode starts as the function's command
    /// register has it now, which is what the virtual config space starts from too (a virtual
    /// function decodes memory whatever its command register says).
    pub(crate) fn open(&mut self, pdev: &OwnedDevice) {
        self.bars = Some(OpenBars::open(pdev));
        let command = pdev.read_config_word(regs::PCI_COMMAND);
        self.decode_enabled =
            pdev.has_no_command_memory() || command & regs::PCI_COMMAND_MEMORY as u16 != 0;
    }

    /// Releases the BARs at last close.
    pub(crate) fn close(&mut self) {
        self.decode_enabled = false;
        self.low_power = None;
        self.bars = None;
    }

    /// Lets the function `pdev` go to low power, giving up a runtime-PM usage reference
    /// without suspending it yet (the put that ends the ioctl does); `EINVAL` if it already
    /// may.
    pub(crate) fn enter_low_power(&mut self, pdev: &OwnedDevice, wake: Option<EventFd>) -> Result {
        if self.low_power.is_some() {
            return Err(EINVAL);
        }
        self.low_power = Some(LowPower { wake });
        pdev.runtime_put_noidle();
        Ok(())
    }

    /// Takes the function `pdev` out of low power, taking back the usage reference the entry
    /// gave up, and releases the wakeup eventfd (nothing if it was not in low power).
    pub(crate) fn exit_low_power(&mut self, pdev: &OwnedDevice) {
        if self.low_power.take().is_some() {
            pdev.runtime_get_noresume();
        }
    }

    /// The function `pdev` is being resumed: if the user asked to be told (the wakeup
    /// eventfd), signals it and takes the function out of low power.
    pub(crate) fn wake_from_low_power(&mut self, pdev: &OwnedDevice) {
        let Some(LowPower { wake: Some(wake) }) = &self.low_power else {
            return;
        };
        wake.signal();
        self.exit_low_power(pdev);
    }

    /// Whether `read(2)`/`write(2)` may reach the function's memory now: its virtual command
    /// register enables decode and it is not in D3 (where memory does not answer). Asked at
    /// every access, as vfio-pci's `__vfio_pci_memory_enabled()`: however the function left
    /// D3 (a PMCSR write, a reset), its memory answers again at once.
    pub(crate) fn accessible(&self, pdev: &OwnedDevice) -> bool {
        self.decode_enabled && !pdev.in_d3()
    }

    /// Whether a page of a BAR may be mapped into user space now: as [`Self::accessible`],
    /// and the user has not let the function go to low power.
    pub(crate) fn mappable(&self, pdev: &OwnedDevice) -> bool {
        self.accessible(pdev) && self.low_power.is_none()
    }

    /// The BARs of the open function (`EINVAL` when it is not open, which the core prevents).
    pub(crate) fn bars(&self) -> Result<&OpenBars> {
        self.bars.as_ref().ok_or(EINVAL)
    }

    /// The dma-bufs exported from the function's BARs.
    pub(crate) fn dma_bufs(&mut self) -> &mut ExportSet {
        &mut self.dma_bufs
    }

    /// Records the virtual command register's memory-decode bit (always set for functions
    /// without that bit).
    pub(crate) fn set_decode_enabled(&mut self, enabled: bool) {
        self.decode_enabled = enabled;
    }
}

/// The driver state of a VFIO device as code that holds the device itself sees it (an armed
/// ioeventfd keeps it alive, a hot reset goes through every device of a dev_set): the PCI
/// function and its memory gate. Implemented by the wiring ([`crate::device`]).
pub(crate) trait GatedFunction: VfioDeviceOps {
    /// The PCI function.
    fn pdev(&self) -> &OwnedDevice;

    /// The function's memory gate.
    fn memory(&self) -> &RwSem<MemoryGate>;
}

/// The gate held exclusive: no BAR access through this device file can start while it lives.
pub(crate) type MemoryAccess<'a> = WriteGuard<'a, MemoryGate>;

/// Locks the gate `memory`, removes every user mapping of the BARs from the device file's
/// `mappings` and revokes the function's dma-bufs: after this, user space and importers can
/// touch the function's memory only through the driver, which waits for the gate. (Whoever
/// gives access back restores the dma-bufs: [`crate::dma_buf::restore`].)
pub(crate) fn lock_and_zap<'a>(
    memory: &'a RwSem<MemoryGate>,
    mappings: &FileMappings,
) -> MemoryAccess<'a> {
    let mut access = memory.write();
    zap_bars(mappings);
    access.dma_bufs.revoke();
    access
}

/// As [`lock_and_zap`], but gives up (`None`) when the gate is held by someone else.
// Inlined into the hot reset, which calls it for every function of the set (with the
// resume of the set, 22 instructions a function fewer beyond `pci_reset_bus()`: bench kernel,
// 32 functions).
#[inline]
pub(crate) fn try_lock_and_zap<'a>(
    memory: &'a RwSem<MemoryGate>,
    mappings: &FileMappings,
) -> Option<MemoryAccess<'a>> {
    let mut access = memory.try_write()?;
    zap_bars(mappings);
    access.dma_bufs.revoke();
    Some(access)
}

/// Brings `pdev`, the function of the gate `memory`, to D0 with the state it lost in D3hot,
/// and returns the gate, held exclusive since before the change.
pub(crate) fn wake_to_d0<'a>(
    memory: &'a RwSem<MemoryGate>,
    pdev: &OwnedDevice,
) -> MemoryAccess<'a> {
    let mut gate = memory.write();
    // Failures are left for the next access to report, as in vfio-pci.
    let _ = gate.set_power_state(pdev, PowerState::D0);
    gate
}

/// Removes every user mapping of the BAR regions (BAR 0 up to the ROM) of a device file.
fn zap_bars(mappings: &FileMappings) {
    let start = vfio_pci_index_to_offset(VFIO_PCI_BAR0_REGION_INDEX);
    let end = vfio_pci_index_to_offset(VFIO_PCI_ROM_REGION_INDEX);
    mappings.zap(start, end - start);
}
