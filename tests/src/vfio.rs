//! Safe handles for the VFIO and IOMMUFD character devices: the legacy
//! container (/dev/vfio/vfio), a group (/dev/vfio/GROUP), a device (from
//! VFIO_GROUP_GET_DEVICE_FD or /dev/vfio/devices/vfioN) and an iommufd
//! (/dev/iommu).  One method per ioctl, returning what the kernel returned.
//!
//! Dropping a handle closes its fd.  A device fd must be closed before the
//! device is unbound: unbinding waits for every open fd.

use crate::sys::{ioctl_ptr, ioctl_val, Errno, Fail};
use crate::uapi::*;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::raw::c_ulong;
use std::os::raw::c_void;
use std::path::Path;

pub const CONTAINER_PATH: &str = "/dev/vfio/vfio";
pub const IOMMUFD_PATH: &str = "/dev/iommu";

fn open_rw(path: &Path) -> Result<File, Fail> {
    OpenOptions::new().read(true).write(true).open(path).map_err(Fail::from)
}

/// The path of a group node.
pub fn group_path(group: &str) -> String {
    format!("/dev/vfio/{group}")
}

/// The path of a device cdev.
pub fn cdev_path(name: &str) -> String {
    format!("/dev/vfio/devices/{name}")
}

/// A legacy VFIO container.
pub struct Container(File);

impl Container {
    pub fn open() -> Result<Container, Fail> {
        open_rw(Path::new(CONTAINER_PATH)).map(Container)
    }

    /// VFIO_GET_API_VERSION: the API version (0).
    pub fn api_version(&self) -> Result<i32, Errno> {
        // SAFETY: VFIO_GET_API_VERSION ignores its argument.
        unsafe { ioctl_val(&self.0, VFIO_GET_API_VERSION, 0) }
    }

    /// VFIO_CHECK_EXTENSION: 0 if unsupported, positive if supported.
    pub fn check_extension(&self, ext: c_ulong) -> Result<i32, Errno> {
        // SAFETY: VFIO_CHECK_EXTENSION takes the extension number by value.
        unsafe { ioctl_val(&self.0, VFIO_CHECK_EXTENSION, ext) }
    }

    /// VFIO_SET_IOMMU.
    pub fn set_iommu(&self, ty: c_ulong) -> Result<i32, Errno> {
        // SAFETY: VFIO_SET_IOMMU takes the IOMMU type by value.
        unsafe { ioctl_val(&self.0, VFIO_SET_IOMMU, ty) }
    }

    /// The container's fd number (an fd that is not a group, for the errno tests).
    pub fn raw_fd(&self) -> i32 {
        self.0.as_raw_fd()
    }
}

/// An open VFIO group.
pub struct Group(File);

impl AsRawFd for Group {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl Group {
    pub fn open(group: &str) -> Result<Group, Fail> {
        open_rw(Path::new(&group_path(group))).map(Group)
    }

    /// VFIO_GROUP_GET_STATUS with the given argsz.
    pub fn status(&self, argsz: u32) -> Result<VfioGroupStatus, Errno> {
        let mut st = VfioGroupStatus { argsz, flags: 0 };
        // SAFETY: the kernel reads and writes at most
        // offsetofend(vfio_group_status, flags) == size_of::<VfioGroupStatus>()
        // bytes of `st`, which lives across the call.
        unsafe { ioctl_ptr(&self.0, VFIO_GROUP_GET_STATUS, (&raw mut st).cast::<c_void>()) }?;
        Ok(st)
    }

    /// VFIO_GROUP_SET_CONTAINER.
    pub fn set_container(&self, container: &Container) -> Result<(), Errno> {
        self.set_container_fd(container.0.as_raw_fd())
    }

    /// VFIO_GROUP_SET_CONTAINER with any fd (an iommufd: the compat container).
    pub fn set_container_fd(&self, fd: i32) -> Result<(), Errno> {
        let mut fd: i32 = fd;
        // SAFETY: the argument is a pointer to an int (get_user(fd, arg)),
        // and `fd` lives across the call.
        unsafe { ioctl_ptr(&self.0, VFIO_GROUP_SET_CONTAINER, (&raw mut fd).cast::<c_void>()) }?;
        Ok(())
    }

    /// The group's fd number, for VFIO_DEVICE_PCI_HOT_RESET's group_fds[].
    pub fn raw_fd(&self) -> i32 {
        self.0.as_raw_fd()
    }

    /// VFIO_GROUP_GET_DEVICE_FD: a device fd for the device named `name`.
    pub fn get_device_fd(&self, name: &str) -> Result<Device, Fail> {
        let name = CString::new(name).map_err(|_| Fail::other("device name contains NUL"))?;
        // SAFETY: the argument is a NUL-terminated string the kernel reads
        // with strndup_user; `name` lives across the call and is not written.
        let fd = unsafe { ioctl_ptr(&self.0, VFIO_GROUP_GET_DEVICE_FD, name.as_ptr() as *mut c_void) }?;
        // SAFETY: on success the ioctl returned a new file descriptor that
        // nothing else in this process owns; OwnedFd takes sole ownership.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Device(File::from(owned)))
    }
}

/// What VFIO_DEVICE_GET_INFO returned: the bytes of the caller's buffer
/// after the call (the first `max(argsz, sizeof(vfio_device_info))`),
/// including any bytes the kernel left untouched (pre-filled with
/// `SENTINEL`), and the structure decoded from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoReply {
    pub bytes: Vec<u8>,
    pub info: VfioDeviceInfo,
}

/// The fill byte for buffers handed to INFO ioctls, to make visible which
/// bytes the kernel wrote.
pub const SENTINEL: u8 = 0xa5;

/// The largest GET_INFO reply this suite reads (fixed part plus caps).
const INFO_BUF: usize = 4096;

#[repr(C, align(8))]
struct InfoBuf([u8; INFO_BUF]);

impl InfoReply {
    /// Decode the fixed part of a vfio_device_info from `bytes`.
    pub fn decode(bytes: &[u8]) -> VfioDeviceInfo {
        let word = |i: usize| {
            let mut w = [0u8; 4];
            if let Some(b) = bytes.get(i * 4..i * 4 + 4) {
                w.copy_from_slice(b);
            }
            u32::from_ne_bytes(w)
        };
        VfioDeviceInfo {
            argsz: word(0),
            flags: word(1),
            num_regions: word(2),
            num_irqs: word(3),
            cap_offset: word(4),
            pad: word(5),
        }
    }
}

/// What VFIO_DEVICE_GET_PCI_HOT_RESET_INFO did: its result and the bytes
/// of the caller's buffer afterwards (the first `max(argsz, 12)`), which
/// matter on failure too: ENOSPC writes the header back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HotResetInfoCall {
    pub result: Result<(), Errno>,
    pub bytes: Vec<u8>,
}

impl HotResetInfoCall {
    /// The header, decoded from the buffer.
    pub fn header(&self) -> VfioPciHotResetInfo {
        let w = |i| word(&self.bytes, i);
        VfioPciHotResetInfo { argsz: w(0), flags: w(1), count: w(2) }
    }

    /// The entries the header's count announces, as far as the buffer
    /// holds them.
    pub fn devices(&self) -> Vec<VfioPciDependentDevice> {
        let base = VFIO_PCI_HOT_RESET_INFO_MINSZ as usize;
        (0..self.header().count as usize)
            .map_while(|i| {
                let e = self.bytes.get(base + i * 8..base + i * 8 + 8)?;
                Some(VfioPciDependentDevice {
                    id: u32::from_ne_bytes([e[0], e[1], e[2], e[3]]),
                    segment: u16::from_ne_bytes([e[4], e[5]]),
                    bus: e[6],
                    devfn: e[7],
                })
            })
            .collect()
    }
}

/// The `i`th native-endian u32 of `bytes` (0 past the end).
fn word(bytes: &[u8], i: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(b) = bytes.get(i * 4..i * 4 + 4) {
        w.copy_from_slice(b);
    }
    u32::from_ne_bytes(w)
}

/// An open VFIO device: either from a group or a cdev.
pub struct Device(pub(crate) File);

impl std::os::fd::AsRawFd for Device {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl Device {
    /// The device file, for read(2)/write(2) of its regions.
    pub fn file(&self) -> &File {
        &self.0
    }

    /// open(2) the device cdev; nothing is granted until BIND_IOMMUFD.
    pub fn open_cdev(name: &str) -> Result<Device, Fail> {
        open_rw(Path::new(&cdev_path(name))).map(Device)
    }

    /// VFIO_DEVICE_GET_INFO with `argsz`, in a sentinel-filled buffer.
    pub fn get_info(&self, argsz: u32) -> Result<InfoReply, Fail> {
        let len = argsz as usize;
        if len > INFO_BUF {
            return Err(Fail::other(format!("argsz {argsz} is larger than the {INFO_BUF}-byte buffer")));
        }
        let mut buf = Box::new(InfoBuf([SENTINEL; INFO_BUF]));
        buf.0[..4].copy_from_slice(&argsz.to_ne_bytes());
        // SAFETY: the kernel reads the fixed minimum (16 bytes) whatever
        // argsz says and writes at most argsz bytes (the fixed part clamped
        // to argsz, capabilities only when they fit in argsz).  The buffer is
        // INFO_BUF >= max(argsz, 24) bytes, 8-aligned, and lives across the
        // call.
        unsafe { ioctl_ptr(&self.0, VFIO_DEVICE_GET_INFO, buf.0.as_mut_ptr().cast::<c_void>()) }?;
        let shown = len.max(size_of::<VfioDeviceInfo>());
        let bytes = buf.0[..shown].to_vec();
        let info = InfoReply::decode(&bytes);
        Ok(InfoReply { bytes, info })
    }

    /// VFIO_DEVICE_GET_PCI_HOT_RESET_INFO with `argsz`, in a buffer whose
    /// header carries flags = count = 0 and whose rest is `SENTINEL`.
    pub fn hot_reset_info(&self, argsz: u32) -> Result<HotResetInfoCall, Fail> {
        let len = argsz as usize;
        if len > INFO_BUF {
            return Err(Fail::other(format!("argsz {argsz} is larger than the {INFO_BUF}-byte buffer")));
        }
        let mut buf = Box::new(InfoBuf([SENTINEL; INFO_BUF]));
        buf.0[..4].copy_from_slice(&argsz.to_ne_bytes());
        buf.0[4..12].fill(0);
        // SAFETY: the kernel reads the 12-byte header whatever argsz says
        // and writes at most argsz bytes (the header, and entries only when
        // they all fit in argsz).  The buffer is INFO_BUF >= max(argsz, 12)
        // bytes, 8-aligned, and lives across the call.
        let r = unsafe { ioctl_ptr(&self.0, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buf.0.as_mut_ptr().cast::<c_void>()) };
        let shown = len.max(VFIO_PCI_HOT_RESET_INFO_MINSZ as usize);
        Ok(HotResetInfoCall { result: r.map(|_| ()), bytes: buf.0[..shown].to_vec() })
    }

    /// VFIO_DEVICE_PCI_HOT_RESET with the given argsz and flags, and
    /// `count = group_fds.len()`.
    pub fn hot_reset(&self, argsz: u32, flags: u32, group_fds: &[i32]) -> Result<(), Errno> {
        let count = group_fds.len() as u32;
        let mut buf: Vec<u32> = vec![argsz, flags, count];
        buf.extend(group_fds.iter().map(|fd| *fd as u32));
        // SAFETY: the kernel reads the 12-byte header and then at most
        // `count` s32 group fds, which is exactly what `buf` holds (3 +
        // count u32s, 4-aligned); it writes nothing back.  `buf` lives
        // across the call.
        unsafe { ioctl_ptr(&self.0, VFIO_DEVICE_PCI_HOT_RESET, buf.as_mut_ptr().cast::<c_void>()) }?;
        Ok(())
    }

    /// VFIO_DEVICE_PCI_HOT_RESET as documented: argsz = 12 + 4 * count,
    /// flags 0.
    pub fn hot_reset_groups(&self, group_fds: &[i32]) -> Result<(), Errno> {
        self.hot_reset(VFIO_PCI_HOT_RESET_MINSZ + 4 * group_fds.len() as u32, 0, group_fds)
    }

    /// VFIO_DEVICE_RESET.
    pub fn reset(&self) -> Result<(), Errno> {
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        unsafe { ioctl_val(&self.0, VFIO_DEVICE_RESET, 0) }?;
        Ok(())
    }

    /// VFIO_DEVICE_BIND_IOMMUFD to `iommufd` (no token); returns out_devid.
    pub fn bind_iommufd(&self, iommufd: &Iommufd) -> Result<u32, Errno> {
        self.bind_iommufd_token(iommufd, None)
    }

    /// VFIO_DEVICE_BIND_IOMMUFD to `iommufd`, with VFIO_DEVICE_BIND_FLAG_TOKEN
    /// and `token` when given; returns out_devid.
    pub fn bind_iommufd_token(&self, iommufd: &Iommufd, token: Option<&[u8; 16]>) -> Result<u32, Errno> {
        self.bind_iommufd_fd(iommufd.0.as_raw_fd(), token)
    }

    /// VFIO_DEVICE_BIND_IOMMUFD with any fd number (-1 included) as `iommufd`.
    pub fn bind_iommufd_fd(&self, iommufd: i32, token: Option<&[u8; 16]>) -> Result<u32, Errno> {
        let mut bind = VfioDeviceBindIommufd {
            argsz: argsz::<VfioDeviceBindIommufd>(),
            flags: if token.is_some() { VFIO_DEVICE_BIND_FLAG_TOKEN } else { 0 },
            iommufd,
            out_devid: 0,
            token_uuid_ptr: token.map_or(0, |t| t.as_ptr() as u64),
        };
        // SAFETY: the kernel copies argsz == size_of bytes in, reads the 16
        // bytes at token_uuid_ptr when the token flag is set (`token`, alive
        // across the call), and writes out_devid back; `bind` lives across
        // the call.
        unsafe { ioctl_ptr(&self.0, VFIO_DEVICE_BIND_IOMMUFD, (&raw mut bind).cast::<c_void>()) }?;
        Ok(bind.out_devid)
    }

    /// VFIO_DEVICE_ATTACH_IOMMUFD_PT to `pt_id`; returns the pt_id the
    /// kernel wrote back (the hwpt actually attached).
    pub fn attach_pt(&self, pt_id: u32) -> Result<u32, Errno> {
        let mut at =
            VfioDeviceAttachIommufdPt { argsz: argsz::<VfioDeviceAttachIommufdPt>(), flags: 0, pt_id, pasid: 0 };
        // SAFETY: the kernel reads at most argsz == size_of bytes and writes
        // pt_id back; `at` lives across the call.
        unsafe { ioctl_ptr(&self.0, VFIO_DEVICE_ATTACH_IOMMUFD_PT, (&raw mut at).cast::<c_void>()) }?;
        Ok(at.pt_id)
    }

    /// VFIO_DEVICE_DETACH_IOMMUFD_PT.
    pub fn detach_pt(&self) -> Result<(), Errno> {
        let mut de = VfioDeviceDetachIommufdPt { argsz: argsz::<VfioDeviceDetachIommufdPt>(), flags: 0, pasid: 0 };
        // SAFETY: the kernel only reads at most argsz == size_of bytes of
        // `de`, which lives across the call.
        unsafe { ioctl_ptr(&self.0, VFIO_DEVICE_DETACH_IOMMUFD_PT, (&raw mut de).cast::<c_void>()) }?;
        Ok(())
    }
}

/// An iommufd context.
pub struct Iommufd(File);

impl Iommufd {
    pub fn open() -> Result<Iommufd, Fail> {
        open_rw(Path::new(IOMMUFD_PATH)).map(Iommufd)
    }

    /// The iommufd's fd number (for VFIO_GROUP_SET_CONTAINER).
    pub fn raw_fd(&self) -> i32 {
        self.0.as_raw_fd()
    }

    /// IOMMU_IOAS_ALLOC: the new IOAS id.
    pub fn ioas_alloc(&self) -> Result<u32, Errno> {
        let mut cmd = IommuIoasAlloc { size: argsz::<IommuIoasAlloc>(), flags: 0, out_ioas_id: 0 };
        // SAFETY: iommufd copies `size` == size_of bytes in and responds with
        // at most that many; `cmd` lives across the call.
        unsafe { ioctl_ptr(&self.0, IOMMU_IOAS_ALLOC, (&raw mut cmd).cast::<c_void>()) }?;
        Ok(cmd.out_ioas_id)
    }

    /// IOMMU_DESTROY of object `id`.
    pub fn destroy(&self, id: u32) -> Result<(), Errno> {
        let mut cmd = IommuDestroy { size: argsz::<IommuDestroy>(), id };
        // SAFETY: iommufd copies `size` == size_of bytes in and writes
        // nothing back; `cmd` lives across the call.
        unsafe { ioctl_ptr(&self.0, IOMMU_DESTROY, (&raw mut cmd).cast::<c_void>()) }?;
        Ok(())
    }
}
