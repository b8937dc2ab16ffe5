// SPDX-License-Identifier: GPL-2.0

//! IRQ bypass producers (`include/linux/irqbypass.h`, `virt/lib/irqbypass.c`): an interrupt
//! source announced to the IRQ bypass manager under a token, the eventfd it signals, so that
//! a consumer registered under the same eventfd (KVM's irqfd) can take the interrupt around
//! the host, as posted interrupts do.
//!
//! A [`Producer`] is pinned: the manager keeps its address (in its xarray and, once paired,
//! in the consumer) from [`Producer::register`] until [`Producer::unregister`], which dropping
//! it does too. While registered it holds a reference to its token eventfd (so the token,
//! which the manager matches by address, cannot be freed and reused for another eventfd) and
//! to its IRQ line (so the number stays allocated to this function). It sets none of the
//! producer's optional callbacks, as vfio-pci sets none.
//!
//! The manager's API is the same in 7.2 and 7.3 (since 6.16 the eventfd and the IRQ number
//! are arguments of `irq_bypass_register_producer()`, which refuses a producer whose
//! `eventfd` is set); nothing here depends on the kernel's version. The manager is a module
//! (`irqbypass.ko`) when the kernel builds it as one, which this module then depends on.

use crate::kernel_ext::error::to_result;
use crate::kernel_ext::{
    bindings,
    eventfd::EventFd,
    irq::IrqLine, //
};
use core::marker::PhantomPinned;
use kernel::{
    ffi::c_int,
    prelude::*,
    sync::Arc,
    types::Opaque, //
};

/// An IRQ bypass producer, registered or not.
///
/// # Invariants
///
/// `raw` is a zero-initialised `irq_bypass_producer` that only the IRQ bypass manager writes.
/// `token` is `Some` exactly while `raw` is registered, with `token`'s eventfd as its token
/// and `line`'s number as its IRQ; while it is registered the manager may read and write
/// `raw` (under its own lock) at this pinned address.
#[pin_data(PinnedDrop)]
pub(crate) struct Producer {
    #[pin]
    raw: Opaque<bindings::irq_bypass_producer>,
    token: Option<Arc<EventFd>>,
    line: Option<IrqLine>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: The C structure is only touched by the IRQ bypass manager, under its mutex, and by
// `register`/`unregister`/`drop`, which take `Pin<&mut Self>`; the token and the line are
// `Send` and `Sync`.
unsafe impl Send for Producer {}
// SAFETY: A shared reference gives access to nothing.
unsafe impl Sync for Producer {}

impl Producer {
    /// A producer not registered yet.
    pub(crate) fn new() -> impl PinInit<Self> {
        // INVARIANT: The C structure starts zeroed and unregistered.
        pin_init!(Self {
            raw: Opaque::zeroed(),
            token: None,
            line: None,
            _pin: PhantomPinned,
        })
    }

    /// Registers the producer of interrupts on `line` under the token `token`
    /// (`irq_bypass_register_producer()`), pairing it with the consumer registered under the
    /// same eventfd, if any. Fails with `EBUSY` if the producer is registered already or if
    /// another producer has the same token, or with the error of the consumer's
    /// `add_producer` callback; the producer is then left unregistered.
    pub(crate) fn register(self: Pin<&mut Self>, token: Arc<EventFd>, line: &IrqLine) -> Result {
        let this = self.project();
        if this.token.is_some() {
            return Err(EBUSY);
        }
        let irq = c_int::try_from(line.number()).map_err(|_| EINVAL)?;
        // SAFETY: `raw` is pinned and unregistered (type invariant), so its `eventfd` field is
        // NULL, as the manager requires; it stays valid at this address until `unregister`
        // (also run by `drop`). The token is a live eventfd context, referenced by `token`
        // for as long as the registration lasts. The manager takes its own lock.
        to_result(unsafe {
            bindings::irq_bypass_register_producer(this.raw.get(), token.as_raw(), irq)
        })?;
        // INVARIANT: Registered with `token`'s eventfd and `line`'s number.
        *this.token = Some(token);
        *this.line = Some(line.clone());
        Ok(())
    }

    /// Unregisters the producer (`irq_bypass_unregister_producer()`), disconnecting it from
    /// its consumer, if any; a producer not registered is left alone.
    pub(crate) fn unregister(self: Pin<&mut Self>) {
        let this = self.project();
        if this.token.is_none() {
            return;
        }
        // SAFETY: `raw` is registered (type invariant); the manager takes its lock, calls the
        // consumer's `del_producer` if paired, and forgets the address before returning.
        unsafe { bindings::irq_bypass_unregister_producer(this.raw.get()) };
        // INVARIANT: Unregistered: the token and the line are released.
        *this.token = None;
        *this.line = None;
    }
}

#[pinned_drop]
impl PinnedDrop for Producer {
    fn drop(self: Pin<&mut Self>) {
        self.unregister();
    }
}
