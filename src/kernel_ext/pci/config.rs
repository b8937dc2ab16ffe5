// SPDX-License-Identifier: GPL-2.0

//! Config space access to a function this driver owns, for its virtual config space.
//!
//! Two families of accessors, as vfio-pci uses them:
//!
//! - [`OwnedDevice::read_config`], the plain accessors (`pci_read_config_*`), whose positive
//!   `PCIBIOS_*` status codes are turned into errnos as `pcibios_err_to_errno()` does; the
//!   driver uses them to build its copy of config space.
//! - [`OwnedDevice::user_read_config`] and [`OwnedDevice::user_write_config`], the user
//!   accessors (`pci_user_{read,write}_config_*`), which wait while the PCI core blocks config
//!   access (during a reset) and return errnos themselves; accesses user space makes through
//!   the config region pass through them.
//!
//! Besides those: the power state (`pci_set_power_state()` with a typed [`PowerState`]), VPD
//! transfers, the PCIe payload and read request sizes, and the capability offsets the PCI core
//! caches at enumeration. [`regs`] holds the register constants the config code names.
//!
//! The kernel crate's `pci::ConfigSpace` (an `io::Io` over config space) is not used: it needs
//! a `pci::Device<Bound>`, which the file operations that reach config space do not have (they
//! hold an [`OwnedDevice`], a counted reference); its accessors are infallible, dropping the
//! status the config region must return as an errno; and it has no user-access variants.

use super::{
    raw_of,
    OwnedDevice,
    PciDeviceExt, //
};
use crate::kernel_ext::bindings as vfio;
use crate::kernel_ext::error::to_result;
use kernel::{
    bindings,
    ffi::c_int,
    prelude::*, //
};

pub(crate) use super::regs;

/// The power states user space can ask for through the PM capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PowerState {
    D0,
    D1,
    D2,
    D3Hot,
}

impl PowerState {
    /// The state the two low bits of PMCSR name.
    pub(crate) fn from_pmcsr(pmcsr: u32) -> Self {
        match pmcsr & bindings::PCI_PM_CTRL_STATE_MASK {
            0 => Self::D0,
            1 => Self::D1,
            2 => Self::D2,
            _ => Self::D3Hot,
        }
    }

    fn raw(self) -> bindings::pci_power_t {
        match self {
            Self::D0 => vfio::VFIO_PCI_RS_PCI_D0,
            Self::D1 => vfio::VFIO_PCI_RS_CONFIG_PCI_D1,
            Self::D2 => vfio::VFIO_PCI_RS_CONFIG_PCI_D2,
            Self::D3Hot => vfio::VFIO_PCI_RS_PCI_D3HOT,
        }
    }
}

/// `pcibios_err_to_errno()`: the PCI config accessors return positive PCIBIOS codes.
fn pcibios_result(ret: c_int) -> Result {
    const FUNC_NOT_SUPPORTED: c_int = bindings::PCIBIOS_FUNC_NOT_SUPPORTED as c_int;
    const BAD_VENDOR_ID: c_int = bindings::PCIBIOS_BAD_VENDOR_ID as c_int;
    const DEVICE_NOT_FOUND: c_int = bindings::PCIBIOS_DEVICE_NOT_FOUND as c_int;
    const BAD_REGISTER_NUMBER: c_int = bindings::PCIBIOS_BAD_REGISTER_NUMBER as c_int;
    const SET_FAILED: c_int = bindings::PCIBIOS_SET_FAILED as c_int;
    const BUFFER_TOO_SMALL: c_int = bindings::PCIBIOS_BUFFER_TOO_SMALL as c_int;
    match ret {
        ..=0 => to_result(ret),
        FUNC_NOT_SUPPORTED => Err(ENOENT),
        BAD_VENDOR_ID => Err(ENOTTY),
        DEVICE_NOT_FOUND => Err(ENODEV),
        BAD_REGISTER_NUMBER => Err(EFAULT),
        SET_FAILED => Err(EIO),
        BUFFER_TOO_SMALL => Err(ENOSPC),
        _ => Err(ERANGE),
    }
}

/// One family of config-space read accessors: byte, word and dword, each returning a status.
struct ReadAccessors<B, W, D> {
    byte: B,
    word: W,
    dword: D,
}

impl<B, W, D> ReadAccessors<B, W, D>
where
    B: FnOnce(c_int, &mut u8) -> c_int,
    W: FnOnce(c_int, &mut u16) -> c_int,
    D: FnOnce(c_int, &mut u32) -> c_int,
{
    /// Reads `count` (1, 2 or 4) bytes at `pos`; returns the accessor's status and the value.
    fn read(self, pos: usize, count: usize) -> Result<(c_int, u32)> {
        let at = c_int::try_from(pos).map_err(|_| EINVAL)?;
        Ok(match count {
            1 => {
                let mut v = 0u8;
                ((self.byte)(at, &mut v), u32::from(v))
            }
            2 => {
                let mut v = 0u16;
                ((self.word)(at, &mut v), u32::from(v))
            }
            4 => {
                let mut v = 0u32;
                ((self.dword)(at, &mut v), v)
            }
            _ => return Err(EINVAL),
        })
    }
}

impl OwnedDevice {
    /// Reads `count` (1, 2 or 4) bytes of config space at `pos` with the plain accessors;
    /// `EINVAL` for another width or an offset that does not fit the C API.
    pub(crate) fn read_config(&self, pos: usize, count: usize) -> Result<u32> {
        let raw = raw_of(self.pci_device());
        let (ret, val) = ReadAccessors {
            byte: |at, v: &mut u8| {
                // SAFETY: `raw` is a valid `pci_dev` (type invariant of `pci::Device`); `v`
                // is a local of `ReadAccessors::read` that lives across the call.
                unsafe { bindings::pci_read_config_byte(raw, at, v) }
            },
            word: |at, v: &mut u16| {
                // SAFETY: As for `byte`.
                unsafe { bindings::pci_read_config_word(raw, at, v) }
            },
            dword: |at, v: &mut u32| {
                // SAFETY: As for `byte`.
                unsafe { bindings::pci_read_config_dword(raw, at, v) }
            },
        }
        .read(pos, count)?;
        pcibios_result(ret).map(|()| val)
    }

    /// Reads `count` (1, 2 or 4) bytes of config space at `pos` for user space (the PCI
    /// core's user accessors, which wait out config-access blocking and return errnos).
    pub(crate) fn user_read_config(&self, pos: usize, count: usize) -> Result<u32> {
        let raw = raw_of(self.pci_device());
        let (ret, val) = ReadAccessors {
            byte: |at, v: &mut u8| {
                // SAFETY: As in `read_config`.
                unsafe { bindings::pci_user_read_config_byte(raw, at, v) }
            },
            word: |at, v: &mut u16| {
                // SAFETY: As in `read_config`.
                unsafe { bindings::pci_user_read_config_word(raw, at, v) }
            },
            dword: |at, v: &mut u32| {
                // SAFETY: As in `read_config`.
                unsafe { bindings::pci_user_read_config_dword(raw, at, v) }
            },
        }
        .read(pos, count)?;
        to_result(ret).map(|()| val)
    }

    /// Writes the low `count` (1, 2 or 4) bytes of `val` to config space at `pos` for user
    /// space.
    pub(crate) fn user_write_config(&self, pos: usize, count: usize, val: u32) -> Result {
        let at = c_int::try_from(pos).map_err(|_| EINVAL)?;
        let raw = raw_of(self.pci_device());
        // SAFETY: `raw` is a valid `pci_dev` (type invariant of `pci::Device`).
        let ret = unsafe {
            match count {
                1 => bindings::pci_user_write_config_byte(raw, at, val as u8),
                2 => bindings::pci_user_write_config_word(raw, at, val as u16),
                4 => bindings::pci_user_write_config_dword(raw, at, val),
                _ => return Err(EINVAL),
            }
        };
        to_result(ret)
    }

    /// Whether the PCI core has the function in `state` now, where
    /// [`Self::set_power_state`] to it changes nothing (`pci_set_power_state()` checks this
    /// first and returns).
    #[inline]
    pub(crate) fn is_in_power_state(&self, state: PowerState) -> bool {
        // SAFETY: Valid by the type invariant of `pci::Device`; a racy read, as the PCI core's
        // own check is (the state changes only under the driver's control).
        let current = unsafe { (*raw_of(self.pci_device())).current_state };
        current == state.raw()
    }

    /// Puts the function in `state` (`pci_set_power_state()`).
    pub(crate) fn set_power_state(&self, state: PowerState) -> Result {
        // SAFETY: Valid by the type invariant of `pci::Device`.
        to_result(unsafe { bindings::pci_set_power_state(raw_of(self.pci_device()), state.raw()) })
    }

    /// The Max_Payload_Size the PCI core configured, in bytes (`pcie_get_mps()`).
    pub(crate) fn pcie_mps(&self) -> i32 {
        // SAFETY: Valid by the type invariant of `pci::Device`.
        unsafe { bindings::pcie_get_mps(raw_of(self.pci_device())) }
    }

    /// Sets Max_Read_Request_Size to `bytes` (`pcie_set_readrq()`); failures leave it as it
    /// was.
    pub(crate) fn pcie_set_readrq(&self, bytes: i32) {
        // SAFETY: Valid by the type invariant of `pci::Device`.
        let _ = unsafe { bindings::pcie_set_readrq(raw_of(self.pci_device()), bytes) };
    }

    /// Reads the VPD dword at `addr` (`pci_read_vpd()`), `None` if the transfer failed.
    pub(crate) fn read_vpd(&self, addr: u16) -> Option<u32> {
        let mut data = [0u8; 4];
        // SAFETY: Valid by the type invariant; `data` is a writable 4-byte buffer living
        // across the call.
        let ret = unsafe {
            bindings::pci_read_vpd(
                raw_of(self.pci_device()),
                addr.into(),
                data.len(),
                data.as_mut_ptr().cast(),
            )
        };
        (ret >= 0).then(|| u32::from_ne_bytes(data))
    }

    /// Writes the VPD dword at `addr` (`pci_write_vpd()`); true if all four bytes were
    /// written.
    pub(crate) fn write_vpd(&self, addr: u16, val: u32) -> bool {
        let data = val.to_ne_bytes();
        // SAFETY: Valid by the type invariant; `data` is a readable 4-byte buffer living
        // across the call.
        let ret = unsafe {
            bindings::pci_write_vpd(
                raw_of(self.pci_device()),
                addr.into(),
                data.len(),
                data.as_ptr().cast(),
            )
        };
        ret == 4
    }

    /// Offset of the PM capability, 0 if none (`pdev->pm_cap`).
    pub(crate) fn pm_cap(&self) -> u8 {
        // SAFETY: Valid by the type invariant; the field is cached at enumeration.
        unsafe { (*raw_of(self.pci_device())).pm_cap }
    }

    /// The PCI Express capabilities register (`pcie_caps_reg()`), 0 for conventional PCI.
    pub(crate) fn pcie_flags_reg(&self) -> u16 {
        // SAFETY: Valid by the type invariant; the field is cached at enumeration.
        unsafe { (*raw_of(self.pci_device())).pcie_flags_reg }
    }
}
