// SPDX-License-Identifier: GPL-2.0

//! The VF token: the shared secret (a UUID) that proves a user of an SR-IOV physical function
//! and the users of its virtual functions cooperate, as vfio-pci defines it.
//!
//! Every PF bound to this driver gets a random token at bind. User space sets it with
//! `VFIO_DEVICE_FEATURE_PCI_VF_TOKEN` (SET only: reading it back could leak a previous
//! user's token) or by opening the PF with the token appended to the device name
//! (`"0000:06:00.0 vf_token=<uuid>"` for `VFIO_GROUP_GET_DEVICE_FD`, the token flag of
//! `VFIO_DEVICE_BIND_IOMMUFD`) while no VF is in use. This driver does not create VFs
//! itself (no `sriov_configure`), so no VF of one of its PFs is ever in use through it, and
//! a VF is never owned by a PF of this driver: a token offered for a VF is refused.

use crate::{device::VfioPciDevice, pci_function::PciFunction, vfio_device::VfioDevice};
use kernel::{bindings, prelude::*, str::CStr};

/// Length of a UUID's text form (`8-4-4-4-12` hex digits).
const UUID_STRING_LEN: usize = 36;

/// The option that carries a token in a device name.
const VF_TOKEN_ARG: &[u8] = b"vf_token=";

/// A PF's token.
pub(crate) struct VfToken {
    uuid: [u8; 16],
    /// How many VFs of this PF are open through a VFIO driver sharing the token (none can
    /// be, today; kept so the rules read as vfio-pci's).
    users: u32,
}

impl VfToken {
    /// A fresh random token for a PF, `None` for any other function.
    pub(crate) fn for_function(pdev: &PciFunction) -> Option<Self> {
        if !pdev.is_physfn() {
            return None;
        }
        let mut uuid = bindings::uuid_t::default();
        // SAFETY: `uuid` is a valid output location.
        unsafe { bindings::uuid_gen(&mut uuid) };
        Some(Self {
            uuid: uuid.b,
            users: 0,
        })
    }

    /// Replaces the token (`VFIO_DEVICE_FEATURE_PCI_VF_TOKEN`).
    pub(crate) fn set(&mut self, uuid: [u8; 16]) {
        self.uuid = uuid;
    }
}

/// Parses the text form of a UUID (`EINVAL` if malformed).
fn parse_uuid(text: &[u8]) -> Result<[u8; 16]> {
    let mut buf = [0u8; UUID_STRING_LEN + 1];
    let text = text.get(..UUID_STRING_LEN).ok_or(EINVAL)?;
    buf[..UUID_STRING_LEN].copy_from_slice(text);
    let mut uuid = bindings::uuid_t::default();
    // SAFETY: `buf` is NUL-terminated after the 36 characters `uuid_parse` reads; `uuid` is
    // a valid output location.
    let ret = unsafe { bindings::uuid_parse(buf.as_ptr().cast(), &mut uuid) };
    if ret != 0 {
        return Err(Error::from_errno(ret));
    }
    Ok(uuid.b)
}

/// Whether `name` (from `VFIO_GROUP_GET_DEVICE_FD`) names `dev`: its PCI name, optionally
/// followed by ` vf_token=<uuid>`, which is then checked against the token rules.
pub(crate) fn match_name(dev: &VfioDevice<VfioPciDevice>, name: &CStr) -> Result<bool> {
    let own = dev.pdev.as_device().name().to_bytes();
    let given = name.to_bytes();
    let Some(rest) = given.strip_prefix(own) else {
        return Ok(false);
    };
    let mut token = None;
    if !rest.is_empty() {
        if rest.first() != Some(&b' ') {
            return Ok(false);
        }
        let mut rest = rest;
        loop {
            while let Some(tail) = rest.strip_prefix(b" ") {
                rest = tail;
            }
            if rest.is_empty() {
                break;
            }
            match rest.strip_prefix(VF_TOKEN_ARG) {
                Some(value) if token.is_none() => {
                    if value.len() < UUID_STRING_LEN {
                        return Err(EINVAL);
                    }
                    token = Some(parse_uuid(value)?);
                    rest = value.get(UUID_STRING_LEN..).unwrap_or_default();
                }
                // An unknown or repeated option.
                _ => return Err(EINVAL),
            }
        }
    }
    match_token(dev, token.as_ref())?;
    Ok(true)
}

/// Checks a token offered (or not) when opening `dev`, as vfio-pci does: a PF with VFs in
/// use needs its current token; a PF without takes an offered token as its new one; a
/// function that is neither a PF of this driver nor a VF of one refuses any token.
pub(crate) fn match_token(dev: &VfioDevice<VfioPciDevice>, offered: Option<&[u8; 16]>) -> Result {
    let pdev: &PciFunction = &dev.pdev;
    if pdev.is_virtfn() {
        // The PF of a VF is never this driver's (it creates no VFs).
        if offered.is_some() {
            dev_info!(
                pdev.as_device(),
                "VF token incorrectly provided, PF not bound to vfio-pci\n"
            );
            return Err(EINVAL);
        }
        return Ok(());
    }
    let mut guard = dev.vf_token.lock();
    let Some(token) = Option::as_mut(&mut *guard) else {
        if offered.is_some() {
            dev_info!(
                pdev.as_device(),
                "VF token incorrectly provided, not a PF or VF\n"
            );
            return Err(EINVAL);
        }
        return Ok(());
    };
    match offered {
        _ if token.users == 0 => {
            if let Some(uuid) = offered {
                token.set(*uuid);
            }
            Ok(())
        }
        None => {
            dev_info!(pdev.as_device(), "VF token required to access device\n");
            Err(EACCES)
        }
        Some(uuid) if *uuid != token.uuid => {
            dev_info!(pdev.as_device(), "Incorrect VF token provided for device\n");
            Err(EACCES)
        }
        Some(_) => Ok(()),
    }
}
