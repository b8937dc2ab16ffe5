// SPDX-License-Identifier: GPL-2.0

//! iommufd ownership as the VFIO core exposes it to drivers (`include/linux/vfio.h`,
//! `include/linux/iommufd.h`): the iommufd context a device is bound to, device ids in a
//! context, and VFIO group files.
//!
//! A device opened through its cdev is bound to an `iommufd_ctx` from its first open to its
//! last close; the core sets and clears that binding with the device's dev_set lock held, and
//! the binding holds a reference to the context. So a context read from a member of a locked
//! dev_set ([`SetMember::iommufd_ctx`]) stays valid while the lock is held: [`IommufdCtx`]
//! borrows it for exactly that long. On the legacy path ownership is proven with VFIO group
//! files instead ([`GroupFile`]).

use crate::kernel_ext::{
    bindings,
    vfio::{
        SetMember,
        VfioDeviceOps, //
    }, //
};
use core::{
    marker::PhantomData,
    ptr::NonNull, //
};
use kernel::{
    fs::LocalFile,
    prelude::*,
    sync::aref::ARef, //
};

/// A borrowed `struct iommufd_ctx`, valid for `'a`.
///
/// # Invariants
///
/// `self.0` points to a live `iommufd_ctx` that stays live for `'a`.
#[derive(Clone, Copy)]
pub(crate) struct IommufdCtx<'a>(NonNull<bindings::iommufd_ctx>, PhantomData<&'a ()>);

impl<'g, T: VfioDeviceOps> SetMember<'g, T> {
    /// The iommufd context the device is bound to, if it is bound to one (opened through its
    /// cdev).
    pub(crate) fn iommufd_ctx(&self) -> Option<IommufdCtx<'g>> {
        // SAFETY: The device is valid for `'g`; its `iommufd_device` is only set and cleared
        // with the dev_set lock held, which a `SetMember` proves for `'g`.
        let ictx = unsafe { bindings::vfio_iommufd_device_ictx(self.device().as_raw()) };
        // INVARIANT: The device's iommufd binding holds a reference to the context, and the
        // binding cannot go away while the set is locked, that is for `'g`.
        NonNull::new(ictx).map(|ictx| IommufdCtx(ictx, PhantomData))
    }

    /// The device's id in `ictx` (`> 0`) if it is bound to it; `ENOENT` when it is not bound
    /// to `ictx` but its IOMMU group is owned by `ictx`; another error otherwise.
    #[inline]
    pub(crate) fn dev_id_in(&self, ictx: IommufdCtx<'_>) -> Result<u32> {
        let dev = self.device().as_raw();
        // SAFETY: The device is valid and its iommufd binding stable while the set is locked
        // (see `iommufd_ctx`); `ictx` is a live context by the type invariant of `IommufdCtx`
        // (never null: the core would take a null one for the binding of an unbound device).
        let id = unsafe { bindings::vfio_iommufd_get_dev_id(dev, ictx.0.as_ptr()) };
        const NOT_BOUND: i32 = -(kernel::bindings::ENOENT as i32);
        match id {
            1.. => Ok(id as u32),
            0 => Err(EINVAL),
            // The answer for every unopened function of a set: recognised inline.
            NOT_BOUND => Err(ENOENT),
            _ => Err(Error::from_errno(id)),
        }
    }
}

/// A VFIO group file (`/dev/vfio/N`) user space passed in, held for as long as this value.
///
/// # Invariants
///
/// `vfio_file_is_group()` is true for the file.
pub(crate) struct GroupFile(ARef<LocalFile>);

impl GroupFile {
    /// Takes `file` if it is a VFIO group file; gives `None` for any other file.
    pub(crate) fn new(file: ARef<LocalFile>) -> Option<Self> {
        // SAFETY: `file` is a valid file we hold a reference to.
        let is_group = unsafe { bindings::vfio_file_is_group(file.as_ptr()) };
        // INVARIANT: Checked just above.
        is_group.then_some(Self(file))
    }

    /// Whether the device of `member` is a device of this group.
    pub(crate) fn has_dev<T: VfioDeviceOps>(&self, member: &SetMember<'_, T>) -> bool {
        // SAFETY: The file is a VFIO group file (type invariant) we hold a reference to; the
        // member's device is valid while its set is locked.
        unsafe { bindings::vfio_file_has_dev(self.0.as_ptr(), member.device().as_raw()) }
    }
}
