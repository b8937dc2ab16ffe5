// SPDX-License-Identifier: GPL-2.0

//! The VF token: the shared secret (a UUID) that proves a user of an SR-IOV physical function
//! and the users of its virtual functions cooperate, as vfio-pci defines it.
//!
//! A PF and its VFs always trust each other to a degree (the PF can reset its VFs, and its
//! driver often sees what they do), so when both sides are handed to user space, vfio-pci asks
//! the two users to prove they know one secret: the PF's token.
//!
//! - Every PF bound to this driver gets a random token at bind. Its user sets it with
//!   `VFIO_DEVICE_FEATURE_PCI_VF_TOKEN` (SET only: reading it back could leak a previous
//!   user's token), or by opening the PF with a token while none of its VFs is open: appended
//!   to the device name (`"0000:06:00.0 vf_token=<uuid>"`) for `VFIO_GROUP_GET_DEVICE_FD`,
//!   in the token of `VFIO_DEVICE_BIND_IOMMUFD` for the cdev.
//! - A VF created through this driver's `sriov_configure` (see [`crate::sriov`]) and bound to
//!   this driver shares its PF's [`VfToken`]. Opening it needs the PF's current token
//!   (`EACCES` without it or with another); while it is open it counts as a user of the token.
//! - While a PF has users, opening the PF needs its current token too (`EACCES`), so a new PF
//!   user cannot silently take over VFs somebody else uses. Setting the token through the
//!   feature is still allowed, as in vfio-pci.
//! - Offering a token where none applies is refused (`EINVAL`): to a function that is neither
//!   a PF nor a VF, and to a VF whose PF is not this driver's with SR-IOV enabled by it (bound
//!   to another driver — the C vfio-pci included, which keeps its own list — or unbound).
//!   Such a VF opens without a token, as vfio-pci treats a VF of a foreign PF.
//!
//! Which of these a function is, is fixed at bind ([`TokenRole`]); the count of open VFs is
//! kept by [`VfUser`] values, one per open VF, so it cannot drift from the opens and closes.

use crate::{
    device::VfioPciDevice,
    kernel_ext::{
        pci::{OwnedDevice, PciDeviceExt},
        print::dev_info_ratelimited,
        uuid::{Uuid, UUID_STRING_LEN},
        vfio::VfioDevice,
    },
    sriov,
};
use kernel::{new_mutex, prelude::*, str::CStr, sync::Arc, sync::Mutex};

/// The option that carries a token in a device name.
const VF_TOKEN_ARG: &[u8] = b"vf_token=";

/// A PF's token, shared with the devices of its VFs bound to this driver.
#[pin_data]
pub(crate) struct VfToken {
    #[pin]
    state: Mutex<TokenState>,
}

struct TokenState {
    uuid: [u8; 16],
    /// How many VFs sharing this token are open: the number of live [`VfUser`]s.
    users: u32,
}

impl VfToken {
    /// A fresh random token.
    fn new_random() -> Result<Arc<Self>> {
        let Uuid(uuid) = Uuid::random();
        Arc::pin_init(
            try_pin_init!(Self {
                state <- new_mutex!(TokenState {
                    uuid,
                    users: 0,
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// Replaces the token (`VFIO_DEVICE_FEATURE_PCI_VF_TOKEN`), whether or not VFs use it.
    pub(crate) fn set(&self, uuid: [u8; 16]) {
        self.state.lock().uuid = uuid;
    }
}

/// How a bound function takes part in the VF token protocol; fixed at bind.
pub(crate) enum TokenRole {
    /// An SR-IOV PF: owns its token.
    Pf(Arc<VfToken>),
    /// A VF whose PF had SR-IOV enabled by this driver when the VF was bound: opening it
    /// needs that PF's token.
    Vf(Arc<VfToken>),
    /// A VF whose PF is not this driver's: no token applies.
    ForeignVf,
    /// Neither a PF nor a VF: no token applies.
    Unrelated,
}

impl TokenRole {
    /// The role of `pdev`, being bound now.
    pub(crate) fn of(pdev: &OwnedDevice) -> Result<Self> {
        if pdev.is_virtfn() {
            return Ok(match sriov::token_of_pf(pdev.physfn()) {
                Some(token) => Self::Vf(token),
                None => Self::ForeignVf,
            });
        }
        if pdev.is_physfn() {
            return Ok(Self::Pf(VfToken::new_random()?));
        }
        Ok(Self::Unrelated)
    }

    /// The PF's own token; `None` for any other function.
    pub(crate) fn pf_token(&self) -> Option<&Arc<VfToken>> {
        match self {
            Self::Pf(token) => Some(token),
            _ => None,
        }
    }

    /// A use of the PF's token by a VF being opened, held until it is closed; `None` for any
    /// function that is not a VF sharing a token.
    pub(crate) fn new_user(&self) -> Option<VfUser> {
        match self {
            Self::Vf(token) => {
                token.state.lock().users += 1;
                Some(VfUser(token.clone()))
            }
            _ => None,
        }
    }
}

/// One open VF counted among its PF token's users; uncounted when dropped (at close).
pub(crate) struct VfUser(Arc<VfToken>);

impl Drop for VfUser {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.users = state.users.saturating_sub(1);
    }
}

/// Parses the text form of a UUID at the start of `text` (`EINVAL` if malformed or short).
fn parse_uuid(text: &[u8]) -> Result<[u8; 16]> {
    let text = text
        .get(..UUID_STRING_LEN)
        .and_then(|text| <&[u8; UUID_STRING_LEN]>::try_from(text).ok())
        .ok_or(EINVAL)?;
    Ok(Uuid::parse(text)?.0)
}

/// Whether `name` (from `VFIO_GROUP_GET_DEVICE_FD`) names `dev`: its PCI name, optionally
/// followed by ` vf_token=<uuid>`, which is then checked against the token rules.
pub(crate) fn match_name(dev: &VfioDevice<VfioPciDevice>, name: &CStr) -> Result<bool> {
    let own = dev.pdev.as_device().name().to_bytes();
    let Some(token) = parse_name(own, name.to_bytes())? else {
        return Ok(false);
    };
    match_token(dev, token.as_ref())?;
    Ok(true)
}

/// Parses a device name `given`: `None` when it does not name the function called `own`,
/// else the token it offers, if any (` vf_token=<uuid>` after the name, blanks around).
/// `EINVAL` for a malformed token, an unknown option or a repeated one.
fn parse_name(own: &[u8], given: &[u8]) -> Result<Option<Option<[u8; 16]>>> {
    let Some(rest) = given.strip_prefix(own) else {
        return Ok(None);
    };
    let mut token = None;
    if !rest.is_empty() {
        if rest.first() != Some(&b' ') {
            return Ok(None);
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
    Ok(Some(token))
}

/// Why a token check refused to open a function.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// The function needs a token and none was offered (`EACCES`).
    Required,
    /// The token offered is not the PF's (`EACCES`).
    Incorrect,
    /// A token was offered for a VF whose PF is not this driver's (`EINVAL`).
    PfNotOurs,
    /// A token was offered for a function that is neither a PF nor a VF (`EINVAL`).
    NotPfOrVf,
}

impl Refusal {
    /// Says why in the kernel log, rate-limited, as vfio-pci does, and gives the errno it
    /// returns.
    fn report(self, pdev: &OwnedDevice) -> Error {
        let (why, errno) = match self {
            Self::Required => (c"VF token required to access device", EACCES),
            Self::Incorrect => (c"Incorrect VF token provided for device", EACCES),
            Self::PfNotOurs => (
                c"VF token incorrectly provided, PF not bound to vfio-pci-rs",
                EINVAL,
            ),
            Self::NotPfOrVf => (c"VF token incorrectly provided, not a PF or VF", EINVAL),
        };
        dev_info_ratelimited(pdev, why);
        errno
    }
}

/// Checks a token offered (or not) when opening `dev`, as vfio-pci does (see the module
/// doc): a VF of ours needs its PF's token; a PF with VFs in use needs its current token,
/// one without takes an offered token as its new one; any other function refuses a token.
pub(crate) fn match_token(dev: &VfioDevice<VfioPciDevice>, offered: Option<&[u8; 16]>) -> Result {
    check(&dev.token_role, offered).map_err(|refusal| refusal.report(&dev.pdev))
}

fn check(role: &TokenRole, offered: Option<&[u8; 16]>) -> Result<(), Refusal> {
    match role {
        TokenRole::Vf(token) => {
            let uuid = offered.ok_or(Refusal::Required)?;
            if *uuid != token.state.lock().uuid {
                return Err(Refusal::Incorrect);
            }
            Ok(())
        }
        TokenRole::Pf(token) => {
            let mut state = token.state.lock();
            match offered {
                _ if state.users == 0 => {
                    if let Some(uuid) = offered {
                        state.uuid = *uuid;
                    }
                    Ok(())
                }
                None => Err(Refusal::Required),
                Some(uuid) if *uuid != state.uuid => Err(Refusal::Incorrect),
                Some(_) => Ok(()),
            }
        }
        TokenRole::ForeignVf if offered.is_some() => Err(Refusal::PfNotOurs),
        TokenRole::Unrelated if offered.is_some() => Err(Refusal::NotPfOrVf),
        TokenRole::ForeignVf | TokenRole::Unrelated => Ok(()),
    }
}
