// SPDX-License-Identifier: GPL-2.0

//! A reference to an eventfd user space handed to the driver, through which the driver
//! signals it (interrupts, requests, wake-ups), and a slot hard-IRQ handlers signal one
//! through without taking a lock.

use core::{
    hint::spin_loop,
    ptr::{
        null_mut,
        NonNull, //
    },
    sync::atomic::{
        AtomicPtr,
        AtomicUsize,
        Ordering, //
    }, //
};
use kernel::{
    bindings,
    error::from_err_ptr,
    prelude::*, //
};

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

    /// The context, for the calls of this layer; valid while `self` is.
    pub(in crate::kernel_ext) fn as_raw(&self) -> *mut bindings::eventfd_ctx {
        self.ctx.as_ptr()
    }

    /// Adds one to the eventfd's counter, waking its readers.
    pub(crate) fn signal(&self) {
        // SAFETY: `ctx` is valid by the type invariant; signalling is allowed in any context.
        unsafe { bindings::eventfd_signal_mask(self.ctx.as_ptr(), 0) };
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own one reference.
        unsafe { bindings::eventfd_ctx_put(self.ctx.as_ptr()) };
    }
}

/// A replaceable eventfd that any context, hard-IRQ handlers included, may signal without a
/// lock (an interrupt's trigger, switched by `SET_IRQS` while the line stays requested).
///
/// A reader announces itself in `readers` before it loads the context and withdraws after it
/// signalled; [`Self::replace`] releases a replaced context only once no reader announced
/// before the swap is left, so every context a reader loads is alive while it signals it.
///
/// # Invariants
///
/// `ctx` is null or a context this slot holds one reference to (taken from an [`EventFd`]).
/// A context swapped out of `ctx` is released only after `readers` was seen at zero.
pub(crate) struct EventFdSlot {
    ctx: AtomicPtr<bindings::eventfd_ctx>,
    readers: AtomicUsize,
}

impl EventFdSlot {
    /// A slot holding `eventfd` (or nothing).
    pub(crate) fn new(eventfd: Option<EventFd>) -> Self {
        // INVARIANT: The slot takes over the reference of `eventfd`.
        Self {
            ctx: AtomicPtr::new(Self::into_raw(eventfd)),
            readers: AtomicUsize::new(0),
        }
    }

    /// Gives up ownership of `eventfd`'s reference without releasing it.
    fn into_raw(eventfd: Option<EventFd>) -> *mut bindings::eventfd_ctx {
        match eventfd {
            Some(eventfd) => {
                let ctx = eventfd.ctx.as_ptr();
                core::mem::forget(eventfd);
                ctx
            }
            None => null_mut(),
        }
    }

    /// Signals the eventfd in the slot, if any; callable in any context.
    #[inline]
    pub(crate) fn signal(&self) {
        self.readers.fetch_add(1, Ordering::SeqCst);
        let ctx = self.ctx.load(Ordering::SeqCst);
        if !ctx.is_null() {
            // SAFETY: `ctx` was in the slot after this reader announced itself, so `replace`
            // cannot release it before the `fetch_sub` below (type invariant); signalling is
            // allowed in any context.
            unsafe { bindings::eventfd_signal_mask(ctx, 0) };
        }
        self.readers.fetch_sub(1, Ordering::Release);
    }

    /// Puts `eventfd` (or nothing) in the slot. If an eventfd was replaced, calls `quiesce`
    /// (which should wait for the readers the caller knows of: IRQ handlers, work items),
    /// then waits until no reader can still be signalling the old eventfd, and releases it.
    pub(crate) fn replace(&self, eventfd: Option<EventFd>, quiesce: impl FnOnce()) {
        let old = self.ctx.swap(Self::into_raw(eventfd), Ordering::SeqCst);
        let Some(old) = NonNull::new(old) else {
            return;
        };
        quiesce();
        // Readers are a handful of instructions around one `eventfd_signal`, and `quiesce`
        // normally waited for all of them already.
        // `SeqCst`, as the readers' increment and load: with the swap above this is the
        // store-buffering pattern, where weaker orderings let both sides miss each other.
        while self.readers.load(Ordering::SeqCst) != 0 {
            spin_loop();
        }
        // INVARIANT: `old` was the slot's reference and no reader announced before the swap
        // is left; later readers load the new context.
        drop(EventFd { ctx: old });
    }
}

impl Drop for EventFdSlot {
    fn drop(&mut self) {
        if let Some(ctx) = NonNull::new(*self.ctx.get_mut()) {
            // The slot's reference; no reader can exist while we are dropped.
            drop(EventFd { ctx });
        }
    }
}
