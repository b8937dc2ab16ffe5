//! The VFIO and IOMMUFD user-space ABI this suite speaks
//! (include/uapi/linux/vfio.h and include/uapi/linux/iommufd.h), under the
//! suite's names: thin aliases of rust-vmm's `vfio-bindings` (0.7, the
//! 7.x-era header with the VF token and PASID fields) and `iommufd-bindings`
//! (0.2) where the generated item fits the suite's use as it is.
//!
//! Kept by hand, and why:
//! - the ioctl request numbers: bindgen does not translate the headers'
//!   `_IO()` macros, so neither crate has them (vfio-ioctls keeps its own
//!   private); every one is `_IO(';', nr)` (libc's `_IO`) with the header's
//!   `nr`;
//! - `VfioDeviceInfo`: the suite compares GET_INFO replies with `Eq`, which
//!   bindgen does not derive;
//! - `VfioPciHotResetInfo`: the suite builds and compares the bare 12-byte
//!   header, while the generated one carries the flexible `devices[]`
//!   member (and no `PartialEq`);
//! - `VfioPciDependentDevice`: the generated one spells the group_id/devid
//!   union as an anonymous `__bindgen_anon_1` union; the suite's `id` is
//!   the one u32 both members are;
//! - a few constants whose generated type differs (the IOMMU types are
//!   `unsigned long` ioctl arguments here, `VFIO_PCI_DEVID_NOT_OWNED` the
//!   u32 the kernel writes) are the generated values, cast.
//!
//! The layouts are checked against the headers' sizes at compile time.

#![allow(non_upper_case_globals)] // keep the header's spelling (VFIO_TYPE1v2_IOMMU)

use iommufd_bindings::iommufd as iommufd_h;
use std::mem::{offset_of, size_of};
use std::os::raw::c_ulong;
use vfio_bindings::bindings::vfio as vfio_h;

/// `_IO(type, nr)` from include/uapi/asm-generic/ioctl.h: no direction, no
/// size, so just `type << 8 | nr`.
pub const fn io(ty: u8, nr: u8) -> c_ulong {
    libc::_IO(ty as u32, nr as u32) as c_ulong
}

pub const VFIO_TYPE: u8 = vfio_h::VFIO_TYPE;
pub const VFIO_BASE: u8 = vfio_h::VFIO_BASE as u8;
pub const IOMMUFD_TYPE: u8 = iommufd_h::IOMMUFD_TYPE;
pub const IOMMUFD_CMD_BASE: u8 = iommufd_h::IOMMUFD_CMD_BASE as u8;

pub const VFIO_API_VERSION: i32 = vfio_h::VFIO_API_VERSION as i32;

// Extensions (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU).
pub const VFIO_TYPE1_IOMMU: c_ulong = vfio_h::VFIO_TYPE1_IOMMU as c_ulong;
pub const VFIO_TYPE1v2_IOMMU: c_ulong = vfio_h::VFIO_TYPE1v2_IOMMU as c_ulong;
pub const VFIO_NOIOMMU_IOMMU: c_ulong = vfio_h::VFIO_NOIOMMU_IOMMU as c_ulong;

// Container ioctls (/dev/vfio/vfio).
pub const VFIO_GET_API_VERSION: c_ulong = io(VFIO_TYPE, VFIO_BASE);
pub const VFIO_CHECK_EXTENSION: c_ulong = io(VFIO_TYPE, VFIO_BASE + 1);
pub const VFIO_SET_IOMMU: c_ulong = io(VFIO_TYPE, VFIO_BASE + 2);

// Group ioctls (/dev/vfio/$GROUP).
pub const VFIO_GROUP_GET_STATUS: c_ulong = io(VFIO_TYPE, VFIO_BASE + 3);
pub const VFIO_GROUP_SET_CONTAINER: c_ulong = io(VFIO_TYPE, VFIO_BASE + 4);
pub const VFIO_GROUP_UNSET_CONTAINER: c_ulong = io(VFIO_TYPE, VFIO_BASE + 5);
pub const VFIO_GROUP_GET_DEVICE_FD: c_ulong = io(VFIO_TYPE, VFIO_BASE + 6);

// Device ioctls (group-path device fd or /dev/vfio/devices/vfioN).
pub const VFIO_DEVICE_GET_INFO: c_ulong = io(VFIO_TYPE, VFIO_BASE + 7);
pub const VFIO_DEVICE_GET_REGION_INFO: c_ulong = io(VFIO_TYPE, VFIO_BASE + 8);
pub const VFIO_DEVICE_GET_IRQ_INFO: c_ulong = io(VFIO_TYPE, VFIO_BASE + 9);
pub const VFIO_DEVICE_SET_IRQS: c_ulong = io(VFIO_TYPE, VFIO_BASE + 10);
pub const VFIO_DEVICE_RESET: c_ulong = io(VFIO_TYPE, VFIO_BASE + 11);
pub const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: c_ulong = io(VFIO_TYPE, VFIO_BASE + 12);
pub const VFIO_DEVICE_PCI_HOT_RESET: c_ulong = io(VFIO_TYPE, VFIO_BASE + 13);
pub const VFIO_DEVICE_IOEVENTFD: c_ulong = io(VFIO_TYPE, VFIO_BASE + 16);
pub const VFIO_DEVICE_FEATURE: c_ulong = io(VFIO_TYPE, VFIO_BASE + 17);
pub const VFIO_DEVICE_BIND_IOMMUFD: c_ulong = io(VFIO_TYPE, VFIO_BASE + 18);
pub const VFIO_DEVICE_ATTACH_IOMMUFD_PT: c_ulong = io(VFIO_TYPE, VFIO_BASE + 19);
pub const VFIO_DEVICE_DETACH_IOMMUFD_PT: c_ulong = io(VFIO_TYPE, VFIO_BASE + 20);

// IOMMUFD ioctls (/dev/iommu).
pub const IOMMU_DESTROY: c_ulong = io(IOMMUFD_TYPE, IOMMUFD_CMD_BASE);
pub const IOMMU_IOAS_ALLOC: c_ulong = io(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 1);

/// struct vfio_group_status
pub type VfioGroupStatus = vfio_h::vfio_group_status;
pub const VFIO_GROUP_FLAGS_VIABLE: u32 = vfio_h::VFIO_GROUP_FLAGS_VIABLE;
pub const VFIO_GROUP_FLAGS_CONTAINER_SET: u32 = vfio_h::VFIO_GROUP_FLAGS_CONTAINER_SET;

/// struct vfio_device_info (by hand: the suite needs `Eq`)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfioDeviceInfo {
    pub argsz: u32,
    pub flags: u32,
    pub num_regions: u32,
    pub num_irqs: u32,
    pub cap_offset: u32,
    pub pad: u32,
}
pub const VFIO_DEVICE_FLAGS_RESET: u32 = vfio_h::VFIO_DEVICE_FLAGS_RESET;
pub const VFIO_DEVICE_FLAGS_PCI: u32 = vfio_h::VFIO_DEVICE_FLAGS_PCI;
pub const VFIO_DEVICE_FLAGS_CAPS: u32 = vfio_h::VFIO_DEVICE_FLAGS_CAPS;
/// The fixed ABI of vfio-pci: BAR0-5, ROM, config, VGA.
pub const VFIO_PCI_NUM_REGIONS: u32 = vfio_h::VFIO_PCI_NUM_REGIONS;
/// INTx, MSI, MSI-X, ERR, REQ.
pub const VFIO_PCI_NUM_IRQS: u32 = vfio_h::VFIO_PCI_NUM_IRQS;
/// `offsetofend(struct vfio_device_info, num_irqs)`: the smallest argsz
/// VFIO_DEVICE_GET_INFO accepts (vfio_pci_ioctl_get_info's minsz).
pub const VFIO_DEVICE_INFO_MINSZ: u32 = (offset_of!(VfioDeviceInfo, num_irqs) + 4) as u32;

/// struct vfio_info_cap_header
pub type VfioInfoCapHeader = vfio_h::vfio_info_cap_header;

/// VFIO_DEVICE_BIND_IOMMUFD: token_uuid_ptr points to a VF token.
pub const VFIO_DEVICE_BIND_FLAG_TOKEN: u32 = vfio_h::VFIO_DEVICE_BIND_FLAG_TOKEN;

/// struct vfio_device_bind_iommufd (token_uuid_ptr is __aligned_u64)
pub type VfioDeviceBindIommufd = vfio_h::vfio_device_bind_iommufd;

/// struct vfio_device_attach_iommufd_pt
pub type VfioDeviceAttachIommufdPt = vfio_h::vfio_device_attach_iommufd_pt;

/// struct vfio_device_detach_iommufd_pt
pub type VfioDeviceDetachIommufdPt = vfio_h::vfio_device_detach_iommufd_pt;

/// struct vfio_pci_hot_reset_info, without its flexible `devices[]` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfioPciHotResetInfo {
    pub argsz: u32,
    pub flags: u32,
    pub count: u32,
}
/// The entries carry dev_ids (cdev-opened caller), not group ids.
pub const VFIO_PCI_HOT_RESET_FLAG_DEV_ID: u32 = vfio_h::VFIO_PCI_HOT_RESET_FLAG_DEV_ID;
/// Every affected function is owned by the caller's iommufd.
pub const VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED: u32 = vfio_h::VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
/// `offsetofend(struct vfio_pci_hot_reset_info, count)`.
pub const VFIO_PCI_HOT_RESET_INFO_MINSZ: u32 = 12;

/// struct vfio_pci_dependent_device: `id` is the union of group_id and devid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfioPciDependentDevice {
    pub id: u32,
    pub segment: u16,
    pub bus: u8,
    pub devfn: u8,
}
/// devid of an affected function that is not opened but whose group the
/// caller's iommufd owns.
pub const VFIO_PCI_DEVID_OWNED: u32 = vfio_h::VFIO_PCI_DEVID_OWNED;
/// devid of an affected function the caller's iommufd does not own.
pub const VFIO_PCI_DEVID_NOT_OWNED: u32 = vfio_h::VFIO_PCI_DEVID_NOT_OWNED as u32;

/// struct vfio_pci_hot_reset (its flexible `group_fds[]` array is zero-sized)
pub type VfioPciHotReset = vfio_h::vfio_pci_hot_reset;
/// `offsetofend(struct vfio_pci_hot_reset, count)`.
pub const VFIO_PCI_HOT_RESET_MINSZ: u32 = 12;

/// struct iommu_ioas_alloc
pub type IommuIoasAlloc = iommufd_h::iommu_ioas_alloc;

/// struct iommu_destroy
pub type IommuDestroy = iommufd_h::iommu_destroy;

// The sizes the headers define; a mismatch is a transcription error.
const _: () = assert!(size_of::<VfioGroupStatus>() == 8);
const _: () = assert!(size_of::<VfioDeviceInfo>() == 24);
const _: () = assert!(VFIO_DEVICE_INFO_MINSZ == 16);
const _: () = assert!(size_of::<VfioInfoCapHeader>() == 8);
const _: () = assert!(size_of::<VfioDeviceBindIommufd>() == 24);
const _: () = assert!(offset_of!(VfioDeviceBindIommufd, token_uuid_ptr) == 16);
const _: () = assert!(size_of::<VfioDeviceAttachIommufdPt>() == 16);
const _: () = assert!(size_of::<VfioDeviceDetachIommufdPt>() == 12);
const _: () = assert!(size_of::<VfioPciHotResetInfo>() == VFIO_PCI_HOT_RESET_INFO_MINSZ as usize);
const _: () = assert!(size_of::<VfioPciDependentDevice>() == 8);
const _: () = assert!(offset_of!(VfioPciDependentDevice, devfn) == 7);
const _: () = assert!(size_of::<VfioPciHotReset>() == VFIO_PCI_HOT_RESET_MINSZ as usize);
const _: () = assert!(size_of::<IommuIoasAlloc>() == 12);
const _: () = assert!(size_of::<IommuDestroy>() == 8);

/// `size_of::<T>()` as the u32 the `argsz`/`size` fields want.
pub const fn argsz<T>() -> u32 {
    size_of::<T>() as u32
}

// The IRQ indexes and SET_IRQS flags, the FEATURE flags and features, and the IOEVENTFD size
// flag, as vfio.h numbers them.
pub const VFIO_PCI_INTX_IRQ_INDEX: u32 = 0;
pub const VFIO_PCI_MSI_IRQ_INDEX: u32 = 1;
pub const VFIO_PCI_MSIX_IRQ_INDEX: u32 = 2;
pub const VFIO_IRQ_SET_DATA_NONE: u32 = 1 << 0;
pub const VFIO_IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
pub const VFIO_IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;
pub const VFIO_DEVICE_FEATURE_GET: u32 = 1 << 16;
pub const VFIO_DEVICE_FEATURE_SET: u32 = 1 << 17;
pub const VFIO_DEVICE_FEATURE_PROBE: u32 = 1 << 18;
pub const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY: u32 = 3;
pub const VFIO_DEVICE_FEATURE_DMA_BUF: u32 = 11;
pub const VFIO_DEVICE_IOEVENTFD_32: u32 = 1 << 2;
