// SPDX-License-Identifier: GPL-2.0

//! Why a hot-reset ioctl was refused, logged through dynamic debug.
//!
//! The kernel crate's `dev_dbg!` has no dynamic-debug call site (no `struct _ddebug` in the
//! `__dyndbg` section): it prints only in debug builds, and cannot be switched at run time. So
//! the messages are `dev_dbg()` call sites of `src/kernel_ext/dyndbg.c`, one per rule, whose
//! text lives there alone (the rules are listed in `include/vfio_pci_rs_dyndbg.h`), and this
//! module turns a [`Refusal`] into that call. A disabled call site costs its static branch: it
//! formats nothing. Enable them with `echo 'module vfio_pci_rs +p' >
//! /proc/dynamic_debug/control`.

use crate::kernel_ext::{
    bindings,
    pci::{
        device_raw_of,
        CurrentDriver,
        PciDeviceExt, //
    }, //
};
use kernel::{
    ffi::{
        c_char,
        c_long, //
    },
    pci,
    prelude::*,
    str::CStrExt, //
};

/// The ioctl refused.
#[derive(Clone, Copy)]
pub(crate) enum HotResetIoctl {
    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`.
    Info,
    /// `VFIO_DEVICE_PCI_HOT_RESET`.
    Reset,
}

/// The rule that refused a hot-reset ioctl, with what the message names: the function of the
/// reset scope to blame, or the numbers at fault.
pub(crate) enum Refusal<'a> {
    /// `argsz` does not cover the header.
    Argsz,
    /// The argument could not be copied in or out.
    Fault(Error),
    /// `flags` is not 0.
    Flags(u32),
    /// Group fds were given for a device opened through its cdev.
    FdsOnCdev(u32),
    /// The zero-length array was given for a device opened through its group.
    NoFdsOnGroup,
    /// Neither a slot nor a bus reset can reach the function.
    NoResetMethod,
    /// More group fds than functions in the reset scope.
    Count { count: u32, functions: usize },
    /// An fd that is not open.
    BadFd(i32),
    /// An fd that is not a VFIO group.
    NotGroup(i32),
    /// A function of the reset scope is not in the caller's set (bound to another driver, or
    /// to none); its driver is looked up for the message.
    NotBound(&'a pci::Device),
    /// No group fd given covers this function.
    GroupMissing(&'a pci::Device),
    /// The caller's iommufd_ctx does not own this function.
    NotOwned(&'a pci::Device),
    /// This function's memory is in use.
    Busy(&'a pci::Device),
    /// This function has no IOMMU group.
    NoIommuGroup(&'a pci::Device),
    /// The reset scope holds no function.
    Empty,
    /// `argsz` has room for fewer entries than the scope holds.
    NoRoom { room: usize, functions: usize },
    /// The topology changed during the walk.
    Topology,
    /// The slot or bus reset itself failed.
    ResetFailed(Error),
}

/// Logs at debug level (dynamic debug) that `ioctl` on `caller` was refused, and why.
pub(crate) fn refused(caller: &pci::Device, ioctl: HotResetIoctl, why: Refusal<'_>) {
    let ioctl = match ioctl {
        HotResetIoctl::Info => bindings::vfio_pci_rs_ioctl_VFIO_PCI_RS_IOCTL_HOT_RESET_INFO,
        HotResetIoctl::Reset => bindings::vfio_pci_rs_ioctl_VFIO_PCI_RS_IOCTL_HOT_RESET,
    };
    let mut member: Option<&pci::Device> = None;
    let mut driver = CurrentDriver::None;
    let (rule, a, b): (bindings::vfio_pci_rs_refusal, i64, i64) = match why {
        Refusal::Argsz => (
            bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_ARGSZ,
            0,
            0,
        ),
        Refusal::Fault(e) => (
            bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_FAULT,
            e.to_errno().into(),
            0,
        ),
        Refusal::Flags(flags) => (
            bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_FLAGS,
            flags.into(),
            0,
        ),
        Refusal::FdsOnCdev(count) => (
            bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_FDS_ON_CDEV,
            count.into(),
            0,
        ),
        Refusal::NoFdsOnGroup => (
            bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_NO_FDS_ON_GROUP,
            0,
            0,
        ),
        Refusal::NoResetMethod => (
            bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_NO_RESET_METHOD,
            0,
            0,
        ),
        Refusal::Count { count, functions } => (
            bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_COUNT,
            count.into(),
            functions as i64,
        ),
        Refusal::BadFd(fd) => (
            bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_BAD_FD,
            fd.into(),
            0,
        ),
        Refusal::NotGroup(fd) => (
            bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_NOT_GROUP,
            fd.into(),
            0,
        ),
        Refusal::NotBound(pdev) => {
            member = Some(pdev);
            driver = pdev.current_driver();
            (
                bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_NOT_BOUND,
                0,
                0,
            )
        }
        Refusal::GroupMissing(pdev) => {
            member = Some(pdev);
            (
                bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_GROUP_MISSING,
                0,
                0,
            )
        }
        Refusal::NotOwned(pdev) => {
            member = Some(pdev);
            (
                bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_NOT_OWNED,
                0,
                0,
            )
        }
        Refusal::Busy(pdev) => {
            member = Some(pdev);
            (bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_BUSY, 0, 0)
        }
        Refusal::NoIommuGroup(pdev) => {
            member = Some(pdev);
            (
                bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_NO_IOMMU_GROUP,
                0,
                0,
            )
        }
        Refusal::Empty => (
            bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_EMPTY,
            0,
            0,
        ),
        Refusal::NoRoom { room, functions } => (
            bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_NO_ROOM,
            room as i64,
            functions as i64,
        ),
        Refusal::Topology => (
            bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_TOPOLOGY,
            0,
            0,
        ),
        Refusal::ResetFailed(e) => (
            bindings::vfio_pci_rs_refusal_VFIO_PCI_RS_REFUSED_RESET_FAILED,
            e.to_errno().into(),
            0,
        ),
    };
    let driver_name: *const c_char = match &driver {
        CurrentDriver::None => core::ptr::null(),
        CurrentDriver::Bound(name) => name.as_char_ptr(),
        CurrentDriver::Busy => c"?".as_char_ptr(),
    };
    let member = member.map_or(core::ptr::null_mut(), device_raw_of);
    // SAFETY: `caller` and `member` (when not null) are valid devices for the duration of the
    // call (borrowed); `driver_name` is null or a NUL-terminated string that outlives the call
    // (`driver` is dropped after it). The C function only prints them.
    unsafe {
        bindings::vfio_pci_rs_dbg_refused(
            device_raw_of(caller),
            ioctl,
            rule,
            member,
            driver_name,
            a as c_long,
            b as c_long,
        )
    };
}
