// SPDX-License-Identifier: GPL-2.0

//! Global locks that initialise themselves on first use.
//!
//! The kernel crate's [`kernel::sync::global_lock!`] declares a static lock that must be
//! initialised by an `unsafe` call before anything else touches it, typically from module
//! init. [`lazy_global_lock!`] declares the same static lock wrapped in a [`LazyGlobalLock`],
//! which initialises it exactly once, on the first [`LazyGlobalLock::lock`], so every use of
//! it is safe, whatever runs first.

use core::sync::atomic::{
    AtomicU8,
    Ordering, //
};
use kernel::sync::lock::{
    GlobalGuard,
    GlobalLock,
    GlobalLockBackend, //
};

/// `state`: nobody has started to initialise the lock.
const UNINIT: u8 = 0;
/// `state`: one thread is initialising the lock.
const INITIALISING: u8 = 1;
/// `state`: the lock is initialised.
const READY: u8 = 2;

/// A [`GlobalLock`] initialised on first use; declared with [`lazy_global_lock!`].
///
/// # Invariants
///
/// `inner` is initialised once `state` reads [`READY`]; it is initialised only by the one
/// thread that moved `state` from [`UNINIT`] to [`INITIALISING`].
pub(crate) struct LazyGlobalLock<B: GlobalLockBackend> {
    inner: GlobalLock<B>,
    state: AtomicU8,
}

impl<B: GlobalLockBackend> LazyGlobalLock<B> {
    /// Creates the lock, not initialised yet. Use [`lazy_global_lock!`] instead.
    ///
    /// # Safety
    ///
    /// The type `B` must not be used with any other lock.
    #[doc(hidden)]
    pub(crate) const unsafe fn new(data: B::Item) -> Self {
        Self {
            // SAFETY: `B` is used with no other lock (the safety requirement of this
            // function); `init` is called before any other method, by `lock`.
            inner: unsafe { GlobalLock::new(data) },
            // INVARIANT: Nobody has initialised the lock.
            state: AtomicU8::new(UNINIT),
        }
    }

    /// Locks the lock, initialising it first if this is its first use.
    #[inline]
    pub(crate) fn lock(&'static self) -> GlobalGuard<B> {
        if self.state.load(Ordering::Acquire) != READY {
            self.init();
        }
        self.inner.lock()
    }

    /// Initialises the lock, or waits until the thread doing it is done. The wait is short:
    /// initialising a lock only writes its fields.
    #[cold]
    fn init(&'static self) {
        if self
            .state
            .compare_exchange(UNINIT, INITIALISING, Ordering::Acquire, Ordering::Acquire)
            .is_ok()
        {
            // SAFETY: This thread moved `state` out of `UNINIT`, which happens once, so this
            // is the only call of `init`; no other method of `inner` ran before it, since
            // they all wait for `READY` first.
            unsafe { self.inner.init() };
            // INVARIANT: `inner` was just initialised.
            self.state.store(READY, Ordering::Release);
            return;
        }
        while self.state.load(Ordering::Acquire) != READY {
            core::hint::spin_loop();
        }
    }
}

/// Declares a static [`kernel::sync::Mutex`] that initialises itself on first use.
///
/// ```ignore
/// lazy_global_lock! {
///     static LIST: Mutex<KVec<u32>> = KVec::new();
/// }
/// LIST.lock().push(1, GFP_KERNEL)?;
/// ```
macro_rules! lazy_global_lock {
    {
        $(#[$meta:meta])* $pub:vis static $name:ident: Mutex<$valuety:ty> = $value:expr;
    } => {
        #[doc = ::core::concat!("Backend type of [`static@", ::core::stringify!($name), "`].")]
        #[allow(non_camel_case_types, unreachable_pub)]
        $pub enum $name {}

        // The lock class key of a static lock is a static too (`static_lock_class!`).
        #[allow(unsafe_code)]
        impl ::kernel::sync::lock::GlobalLockBackend for $name {
            const NAME: &'static ::kernel::str::CStr =
                ::kernel::c_str!(::core::stringify!($name));
            type Item = $valuety;
            type Backend = ::kernel::sync::lock::mutex::MutexBackend;

            fn get_lock_class() -> ::core::pin::Pin<&'static ::kernel::sync::LockClassKey> {
                ::kernel::static_lock_class!()
            }
        }

        $(#[$meta])*
        #[allow(unsafe_code)]
        $pub static $name: $crate::kernel_ext::lazy_lock::LazyGlobalLock<$name> = {
            // Outside the unsafe block below.
            let init: $valuety = $value;
            // SAFETY: `$name`, declared just above, is the backend of this lock only.
            unsafe { $crate::kernel_ext::lazy_lock::LazyGlobalLock::new(init) }
        };
    };
}
pub(crate) use lazy_global_lock;
