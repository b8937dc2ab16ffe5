// SPDX-License-Identifier: GPL-2.0

//! Interrupts: `VFIO_DEVICE_GET_IRQ_INFO` and `VFIO_DEVICE_SET_IRQS` for INTx, MSI, MSI-X,
//! ERR and REQ, delivered to user space through eventfds.
//!
//! A function has at most one of INTx, MSI or MSI-X enabled at a time ([`IrqMode`]); ERR and
//! REQ are single eventfds the driver signals on an AER error and when the VFIO core asks the
//! user to release the device. All of it lives in [`IrqState`], under the device's `irqs`
//! mutex, which every `SET_IRQS` holds throughout; what hard-IRQ handlers and eventfd
//! callbacks touch is owned by the enabled mode and lives until its IRQs are freed (see
//! [`intx`] and [`msi`]). Closing the device disables everything and releases every eventfd.
//!
//! Lock order: this state, then the virtual config, then the memory gate; the config code
//! calls [`intx_mask`] and [`intx_unmask`] without its lock held, and writes the MSI
//! capability inside [`with_active_irq_type`]. Each MSI/MSI-X vector with an eventfd is also an
//! IRQ bypass producer (see [`msi`]).

mod intx;
mod msi;
mod name;

use crate::quirks::has_broken_intx;
use crate::{
    kernel_ext::eventfd::EventFd,
    kernel_ext::pci::{
        intx::PciIntxExt,
        msi::PciMsiExt,
        regs,
        OwnedDevice,
        PciDeviceExt, //
    },
    kernel_ext::small_vec::SmallVec,
    kernel_ext::sync::RwSem,
    kernel_ext::uaccess,
    kernel_ext::vfio::irq::{
        self as vfio,
        SetIrqsHeader, //
    },
    kernel_ext::vfio::uapi::{
        self,
        vfio_irq_info,
        vfio_irq_set, //
    },
    memory::MemoryGate, //
};
use core::mem::{
    offset_of,
    size_of, //
};
use intx::{
    IntxLine,
    IntxMasking, //
};
use kernel::{
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Mutex, //
    },
    uaccess::UserPtr, //
};
use msi::{
    Allocation,
    MsiKind,
    MsiVectors, //
};

/// The uAPI indexes.
const INTX: u32 = vfio::VFIO_PCI_INTX_IRQ_INDEX;
const MSI: u32 = vfio::VFIO_PCI_MSI_IRQ_INDEX;
const MSIX: u32 = vfio::VFIO_PCI_MSIX_IRQ_INDEX;
const ERR: u32 = vfio::VFIO_PCI_ERR_IRQ_INDEX;
const REQ: u32 = vfio::VFIO_PCI_REQ_IRQ_INDEX;
const NUM_IRQS: u32 = vfio::VFIO_PCI_NUM_IRQS;

/// How INTx works on a function, decided at open.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IntxSupport {
    /// Known broken INTx masking: INTx is hidden from the user and kept disabled.
    Hidden,
    /// Usable, masked as given.
    Maskable(IntxMasking),
}

/// What the driver learned about the function's interrupts at open.
#[derive(Clone, Copy)]
struct IrqCaps {
    intx: IntxSupport,
    /// Whether the user sees an INTx pin (`GET_IRQ_INFO` count 1).
    intx_count: u32,
    /// Whether MSI-X vectors can be allocated one at a time.
    dynamic_msix: bool,
}

/// What `GET_IRQ_INFO` reports that the driver decided at open ([`IrqCaps`]'s INTx count
/// and dynamic MSI-X), kept beside the interrupt state so that the ioctl reads it without the
/// interrupt lock, as vfio-pci reads its flags. Written only with that lock held, at open
/// ([`IrqState::open`]) and at the last close ([`teardown`]); the VFIO core runs no ioctl
/// before the open has finished or after the close has begun.
pub(crate) struct IrqInfo(Atomic<u32>);

impl IrqInfo {
    const INTX_VISIBLE: u32 = 1 << 0;
    const DYNAMIC_MSIX: u32 = 1 << 1;

    /// Nothing open: no INTx pin, no dynamic MSI-X.
    pub(crate) const fn new() -> Self {
        Self(Atomic::new(0))
    }

    fn publish(&self, caps: Option<IrqCaps>) {
        let bits = caps.map_or(0, |caps| {
            let intx = if caps.intx_count != 0 {
                Self::INTX_VISIBLE
            } else {
                0
            };
            let dynamic = if caps.dynamic_msix {
                Self::DYNAMIC_MSIX
            } else {
                0
            };
            intx | dynamic
        });
        self.0.store(bits, Relaxed);
    }

    fn intx_count(&self) -> u32 {
        u32::from(self.0.load(Relaxed) & Self::INTX_VISIBLE != 0)
    }

    fn dynamic_msix(&self) -> bool {
        self.0.load(Relaxed) & Self::DYNAMIC_MSIX != 0
    }
}

/// The interrupt type in use.
enum IrqMode {
    Disabled,
    Intx(IntxLine),
    Msi(MsiVectors),
}

/// Where the MSI queue size the interrupt code enables is recorded: the virtual config space
/// (see [`crate::config`]), whose MSI control register cannot ask for more. Lent by the wiring
/// ([`crate::ioctl`]) to `SET_IRQS`, which calls it with the interrupt state locked.
pub(crate) trait MsiQueueLimit {
    /// Records `qmax`, the log2 of the MSI vectors just enabled.
    fn set_msi_qmax(&self, qmax: u8);
}

/// The interrupt state of a function.
pub(crate) struct IrqState {
    /// Set while the device is open.
    caps: Option<IrqCaps>,
    mode: IrqMode,
    /// The user's INTx-disable bit in the virtual command register.
    virq_disabled: bool,
    /// `log2` of the MSI vectors last enabled (the virtual Multiple Message Capable field).
    msi_qmax: u8,
    err_trigger: Option<EventFd>,
    req_trigger: Option<EventFd>,
    /// `nointxmask=` as it was when the function was bound: INTx is masked at the interrupt
    /// controller only, and no quirk hides it.
    nointxmask: bool,
}

impl IrqState {
    /// The state of a function nobody has open; `nointxmask` is the parameter's value at bind.
    pub(crate) const fn closed(nointxmask: bool) -> Self {
        Self {
            nointxmask,
            caps: None,
            mode: IrqMode::Disabled,
            virq_disabled: false,
            msi_qmax: 0,
            err_trigger: None,
            req_trigger: None,
        }
    }

    /// Prepares interrupt handling at first open: decides how INTx is masked, and leaves the
    /// physical DisINTx clear for functions that can mask INTx with it. With `nointxmask` as
    /// vfio-pci: neither the broken-masking quirk nor DisINTx is considered.
    pub(crate) fn open(&mut self, pdev: &OwnedDevice, info: &IrqInfo) -> Result {
        let intx = if self.nointxmask {
            IntxSupport::Maskable(IntxMasking::IrqChip)
        } else if has_broken_intx(pdev) {
            dev_info!(pdev.as_device(), "Masking broken INTx support\n");
            pdev.intx(false);
            IntxSupport::Hidden
        } else if intx_masking_supported(pdev) {
            IntxSupport::Maskable(IntxMasking::DisIntx)
        } else {
            IntxSupport::Maskable(IntxMasking::IrqChip)
        };
        if intx == IntxSupport::Maskable(IntxMasking::DisIntx) {
            let cmd = pdev.read_config_word(regs::PCI_COMMAND);
            let disable = regs::PCI_COMMAND_INTX_DISABLE as u16;
            if cmd & disable != 0 {
                pdev.write_config_word(regs::PCI_COMMAND, cmd & !disable);
            }
        }
        let intx_visible = intx != IntxSupport::Hidden
            && !pdev.is_virtfn()
            && pdev.intx_pin() != 0
            && pdev.intx_line().is_some();
        let dynamic_msix = pdev.msix_cap().is_some() && pdev.msix_can_alloc_dyn();
        self.caps = Some(IrqCaps {
            intx,
            intx_count: u32::from(intx_visible),
            dynamic_msix,
        });
        info.publish(self.caps);
        Ok(())
    }

    /// The number of interrupts of `index` (`0` for an unknown index or a closed device).
    fn count(info: &IrqInfo, pdev: &OwnedDevice, index: u32) -> u32 {
        match index {
            INTX => info.intx_count(),
            MSI => {
                let Some(cap) = pdev.msi_cap() else {
                    return 0;
                };
                let flags = pdev.read_config_word(u32::from(cap) + regs::PCI_MSI_FLAGS);
                1 << ((u32::from(flags) & regs::PCI_MSI_FLAGS_QMASK) >> 1)
            }
            MSIX => {
                let Some(cap) = pdev.msix_cap() else {
                    return 0;
                };
                let flags = pdev.read_config_word(u32::from(cap) + regs::PCI_MSIX_FLAGS);
                (u32::from(flags) & regs::PCI_MSIX_FLAGS_QSIZE) + 1
            }
            ERR => u32::from(vfio::err_irq_offered(pdev)),
            REQ => 1,
            _ => 0,
        }
    }

    /// The INTx masking method, if INTx can be used.
    fn intx_masking(&self) -> Option<IntxMasking> {
        match self.caps?.intx {
            IntxSupport::Maskable(masking) => Some(masking),
            IntxSupport::Hidden => None,
        }
    }

    /// The uAPI index of the mode in use.
    fn irq_type(&self) -> Option<u32> {
        match &self.mode {
            IrqMode::Disabled => None,
            IrqMode::Intx(_) => Some(INTX),
            IrqMode::Msi(vectors) => Some(match vectors.kind() {
                MsiKind::Msi => MSI,
                MsiKind::Msix => MSIX,
            }),
        }
    }

    /// Disables INTx, MSI or MSI-X, whichever is enabled.
    fn disable(&mut self, memory: &RwSem<MemoryGate>, pdev: &OwnedDevice) {
        match core::mem::replace(&mut self.mode, IrqMode::Disabled) {
            IrqMode::Disabled => {}
            IrqMode::Intx(line) => drop(line),
            IrqMode::Msi(vectors) => {
                vectors.disable(memory);
                // Freeing the vectors let the PCI core clear DisINTx; hidden INTx stays off.
                if self
                    .caps
                    .is_some_and(|caps| caps.intx == IntxSupport::Hidden)
                {
                    pdev.intx(false);
                }
            }
        }
    }

    /// Masks INTx (ioctl or virtual DisINTx); returns whether it was unmasked. Without INTx in
    /// use the physical DisINTx follows the request where it can.
    fn mask_intx(&self, pdev: &OwnedDevice) -> bool {
        match &self.mode {
            IrqMode::Intx(line) => line.mask(),
            _ => {
                if self.intx_masking() == Some(IntxMasking::DisIntx) {
                    pdev.intx(false);
                }
                false
            }
        }
    }

    /// Unmasks INTx (ioctl or virtual DisINTx), delivering an interrupt found pending.
    fn unmask_intx(&self, pdev: &OwnedDevice) {
        match &self.mode {
            IrqMode::Intx(line) => line.unmask(),
            _ => {
                if self.intx_masking() == Some(IntxMasking::DisIntx) {
                    pdev.intx(true);
                }
            }
        }
    }
}

/// Whether DisINTx masks the function's INTx and the status register shows it pending (no
/// quirk marked its INTx masking broken), as `pci_intx_mask_supported` says.
fn intx_masking_supported(pdev: &OwnedDevice) -> bool {
    !pdev.has_broken_intx_masking()
}

// ---------------------------------------------------------------------------------- uAPI

/// `VFIO_DEVICE_GET_IRQ_INFO`.
pub(crate) fn get_irq_info(irqs: &IrqInfo, pdev: &OwnedDevice, arg: UserPtr) -> Result<isize> {
    const MINSZ: usize = offset_of!(vfio_irq_info, count) + size_of::<u32>();
    let mut info: vfio_irq_info = uapi::copy_in(arg, MINSZ)?;
    let index = info.index;
    if index >= NUM_IRQS {
        return Err(EINVAL);
    }
    if index == ERR && !vfio::err_irq_offered(pdev) {
        return Err(EINVAL);
    }
    let (count, dynamic_msix) = (IrqState::count(irqs, pdev, index), irqs.dynamic_msix());
    let mut flags = vfio::VFIO_IRQ_INFO_EVENTFD;
    if index == INTX {
        flags |= vfio::VFIO_IRQ_INFO_MASKABLE | vfio::VFIO_IRQ_INFO_AUTOMASKED;
    } else if index != MSIX || !dynamic_msix {
        flags |= vfio::VFIO_IRQ_INFO_NORESIZE;
    }
    info.flags = flags;
    info.count = count;
    uapi::copy_out(arg, &info, MINSZ)?;
    Ok(0)
}

/// What a `SET_IRQS` asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Mask,
    Unmask,
    Trigger,
}

/// How many bytes of `SET_IRQS` data a request keeps in itself, without an allocation: up to
/// 16 eventfds or 64 flags, which covers what VMMs usually pass (vfio-pci copies every
/// request's data into an allocation).
const INLINE_DATA: usize = 64;

/// The data of a `SET_IRQS` as user space wrote it: in place up to [`INLINE_DATA`] bytes.
type DataBytes = SmallVec<u8, INLINE_DATA>;

/// Copies in the `size` bytes of `SET_IRQS` data at `user`, into `bytes` (empty: the caller's,
/// so that the data is never moved; a request holding its 64 bytes was copied out of
/// `read_set_irqs`, 23 `rep movsl` steps on every `SET_IRQS`).
fn read_data(user: UserPtr, size: usize, bytes: &mut DataBytes) -> Result<&[u8]> {
    bytes.extend_default(size, GFP_KERNEL)?;
    let data = bytes.as_mut_slice();
    if size != 0 {
        uaccess::copy_from_user(user, data)?;
    }
    Ok(data)
}

/// The eventfds of a `SET_IRQS`, one per interrupt of the range, read from its data.
#[derive(Clone, Copy)]
struct Fds<'a>(&'a [u8]);

impl Fds<'_> {
    /// The `i`-th eventfd, if the data has one.
    fn get(self, i: usize) -> Option<i32> {
        let at = i.checked_mul(size_of::<i32>())?;
        let bytes = self.0.get(at..at.checked_add(size_of::<i32>())?)?;
        Some(i32::from_ne_bytes(bytes.try_into().ok()?))
    }

    /// The first eventfd (`-1`, none, if absent).
    fn first(self) -> i32 {
        self.get(0).unwrap_or(-1)
    }
}

/// The data of a `SET_IRQS`, one entry per interrupt of the range.
enum IrqData<'a> {
    None,
    Bool(&'a [u8]),
    EventFd(Fds<'a>),
}

impl IrqData<'_> {
    /// The first entry as a flag (`DATA_NONE` counts as set).
    fn first_set(&self) -> bool {
        match self {
            IrqData::None => true,
            IrqData::Bool(bools) => bools.first().is_some_and(|b| *b != 0),
            IrqData::EventFd(_) => false,
        }
    }
}

/// A validated `SET_IRQS` request, whose data lives in the caller's [`DataBytes`].
struct SetIrqs<'a> {
    index: u32,
    /// `None` for a combination of action bits no index accepts.
    action: Option<Action>,
    start: u32,
    count: u32,
    data: IrqData<'a>,
}

/// `VFIO_DEVICE_SET_IRQS` on `pdev`, whose interrupt state is `irqs` and memory gate
/// `memory` (MSI-X vectors live in a BAR); the MSI queue size enabled is recorded in `limit`.
pub(crate) fn set_irqs(
    irqs: &Mutex<IrqState>,
    info: &IrqInfo,
    memory: &RwSem<MemoryGate>,
    pdev: &OwnedDevice,
    limit: &impl MsiQueueLimit,
    arg: UserPtr,
) -> Result<isize> {
    let mut data = DataBytes::new();
    let request = read_set_irqs(info, pdev, arg, &mut data)?;
    let mut state = irqs.lock();
    apply(&mut state, memory, pdev, limit, request)
}

/// Copies in and validates a `SET_IRQS` header (through the VFIO core's
/// `vfio_set_irqs_validate_and_prepare`, as vfio-pci does) and its data, into `data`.
fn read_set_irqs<'a>(
    info: &IrqInfo,
    pdev: &OwnedDevice,
    arg: UserPtr,
    data: &'a mut DataBytes,
) -> Result<SetIrqs<'a>> {
    const MINSZ: usize = offset_of!(vfio_irq_set, count) + size_of::<u32>();
    let hdr: vfio_irq_set = uapi::copy_in(arg, MINSZ)?;
    let vfio_irq_set {
        argsz,
        flags,
        index,
        start,
        count,
        ..
    } = hdr;
    let max = IrqState::count(info, pdev, index);
    let header = SetIrqsHeader {
        argsz,
        flags,
        index,
        start,
        count,
    };
    let data_size = vfio::validate_set_irqs(&header, max, NUM_IRQS)?;

    // Only the requests with data build a buffer for it (the moves of its 64 bytes cost
    // the INTx mask, unmask and trigger without data 36 instructions, `scripts/bench.sh`).
    let user = arg.wrapping_byte_add(MINSZ);
    let data = match flags & vfio::VFIO_IRQ_SET_DATA_TYPE_MASK {
        vfio::VFIO_IRQ_SET_DATA_BOOL => IrqData::Bool(read_data(user, data_size, data)?),
        vfio::VFIO_IRQ_SET_DATA_EVENTFD => IrqData::EventFd(Fds(read_data(user, data_size, data)?)),
        _ => IrqData::None,
    };
    let action = match flags & vfio::VFIO_IRQ_SET_ACTION_TYPE_MASK {
        vfio::VFIO_IRQ_SET_ACTION_MASK => Some(Action::Mask),
        vfio::VFIO_IRQ_SET_ACTION_UNMASK => Some(Action::Unmask),
        vfio::VFIO_IRQ_SET_ACTION_TRIGGER => Some(Action::Trigger),
        _ => None,
    };
    Ok(SetIrqs {
        index,
        action,
        start,
        count,
        data,
    })
}

/// Acts on a validated request; `ENOTTY` for what the index does not support.
fn apply(
    state: &mut IrqState,
    memory: &RwSem<MemoryGate>,
    pdev: &OwnedDevice,
    limit: &impl MsiQueueLimit,
    req: SetIrqs<'_>,
) -> Result<isize> {
    match (req.index, req.action) {
        (INTX, Some(Action::Mask)) => intx_mask_ioctl(state, pdev, &req),
        (INTX, Some(Action::Unmask)) => intx_unmask_ioctl(state, pdev, &req),
        (INTX, Some(Action::Trigger)) => intx_trigger(state, memory, pdev, &req),
        (MSI | MSIX, Some(Action::Trigger)) => msi_trigger(state, memory, pdev, limit, &req),
        (ERR, Some(Action::Trigger)) if vfio::err_irq_offered(pdev) => {
            single_trigger(&mut state.err_trigger, &req).map(|()| 0)
        }
        (REQ, Some(Action::Trigger)) => single_trigger(&mut state.req_trigger, &req).map(|()| 0),
        _ => Err(ENOTTY),
    }
}

/// INTx `ACTION_MASK`: one interrupt; masking through an eventfd is not implemented (as in
/// vfio-pci, `ENOTTY`).
fn intx_mask_ioctl(state: &IrqState, pdev: &OwnedDevice, req: &SetIrqs<'_>) -> Result<isize> {
    if !matches!(state.mode, IrqMode::Intx(_)) || req.start != 0 || req.count != 1 {
        return Err(EINVAL);
    }
    match &req.data {
        IrqData::EventFd(_) => return Err(ENOTTY),
        data if data.first_set() => {
            state.mask_intx(pdev);
        }
        _ => {}
    }
    Ok(0)
}

/// INTx `ACTION_UNMASK`: now, or whenever an eventfd is signalled (`fd < 0` stops that).
fn intx_unmask_ioctl(state: &IrqState, pdev: &OwnedDevice, req: &SetIrqs<'_>) -> Result<isize> {
    let IrqMode::Intx(line) = &state.mode else {
        return Err(EINVAL);
    };
    if req.start != 0 || req.count != 1 {
        return Err(EINVAL);
    }
    match &req.data {
        IrqData::EventFd(fds) => match fds.first() {
            fd if fd >= 0 => line.enable_unmask_eventfd(fd)?,
            _ => line.disable_unmask_eventfd(),
        },
        data if data.first_set() => state.unmask_intx(pdev),
        _ => {}
    }
    Ok(0)
}

/// INTx `ACTION_TRIGGER`: enable with (or switch) the trigger eventfd, disable with
/// `DATA_NONE` and count 0, or signal the trigger (loopback).
fn intx_trigger(
    state: &mut IrqState,
    memory: &RwSem<MemoryGate>,
    pdev: &OwnedDevice,
    req: &SetIrqs<'_>,
) -> Result<isize> {
    let is_intx = matches!(state.mode, IrqMode::Intx(_));
    if is_intx && req.count == 0 && matches!(req.data, IrqData::None) {
        state.disable(memory, pdev);
        return Ok(0);
    }
    let is_disabled = matches!(state.mode, IrqMode::Disabled);
    if !(is_intx || is_disabled) || req.start != 0 || req.count != 1 {
        return Err(EINVAL);
    }
    if let IrqData::EventFd(fds) = &req.data {
        let fd = fds.first();
        let trigger = if fd >= 0 {
            Some(EventFd::from_fd(fd)?)
        } else {
            None
        };
        if let IrqMode::Intx(line) = &state.mode {
            line.set_trigger(trigger);
        } else {
            let masking = state.intx_masking().ok_or(ENODEV)?;
            let line = IntxLine::enable(pdev, masking, state.virq_disabled, trigger)?;
            state.mode = IrqMode::Intx(line);
        }
        return Ok(0);
    }
    let IrqMode::Intx(line) = &state.mode else {
        return Err(EINVAL);
    };
    if req.data.first_set() {
        line.send();
    }
    Ok(0)
}

/// MSI or MSI-X `ACTION_TRIGGER`: enable with eventfds (or change them), disable with
/// `DATA_NONE` and count 0, or signal vectors' eventfds (loopback).
fn msi_trigger(
    state: &mut IrqState,
    memory: &RwSem<MemoryGate>,
    pdev: &OwnedDevice,
    limit: &impl MsiQueueLimit,
    req: &SetIrqs<'_>,
) -> Result<isize> {
    let kind = if req.index == MSIX {
        MsiKind::Msix
    } else {
        MsiKind::Msi
    };
    let is_this = state.irq_type() == Some(req.index);
    if is_this && req.count == 0 && matches!(req.data, IrqData::None) {
        state.disable(memory, pdev);
        return Ok(0);
    }
    if !(is_this || matches!(state.mode, IrqMode::Disabled)) {
        return Err(EINVAL);
    }
    if let IrqData::EventFd(fds) = req.data {
        if let IrqMode::Msi(vectors) = &mut state.mode {
            vectors.set_block(memory, req.start, req.count, Some(fds))?;
            return Ok(0);
        }
        let nvec = req.start.saturating_add(req.count);
        let dynamic = state.caps.is_some_and(|caps| caps.dynamic_msix);
        let mut vectors = match MsiVectors::enable(memory, pdev, nvec, kind, dynamic)? {
            Allocation::All(vectors) => vectors,
            Allocation::Fewer(available) => return Ok(available as isize),
        };
        if kind == MsiKind::Msi {
            // The log2 of the vectors, rounded up: the virtual Multiple Message Capable.
            let highest = nvec.saturating_mul(2).saturating_sub(1);
            state.msi_qmax = (u32::BITS - highest.leading_zeros()).saturating_sub(1) as u8;
            limit.set_msi_qmax(state.msi_qmax);
        }
        let attached = vectors.set_block(memory, req.start, req.count, Some(fds));
        state.mode = IrqMode::Msi(vectors);
        if let Err(e) = attached {
            state.disable(memory, pdev);
            return Err(e);
        }
        return Ok(0);
    }
    let IrqMode::Msi(vectors) = &state.mode else {
        return Err(EINVAL);
    };
    if is_this {
        match &req.data {
            IrqData::Bool(which) => vectors.signal(req.start, req.count, Some(which)),
            _ => vectors.signal(req.start, req.count, None),
        }
        return Ok(0);
    }
    Err(EINVAL)
}

/// ERR or REQ `ACTION_TRIGGER`: one eventfd, set (`fd >= 0`), cleared (`fd == -1`, or
/// `DATA_NONE` with count 0) or signalled (loopback).
fn single_trigger(slot: &mut Option<EventFd>, req: &SetIrqs<'_>) -> Result {
    if req.start != 0 || req.count > 1 {
        return Err(EINVAL);
    }
    match &req.data {
        IrqData::None => {
            let trigger = slot.as_ref().ok_or(EINVAL)?;
            if req.count != 0 {
                trigger.signal();
            } else {
                *slot = None;
            }
            Ok(())
        }
        IrqData::Bool(bools) => {
            if req.count == 0 {
                return Err(EINVAL);
            }
            if bools.first().is_some_and(|b| *b != 0) {
                if let Some(trigger) = slot {
                    trigger.signal();
                }
            }
            Ok(())
        }
        IrqData::EventFd(fds) => {
            if req.count == 0 {
                return Err(EINVAL);
            }
            match fds.first() {
                -1 => *slot = None,
                fd if fd >= 0 => *slot = Some(EventFd::from_fd(fd)?),
                _ => return Err(EINVAL),
            }
            Ok(())
        }
    }
}

// ------------------------------------------------------------------ the rest of the driver

/// Disables the interrupt type in use and releases its eventfds (last close); the error and
/// request eventfds stay until [`release_triggers`].
pub(crate) fn teardown(
    irqs: &Mutex<IrqState>,
    info: &IrqInfo,
    memory: &RwSem<MemoryGate>,
    pdev: &OwnedDevice,
) {
    let mut state = irqs.lock();
    state.disable(memory, pdev);
    state.virq_disabled = false;
    state.caps = None;
    info.publish(None);
}

/// Drops the error and request eventfds at the very end of the last close, as vfio-pci does.
pub(crate) fn release_triggers(irqs: &Mutex<IrqState>) {
    let mut state = irqs.lock();
    state.err_trigger = None;
    state.req_trigger = None;
}

/// Masks INTx because the user set INTX_DISABLE in the virtual command register; returns
/// whether it was unmasked before. Acts only on a change of the bit.
pub(crate) fn intx_mask(irqs: &Mutex<IrqState>, pdev: &OwnedDevice) -> bool {
    let mut state = irqs.lock();
    if state.virq_disabled {
        return false;
    }
    state.virq_disabled = true;
    if let IrqMode::Intx(line) = &state.mode {
        line.set_virq_disabled(true);
    }
    state.mask_intx(pdev)
}

/// Unmasks INTx because the user cleared INTX_DISABLE in the virtual command register. Acts
/// only on a change of the bit.
pub(crate) fn intx_unmask(irqs: &Mutex<IrqState>, pdev: &OwnedDevice) {
    let mut state = irqs.lock();
    if !state.virq_disabled {
        return;
    }
    state.virq_disabled = false;
    if let IrqMode::Intx(line) = &state.mode {
        line.set_virq_disabled(false);
    }
    state.unmask_intx(pdev);
}

/// Masks INTx, if it is in use and not masked, before the function is runtime-suspended;
/// returns whether it did (see [`crate::runtime_pm`]).
pub(crate) fn mask_intx_for_suspend(irqs: &Mutex<IrqState>) -> bool {
    match &irqs.lock().mode {
        IrqMode::Intx(line) => line.mask(),
        _ => false,
    }
}

/// Unmasks INTx masked by [`mask_intx_for_suspend`] once the function is resumed, as an
/// unmask ioctl would.
pub(crate) fn unmask_intx_after_resume(irqs: &Mutex<IrqState>, pdev: &OwnedDevice) {
    irqs.lock().unmask_intx(pdev);
}

/// Runs `f` with the uAPI index of the interrupt type in use (INTx, MSI or MSI-X), if any,
/// and the interrupt lock held, so that no `SET_IRQS` changes the type before `f` is done. `f`
/// may take the config lock, and must not call back into this module.
pub(crate) fn with_active_irq_type<R>(
    irqs: &Mutex<IrqState>,
    f: impl FnOnce(Option<u32>) -> R,
) -> R {
    let state = irqs.lock();
    f(state.irq_type())
}

/// Signals the REQ eventfd (the core asks the user to release the device); false when user
/// space registered none.
pub(crate) fn signal_request(irqs: &Mutex<IrqState>) -> bool {
    match &irqs.lock().req_trigger {
        Some(trigger) => {
            trigger.signal();
            true
        }
        None => false,
    }
}

/// Signals the ERR eventfd (AER reported an error on the function); false when user space
/// registered none.
pub(crate) fn signal_error(irqs: &Mutex<IrqState>) -> bool {
    match &irqs.lock().err_trigger {
        Some(trigger) => {
            trigger.signal();
            true
        }
        None => false,
    }
}

#[kernel::macros::kunit_tests(vfio_pci_rs_intrs)]
mod tests {
    use super::*;

    #[test]
    fn eventfds_from_data() {
        let mut bytes = [0u8; 12];
        for (i, fd) in [7i32, -1, 0x0102_0304].iter().enumerate() {
            bytes[4 * i..4 * i + 4].copy_from_slice(&fd.to_ne_bytes());
        }
        let fds = Fds(&bytes);
        assert_eq!(fds.first(), 7);
        assert_eq!(fds.get(1), Some(-1));
        assert_eq!(fds.get(2), Some(0x0102_0304));
        assert_eq!(fds.get(3), None);
        assert_eq!(fds.get(usize::MAX), None);
        // A partial entry is none; no data at all means no eventfd.
        assert_eq!(Fds(&bytes[..10]).get(2), None);
        assert_eq!(Fds(&[]).first(), -1);
    }
}
