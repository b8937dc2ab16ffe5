// SPDX-License-Identifier: GPL-2.0

//! The VFIO core's driver interface (`include/linux/vfio.h`): a device with the driver's state
//! embedded, its ops table built from a trait, and registration; and the uAPI.

mod dev_set;
mod device;
pub(crate) mod irq;
mod mmap;
pub(crate) mod region;
pub(crate) mod uapi;
pub(crate) mod virqfd;

pub(crate) use dev_set::{
    DevSetKey,
    LockedDevSet,
    OpenPath,
    SetMember, //
};
pub(crate) use device::{
    FileMappings,
    InfoCaps,
    Registration,
    VfioDevice,
    VfioDeviceOps, //
};
