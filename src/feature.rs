// SPDX-License-Identifier: GPL-2.0

//! `VFIO_DEVICE_FEATURE`: the features vfio-pci implements beyond the core's (migration and
//! dirty tracking stay `ENOTTY`: no migration driver), answered as vfio-pci answers them.
//!
//! - `LOW_POWER_ENTRY` / `LOW_POWER_ENTRY_WITH_WAKEUP` / `LOW_POWER_EXIT` (SET): user space
//!   lets the function runtime-suspend (D3hot) while it does not use it (see
//!   [`crate::runtime_pm`]). Its BAR mmaps are zapped and faults on them `SIGBUS` until it exits
//!   or closes the device; `read(2)`, `write(2)` and ioctls resume the function for their
//!   duration, and with the wakeup variant end the low power state, signalling the eventfd.
//! - `PCI_VF_TOKEN` (SET): a PF's VF token (see [`crate::vf_token`]).
//! - `DMA_BUF` (GET): dispatched to [`crate::dma_buf`] by the wiring ([`crate::device`]).

use crate::kernel_ext::{
    eventfd::EventFd,
    uaccess,
    vfio::uapi, //
};
use kernel::{
    prelude::*,
    uaccess::UserPtr, //
};

/// The GET and SET bits of a feature request.
const GET_SET: u32 = uapi::VFIO_DEVICE_FEATURE_GET | uapi::VFIO_DEVICE_FEATURE_SET;

/// The parts of a device the features act on, lent by the wiring ([`crate::device`]).
pub(crate) trait FeatureTarget {
    /// Lets the function runtime-suspend and cuts memory access (BAR mmaps zapped) until the
    /// user exits low power or closes the device; `EINVAL` if it already did.
    fn enter_low_power(&self, wake: Option<EventFd>) -> Result;

    /// Restores memory access cut by [`Self::enter_low_power`], if it is cut.
    fn exit_low_power(&self);

    /// Whether the function is a PF with a VF token (see [`crate::vf_token`]).
    fn has_vf_token(&self) -> bool;

    /// Sets the VF token of a PF; does nothing for any other function.
    fn set_vf_token(&self, uuid: [u8; 16]);
}

/// What the checked request asks for: only whether it is supported, or to do it.
enum Request {
    Probe,
    Run,
}

/// Validates a request for a feature that supports the operations `supported` and needs
/// `minsz` bytes of data, as every vfio driver must.
fn check(flags: u32, argsz: usize, supported: u32, minsz: usize) -> Result<Request> {
    if flags & GET_SET & !supported != 0 {
        return Err(EINVAL);
    }
    if flags & uapi::VFIO_DEVICE_FEATURE_PROBE != 0 {
        return Ok(Request::Probe);
    }
    if flags & GET_SET == 0 || argsz < minsz {
        return Err(EINVAL);
    }
    Ok(Request::Run)
}

/// A feature the VFIO core passes to the driver.
pub(crate) fn device_feature(
    dev: &impl FeatureTarget,
    flags: u32,
    arg: UserPtr,
    argsz: usize,
) -> Result {
    const SET: u32 = uapi::VFIO_DEVICE_FEATURE_SET;
    match flags & uapi::VFIO_DEVICE_FEATURE_MASK {
        uapi::VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY => match check(flags, argsz, SET, 0)? {
            Request::Probe => Ok(()),
            Request::Run => dev.enter_low_power(None),
        },
        uapi::VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP => {
            let size = core::mem::size_of::<uapi::vfio_device_low_power_entry_with_wakeup>();
            match check(flags, argsz, SET, size)? {
                Request::Probe => Ok(()),
                Request::Run => {
                    let mut fd = [0u8; core::mem::size_of::<i32>()];
                    uaccess::copy_from_user(arg, &mut fd)?;
                    let wakeup_fd = i32::from_ne_bytes(fd);
                    if wakeup_fd < 0 {
                        return Err(EINVAL);
                    }
                    dev.enter_low_power(Some(EventFd::from_fd(wakeup_fd)?))
                }
            }
        }
        uapi::VFIO_DEVICE_FEATURE_LOW_POWER_EXIT => match check(flags, argsz, SET, 0)? {
            Request::Probe => Ok(()),
            Request::Run => {
                dev.exit_low_power();
                Ok(())
            }
        },
        uapi::VFIO_DEVICE_FEATURE_PCI_VF_TOKEN => {
            if !dev.has_vf_token() {
                return Err(ENOTTY);
            }
            match check(flags, argsz, SET, 16)? {
                Request::Probe => Ok(()),
                Request::Run => {
                    let mut uuid = [0u8; 16];
                    uaccess::copy_from_user(arg, &mut uuid)?;
                    dev.set_vf_token(uuid);
                    Ok(())
                }
            }
        }
        _ => Err(ENOTTY),
    }
}
