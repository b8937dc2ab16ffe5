// SPDX-License-Identifier: GPL-2.0

//! The reset set of a bound function, as user space can read it in sysfs: which functions a
//! slot or bus reset of it also resets, so cannot be used independently of it.
//!
//! `/sys/bus/pci/devices/BDF/vfio_pci_rs/reset_scope` is one word: `slot` (a slot reset reaches
//! the function), `bus` (a secondary bus reset), or `none` (neither is possible, as for a
//! function on a root bus).
//!
//! `/sys/bus/pci/devices/BDF/vfio_pci_rs/reset_set` has one line per function that reset
//! reaches, the function itself included, in the order the PCI core walks them:
//!
//! ```text
//! ADDRESS driver=DRIVER iommu_group=GROUP open=OPEN
//! ```
//!
//! - `ADDRESS`: `dddd:bb:dd.f`, as `pci_name()`;
//! - `DRIVER`: the driver the function is bound to, `none`, or `?` when its device lock was
//!   held (being bound, unbound or reset) so the driver could not be read;
//! - `GROUP`: the number of its IOMMU group, or `none`;
//! - `OPEN`: for a function in this function's dev_set (bound to vfio-pci-rs): `no`, `group`
//!   (opened through its VFIO group) or `cdev` (through its VFIO cdev); `-` for a function
//!   outside it (bound to another driver, or to none), which this driver cannot open, and which
//!   makes hot resets of the set fail until it is bound here.
//!
//! With no slot or bus reset (`reset_scope` is `none`), the only line is the function's own.
//! Read under the dev_set lock: the lines of the set's members are consistent with each other.

use crate::{
    dev_set::probe_hot_reset,
    device::VfioPciDevice,
    kernel_ext::{
        pci::{
            sysfs::Text,
            CurrentDriver,
            PciDeviceExt, //
        },
        vfio::{
            LockedDevSet,
            OpenPath,
            VfioDevice,
            VfioDeviceOps, //
        }, //
    }, //
};
use core::fmt::{
    self,
    Write, //
};
use kernel::{
    pci,
    prelude::*, //
};

/// `reset_scope`.
pub(crate) fn show_scope(dev: &VfioDevice<VfioPciDevice>, out: &mut Text<'_>) {
    let scope = match probe_hot_reset(dev.pdev()) {
        Ok(true) => "slot",
        Ok(false) => "bus",
        Err(_) => "none",
    };
    let _ = writeln!(out, "{scope}");
}

/// `reset_set`.
pub(crate) fn show(dev: &VfioDevice<VfioPciDevice>, out: &mut Text<'_>) {
    let pdev = dev.pdev();
    let set = LockedDevSet::lock(dev);
    match probe_hot_reset(pdev) {
        Err(_) => {
            let _ = line(out, &set, pdev);
        }
        Ok(slot) => {
            // Stops once the page is full.
            let _ = pdev
                .for_each_in_reset_scope(slot, |other| line(out, &set, other).map_err(|_| ENOSPC));
        }
    }
}

/// The line of `pdev`, a function the reset reaches.
fn line(
    out: &mut Text<'_>,
    set: &LockedDevSet<'_, VfioPciDevice>,
    pdev: &pci::Device,
) -> fmt::Result {
    write!(out, "{} driver=", pdev.address())?;
    let open = match set.find(pdev) {
        Some(member) => {
            out.write_str(
                <VfioPciDevice as VfioDeviceOps>::NAME
                    .to_str()
                    .unwrap_or("?"),
            )?;
            match member.open_path() {
                None => "no",
                Some(OpenPath::Group) => "group",
                Some(OpenPath::Cdev) => "cdev",
            }
        }
        None => {
            match pdev.current_driver() {
                CurrentDriver::None => out.write_str("none")?,
                CurrentDriver::Bound(name) => write!(out, "{name}")?,
                CurrentDriver::Busy => out.write_str("?")?,
            }
            "-"
        }
    };
    match pdev.iommu_group_id() {
        Some(group) => write!(out, " iommu_group={group}")?,
        None => out.write_str(" iommu_group=none")?,
    }
    writeln!(out, " open={open}")
}
