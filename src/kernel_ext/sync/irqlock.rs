// SPDX-License-Identifier: GPL-2.0

//! A spinlock that disables local interrupts while held (`spin_lock_irqsave`), for state a
//! hard-IRQ handler shares with process context.
//!
//! The kernel crate's `SpinLock` does not disable interrupts, so process context holding it
//! could be interrupted by a handler spinning on the same lock on the same CPU. This backend
//! plugs `spin_lock_irqsave`/`spin_unlock_irqrestore` into the crate's generic [`Lock`], so the
//! guard, pinning and lockdep class work as for every other lock.

use kernel::{
    bindings,
    ffi::{
        c_char,
        c_ulong, //
    },
    sync::lock::{
        Backend,
        Lock, //
    }, //
};

use crate::kernel_ext::bindings as vfio;

/// The backend: a `spinlock_t`, locked with interrupts saved and disabled.
pub(crate) struct IrqSaveSpinLockBackend;

/// A spinlock whose guard keeps local interrupts disabled.
pub(crate) type IrqSaveSpinLock<T> = Lock<T, IrqSaveSpinLockBackend>;

/// Creates an [`IrqSaveSpinLock`] initialiser with its own lockdep class.
macro_rules! new_irqsave_spinlock {
    ($inner:expr, $name:literal $(,)?) => {
        $crate::kernel_ext::sync::IrqSaveSpinLock::new(
            $inner,
            ::kernel::c_str!($name),
            ::kernel::static_lock_class!(),
        )
    };
}
pub(crate) use new_irqsave_spinlock;

// SAFETY: `spin_lock_irqsave` gives mutual exclusion between `lock` and `unlock`; `relock`
// uses the default, which calls `lock` again, the same method.
unsafe impl Backend for IrqSaveSpinLockBackend {
    type State = bindings::spinlock_t;
    /// The interrupt flags saved at lock time.
    type GuardState = c_ulong;

    unsafe fn init(ptr: *mut Self::State, name: *const c_char, key: *mut bindings::lock_class_key) {
        // SAFETY: The caller passes a pointer valid for writes and a name and key valid forever.
        unsafe { bindings::__spin_lock_init(ptr, name, key) }
    }

    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: The caller guarantees the lock was initialised.
        unsafe { vfio::vfio_pci_rs_spin_lock_irqsave(ptr) }
    }

    unsafe fn try_lock(ptr: *mut Self::State) -> Option<Self::GuardState> {
        let mut flags: c_ulong = 0;
        // SAFETY: The caller guarantees the lock was initialised; `flags` is a local the
        // helper writes the saved interrupt state to.
        let taken = unsafe { vfio::vfio_pci_rs_spin_trylock_irqsave(ptr, &mut flags) };
        (taken != 0).then_some(flags)
    }

    unsafe fn unlock(ptr: *mut Self::State, flags: &Self::GuardState) {
        // SAFETY: The caller owns the lock; `flags` are the ones saved when it was taken.
        unsafe { vfio::vfio_pci_rs_spin_unlock_irqrestore(ptr, *flags) }
    }

    unsafe fn assert_is_held(ptr: *mut Self::State) {
        // SAFETY: The caller guarantees the lock was initialised.
        unsafe { bindings::spin_assert_is_held(ptr) }
    }
}
