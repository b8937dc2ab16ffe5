// SPDX-License-Identifier: GPL-2.0

//! The `ids=` module parameter, a string in vfio-pci's format.
//!
//! The kernel crate's `module!` macro only declares integer parameters, so this one is declared
//! the way C's `module_param_string()` does it: a `kernel_param` in the `__param` section whose
//! ops are the kernel's `param_ops_string`, copying the argument into a fixed buffer. The module
//! loader parses parameters before `init` runs; with permission 0 there is no sysfs writer, so
//! the buffer is read-only once the module runs.

use core::{cell::UnsafeCell, ptr::addr_of};
use kernel::bindings;

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

/// The parameter's entry in the `__param` section, read by the module loader.
#[repr(transparent)]
struct IdsParam(bindings::kernel_param);

// SAFETY: The entry is never mutated; the loader only reads it.
unsafe impl Sync for IdsParam {}

#[link_section = "__param"]
#[used]
static IDS_PARAM: IdsParam = IdsParam(bindings::kernel_param {
    name: c"ids".as_ptr().cast(),
    // `__this_module` is created by the module loader and outlives every use of this entry,
    // which is only read while the module is loaded.
    mod_: addr_of!(bindings::__this_module).cast_mut(),
    ops: addr_of!(bindings::param_ops_string),
    perm: 0,
    level: -1,
    flags: 0,
    __bindgen_anon_1: bindings::kernel_param__bindgen_ty_1 {
        str_: addr_of!(IDS_DESCRIPTOR).cast(),
    },
});

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

const IDS_PARMTYPE_TEXT: &[u8] = b"parmtype=ids:string\0";
const IDS_PARM_TEXT: &[u8] = b"parm=ids:Initial PCI IDs to add to the vfio-pci-rs driver, \
format is \"vendor:device[:subvendor[:subdevice[:class[:class_mask]]]]\" and multiple comma \
separated entries can be specified\0";

#[link_section = ".modinfo"]
#[used]
static IDS_PARMTYPE: [u8; IDS_PARMTYPE_TEXT.len()] = modinfo_record(IDS_PARMTYPE_TEXT);

#[link_section = ".modinfo"]
#[used]
static IDS_PARM: [u8; IDS_PARM_TEXT.len()] = modinfo_record(IDS_PARM_TEXT);

/// The `ids=` argument as given at load time, without its terminating NUL.
pub(crate) fn ids() -> &'static [u8] {
    // SAFETY: Per the `Sync` argument of `IdsBuffer`, the buffer no longer changes once the
    // module runs, so a shared view of it is sound for the rest of the module's life.
    let buffer: &'static [u8; IDS_CAPACITY] = unsafe { &*IDS.0.get() };
    let len = buffer.iter().position(|&b| b == 0).unwrap_or(IDS_CAPACITY);
    &buffer[..len]
}
