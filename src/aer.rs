// SPDX-License-Identifier: GPL-2.0

//! AER: what the driver does when the PCI core's error recovery reports an error of a bound
//! function, as vfio-pci does.
//!
//! The AER core (drivers/pci/pcie/err.c) calls `error_detected` on every function below the
//! port that saw an uncorrectable error, with the function's device lock held: with the
//! channel `Normal` for a non-fatal error, `Frozen` for a fatal one (a link reset of the port
//! follows), `PermFailure` when recovery has failed. vfio-pci does not recover the device
//! itself, its user does: it signals the ERR eventfd when user space set one (a VMM forwards
//! the error to its guest, or stops it) and always answers "can recover", so recovery goes on
//! without asking the driver for a reset, mmio or resume step (vfio-pci has none of those
//! callbacks) and ends with "device recovery successful". Whether the function is open makes
//! no difference beyond the eventfd: a closed function has none, since the last close drops
//! it. Correctable errors never reach the driver: vfio-pci has no `cor_error_detected`, and
//! neither has this one.

use crate::{
    intrs::{
        self,
        IrqState, //
    },
    kernel_ext::pci::driver::{
        ChannelState,
        ErsResult, //
    }, //
};
use kernel::sync::Mutex;

/// `error_detected` of the function whose interrupt state is `irqs`: signals its ERR eventfd
/// if it has one and lets recovery go on, whatever the channel's state.
pub(crate) fn error_detected(irqs: &Mutex<IrqState>, _state: ChannelState) -> ErsResult {
    intrs::signal_error(irqs);
    ErsResult::CanRecover
}
