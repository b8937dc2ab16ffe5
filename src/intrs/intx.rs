// SPDX-License-Identifier: GPL-2.0

//! INTx delivered through an eventfd, with automatic masking.
//!
//! While INTx is enabled the function's legacy interrupt line is requested with an
//! [`IntxShared`] as its handler. The hard-IRQ handler masks the line (with DisINTx when the
//! function supports it, else at the interrupt chip) and signals the trigger eventfd; the user
//! unmasks it through `SET_IRQS` or through an unmask eventfd (a VFIO core virqfd). The mask
//! state lives under an irq-saving spinlock shared by the handler, the virqfd callbacks and
//! process context; the user's virtual INTx-disable bit, which an unmask depends on, changes
//! under it too, and is read without it to decide whether to signal.
//!
//! [`IntxLine`] owns the request: it exists only while the IRQ is requested, and dropping it
//! stops the unmask eventfd, frees the IRQ, and only then frees what the handler touches.

use super::name;
use crate::kernel_ext::sync::{
    new_irqsave_spinlock,
    IrqSaveSpinLock, //
};
use crate::kernel_ext::{
    eventfd::{
        EventFd,
        EventFdSlot, //
    },
    irq::{
        self,
        Flags,
        IrqLine,
        IrqReturn,
        Registration,
        RequestedIrq,
        StatusFlags, //
    },
    pci::{
        OwnedDevice,
        PciDeviceExt, //
    },
    vfio::virqfd::{
        Virqfd,
        VirqfdHandler, //
    }, //
};
use kernel::{
    prelude::*,
    sync::atomic::{
        Atomic,
        Relaxed, //
    }, //
};

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
}

/// The handler of a requested INTx line, which the unmask virqfd reaches too.
#[pin_data]
struct IntxShared {
    pdev: OwnedDevice,
    masking: IntxMasking,
    #[pin]
    state: IrqSaveSpinLock<LineState>,
    /// The user's virtual INTx-disable bit (`IrqState::virq_disabled`, mirrored here for the
    /// contexts that cannot take the interrupt state's mutex). Changed only with `state`'s
    /// lock held, so that an unmask sees it stable; read without the lock before signalling,
    /// as vfio-pci reads its `virq_disabled`.
    virq_disabled: Atomic<bool>,
    /// The trigger eventfd, signalled without a lock by the handler and the virqfd's work.
    trigger: EventFdSlot,
}

/// The requested line inside the unmask virqfd: the virqfd is disabled before the IRQ is
/// freed, and the IRQ freed before what the handler touches goes.
type IntxRegistration = Virqfd<Registration<IntxShared>>;

impl IntxShared {
    /// Signals the trigger eventfd unless the user disabled INTx in the virtual command
    /// register.
    fn send(&self) {
        if self.virq_disabled.load(Relaxed) {
            return;
        }
        self.trigger.signal();
    }

    /// Masks the line if it is not; returns whether it changed.
    fn mask(&self, line: &RequestedIrq) -> bool {
        let mut state = self.state.lock();
        if state.masked {
            return false;
        }
        match self.masking {
            IntxMasking::DisIntx => self.pdev.intx(false),
            IntxMasking::IrqChip => line.disable_nosync(),
        }
        state.masked = true;
        true
    }

    /// Unmasks the line unless the user disabled INTx; returns whether an interrupt was found
    /// pending instead, which the caller must deliver (the line then stays masked).
    ///
    /// Runs in atomic context too (from the unmask eventfd's wakeup), so it must not signal an
    /// eventfd itself.
    fn unmask_line(&self, line: &RequestedIrq) -> bool {
        let mut state = self.state.lock();
        if !state.masked || self.virq_disabled.load(Relaxed) {
            return false;
        }
        let pending = match self.masking {
            IntxMasking::DisIntx => !self.pdev.check_and_unmask_intx(),
            IntxMasking::IrqChip => {
                // Disabled once by the handler or by `mask` since `masked` is set.
                line.enable();
                false
            }
        };
        state.masked = pending;
        pending
    }
}

impl irq::Handler for IntxShared {
    fn handle(&self, line: &RequestedIrq) -> IrqReturn {
        let handled = {
            let mut state = self.state.lock();
            let handled = match self.masking {
                IntxMasking::IrqChip => {
                    line.disable_nosync();
                    true
                }
                // Masked already, or not asserted by this function: the line may be shared.
                IntxMasking::DisIntx => !state.masked && self.pdev.check_and_mask_intx(),
            };
            if handled {
                state.masked = true;
            }
            handled
        };
        if !handled {
            return IrqReturn::None;
        }
        self.send();
        IrqReturn::Handled
    }
}

/// The unmask eventfd: unmasks when signalled (atomic context, under the eventfd's wait-queue
/// lock), delivering from the virqfd's work an interrupt found pending.
impl VirqfdHandler for Registration<IntxShared> {
    fn handler(&self) -> bool {
        self.handler().unmask_line(self.line())
    }

    fn thread(&self) {
        self.handler().send();
    }
}

/// INTx, enabled: the line is requested with an [`IntxShared`] handler.
///
/// # Invariants
///
/// `reg` is `Some` until `drop`.
pub(crate) struct IntxLine {
    reg: Option<Pin<KBox<IntxRegistration>>>,
    irq: IrqLine,
    masking: IntxMasking,
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
        let irq = pdev.intx_line().ok_or(ENODEV)?;
        let name = name::intx(pdev.as_device().name())?;
        // Room first, so that nothing below fails for want of memory.
        let reg = KBox::<IntxRegistration>::new_uninit(GFP_KERNEL)?;
        let flags = match masking {
            IntxMasking::DisIntx => {
                // The physical DisINTx follows the initial mask state.
                pdev.intx(!virq_disabled);
                Flags::SHARED
            }
            IntxMasking::IrqChip => {
                irq::modify_status(&irq, StatusFlags::NONE, StatusFlags::DISABLE_UNLAZY);
                if virq_disabled {
                    Flags::NO_AUTOEN
                } else {
                    Flags::NONE
                }
            }
        };
        let shared = pin_init!(IntxShared {
            pdev: pdev.clone(),
            masking,
            state <- new_irqsave_spinlock!(
                LineState {
                    masked: virq_disabled,
                },
                "vfio_pci_rs_intx"
            ),
            virq_disabled: Atomic::new(virq_disabled),
            trigger: EventFdSlot::new(trigger),
        }? Error);
        let reg = match reg.write_pin_init(Virqfd::new(Registration::new(
            irq.clone(),
            flags,
            name,
            shared,
        ))) {
            Ok(reg) => reg,
            Err(e) => {
                if masking == IntxMasking::IrqChip {
                    irq::modify_status(&irq, StatusFlags::DISABLE_UNLAZY, StatusFlags::NONE);
                }
                return Err(e);
            }
        };
        // INVARIANT: `reg` is `Some`.
        Ok(Self {
            reg: Some(reg),
            irq,
            masking,
        })
    }

    /// The registration (`None` only inside `drop`).
    fn reg(&self) -> Option<&Registration<IntxShared>> {
        self.reg.as_deref().map(Virqfd::owner)
    }

    /// Replaces the trigger eventfd (`None` stops delivery); the old one is released once no
    /// handler or deferred work can still be signalling it.
    pub(crate) fn set_trigger(&self, trigger: Option<EventFd>) {
        let Some(virqfd) = self.reg.as_deref() else {
            return;
        };
        let reg = virqfd.owner();
        reg.handler().trigger.replace(trigger, || {
            reg.line().synchronize();
            virqfd.flush_thread();
        });
    }

    /// Signals the trigger eventfd as the handler would (a loopback trigger from the user).
    pub(crate) fn send(&self) {
        if let Some(reg) = self.reg() {
            reg.handler().send();
        }
    }

    /// Masks the line; returns whether it was unmasked.
    pub(crate) fn mask(&self) -> bool {
        self.reg().is_some_and(|reg| reg.handler().mask(reg.line()))
    }

    /// Unmasks the line, delivering an interrupt found pending instead.
    pub(crate) fn unmask(&self) {
        if let Some(reg) = self.reg() {
            if reg.handler().unmask_line(reg.line()) {
                reg.handler().send();
            }
        }
    }

    /// Records the user's virtual INTx-disable bit for the handler and the virqfd callbacks.
    pub(crate) fn set_virq_disabled(&self, disabled: bool) {
        if let Some(reg) = self.reg() {
            let shared = reg.handler();
            let _state = shared.state.lock();
            shared.virq_disabled.store(disabled, Relaxed);
        }
    }

    /// Unmasks the line whenever the user signals the eventfd `fd`. `EBUSY` if one is set.
    pub(crate) fn enable_unmask_eventfd(&self, fd: i32) -> Result {
        match &self.reg {
            Some(reg) => reg.as_ref().enable(fd),
            None => Err(ENODEV),
        }
    }

    /// Stops unmasking through an eventfd, waiting for callbacks in flight.
    pub(crate) fn disable_unmask_eventfd(&self) {
        if let Some(reg) = self.reg.as_deref() {
            reg.disable();
        }
    }
}

impl Drop for IntxLine {
    fn drop(&mut self) {
        // Disables the unmask eventfd, frees the IRQ, then releases the trigger and the name.
        drop(self.reg.take());
        if self.masking == IntxMasking::IrqChip {
            irq::modify_status(&self.irq, StatusFlags::DISABLE_UNLAZY, StatusFlags::NONE);
        }
    }
}
