// SPDX-License-Identifier: GPL-2.0

//! VGA-class functions, as vfio-pci handles them: the firmware framebuffer is removed at bind,
//! the function is a client of the VGA arbiter while bound, and user space gets the legacy VGA
//! region (`VFIO_PCI_VGA_REGION_INDEX`) unless `disable_vga=1` (see [`crate::params`]).
//!
//! - At bind a VGA-class function (class 0x0300, any programming interface) first has the
//!   firmware framebuffers on its memory BARs removed (`aperture_remove_conflicting_pci_devices()`:
//!   vesafb, efifb, simpledrm...; for the boot VGA device also the VGA text console), then is
//!   registered with the arbiter and reports what it decodes; either failing fails the bind
//!   with its errno. At unbind it is unregistered and reported as decoding everything again.
//! - The decode answer ([`VfioPciDecoder`]): everything, unless VGA access is disabled, the
//!   function is not alone, and it is below a bridge; then the legacy ranges only if another
//!   VGA function is on its bus or below it (user space cannot reach the legacy ranges, and
//!   routing to them can be turned off at the bridge).
//! - The region: 0xc0000 bytes, readable and writable, of which only the legacy memory
//!   (0xa0000..=0xbffff) and I/O ports (0x3b0..=0x3bb, 0x3c0..=0x3df, at offsets equal to the
//!   port numbers) can be accessed, everything else `EINVAL`. An access is clipped at the end
//!   of its range, needs the arbiter to route the range to the function (waiting interruptibly:
//!   `EINTR` on a signal) and is split into accesses of at most 4 bytes. The memory decode
//!   bit does not gate it (the legacy ranges are no BAR). vfio-pci decides that a function has
//!   the region at its first open; since `disable_vga` is read-only and the class fixed, this
//!   driver decides it at bind, with the same result.

use crate::{
    kernel_ext::{
        aperture,
        pci::OwnedDevice,
        vfio::{
            region::{
                VFIO_REGION_INFO_FLAG_READ,
                VFIO_REGION_INFO_FLAG_WRITE, //
            },
            VfioDeviceOps, //
        },
        vga::{
            self,
            Decodes,
            LegacyMapping,
            LegacyRange,
            LegacyRouting,
            VgaClient,
            VgaDecoder,
            VgaPlace, //
        }, //
    },
    params,
    rdwr::{
        self,
        Transfer,
        Width, //
    }, //
};
use kernel::{
    pci,
    prelude::*, //
};

/// The size of the VGA region: up to the end of the legacy memory range.
pub(crate) const REGION_SIZE: u64 = 0xc0000;

/// The decode answer of functions bound to this driver (vfio-pci's `vfio_pci_set_decode()`).
pub(crate) struct VfioPciDecoder;

impl VgaDecoder for VfioPciDecoder {
    fn decodes(pdev: &pci::Device, single_vga: bool) -> Decodes {
        let place = VgaPlace::of(pdev);
        if single_vga || !params::disable_vga() || place.root_bus {
            return Decodes::ALL;
        }
        let max_bus = VgaPlace::max_bus_below(pdev);
        let mut decodes = Decodes::NORMAL_IO | Decodes::NORMAL_MEM;
        vga::for_each_vga_function(|other| {
            if core::ptr::eq(other, pdev) {
                return false;
            }
            let at = VgaPlace::of(other);
            if at.domain != place.domain || at.root_bus {
                return false;
            }
            let below = at.bus >= place.bus && at.bus <= max_bus;
            if below {
                decodes |= Decodes::LEGACY_IO | Decodes::LEGACY_MEM;
            }
            below
        });
        decodes
    }
}

/// A bound function's arbiter registration: unregistered on drop, after which the function is
/// reported as decoding everything again.
pub(crate) struct ArbiterClient {
    pdev: OwnedDevice,
    client: Option<VgaClient<VfioPciDecoder>>,
}

impl Drop for ArbiterClient {
    fn drop(&mut self) {
        drop(self.client.take());
        vga::set_legacy_decoding(&self.pdev, Decodes::ALL);
    }
}

/// What a bound function is to the VGA code.
pub(crate) enum VgaFunction {
    /// Not VGA-class: no arbiter client, no VGA region.
    NotVga,
    /// VGA-class, an arbiter client while bound.
    Vga {
        _client: ArbiterClient,
        /// Whether user space gets the VGA region (VGA access was enabled at bind).
        region: bool,
    },
}

impl VgaFunction {
    /// The bind of `pdev` (vfio-pci's `vfio_pci_vga_init()`): a VGA-class function loses its
    /// firmware framebuffers and becomes an arbiter client reporting what it decodes.
    pub(crate) fn bind<T: VfioDeviceOps>(pdev: &OwnedDevice) -> Result<Self> {
        if !vga::is_vga(pdev) {
            return Ok(Self::NotVga);
        }
        aperture::remove_conflicting_pci_devices(pdev, T::NAME)?;
        let client = VgaClient::register(pdev)?;
        let client = ArbiterClient {
            pdev: pdev.clone(),
            client: Some(client),
        };
        vga::set_legacy_decoding(pdev, VfioPciDecoder::decodes(pdev, false));
        Ok(Self::Vga {
            _client: client,
            region: !params::disable_vga(),
        })
    }

    /// Whether user space has the VGA region.
    fn has_region(&self) -> bool {
        matches!(self, Self::Vga { region: true, .. })
    }

    /// The size and flags of the VGA region for `VFIO_DEVICE_GET_REGION_INFO`: `EINVAL` when
    /// the function has none.
    pub(crate) fn region_info(&self) -> Result<(u64, u32)> {
        if !self.has_region() {
            return Err(EINVAL);
        }
        Ok((
            REGION_SIZE,
            VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE,
        ))
    }

    /// `read(2)`/`write(2)` of the VGA region of `pdev` (vfio-pci's `vfio_pci_vga_rw()`).
    pub(crate) fn rw(&self, pdev: &OwnedDevice, xfer: Transfer) -> Result<usize> {
        if !self.has_region() {
            return Err(EINVAL);
        }
        let pos = xfer.offset;
        let range = match pos {
            0xa0000..=0xbffff => LegacyRange::Memory,
            0x3b0..=0x3bb => LegacyRange::MonoPorts,
            0x3c0..=0x3df => LegacyRange::Ports,
            _ => return Err(EINVAL),
        };
        let (start, len) = range.span();
        let count = (xfer.count as u64).min(start + len - pos) as usize;
        let mapping = LegacyMapping::new(range)?;
        let _routed = LegacyRouting::get(pdev, range)?;
        rdwr::io_rw(
            &mapping,
            Transfer {
                count,
                offset: pos - start,
                ..xfer
            },
            Width::W4,
        )
    }
}
