// SPDX-License-Identifier: GPL-2.0

//! INTx delivered through an eventfd, with automatic masking.
//!
//! While INTx is enabled the function's legacy interrupt line is requested with an
//! [`IntxShared`] as its cookie. The hard-IRQ handler masks the line (with DisINTx when the
//! function supports it, else at the interrupt chip) and signals the trigger eventfd; the user
//! unmasks it through `SET_IRQS` or through an unmask eventfd (a VFIO core virqfd). The mask
//! state, and the user's virtual INTx-disable bit it depends on, live under an irq-saving
//! spinlock shared by the handler, the virqfd callbacks and process context.
//!
//! [`IntxLine`] owns the request: it exists only while the IRQ is requested, and dropping it
//! stops the unmask eventfd, frees the IRQ, and only then frees what the handler touches.

#![allow(unsafe_code)] // Transitional: this file still calls C directly.

use crate::kernel_ext::sync::{new_irqsave_spinlock, IrqSaveSpinLock};
use crate::{
    kernel_ext::bindings as vfio,
    kernel_ext::eventfd::EventFd,
    kernel_ext::pci::{OwnedDevice, PciDeviceExt},
};
use core::{
    ptr::{null_mut, NonNull},
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{
    bindings,
    error::to_result,
    ffi::{c_int, c_ulong, c_void},
    prelude::*,
    str::CString,
    types::Opaque,
};

/// The IRQ status flag that makes `disable_irq` mask at the chip at once (not lazily at the
/// next interrupt), which an exclusive, chip-masked INTx line needs.
const DISABLE_UNLAZY: c_ulong = bindings::IRQ_DISABLE_UNLAZY as c_ulong;

/// How a function's INTx is masked, decided at open.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntxMasking {
    /// The function implements PCI 2.3 INTx masking: DisINTx in the command register, with the
    /// pending state in the status register. The line may be shared.
    DisIntx,
    /// No usable DisINTx: the line is masked at the interrupt chip and must be exclusive.
    IrqChip,
}

/// What the handler, the unmask eventfd and process context share.
struct LineState {
    /// Whether the line is masked (DisINTx set or the IRQ disabled).
    masked: bool,
    /// The user's virtual INTx-disable bit (`IrqState::virq_disabled`, mirrored here for the
    /// contexts that cannot take the interrupt state's mutex).
    virq_disabled: bool,
}

/// The data of a requested INTx line: the IRQ handler's and the virqfd callbacks' cookie.
#[pin_data(PinnedDrop)]
struct IntxShared {
    pdev: OwnedDevice,
    irq: u32,
    masking: IntxMasking,
    #[pin]
    state: IrqSaveSpinLock<LineState>,
    /// Null, or an eventfd reference this slot owns (taken with [`EventFd::into_raw`]).
    /// Readers signal what they load without a reference of their own; a replaced reference
    /// is released only once no reader can still hold it (see [`IntxLine::set_trigger`]).
    trigger: AtomicPtr<bindings::eventfd_ctx>,
    /// The unmask virqfd; the VFIO core reads and writes the pointer under its own lock, this
    /// driver only hands out its address.
    unmask: Opaque<*mut vfio::virqfd>,
    /// The IRQ's name (`/proc/interrupts`); the IRQ core keeps a pointer to it.
    name: CString,
}

// SAFETY: Every field is either immutable after construction, behind the spinlock, atomic, or
// (`unmask`) accessed only by the VFIO core under its `virqfd_lock`.
unsafe impl Send for IntxShared {}
// SAFETY: As for `Send`: shared access goes through the lock, the atomic, or the VFIO core.
unsafe impl Sync for IntxShared {}

#[pinned_drop]
impl PinnedDrop for IntxShared {
    fn drop(self: Pin<&mut Self>) {
        let raw = self.trigger.swap(null_mut(), Ordering::AcqRel);
        if let Some(raw) = NonNull::new(raw) {
            // SAFETY: A non-null slot holds a reference from `EventFd::into_raw`; the IRQ is
            // free and the virqfd gone (see `IntxLine::drop`), so nobody else can use it.
            drop(unsafe { EventFd::from_raw(raw) });
        }
    }
}

impl IntxShared {
    /// Signals the trigger eventfd unless the user disabled INTx in the virtual command
    /// register.
    fn send(&self) {
        if self.state.lock().virq_disabled {
            return;
        }
        let trigger = self.trigger.load(Ordering::Acquire);
        if !trigger.is_null() {
            // SAFETY: The slot's reference is released only after every reader that could
            // have loaded it has finished: IRQ handlers (synchronize_irq), virqfd work
            // (flushed), and process context (serialised with the replacement by the
            // interrupt state's mutex).
            unsafe { EventFd::signal_raw(trigger) };
        }
    }

    /// Sets DisINTx if the function is asserting INTx; returns whether it was.
    fn check_and_mask(&self) -> bool {
        // SAFETY: The function is valid while `self.pdev` holds a reference; the PCI core
        // serialises the command and status register update.
        unsafe { bindings::pci_check_and_mask_intx(self.pdev.as_raw()) }
    }

    /// Clears DisINTx unless the function is asserting INTx; returns whether it cleared it.
    fn check_and_unmask(&self) -> bool {
        // SAFETY: As in `check_and_mask`.
        unsafe { bindings::pci_check_and_unmask_intx(self.pdev.as_raw()) }
    }

    /// Masks the line if it is not; returns whether it changed.
    fn mask(&self) -> bool {
        let mut state = self.state.lock();
        if state.masked {
            return false;
        }
        match self.masking {
            // SAFETY: The function is valid while `self.pdev` holds a reference.
            IntxMasking::DisIntx => unsafe { bindings::pci_intx(self.pdev.as_raw(), 0) },
            // SAFETY: `self.irq` is requested (by `IntxLine`) while `self` exists.
            IntxMasking::IrqChip => unsafe { bindings::disable_irq_nosync(self.irq) },
        }
        state.masked = true;
        true
    }

    /// Unmasks the line unless the user disabled INTx; returns whether an interrupt was found
    /// pending instead, which the caller must deliver (the line then stays masked).
    ///
    /// Runs in atomic context too (from the unmask eventfd's wakeup), so it must not signal an
    /// eventfd itself.
    fn unmask_line(&self) -> bool {
        let mut state = self.state.lock();
        if !state.masked || state.virq_disabled {
            return false;
        }
        let pending = match self.masking {
            IntxMasking::DisIntx => !self.check_and_unmask(),
            IntxMasking::IrqChip => {
                // SAFETY: `self.irq` is requested, and disabled once by the handler or by
                // `mask` since `masked` is set.
                unsafe { bindings::enable_irq(self.irq) };
                false
            }
        };
        state.masked = pending;
        pending
    }

    /// The hard-IRQ handler.
    ///
    /// # Safety
    ///
    /// `dev_id` must be the `IntxShared` the IRQ was requested with.
    unsafe extern "C" fn handle_irq(_irq: c_int, dev_id: *mut c_void) -> bindings::irqreturn_t {
        // SAFETY: `IntxLine` requests the IRQ with its pinned `IntxShared` as `dev_id` and
        // frees the IRQ (waiting for running handlers) before freeing it.
        let this = unsafe { &*dev_id.cast::<IntxShared>() };
        let handled = {
            let mut state = this.state.lock();
            let handled = match this.masking {
                IntxMasking::IrqChip => {
                    // SAFETY: Called for `this.irq`, which is requested.
                    unsafe { bindings::disable_irq_nosync(this.irq) };
                    true
                }
                // Masked already, or not asserted by this function: the line may be shared.
                IntxMasking::DisIntx => !state.masked && this.check_and_mask(),
            };
            if handled {
                state.masked = true;
            }
            handled
        };
        if !handled {
            return bindings::irqreturn_IRQ_NONE;
        }
        this.send();
        bindings::irqreturn_IRQ_HANDLED
    }

    /// The unmask virqfd's handler, called when the user signals the unmask eventfd (in
    /// atomic context, under the eventfd's wait-queue lock).
    ///
    /// # Safety
    ///
    /// `data` must be the `IntxShared` the virqfd was enabled with.
    unsafe extern "C" fn virqfd_unmask(_opaque: *mut c_void, data: *mut c_void) -> c_int {
        // SAFETY: `IntxLine::enable_unmask_eventfd` passes its pinned `IntxShared`, and
        // `IntxLine::drop` disables the virqfd (waiting for its callbacks) before freeing it.
        let this = unsafe { &*data.cast::<IntxShared>() };
        c_int::from(this.unmask_line())
    }

    /// The unmask virqfd's deferred work: delivers an interrupt found pending at unmask.
    ///
    /// # Safety
    ///
    /// As for [`Self::virqfd_unmask`].
    unsafe extern "C" fn virqfd_send(_opaque: *mut c_void, data: *mut c_void) {
        // SAFETY: As in `virqfd_unmask`: the virqfd's work is flushed before `data` is freed.
        let this = unsafe { &*data.cast::<IntxShared>() };
        this.send();
    }
}

/// INTx, enabled: the line is requested with [`IntxShared`] as its cookie.
///
/// # Invariants
///
/// `shared.irq` is requested with `shared` as `dev_id` for as long as this value exists.
pub(crate) struct IntxLine {
    shared: Pin<KBox<IntxShared>>,
}

impl IntxLine {
    /// Requests `pdev`'s INTx line, delivering to `trigger`; the line starts masked when the
    /// user disabled INTx in the virtual command register (`virq_disabled`).
    pub(crate) fn enable(
        pdev: &OwnedDevice,
        masking: IntxMasking,
        virq_disabled: bool,
        trigger: Option<EventFd>,
    ) -> Result<Self> {
        let irq = pdev.intx_irq().ok_or(ENODEV)?;
        let name = CString::try_from_fmt(fmt!("vfio-intx({})", pdev.as_device().name()))?;
        let trigger = trigger.map_or(null_mut(), |t| t.into_raw().as_ptr());
        let shared = KBox::pin_init(
            pin_init!(IntxShared {
                pdev: pdev.clone(),
                irq,
                masking,
                state <- new_irqsave_spinlock!(
                    LineState {
                        masked: virq_disabled,
                        virq_disabled,
                    },
                    "vfio_pci_rs_intx"
                ),
                trigger: AtomicPtr::new(trigger),
                unmask: Opaque::new(null_mut()),
                name,
            }),
            GFP_KERNEL,
        );
        let shared = match shared {
            Ok(shared) => shared,
            Err(e) => {
                if let Some(raw) = NonNull::new(trigger) {
                    // SAFETY: `raw` came from `into_raw` above and was not stored anywhere.
                    drop(unsafe { EventFd::from_raw(raw) });
                }
                return Err(e);
            }
        };

        let flags = match masking {
            IntxMasking::DisIntx => {
                // The physical DisINTx follows the initial mask state.
                // SAFETY: The function is valid.
                unsafe { bindings::pci_intx(pdev.as_raw(), c_int::from(!virq_disabled)) };
                bindings::IRQF_SHARED
            }
            IntxMasking::IrqChip => {
                // SAFETY: `irq` is the function's valid IRQ number.
                unsafe { bindings::irq_modify_status(irq, 0, DISABLE_UNLAZY) };
                if virq_disabled {
                    bindings::IRQF_NO_AUTOEN
                } else {
                    0
                }
            }
        };
        let cookie: *const IntxShared = &*shared;
        // SAFETY: The handler matches the IRQ core's signature; `cookie` points to pinned heap
        // memory that outlives the request (freed only after `free_irq` in `drop`); `name` is
        // NUL-terminated and lives in the same allocation.
        let ret = unsafe {
            bindings::request_threaded_irq(
                irq,
                Some(IntxShared::handle_irq),
                None,
                flags as c_ulong,
                shared.name.as_char_ptr(),
                cookie.cast_mut().cast(),
            )
        };
        if let Err(e) = to_result(ret) {
            if masking == IntxMasking::IrqChip {
                // SAFETY: As above.
                unsafe { bindings::irq_modify_status(irq, DISABLE_UNLAZY, 0) };
            }
            return Err(e);
        }
        // INVARIANT: The IRQ is requested with `shared` as `dev_id`.
        Ok(Self { shared })
    }

    /// Replaces the trigger eventfd (`None` stops delivery); the old one is released once no
    /// handler or deferred work can still be signalling it.
    pub(crate) fn set_trigger(&self, trigger: Option<EventFd>) {
        let new = trigger.map_or(null_mut(), |t| t.into_raw().as_ptr());
        let old = self.shared.trigger.swap(new, Ordering::AcqRel);
        if let Some(old) = NonNull::new(old) {
            // SAFETY: The IRQ is requested (type invariant); the virqfd slot is ours and
            // valid while `shared` lives.
            unsafe {
                bindings::synchronize_irq(self.shared.irq);
                vfio::vfio_virqfd_flush_thread(self.shared.unmask.get());
            }
            // SAFETY: `old` was the slot's reference (from `into_raw`), and no reader can
            // still hold it (see `IntxShared::send`).
            drop(unsafe { EventFd::from_raw(old) });
        }
    }

    /// Signals the trigger eventfd as the handler would (a loopback trigger from the user).
    pub(crate) fn send(&self) {
        self.shared.send();
    }

    /// Masks the line; returns whether it was unmasked.
    pub(crate) fn mask(&self) -> bool {
        self.shared.mask()
    }

    /// Unmasks the line, delivering an interrupt found pending instead.
    pub(crate) fn unmask(&self) {
        if self.shared.unmask_line() {
            self.shared.send();
        }
    }

    /// Records the user's virtual INTx-disable bit for the handler and the virqfd callbacks.
    pub(crate) fn set_virq_disabled(&self, disabled: bool) {
        self.shared.state.lock().virq_disabled = disabled;
    }

    /// Unmasks the line whenever the user signals the eventfd `fd`. `EBUSY` if one is set.
    pub(crate) fn enable_unmask_eventfd(&self, fd: i32) -> Result {
        let cookie: *const IntxShared = &*self.shared;
        // SAFETY: The callbacks match the VFIO core's signatures and get `cookie`, which stays
        // valid until `drop` disables the virqfd; the slot lives in the same allocation.
        to_result(unsafe {
            vfio::vfio_virqfd_enable(
                cookie.cast_mut().cast(),
                Some(IntxShared::virqfd_unmask),
                Some(IntxShared::virqfd_send),
                cookie.cast_mut().cast(),
                self.shared.unmask.get(),
                fd,
            )
        })
    }

    /// Stops unmasking through an eventfd, waiting for callbacks in flight.
    pub(crate) fn disable_unmask_eventfd(&self) {
        // SAFETY: The slot is valid while `shared` lives; the VFIO core handles an empty one.
        unsafe { vfio::vfio_virqfd_disable(self.shared.unmask.get()) };
    }
}

impl Drop for IntxLine {
    fn drop(&mut self) {
        self.disable_unmask_eventfd();
        let cookie: *const IntxShared = &*self.shared;
        // SAFETY: By the type invariant the IRQ is requested with `cookie`; `free_irq` waits
        // for running handlers, after which nothing but `self` refers to `shared`.
        unsafe { bindings::free_irq(self.shared.irq, cookie.cast_mut().cast()) };
        if self.shared.masking == IntxMasking::IrqChip {
            // SAFETY: `irq` is the function's valid IRQ number.
            unsafe { bindings::irq_modify_status(self.shared.irq, DISABLE_UNLAZY, 0) };
        }
        // `shared` is dropped after this, releasing the trigger and the name.
    }
}
