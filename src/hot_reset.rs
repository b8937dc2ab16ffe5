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
        iommufd::GroupFile,
        pci::{
            OwnedDevice,
            PciDeviceExt, //
        },
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
        GatedFunction, //
    }, //
};
use core::mem::size_of;
use kernel::{
    fs::LocalFile,
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
fn read_header(arg: UserPtr) -> Result<uapi::vfio_pci_hot_reset_info> {
    uapi::copy_in(arg, HEADER_SIZE)
}

/// Writes the header back.
fn write_header(arg: UserPtr, hdr: &uapi::vfio_pci_hot_reset_info) -> Result {
    uapi::copy_out(arg, hdr, HEADER_SIZE)
}

/// The function through which a reset of the whole set is done, if such a reset is possible
/// now and touches only functions in this set (so all of them are ours and can coordinate
/// with it). Functions bound to another driver, or to none, make this `None`.
fn resettable<'a, T: ResetTarget>(set: &'a LockedDevSet<'_, T>) -> Option<&'a OwnedDevice> {
    let first = set.members().next()?;
    let pdev: &OwnedDevice = first.data().pdev();
    let slot = probe_hot_reset(pdev).ok()?;
    pdev.for_each_in_reset_scope(slot, &mut |other| set.find(other).map(|_| ()).ok_or(ENODEV))
        .ok()?;
    // The first member lives in the set as long as the lock is held.
    Some(pdev)
}

/// The number of functions a reset of `pdev` touches now.
fn count_affected(pdev: &OwnedDevice, slot: bool) -> Result<usize> {
    let mut count = 0usize;
    pdev.for_each_in_reset_scope(slot, &mut |_| {
        count += 1;
        Ok(())
    })?;
    Ok(count)
}

/// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: the functions a hot reset of this one would touch.
pub(crate) fn get_info<T: ResetTarget>(dev: &VfioDevice<T>, arg: UserPtr) -> Result<isize> {
    let mut hdr = read_header(arg)?;
    hdr.flags = 0;
    let pdev: &OwnedDevice = dev.pdev();
    let slot = probe_hot_reset(pdev)?;

    let count = count_affected(pdev, slot)?;
    if count == 0 {
        // There is always at least the function itself.
        return Err(ERANGE);
    }
    let room = (hdr.argsz as usize - size_of::<uapi::vfio_pci_hot_reset_info>())
        / size_of::<uapi::vfio_pci_dependent_device>();
    if count > room {
        hdr.count = count as u32;
        write_header(arg, &hdr)?;
        return Err(ENOSPC);
    }

    let mut entries = KVec::with_capacity(count, GFP_KERNEL)?;
    let by_dev_id = dev.cdev_opened();
    let mut flags = 0;
    if by_dev_id {
        flags = uapi::VFIO_PCI_HOT_RESET_FLAG_DEV_ID | uapi::VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
    }
    {
        let set = LockedDevSet::lock(dev);
        let ictx = set.this().iommufd_ctx();
        pdev.for_each_in_reset_scope(slot, &mut |other| {
            if entries.len() >= count {
                // The topology changed since we counted.
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
                other.iommu_group_id().ok_or(EPERM)? as u32
            };
            let entry = uapi::vfio_pci_dependent_device::new(
                address.segment,
                address.bus,
                address.devfn,
                id,
            );
            entries.push(entry, GFP_KERNEL).map_err(Error::from)
        })?;
    }

    let devices = entries.as_slice().as_bytes();
    UserSlice::new(arg.wrapping_byte_add(HEADER_SIZE), devices.len())
        .writer()
        .write_slice(devices)?;
    hdr.count = entries.len() as u32;
    hdr.flags = flags;
    write_header(arg, &hdr)?;
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
    /// Whether this proof covers `member`, a member of the set of `this`, the calling device.
    fn covers<T: ResetTarget>(&self, this: &SetMember<'_, T>, member: &SetMember<'_, T>) -> bool {
        match self {
            Self::Groups(files) => files.iter().any(|file| file.has_dev(member)),
            // A cdev-opened device is always bound to a ctx.
            Self::Iommufd => match this
                .iommufd_ctx()
                .ok_or(ENODEV)
                .and_then(|c| member.dev_id_in(c))
            {
                Ok(_) => true,
                Err(e) => e == ENOENT,
            },
        }
    }
}

/// `VFIO_DEVICE_PCI_HOT_RESET`: resets the slot or bus of this function, if the caller proves
/// it owns every function there.
pub(crate) fn hot_reset<T: ResetTarget>(dev: &VfioDevice<T>, arg: UserPtr) -> Result<isize> {
    let hdr = read_header(arg)?;
    if hdr.flags != 0 {
        return Err(EINVAL);
    }
    // The zero-length array is for cdev-opened devices, and only for them.
    if (hdr.count != 0) == dev.cdev_opened() {
        return Err(EINVAL);
    }
    let pdev: &OwnedDevice = dev.pdev();
    let slot = probe_hot_reset(pdev)?;

    let proof = if hdr.count != 0 {
        // Each group holds at least one affected function, so there cannot be more groups
        // than functions: refuse larger arrays before allocating anything.
        let count = hdr.count as usize;
        if count > count_affected(pdev, slot)? {
            return Err(EINVAL);
        }
        let mut fds = KVec::<i32>::with_capacity(count, GFP_KERNEL)?;
        let mut reader = UserSlice::new(arg, HEADER_SIZE + count * size_of::<i32>()).reader();
        reader.skip(HEADER_SIZE)?;
        for _ in 0..count {
            fds.push(reader.read::<i32>()?, GFP_KERNEL)?;
        }
        let mut files = KVec::with_capacity(count, GFP_KERNEL)?;
        for &fd in fds.iter() {
            let file = GroupFile::new(LocalFile::fget(fd as u32)?).ok_or(EINVAL)?;
            files.push(file, GFP_KERNEL)?;
        }
        Ownership::Groups(files)
    } else {
        Ownership::Iommufd
    };

    reset_dev_set(dev, &proof).map(|()| 0)
}

/// Resets the slot or bus of `dev`'s dev_set after checking `proof` covers every function,
/// with every function's memory access blocked for the duration.
fn reset_dev_set<T: ResetTarget>(dev: &VfioDevice<T>, proof: &Ownership) -> Result {
    let set = LockedDevSet::lock(dev);
    let target = resettable(&set).ok_or(EINVAL)?;

    let members = set.members().count();
    let mut blocked = KVec::with_capacity(members, GFP_KERNEL)?;
    let this = set.this();
    for member in set.members() {
        if !proof.covers(&this, &member) {
            return Err(EINVAL);
        }
        // Taking several of these locks in a row could deadlock against another hot reset
        // of the same set in another order; back off on contention instead.
        let access =
            memory::try_lock_and_zap(member.data().memory(), member.mappings()).ok_or(EBUSY)?;
        blocked.push(access, GFP_KERNEL)?;
    }

    // The reset brings every function to D0 itself, behind our back; do it first so devices
    // that lose their config on D3->D0 (NoSoftRst-) are not left unrestored.
    for member in set.members() {
        member.data().pdev().set_power_d0();
    }
    target.reset_bus()
}

/// Resets the set with a bus or slot reset if a function of it still needs one and no other
/// function of it is open (the one closing now still counts as open), as vfio-pci does on
/// last close.
pub(crate) fn reset_dirty_set<T: ResetTarget>(set: &LockedDevSet<'_, T>) {
    if set.open_count() > 1 || !set.members().any(|m| m.needs_reset()) {
        return;
    }
    let Some(target) = resettable(set) else {
        return;
    };
    if target.reset_bus().is_ok() {
        for member in set.members() {
            member.set_needs_reset(false);
        }
    }
}
