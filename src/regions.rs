// SPDX-License-Identifier: GPL-2.0

//! The regions of a device file: which part of the file offset space holds config space,
//! each BAR and the ROM, and the `VFIO_DEVICE_GET_REGION_INFO` answers describing them.
//!
//! Like vfio-pci, region `i` starts at file offset `i << 40`; user space learns the offsets
//! from the region info, never from this constant. `read(2)`/`write(2)` at a file offset are
//! routed here to the region's handler.

use crate::{bindings, config, device::VfioPciDevice, rdwr, vfio_device::VfioDevice};
use kernel::{prelude::*, uaccess::UserPtr};

/// Bits of a file offset that address bytes inside one region.
pub(crate) const OFFSET_SHIFT: u32 = 40;

/// One region of a device file, by its uAPI index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Region {
    /// BAR 0 to 5.
    Bar(u8),
    /// The expansion ROM.
    Rom,
    /// The (virtualized) configuration space.
    Config,
    /// Legacy VGA ranges, which this driver does not expose.
    Vga,
}

impl Region {
    /// The region with uAPI index `index`, if there is one.
    pub(crate) fn from_index(index: u32) -> Option<Self> {
        match index {
            bindings::VFIO_PCI_BAR0_REGION_INDEX..=bindings::VFIO_PCI_BAR5_REGION_INDEX => {
                Some(Self::Bar((index - bindings::VFIO_PCI_BAR0_REGION_INDEX) as u8))
            }
            bindings::VFIO_PCI_ROM_REGION_INDEX => Some(Self::Rom),
            bindings::VFIO_PCI_CONFIG_REGION_INDEX => Some(Self::Config),
            bindings::VFIO_PCI_VGA_REGION_INDEX => Some(Self::Vga),
            _ => None,
        }
    }

    /// The uAPI index.
    pub(crate) fn index(self) -> u32 {
        match self {
            Self::Bar(bar) => bindings::VFIO_PCI_BAR0_REGION_INDEX + u32::from(bar),
            Self::Rom => bindings::VFIO_PCI_ROM_REGION_INDEX,
            Self::Config => bindings::VFIO_PCI_CONFIG_REGION_INDEX,
            Self::Vga => bindings::VFIO_PCI_VGA_REGION_INDEX,
        }
    }

    /// The file offset at which the region starts.
    pub(crate) fn file_offset(self) -> u64 {
        u64::from(self.index()) << OFFSET_SHIFT
    }
}

/// Splits a file position into the region index and the offset inside that region.
pub(crate) fn split_offset(pos: u64) -> (u64, u64) {
    (pos >> OFFSET_SHIFT, pos & ((1u64 << OFFSET_SHIFT) - 1))
}

/// `read(2)`/`write(2)` on the device file: the region at `*pos` moves up to `count` bytes.
pub(crate) fn rw(
    dev: &VfioDevice<VfioPciDevice>,
    buf: UserPtr,
    count: usize,
    pos: &mut i64,
    write: bool,
) -> Result<usize> {
    if count == 0 {
        return Ok(0);
    }
    let (index, offset) = split_offset(*pos as u64);
    let region = u32::try_from(index)
        .ok()
        .and_then(Region::from_index)
        .ok_or(EINVAL)?;
    let done = match region {
        Region::Config => config::rw(dev, buf, count, offset, write)?,
        Region::Bar(bar) => rdwr::bar_rw(dev, bar, buf, count, offset, write)?,
        Region::Rom => rdwr::rom_read(dev, buf, count, offset, write)?,
        Region::Vga => return Err(EINVAL),
    };
    *pos += done as i64;
    Ok(done)
}

/// `VFIO_DEVICE_GET_REGION_INFO` for `info.index`.
pub(crate) fn info(
    _dev: &VfioDevice<VfioPciDevice>,
    _info: &mut bindings::vfio_region_info,
    _caps: &mut crate::vfio_device::InfoCaps<'_>,
) -> Result {
    Err(EINVAL)
}
