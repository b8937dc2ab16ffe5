// SPDX-License-Identifier: GPL-2.0

//! Dynamic IDs from the `ids=` parameter, in vfio-pci's format.
//!
//! The parameter is a comma-separated list of
//! `vendor:device[:subvendor[:subdevice[:class[:class_mask]]]]`, each field hexadecimal, parsed
//! field by field the way `sscanf("%x:%x:...")` does: an entry with fewer than two fields is
//! reported and skipped, missing fields match anything. Each entry becomes a dynamic ID of the
//! driver, so matching functions that have no driver bind at once.

use crate::{
    kernel_ext::pci::driver::{
        DynamicId,
        DynamicIds, //
    },
    params, //
};
use kernel::prelude::*;

/// `PCI_ANY_ID`: the value that matches every vendor, device or subsystem ID.
const PCI_ANY_ID: u32 = !0;

impl DynamicId {
    /// Parses one entry; `None` when it has fewer than the two mandatory fields.
    pub(crate) fn parse(entry: &[u8]) -> Option<Self> {
        let mut fields = [PCI_ANY_ID, PCI_ANY_ID, PCI_ANY_ID, PCI_ANY_ID, 0, 0];
        let mut parsed = 0;
        let mut rest = entry;
        while parsed < fields.len() {
            let Some((value, after)) = scan_hex(rest) else {
                break;
            };
            fields[parsed] = value;
            parsed += 1;
            match after.split_first() {
                Some((b':', tail)) => rest = tail,
                _ => break,
            }
        }
        if parsed < 2 {
            return None;
        }
        let [vendor, device, subvendor, subdevice, class, class_mask] = fields;
        Some(Self {
            vendor,
            device,
            subvendor,
            subdevice,
            class,
            class_mask,
        })
    }
}

impl kernel::fmt::Display for DynamicId {
    /// The form vfio-pci logs dynamic IDs in.
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        write!(
            f,
            "[{:04x}:{:04x}[{:04x}:{:04x}]] class {:#08x}/{:08x}",
            self.vendor, self.device, self.subvendor, self.subdevice, self.class, self.class_mask
        )
    }
}

/// Scans one `%x` conversion as the kernel's `sscanf()` does: optional leading blanks (its
/// `isspace()`: space, `\t`, `\n`, `\v`, `\f`, `\r`, 0xa0), a hexadecimal digit first, then
/// an optional `0x` prefix and the digits (none after a bare `0x`: the value is 0). Returns the
/// value (wrapping like the C conversion) and the rest.
fn scan_hex(input: &[u8]) -> Option<(u32, &[u8])> {
    let mut s = input;
    while let Some((b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0, tail)) = s.split_first() {
        s = tail;
    }
    if !s.first().is_some_and(u8::is_ascii_hexdigit) {
        return None;
    }
    if let [b'0', b'x' | b'X', rest @ ..] = s {
        s = rest;
    }
    let digits = s.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let value = s[..digits].iter().fold(0u32, |acc, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => b - b'A' + 10,
        };
        acc.wrapping_shl(4) | u32::from(digit)
    });
    Some((value, &s[digits..]))
}

/// Adds every entry of `ids=` to the driver's dynamic IDs, reporting what it did as vfio-pci
/// does. Bad entries are reported and skipped; they never fail the module load.
pub(crate) fn add_from_param(driver: &DynamicIds<'_>) {
    for entry in params::ids().split(|&b| b == b',') {
        if entry.is_empty() {
            continue;
        }
        let Some(id) = DynamicId::parse(entry) else {
            pr_warn!(
                "invalid id string \"{}\"\n",
                kernel::str::BStr::from_bytes(entry)
            );
            continue;
        };
        let ret = match driver.add(&id) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        };
        if ret != 0 {
            pr_warn!("failed to add dynamic id {} ({})\n", id, ret);
        } else {
            pr_info!("add {}\n", id);
        }
    }
}

#[kunit_tests(vfio_pci_rs_ids)]
mod tests {
    use super::*;

    /// The entry vfio-pci would add for these six fields.
    fn id(
        vendor: u32,
        device: u32,
        subvendor: u32,
        subdevice: u32,
        class: u32,
        class_mask: u32,
    ) -> DynamicId {
        DynamicId {
            vendor,
            device,
            subvendor,
            subdevice,
            class,
            class_mask,
        }
    }

    /// Only vendor and device: the subsystem IDs match anything, the class nothing is masked.
    #[test]
    fn two_fields_default_the_rest() {
        assert_eq!(
            DynamicId::parse(b"8086:10d3"),
            Some(id(0x8086, 0x10d3, PCI_ANY_ID, PCI_ANY_ID, 0, 0))
        );
    }

    /// Every optional field, one more at a time.
    #[test]
    fn optional_fields_in_order() {
        assert_eq!(
            DynamicId::parse(b"8086:10d3:1af4"),
            Some(id(0x8086, 0x10d3, 0x1af4, PCI_ANY_ID, 0, 0))
        );
        assert_eq!(
            DynamicId::parse(b"8086:10d3:1af4:1100"),
            Some(id(0x8086, 0x10d3, 0x1af4, 0x1100, 0, 0))
        );
        assert_eq!(
            DynamicId::parse(b"8086:10d3:1af4:1100:020000"),
            Some(id(0x8086, 0x10d3, 0x1af4, 0x1100, 0x020000, 0))
        );
        assert_eq!(
            DynamicId::parse(b"8086:10d3:1af4:1100:020000:ffff00"),
            Some(id(0x8086, 0x10d3, 0x1af4, 0x1100, 0x020000, 0xffff00))
        );
    }

    /// `ffffffff` is how a user writes "any" for one field in the middle.
    #[test]
    fn explicit_any_and_class_only() {
        assert_eq!(
            DynamicId::parse(b"ffffffff:ffffffff:ffffffff:ffffffff:0c0330:ffffff"),
            Some(id(
                PCI_ANY_ID, PCI_ANY_ID, PCI_ANY_ID, PCI_ANY_ID, 0x0c0330, 0xffffff
            ))
        );
    }

    /// Hexadecimal in either case, with or without `0x`, blanks before a number.
    #[test]
    fn hex_case_prefix_and_blanks() {
        let want = Some(id(0xabcd, 0xef01, PCI_ANY_ID, PCI_ANY_ID, 0, 0));
        assert_eq!(DynamicId::parse(b"ABCD:EF01"), want);
        assert_eq!(DynamicId::parse(b"abcd:Ef01"), want);
        assert_eq!(DynamicId::parse(b"0xabcd:0XEF01"), want);
        assert_eq!(DynamicId::parse(b" abcd:\tef01"), want);
        assert_eq!(DynamicId::parse(b"\nabcd: 0xef01"), want);
        // Leading zeroes are digits like any other.
        assert_eq!(
            DynamicId::parse(b"00008086:000010d3"),
            Some(id(0x8086, 0x10d3, PCI_ANY_ID, PCI_ANY_ID, 0, 0))
        );
    }

    /// Fewer than two fields: vfio-pci reports the entry and skips it.
    #[test]
    fn refuses_fewer_than_two_fields() {
        for entry in [
            &b""[..],
            b"8086",
            b"8086:",
            b":10d3",
            b"8086-10d3",
            b"8086 10d3",
            b"g086:10d3",
            b"8086:g0d3",
            b"0xg:10d3",
            b"-1:10d3",
            b"+8086:10d3",
            b" ",
            b":",
        ] {
            assert_eq!(DynamicId::parse(entry), None);
        }
    }

    /// `sscanf` stops at the first character that does not fit: what came before counts,
    /// the rest of the entry is ignored.
    #[test]
    fn stops_at_the_first_mismatch() {
        // Trailing garbage after the device.
        assert_eq!(
            DynamicId::parse(b"8086:10d3xyz"),
            Some(id(0x8086, 0x10d3, PCI_ANY_ID, PCI_ANY_ID, 0, 0))
        );
        // A bad subvendor: only the first two fields count.
        assert_eq!(
            DynamicId::parse(b"8086:10d3:zz:1100"),
            Some(id(0x8086, 0x10d3, PCI_ANY_ID, PCI_ANY_ID, 0, 0))
        );
        // An empty field ends the scan the same way.
        assert_eq!(
            DynamicId::parse(b"8086:10d3::1100"),
            Some(id(0x8086, 0x10d3, PCI_ANY_ID, PCI_ANY_ID, 0, 0))
        );
        // A blank before a separator is not skipped (only before a number).
        assert_eq!(DynamicId::parse(b"8086 :10d3"), None);
        // A seventh field is never read.
        assert_eq!(
            DynamicId::parse(b"1:2:3:4:5:6:7"),
            Some(id(1, 2, 3, 4, 5, 6))
        );
        // `0x` alone is the number 0.
        assert_eq!(
            DynamicId::parse(b"8086:0x"),
            Some(id(0x8086, 0, PCI_ANY_ID, PCI_ANY_ID, 0, 0))
        );
    }

    /// Values wider than 32 bits keep their low 32 bits, as `%x` into an `unsigned int` does.
    #[test]
    fn wide_values_wrap() {
        assert_eq!(
            DynamicId::parse(b"123456789:fffffffff"),
            Some(id(0x23456789, 0xffffffff, PCI_ANY_ID, PCI_ANY_ID, 0, 0))
        );
        assert_eq!(
            DynamicId::parse(b"10000000000000008086:10d3"),
            Some(id(0x8086, 0x10d3, PCI_ANY_ID, PCI_ANY_ID, 0, 0))
        );
    }

    /// `%x` skips every blank the kernel's `isspace()` knows before a number: space, `\t`,
    /// `\n`, `\v`, `\f`, `\r` and Latin-1's non-breaking space (0xa0).
    #[test]
    fn blanks_are_the_kernels_isspace() {
        let want = Some(id(0x8086, 0x10d3, PCI_ANY_ID, PCI_ANY_ID, 0, 0));
        for blank in [b' ', b'\t', b'\n', 0x0b, 0x0c, b'\r', 0xa0] {
            assert_eq!(
                DynamicId::parse(&[
                    blank, b'8', b'0', b'8', b'6', b':', blank, b'1', b'0', b'd', b'3'
                ]),
                want
            );
        }
        assert_eq!(DynamicId::parse(b"\x018086:10d3"), None);
    }

    /// `0x` followed by no hexadecimal digit: the kernel's `%x` still takes the prefix (its first
    /// character is a digit) and converts nothing, so the number is 0 and the scan goes on after
    /// the `x`.
    #[test]
    fn bare_0x_prefix_is_zero() {
        assert_eq!(
            DynamicId::parse(b"0x:10d3"),
            Some(id(0, 0x10d3, PCI_ANY_ID, PCI_ANY_ID, 0, 0))
        );
        assert_eq!(
            DynamicId::parse(b"8086:10d3:0x:1100"),
            Some(id(0x8086, 0x10d3, 0, 0x1100, 0, 0))
        );
        assert_eq!(scan_hex(b"0x"), Some((0, &b""[..])));
        assert_eq!(scan_hex(b"0xg"), Some((0, &b"g"[..])));
    }

    /// The scanner on its own: value and rest.
    #[test]
    fn scan_hex_returns_the_rest() {
        assert_eq!(scan_hex(b"10d3:x"), Some((0x10d3, &b":x"[..])));
        assert_eq!(scan_hex(b"  0x1f,"), Some((0x1f, &b","[..])));
        assert_eq!(scan_hex(b"0"), Some((0, &b""[..])));
        assert_eq!(scan_hex(b""), None);
        assert_eq!(scan_hex(b"   "), None);
        assert_eq!(scan_hex(b"x1"), None);
    }
}
