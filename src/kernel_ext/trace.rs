// SPDX-License-Identifier: GPL-2.0

//! The driver's trace events (tracefs `events/vfio_pci_rs/`), one safe function per event.
//!
//! The events are defined in C, as out-of-tree modules define them
//! (`include/vfio_pci_rs_trace.h`, instantiated by `src/kernel_ext/trace.c` with
//! `CREATE_RUST_TRACE_POINTS`, which adds a `rust_do_trace_*()` entry point per event). Each
//! function here first tests the event's static key (a patched jump with `CONFIG_JUMP_LABEL`,
//! else a load), as the kernel crate's `declare_trace!` does, and only when the event is
//! enabled gathers what it records (the reset scope's members, for the set resets) and calls
//! the entry point. (`declare_trace!` itself looks the event up in `kernel::bindings`, which an
//! out-of-tree module cannot extend.)

use crate::kernel_ext::{
    bindings,
    pci::{
        raw_of,
        PciDeviceExt, //
    }, //
};
use kernel::{
    pci,
    prelude::*,
    str::CStrExt, //
};

/// Whether the trace event `$key` (its `struct tracepoint`) is enabled.
macro_rules! enabled {
    ($key:ident) => {{
        // SAFETY: `$key` is a `struct tracepoint` defined by `trace.c`, a real static key; it
        // is always valid to test it.
        unsafe {
            kernel::static_branch_unlikely!(bindings::$key, kernel::bindings::tracepoint, key)
        }
    }};
}

/// The errno of `result`, or 0.
fn ret<T>(result: &Result<T>) -> i32 {
    match result {
        Ok(_) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The functions a slot (`slot`) or bus reset of `pdev` reaches, packed for the events; none
/// when `scope` is `None` (no such reset). Cut short if memory runs out.
fn members(pdev: &pci::Device, scope: Option<bool>) -> KVec<u32> {
    let mut members = KVec::new();
    if let Some(slot) = scope {
        let _ = pdev.for_each_in_reset_scope(slot, |other| {
            members
                .push(other.address().packed(), GFP_KERNEL)
                .map_err(Error::from)
        });
    }
    members
}

/// The scope's name, as the events show it.
fn scope_name(scope: Option<bool>) -> &'static CStr {
    match scope {
        Some(true) => c"slot",
        Some(false) => c"bus",
        None => c"none",
    }
}

/// `vfio_pci_rs_open`: the first open of `pdev` ended with `result`; asked only when the event
/// is enabled: whether the device is bound to an iommufd context (`iommufd`), whether a function
/// reset worked (`reset_works`).
pub(crate) fn open(
    pdev: &pci::Device,
    iommufd: impl FnOnce() -> bool,
    reset_works: impl FnOnce() -> bool,
    result: &Result,
) {
    if enabled!(__tracepoint_vfio_pci_rs_open) {
        let (iommufd, reset_works) = (iommufd(), reset_works());
        // SAFETY: `pdev` is a valid function for the call; the event only reads its name.
        unsafe {
            bindings::rust_do_trace_vfio_pci_rs_open(
                raw_of(pdev),
                iommufd,
                reset_works,
                ret(result),
            )
        };
    }
}

/// `vfio_pci_rs_close`: the last close of `pdev`; its reset ended with `reset` (`ENOTTY`: not
/// attempted), and it is left needing the set's reset (`needs_reset`).
pub(crate) fn close(pdev: &pci::Device, reset: &Result, needs_reset: bool) {
    if enabled!(__tracepoint_vfio_pci_rs_close) {
        // SAFETY: As in `open`.
        unsafe { bindings::rust_do_trace_vfio_pci_rs_close(raw_of(pdev), ret(reset), needs_reset) };
    }
}

/// `vfio_pci_rs_reset`: `VFIO_DEVICE_RESET` of `pdev` ended with `result`.
pub(crate) fn device_reset<T>(pdev: &pci::Device, result: &Result<T>) {
    if enabled!(__tracepoint_vfio_pci_rs_reset) {
        // SAFETY: As in `open`; the event also reads the function's `reset_methods`, which the
        // PCI core sets at enumeration (and changes only through sysfs `reset_method`: a racy
        // read of one byte, as sysfs `reset_method` reads it).
        unsafe { bindings::rust_do_trace_vfio_pci_rs_reset(raw_of(pdev), ret(result)) };
    }
}

/// `vfio_pci_rs_hot_reset`: `VFIO_DEVICE_PCI_HOT_RESET` of `pdev` ended with `result`; `scope`
/// gives the reset's extent (a slot, `Some(true)`, or a bus) when asked, the functions it
/// reaches are listed from it; the proof was the iommufd_ctx (`by_iommufd`) or group fds.
pub(crate) fn hot_reset<T>(
    pdev: &pci::Device,
    scope: impl FnOnce() -> Option<bool>,
    by_iommufd: bool,
    result: &Result<T>,
) {
    if enabled!(__tracepoint_vfio_pci_rs_hot_reset) {
        let scope = scope();
        let members = members(pdev, scope);
        // SAFETY: As in `open`; `scope_name` is a NUL-terminated static string, `members` is
        // valid for `members.len()` entries for the call.
        unsafe {
            bindings::rust_do_trace_vfio_pci_rs_hot_reset(
                raw_of(pdev),
                scope_name(scope).as_char_ptr(),
                by_iommufd,
                members.as_ptr(),
                members.len() as u32,
                ret(result),
            )
        };
    }
}

/// `vfio_pci_rs_dirty_reset`: the reset of the dirty set of `pdev` at its last close, whose
/// `scope` (see [`hot_reset`]) lists the members, ended with `result`.
pub(crate) fn dirty_reset(
    pdev: &pci::Device,
    scope: impl FnOnce() -> Option<bool>,
    result: &Result,
) {
    if enabled!(__tracepoint_vfio_pci_rs_dirty_reset) {
        let members = members(pdev, scope());
        // SAFETY: As in `hot_reset`.
        unsafe {
            bindings::rust_do_trace_vfio_pci_rs_dirty_reset(
                raw_of(pdev),
                members.as_ptr(),
                members.len() as u32,
                ret(result),
            )
        };
    }
}
