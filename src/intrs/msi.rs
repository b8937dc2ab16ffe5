// SPDX-License-Identifier: GPL-2.0

//! MSI and MSI-X delivered through eventfds, one per vector.
//!
//! Enabling allocates the function's vectors ([`MsiVectors::enable`]); each vector the user
//! gives an eventfd gets its IRQ requested with that eventfd as the handler's cookie
//! ([`MsiVector`]). Vectors keep their IRQ allocation when the user removes the eventfd, so
//! they can be reattached, until MSI or MSI-X is disabled as a whole. With dynamic MSI-X the
//! platform allocates a vector beyond those enabled when the user first attaches an eventfd.
//!
//! Each attached vector is also an IRQ bypass producer with the vector's eventfd as token and
//! its Linux IRQ, registered once the IRQ is requested and unregistered before it is freed
//! (when the eventfd is detached or replaced, and when MSI or MSI-X is disabled, closing the
//! device included), as vfio-pci does, so KVM's irqfd on that eventfd can post the vector's
//! interrupts. A failed registration is only logged, as vfio-pci does: the vector works
//! through the eventfd all the same.
//!
//! Writing an MSI-X vector's message touches the table in a BAR, so every step that can do
//! it runs with memory decoding forced on ([`with_memory_enabled`]).

use super::{
    name,
    Fds, //
};
use crate::{
    kernel_ext::eventfd::EventFd,
    kernel_ext::irq::{
        self,
        Flags,
        IrqLine,
        IrqReturn,
        Registration,
        RequestedIrq, //
    },
    kernel_ext::irqbypass::Producer,
    kernel_ext::pci::{
        msi::IrqVectors,
        OwnedDevice,
        PciDeviceExt, //
    },
    kernel_ext::print::dev_info_eventfd,
    kernel_ext::sync::RwSem,
    memory::MemoryGate, //
};
use kernel::{
    pci::IrqType,
    prelude::*,
    str::CString,
    sync::Arc, //
};

/// Runs `f` with the function's memory decoding on and the memory gate held, as the MSI-X
/// table lives in a BAR; restores the command register afterwards. Lock order: the interrupt
/// state, then the memory gate.
pub(crate) fn with_memory_enabled<R>(
    memory: &RwSem<MemoryGate>,
    pdev: &OwnedDevice,
    f: impl FnOnce() -> R,
) -> R {
    let _gate = memory.write();
    pdev.with_memory_decode(f)
}

/// MSI or MSI-X.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MsiKind {
    Msi,
    Msix,
}

/// The handler of a vector: every MSI is ours and needs no acknowledgement.
struct MsiTrigger(Arc<EventFd>);

impl irq::Handler for MsiTrigger {
    fn handle(&self, _line: &RequestedIrq) -> IrqReturn {
        self.0.signal();
        IrqReturn::Handled
    }
}

/// One vector with an eventfd attached: its IRQ requested, signalling the eventfd, and its
/// bypass producer (registered unless that failed).
struct MsiVector {
    irq: IrqLine,
    attached: Pin<KBox<Attached>>,
}

/// What of an attached vector the IRQ and bypass cores point to, so must not move: one
/// allocation for both (vfio-pci's per-vector context holds both too).
#[pin_data]
struct Attached {
    /// Declared before `reg`: dropped first, so the producer goes before the IRQ is freed.
    #[pin]
    producer: Producer,
    #[pin]
    reg: Registration<MsiTrigger>,
}

/// What [`MsiVectors::enable`] got from the platform.
pub(crate) enum Allocation {
    /// Every vector asked for.
    All(MsiVectors),
    /// Fewer (reported to the user as the ioctl's positive result); nothing stays allocated.
    Fewer(i32),
}

/// MSI or MSI-X enabled: the function's vectors allocated, some with eventfds attached.
pub(crate) struct MsiVectors {
    pdev: OwnedDevice,
    kind: MsiKind,
    /// Whether vectors beyond those enabled can be allocated one at a time.
    dynamic: bool,
    /// The attached vectors, by vector number.
    vectors: KVec<Option<MsiVector>>,
    /// The vectors' allocation; declared after `vectors`, so their IRQs are freed first (each
    /// also keeps the allocation alive on its own).
    allocation: IrqVectors,
}

impl MsiVectors {
    /// Allocates `nvec` vectors of `kind`, all or none.
    pub(crate) fn enable(
        memory: &RwSem<MemoryGate>,
        pdev: &OwnedDevice,
        nvec: u32,
        kind: MsiKind,
        dynamic: bool,
    ) -> Result<Allocation> {
        let irq_type = match kind {
            MsiKind::Msi => IrqType::Msi,
            MsiKind::Msix => IrqType::MsiX,
        };
        let allocation = with_memory_enabled(memory, pdev, || {
            let allocation = IrqVectors::alloc(pdev, 1, nvec, irq_type)?;
            let got = allocation.count();
            if got < nvec {
                // Dropping the allocation frees the vectors again, with memory decoding on.
                return Ok(Err(got));
            }
            Ok::<_, Error>(Ok(allocation))
        })?;
        let allocation = match allocation {
            Ok(allocation) => allocation,
            Err(got) => return Ok(Allocation::Fewer(got as i32)),
        };
        Ok(Allocation::All(Self {
            pdev: pdev.clone(),
            kind,
            dynamic,
            vectors: KVec::new(),
            allocation,
        }))
    }

    /// MSI or MSI-X.
    pub(crate) fn kind(&self) -> MsiKind {
        self.kind
    }

    /// Attaches the eventfds `fds` (`None`: detaches) to vectors `start..start + count`. On
    /// failure every vector of the block is left detached.
    pub(super) fn set_block(
        &mut self,
        memory: &RwSem<MemoryGate>,
        start: u32,
        count: u32,
        fds: Option<Fds<'_>>,
    ) -> Result {
        if fds.is_some() {
            // Room for the block at once: grown a vector at a time, the table took six
            // reallocations for 32 vectors.
            let end = start.saturating_add(count) as usize;
            self.vectors
                .reserve(end.saturating_sub(self.vectors.len()), GFP_KERNEL)?;
        }
        let mut failed = None;
        for (i, vector) in (start..start.saturating_add(count)).enumerate() {
            let fd = fds.and_then(|fds| fds.get(i)).unwrap_or(-1);
            if let Err(e) = self.set_vector(memory, vector, fd) {
                failed = Some((vector, e));
                break;
            }
        }
        let Some((last, e)) = failed else {
            return Ok(());
        };
        for vector in start..=last {
            // Detaching cannot fail.
            let _ = self.set_vector(memory, vector, -1);
        }
        Err(e)
    }

    /// Signals the eventfds of the attached vectors among `start..start + count` whose entry
    /// in `which` is non-zero (all of them when `which` is `None`).
    pub(crate) fn signal(&self, start: u32, count: u32, which: Option<&[u8]>) {
        for (i, vector) in (start..start.saturating_add(count)).enumerate() {
            let Some(Some(entry)) = self.vectors.get(vector as usize) else {
                continue;
            };
            if which.is_none_or(|which| which.get(i).is_some_and(|b| *b != 0)) {
                entry.attached.reg.handler().0.signal();
            }
        }
    }

    /// Detaches every vector, in order, and frees the allocation.
    pub(crate) fn disable(mut self, memory: &RwSem<MemoryGate>) {
        for index in 0..self.vectors.len() {
            self.detach(memory, index);
        }
        let pdev = self.pdev.clone();
        // Dropping frees the vectors, which can write the MSI-X table.
        with_memory_enabled(memory, &pdev, || drop(self));
    }

    /// Detaches the eventfd of vector `index`, if any: unregisters its bypass producer, then
    /// frees its IRQ (the vector stays allocated). Returns the vector's line if it had one.
    fn detach(&mut self, memory: &RwSem<MemoryGate>, index: usize) -> Option<IrqLine> {
        let mut old = self.vectors.get_mut(index).and_then(Option::take)?;
        let irq = old.irq.clone();
        old.attached.as_mut().project().producer.unregister();
        with_memory_enabled(memory, &self.pdev, || drop(old));
        Some(irq)
    }

    /// Detaches `vector`'s eventfd if any, then attaches the eventfd `fd` unless it is
    /// negative.
    fn set_vector(&mut self, memory: &RwSem<MemoryGate>, vector: u32, fd: i32) -> Result {
        let index = vector as usize;
        let known_irq = self.detach(memory, index);
        if fd < 0 {
            return Ok(());
        }
        let irq = match known_irq {
            Some(irq) => irq,
            None => self.vector_irq(memory, vector)?,
        };
        while self.vectors.len() <= index {
            self.vectors.push(None, GFP_KERNEL)?;
        }
        let name = name::msi(self.kind, vector, self.pdev.as_device().name())?;
        let trigger = Arc::new(EventFd::from_fd(fd)?, GFP_KERNEL)?;
        let token = trigger.clone();
        let kind = self.kind;
        let pdev = &self.pdev;
        let allocation = &self.allocation;
        let line = irq.clone();
        let mut attached = with_memory_enabled(memory, pdev, || {
            if kind == MsiKind::Msix {
                // The vector may have been allocated before and its message lost since (a
                // reset behind our back): write it again before enabling.
                allocation.msix_rewrite_msg(vector)?;
            }
            let handler = Ok::<_, Error>(MsiTrigger(trigger));
            KBox::pin_init(
                try_pin_init!(Attached {
                    producer <- Producer::new(),
                    reg <- Registration::new(line, Flags::NONE, name, handler),
                }? Error),
                GFP_KERNEL,
            )
        })?;
        let producer = attached.as_mut().project().producer;
        if let Err(e) = producer.register(token.clone(), &irq) {
            let after = CString::try_from_fmt(fmt!(") registration fails: {}", e.to_errno()));
            if let Ok(after) = after {
                dev_info_eventfd(&self.pdev, c"irq bypass producer (eventfd ", &token, &after);
            }
        }
        let attached = MsiVector { irq, attached };
        match self.vectors.get_mut(index) {
            Some(slot) => *slot = Some(attached),
            // Grown above; unreachable, and dropping `attached` frees the IRQ again.
            None => return Err(EINVAL),
        }
        Ok(())
    }

    /// The Linux IRQ of `vector`, allocating it when dynamic MSI-X allows.
    fn vector_irq(&self, memory: &RwSem<MemoryGate>, vector: u32) -> Result<IrqLine> {
        match self.allocation.irq_vector(vector) {
            Ok(irq) => return Ok(irq),
            Err(e) if self.kind != MsiKind::Msix || !self.dynamic => return Err(e),
            Err(_) => {}
        }
        with_memory_enabled(memory, &self.pdev, || {
            self.allocation.msix_alloc_irq_at(vector)
        })
    }
}

impl Drop for MsiVectors {
    fn drop(&mut self) {
        // Free every requested IRQ before the vectors they use (the allocation goes with the
        // last reference, after the fields of this value).
        self.vectors.clear();
    }
}
