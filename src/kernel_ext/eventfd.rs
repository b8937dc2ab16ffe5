// SPDX-License-Identifier: GPL-2.0

//! A reference to an eventfd user space handed to the driver, through which the driver
//! signals it (interrupts, requests, wake-ups).

use core::ptr::NonNull;
use kernel::{bindings, error::from_err_ptr, prelude::*};

/// A counted reference to an `eventfd_ctx`.
///
/// # Invariants
///
/// `ctx` is a valid eventfd context this object holds one reference to.
pub(crate) struct EventFd {
    ctx: NonNull<bindings::eventfd_ctx>,
}

// SAFETY: An eventfd context is reference counted and may be signalled and released from any
// context, on any thread.
unsafe impl Send for EventFd {}
// SAFETY: `signal` is safe to call concurrently.
unsafe impl Sync for EventFd {}

impl EventFd {
    /// Takes a reference to the eventfd behind the caller's file descriptor `fd` (`EBADF` if
    /// there is none, `EINVAL` if it is not an eventfd).
    pub(crate) fn from_fd(fd: i32) -> Result<Self> {
        // SAFETY: `eventfd_ctx_fdget` looks `fd` up in the current task's table and returns a
        // new reference or an error pointer.
        let ctx = from_err_ptr(unsafe { bindings::eventfd_ctx_fdget(fd) })?;
        let ctx = NonNull::new(ctx).ok_or(EINVAL)?;
        // INVARIANT: `eventfd_ctx_fdget` returned a referenced context.
        Ok(Self { ctx })
    }

    /// Adds one to the eventfd's counter, waking its readers.
    pub(crate) fn signal(&self) {
        // SAFETY: `ctx` is valid by the type invariant; signalling is allowed in any context.
        unsafe { bindings::eventfd_signal_mask(self.ctx.as_ptr(), 0) };
    }

    /// The context, to compare eventfds or hand to C APIs that take their own reference.
    pub(crate) fn as_raw(&self) -> *mut bindings::eventfd_ctx {
        self.ctx.as_ptr()
    }

    /// Gives up ownership of the reference without releasing it (for a slot that hard-IRQ
    /// handlers read without a lock).
    pub(crate) fn into_raw(self) -> NonNull<bindings::eventfd_ctx> {
        let ctx = self.ctx;
        core::mem::forget(self);
        ctx
    }

    /// Takes back a reference given up with [`Self::into_raw`].
    ///
    /// # Safety
    ///
    /// `ctx` must come from [`Self::into_raw`] and not have been taken back before.
    pub(crate) unsafe fn from_raw(ctx: NonNull<bindings::eventfd_ctx>) -> Self {
        // INVARIANT: The caller hands back the reference `into_raw` kept.
        Self { ctx }
    }

    /// Signals the context at `ctx` without owning a reference to it.
    ///
    /// # Safety
    ///
    /// `ctx` must be a live eventfd context for the duration of the call.
    pub(crate) unsafe fn signal_raw(ctx: *mut bindings::eventfd_ctx) {
        // SAFETY: The caller guarantees `ctx` is alive; signalling is allowed in any context.
        unsafe { bindings::eventfd_signal_mask(ctx, 0) };
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own one reference.
        unsafe { bindings::eventfd_ctx_put(self.ctx.as_ptr()) };
    }
}
