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

use crate::kernel_ext::{
    pci::{
        OwnedDevice,
        PciDeviceExt, //
    },
    print::dev_info_ratelimited,
    uuid::{
        Uuid,
        UUID_STRING_LEN, //
    }, //
};
use kernel::{
    new_mutex,
    prelude::*,
    str::CStr,
    sync::Arc,
    sync::Mutex, //
};

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
    /// The role of `pdev`, being bound now; `token_of_pf` gives the token a PF shares with
    /// its VFs if this driver enabled its SR-IOV (see [`crate::sriov::token_of_pf`]).
    pub(crate) fn of(
        pdev: &OwnedDevice,
        token_of_pf: impl FnOnce(&kernel::pci::Device) -> Option<Arc<VfToken>>,
    ) -> Result<Self> {
        if pdev.is_virtfn() {
            return Ok(match token_of_pf(pdev.physfn()) {
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

/// Whether `name` (from `VFIO_GROUP_GET_DEVICE_FD`) names `pdev`: its PCI name, optionally
/// followed by ` vf_token=<uuid>`, which is then checked against the token rules for `role`.
pub(crate) fn match_name(pdev: &OwnedDevice, role: &TokenRole, name: &CStr) -> Result<bool> {
    let own = pdev.as_device().name().to_bytes();
    let Some(token) = parse_name(own, name.to_bytes())? else {
        return Ok(false);
    };
    match_token(pdev, role, token.as_ref())?;
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

/// Checks a token offered (or not) when opening `pdev`, whose part in the protocol is `role`,
/// as vfio-pci does (see the module doc): a VF of ours needs its PF's token; a PF with VFs in
/// use needs its current token, one without takes an offered token as its new one; any other
/// function refuses a token.
pub(crate) fn match_token(
    pdev: &OwnedDevice,
    role: &TokenRole,
    offered: Option<&[u8; 16]>,
) -> Result {
    check(role, offered).map_err(|refusal| refusal.report(pdev))
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

#[kunit_tests(vfio_pci_rs_vf_token)]
mod tests {
    use super::*;

    const TEXT: &[u8; UUID_STRING_LEN] = b"01234567-89ab-cdef-0123-456789abcdef";
    const BYTES: [u8; 16] = [
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
        0xef,
    ];
    const OTHER: [u8; 16] = [0x5a; 16];
    const NAME: &[u8] = b"0000:06:00.0";

    /// `NAME` followed by `options`.
    fn name_with(options: &[u8]) -> Result<KVec<u8>> {
        let mut name = KVec::new();
        name.extend_from_slice(NAME, GFP_KERNEL)?;
        name.extend_from_slice(options, GFP_KERNEL)?;
        Ok(name)
    }

    #[test]
    fn uuid_text_forms() {
        assert_eq!(parse_uuid(TEXT), Ok(BYTES));
        assert_eq!(
            parse_uuid(b"01234567-89AB-CDEF-0123-456789ABCDEF"),
            Ok(BYTES)
        );
        // Only the first 36 characters are the UUID.
        assert_eq!(
            parse_uuid(b"01234567-89ab-cdef-0123-456789abcdef trailing"),
            Ok(BYTES)
        );
        assert_eq!(
            parse_uuid(b"01234567-89ab-cdef-0123-456789abcde"),
            Err(EINVAL)
        );
        assert_eq!(parse_uuid(b""), Err(EINVAL));
        assert_eq!(
            parse_uuid(b"01234567-89ab-cdef-0123-456789abcdeg"),
            Err(EINVAL)
        );
        assert_eq!(
            parse_uuid(b"0123456789ab-cdef-0123-456789abcdef-"),
            Err(EINVAL)
        );
        assert_eq!(
            parse_uuid(b"{1234567-89ab-cdef-0123-456789abcdef"),
            Err(EINVAL)
        );
    }

    #[test]
    fn device_name_options() -> Result {
        assert_eq!(parse_name(NAME, NAME), Ok(Some(None)));
        assert_eq!(parse_name(NAME, &name_with(b"  ")?), Ok(Some(None)));
        assert_eq!(parse_name(NAME, b"0000:06:00.1"), Ok(None));
        assert_eq!(parse_name(NAME, b"0000:06:00"), Ok(None));
        assert_eq!(parse_name(NAME, &name_with(b"0")?), Ok(None));
        assert_eq!(parse_name(NAME, &name_with(b"x vf_token=")?), Ok(None));

        let mut with_token = name_with(b" vf_token=")?;
        with_token.extend_from_slice(TEXT, GFP_KERNEL)?;
        assert_eq!(parse_name(NAME, &with_token), Ok(Some(Some(BYTES))));
        with_token.extend_from_slice(b"   ", GFP_KERNEL)?;
        assert_eq!(parse_name(NAME, &with_token), Ok(Some(Some(BYTES))));

        let mut spaced = name_with(b"   vf_token=")?;
        spaced.extend_from_slice(TEXT, GFP_KERNEL)?;
        assert_eq!(parse_name(NAME, &spaced), Ok(Some(Some(BYTES))));

        // A repeated option.
        let mut twice = name_with(b" vf_token=")?;
        twice.extend_from_slice(TEXT, GFP_KERNEL)?;
        twice.extend_from_slice(b" vf_token=", GFP_KERNEL)?;
        twice.extend_from_slice(TEXT, GFP_KERNEL)?;
        assert_eq!(parse_name(NAME, &twice), Err(EINVAL));

        // Junk glued to the token.
        let mut glued = name_with(b" vf_token=")?;
        glued.extend_from_slice(TEXT, GFP_KERNEL)?;
        glued.extend_from_slice(b"x", GFP_KERNEL)?;
        assert_eq!(parse_name(NAME, &glued), Err(EINVAL));

        assert_eq!(parse_name(NAME, &name_with(b" foo=bar")?), Err(EINVAL));
        assert_eq!(parse_name(NAME, &name_with(b" vf_token")?), Err(EINVAL));
        assert_eq!(
            parse_name(NAME, &name_with(b" vf_token=01234567")?),
            Err(EINVAL)
        );
        assert_eq!(
            parse_name(
                NAME,
                &name_with(b" vf_token=01234567-89ab-cdef-0123-456789abcdeg")?
            ),
            Err(EINVAL)
        );
        Ok(())
    }

    #[test]
    fn token_check_matrix() -> Result {
        assert_eq!(check(&TokenRole::Unrelated, None), Ok(()));
        assert_eq!(
            check(&TokenRole::Unrelated, Some(&BYTES)),
            Err(Refusal::NotPfOrVf)
        );
        assert_eq!(check(&TokenRole::ForeignVf, None), Ok(()));
        assert_eq!(
            check(&TokenRole::ForeignVf, Some(&BYTES)),
            Err(Refusal::PfNotOurs)
        );

        let token = VfToken::new_random()?;
        token.set(BYTES);
        let pf = TokenRole::Pf(token.clone());
        let vf = TokenRole::Vf(token.clone());
        assert_eq!(check(&vf, None), Err(Refusal::Required));
        assert_eq!(check(&vf, Some(&OTHER)), Err(Refusal::Incorrect));
        assert_eq!(check(&vf, Some(&BYTES)), Ok(()));

        // A PF without open VFs takes any token, and an offered one becomes its token.
        assert_eq!(check(&pf, None), Ok(()));
        assert_eq!(token.state.lock().uuid, BYTES);
        assert_eq!(check(&pf, Some(&OTHER)), Ok(()));
        assert_eq!(token.state.lock().uuid, OTHER);
        assert_eq!(check(&vf, Some(&BYTES)), Err(Refusal::Incorrect));
        assert_eq!(check(&vf, Some(&OTHER)), Ok(()));

        // With a VF open, the PF needs its current token, which stays as it is.
        let user = vf.new_user();
        assert!(user.is_some());
        assert_eq!(token.state.lock().users, 1);
        assert_eq!(check(&pf, None), Err(Refusal::Required));
        assert_eq!(check(&pf, Some(&BYTES)), Err(Refusal::Incorrect));
        assert_eq!(token.state.lock().uuid, OTHER);
        assert_eq!(check(&pf, Some(&OTHER)), Ok(()));

        // Closing the VF frees the PF again.
        drop(user);
        assert_eq!(token.state.lock().users, 0);
        assert_eq!(check(&pf, None), Ok(()));
        assert!(pf.new_user().is_none());
        Ok(())
    }
}
