// SPDX-License-Identifier: GPL-2.0

//! Device messages the kernel crate's `dev_*!` macros cannot print: rate-limited ones, and
//! ones naming an eventfd by its hashed address (`%p`), as vfio-pci's messages do.

use crate::kernel_ext::bindings as helpers;
use crate::kernel_ext::eventfd::EventFd;
use crate::kernel_ext::pci::device_raw_of;
use kernel::{
    pci,
    str::{
        CStr,
        CStrExt, //
    }, //
};

/// Logs `msg` and a newline at `KERN_INFO` for the function `pdev`, rate-limited
/// (`dev_info_ratelimited()`), for messages user space can trigger at will.
pub(crate) fn dev_info_ratelimited(pdev: &pci::Device, msg: &CStr) {
    // SAFETY: The function's device is valid while `pdev` is borrowed; `msg` is
    // NUL-terminated and the helper prints it with a "%s" format.
    unsafe { helpers::vfio_pci_rs_dev_info_ratelimited(device_raw_of(pdev), msg.as_char_ptr()) };
}

/// Logs `before`, the address of `eventfd`'s context as `%p` prints it (hashed, unless the
/// kernel is booted with `no_hash_pointers`), `after` and a newline at `KERN_INFO` for the
/// function `pdev` (`dev_info()`).
pub(crate) fn dev_info_eventfd(pdev: &pci::Device, before: &CStr, eventfd: &EventFd, after: &CStr) {
    // SAFETY: The function's device is valid while `pdev` is borrowed; both strings are
    // NUL-terminated and printed with "%s"; the context is only printed, with "%p".
    unsafe {
        helpers::vfio_pci_rs_dev_info_ptr(
            device_raw_of(pdev),
            before.as_char_ptr(),
            eventfd.as_raw().cast_const().cast(),
            after.as_char_ptr(),
        )
    };
}
