// SPDX-License-Identifier: GPL-2.0

//! The VFIO core's virqfd (`drivers/vfio/virqfd.c`): a callback run whenever user space (or
//! KVM) signals an eventfd, first in the eventfd's wake-up (atomic context), then, if asked,
//! from a work item.
//!
//! A [`Virqfd`] is a pinned slot around its owner: the callbacks reach the owner through the
//! [`VirqfdHandler`] trait, and dropping the slot disables the virqfd, waiting for callbacks in
//! flight, before the owner is dropped.

use crate::kernel_ext::bindings as vfio;
use crate::kernel_ext::error::to_result;
use core::ptr::null_mut;
use kernel::{
    ffi::{
        c_int,
        c_void, //
    },
    prelude::*,
    types::Opaque, //
};

/// What a virqfd does when its eventfd is signalled.
pub(crate) trait VirqfdHandler: Sync {
    /// Called in the eventfd's wake-up, in atomic context (under the eventfd's wait-queue
    /// lock); returns whether [`Self::thread`] should run.
    fn handler(&self) -> bool;

    /// Called from the virqfd's work item (process context) after [`Self::handler`] asked for
    /// it.
    fn thread(&self);
}

/// A virqfd slot and its owner `T`, whose callbacks the VFIO core calls while the slot is
/// armed.
///
/// # Invariants
///
/// While `raw` is armed (by [`Self::enable`]) the VFIO core calls the callbacks with this
/// object's address, which is pinned; its `PinnedDrop` impl disables the slot, which waits for the
/// callbacks, before `owner` is dropped.
#[pin_data(PinnedDrop)]
pub(crate) struct Virqfd<T: VirqfdHandler> {
    /// The core's virqfd; the VFIO core reads and writes the pointer under its own lock, this
    /// type only hands out its address. Pinned, so a `Virqfd` is never `Unpin`: the core keeps
    /// the addresses of the slot and of the object while it is armed.
    #[pin]
    raw: Opaque<*mut vfio::virqfd>,
    #[pin]
    owner: T,
}

// SAFETY: The slot is only touched by the VFIO core under its lock; `owner` is `T`.
unsafe impl<T: VirqfdHandler + Send> Send for Virqfd<T> {}
// SAFETY: Shared access reaches only `&T` (`T: Sync`) and the slot, which the VFIO core
// serialises.
unsafe impl<T: VirqfdHandler> Sync for Virqfd<T> {}

impl<T: VirqfdHandler> Virqfd<T> {
    /// An unarmed slot around the owner `owner` initialises.
    pub(crate) fn new<E>(owner: impl PinInit<T, E>) -> impl PinInit<Self, E> {
        pin_init!(Self {
            raw: Opaque::new(null_mut()),
            owner <- owner,
        }? E)
    }

    /// The owner.
    pub(crate) fn owner(&self) -> &T {
        &self.owner
    }

    /// Arms the slot on the caller's eventfd `fd` (`EBADF`, `EINVAL` for a file that is not
    /// an eventfd; `EBUSY` if the slot is armed already). A count already pending on the
    /// eventfd runs the callbacks at once.
    pub(crate) fn enable(self: Pin<&Self>, fd: i32) -> Result {
        let this: *const Self = &*self;
        // SAFETY: The callbacks match the VFIO core's signatures and get `this`, which is
        // pinned and stays valid until `drop` disables the slot; the slot lives in the same
        // allocation.
        to_result(unsafe {
            vfio::vfio_virqfd_enable(
                this.cast_mut().cast(),
                Some(Self::handler_callback),
                Some(Self::thread_callback),
                null_mut(),
                self.raw.get(),
                fd,
            )
        })
    }

    /// Disarms the slot, waiting for callbacks in flight; an unarmed slot is left alone.
    pub(crate) fn disable(&self) {
        // SAFETY: The slot is ours; the VFIO core accepts an empty one (never armed, or
        // released because the eventfd was closed). It returns once no callback can run.
        unsafe { vfio::vfio_virqfd_disable(self.raw.get()) };
    }

    /// Waits for the work item of an armed slot to finish.
    pub(crate) fn flush_thread(&self) {
        // SAFETY: The slot is ours; the VFIO core handles an empty one.
        unsafe { vfio::vfio_virqfd_flush_thread(self.raw.get()) };
    }

    /// # Safety
    ///
    /// `opaque` must be the `Virqfd<T>` the slot was armed with (see [`Self::enable`]).
    unsafe extern "C" fn handler_callback(opaque: *mut c_void, _data: *mut c_void) -> c_int {
        // SAFETY: By the type invariant `opaque` is this pinned object, alive while armed.
        let this = unsafe { &*opaque.cast::<Self>() };
        c_int::from(this.owner.handler())
    }

    /// # Safety
    ///
    /// As for [`Self::handler_callback`].
    unsafe extern "C" fn thread_callback(opaque: *mut c_void, _data: *mut c_void) {
        // SAFETY: As in `handler_callback`: `drop` waits for this work before `opaque` goes.
        let this = unsafe { &*opaque.cast::<Self>() };
        this.owner.thread();
    }
}

#[pinned_drop]
impl<T: VirqfdHandler> PinnedDrop for Virqfd<T> {
    fn drop(self: Pin<&mut Self>) {
        self.disable();
    }
}
