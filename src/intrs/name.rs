// SPDX-License-Identifier: GPL-2.0

//! The names the driver's IRQs carry in `/proc/interrupts`, the ones vfio-pci gives them:
//! `vfio-intx(BDF)`, `vfio-msi[N](BDF)` and `vfio-msix[N](BDF)`.
//!
//! A name is put together on the stack, piece by piece, and copied into its allocation once.
//! Formatted with `core::fmt` instead (`CString::try_from_fmt`, which runs the formatter twice:
//! once to measure, once to write), the names of a 32-vector MSI-X enable cost about 60,000
//! instructions (`scripts/profile.sh bench 32`, session 13), most of what that enable executed
//! beyond vfio-pci's.

use super::msi::MsiKind;
use kernel::{
    prelude::*,
    str::CString, //
};

/// Room for a name and its NUL: `vfio-msix[4294967295](` is 22 bytes, a PCI function's name
/// (`dddd:bb:dd.f`) 12.
const ROOM: usize = 48;

/// A name being put together on the stack.
struct NameBuf {
    bytes: [u8; ROOM],
    len: usize,
}

impl NameBuf {
    fn new() -> Self {
        Self {
            bytes: [0; ROOM],
            len: 0,
        }
    }

    /// Appends `piece`; `None` when it does not fit (leaving room for the NUL).
    fn push(&mut self, piece: &[u8]) -> Option<()> {
        let end = self
            .len
            .checked_add(piece.len())
            .filter(|&end| end < ROOM)?;
        self.bytes.get_mut(self.len..end)?.copy_from_slice(piece);
        self.len = end;
        Some(())
    }

    /// Appends `n` in decimal.
    fn push_decimal(&mut self, n: u32) -> Option<()> {
        // `u32::MAX` has ten digits, written from the last.
        let mut digits = [0u8; 10];
        let mut used = 0;
        let mut rest = n;
        for digit in digits.iter_mut().rev() {
            // `rest % 10 < 10`.
            *digit = b'0' + (rest % 10) as u8;
            used += 1;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.push(digits.get(digits.len() - used..)?)
    }

    /// The name, NUL-terminated, in an allocation of its own.
    fn finish(mut self) -> Result<CString> {
        // `push` always leaves room for the NUL, which `new` already wrote.
        self.len += 1;
        let with_nul = self.bytes.get(..self.len).ok_or(EINVAL)?;
        let name = CStr::from_bytes_with_nul(with_nul).map_err(|_| EINVAL)?;
        Ok(CString::try_from(name)?)
    }
}

/// The name of the INTx IRQ of the function named `dev_name`.
pub(super) fn intx(dev_name: &CStr) -> Result<CString> {
    let mut name = NameBuf::new();
    let fits = name
        .push(b"vfio-intx(")
        .and_then(|()| name.push(dev_name.to_bytes()))
        .and_then(|()| name.push(b")"));
    match fits {
        Some(()) => name.finish(),
        None => CString::try_from_fmt(fmt!("vfio-intx({})", dev_name)),
    }
}

/// The name of the IRQ of MSI or MSI-X `vector` of the function named `dev_name`.
pub(super) fn msi(kind: MsiKind, vector: u32, dev_name: &CStr) -> Result<CString> {
    let suffix = match kind {
        MsiKind::Msi => "",
        MsiKind::Msix => "x",
    };
    let mut name = NameBuf::new();
    let fits = name
        .push(b"vfio-msi")
        .and_then(|()| name.push(suffix.as_bytes()))
        .and_then(|()| name.push(b"["))
        .and_then(|()| name.push_decimal(vector))
        .and_then(|()| name.push(b"]("))
        .and_then(|()| name.push(dev_name.to_bytes()))
        .and_then(|()| name.push(b")"));
    match fits {
        Some(()) => name.finish(),
        None => CString::try_from_fmt(fmt!("vfio-msi{}[{}]({})", suffix, vector, dev_name)),
    }
}

#[kernel::macros::kunit_tests(vfio_pci_rs_irq_name)]
mod tests {
    use super::*;

    /// Whether `name` is `expected`.
    fn is(name: Result<CString>, expected: &str) -> bool {
        name.is_ok_and(|name| name.to_bytes() == expected.as_bytes())
    }

    #[test]
    fn intx_name() {
        assert!(is(intx(c"0000:01:00.0"), "vfio-intx(0000:01:00.0)"));
    }

    #[test]
    fn msi_names() {
        assert!(is(
            msi(MsiKind::Msi, 0, c"0000:00:03.0"),
            "vfio-msi[0](0000:00:03.0)"
        ));
        assert!(is(
            msi(MsiKind::Msix, 31, c"0000:01:00.1"),
            "vfio-msix[31](0000:01:00.1)"
        ));
        assert!(is(
            msi(MsiKind::Msix, u32::MAX, c"ffff:ff:1f.7"),
            "vfio-msix[4294967295](ffff:ff:1f.7)"
        ));
    }

    #[test]
    fn long_names_are_formatted() {
        let long = c"a-device-name-far-longer-than-any-pci-function-has";
        assert!(is(
            intx(long),
            "vfio-intx(a-device-name-far-longer-than-any-pci-function-has)"
        ));
        assert!(is(
            msi(MsiKind::Msix, 7, long),
            "vfio-msix[7](a-device-name-far-longer-than-any-pci-function-has)"
        ));
    }

    #[test]
    fn decimal() {
        let mut buf = NameBuf::new();
        assert!(buf.push_decimal(1_000_000_007).is_some());
        assert!(buf.bytes.get(..buf.len) == Some(&b"1000000007"[..]));
    }
}
