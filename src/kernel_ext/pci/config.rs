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
use kernel::{
    bindings,
    error::to_result,
    ffi::c_int,
    prelude::*, //
};

/// The PCI register offsets, bits and sizes the virtual config space names
/// (`include/uapi/linux/pci_regs.h`, `include/linux/pci.h`, `include/linux/ioport.h`), and the
/// one uAPI interrupt index it compares with.
pub(crate) mod regs {
    pub(crate) use crate::kernel_ext::bindings::VFIO_PCI_MSI_IRQ_INDEX;
    pub(crate) use kernel::bindings::{
        HT_3BIT_CAP_MASK,
        HT_CAP_SIZEOF_LONG,
        HT_CAP_SIZEOF_SHORT,
        IORESOURCE_IO,
        IORESOURCE_MEM_64,
        IORESOURCE_PREFETCH,
        PCI_ACS_CAP,
        PCI_ACS_EC,
        PCI_ACS_EGRESS_BITS,
        PCI_AF_CAP,
        PCI_AF_CAP_FLR,
        PCI_AF_CAP_TP,
        PCI_AF_CTRL,
        PCI_AF_CTRL_FLR,
        PCI_AGP_SIZEOF,
        PCI_BASE_ADDRESS_0,
        PCI_BASE_ADDRESS_1,
        PCI_BASE_ADDRESS_2,
        PCI_BASE_ADDRESS_3,
        PCI_BASE_ADDRESS_4,
        PCI_BASE_ADDRESS_5,
        PCI_BASE_ADDRESS_MEM_PREFETCH,
        PCI_BASE_ADDRESS_MEM_TYPE_64,
        PCI_BASE_ADDRESS_SPACE_IO,
        PCI_BASE_ADDRESS_SPACE_MEMORY,
        PCI_BIST,
        PCI_CACHE_LINE_SIZE,
        PCI_CAPABILITY_LIST,
        PCI_CAP_AF_SIZEOF,
        PCI_CAP_EXP_ENDPOINT_SIZEOF_V1,
        PCI_CAP_EXP_ENDPOINT_SIZEOF_V2,
        PCI_CAP_FLAGS,
        PCI_CAP_ID_AF,
        PCI_CAP_ID_AGP,
        PCI_CAP_ID_EXP,
        PCI_CAP_ID_HT,
        PCI_CAP_ID_MSI,
        PCI_CAP_ID_MSIX,
        PCI_CAP_ID_PCIX,
        PCI_CAP_ID_PM,
        PCI_CAP_ID_SATA,
        PCI_CAP_ID_VNDR,
        PCI_CAP_ID_VPD,
        PCI_CAP_LIST_ID,
        PCI_CAP_LIST_NEXT,
        PCI_CAP_MSIX_SIZEOF,
        PCI_CAP_PCIX_SIZEOF_V0,
        PCI_CAP_PCIX_SIZEOF_V2,
        PCI_CAP_VC_BASE_SIZEOF,
        PCI_CAP_VC_PER_VC_SIZEOF,
        PCI_CAP_VPD_SIZEOF,
        PCI_CFG_SPACE_SIZE,
        PCI_COMMAND,
        PCI_COMMAND_INTX_DISABLE,
        PCI_COMMAND_IO,
        PCI_COMMAND_MEMORY,
        PCI_DEVICE_ID,
        PCI_DPA_BASE_SIZEOF,
        PCI_DPA_CAP,
        PCI_DPA_CAP_SUBSTATE_MASK,
        PCI_DVSEC_HEADER1,
        PCI_ERR_CAP,
        PCI_ERR_CAP_ECRC_CHKE,
        PCI_ERR_CAP_ECRC_GENE,
        PCI_ERR_COR_ADV_NFAT,
        PCI_ERR_COR_BAD_DLLP,
        PCI_ERR_COR_BAD_TLP,
        PCI_ERR_COR_INTERNAL,
        PCI_ERR_COR_LOG_OVER,
        PCI_ERR_COR_MASK,
        PCI_ERR_COR_RCVR,
        PCI_ERR_COR_REP_ROLL,
        PCI_ERR_COR_REP_TIMER,
        PCI_ERR_COR_STATUS,
        PCI_ERR_ROOT_COMMAND,
        PCI_ERR_UNCOR_MASK,
        PCI_ERR_UNCOR_SEVER,
        PCI_ERR_UNCOR_STATUS,
        PCI_ERR_UNC_ACSV,
        PCI_ERR_UNC_ATOMEG,
        PCI_ERR_UNC_COMP_ABORT,
        PCI_ERR_UNC_COMP_TIME,
        PCI_ERR_UNC_DLP,
        PCI_ERR_UNC_ECRC,
        PCI_ERR_UNC_FCP,
        PCI_ERR_UNC_INTN,
        PCI_ERR_UNC_MALF_TLP,
        PCI_ERR_UNC_MCBTLP,
        PCI_ERR_UNC_POISON_TLP,
        PCI_ERR_UNC_RX_OVER,
        PCI_ERR_UNC_SURPDN,
        PCI_ERR_UNC_TLPPRE,
        PCI_ERR_UNC_UND,
        PCI_ERR_UNC_UNSUP,
        PCI_ERR_UNC_UNX_COMP,
        PCI_EXP_DEVCAP,
        PCI_EXP_DEVCAP_FLR,
        PCI_EXP_DEVCTL,
        PCI_EXP_DEVCTL2,
        PCI_EXP_DEVCTL2_ARI,
        PCI_EXP_DEVCTL_BCR_FLR,
        PCI_EXP_DEVCTL_PAYLOAD,
        PCI_EXP_DEVCTL_PHANTOM,
        PCI_EXP_DEVCTL_READRQ,
        PCI_EXP_FLAGS_TYPE,
        PCI_EXP_FLAGS_VERS,
        PCI_EXP_TYPE_RC_END,
        PCI_EXT_CAP_ARI_SIZEOF,
        PCI_EXT_CAP_ATS_SIZEOF,
        PCI_EXT_CAP_DSN_SIZEOF,
        PCI_EXT_CAP_ID_ACS,
        PCI_EXT_CAP_ID_ARI,
        PCI_EXT_CAP_ID_ATS,
        PCI_EXT_CAP_ID_DPA,
        PCI_EXT_CAP_ID_DSN,
        PCI_EXT_CAP_ID_DVSEC,
        PCI_EXT_CAP_ID_ERR,
        PCI_EXT_CAP_ID_LTR,
        PCI_EXT_CAP_ID_MCAST,
        PCI_EXT_CAP_ID_MFVC,
        PCI_EXT_CAP_ID_PRI,
        PCI_EXT_CAP_ID_PWR,
        PCI_EXT_CAP_ID_REBAR,
        PCI_EXT_CAP_ID_SRIOV,
        PCI_EXT_CAP_ID_TPH,
        PCI_EXT_CAP_ID_VC,
        PCI_EXT_CAP_ID_VC9,
        PCI_EXT_CAP_ID_VNDR,
        PCI_EXT_CAP_LTR_SIZEOF,
        PCI_EXT_CAP_MCAST_ENDPOINT_SIZEOF,
        PCI_EXT_CAP_PRI_SIZEOF,
        PCI_EXT_CAP_PWR_SIZEOF,
        PCI_EXT_CAP_SRIOV_SIZEOF,
        PCI_INTERRUPT_LINE,
        PCI_INTERRUPT_PIN,
        PCI_LATENCY_TIMER,
        PCI_MSI_ADDRESS_HI,
        PCI_MSI_ADDRESS_LO,
        PCI_MSI_DATA_32,
        PCI_MSI_DATA_64,
        PCI_MSI_FLAGS,
        PCI_MSI_FLAGS_64BIT,
        PCI_MSI_FLAGS_ENABLE,
        PCI_MSI_FLAGS_MASKBIT,
        PCI_MSI_FLAGS_QSIZE,
        PCI_MSI_MASK_32,
        PCI_MSI_MASK_64,
        PCI_MSI_PENDING_32,
        PCI_MSI_PENDING_64,
        PCI_PM_CAP_PME_MASK,
        PCI_PM_CTRL,
        PCI_PM_CTRL_NO_SOFT_RESET,
        PCI_PM_CTRL_PME_ENABLE,
        PCI_PM_CTRL_PME_STATUS,
        PCI_PM_CTRL_STATE_MASK,
        PCI_PM_PMC,
        PCI_PM_SIZEOF,
        PCI_PWR_DATA,
        PCI_REBAR_CTRL,
        PCI_REBAR_CTRL_NBAR_MASK,
        PCI_REBAR_CTRL_NBAR_SHIFT,
        PCI_ROM_ADDRESS,
        PCI_ROM_ADDRESS_ENABLE,
        PCI_ROM_RESOURCE,
        PCI_SATA_REGS,
        PCI_SATA_REGS_INLINE,
        PCI_SATA_REGS_MASK,
        PCI_SATA_SIZEOF_LONG,
        PCI_SATA_SIZEOF_SHORT,
        PCI_STATUS,
        PCI_STATUS_CAP_LIST,
        PCI_STD_HEADER_SIZEOF,
        PCI_STD_NUM_BARS,
        PCI_TPH_BASE_SIZEOF,
        PCI_TPH_CAP,
        PCI_TPH_CAP_LOC_MASK,
        PCI_TPH_CAP_ST_MASK,
        PCI_TPH_CAP_ST_SHIFT,
        PCI_TPH_LOC_CAP,
        PCI_VC_CAP1_EVCC,
        PCI_VC_CAP2_128_PHASE,
        PCI_VC_CAP2_32_PHASE,
        PCI_VC_CAP2_64_PHASE,
        PCI_VC_PORT_CAP1,
        PCI_VC_PORT_CAP2,
        PCI_VENDOR_ID,
        PCI_VENDOR_ID_INTEL,
        PCI_VNDR_HEADER,
        PCI_VPD_ADDR,
        PCI_VPD_ADDR_F,
        PCI_VPD_DATA,
        PCI_X_CMD,
        PCI_X_ECC_CSR, //
    };
}

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
