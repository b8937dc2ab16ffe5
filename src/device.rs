// SPDX-License-Identifier: GPL-2.0

//! One PCI function bound to vfio-pci-rs: its VFIO device state and its open/close lifecycle.
//!
//! A function is bound at probe (see [`crate::pci_driver`]) and becomes a [`VfioPciDevice`]
//! inside a VFIO core device. The first open enables it, resets it if it can, and saves its
//! config state; the last close stops it, resets it, and restores that state, so the next user
//! finds it as the host left it.

use crate::{
    dev_set::ResetScope,
    ioctl,
    pci_function::{PciFunction, SavedState},
    vfio_device::{Registration, VfioDevice, VfioDeviceOps},
};
use kernel::{new_mutex, prelude::*, sync::Mutex};

/// The state of a function while user space has it open.
#[derive(Default)]
pub(crate) struct OpenState {
    /// Whether a function-level reset worked at open (reported as `VFIO_DEVICE_FLAGS_RESET`).
    pub(crate) reset_works: bool,
    /// The config state saved at open, restored at close.
    saved: Option<SavedState>,
}

/// The driver's state of one bound function.
#[pin_data]
pub(crate) struct VfioPciDevice {
    pub(crate) pdev: PciFunction,
    /// What a reset of this function touches, fixed at probe.
    pub(crate) reset_scope: ResetScope,
    #[pin]
    pub(crate) open_state: Mutex<OpenState>,
}

// SAFETY: `ResetScope` only holds addresses of PCI core objects that outlive the function and
// are used as keys or passed back to the PCI core, which synchronises its own accesses.
unsafe impl Send for VfioPciDevice {}
// SAFETY: As for `Send`; all mutable state is behind `open_state`'s lock.
unsafe impl Sync for VfioPciDevice {}

impl VfioPciDevice {
    /// Registers `pdev` with the VFIO core, refusing what vfio-pci refuses.
    pub(crate) fn bind(pdev: PciFunction) -> Result<Registration<Self>> {
        if u32::from(pdev.header_type()) != kernel::bindings::PCI_HEADER_TYPE_NORMAL {
            return Err(EINVAL);
        }
        if pdev.num_vfs() != 0 {
            dev_warn!(pdev.as_device(), "Cannot bind to PF with SR-IOV enabled\n");
            return Err(EBUSY);
        }
        let reset_scope = ResetScope::of(&pdev);
        let parent = pdev.clone();
        let vdev = VfioDevice::new(
            &parent,
            try_pin_init!(Self {
                pdev,
                reset_scope,
                open_state <- new_mutex!(OpenState::default()),
            }),
        )?;
        vdev.assign_device_set(reset_scope.dev_set_key(vdev.as_raw().cast()))?;
        VfioDevice::register(vdev)
    }
}

impl VfioDeviceOps for VfioPciDevice {
    const NAME: &'static CStr = crate::pci_driver::DRIVER_NAME;

    fn open_device(dev: &VfioDevice<Self>) -> Result {
        let pdev = &dev.pdev;
        let mut state = dev.open_state.lock();
        // The state saved below must not include bus mastering.
        pdev.clear_master();
        pdev.enable()?;
        match pdev.try_reset_function() {
            Err(e) if e == EAGAIN => {
                pdev.disable();
                return Err(e);
            }
            result => state.reset_works = result.is_ok(),
        }
        state.saved = pdev.save_state();
        if state.saved.is_none() {
            dev_dbg!(pdev.as_device(), "Couldn't store saved state\n");
        }
        Ok(())
    }

    fn close_device(dev: &VfioDevice<Self>) {
        let pdev = &dev.pdev;
        let mut state = dev.open_state.lock();
        pdev.clear_master();
        pdev.disable();
        if state.reset_works {
            // Best effort, as in vfio-pci: a contended device lock leaves it unreset.
            let _ = pdev.try_reset_function();
        }
        pdev.restore_state(state.saved.take());
        state.reset_works = false;
    }

    fn ioctl(dev: &VfioDevice<Self>, cmd: u32, arg: usize) -> Result<isize> {
        ioctl::dispatch(dev, cmd, arg)
    }

    fn request(dev: &VfioDevice<Self>, count: u32) {
        if count == 0 {
            dev_warn!(
                dev.pdev.as_device(),
                "No device request channel registered, blocked until released by user\n"
            );
        }
    }
}
