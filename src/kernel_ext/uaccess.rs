// SPDX-License-Identifier: GPL-2.0

//! Copies of a few bytes between user memory and the kernel, for the paths every access and
//! ioctl takes.
//!
//! The kernel crate's [`kernel::uaccess::UserSlice`] readers and writers do the same through
//! out-of-line methods and the `copy_{from,to}_user()` C helpers; vfio-pci's copies of fixed,
//! small sizes are inlined. Measured with `scripts/profile.sh`, the slice methods cost an ioctl
//! 65 instructions more than vfio-pci's copies. These call `_copy_from_user()` and
//! `_copy_to_user()` themselves, as [`kernel::uaccess::UserSliceReader::read`] does, so the
//! rest inlines into the caller. (Upstream, the kernel crate's slice methods would become
//! inline instead.)

use kernel::{
    bindings,
    ffi,
    prelude::*,
    uaccess::UserPtr, //
};

/// Copies `data.len()` bytes from user memory at `user` into `data`; `EFAULT` if any of them
/// cannot be read (`data` may then hold some of them).
#[inline]
pub(crate) fn copy_from_user(user: UserPtr, data: &mut [u8]) -> Result {
    // SAFETY: `data` is valid for writes of `data.len()` bytes and is kernel memory;
    // `_copy_from_user()` checks that the user range is accessible (`access_ok()`), handles
    // faults in it, and returns how many bytes it could not copy.
    let left = unsafe {
        bindings::_copy_from_user(
            data.as_mut_ptr().cast(),
            user.as_const_ptr(),
            data.len() as ffi::c_ulong,
        )
    };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok(())
}

/// Copies `data` to user memory at `user`; `EFAULT` if any of it cannot be written.
#[inline]
pub(crate) fn copy_to_user(user: UserPtr, data: &[u8]) -> Result {
    // SAFETY: `data` is valid for reads of `data.len()` bytes and is kernel memory;
    // `_copy_to_user()` checks that the user range is accessible (`access_ok()`), handles
    // faults in it, and returns how many bytes it could not copy.
    let left = unsafe {
        bindings::_copy_to_user(
            user.as_mut_ptr(),
            data.as_ptr().cast(),
            data.len() as ffi::c_ulong,
        )
    };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok(())
}
