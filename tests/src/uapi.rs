//! The VFIO and IOMMUFD user-space ABI this suite speaks, transcribed from
//! include/uapi/linux/vfio.h and include/uapi/linux/iommufd.h.
//!
//! Every ioctl in both headers is `_IO(';', nr)`: the direction and size
//! bits are zero and the structure carries its own `argsz`/`size`.  The
//! layouts below are checked against the headers' sizes at compile time.

#![allow(non_upper_case_globals)] // keep the header's spelling (VFIO_TYPE1v2_IOMMU)

use std::mem::{offset_of, size_of};
use std::os::raw::c_ulong;

/// `_IO(type, nr)` from include/uapi/asm-generic/ioctl.h: no direction, no
/// size, so just `type << 8 | nr`.
pub const fn io(ty: u8, nr: u8) -> c_ulong {
    ((ty as c_ulong) << 8) | nr as c_ulong
}

pub const VFIO_TYPE: u8 = b';';
pub const VFIO_BASE: u8 = 100;
pub const IOMMUFD_TYPE: u8 = b';';
pub const IOMMUFD_CMD_BASE: u8 = 0x80;

pub const VFIO_API_VERSION: i32 = 0;

// Extensions (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU).
pub const VFIO_TYPE1_IOMMU: c_ulong = 1;
pub const VFIO_TYPE1v2_IOMMU: c_ulong = 3;

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
pub const VFIO_DEVICE_RESET: c_ulong = io(VFIO_TYPE, VFIO_BASE + 11);
pub const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: c_ulong = io(VFIO_TYPE, VFIO_BASE + 12);
pub const VFIO_DEVICE_PCI_HOT_RESET: c_ulong = io(VFIO_TYPE, VFIO_BASE + 13);
pub const VFIO_DEVICE_FEATURE: c_ulong = io(VFIO_TYPE, VFIO_BASE + 17);
pub const VFIO_DEVICE_BIND_IOMMUFD: c_ulong = io(VFIO_TYPE, VFIO_BASE + 18);
pub const VFIO_DEVICE_ATTACH_IOMMUFD_PT: c_ulong = io(VFIO_TYPE, VFIO_BASE + 19);
pub const VFIO_DEVICE_DETACH_IOMMUFD_PT: c_ulong = io(VFIO_TYPE, VFIO_BASE + 20);

// IOMMUFD ioctls (/dev/iommu).
pub const IOMMU_DESTROY: c_ulong = io(IOMMUFD_TYPE, IOMMUFD_CMD_BASE);
pub const IOMMU_IOAS_ALLOC: c_ulong = io(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 1);

/// struct vfio_group_status
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfioGroupStatus {
    pub argsz: u32,
    pub flags: u32,
}
pub const VFIO_GROUP_FLAGS_VIABLE: u32 = 1 << 0;
pub const VFIO_GROUP_FLAGS_CONTAINER_SET: u32 = 1 << 1;

/// struct vfio_device_info
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
pub const VFIO_DEVICE_FLAGS_RESET: u32 = 1 << 0;
pub const VFIO_DEVICE_FLAGS_PCI: u32 = 1 << 1;
pub const VFIO_DEVICE_FLAGS_CAPS: u32 = 1 << 7;
/// The fixed ABI of vfio-pci: BAR0-5, ROM, config, VGA.
pub const VFIO_PCI_NUM_REGIONS: u32 = 9;
/// INTx, MSI, MSI-X, ERR, REQ.
pub const VFIO_PCI_NUM_IRQS: u32 = 5;
/// `offsetofend(struct vfio_device_info, num_irqs)`: the smallest argsz
/// VFIO_DEVICE_GET_INFO accepts (vfio_pci_ioctl_get_info's minsz).
pub const VFIO_DEVICE_INFO_MINSZ: u32 = (offset_of!(VfioDeviceInfo, num_irqs) + 4) as u32;

/// struct vfio_info_cap_header
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfioInfoCapHeader {
    pub id: u16,
    pub version: u16,
    pub next: u32,
}

/// VFIO_DEVICE_BIND_IOMMUFD: token_uuid_ptr points to a VF token.
pub const VFIO_DEVICE_BIND_FLAG_TOKEN: u32 = 1 << 0;

/// struct vfio_device_bind_iommufd (token_uuid_ptr is __aligned_u64)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfioDeviceBindIommufd {
    pub argsz: u32,
    pub flags: u32,
    pub iommufd: i32,
    pub out_devid: u32,
    pub token_uuid_ptr: u64,
}

/// struct vfio_device_attach_iommufd_pt
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfioDeviceAttachIommufdPt {
    pub argsz: u32,
    pub flags: u32,
    pub pt_id: u32,
    pub pasid: u32,
}

/// struct vfio_device_detach_iommufd_pt
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfioDeviceDetachIommufdPt {
    pub argsz: u32,
    pub flags: u32,
    pub pasid: u32,
}

/// struct vfio_pci_hot_reset_info, without its flexible `devices[]` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfioPciHotResetInfo {
    pub argsz: u32,
    pub flags: u32,
    pub count: u32,
}
/// The entries carry dev_ids (cdev-opened caller), not group ids.
pub const VFIO_PCI_HOT_RESET_FLAG_DEV_ID: u32 = 1 << 0;
/// Every affected function is owned by the caller's iommufd.
pub const VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED: u32 = 1 << 1;
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
pub const VFIO_PCI_DEVID_OWNED: u32 = 0;
/// devid of an affected function the caller's iommufd does not own.
pub const VFIO_PCI_DEVID_NOT_OWNED: u32 = 0xffff_ffff;

/// struct vfio_pci_hot_reset, without its flexible `group_fds[]` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfioPciHotReset {
    pub argsz: u32,
    pub flags: u32,
    pub count: u32,
}
/// `offsetofend(struct vfio_pci_hot_reset, count)`.
pub const VFIO_PCI_HOT_RESET_MINSZ: u32 = 12;

/// struct iommu_ioas_alloc
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IommuIoasAlloc {
    pub size: u32,
    pub flags: u32,
    pub out_ioas_id: u32,
}

/// struct iommu_destroy
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IommuDestroy {
    pub size: u32,
    pub id: u32,
}

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
