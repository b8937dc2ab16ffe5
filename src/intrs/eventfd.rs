// SPDX-License-Identifier: GPL-2.0

//! An eventfd as the kernel holds it: one counted reference to a `struct eventfd_ctx`, taken
//! from a file descriptor of the calling process and released when the value is dropped.
//!
//! Every interrupt this driver delivers to user space ends as a signal on one of these.

use core::ptr::NonNull;
use kernel::{bindings, error::from_err_ptr, prelude::*};

/// A reference to an eventfd context.
///
/// # Invariants
///
/// `self.0` points to an `eventfd_ctx` on which this value owns one reference.
pub(crate) struct EventFd(NonNull<bindings::eventfd_ctx>);

// SAFETY: An eventfd reference has no thread affinity; signalling and releasing are safe from
// any thread.
unsafe impl Send for EventFd {}
// SAFETY: The only operation through `&EventFd` is `signal`, which the eventfd serialises
// itself and which may run in any context, hard IRQ included.
unsafe impl Sync for EventFd {}

impl EventFd {
    /// Takes a reference to the eventfd behind `fd`: `EBADF` for a closed or negative fd,
    /// `EINVAL` for a file that is not an eventfd, as `eventfd_ctx_fdget` reports them.
    pub(crate) fn from_fd(fd: i32) -> Result<Self> {
        // SAFETY: `eventfd_ctx_fdget` accepts any fd number and returns a new reference or an
        // error pointer.
        let ctx = from_err_ptr(unsafe { bindings::eventfd_ctx_fdget(fd) })?;
        // INVARIANT: A non-error result is a context on which we now own a reference.
        NonNull::new(ctx).map(Self).ok_or(EBADF)
    }

    /// Adds one to the eventfd's counter and wakes its readers.
    pub(crate) fn signal(&self) {
        // SAFETY: By the type invariant the context is alive while `self` is.
        unsafe { Self::signal_raw(self.0.as_ptr()) }
    }

    /// The context, for C APIs that take it as an opaque cookie (an IRQ handler's `dev_id`).
    pub(crate) fn as_ptr(&self) -> *mut bindings::eventfd_ctx {
        self.0.as_ptr()
    }

    /// Gives up ownership of the reference without releasing it.
    pub(crate) fn into_raw(self) -> *mut bindings::eventfd_ctx {
        let raw = self.0.as_ptr();
        core::mem::forget(self);
        raw
    }

    /// Takes back a reference given up with [`Self::into_raw`].
    ///
    /// # Safety
    ///
    /// `raw` must come from [`Self::into_raw`] and not have been taken back before.
    pub(crate) unsafe fn from_raw(raw: NonNull<bindings::eventfd_ctx>) -> Self {
        // INVARIANT: The caller hands back the reference `into_raw` kept alive.
        Self(raw)
    }

    /// Signals the context at `ctx` without owning a reference to it.
    ///
    /// # Safety
    ///
    /// `ctx` must be a live eventfd context for the duration of the call.
    pub(crate) unsafe fn signal_raw(ctx: *mut bindings::eventfd_ctx) {
        // SAFETY: The caller guarantees `ctx` is alive; `eventfd_signal` is
        // `eventfd_signal_mask(ctx, 0)` and is safe in any context.
        unsafe { bindings::eventfd_signal_mask(ctx, 0) }
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own one reference, released exactly once here.
        unsafe { bindings::eventfd_ctx_put(self.0.as_ptr()) }
    }
}
