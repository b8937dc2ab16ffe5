// SPDX-License-Identifier: GPL-2.0

//! Dynamic IDs from the `ids=` parameter, in vfio-pci's format.
//!
//! The parameter is a comma-separated list of
//! `vendor:device[:subvendor[:subdevice[:class[:class_mask]]]]`, each field hexadecimal, parsed
//! field by field the way `sscanf("%x:%x:...")` does: an entry with fewer than two fields is
//! reported and skipped, missing fields match anything. Each entry becomes a dynamic ID of the
//! driver, so matching functions that have no driver bind at once.

use crate::{kernel_ext::pci::driver::DynamicIds, params};
use kernel::prelude::*;

/// `PCI_ANY_ID`: the value that matches every vendor, device or subsystem ID.
const PCI_ANY_ID: u32 = !0;

/// One entry of the `ids=` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DynamicId {
    vendor: u32,
    device: u32,
    subvendor: u32,
    subdevice: u32,
    class: u32,
    class_mask: u32,
}

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

/// Scans one `%x` conversion: optional leading blanks, an optional `0x` prefix, then at least
/// one hexadecimal digit. Returns the value (wrapping like the C conversion) and the rest.
fn scan_hex(input: &[u8]) -> Option<(u32, &[u8])> {
    let mut s = input;
    while let Some((b' ' | b'\t' | b'\n', tail)) = s.split_first() {
        s = tail;
    }
    if let [b'0', b'x' | b'X', d, ..] = s {
        if d.is_ascii_hexdigit() {
            s = &s[2..];
        }
    }
    let digits = s.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return None;
    }
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
        let ret = match driver.add(
            id.vendor,
            id.device,
            id.subvendor,
            id.subdevice,
            id.class,
            id.class_mask,
        ) {
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
