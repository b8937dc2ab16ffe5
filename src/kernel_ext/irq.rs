// SPDX-License-Identifier: GPL-2.0

//! IRQ requests (`include/linux/interrupt.h`): a handler registered on an IRQ line, freed on
//! drop, and the per-line operations a driver with a requested line may use.
//!
//! The kernel crate has `kernel::irq::{Registration, Flags}` of the same shape, but they do not
//! fit a VFIO bus driver: a registration needs an `IrqRequest` made from a `Device<Bound>`
//! (this driver requests lines in ioctls, where it holds no bound device, only an owned
//! reference), it is Devres-managed, its name must be `'static` (VFIO names every line after
//! its function and vector), and `Flags` cannot be read outside the kernel crate. This module
//! keeps their shape (a pinned [`Registration`] owning its handler, a [`Handler`] trait
//! returning [`IrqReturn`], [`Flags`] constants) for an IRQ number the driver got from the PCI
//! core, and adds what VFIO's INTx masking needs: disabling and enabling the line and its
//! `IRQ_DISABLE_UNLAZY` status.

use crate::kernel_ext::compat;
use crate::kernel_ext::error::to_result;
use crate::kernel_ext::pci::msi::IrqVectorsAllocation;
use core::marker::PhantomPinned;
use kernel::{
    bindings,
    ffi::{
        c_int,
        c_ulong,
        c_void, //
    },
    prelude::*,
    str::CString, //
    sync::Arc,    //
};

pub(crate) use kernel::irq::IrqReturn;

/// Flags of an IRQ request (`IRQF_*`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flags(c_ulong);

impl Flags {
    /// No flags: an exclusive line, enabled at request.
    pub(crate) const NONE: Flags = Flags(0);
    /// The line may be shared with other devices' handlers.
    pub(crate) const SHARED: Flags = Flags(bindings::IRQF_SHARED as c_ulong);
    /// The line is not enabled by the request; the driver enables it with
    /// [`RequestedIrq::enable`].
    pub(crate) const NO_AUTOEN: Flags = Flags(bindings::IRQF_NO_AUTOEN as c_ulong);
}

/// Status flags of an IRQ line (`IRQ_*` of `include/linux/irq.h`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatusFlags(c_ulong);

impl StatusFlags {
    /// No flag.
    pub(crate) const NONE: StatusFlags = StatusFlags(0);
    /// `disable_irq` masks the line at the chip at once instead of lazily at the next
    /// interrupt.
    pub(crate) const DISABLE_UNLAZY: StatusFlags =
        StatusFlags(bindings::IRQ_DISABLE_UNLAZY as c_ulong);
}

/// A Linux IRQ number of an interrupt of a function bound to this driver: its INTx line or
/// one of its MSI/MSI-X vectors. Only the PCI layer makes one, from an `OwnedDevice`, so the
/// IRQ functions here never act on the line of a function another driver owns.
///
/// # Invariants
///
/// A vector's line holds a reference to the vector allocation it belongs to, which therefore
/// stays allocated while the line (or a registration made with it) exists.
#[derive(Clone)]
pub(crate) struct IrqLine {
    irq: u32,
    _vectors: Option<Arc<IrqVectorsAllocation>>,
}

impl IrqLine {
    /// The INTx line numbered `irq`, found on a function this driver owns.
    pub(in crate::kernel_ext) fn intx(irq: u32) -> Self {
        Self {
            irq,
            _vectors: None,
        }
    }

    /// The line numbered `irq`, a vector of `vectors`.
    pub(in crate::kernel_ext) fn vector(irq: u32, vectors: &Arc<IrqVectorsAllocation>) -> Self {
        // INVARIANT: The line holds a reference to its allocation.
        Self {
            irq,
            _vectors: Some(vectors.clone()),
        }
    }

    /// The Linux IRQ number, for the calls of this layer.
    pub(in crate::kernel_ext) fn number(&self) -> u32 {
        self.irq
    }
}

/// Clears `clear` and sets `set` in the status of IRQ line `irq` (`irq_modify_status`); an
/// IRQ number without a descriptor is ignored.
pub(crate) fn modify_status(irq: &IrqLine, clear: StatusFlags, set: StatusFlags) {
    // SAFETY: `irq_modify_status` looks the descriptor up and returns if there is none; it
    // takes the descriptor's lock itself.
    unsafe { bindings::irq_modify_status(irq.irq, clear.0, set.0) };
}

/// A handler of a requested IRQ line, called in hard-IRQ context.
pub(crate) trait Handler: Sync {
    /// Handles an interrupt of `irq`, returning whether it came from this handler's device.
    fn handle(&self, irq: &RequestedIrq) -> IrqReturn;
}

/// An IRQ line this driver has requested, lent by its [`Registration`].
///
/// # Invariants
///
/// `irq` is requested by the registration that lends this value, for as long as it is lent.
pub(crate) struct RequestedIrq {
    irq: u32,
    /// Keeps a vector's allocation alive until the IRQ is freed.
    _line: IrqLine,
}

impl RequestedIrq {
    /// Disables the line without waiting for running handlers (`disable_irq_nosync`); may be
    /// called from the handler. Disables nest: each needs an [`Self::enable`].
    pub(crate) fn disable_nosync(&self) {
        // SAFETY: `irq` is requested (type invariant); callable in any context.
        unsafe { bindings::disable_irq_nosync(self.irq) };
    }

    /// Undoes one [`Self::disable_nosync`] (or the `NO_AUTOEN` of the request) (`enable_irq`).
    pub(crate) fn enable(&self) {
        // SAFETY: `irq` is requested (type invariant); callable in any context.
        unsafe { bindings::enable_irq(self.irq) };
    }

    /// Waits for the handlers of the line running on other CPUs (`synchronize_irq`).
    pub(crate) fn synchronize(&self) {
        // SAFETY: `irq` is requested (type invariant).
        unsafe { bindings::synchronize_irq(self.irq) };
    }
}

/// A handler requested on an IRQ line (`request_threaded_irq` without a thread), freed
/// (`free_irq`, which waits for running handlers) when dropped.
///
/// # Invariants
///
/// While the value exists, `line.irq` is requested with the value's address as `dev_id`, with
/// [`Self::handle_irq_callback`] as the handler and `name` as the name.
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<T: Handler> {
    line: RequestedIrq,
    /// The IRQ's name (`/proc/interrupts`); the IRQ core keeps a pointer to it.
    name: CString,
    #[pin]
    handler: T,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: The registration is an IRQ number, a string and a `T`; the IRQ core only ever calls
// `T::handle` through a shared reference, which `Handler: Sync` allows from any CPU.
unsafe impl<T: Handler + Send> Send for Registration<T> {}
// SAFETY: Shared access only reaches `&T` (`T: Sync`) and the immutable number and name.
unsafe impl<T: Handler> Sync for Registration<T> {}

impl<T: Handler> Registration<T> {
    /// Requests `irq` with `flags`, named `name`, for the handler `handler` initialises.
    pub(crate) fn new(
        irq: IrqLine,
        flags: Flags,
        name: CString,
        handler: impl PinInit<T, Error>,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(&this in Self {
            line: RequestedIrq {
                irq: irq.irq,
                _line: irq.clone(),
            },
            name,
            handler <- handler,
            _pin: PhantomPinned,
            _: {
                // SAFETY: `this` points to the registration being initialised, whose `name`
                // and `handler` are initialised above and pinned: they stay valid until
                // `drop` frees the IRQ. The callback matches the IRQ core's signature.
                to_result(unsafe {
                    bindings::request_threaded_irq(
                        irq.irq,
                        Some(Self::handle_irq_callback),
                        None,
                        flags.0,
                        (*this.as_ptr()).name.as_char_ptr(),
                        this.as_ptr().cast::<c_void>(),
                    )
                })?;
                // INVARIANT: The IRQ is requested with `this` as `dev_id`.
            },
        })
    }

    /// The handler.
    pub(crate) fn handler(&self) -> &T {
        &self.handler
    }

    /// The requested line.
    pub(crate) fn line(&self) -> &RequestedIrq {
        &self.line
    }

    /// # Safety
    ///
    /// `ptr` must be the `dev_id` of a live [`Registration<T>`] (see the type invariant).
    unsafe extern "C" fn handle_irq_callback(
        _irq: c_int,
        ptr: *mut c_void,
    ) -> bindings::irqreturn_t {
        // SAFETY: By the type invariant `ptr` is the registration, which outlives the request
        // (`drop` frees the IRQ, waiting for running handlers, before it goes away).
        let this = unsafe { &*ptr.cast::<Self>() };
        compat::irqreturn(this.handler.handle(&this.line))
    }
}

#[pinned_drop]
impl<T: Handler> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        let cookie: *const Self = &*self;
        // SAFETY: By the type invariant the IRQ is requested with `cookie`; `free_irq` waits
        // for running handlers, after which nothing refers to `self` any more.
        unsafe { bindings::free_irq(self.line.irq, cookie.cast_mut().cast()) };
    }
}
