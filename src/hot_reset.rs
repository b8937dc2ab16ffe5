// SPDX-License-Identifier: GPL-2.0

//! PCI hot reset: `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`, `VFIO_DEVICE_PCI_HOT_RESET`, and the
//! reset of a dirty dev_set when its last function closes.
//!
//! A hot reset resets a slot or a bus and with it every function there, so it is allowed only
//! when the caller owns all of them. Two proofs exist: on the legacy path, a set of VFIO group
//! fds covering every affected function; on the cdev path, the caller's iommufd_ctx, with a
//! zero-length fd array: functions opened in that ctx, or unopened functions whose group the
//! ctx owns, count as owned. Either way every affected function must be bound to this driver
//! (in this dev_set), so that nothing else is using it while it is reset.

use crate::{
    dev_set::{
        probe_hot_reset,
        NeedsReset,
        SetState, //
    },
    kernel_ext::{
        dyndbg::{
            self,
            HotResetIoctl,
            Refusal, //
        },
        iommufd::{
            GroupFile,
            IommufdCtx, //
        },
        pci::{
            config::PowerState,
            runtime_pm::RuntimeActive,
            OwnedDevice,
            PciDeviceExt, //
        },
        small_vec::SmallVec,
        trace,
        uaccess,
        vfio::{
            uapi::{
                self,
                VFIO_PCI_DEVID_NOT_OWNED,
                VFIO_PCI_DEVID_OWNED, //
            },
            LockedDevSet,
            SetMember,
            VfioDevice, //
        }, //
    },
    memory::{
        self,
        GatedFunction,
        MemoryAccess, //
    }, //
};
use core::mem::size_of;
use kernel::{
    fs::LocalFile,
    pci,
    prelude::*,
    transmute::AsBytes,
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};

/// The functions a hot reset goes through: each one's PCI function and memory gate, and the
/// dev_set state of the driver ([`crate::device`] implements it).
pub(crate) trait ResetTarget: GatedFunction<SetState = SetState> {}

impl<T: GatedFunction<SetState = SetState>> ResetTarget for T {}

/// The fixed part of both ioctls' arguments: `argsz`, `flags`, `count`.
const HEADER_SIZE: usize = 3 * size_of::<u32>();

/// Reads the header both ioctls start with; `EINVAL` when `argsz` does not cover it.
fn read_header(
    pdev: &pci::Device,
    ioctl: HotResetIoctl,
    arg: UserPtr,
) -> Result<uapi::vfio_pci_hot_reset_info> {
    uapi::copy_in(arg, HEADER_SIZE).inspect_err(|&e| {
        let why = if e == EINVAL {
            Refusal::Argsz
        } else {
            Refusal::Fault(e)
        };
        dyndbg::refused(pdev, ioctl, why);
    })
}

/// [`probe_hot_reset`], logging a refusal of `ioctl` when neither reset is possible.
fn probe_logged(pdev: &OwnedDevice, ioctl: HotResetIoctl) -> Result<bool> {
    probe_hot_reset(pdev).inspect_err(|_| dyndbg::refused(pdev, ioctl, Refusal::NoResetMethod))
}

/// Writes the header back.
fn write_header(arg: UserPtr, hdr: &uapi::vfio_pci_hot_reset_info) -> Result {
    uapi::copy_out(arg, hdr, HEADER_SIZE)
}

/// Why a set cannot be reset as a whole now.
enum Unresettable {
    /// Neither a slot nor a bus reset is possible (`ENODEV`).
    NoResetMethod,
    /// A function the reset reaches is not in the set: bound to another driver, or to none
    /// (`EBUSY`); `foreign` was called on it.
    Foreign,
}

impl Unresettable {
    /// The errno the dirty-set trace event reports for it.
    fn errno(&self) -> Error {
        match self {
            Self::NoResetMethod => ENODEV,
            Self::Foreign => EBUSY,
        }
    }
}

/// The function through which a reset of the whole set is done, if such a reset is possible
/// now and touches only functions in this set (so all of them are ours and can coordinate
/// with it). Functions bound to another driver, or to none, prevent it: `foreign` is called on
/// the first one found.
fn resettable<'a, T: ResetTarget>(
    set: &'a LockedDevSet<'_, T>,
    foreign: &mut dyn FnMut(&pci::Device),
) -> Result<&'a OwnedDevice, Unresettable> {
    let first = set.members().next().ok_or(Unresettable::NoResetMethod)?;
    let pdev: &OwnedDevice = first.data().pdev();
    let slot = probe_hot_reset(pdev).map_err(|_| Unresettable::NoResetMethod)?;
    pdev.for_each_in_reset_scope(slot, |other| match set.find(other) {
        Some(_) => Ok(()),
        None => {
            foreign(other);
            Err(ENODEV)
        }
    })
    .map_err(|_| Unresettable::Foreign)?;
    // The first member lives in the set as long as the lock is held.
    Ok(pdev)
}

/// The number of functions a reset of `pdev` touches now.
fn count_affected(pdev: &OwnedDevice, slot: bool) -> Result<usize> {
    let mut count = 0usize;
    pdev.for_each_in_reset_scope(slot, |_| {
        count += 1;
        Ok(())
    })?;
    Ok(count)
}

/// How many entries of a `GET_PCI_HOT_RESET_INFO` reply live on the stack (8 bytes each): a slot
/// or a bus of up to 32 functions needs no allocation (vfio-pci allocates every reply; a `KVec`
/// of them cost 68 instructions more than its `kmalloc()`, `scripts/profile.sh` on the bench
/// kernel, which put the 16- and 32-function replies above vfio-pci's with 8 in place).
const INLINE_ENTRIES: usize = 32;

/// The entries of a reply, as [`get_info`] collects them.
type Entries = SmallVec<uapi::vfio_pci_dependent_device, INLINE_ENTRIES>;

/// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: the functions a hot reset of this one would touch.
pub(crate) fn get_info<T: ResetTarget>(dev: &VfioDevice<T>, arg: UserPtr) -> Result<isize> {
    const IOCTL: HotResetIoctl = HotResetIoctl::Info;
    let pdev: &OwnedDevice = dev.pdev();
    let refused = |why: Refusal<'_>| dyndbg::refused(pdev, IOCTL, why);
    let mut hdr = read_header(pdev, IOCTL, arg)?;
    hdr.flags = 0;
    let slot = probe_logged(pdev, IOCTL)?;

    let count = count_affected(pdev, slot)?;
    if count == 0 {
        // There is always at least the function itself.
        refused(Refusal::Empty);
        return Err(ERANGE);
    }
    let room = (hdr.argsz as usize - size_of::<uapi::vfio_pci_hot_reset_info>())
        / size_of::<uapi::vfio_pci_dependent_device>();
    if count > room {
        hdr.count = count as u32;
        write_header(arg, &hdr).inspect_err(|&e| refused(Refusal::Fault(e)))?;
        refused(Refusal::NoRoom {
            room,
            functions: count,
        });
        return Err(ENOSPC);
    }

    // Made in place (not returned by `with_capacity`, which would copy its 256 bytes of room).
    let mut entries = Entries::new();
    entries.reserve(count, GFP_KERNEL)?;
    let by_dev_id = dev.cdev_opened();
    let mut flags = 0;
    if by_dev_id {
        flags = uapi::VFIO_PCI_HOT_RESET_FLAG_DEV_ID | uapi::VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
    }
    {
        let set = LockedDevSet::lock(dev);
        let ictx = set.this().iommufd_ctx();
        pdev.for_each_in_reset_scope(slot, |other| {
            if entries.len() >= count {
                // The topology changed since we counted.
                refused(Refusal::Topology);
                return Err(EAGAIN);
            }
            let address = other.address();
            let id = if by_dev_id {
                let devid = match set.find(other) {
                    None => VFIO_PCI_DEVID_NOT_OWNED,
                    // A cdev-opened device is always bound to a ctx.
                    Some(member) => match ictx.ok_or(ENODEV).and_then(|c| member.dev_id_in(c)) {
                        Ok(id) => id,
                        Err(e) if e == ENOENT => VFIO_PCI_DEVID_OWNED,
                        Err(_) => VFIO_PCI_DEVID_NOT_OWNED,
                    },
                };
                if devid == VFIO_PCI_DEVID_NOT_OWNED {
                    flags &= !uapi::VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
                }
                devid
            } else {
                // Functions without an IOMMU group are not isolated and cannot be reset.
                let group = other.iommu_group_id();
                if group.is_none() {
                    refused(Refusal::NoIommuGroup(other));
                }
                group.ok_or(EPERM)? as u32
            };
            let entry = uapi::vfio_pci_dependent_device::new(
                address.segment,
                address.bus,
                address.devfn,
                id,
            );
            // Room for `count` was made and checked above.
            entries.push_within_capacity(entry).map_err(|_| EAGAIN)
        })?;
    }

    let devices = entries.as_slice().as_bytes();
    uaccess::copy_to_user(arg.wrapping_byte_add(HEADER_SIZE), devices)
        .inspect_err(|&e| refused(Refusal::Fault(e)))?;
    hdr.count = entries.len() as u32;
    hdr.flags = flags;
    write_header(arg, &hdr).inspect_err(|&e| refused(Refusal::Fault(e)))?;
    Ok(0)
}

/// What proves the caller owns every function a hot reset touches.
enum Ownership {
    /// Legacy path: VFIO group files, held across the reset.
    Groups(KVec<GroupFile>),
    /// Cdev path: the iommufd_ctx the calling device is bound to (read once its dev_set is
    /// locked, which keeps the context alive).
    Iommufd,
}

impl Ownership {
    /// This proof, to check against the members of the locked dev_set of `this`, the calling
    /// device: its iommufd_ctx is read once, not per member.
    fn for_set<'s, T: ResetTarget>(&'s self, this: &SetMember<'s, T>) -> Proof<'s> {
        match self {
            Self::Groups(files) => Proof::Groups(files),
            Self::Iommufd => Proof::Iommufd(this.iommufd_ctx()),
        }
    }
}

/// An [`Ownership`] as checked against the members of a locked dev_set.
enum Proof<'a> {
    /// The group files passed in.
    Groups(&'a [GroupFile]),
    /// The context of the calling device; a cdev-opened device is always bound to one (were
    /// it not, nothing would be covered).
    Iommufd(Option<IommufdCtx<'a>>),
}

impl Proof<'_> {
    /// Whether this proof covers `member`; if not, the rule it breaks.
    // Inline: the hot reset asks it of every function of the set.
    #[inline]
    fn covers<'m, T: ResetTarget>(&self, member: &SetMember<'m, T>) -> Result<(), Refusal<'m>> {
        let pdev: &'m pci::Device = member.data().pdev();
        match self {
            Self::Groups(files) => match files.iter().any(|file| file.has_dev(member)) {
                true => Ok(()),
                false => Err(Refusal::GroupMissing(pdev)),
            },
            Self::Iommufd(ictx) => match ictx.ok_or(ENODEV).and_then(|c| member.dev_id_in(c)) {
                Ok(_) => Ok(()),
                Err(e) if e == ENOENT => Ok(()),
                Err(_) => Err(Refusal::NotOwned(pdev)),
            },
        }
    }
}

/// `VFIO_DEVICE_PCI_HOT_RESET`: resets the slot or bus of this function, if the caller proves
/// it owns every function there.
pub(crate) fn hot_reset<T: ResetTarget>(dev: &VfioDevice<T>, arg: UserPtr) -> Result<isize> {
    let result = try_hot_reset(dev, arg);
    let pdev: &OwnedDevice = dev.pdev();
    trace::hot_reset(
        pdev,
        || probe_hot_reset(pdev).ok(),
        dev.cdev_opened(),
        &result,
    );
    result
}

/// [`hot_reset`] but for its trace event.
fn try_hot_reset<T: ResetTarget>(dev: &VfioDevice<T>, arg: UserPtr) -> Result<isize> {
    const IOCTL: HotResetIoctl = HotResetIoctl::Reset;
    let pdev: &OwnedDevice = dev.pdev();
    let refused = |why: Refusal<'_>| dyndbg::refused(pdev, IOCTL, why);
    let hdr = read_header(pdev, IOCTL, arg)?;
    if hdr.flags != 0 {
        refused(Refusal::Flags(hdr.flags));
        return Err(EINVAL);
    }
    // The zero-length array is for cdev-opened devices, and only for them.
    if (hdr.count != 0) == dev.cdev_opened() {
        refused(match hdr.count {
            0 => Refusal::NoFdsOnGroup,
            count => Refusal::FdsOnCdev(count),
        });
        return Err(EINVAL);
    }
    let slot = probe_logged(pdev, IOCTL)?;

    if hdr.count != 0 {
        // Each group holds at least one affected function, so there cannot be more groups
        // than functions: refuse larger arrays before allocating anything.
        let count = hdr.count as usize;
        let functions = count_affected(pdev, slot)?;
        if count > functions {
            refused(Refusal::Count {
                count: hdr.count,
                functions,
            });
            return Err(EINVAL);
        }
        let mut fds = KVec::<i32>::with_capacity(count, GFP_KERNEL)?;
        let mut reader = UserSlice::new(arg, HEADER_SIZE + count * size_of::<i32>()).reader();
        reader
            .skip(HEADER_SIZE)
            .inspect_err(|&e| refused(Refusal::Fault(e)))?;
        for _ in 0..count {
            let fd = reader
                .read::<i32>()
                .inspect_err(|&e| refused(Refusal::Fault(e)))?;
            fds.push(fd, GFP_KERNEL)?;
        }
        let mut files = KVec::with_capacity(count, GFP_KERNEL)?;
        for &fd in fds.iter() {
            let file = LocalFile::fget(fd as u32).inspect_err(|_| refused(Refusal::BadFd(fd)))?;
            let file = GroupFile::new(file).ok_or_else(|| {
                refused(Refusal::NotGroup(fd));
                EINVAL
            })?;
            files.push(file, GFP_KERNEL)?;
        }
        return reset_dev_set(dev, &Ownership::Groups(files)).map(|()| 0);
    }
    // No value to drop on this path (the group fds' vector is the other path's).
    reset_dev_set(dev, &Ownership::Iommufd).map(|()| 0)
}

/// One function of a set being reset: resumed and held awake for the reset, and, once the
/// caller's proof covers it, with its memory gate shut.
// Its member of the set is not kept: at 24 bytes a function, the compiler copied the 32
// functions' room (768 bytes) into place with a `memcpy()`, +700 instructions a reset.
struct Held<'a> {
    /// Declared first, so dropped first: the gate opens before the function may suspend
    /// again, as in vfio-pci.
    gate: Option<MemoryAccess<'a>>,
    awake: RuntimeActive<'a>,
}

impl<'a> Held<'a> {
    /// The function.
    fn pdev(&self) -> &'a OwnedDevice {
        self.awake.device()
    }
}

/// How many functions of a set [`HeldSet`] holds in place (16 bytes each): a slot or a bus of up
/// to 32 functions needs no allocation, as vfio-pci's hot reset allocates nothing (with 16 in
/// place, the allocation put a 32-function reset 1.041 times vfio-pci's beyond
/// `pci_reset_bus()`, against 1.017 at 16, bench kernel).
const SET_IN_PLACE: usize = 32;

/// Every function of a set being reset, in the set's order. One vector for the references and
/// the gates, so that each function is pushed once and every later pass walks a slice, not
/// the set's list.
type HeldSet<'a> = SmallVec<Held<'a>, SET_IN_PLACE>;

/// Resumes every function of the locked `set` for a reset of all of them, holding each awake
/// in `held` (empty; the caller's, as moving the vector would copy its room): vfio-pci resumes
/// them all before it checks anything else.
#[inline]
fn resume_all<'a, T: ResetTarget>(set: &'a LockedDevSet<'_, T>, held: &mut HeldSet<'a>) -> Result {
    for member in set.members() {
        let pdev: &'a OwnedDevice = member.data().pdev();
        let awake = pdev.runtime_active()?;
        held.push(Held { gate: None, awake }, GFP_KERNEL)?;
    }
    Ok(())
}

/// Gives the functions of `held` whose gates are shut their dma-bufs back, as vfio-pci does
/// when the set's memory is accessible again.
#[inline]
fn restore_all(held: &mut HeldSet<'_>) {
    for function in held.as_mut_slice() {
        let pdev = function.pdev();
        if let Some(gate) = &mut function.gate {
            crate::dma_buf::restore(gate, pdev);
        }
    }
}

/// Resets the slot or bus of `dev`'s dev_set after checking `proof` covers every function,
/// with every function's memory access blocked for the duration.
fn reset_dev_set<T: ResetTarget>(dev: &VfioDevice<T>, proof: &Ownership) -> Result {
    const IOCTL: HotResetIoctl = HotResetIoctl::Reset;
    let pdev: &OwnedDevice = dev.pdev();
    let refused = |why: Refusal<'_>| dyndbg::refused(pdev, IOCTL, why);
    let set = LockedDevSet::lock(dev);
    let target =
        resettable(&set, &mut |other| refused(Refusal::NotBound(other))).map_err(|why| {
            if let Unresettable::NoResetMethod = why {
                refused(Refusal::NoResetMethod);
            }
            EINVAL
        })?;

    // Functions of the set may be runtime-suspended: resumed for the reset, as vfio-pci does
    // before it checks anything else. Dropped in place when this returns (every exit), each
    // function's gate before its reference.
    let mut held = HeldSet::new();
    resume_all(&set, &mut held)?;
    let this = set.this();
    let proof = proof.for_set(&this);
    let mut lock_all = || -> Result {
        // The set cannot change while it is locked: `held` has its members, in order.
        for (member, function) in set.members().zip(held.as_mut_slice()) {
            if let Err(why) = proof.covers(&member) {
                refused(why);
                return Err(EINVAL);
            }
            // Taking several of these locks in a row could deadlock against another hot
            // reset of the same set in another order; back off on contention instead.
            let access = memory::try_lock_and_zap(member.data().memory(), member.mappings())
                .ok_or_else(|| {
                    refused(Refusal::Busy(member.data().pdev()));
                    EBUSY
                })?;
            function.gate = Some(access);
        }
        Ok(())
    };
    if let Err(e) = lock_all() {
        // The functions locked so far get their dma-bufs back, as in vfio-pci.
        restore_all(&mut held);
        return Err(e);
    }

    // The reset brings every function to D0 itself, behind our back; do it first, through the
    // gates, so functions that lose their config on D3->D0 (NoSoftRst-) get back the state
    // saved when they entered D3hot.
    for function in held.as_mut_slice() {
        let pdev = function.pdev();
        if let Some(gate) = &mut function.gate {
            let _ = gate.set_power_state(pdev, PowerState::D0);
        }
    }
    let result = target
        .reset_bus()
        .inspect_err(|&e| refused(Refusal::ResetFailed(e)));
    restore_all(&mut held);
    result
}

/// Resets the set with a bus or slot reset if a function of it still needs one and no other
/// function of it is open (the one closing now still counts as open), as vfio-pci does on
/// last close.
pub(crate) fn reset_dirty_set<T: ResetTarget>(set: &LockedDevSet<'_, T>) {
    if set.open_count() > 1 || !set.members().any(|m| m.needs_reset()) {
        return;
    }
    let this: &OwnedDevice = set.this().data().pdev();
    let result = match resettable(set, &mut |_| ()) {
        Err(why) => Err(why.errno()),
        // Functions of the set may be runtime-suspended: resumed for the reset.
        Ok(target) => {
            let mut held = HeldSet::new();
            resume_all(set, &mut held).and_then(|()| target.reset_bus())
        }
    };
    if result.is_ok() {
        for member in set.members() {
            member.set_needs_reset(false);
        }
    }
    trace::dirty_reset(this, || probe_hot_reset(this).ok(), &result);
}
