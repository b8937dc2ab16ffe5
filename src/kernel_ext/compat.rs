// SPDX-License-Identifier: GPL-2.0

//! The differences between the supported kernels (7.2 and 7.3), in one place: the APIs of
//! their kernel crates and bindings, and the rules their own vfio-pci changed, which this
//! driver follows on each kernel.
//!
//! Every item the rest of the layer uses has the same signature on both kernels; only its
//! body (or, for the `kernel::io` traits, the implementation) differs, under
//! `cfg(kernel_7_3)`, which Kbuild sets for a tree of version 7.3 or later. Nothing outside
//! this file names the cfg, and the driver logic never sees a version: supporting another
//! kernel means editing this file (and Kbuild's version test) alone.
//!
//! What differs:
//!
//! - pin-init: 7.3 renamed the method that runs a pinned initializer on a slot,
//!   `PinInit::__pinned_init` (7.2), to `PinInit::__init` (7.2's `__init` belonged to the
//!   `Init` trait).
//! - bindgen: 7.3 generates `enum irqreturn` as a newtype (`struct irqreturn(c_uint)`, with
//!   associated constants) instead of a `c_uint` alias, so an IRQ handler's C return value is
//!   built differently.
//! - `kernel::error::code`: 7.2's has no `EOPNOTSUPP` (7.3 added it); [`eopnotsupp`] builds
//!   it from the C value on 7.2.
//! - vfio-pci: 7.3's `vfio_pci_ioeventfd()` (`drivers/vfio/pci/vfio_pci_rdwr.c`) no longer
//!   refuses 8-byte ioeventfds (7.2's returned `EINVAL` for them), so this driver takes them
//!   on 7.3 only ([`IOEVENTFD_64`]), to answer as the kernel's own vfio-pci does.
//! - vfio-pci: 7.3 offers the ERR IRQ index (AER error reports) on every function, 7.2 on PCI
//!   Express functions only (`vfio_pci_get_irq_count()`, `vfio_pci_ioctl_get_irq_info()`,
//!   `vfio_pci_set_irqs_ioctl()`); [`ERR_IRQ_ON_CONVENTIONAL_PCI`].
//! - `kernel::io`: 7.2's `Io` trait is implemented by a mapping itself (`addr()`, `maxsize()`,
//!   and `IoCapable<T>::io_read(&self, address)` per width); 7.3's splits it into a backend
//!   (`IoBackend`, whose `View<'a, T>` is a typed, projectable pointer into the mapping, and
//!   `IoCapable<T>::io_read(view)`) and `IoBase<'a>`, implemented by a cheap handle (here
//!   `&IoMap`) that returns a view of the whole mapping; its `Io<'a>` accessors take the handle
//!   by value. [`IoMap`](super::iomap::IoMap) implements whichever the kernel has (module
//!   `io` below); the accessors its users call (`try_read8()`, ... on `&IoMap`) are the same.
//!   7.3 checks an access's alignment on the address (cookie plus offset) where 7.2 checks the
//!   offset; the same for every cookie this driver maps (BARs and ROMs are aligned to their
//!   size, I/O port cookies to the port BAR's).
//!
//! Not a difference: the dma-buf export of BAR ranges ([`dma_buf`](super::dma_buf),
//! `VFIO_DEVICE_FEATURE_DMA_BUF`): 7.2 and 7.3 have the same `vfio_pci_dmabuf.c`, the same
//! revoke and restore calls in `vfio_pci_core.c` and `vfio_pci_config.c`, the same
//! `dma-buf.c`, `dma-buf-mapping.c` and P2PDMA provider API; iommufd's `pages.c` differs only
//! in the order in which its PFN reader looks at a dma-buf's range, which no answer of an
//! ioctl depends on.
//!
//! Not a difference either: the IRQ bypass manager (`include/linux/irqbypass.h`,
//! `virt/lib/irqbypass.c`) is identical in both, so [`irqbypass`](super::irqbypass) needs
//! nothing here.

use kernel::{
    bindings,
    ffi::c_uint,
    prelude::*, //
};

/// `EOPNOTSUPP` ("operation not supported"), which 7.3's kernel crate names and 7.2's does
/// not.
pub(crate) fn eopnotsupp() -> Error {
    #[cfg(kernel_7_3)]
    {
        EOPNOTSUPP
    }
    #[cfg(not(kernel_7_3))]
    {
        Error::from_errno(-(bindings::EOPNOTSUPP as i32))
    }
}

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

/// Whether `VFIO_DEVICE_IOEVENTFD` takes 8-byte writes, as the kernel's vfio-pci does.
pub(crate) const IOEVENTFD_64: bool = cfg!(kernel_7_3);

/// Whether the kernel's vfio-pci offers the ERR IRQ index on functions that are not PCI
/// Express.
pub(crate) const ERR_IRQ_ON_CONVENTIONAL_PCI: bool = cfg!(kernel_7_3);

/// The kernel crate's I/O traits for [`IoMap`](crate::kernel_ext::iomap::IoMap), in 7.2's form.
#[cfg(not(kernel_7_3))]
mod io {
    use crate::kernel_ext::iomap::IoMap;
    use kernel::{
        bindings,
        ffi::c_void,
        io::{
            Io,
            IoCapable, //
        }, //
    };

    impl Io for IoMap {
        #[inline]
        fn addr(&self) -> usize {
            self.cookie() as usize
        }

        #[inline]
        fn maxsize(&self) -> usize {
            self.size()
        }
    }

    /// Implements [`IoCapable`] on [`IoMap`] for `$ty` with the iomap accessors `$read` and
    /// `$write`.
    macro_rules! impl_iomap_io_capable {
        ($ty:ty, $read:ident, $write:ident) => {
            impl IoCapable<$ty> for IoMap {
                #[inline]
                unsafe fn io_read(&self, address: usize) -> $ty {
                    // SAFETY: By the trait's safety requirement `address` and the bytes after it
                    // up to the access width lie inside the mapping, whose cookie the type
                    // invariant of `IoMap` says is valid for iomap accessors. The accessor
                    // returns the value zero-extended, so the cast keeps every bit read.
                    unsafe { bindings::$read(address as *const c_void) as $ty }
                }

                #[inline]
                unsafe fn io_write(&self, value: $ty, address: usize) {
                    // SAFETY: As in `io_read`.
                    unsafe { bindings::$write(value, address as *mut c_void) }
                }
            }
        };
    }

    impl_iomap_io_capable!(u8, ioread8, iowrite8);
    impl_iomap_io_capable!(u16, ioread16, iowrite16);
    impl_iomap_io_capable!(u32, ioread32, iowrite32);
    impl_iomap_io_capable!(u64, __ioread64_lo_hi, __iowrite64_lo_hi);
}

/// The kernel crate's I/O traits for [`IoMap`](crate::kernel_ext::iomap::IoMap), in 7.3's form.
#[cfg(kernel_7_3)]
mod io {
    use crate::kernel_ext::iomap::IoMap;
    use core::marker::PhantomData;
    use kernel::{
        bindings,
        io::{
            IoBackend,
            IoBase,
            IoCapable,
            Region, //
        },
        ptr::KnownSize, //
    };

    /// A typed part of an [`IoMap`], as 7.3's accessors project it.
    ///
    /// # Invariants
    ///
    /// The address of `ptr` is an iomap cookie valid for `ioread*` and `iowrite*` for the size of
    /// `ptr`'s target, for `'a`.
    pub(crate) struct IoMapView<'a, T: ?Sized> {
        ptr: *mut T,
        _map: PhantomData<&'a IoMap>,
    }

    impl<T: ?Sized> Clone for IoMapView<'_, T> {
        #[inline]
        fn clone(&self) -> Self {
            *self
        }
    }

    impl<T: ?Sized> Copy for IoMapView<'_, T> {}

    impl<'a, T: ?Sized + KnownSize> IoBase<'a> for IoMapView<'a, T> {
        type Backend = IoMapBackend;
        type Target = T;

        #[inline]
        fn as_view(self) -> Self {
            self
        }
    }

    impl<'a> IoBase<'a> for &'a IoMap {
        type Backend = IoMapBackend;
        type Target = Region;

        #[inline]
        fn as_view(self) -> IoMapView<'a, Region> {
            // INVARIANT: By the type invariant of `IoMap`, its cookie is valid for its size for
            // as long as it can be reached, so for `'a`.
            IoMapView {
                ptr: Region::ptr_from_raw_parts_mut(self.cookie().cast(), self.size()),
                _map: PhantomData,
            }
        }
    }

    /// The I/O backend of [`IoMap`]: `ioread*()` and `iowrite*()` on its cookie.
    pub(crate) struct IoMapBackend;

    impl IoBackend for IoMapBackend {
        type View<'a, T: ?Sized + KnownSize> = IoMapView<'a, T>;

        #[inline]
        fn as_ptr<'a, T: ?Sized + KnownSize>(view: Self::View<'a, T>) -> *mut T {
            view.ptr
        }

        #[inline]
        unsafe fn project_view<'a, T: ?Sized + KnownSize, U: ?Sized + KnownSize>(
            _view: Self::View<'a, T>,
            ptr: *mut U,
        ) -> Self::View<'a, U> {
            // INVARIANT: By the safety requirement `ptr` is a projection of `view`'s pointer, so
            // it lies inside the same mapping.
            IoMapView {
                ptr,
                _map: PhantomData,
            }
        }
    }

    /// Implements [`IoCapable`] on [`IoMapBackend`] for `$ty` with the iomap accessors `$read`
    /// and `$write`.
    macro_rules! impl_iomap_io_capable {
        ($ty:ty, $read:ident, $write:ident) => {
            impl IoCapable<$ty> for IoMapBackend {
                #[inline]
                fn io_read(view: IoMapView<'_, $ty>) -> $ty {
                    // SAFETY: By the type invariant of `IoMapView` the address is a cookie valid
                    // for iomap accessors of the view's width. The accessor returns the value
                    // zero-extended, so the cast keeps every bit read.
                    unsafe { bindings::$read(view.ptr.cast_const().cast()) as $ty }
                }

                #[inline]
                fn io_write(view: IoMapView<'_, $ty>, value: $ty) {
                    // SAFETY: As in `io_read`.
                    unsafe { bindings::$write(value, view.ptr.cast()) }
                }
            }
        };
    }

    impl_iomap_io_capable!(u8, ioread8, iowrite8);
    impl_iomap_io_capable!(u16, ioread16, iowrite16);
    impl_iomap_io_capable!(u32, ioread32, iowrite32);
    impl_iomap_io_capable!(u64, __ioread64_lo_hi, __iowrite64_lo_hi);
}
