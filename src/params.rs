// SPDX-License-Identifier: GPL-2.0

//! The module parameters, named and behaving as vfio-pci's:
//!
//! - `ids=`: a string in vfio-pci's format, the initial dynamic IDs (see [`crate::ids`]).
//! - `enable_sriov=`: a bool, off by default and writable at run time through
//!   `/sys/module/vfio_pci_rs/parameters/enable_sriov` (mode 0644): whether a PF bound to this
//!   driver may create VFs (see [`crate::sriov`]).
//!
//! The kernel crate's `module!` macro only declares read-only integer parameters, so these
//! are declared the way C's `module_param_string()` and `module_param()` do it: a
//! `kernel_param` in the `__param` section whose ops are the kernel's (`param_ops_string`,
//! copying the argument into a fixed buffer; `param_ops_bool`), plus the `.modinfo` records
//! `modinfo` shows. The module loader parses parameters before `init` runs; `ids` has
//! permission 0 (no sysfs writer), so its buffer is read-only once the module runs.

#![allow(unsafe_code)] // Transitional: this file still calls C directly.

use core::{
    cell::UnsafeCell,
    ptr::addr_of,
    sync::atomic::{AtomicBool, Ordering},
};
use kernel::{bindings, str::CStr};

/// Size of the buffer, terminating NUL included (vfio-pci uses 1024 too).
const IDS_CAPACITY: usize = 1024;

/// The buffer the loader copies the `ids=` argument into.
#[repr(transparent)]
struct IdsBuffer(UnsafeCell<[u8; IDS_CAPACITY]>);

// SAFETY: The buffer is written only by the module loader while it parses parameters, before the
// module's `init` runs and before anything else can read it; afterwards it is only read.
unsafe impl Sync for IdsBuffer {}

static IDS: IdsBuffer = IdsBuffer(UnsafeCell::new([0; IDS_CAPACITY]));

/// Where `param_ops_string` writes: the buffer and its size.
#[repr(transparent)]
struct IdsDescriptor(bindings::kparam_string);

// SAFETY: The descriptor is immutable; the pointer it holds refers to `IDS`, which is `Sync`.
unsafe impl Sync for IdsDescriptor {}

static IDS_DESCRIPTOR: IdsDescriptor = IdsDescriptor(bindings::kparam_string {
    maxlen: IDS_CAPACITY as u32,
    string: addr_of!(IDS).cast_mut().cast(),
});

/// A parameter's entry in the `__param` section, read by the module loader.
#[repr(transparent)]
struct KernelParam(bindings::kernel_param);

// SAFETY: The entry is never mutated; the loader and sysfs only read it.
unsafe impl Sync for KernelParam {}

impl KernelParam {
    /// The entry of the parameter `name` of this module, parsed by `ops` into `arg`.
    const fn new(
        name: &'static CStr,
        ops: *const bindings::kernel_param_ops,
        perm: u16,
        arg: bindings::kernel_param__bindgen_ty_1,
    ) -> Self {
        Self(bindings::kernel_param {
            name: kernel::str::as_char_ptr_in_const_context(name),
            // `__this_module` is created by the module loader and outlives every use of this
            // entry, which is only read while the module is loaded.
            mod_: addr_of!(bindings::__this_module).cast_mut(),
            ops,
            perm,
            level: -1,
            flags: 0,
            __bindgen_anon_1: arg,
        })
    }
}

#[link_section = "__param"]
#[used]
static IDS_PARAM: KernelParam = KernelParam::new(
    c"ids",
    addr_of!(bindings::param_ops_string),
    0,
    bindings::kernel_param__bindgen_ty_1 {
        str_: addr_of!(IDS_DESCRIPTOR).cast(),
    },
);

/// Copies a modinfo record into an array of its exact size, as the section needs.
const fn modinfo_record<const N: usize>(text: &[u8]) -> [u8; N] {
    let mut record = [0u8; N];
    let mut i = 0;
    while i < N {
        record[i] = text[i];
        i += 1;
    }
    record
}

/// Places a `.modinfo` record (`parmtype=...`, `parm=...`) in the module.
macro_rules! modinfo {
    ($name:ident, $text:expr) => {
        #[link_section = ".modinfo"]
        #[used]
        static $name: [u8; $text.len()] = modinfo_record($text);
    };
}

modinfo!(IDS_PARMTYPE, b"parmtype=ids:string\0");
modinfo!(
    IDS_PARM,
    b"parm=ids:Initial PCI IDs to add to the vfio-pci-rs driver, \
format is \"vendor:device[:subvendor[:subdevice[:class[:class_mask]]]]\" and multiple comma \
separated entries can be specified\0"
);

/// `enable_sriov`: written by the module loader before `init`, and by the kernel's
/// `param_set_bool` whenever root writes the sysfs file; an `AtomicBool` has the layout of
/// the `bool` it writes, and reads of it here are single loads.
static ENABLE_SRIOV: AtomicBool = AtomicBool::new(false);

#[link_section = "__param"]
#[used]
static ENABLE_SRIOV_PARAM: KernelParam = KernelParam::new(
    c"enable_sriov",
    addr_of!(bindings::param_ops_bool),
    0o644,
    bindings::kernel_param__bindgen_ty_1 {
        arg: addr_of!(ENABLE_SRIOV).cast_mut().cast(),
    },
);

modinfo!(ENABLE_SRIOV_PARMTYPE, b"parmtype=enable_sriov:bool\0");
modinfo!(
    ENABLE_SRIOV_PARM,
    b"parm=enable_sriov:Enable support for SR-IOV configuration.  Enabling SR-IOV on a PF \
typically requires support of the userspace PF driver, enabling VFs without such support may \
result in non-functional VFs or PF.\0"
);

/// Whether PFs bound to this driver may enable SR-IOV now (`enable_sriov=`).
pub(crate) fn enable_sriov() -> bool {
    ENABLE_SRIOV.load(Ordering::Relaxed)
}

/// The `ids=` argument as given at load time, without its terminating NUL.
pub(crate) fn ids() -> &'static [u8] {
    // SAFETY: Per the `Sync` argument of `IdsBuffer`, the buffer no longer changes once the
    // module runs, so a shared view of it is sound for the rest of the module's life.
    let buffer: &'static [u8; IDS_CAPACITY] = unsafe { &*IDS.0.get() };
    let len = buffer.iter().position(|&b| b == 0).unwrap_or(IDS_CAPACITY);
    &buffer[..len]
}
