// SPDX-License-Identifier: GPL-2.0

//! Module parameters the kernel crate's `module!` cannot declare: a string copied into a
//! buffer (C's `module_param_string()`) and a bool writable at run time through sysfs (C's
//! `module_param(name, bool, perm)`).
//!
//! C header: [`include/linux/moduleparam.h`](srctree/include/linux/moduleparam.h)
//!
//! As `module!` does for its integer parameters (see [`kernel::module_param`]), each macro
//! places a `kernel_param` entry in the `__param` section, which the module loader parses the
//! arguments with, and the `parmtype=` and `parm=` records `modinfo` shows in `.modinfo`.
//! Unlike `module!`, the entries use the kernel's own ops (`param_ops_string`,
//! `param_ops_bool`), so the values are parsed exactly as for a C module.

use core::{
    cell::UnsafeCell,
    ptr::addr_of,
    sync::atomic::{
        AtomicBool,
        Ordering, //
    }, //
};
use kernel::{
    bindings,
    module_param::KernelParam,
    str::CStr, //
};

/// A string parameter (see [`module_param_string!`]): a buffer of `N` bytes, terminating NUL
/// included, that the module loader copies the argument into.
///
/// # Invariants
///
/// The buffer is written only by `param_ops_string` while the module loader parses the
/// module's arguments, before the module's `init` runs: the only `kernel_param` entries that
/// point at it are made by [`StringParam::kernel_param`], with permission 0 (no sysfs file).
pub(crate) struct StringParam<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: By the type invariant, the buffer does not change once module code runs; it is
// only read from then on.
unsafe impl<const N: usize> Sync for StringParam<N> {}

/// The buffer and size `param_ops_string` writes to (`struct kparam_string`).
#[doc(hidden)]
#[repr(transparent)]
pub(crate) struct KparamString(bindings::kparam_string);

// SAFETY: The descriptor is never mutated; the pointer it holds refers to a `StringParam`,
// which is `Sync`.
unsafe impl Sync for KparamString {}

impl<const N: usize> StringParam<N> {
    /// An empty string.
    #[doc(hidden)]
    pub(crate) const fn new() -> Self {
        Self(UnsafeCell::new([0; N]))
    }

    /// The argument as given at load time, without its terminating NUL (empty if none).
    pub(crate) fn value(&'static self) -> &'static [u8] {
        // SAFETY: By the type invariant the buffer no longer changes once module code runs,
        // so a shared view of it is sound for the rest of the module's life.
        let buffer: &'static [u8; N] = unsafe { &*self.0.get() };
        let len = buffer.iter().position(|&b| b == 0).unwrap_or(N);
        &buffer[..len]
    }

    /// The descriptor of the buffer, for [`Self::kernel_param`].
    #[doc(hidden)]
    pub(crate) const fn descriptor(&'static self) -> KparamString {
        KparamString(bindings::kparam_string {
            maxlen: N as u32,
            string: self.0.get().cast(),
        })
    }

    /// The `__param` entry of the parameter `name`, copied into `descriptor`'s buffer, with
    /// no sysfs file.
    #[doc(hidden)]
    pub(crate) const fn kernel_param(
        name: &'static CStr,
        descriptor: &'static KparamString,
    ) -> KernelParam {
        // SAFETY: `param_ops_string` parses into the `kparam_string` `str_` points to,
        // `descriptor`, which lives as long as the module.
        //
        // INVARIANT: Permission 0: only the loader writes the buffer.
        unsafe {
            this_module_param(
                name,
                addr_of!(bindings::param_ops_string),
                0,
                bindings::kernel_param__bindgen_ty_1 {
                    str_: addr_of!(descriptor.0),
                },
            )
        }
    }
}

/// A bool parameter (see [`module_param_bool!`]), written by `param_ops_bool` when the module
/// is loaded and whenever root writes its sysfs file.
pub(crate) struct BoolParam(AtomicBool);

impl BoolParam {
    /// A parameter whose value is `value` until it is set.
    #[doc(hidden)]
    pub(crate) const fn new(value: bool) -> Self {
        Self(AtomicBool::new(value))
    }

    /// The current value.
    // An `AtomicBool` has the layout of the `bool` `param_set_bool` writes, and this is a
    // single load.
    #[inline]
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The `__param` entry of the parameter `name`, whose sysfs file has permission `perm`.
    #[doc(hidden)]
    pub(crate) const fn kernel_param(
        name: &'static CStr,
        perm: u16,
        param: &'static BoolParam,
    ) -> KernelParam {
        // SAFETY: `param_ops_bool` parses into the `bool` `arg` points to, the `AtomicBool`
        // of `param`, which lives as long as the module and has the layout of a `bool`.
        unsafe {
            this_module_param(
                name,
                addr_of!(bindings::param_ops_bool),
                perm,
                bindings::kernel_param__bindgen_ty_1 {
                    arg: param.0.as_ptr().cast(),
                },
            )
        }
    }
}

/// The entry of the parameter `name` of this module, parsed by `ops` into `arg`.
///
/// # Safety
///
/// `ops` must be one of the kernel's `param_ops_*`, and `arg` must point to what those ops
/// parse into, valid for as long as the module is loaded.
const unsafe fn this_module_param(
    name: &'static CStr,
    ops: *const bindings::kernel_param_ops,
    perm: u16,
    arg: bindings::kernel_param__bindgen_ty_1,
) -> KernelParam {
    KernelParam::new(bindings::kernel_param {
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

/// Copies a `.modinfo` record into an array of its exact size, as the section needs.
#[doc(hidden)]
pub(crate) const fn modinfo_record<const N: usize>(text: &[u8]) -> [u8; N] {
    let mut record = [0u8; N];
    let mut i = 0;
    while i < N {
        record[i] = text[i];
        i += 1;
    }
    record
}

/// Places a `.modinfo` record (`parmtype=...`, `parm=...`) in the module.
#[doc(hidden)]
macro_rules! modinfo {
    ($name:ident, $text:expr) => {
        // A record of the module's `.modinfo` section, read by the loader and `modinfo`.
        #[allow(unsafe_code)]
        #[link_section = ".modinfo"]
        #[used]
        static $name: [u8; $text.len()] =
            $crate::kernel_ext::module_param::modinfo_record($text.as_bytes());
    };
}
pub(crate) use modinfo;

/// Declares a string parameter copied into a buffer of `capacity` bytes (NUL included) at
/// load time, as C's `module_param_string(name, buffer, capacity, 0)` with
/// `MODULE_PARM_DESC`.
///
/// ```ignore
/// module_param_string!(IDS, "ids", 1024, "Initial PCI IDs");
/// let ids: &[u8] = IDS.value();
/// ```
macro_rules! module_param_string {
    ($name:ident, $param:literal, $capacity:expr, $description:literal) => {
        static $name: $crate::kernel_ext::module_param::StringParam<{ $capacity }> =
            $crate::kernel_ext::module_param::StringParam::new();

        const _: () = {
            static DESCRIPTOR: $crate::kernel_ext::module_param::KparamString = $name.descriptor();

            // The entry the module loader parses the argument with.
            #[allow(unsafe_code)]
            #[link_section = "__param"]
            #[used]
            static PARAM: ::kernel::module_param::KernelParam =
                $crate::kernel_ext::module_param::StringParam::<{ $capacity }>::kernel_param(
                    ::kernel::c_str!($param),
                    &DESCRIPTOR,
                );

            $crate::kernel_ext::module_param::modinfo!(
                PARMTYPE,
                ::core::concat!("parmtype=", $param, ":string\0")
            );
            $crate::kernel_ext::module_param::modinfo!(
                PARM,
                ::core::concat!("parm=", $param, ":", $description, "\0")
            );
        };
    };
}
pub(crate) use module_param_string;

/// Declares a bool parameter, `false` until set, whose sysfs file has permission `perm`, as
/// C's `module_param(name, bool, perm)` with `MODULE_PARM_DESC`.
///
/// ```ignore
/// module_param_bool!(ENABLE, "enable", 0o644, "Enable it");
/// if ENABLE.get() { ... }
/// ```
macro_rules! module_param_bool {
    ($name:ident, $param:literal, $perm:expr, $description:literal) => {
        static $name: $crate::kernel_ext::module_param::BoolParam =
            $crate::kernel_ext::module_param::BoolParam::new(false);

        const _: () = {
            // The entry the module loader and sysfs parse the argument with.
            #[allow(unsafe_code)]
            #[link_section = "__param"]
            #[used]
            static PARAM: ::kernel::module_param::KernelParam =
                $crate::kernel_ext::module_param::BoolParam::kernel_param(
                    ::kernel::c_str!($param),
                    $perm,
                    &$name,
                );

            $crate::kernel_ext::module_param::modinfo!(
                PARMTYPE,
                ::core::concat!("parmtype=", $param, ":bool\0")
            );
            $crate::kernel_ext::module_param::modinfo!(
                PARM,
                ::core::concat!("parm=", $param, ":", $description, "\0")
            );
        };
    };
}
pub(crate) use module_param_bool;
