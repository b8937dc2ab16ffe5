// SPDX-License-Identifier: GPL-2.0

//! Building the virtual config space at open: a copy of the function's config space, and for
//! every byte which capability owns it, with the capabilities user space must not see unlinked
//! from both chains.

use super::{
    perms::{
        self,
        CapLen, //
    },
    shadow::Shadow,
    OpenConfig,
    VirtualConfig, //
};
use crate::{
    kernel_ext::pci::{
        config::regs,
        OwnedDevice,
        PciDeviceExt, //
    },
    quirks, //
};
use kernel::prelude::*;

/// What a byte of config space belongs to; decides how accesses to it behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Owner {
    /// The standard 64-byte header.
    Header,
    /// A visible standard capability, by id.
    Cap(u8),
    /// A visible extended capability (or the hidden one anchoring the chain at 0x100), by id.
    Ecap(u16),
    /// No capability: passed through raw.
    Unassigned,
}

/// Offset of the first extended capability, and size of conventional config space.
pub(super) const EXT_START: usize = regs::PCI_CFG_SPACE_SIZE as usize;
/// Size of the standard header.
pub(super) const HEADER_LEN: usize = regs::PCI_STD_HEADER_SIZEOF as usize;

/// Next-pointer bits of an extended capability header.
const ECAP_NEXT_MASK: u32 = 0xffc << 20;

/// The next extended capability's offset (`PCI_EXT_CAP_NEXT`).
fn ecap_next(header: u32) -> usize {
    ((header >> 20) & 0xffc) as usize
}

/// VFs known to report a non-zero interrupt pin (not worth a warning).
const KNOWN_BOGUS_VF_PIN: &[(u32, u16)] = &[(regs::PCI_VENDOR_ID_INTEL, 0x270c)];

impl OpenConfig {
    /// Copies `pdev`'s config space into `shadow` and filters its capability chains.
    pub(super) fn build(shadow: &Shadow, pdev: &OwnedDevice) -> Result<Self> {
        let size = shadow.len();
        if size < EXT_START {
            return Err(EINVAL);
        }
        let mut open = OpenConfig { bars_dirty: true };
        let mut this = VirtualConfig {
            shadow,
            open: &mut open,
        };
        this.populate(pdev)?;
        Ok(open)
    }
}

impl VirtualConfig<'_> {
    /// Fills the shadow from scratch: the copy, the owners, the MSI rules.
    fn populate(&mut self, pdev: &OwnedDevice) -> Result {
        // What an earlier open left.
        self.shadow.clear(self.open);
        for pos in 0..HEADER_LEN {
            self.shadow.set_owner(self.open, pos, Owner::Header);
        }
        self.fill(pdev, 0, HEADER_LEN)?;

        let pin = regs::PCI_INTERRUPT_PIN as usize;
        if pdev.is_virtfn() {
            // VFs read all ones for their ids, and must not have an interrupt pin.
            let (vendor, device) = (pdev.vendor_id().as_raw(), pdev.device_id());
            self.set(regs::PCI_VENDOR_ID as usize, 2, vendor.into());
            self.set(regs::PCI_DEVICE_ID as usize, 2, device.into());
            let known = KNOWN_BOGUS_VF_PIN
                .iter()
                .any(|(v, d)| *v == u32::from(vendor) && *d == device);
            if self.get(pin, 1) != 0 && !known {
                dev_warn!(
                    pdev.as_device(),
                    "Hardware bug: VF reports bogus INTx pin {}\n",
                    self.get(pin, 1)
                );
            }
            self.set(pin, 1, 0);
        }
        if pdev.has_no_command_memory() {
            // No memory-enable bit in hardware: show it set, as on a PF after enable.
            let cmd = self.get(regs::PCI_COMMAND as usize, 2) | regs::PCI_COMMAND_MEMORY;
            self.set(regs::PCI_COMMAND as usize, 2, cmd);
        }
        if quirks::has_broken_intx(pdev) || pdev.intx_line().is_none() {
            self.set(pin, 1, 0);
        }

        let extended = self.link_caps(pdev)?;
        if extended {
            self.link_ecaps(pdev)?;
        }
        self.shadow.index_runs(self.open);
        Ok(())
    }

    /// Copies `len` bytes of physical config space at `pos`, in the largest aligned reads.
    fn fill(&mut self, pdev: &OwnedDevice, mut pos: usize, len: usize) -> Result {
        let end = pos.checked_add(len).ok_or(EINVAL)?.min(self.shadow.len());
        while pos < end {
            let left = end - pos;
            let count = if left >= 4 && pos % 4 == 0 {
                4
            } else if left >= 2 && pos % 2 == 0 {
                2
            } else {
                1
            };
            let val = pdev.read_config(pos, count)?;
            self.set(pos, count, val);
            pos += count;
        }
        Ok(())
    }

    /// Marks `len` bytes at `pos` as `owner`'s, warning about overlaps.
    fn claim(&mut self, pdev: &OwnedDevice, pos: usize, len: usize, owner: Owner) {
        for at in pos..pos.saturating_add(len).min(self.shadow.len()) {
            let was = self.shadow.owner(at);
            if was != Owner::Unassigned {
                dev_warn!(
                    pdev.as_device(),
                    "vfio_cap_init: PCI config conflict @{:#x}, was {:?} now {:?}\n",
                    at,
                    was,
                    owner
                );
            }
            self.shadow.set_owner(self.open, at, owner);
        }
    }

    /// Walks the standard capability list, copying the capabilities user space may see and
    /// unlinking the others. Returns whether extended capabilities are worth walking.
    fn link_caps(&mut self, pdev: &OwnedDevice) -> Result<bool> {
        let mut extended = false;
        let status = pdev.read_config(regs::PCI_STATUS as usize, 2)?;
        if status & regs::PCI_STATUS_CAP_LIST == 0 {
            return Ok(extended);
        }
        let mut pos = pdev.read_config(regs::PCI_CAPABILITY_LIST as usize, 1)? as usize;
        // The pointer that links to the capability at `pos`.
        let mut link = regs::PCI_CAPABILITY_LIST as usize;
        let mut visible = 0;
        // Capabilities are dword aligned: no more than this many fit.
        let mut budget = (EXT_START - HEADER_LEN) / 4;
        while pos != 0 && budget > 0 {
            budget -= 1;
            let id = pdev.read_config(pos, 1)? as u8;
            let next = pdev.read_config(pos + regs::PCI_CAP_LIST_NEXT as usize, 1)?;
            // ID 0 is a null capability with no content.
            let len = match if id == 0 {
                CapLen::Hidden
            } else {
                perms::cap_len(id)
            } {
                CapLen::Hidden => 0,
                CapLen::Fixed(len) => len,
                CapLen::Variable => self.cap_len(pdev, id, pos, &mut extended)?,
            };
            if len == 0 {
                dev_dbg!(
                    pdev.as_device(),
                    "vfio_cap_init: hiding cap {:#x}@{:#x}\n",
                    id,
                    pos
                );
                self.set(link, 1, next);
                pos = next as usize;
                continue;
            }
            self.claim(pdev, pos, len, Owner::Cap(id));
            self.fill(pdev, pos, len)?;
            if u32::from(id) == regs::PCI_CAP_ID_PM {
                // No PME for user space: no PME support, PME status and enable clear.
                let pmc = pos + regs::PCI_PM_PMC as usize;
                self.set(pmc, 2, self.get(pmc, 2) & !regs::PCI_PM_CAP_PME_MASK);
                let ctrl = pos + regs::PCI_PM_CTRL as usize;
                let pme = regs::PCI_PM_CTRL_PME_ENABLE | regs::PCI_PM_CTRL_PME_STATUS;
                self.set(ctrl, 2, self.get(ctrl, 2) & !pme);
            }
            link = pos + regs::PCI_CAP_LIST_NEXT as usize;
            pos = next as usize;
            visible += 1;
        }
        if visible == 0 {
            let status = self.get(regs::PCI_STATUS as usize, 2) & !regs::PCI_STATUS_CAP_LIST;
            self.set(regs::PCI_STATUS as usize, 2, status);
        }
        Ok(extended)
    }

    /// The length of variable-length standard capability `id` at `pos`; notes in `extended`
    /// whether extended config space holds capabilities (PCIe and PCI-X 2.0 only).
    fn cap_len(
        &mut self,
        pdev: &OwnedDevice,
        id: u8,
        pos: usize,
        extended: &mut bool,
    ) -> Result<usize> {
        let mut probe_extended = || {
            if usize::try_from(pdev.cfg_size()).unwrap_or(0) > EXT_START {
                *extended = pdev.read_config(EXT_START, 4).unwrap_or(0) != 0;
            }
        };
        let len = match u32::from(id) {
            regs::PCI_CAP_ID_MSI => {
                let flags = pdev.read_config(pos + regs::PCI_MSI_FLAGS as usize, 2)? as u16;
                if self.shadow.msi().is_none() {
                    self.shadow.set_msi_flags(self.open, Some(flags));
                }
                perms::msi_len(flags)
            }
            regs::PCI_CAP_ID_PCIX => {
                let cmd = pdev.read_config(pos + regs::PCI_X_CMD as usize, 2)?;
                // PCI_X_CMD_VERSION
                if (cmd >> 12) & 3 != 0 {
                    probe_extended();
                    regs::PCI_CAP_PCIX_SIZEOF_V2 as usize
                } else {
                    regs::PCI_CAP_PCIX_SIZEOF_V0 as usize
                }
            }
            regs::PCI_CAP_ID_VNDR => {
                pdev.read_config(pos + regs::PCI_CAP_FLAGS as usize, 1)? as usize
            }
            regs::PCI_CAP_ID_EXP => {
                probe_extended();
                let flags = u32::from(pdev.pcie_flags_reg());
                let integrated =
                    (flags & regs::PCI_EXP_FLAGS_TYPE) >> 4 == regs::PCI_EXP_TYPE_RC_END;
                match (flags & regs::PCI_EXP_FLAGS_VERS == 1, integrated) {
                    // "All devices" registers only, no link.
                    (true, true) => 0xc,
                    (true, false) => regs::PCI_CAP_EXP_ENDPOINT_SIZEOF_V1 as usize,
                    (false, true) => 0x2c,
                    (false, false) => regs::PCI_CAP_EXP_ENDPOINT_SIZEOF_V2 as usize,
                }
            }
            regs::PCI_CAP_ID_HT => {
                if pdev.read_config(pos + 3, 1)? & regs::HT_3BIT_CAP_MASK != 0 {
                    regs::HT_CAP_SIZEOF_SHORT as usize
                } else {
                    regs::HT_CAP_SIZEOF_LONG as usize
                }
            }
            regs::PCI_CAP_ID_SATA => {
                let regs = pdev.read_config(pos + regs::PCI_SATA_REGS as usize, 1)?;
                if regs & regs::PCI_SATA_REGS_MASK == regs::PCI_SATA_REGS_INLINE {
                    regs::PCI_SATA_SIZEOF_LONG as usize
                } else {
                    regs::PCI_SATA_SIZEOF_SHORT as usize
                }
            }
            _ => {
                dev_warn!(
                    pdev.as_device(),
                    "vfio_cap_len: unknown length for PCI cap {:#x}@{:#x}\n",
                    id,
                    pos
                );
                0
            }
        };
        Ok(len)
    }

    /// Walks the extended capability list, copying the visible ones and unlinking the others;
    /// a hidden first capability stays as an anchor with only its next pointer.
    fn link_ecaps(&mut self, pdev: &OwnedDevice) -> Result {
        let size = self.shadow.len();
        let mut pos = EXT_START;
        let mut link: Option<usize> = None;
        let mut visible = 0;
        let mut budget = (size - EXT_START) / 4;
        while budget > 0 && pos >= EXT_START {
            budget -= 1;
            let header = pdev.read_config(pos, 4)?;
            let id = (header & 0xffff) as u16;
            let mut len = match perms::ecap_len(id) {
                CapLen::Hidden => 0,
                CapLen::Fixed(len) => len,
                CapLen::Variable => ecap_len(pdev, id, pos)?,
            };
            let mut hidden = false;
            if len == 0 {
                dev_dbg!(
                    pdev.as_device(),
                    "vfio_ecap_init: hiding ecap {:#x}@{:#x}\n",
                    id,
                    pos
                );
                if let Some(link) = link {
                    let next = ecap_next(header);
                    let linked = (self.get(link, 4) & !ECAP_NEXT_MASK) | ((next as u32) << 20);
                    self.set(link, 4, linked);
                    pos = next;
                    continue;
                }
                // The chain must start at 0x100: keep a placeholder there.
                len = 4;
                hidden = true;
            }
            self.claim(pdev, pos, len, Owner::Ecap(id));
            self.fill(pdev, pos, len)?;
            if hidden {
                self.set(pos, 4, self.get(pos, 4) & ECAP_NEXT_MASK);
            } else {
                visible += 1;
            }
            link = Some(pos);
            pos = ecap_next(header);
        }
        if visible == 0 {
            self.set(EXT_START, 4, 0);
        }
        Ok(())
    }
}

/// The length of variable-length extended capability `id` at `pos`.
fn ecap_len(pdev: &OwnedDevice, id: u16, pos: usize) -> Result<usize> {
    let byte = |offset: u32| pdev.read_config(pos + offset as usize, 1);
    let dword = |offset: u32| pdev.read_config(pos + offset as usize, 4);
    let len = match u32::from(id) {
        regs::PCI_EXT_CAP_ID_VNDR => ((dword(regs::PCI_VNDR_HEADER)? >> 20) & 0xfff) as usize,
        regs::PCI_EXT_CAP_ID_DVSEC => ((dword(regs::PCI_DVSEC_HEADER1)? >> 20) & 0xfff) as usize,
        regs::PCI_EXT_CAP_ID_VC | regs::PCI_EXT_CAP_ID_VC9 | regs::PCI_EXT_CAP_ID_MFVC => {
            let extra_vcs = (dword(regs::PCI_VC_PORT_CAP1)? & regs::PCI_VC_CAP1_EVCC) as usize;
            let cap2 = dword(regs::PCI_VC_PORT_CAP2)?;
            let phases = if cap2 & regs::PCI_VC_CAP2_128_PHASE != 0 {
                128
            } else if cap2 & regs::PCI_VC_CAP2_64_PHASE != 0 {
                64
            } else if cap2 & regs::PCI_VC_CAP2_32_PHASE != 0 {
                32
            } else {
                0
            };
            // Arbitration tables are never writable: their size only bounds the capability.
            let arbitration_bits = phases * 4;
            let mut len = regs::PCI_CAP_VC_BASE_SIZEOF as usize
                + (1 + extra_vcs) * regs::PCI_CAP_VC_PER_VC_SIZEOF as usize;
            if arbitration_bits != 0 {
                len = len.next_multiple_of(16) + arbitration_bits / 8;
            }
            len
        }
        regs::PCI_EXT_CAP_ID_ACS => {
            if byte(regs::PCI_ACS_CAP)? & regs::PCI_ACS_EC != 0 {
                let egress = byte(regs::PCI_ACS_EGRESS_BITS)? as usize;
                let bits = if egress != 0 {
                    egress.next_multiple_of(32)
                } else {
                    256
                };
                8 + bits / 8
            } else {
                8
            }
        }
        regs::PCI_EXT_CAP_ID_REBAR => {
            let ctrl = byte(regs::PCI_REBAR_CTRL)?;
            let bars = (ctrl & regs::PCI_REBAR_CTRL_NBAR_MASK) >> regs::PCI_REBAR_CTRL_NBAR_SHIFT;
            4 + bars as usize * 8
        }
        regs::PCI_EXT_CAP_ID_DPA => {
            let substates = byte(regs::PCI_DPA_CAP)? & regs::PCI_DPA_CAP_SUBSTATE_MASK;
            regs::PCI_DPA_BASE_SIZEOF as usize + substates as usize + 1
        }
        regs::PCI_EXT_CAP_ID_TPH => {
            let cap = dword(regs::PCI_TPH_CAP)?;
            if cap & regs::PCI_TPH_CAP_LOC_MASK == regs::PCI_TPH_LOC_CAP {
                let entries = (cap & regs::PCI_TPH_CAP_ST_MASK) >> regs::PCI_TPH_CAP_ST_SHIFT;
                regs::PCI_TPH_BASE_SIZEOF as usize + entries as usize * 2 + 2
            } else {
                regs::PCI_TPH_BASE_SIZEOF as usize
            }
        }
        _ => {
            dev_warn!(
                pdev.as_device(),
                "vfio_ext_cap_len: unknown length for PCI ecap {:#x}@{:#x}\n",
                id,
                pos
            );
            0
        }
    };
    Ok(len)
}
