// SPDX-License-Identifier: GPL-2.0

//! Read-only sysfs attributes a [`super::driver::Driver`] adds to every function bound to it,
//! through its `dev_groups` (`pci_driver.dev_groups`, copied to its `device_driver`): the driver
//! core creates them once probe has succeeded and removes them before `remove`, waiting for the
//! readers in progress, so an attribute is only ever read while the function is bound and its
//! driver data alive.
//!
//! The attributes are in one directory of the function (`/sys/bus/pci/devices/BDF/NAME/`),
//! named and listed by [`Driver::ATTRIBUTE_GROUP`] and [`Driver::ATTRIBUTES`]; a read is
//! answered by [`Driver::show_attribute`], which writes text into a [`Text`] (one page at most;
//! what does not fit is cut).

use super::device_from_device_raw;
use super::driver::{
    Adapter,
    Driver, //
};
use core::{
    fmt,
    mem::MaybeUninit,
    ptr, //
};
use kernel::{
    bindings,
    ffi::c_char,
    page::PAGE_SIZE,
    str::{
        as_char_ptr_in_const_context,
        CStr,
        CStrExt, //
    }, //
};

/// At most this many attributes per driver.
pub(crate) const MAX_ATTRIBUTES: usize = 4;

/// The text of a sysfs attribute being read: a page the driver core hands in, written from its
/// start.
///
/// # Invariants
///
/// `buf` points to `PAGE_SIZE` writable bytes, exclusively ours for `'a`; `len < PAGE_SIZE`.
pub(crate) struct Text<'a> {
    buf: *mut u8,
    len: usize,
    _page: core::marker::PhantomData<&'a mut [u8]>,
}

impl Text<'_> {
    /// Bytes kept, as a sysfs read returns them: less than a page.
    const ROOM: usize = PAGE_SIZE - 1;
}

impl fmt::Write for Text<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(Self::ROOM - self.len);
        // SAFETY: `buf` has `PAGE_SIZE` bytes (type invariant) and `self.len + n <= ROOM`.
        unsafe { ptr::copy_nonoverlapping(s.as_ptr(), self.buf.add(self.len), n) };
        // INVARIANT: Still below `PAGE_SIZE`.
        self.len += n;
        if n < s.len() {
            return Err(fmt::Error);
        }
        Ok(())
    }
}

impl<T: Driver> Adapter<T> {
    const ATTRS: [bindings::device_attribute; MAX_ATTRIBUTES] = {
        assert!(T::ATTRIBUTES.len() <= MAX_ATTRIBUTES);
        let mut attrs: [bindings::device_attribute; MAX_ATTRIBUTES] =
            // SAFETY: All-zero bytes are a valid `device_attribute` (null pointers, no
            // callbacks).
            unsafe { MaybeUninit::zeroed().assume_init() };
        let mut i = 0;
        while i < T::ATTRIBUTES.len() {
            attrs[i].attr.name = as_char_ptr_in_const_context(T::ATTRIBUTES[i]);
            attrs[i].attr.mode = 0o444;
            attrs[i].__bindgen_anon_1.show = Some(Self::show_callback);
            i += 1;
        }
        attrs
    };

    const ATTR_PTRS: [*mut bindings::attribute; MAX_ATTRIBUTES + 1] = {
        let attrs: &'static [bindings::device_attribute; MAX_ATTRIBUTES] = &Self::ATTRS;
        let mut ptrs = [ptr::null_mut(); MAX_ATTRIBUTES + 1];
        let mut i = 0;
        while i < T::ATTRIBUTES.len() {
            // The driver core and sysfs only read the attributes.
            ptrs[i] = ptr::from_ref(&attrs[i].attr).cast_mut();
            i += 1;
        }
        ptrs
    };

    const GROUP: bindings::attribute_group = {
        // SAFETY: All-zero bytes are a valid `attribute_group` (no name, callbacks or lists).
        let mut group: bindings::attribute_group = unsafe { MaybeUninit::zeroed().assume_init() };
        group.name = as_char_ptr_in_const_context(T::ATTRIBUTE_GROUP);
        let ptrs: &'static [*mut bindings::attribute; MAX_ATTRIBUTES + 1] = &Self::ATTR_PTRS;
        // The list is only read.
        group.__bindgen_anon_2.attrs = ptr::from_ref(ptrs).cast_mut().cast();
        group
    };

    const GROUPS: [*const bindings::attribute_group; 2] = [&Self::GROUP, ptr::null()];

    /// The `dev_groups` of the driver (`pci_driver.dev_groups`, which the PCI core hands to the
    /// driver core): its attribute group, null-terminated; null when it has no attributes. The
    /// list is only read, despite the field's type.
    pub(super) const fn dev_groups() -> *mut *const bindings::attribute_group {
        if T::ATTRIBUTES.is_empty() {
            return ptr::null_mut();
        }
        let groups: &'static [*const bindings::attribute_group; 2] = &Self::GROUPS;
        groups.as_ptr().cast_mut()
    }

    /// The `show` callback of every attribute.
    ///
    /// # Safety
    ///
    /// Called by sysfs only, for an attribute of [`Self::dev_groups`] on a function bound to
    /// this driver, with a page-sized `buf`.
    unsafe extern "C" fn show_callback(
        dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
        buf: *mut c_char,
    ) -> isize {
        // SAFETY: The driver core adds the attributes of `dev_groups` only to functions bound to
        // this driver, and only for as long as they are bound (see the module doc), so `dev` is
        // a PCI function alive for the call.
        let pdev = unsafe { device_from_device_raw(dev) };
        // SAFETY: As above: the function is bound to this driver, its probe has succeeded and
        // its remove has not started, for the duration of the call.
        let data = unsafe { Self::data_of(super::raw_of(pdev)) };
        // SAFETY: `attr` is one of `ATTRS`, valid for the call, whose name is one of
        // `T::ATTRIBUTES`: a NUL-terminated static string. (Names are compared by content: the
        // copies of a constant need not share an address.)
        let name = unsafe { CStr::from_char_ptr((*attr).attr.name) };
        let Some(index) = T::ATTRIBUTES.iter().position(|n| *n == name) else {
            return 0;
        };
        // INVARIANT: sysfs hands in a page-sized buffer, ours for the call.
        let mut text = Text {
            buf: buf.cast(),
            len: 0,
            _page: core::marker::PhantomData,
        };
        T::show_attribute(data, index, &mut text);
        text.len as isize
    }
}
