// SPDX-License-Identifier: GPL-2.0

//! The differences between the kernel crates of the supported kernels (7.2 and 7.3), in one
//! place.
//!
//! Every item has the same signature on both kernels; only its body differs, under
//! `cfg(kernel_7_3)`, which Kbuild sets for a tree of version 7.3 or later. The rest of the
//! layer calls these items instead of the differing kernel-crate or binding items, and
//! nothing outside this file names the cfg: supporting another kernel means editing this
//! file (and Kbuild's version test) alone.
//!
//! What differs:
//!
//! - pin-init: 7.3 renamed the method that runs a pinned initializer on a slot,
//!   `PinInit::__pinned_init` (7.2), to `PinInit::__init` (7.2's `__init` belonged to the
//!   `Init` trait).
//! - bindgen: 7.3 generates `enum irqreturn` as a newtype (`struct irqreturn(c_uint)`, with
//!   associated constants) instead of a `c_uint` alias, so an IRQ handler's C return value is
//!   built differently.

use kernel::{bindings, ffi::c_uint, prelude::*};

/// Runs `init` on `slot`, initialising the value in place.
///
/// On error `slot` is left uninitialised (and needs no drop), as the [`PinInit`] contract
/// promises.
///
/// # Safety
///
/// `slot` must be valid for writes of a `T` and uninitialised; the caller may not touch it
/// when `Err` is returned except to free it, and it must not move until the value is dropped.
#[inline(always)]
pub(crate) unsafe fn pin_init_at<T, E>(slot: *mut T, init: impl PinInit<T, E>) -> Result<(), E> {
    #[cfg(not(kernel_7_3))]
    // SAFETY: The caller's requirements are those of `PinInit::__pinned_init`.
    let ret = unsafe { init.__pinned_init(slot) };
    #[cfg(kernel_7_3)]
    // SAFETY: The caller's requirements are those of `PinInit::__init`.
    let ret = unsafe { init.__init(slot) };
    ret
}

/// The C value of an IRQ handler's result (`irqreturn_t`), as a handler registered with
/// `request_threaded_irq` returns it.
#[inline(always)]
pub(crate) fn irqreturn(ret: kernel::irq::IrqReturn) -> bindings::irqreturn_t {
    // `IrqReturn` is `repr(u32)` with the C enumerators' values on both kernels.
    let value = ret as c_uint;
    #[cfg(not(kernel_7_3))]
    let ret = value;
    #[cfg(kernel_7_3)]
    let ret = bindings::irqreturn_t(value);
    ret
}
