// SPDX-License-Identifier: GPL-2.0

//! UUIDs (`uuid_t`, C header `include/linux/uuid.h`): random ones and the text form.

use kernel::{
    bindings,
    prelude::*, //
};

/// Length of a UUID's text form (`8-4-4-4-12` hexadecimal digits, `UUID_STRING_LEN`).
pub(crate) const UUID_STRING_LEN: usize = 36;

/// A UUID, as its 16 bytes in the order of the text form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Uuid(pub(crate) [u8; 16]);

impl Uuid {
    /// A random (version 4) UUID (`uuid_gen`).
    pub(crate) fn random() -> Self {
        let mut uuid = bindings::uuid_t::default();
        // SAFETY: `uuid` is a valid output location.
        unsafe { bindings::uuid_gen(&mut uuid) };
        Self(uuid.b)
    }

    /// Parses the text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hexadecimal digits in
    /// either case (`uuid_parse`); `EINVAL` if malformed.
    pub(crate) fn parse(text: &[u8; UUID_STRING_LEN]) -> Result<Self> {
        let mut buf = [0u8; UUID_STRING_LEN + 1];
        buf[..UUID_STRING_LEN].copy_from_slice(text);
        let mut uuid = bindings::uuid_t::default();
        // SAFETY: `buf` is NUL-terminated after the 36 characters `uuid_parse` reads; `uuid`
        // is a valid output location.
        let ret = unsafe { bindings::uuid_parse(buf.as_ptr().cast(), &mut uuid) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(Self(uuid.b))
    }
}
