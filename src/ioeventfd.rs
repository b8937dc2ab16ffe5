// SPDX-License-Identifier: GPL-2.0

//! `VFIO_DEVICE_IOEVENTFD`: a BAR write the kernel performs whenever user space (or KVM)
//! signals an eventfd, so that a VMM can hand a doorbell write to the kernel instead of
//! relaying it itself.
//!
//! An [`Ioeventfd`] binds one eventfd to one [`Target`]: a 1-, 2- or 4-byte value at an offset
//! of a BAR. It is armed through a VFIO core virqfd: when the eventfd is signalled, the
//! wake-up callback (atomic context) tries to take the memory gate ([`crate::memory`]) shared
//! and writes at once; when the gate is contended it leaves the write to the virqfd's work
//! item, which waits for the gate. Either way a memory BAR is written only while the function
//! decodes memory, as vfio-pci's `test_mem` has it; a write that finds decode off is dropped.
//!
//! The armed ioeventfds of a function live in its [`Ioeventfds`] list (at most
//! [`MAX_IOEVENTFDS`]), which owns them: removing one from the list (de-assignment, or the
//! last close, [`teardown`]) disables its virqfd and waits for its callbacks before the memory
//! they use goes away. The argument checks and their errnos are vfio-pci's, in its order.

use crate::kernel_ext::pci::PciDeviceExt;
use crate::{
    bars::{
        BarsInfo,
        MsixTable, //
    },
    kernel_ext::pci::{
        bar::BarMapping,
        OwnedDevice, //
    },
    kernel_ext::vfio::irq as vfio,
    kernel_ext::vfio::uapi::{
        self,
        vfio_device_ioeventfd, //
    },
    kernel_ext::vfio::virqfd::{
        Virqfd,
        VirqfdHandler, //
    },
    kernel_ext::vfio::VfioDevice,
    memory::{
        GatedFunction,
        MemoryGate, //
    },
    rdwr::Width,
    regions::{
        self,
        Region, //
    }, //
};
use core::mem::{
    offset_of,
    size_of, //
};
use kernel::{
    prelude::*,
    sync::{
        aref::ARef,
        Mutex, //
    },
    uaccess::UserPtr, //
};

/// How many ioeventfds one function may have armed (vfio-pci's `VFIO_PCI_IOEVENTFD_MAX`,
/// private to its driver: an arbitrary cap on what one user can make the kernel allocate).
pub(crate) const MAX_IOEVENTFDS: usize = 1000;

/// The width of an ioeventfd's write. vfio-pci accepts exactly one size bit in the flags; the
/// 8-byte size only where the kernel's vfio-pci takes it ([`vfio::IOEVENTFD_64`]: 7.3 on).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Size {
    B1,
    B2,
    B4,
    B8,
}

impl Size {
    /// The size the `VFIO_DEVICE_IOEVENTFD_*` bits of `flags` select; `EINVAL` for unknown
    /// flags, for anything but exactly one size bit, and for the 8-byte size where vfio-pci
    /// refuses it.
    fn from_flags(flags: u32) -> Result<Self> {
        match flags {
            vfio::VFIO_DEVICE_IOEVENTFD_8 => Ok(Self::B1),
            vfio::VFIO_DEVICE_IOEVENTFD_16 => Ok(Self::B2),
            vfio::VFIO_DEVICE_IOEVENTFD_32 => Ok(Self::B4),
            vfio::VFIO_DEVICE_IOEVENTFD_64 if vfio::IOEVENTFD_64 => Ok(Self::B8),
            _ => Err(EINVAL),
        }
    }

    fn bytes(self) -> u64 {
        Width::from(self) as u64
    }
}

impl From<Size> for Width {
    fn from(size: Size) -> Width {
        match size {
            Size::B1 => Width::W1,
            Size::B2 => Width::W2,
            Size::B4 => Width::W4,
            Size::B8 => Width::W8,
        }
    }
}

/// What an ioeventfd writes and where. Two ioeventfds with the same target cannot both be
/// armed, and de-assignment names the target, not the eventfd (as in vfio-pci).
///
/// # Invariants
///
/// `offset + size` lies inside BAR `bar`, outside the MSI-X table.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Target {
    bar: u8,
    offset: u64,
    size: Size,
    /// The value written (its low `size` bytes); compared whole, as vfio-pci compares it.
    data: u64,
}

impl Target {
    /// The target at file offset `pos` of the file of `pdev`; `EINVAL` unless it is inside a
    /// BAR and clear of `msix_table`.
    fn new(
        pdev: &OwnedDevice,
        msix_table: Option<MsixTable>,
        pos: u64,
        size: Size,
        data: u64,
    ) -> Result<Self> {
        let (index, offset) = regions::split_offset(pos);
        let bar = match u32::try_from(index).ok().and_then(Region::from_index) {
            Some(Region::Bar(bar)) => bar,
            _ => return Err(EINVAL),
        };
        let end = offset + size.bytes();
        if end > pdev.resource(usize::from(bar)).len {
            return Err(EINVAL);
        }
        // Writing the MSI-X table would work around SET_IRQS.
        if let Some((start, stop)) = msix_table.and_then(|t| t.excluded_in(bar)) {
            if end > start && offset < stop {
                return Err(EINVAL);
            }
        }
        // INVARIANT: checked just above.
        Ok(Self {
            bar,
            offset,
            size,
            data,
        })
    }
}

/// What one armed ioeventfd writes when its eventfd is signalled, inside its virqfd.
///
/// The device reference keeps the device alive while the ioeventfd is armed; the device's
/// [`Ioeventfds`] list owns the ioeventfd and empties at the last close.
struct IoeventfdWrite<T: GatedFunction> {
    dev: ARef<VfioDevice<T>>,
    target: Target,
    /// Whether the BAR decodes memory, so that the write needs the function to decode it.
    test_mem: bool,
}

/// One armed ioeventfd: the eventfd's virqfd around what its signal writes. Dropping it
/// disarms the virqfd, waiting for its callbacks.
type Ioeventfd<T> = Virqfd<IoeventfdWrite<T>>;

impl<T: GatedFunction> IoeventfdWrite<T> {
    fn new(dev: &VfioDevice<T>, target: Target) -> Self {
        let test_mem = dev.pdev().resource(usize::from(target.bar)).is_mem();
        Self {
            dev: dev.into(),
            target,
            test_mem,
        }
    }

    /// The write itself, with the gate held (shared).
    fn write(&self, gate: &MemoryGate) {
        if self.test_mem && !gate.accessible(self.dev.pdev()) {
            return;
        }
        let Ok(mapping) = gate.bars().and_then(|bars| bars.mapping(self.target.bar)) else {
            return;
        };
        bar_write(mapping, &self.target);
    }
}

/// Writes `target`'s value into its BAR, mapped by `mapping`.
fn bar_write(mapping: &BarMapping, target: &Target) {
    // `offset + size` lies inside BAR `bar` (`Target` invariant), all of which `mapping` maps,
    // and the caller holds the gate that keeps the mapping alive.
    let _ = mapping.write_width(target.size.into(), target.offset, target.data);
}

impl<T: GatedFunction> VirqfdHandler for IoeventfdWrite<T> {
    /// Writes now if the gate is free (atomic context), else has [`Self::thread`] do it.
    fn handler(&self) -> bool {
        match self.dev.memory().try_read() {
            Some(gate) => {
                self.write(&gate);
                false
            }
            None => true,
        }
    }

    /// Waits for the gate, then writes.
    fn thread(&self) {
        self.write(&self.dev.memory().read());
    }
}

/// What one `VFIO_DEVICE_IOEVENTFD` call asks for.
enum Request {
    /// Arm an ioeventfd on the eventfd `fd` (`fd >= 0`).
    Assign(i32),
    /// Disarm the ioeventfd of a target (`fd == -1`).
    Deassign,
}

/// The ioeventfds armed on one function, owned by its driver state `T`.
pub(crate) struct Ioeventfds<T: GatedFunction> {
    armed: KVec<Pin<KBox<Ioeventfd<T>>>>,
}

impl<T: GatedFunction> Ioeventfds<T> {
    /// No ioeventfds (a function that is not open has none).
    pub(crate) const fn new() -> Self {
        Self { armed: KVec::new() }
    }

    /// Arms or disarms the ioeventfd of `target`: a target already armed is `EEXIST` to arm
    /// again; disarming one that is not is `ENODEV`; past [`MAX_IOEVENTFDS`] `ENOSPC`.
    fn apply(&mut self, dev: &VfioDevice<T>, target: Target, request: Request) -> Result {
        if self
            .armed
            .iter()
            .any(|armed| armed.owner().target == target)
        {
            return match request {
                Request::Assign(_) => Err(EEXIST),
                // Dropping it disarms it.
                Request::Deassign => {
                    self.armed.retain(|armed| armed.owner().target != target);
                    Ok(())
                }
            };
        }
        let Request::Assign(fd) = request else {
            return Err(ENODEV);
        };
        if self.armed.len() >= MAX_IOEVENTFDS {
            return Err(ENOSPC);
        }
        // Room first, so nothing can fail once the eventfd is armed.
        self.armed.reserve(1, GFP_KERNEL_ACCOUNT)?;
        let ioeventfd = KBox::pin_init(
            Ioeventfd::new(Ok::<_, Error>(IoeventfdWrite::new(dev, target))),
            GFP_KERNEL_ACCOUNT,
        )?;
        ioeventfd.as_ref().enable(fd)?;
        self.armed.push(ioeventfd, GFP_KERNEL_ACCOUNT)?;
        Ok(())
    }
}

/// `VFIO_DEVICE_IOEVENTFD`: arms (`fd >= 0`) or disarms (`fd == -1`) a write of `data` at
/// file offset `offset`, of the width the flags select, on `dev`, whose armed ioeventfds are
/// `ioeventfds`, whose BARs' mappings `bars_info` records and whose MSI-X table is
/// `msix_table`.
pub(crate) fn ioctl<T: GatedFunction>(
    dev: &VfioDevice<T>,
    ioeventfds: &Mutex<Ioeventfds<T>>,
    bars_info: &BarsInfo,
    msix_table: Option<MsixTable>,
    arg: UserPtr,
) -> Result<isize> {
    const MINSZ: usize = offset_of!(vfio_device_ioeventfd, fd) + size_of::<i32>();
    let req: vfio_device_ioeventfd = uapi::copy_in(arg, MINSZ)?;
    let size = Size::from_flags(req.flags)?;
    let request = match req.fd {
        -1 => Request::Deassign,
        fd if fd >= 0 => Request::Assign(fd),
        _ => return Err(EINVAL),
    };
    let target = Target::new(dev.pdev(), msix_table, req.offset, size, req.data)?;
    // A BAR that could not be claimed or mapped at open refuses with the errno it got then
    // (vfio-pci maps it here, with the same errnos, without a lock: so do we, from what the
    // open recorded beside the gate).
    bars_info.mapped(target.bar)?;
    ioeventfds.lock().apply(dev, target, request).map(|()| 0)
}

/// Disarms every ioeventfd of a function (last close), waiting for writes in flight.
pub(crate) fn teardown<T: GatedFunction>(ioeventfds: &Mutex<Ioeventfds<T>>) {
    let armed = core::mem::replace(&mut ioeventfds.lock().armed, KVec::new());
    drop(armed);
}
