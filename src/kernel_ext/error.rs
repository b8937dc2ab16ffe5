// SPDX-License-Identifier: GPL-2.0

//! Errno returns of C functions as [`Result`]s.
//!
//! [`to_result`] is `kernel::error::to_result` inline: the kernel crate's is an out-of-line
//! call in another crate, so every successful C call paid its call and return (five
//! instructions a call on the bench kernel, `scripts/profile.sh`: 165 in a hot reset of 32
//! functions, one `pci_set_power_state()` each). Only a failure goes out of line, to
//! [`Error::from_errno`].

use kernel::{
    ffi::c_int,
    prelude::*, //
};

/// `Ok(())` for a C function's non-negative return, else its errno.
#[inline]
pub(crate) fn to_result(ret: c_int) -> Result {
    if ret < 0 {
        return Err(Error::from_errno(ret));
    }
    Ok(())
}
