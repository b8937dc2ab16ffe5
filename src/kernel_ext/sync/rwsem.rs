// SPDX-License-Identifier: GPL-2.0

//! A reader/writer semaphore owning the data it protects: many readers at once, or one writer.
//!
//! The kernel crate has mutexes and spinlocks but no `rw_semaphore`. vfio-pci guards a
//! function's memory with one (`memory_lock`): every BAR access and every mmap fault takes it
//! shared, so vCPU threads touching the same function never wait for each other, while a reset
//! or a change of the memory-decode bit takes it exclusive. [`RwSem`] gives the same lock to
//! Rust: [`RwSem::read`] hands out `&T`, [`RwSem::write`] `&mut T`, and the guards release it.

use core::{
    cell::UnsafeCell,
    marker::PhantomPinned,
    ops::Deref,
    ops::DerefMut, //
};
use kernel::{
    bindings,
    prelude::*,
    str::CStr,
    sync::LockClassKey,
    types::{
        NotThreadSafe,
        Opaque, //
    }, //
};

/// Creates an [`RwSem`] initialiser with a lock class of its own (as `new_mutex!` does).
macro_rules! new_rwsem {
    ($data:expr, $name:literal) => {
        $crate::kernel_ext::sync::RwSem::new(
            $data,
            ::kernel::c_str!($name),
            ::kernel::static_lock_class!(),
        )
    };
}
pub(crate) use new_rwsem;

/// A `struct rw_semaphore` and the data it protects.
///
/// # Invariants
///
/// `sem` is an initialised `rw_semaphore`; `data` is read only while `sem` is held shared or
/// exclusive, and written only while it is held exclusive.
#[pin_data]
pub(crate) struct RwSem<T> {
    #[pin]
    sem: Opaque<bindings::rw_semaphore>,
    data: UnsafeCell<T>,
    /// `sem` may not move once initialised (lockdep and the wait list point into it).
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: The semaphore hands `T` from thread to thread, so `T: Send` is needed and enough to
// move the whole.
unsafe impl<T: Send> Send for RwSem<T> {}
// SAFETY: Readers on several threads share `&T` at once (`T: Sync`); a writer on any thread
// gets `&mut T` (`T: Send`).
unsafe impl<T: Send + Sync> Sync for RwSem<T> {}

impl<T> RwSem<T> {
    /// A semaphore protecting `data`, in lockdep class `key` named `name`.
    pub(crate) fn new(
        data: T,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            data: UnsafeCell::new(data),
            // SAFETY: `slot` is valid for writes and pinned (it is a structurally pinned
            // field); `name` and `key` are static, as lockdep needs them to be.
            sem <- Opaque::ffi_init(|slot| unsafe {
                bindings::__init_rwsem(slot, name.as_char_ptr(), key.as_ptr())
            }),
            _pin: PhantomPinned,
        })
    }

    /// Takes the semaphore shared, sleeping while a writer holds it.
    pub(crate) fn read(&self) -> ReadGuard<'_, T> {
        // SAFETY: `sem` is initialised (type invariant).
        unsafe { bindings::down_read(self.sem.get()) };
        // INVARIANT: held shared from here until the guard drops.
        ReadGuard {
            sem: self,
            _not_send: NotThreadSafe,
        }
    }

    /// Takes the semaphore shared if no writer holds or waits for it (`None` otherwise).
    /// Never sleeps, so atomic context may use it.
    pub(crate) fn try_read(&self) -> Option<ReadGuard<'_, T>> {
        // SAFETY: `sem` is initialised (type invariant).
        let taken = unsafe { bindings::down_read_trylock(self.sem.get()) } != 0;
        // INVARIANT: when `taken`, held shared from here until the guard drops.
        taken.then(|| ReadGuard {
            sem: self,
            _not_send: NotThreadSafe,
        })
    }

    /// Takes the semaphore exclusive, sleeping while anyone else holds it.
    pub(crate) fn write(&self) -> WriteGuard<'_, T> {
        // SAFETY: `sem` is initialised (type invariant).
        unsafe { bindings::down_write(self.sem.get()) };
        // INVARIANT: held exclusive from here until the guard drops.
        WriteGuard {
            sem: self,
            _not_send: NotThreadSafe,
        }
    }

    /// Takes the semaphore exclusive if nobody holds it (`None` otherwise).
    pub(crate) fn try_write(&self) -> Option<WriteGuard<'_, T>> {
        // SAFETY: `sem` is initialised (type invariant).
        let taken = unsafe { bindings::down_write_trylock(self.sem.get()) } != 0;
        // INVARIANT: when `taken`, held exclusive from here until the guard drops.
        taken.then(|| WriteGuard {
            sem: self,
            _not_send: NotThreadSafe,
        })
    }
}

/// The semaphore held shared: `&T` for as long as it lives.
///
/// # Invariants
///
/// `sem.sem` is held shared by this thread for the guard's lifetime.
pub(crate) struct ReadGuard<'a, T> {
    sem: &'a RwSem<T>,
    /// Released on the thread that took it.
    _not_send: NotThreadSafe,
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: Held shared (type invariant): no writer exists while the guard lives.
        unsafe { &*self.sem.data.get() }
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: Held shared by this thread (type invariant); released once, here.
        unsafe { bindings::up_read(self.sem.sem.get()) };
    }
}

/// The semaphore held exclusive: `&mut T` for as long as it lives.
///
/// # Invariants
///
/// `sem.sem` is held exclusive by this thread for the guard's lifetime.
pub(crate) struct WriteGuard<'a, T> {
    sem: &'a RwSem<T>,
    /// Released on the thread that took it.
    _not_send: NotThreadSafe,
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: Held exclusive (type invariant): nobody else touches the data.
        unsafe { &*self.sem.data.get() }
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: Held exclusive (type invariant), and `&mut self` makes this borrow unique.
        unsafe { &mut *self.sem.data.get() }
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: Held exclusive by this thread (type invariant); released once, here.
        unsafe { bindings::up_write(self.sem.sem.get()) };
    }
}
