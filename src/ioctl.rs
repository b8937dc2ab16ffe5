// SPDX-License-Identifier: GPL-2.0

//! The device-level ioctls: `VFIO_DEVICE_GET_INFO` (its capability chain comes from
//! [`crate::info_caps`]) and `VFIO_DEVICE_RESET`. The wiring
//! ([`crate::device`]) routes every `VFIO_DEVICE_*` ioctl to its concern's handler, these two
//! to here.
//!
//! Each handler copies the fixed part of its argument in, checks `argsz` in one place, acts,
//! and copies the result out, returning the errno vfio-pci returns for the same input. Nothing
//! changes on an error path.

use crate::{
    info_caps::{
        self,
        AtomicCompleter, //
    },
    kernel_ext::{
        pci::{
            config::PowerState,
            OwnedDevice, //
        },
        sync::RwSem,
        uaccess,
        vfio::{
            uapi,
            FileMappings, //
        }, //
    },
    memory::{
        self,
        MemoryGate, //
    }, //
};
use core::mem::{
    offset_of,
    size_of, //
};
use kernel::{
    prelude::*,
    transmute::AsBytes,
    uaccess::UserPtr, //
};

/// `VFIO_DEVICE_GET_INFO`: the device's flags, its numbers of regions and interrupts, and the
/// capability chain of `pdev`, whose physical function completes the AtomicOps of `completer`
/// ([`info_caps::chain`]); `reset_works` says (once the argument is in) whether a
/// function-level reset worked at open. As in vfio-pci, a chain sets
/// `VFIO_DEVICE_FLAGS_CAPS`; it is copied after the fixed reply, with `cap_offset` pointing to
/// it, when `argsz` leaves room for it, and otherwise `argsz` comes back as the size needed
/// (`cap_offset` 0).
pub(crate) fn get_info(
    arg: UserPtr,
    pdev: &OwnedDevice,
    completer: AtomicCompleter,
    reset_works: impl FnOnce() -> bool,
) -> Result<isize> {
    const MINSZ: usize = offset_of!(uapi::vfio_device_info, num_irqs) + size_of::<u32>();
    const INFO_SIZE: usize = size_of::<uapi::vfio_device_info>();
    let mut info: uapi::vfio_device_info = uapi::copy_in(arg, MINSZ)?;
    let argsz = info.argsz as usize;

    info.flags = uapi::VFIO_DEVICE_FLAGS_PCI;
    if reset_works() {
        info.flags |= uapi::VFIO_DEVICE_FLAGS_RESET;
    }
    info.num_regions = uapi::VFIO_PCI_NUM_REGIONS;
    info.num_irqs = uapi::VFIO_PCI_NUM_IRQS;

    if let Some(cap) = info_caps::chain(completer, pdev) {
        let caps = cap.as_bytes();
        info.flags |= uapi::VFIO_DEVICE_FLAGS_CAPS;
        let needed = INFO_SIZE + caps.len();
        if argsz < needed {
            info.argsz = u32::try_from(needed)?;
        } else {
            uaccess::copy_to_user(arg.wrapping_byte_add(INFO_SIZE), caps)?;
            info.cap_offset = INFO_SIZE as u32;
        }
    }

    uapi::copy_out(arg, &info, argsz)?;
    Ok(0)
}

/// `VFIO_DEVICE_RESET`: a function-level reset (FLR, PM, slot or bus, whichever the PCI core
/// finds for this function alone) of `pdev`, with its memory gate `memory` held and the BARs'
/// user mappings in the device file's `mappings` removed for the duration; `EINVAL` unless a
/// function-level reset worked at open (`reset_works`). A function user space left in D3hot is
/// brought to D0 first, with the state it lost there: the reset would bring it to D0 without
/// that state (and a PM reset fails outside D0).
pub(crate) fn reset(
    reset_works: bool,
    pdev: &OwnedDevice,
    memory: &RwSem<MemoryGate>,
    mappings: &FileMappings,
) -> Result<isize> {
    if !reset_works {
        return Err(EINVAL);
    }
    let mut gate = memory::lock_and_zap(memory, mappings);
    // Failures are left for the reset to report, as in vfio-pci.
    let _ = gate.set_power_state(pdev, PowerState::D0);
    let result = pdev.try_reset_function();
    crate::dma_buf::restore(&mut gate, pdev);
    result.map(|()| 0)
}
