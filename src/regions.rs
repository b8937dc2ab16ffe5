// SPDX-License-Identifier: GPL-2.0

//! The regions of a device file: which part of the file offset space holds config space,
//! each BAR and the ROM, and the `VFIO_DEVICE_GET_REGION_INFO` answers describing them.
//!
//! Like vfio-pci, region `i` starts at file offset `i << 40`; user space learns the offsets
//! from the region info, never from this constant. `read(2)`/`write(2)` at a file offset are
//! routed to the region's handler by [`crate::device`].

use crate::{
    bars::{
        BarsInfo,
        MsixTable, //
    },
    kernel_ext::pci::{
        regs,
        OwnedDevice,
        PciDeviceExt, //
    },
    kernel_ext::sync::RwSem,
    kernel_ext::vfio::region::{
        vfio_pci_index_to_offset,
        VFIO_PCI_BAR0_REGION_INDEX,
        VFIO_PCI_BAR5_REGION_INDEX,
        VFIO_PCI_CONFIG_REGION_INDEX,
        VFIO_PCI_OFFSET_SHIFT,
        VFIO_PCI_ROM_REGION_INDEX,
        VFIO_PCI_VGA_REGION_INDEX,
        VFIO_REGION_INFO_FLAG_MMAP,
        VFIO_REGION_INFO_FLAG_READ,
        VFIO_REGION_INFO_FLAG_WRITE, //
    },
    kernel_ext::vfio::{
        uapi,
        InfoCaps, //
    },
    memory::MemoryGate,
    vga::VgaFunction, //
};
use kernel::prelude::*;

/// Bits of a file offset that address bytes inside one region.
pub(crate) const OFFSET_SHIFT: u32 = VFIO_PCI_OFFSET_SHIFT;

/// One region of a device file, by its uAPI index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Region {
    /// BAR 0 to 5.
    Bar(u8),
    /// The expansion ROM.
    Rom,
    /// The (virtualized) configuration space.
    Config,
    /// The legacy VGA ranges (see [`crate::vga`]).
    Vga,
}

impl Region {
    /// The region with uAPI index `index`, if there is one.
    pub(crate) fn from_index(index: u32) -> Option<Self> {
        match index {
            VFIO_PCI_BAR0_REGION_INDEX..=VFIO_PCI_BAR5_REGION_INDEX => {
                Some(Self::Bar((index - VFIO_PCI_BAR0_REGION_INDEX) as u8))
            }
            VFIO_PCI_ROM_REGION_INDEX => Some(Self::Rom),
            VFIO_PCI_CONFIG_REGION_INDEX => Some(Self::Config),
            VFIO_PCI_VGA_REGION_INDEX => Some(Self::Vga),
            _ => None,
        }
    }

    /// The uAPI index.
    pub(crate) fn index(self) -> u32 {
        match self {
            Self::Bar(bar) => VFIO_PCI_BAR0_REGION_INDEX + u32::from(bar),
            Self::Rom => VFIO_PCI_ROM_REGION_INDEX,
            Self::Config => VFIO_PCI_CONFIG_REGION_INDEX,
            Self::Vga => VFIO_PCI_VGA_REGION_INDEX,
        }
    }

    /// The file offset at which the region starts.
    pub(crate) fn file_offset(self) -> u64 {
        vfio_pci_index_to_offset(self.index())
    }
}

/// Splits a file position into the region index and the offset inside that region.
pub(crate) fn split_offset(pos: u64) -> (u64, u64) {
    (pos >> OFFSET_SHIFT, pos & ((1u64 << OFFSET_SHIFT) - 1))
}

/// `VFIO_DEVICE_GET_REGION_INFO` for `info.index`: where the region is in the file, how big
/// it is, what may be done with it, and (for the BAR holding the MSI-X table) that the table
/// may be mmapped too, as vfio-pci says on platforms that remap interrupts. `memory` is the
/// memory gate of `pdev` (taken only for the ROM), `bars_info` what its BARs allow (mmap),
/// `msix_table` where its MSI-X table is, `vga` what it is to the VGA code.
pub(crate) fn info(
    memory: &RwSem<MemoryGate>,
    bars_info: &BarsInfo,
    pdev: &OwnedDevice,
    msix_table: Option<MsixTable>,
    vga: &VgaFunction,
    info: &mut uapi::vfio_region_info,
    caps: &mut InfoCaps<'_>,
) -> Result {
    const READ: u32 = VFIO_REGION_INFO_FLAG_READ;
    const WRITE: u32 = VFIO_REGION_INFO_FLAG_WRITE;
    const MMAP: u32 = VFIO_REGION_INFO_FLAG_MMAP;

    let region = Region::from_index(info.index).ok_or(EINVAL)?;
    let (size, flags) = match region {
        Region::Config => (u64::from(pdev.cfg_size()), READ | WRITE),
        Region::Bar(bar) => {
            let len = pdev.resource(usize::from(bar)).len;
            if len == 0 {
                (0, 0)
            } else if bars_info.mmappable(bar) {
                if msix_table.is_some_and(|table| table.bar == bar) {
                    caps.add_msix_mappable()?;
                }
                (len, READ | WRITE | MMAP)
            } else {
                (len, READ | WRITE)
            }
        }
        Region::Rom => rom_info(memory, pdev)?,
        Region::Vga => vga.region_info()?,
    };
    info.offset = region.file_offset();
    info.size = size;
    info.flags = flags;
    Ok(())
}

/// The ROM region's size and flags: readable, with the size of the ROM BAR, when the ROM
/// holds a valid image (checked by mapping it, which needs memory decode on for a moment);
/// or the platform's copy of the ROM, sized to a power of two; or nothing.
fn rom_info(memory: &RwSem<MemoryGate>, pdev: &OwnedDevice) -> Result<(u64, u32)> {
    let res = pdev.resource(regs::PCI_ROM_RESOURCE as usize);
    if res.start != 0 {
        let _gate = memory.write();
        let valid = pdev.with_memory_decode(|| pdev.rom_has_image());
        Ok(if valid {
            (res.len, VFIO_REGION_INFO_FLAG_READ)
        } else {
            (0, 0)
        })
    } else if let Some((_, len)) = pdev.platform_rom() {
        Ok(((len as u64).next_power_of_two(), VFIO_REGION_INFO_FLAG_READ))
    } else {
        Ok((0, 0))
    }
}
