// SPDX-License-Identifier: GPL-2.0

//! The function underneath the virtual config space: the PCI core's facts about it (config
//! size, resources, power state) and the config accessors that reach the hardware.
//!
//! Building the virtual copy uses the plain accessors (`pci_read_config_*`); user accesses that
//! pass through use the `pci_user_*` ones, which wait while the PCI core blocks config access
//! (during a reset) and turn bus errors into errnos, as vfio-pci does.

#![allow(unsafe_code)] // Transitional: this file still calls C directly.

use crate::{
    kernel_ext::bindings as vfio,
    kernel_ext::pci::{OwnedDevice, PciDeviceExt},
};
use kernel::{bindings, error::to_result, ffi::c_int, prelude::*};

/// The power states user space can ask for through the PM capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PowerState {
    D0,
    D1,
    D2,
    D3Hot,
}

impl PowerState {
    /// The state the two low bits of PMCSR name.
    pub(super) fn from_pmcsr(pmcsr: u32) -> Self {
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
            Self::D3Hot => vfio::VFIO_PCI_RS_CONFIG_PCI_D3HOT,
        }
    }
}

/// One of the function's PCI resources (a BAR or the ROM), as the PCI core assigned it.
#[derive(Clone, Copy)]
pub(super) struct Resource {
    pub(super) start: u64,
    /// `pci_resource_len()`: 0 when the resource has no end.
    pub(super) len: u64,
    pub(super) flags: u64,
}

/// Bytes of config space the function has (256, or 4096 for PCIe and PCI-X 2.0).
pub(super) fn cfg_size(pdev: &OwnedDevice) -> usize {
    // SAFETY: `pdev` is a valid `pci_dev` (type invariant); `cfg_size` is set at enumeration.
    let size = unsafe { (*pdev.as_raw()).cfg_size };
    usize::try_from(size).unwrap_or(0)
}

/// Whether the function has no memory-enable bit in its command register (VFs and quirks).
pub(super) fn no_command_memory(pdev: &OwnedDevice) -> bool {
    // SAFETY: `pdev` is valid; the bit is set at enumeration and never changes afterwards.
    unsafe { bindings::pci_dev::no_command_memory_raw(pdev.as_raw()) != 0 }
}

/// Whether the function is in D3hot or deeper (its memory cannot be reached).
pub(super) fn in_d3(pdev: &OwnedDevice) -> bool {
    // SAFETY: `pdev` is valid; `current_state` is a plain integer the PCI core updates on power
    // transitions, which this driver performs under the memory gate.
    let state = unsafe { (*pdev.as_raw()).current_state };
    state >= vfio::VFIO_PCI_RS_CONFIG_PCI_D3HOT
}

/// The Linux IRQ of the function's INTx pin, 0 if none.
pub(super) fn irq(pdev: &OwnedDevice) -> u32 {
    // SAFETY: `pdev` is valid; `irq` is set before a driver binds.
    unsafe { (*pdev.as_raw()).irq }
}

/// Vendor and device id as the PCI core enumerated them (VFs read all ones in hardware).
pub(super) fn ids(pdev: &OwnedDevice) -> (u16, u16) {
    // SAFETY: `pdev` is valid; the ids never change after enumeration.
    unsafe { ((*pdev.as_raw()).vendor, (*pdev.as_raw()).device) }
}

/// The PCI Express capabilities register (`pcie_caps_reg()`), 0 for conventional PCI.
pub(super) fn pcie_flags(pdev: &OwnedDevice) -> u16 {
    // SAFETY: `pdev` is valid; the field is cached at enumeration.
    unsafe { (*pdev.as_raw()).pcie_flags_reg }
}

/// Offset of the PM capability, 0 if none.
pub(super) fn pm_cap(pdev: &OwnedDevice) -> u8 {
    // SAFETY: `pdev` is valid; the field is cached at enumeration.
    unsafe { (*pdev.as_raw()).pm_cap }
}

/// Resource `index` (0-5 the BARs, [`bindings::PCI_ROM_RESOURCE`] the ROM).
pub(super) fn resource(pdev: &OwnedDevice, index: usize) -> Option<Resource> {
    // SAFETY: `pdev` is valid; the resource array is part of it. Resources are assigned
    // before a driver binds and do not move while one is bound.
    let res = unsafe { (*pdev.as_raw()).resource.get(index).copied() }?;
    let len = if res.end != 0 {
        res.end.wrapping_sub(res.start).wrapping_add(1)
    } else {
        0
    };
    Some(Resource {
        start: res.start,
        len,
        flags: res.flags as u64,
    })
}

/// The length of a shadow ROM the platform provides (`pdev->rom`/`romlen`), if any.
pub(super) fn shadow_rom_len(pdev: &OwnedDevice) -> Option<usize> {
    // SAFETY: `pdev` is valid; the fields are set at enumeration.
    let (rom, len) = unsafe { ((*pdev.as_raw()).rom, (*pdev.as_raw()).romlen) };
    (rom != 0 && len != 0).then_some(len)
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

/// Reads `count` (1, 2 or 4) bytes of physical config space at `pos` (building the copy).
pub(super) fn read(pdev: &OwnedDevice, pos: usize, count: usize) -> Result<u32> {
    let raw = pdev.as_raw();
    // Each accessor gets a valid `pci_dev` (type invariant of `pci::Device`) and an out
    // pointer to a local of `ReadAccessors::read` that lives across the call.
    let (ret, val) = ReadAccessors {
        // SAFETY: See above.
        byte: |at, v: &mut u8| unsafe { bindings::pci_read_config_byte(raw, at, v) },
        // SAFETY: See above.
        word: |at, v: &mut u16| unsafe { bindings::pci_read_config_word(raw, at, v) },
        // SAFETY: See above.
        dword: |at, v: &mut u32| unsafe { bindings::pci_read_config_dword(raw, at, v) },
    }
    .read(pos, count)?;
    pcibios_result(ret).map(|()| val)
}

/// Reads `count` (1, 2 or 4) bytes of config space at `pos` for user space (the PCI core's
/// user accessors, which wait out config-access blocking and return errnos).
pub(super) fn user_read(pdev: &OwnedDevice, pos: usize, count: usize) -> Result<u32> {
    let raw = pdev.as_raw();
    // As in `read`.
    let (ret, val) = ReadAccessors {
        // SAFETY: See `read`.
        byte: |at, v: &mut u8| unsafe { bindings::pci_user_read_config_byte(raw, at, v) },
        // SAFETY: See `read`.
        word: |at, v: &mut u16| unsafe { bindings::pci_user_read_config_word(raw, at, v) },
        // SAFETY: See `read`.
        dword: |at, v: &mut u32| unsafe { bindings::pci_user_read_config_dword(raw, at, v) },
    }
    .read(pos, count)?;
    to_result(ret).map(|()| val)
}

/// Writes the low `count` (1, 2 or 4) bytes of `val` to config space at `pos` for user space.
pub(super) fn user_write(pdev: &OwnedDevice, pos: usize, count: usize, val: u32) -> Result {
    let at = c_int::try_from(pos).map_err(|_| EINVAL)?;
    let raw = pdev.as_raw();
    // SAFETY: `raw` is a valid `pci_dev`.
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

/// `pci_set_power_state()`.
pub(super) fn set_power_state(pdev: &OwnedDevice, state: PowerState) -> Result {
    // SAFETY: `pdev` is valid.
    to_result(unsafe { bindings::pci_set_power_state(pdev.as_raw(), state.raw()) })
}

/// The Max_Payload_Size the PCI core configured, in bytes.
pub(super) fn pcie_mps(pdev: &OwnedDevice) -> i32 {
    // SAFETY: `pdev` is valid.
    unsafe { bindings::pcie_get_mps(pdev.as_raw()) }
}

/// Sets Max_Read_Request_Size (`pcie_set_readrq()`); failures leave it as it was.
pub(super) fn pcie_set_readrq(pdev: &OwnedDevice, bytes: i32) {
    // SAFETY: `pdev` is valid.
    let _ = unsafe { bindings::pcie_set_readrq(pdev.as_raw(), bytes) };
}

/// Reads the VPD dword at `addr`.
pub(super) fn read_vpd(pdev: &OwnedDevice, addr: u16) -> Option<u32> {
    let mut data = [0u8; 4];
    // SAFETY: `pdev` is valid; `data` is a writable 4-byte buffer living across the call.
    let ret = unsafe {
        bindings::pci_read_vpd(
            pdev.as_raw(),
            addr.into(),
            data.len(),
            data.as_mut_ptr().cast(),
        )
    };
    (ret >= 0).then(|| u32::from_ne_bytes(data))
}

/// Writes the VPD dword at `addr`; true if all four bytes were written.
pub(super) fn write_vpd(pdev: &OwnedDevice, addr: u16, val: u32) -> bool {
    let data = val.to_ne_bytes();
    // SAFETY: `pdev` is valid; `data` is a readable 4-byte buffer living across the call.
    let ret = unsafe {
        bindings::pci_write_vpd(pdev.as_raw(), addr.into(), data.len(), data.as_ptr().cast())
    };
    ret == 4
}
