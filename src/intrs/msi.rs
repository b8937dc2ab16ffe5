// SPDX-License-Identifier: GPL-2.0

//! MSI and MSI-X delivered through eventfds, one per vector.
//!
//! Enabling allocates the function's vectors ([`MsiVectors::enable`]); each vector the user
//! gives an eventfd gets its IRQ requested with that eventfd as the handler's cookie
//! ([`MsiVector`]). Vectors keep their IRQ allocation when the user removes the eventfd, so
//! they can be reattached, until MSI or MSI-X is disabled as a whole. With dynamic MSI-X the
//! platform allocates a vector beyond those enabled when the user first attaches an eventfd.
//!
//! Writing an MSI-X vector's message touches the table in a BAR, so every step that can do
//! it runs with memory decoding forced on ([`with_memory_enabled`]).

#![allow(unsafe_code)] // Transitional: this file still calls C directly.

use crate::{
    device::VfioPciDevice,
    kernel_ext::bindings as vfio,
    kernel_ext::eventfd::EventFd,
    kernel_ext::pci::{OwnedDevice, PciDeviceExt},
    kernel_ext::vfio::VfioDevice,
};
use kernel::{
    bindings,
    error::to_result,
    ffi::{c_int, c_void},
    prelude::*,
    str::CString,
};

/// Runs `f` with the function's memory decoding on and the memory gate held, as the MSI-X
/// table lives in a BAR; restores the command register afterwards. Lock order: the interrupt
/// state, then the memory gate.
pub(crate) fn with_memory_enabled<R>(dev: &VfioDevice<VfioPciDevice>, f: impl FnOnce() -> R) -> R {
    let _gate = dev.memory().write();
    let pdev = dev.pdev();
    let cmd = pdev.read_config_word(bindings::PCI_COMMAND);
    let memory = bindings::PCI_COMMAND_MEMORY as u16;
    let forced = cmd & memory == 0;
    if forced {
        pdev.write_config_word(bindings::PCI_COMMAND, cmd | memory);
    }
    let result = f();
    if forced {
        pdev.write_config_word(bindings::PCI_COMMAND, cmd);
    }
    result
}

/// MSI or MSI-X.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MsiKind {
    Msi,
    Msix,
}

/// One vector with an eventfd attached: its IRQ requested with the eventfd as cookie.
///
/// # Invariants
///
/// `irq` is requested with `trigger`'s context as `dev_id` while this value exists.
struct MsiVector {
    irq: u32,
    trigger: EventFd,
    /// The IRQ's name; the IRQ core keeps a pointer to it until `free_irq`.
    _name: CString,
}

impl MsiVector {
    /// The handler: every MSI is ours and needs no acknowledgement.
    ///
    /// # Safety
    ///
    /// `dev_id` must be the eventfd context the IRQ was requested with.
    unsafe extern "C" fn handle_irq(_irq: c_int, dev_id: *mut c_void) -> bindings::irqreturn_t {
        // SAFETY: `MsiVector` holds the reference to this context until after `free_irq`.
        unsafe { EventFd::signal_raw(dev_id.cast()) };
        bindings::irqreturn_IRQ_HANDLED
    }
}

impl Drop for MsiVector {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the IRQ is requested with this cookie; `free_irq`
        // waits for running handlers, after which `trigger` and `name` may go.
        unsafe { bindings::free_irq(self.irq, self.trigger.as_raw().cast()) };
    }
}

/// What [`MsiVectors::enable`] got from the platform.
pub(crate) enum Allocation {
    /// Every vector asked for.
    All(MsiVectors),
    /// Fewer (reported to the user as the ioctl's positive result); nothing stays allocated.
    Fewer(i32),
}

/// MSI or MSI-X enabled: the function's vectors allocated, some with eventfds attached.
///
/// # Invariants
///
/// The function's vectors are allocated (`pci_alloc_irq_vectors`) while this value exists.
pub(crate) struct MsiVectors {
    pdev: OwnedDevice,
    kind: MsiKind,
    /// Whether vectors beyond those enabled can be allocated one at a time.
    dynamic: bool,
    /// The attached vectors, by vector number.
    vectors: KVec<Option<MsiVector>>,
}

impl MsiVectors {
    /// Allocates `nvec` vectors of `kind`, all or none.
    pub(crate) fn enable(
        dev: &VfioDevice<VfioPciDevice>,
        nvec: u32,
        kind: MsiKind,
        dynamic: bool,
    ) -> Result<Allocation> {
        let flag = match kind {
            MsiKind::Msi => bindings::PCI_IRQ_MSI,
            MsiKind::Msix => bindings::PCI_IRQ_MSIX,
        };
        let pdev = dev.pdev().as_raw();
        let got = with_memory_enabled(dev, || {
            // SAFETY: The function is valid and enabled while the device is open.
            let got = unsafe { bindings::pci_alloc_irq_vectors(pdev, 1, nvec, flag) };
            if got > 0 && (got as u32) < nvec {
                // SAFETY: Vectors were allocated just above.
                unsafe { bindings::pci_free_irq_vectors(pdev) };
            }
            got
        });
        if got < 0 {
            return Err(Error::from_errno(got));
        }
        if (got as u32) < nvec {
            return Ok(Allocation::Fewer(got));
        }
        // INVARIANT: `nvec` vectors are allocated.
        Ok(Allocation::All(Self {
            pdev: dev.pdev().clone(),
            kind,
            dynamic,
            vectors: KVec::new(),
        }))
    }

    /// MSI or MSI-X.
    pub(crate) fn kind(&self) -> MsiKind {
        self.kind
    }

    /// Attaches the eventfds `fds` (`None`: detaches) to vectors `start..start + count`. On
    /// failure every vector of the block is left detached.
    pub(crate) fn set_block(
        &mut self,
        dev: &VfioDevice<VfioPciDevice>,
        start: u32,
        count: u32,
        fds: Option<&[i32]>,
    ) -> Result {
        let mut failed = None;
        for (i, vector) in (start..start.saturating_add(count)).enumerate() {
            let fd = fds.and_then(|fds| fds.get(i).copied()).unwrap_or(-1);
            if let Err(e) = self.set_vector(dev, vector, fd) {
                failed = Some((vector, e));
                break;
            }
        }
        let Some((last, e)) = failed else {
            return Ok(());
        };
        for vector in start..=last {
            // Detaching cannot fail.
            let _ = self.set_vector(dev, vector, -1);
        }
        Err(e)
    }

    /// Signals the eventfds of the attached vectors among `start..start + count` whose entry
    /// in `which` is non-zero (all of them when `which` is `None`).
    pub(crate) fn signal(&self, start: u32, count: u32, which: Option<&[u8]>) {
        for (i, vector) in (start..start.saturating_add(count)).enumerate() {
            let Some(Some(attached)) = self.vectors.get(vector as usize) else {
                continue;
            };
            if which.map_or(true, |which| which.get(i).is_some_and(|b| *b != 0)) {
                attached.trigger.signal();
            }
        }
    }

    /// Detaches every vector and frees the allocation.
    pub(crate) fn disable(self, dev: &VfioDevice<VfioPciDevice>) {
        // Dropping frees the IRQs, then the vectors, which can write the MSI-X table.
        with_memory_enabled(dev, || drop(self));
    }

    /// Detaches `vector`'s eventfd if any, then attaches the eventfd `fd` unless it is
    /// negative.
    fn set_vector(&mut self, dev: &VfioDevice<VfioPciDevice>, vector: u32, fd: i32) -> Result {
        let index = vector as usize;
        let old = self.vectors.get_mut(index).and_then(Option::take);
        let known_irq = old.as_ref().map(|old| old.irq);
        if old.is_some() {
            with_memory_enabled(dev, || drop(old));
        }
        if fd < 0 {
            return Ok(());
        }
        let irq = match known_irq {
            Some(irq) => irq,
            None => self.vector_irq(dev, vector)?,
        };
        while self.vectors.len() <= index {
            self.vectors.push(None, GFP_KERNEL)?;
        }
        let suffix = match self.kind {
            MsiKind::Msi => "",
            MsiKind::Msix => "x",
        };
        let name = CString::try_from_fmt(fmt!(
            "vfio-msi{}[{}]({})",
            suffix,
            vector,
            self.pdev.as_device().name()
        ))?;
        let trigger = EventFd::from_fd(fd)?;
        let kind = self.kind;
        let ret = with_memory_enabled(dev, || {
            if kind == MsiKind::Msix {
                // The vector may have been allocated before and its message lost since (a
                // reset behind our back): write it again before enabling.
                let mut msg: bindings::msi_msg = pin_init::zeroed();
                // SAFETY: `irq` is an allocated MSI-X vector of the function; `msg` is a
                // local.
                unsafe {
                    vfio::get_cached_msi_msg(irq, &mut msg);
                    vfio::pci_write_msi_msg(irq, &mut msg);
                }
            }
            // SAFETY: The handler matches the IRQ core's signature; the cookie is the eventfd
            // context, and `name`, both of which `MsiVector` keeps until after `free_irq`.
            unsafe {
                bindings::request_threaded_irq(
                    irq,
                    Some(MsiVector::handle_irq),
                    None,
                    0,
                    name.as_char_ptr(),
                    trigger.as_raw().cast(),
                )
            }
        });
        to_result(ret)?;
        // INVARIANT: The IRQ was just requested with `trigger` as cookie.
        let attached = MsiVector {
            irq,
            trigger,
            _name: name,
        };
        match self.vectors.get_mut(index) {
            Some(slot) => *slot = Some(attached),
            // Grown above; unreachable, and dropping `attached` frees the IRQ again.
            None => return Err(EINVAL),
        }
        Ok(())
    }

    /// The Linux IRQ of `vector`, allocating it when dynamic MSI-X allows.
    fn vector_irq(&self, dev: &VfioDevice<VfioPciDevice>, vector: u32) -> Result<u32> {
        let pdev = self.pdev.as_raw();
        // SAFETY: The function is valid and its vectors are allocated (type invariant).
        let irq = unsafe { bindings::pci_irq_vector(pdev, vector) };
        if irq > 0 {
            return Ok(irq as u32);
        }
        if irq == 0 || self.kind != MsiKind::Msix || !self.dynamic {
            return Err(if irq == 0 {
                EINVAL
            } else {
                Error::from_errno(irq)
            });
        }
        // SAFETY: As above; dynamic allocation is supported (`self.dynamic`).
        let map = with_memory_enabled(dev, || unsafe {
            bindings::pci_msix_alloc_irq_at(pdev, vector, core::ptr::null())
        });
        if map.index < 0 {
            return Err(Error::from_errno(map.index));
        }
        Ok(map.virq as u32)
    }
}

impl Drop for MsiVectors {
    fn drop(&mut self) {
        // Free every requested IRQ before the vectors they use.
        self.vectors.clear();
        // SAFETY: By the type invariant the vectors are allocated; no IRQ uses them any more.
        unsafe { bindings::pci_free_irq_vectors(self.pdev.as_raw()) };
    }
}
