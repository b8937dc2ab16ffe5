//! The thin layer under everything else: the libc entry points std does not
//! wrap (`ioctl`, `syscall`, `mmap`, from the `libc` crate), errno values
//! and their names, the failure type the helpers return, and device-number
//! arithmetic.
//!
//! The calls into libc are confined to this file: the two ioctl helpers are
//! `unsafe fn`s with a contract (the typed, safe wrappers that honour it live
//! in vfio.rs), the two module syscalls take only slices and C strings and
//! are safe, and `Mmio` owns a shared mapping of a device file (a BAR's
//! sysfs `resourceN`) and only reads and writes inside it.
//!
//! Kept by hand: the errno names (libc has the numbers but not the names,
//! and some of the values the suite may see are kernel-internal ones no
//! libc knows: ERESTARTSYS, ENOIOCTLCMD, ENOTSUPP).

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::os::raw::{c_char, c_int, c_long, c_ulong, c_void};

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
compile_error!("vfio-pci-rs-tests targets the x86_64 Linux guest only");

/// `O_NONBLOCK` for delete_module(2), as rmmod passes it.
const O_NONBLOCK: c_long = libc::O_NONBLOCK as c_long;

/// An errno value as returned by a failed system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub const EPERM: Errno = Errno(libc::EPERM);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const EBADF: Errno = Errno(libc::EBADF);
    pub const EFAULT: Errno = Errno(libc::EFAULT);
    pub const EAGAIN: Errno = Errno(libc::EAGAIN);
    pub const EACCES: Errno = Errno(libc::EACCES);
    pub const EBUSY: Errno = Errno(libc::EBUSY);
    pub const EEXIST: Errno = Errno(libc::EEXIST);
    pub const ENODEV: Errno = Errno(libc::ENODEV);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const ENOTTY: Errno = Errno(libc::ENOTTY);
    pub const ENOSPC: Errno = Errno(libc::ENOSPC);
    pub const ERANGE: Errno = Errno(libc::ERANGE);

    /// The errno the last failed libc call left behind.
    pub fn last() -> Errno {
        Errno(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The symbolic name (`EBUSY`), if the value is a known Linux errno.
    pub fn name(self) -> Option<&'static str> {
        ERRNO_NAMES.iter().find(|(v, _)| *v == self.0).map(|(_, n)| *n)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "errno {}", self.0),
        }
    }
}

/// Linux errno values (include/uapi/asm-generic/errno*.h, and the
/// kernel-internal ones that have been known to leak to user space).
const ERRNO_NAMES: &[(i32, &str)] = &[
    (1, "EPERM"),
    (2, "ENOENT"),
    (3, "ESRCH"),
    (4, "EINTR"),
    (5, "EIO"),
    (6, "ENXIO"),
    (7, "E2BIG"),
    (8, "ENOEXEC"),
    (9, "EBADF"),
    (10, "ECHILD"),
    (11, "EAGAIN"),
    (12, "ENOMEM"),
    (13, "EACCES"),
    (14, "EFAULT"),
    (15, "ENOTBLK"),
    (16, "EBUSY"),
    (17, "EEXIST"),
    (18, "EXDEV"),
    (19, "ENODEV"),
    (20, "ENOTDIR"),
    (21, "EISDIR"),
    (22, "EINVAL"),
    (23, "ENFILE"),
    (24, "EMFILE"),
    (25, "ENOTTY"),
    (26, "ETXTBSY"),
    (27, "EFBIG"),
    (28, "ENOSPC"),
    (29, "ESPIPE"),
    (30, "EROFS"),
    (31, "EMLINK"),
    (32, "EPIPE"),
    (33, "EDOM"),
    (34, "ERANGE"),
    (35, "EDEADLK"),
    (36, "ENAMETOOLONG"),
    (37, "ENOLCK"),
    (38, "ENOSYS"),
    (39, "ENOTEMPTY"),
    (40, "ELOOP"),
    (42, "ENOMSG"),
    (43, "EIDRM"),
    (61, "ENODATA"),
    (62, "ETIME"),
    (71, "EPROTO"),
    (74, "EBADMSG"),
    (75, "EOVERFLOW"),
    (77, "EBADFD"),
    (95, "EOPNOTSUPP"),
    (110, "ETIMEDOUT"),
    (114, "EALREADY"),
    (115, "EINPROGRESS"),
    (121, "EREMOTEIO"),
    (125, "ECANCELED"),
    (512, "ERESTARTSYS"),
    (515, "ENOIOCTLCMD"),
    (517, "EPROBE_DEFER"),
    (524, "ENOTSUPP"),
];

/// Why a helper failed: a system call's errno (the observable result the
/// transcripts record), or something that is not an errno at all (a sysfs
/// file with unexpected contents, a missing configuration value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fail {
    Os(Errno),
    Other(String),
}

impl Fail {
    pub fn other(msg: impl Into<String>) -> Fail {
        Fail::Other(msg.into())
    }

    /// The errno, if this failure carries one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Fail::Os(e) => Some(*e),
            Fail::Other(_) => None,
        }
    }
}

impl From<Errno> for Fail {
    fn from(e: Errno) -> Fail {
        Fail::Os(e)
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        match e.raw_os_error() {
            Some(n) => Fail::Os(Errno(n)),
            None => Fail::Other(e.to_string()),
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Os(e) => e.fmt(f),
            Fail::Other(s) => f.write_str(s),
        }
    }
}

/// Issue `request` on `fd` with a pointer argument; returns the
/// non-negative return value or the errno.
///
/// # Safety
///
/// `arg` must point to memory that is valid for every read and write the
/// kernel performs for `request` on this kind of file, for the duration of
/// the call: in practice, a live `#[repr(C)]` value of the uAPI type the
/// request documents, or a buffer at least as large as the `argsz` it
/// carries (and never smaller than the fixed part of the structure).
pub unsafe fn ioctl_ptr(fd: &impl AsRawFd, request: c_ulong, arg: *mut c_void) -> Result<c_int, Errno> {
    // SAFETY: ioctl(2) itself only uses the integer fd and request; what it
    // does with `arg` is exactly what the caller vouched for above.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// Issue `request` on `fd` with an integer argument (or none: pass 0).
///
/// # Safety
///
/// `request` must take its argument by value on this kind of file (e.g.
/// VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU) or ignore it
/// (VFIO_GET_API_VERSION): the kernel must not dereference `arg`.
pub unsafe fn ioctl_val(fd: &impl AsRawFd, request: c_ulong, arg: c_ulong) -> Result<c_int, Errno> {
    // SAFETY: the caller guarantees the kernel treats `arg` as a plain
    // integer, so no memory of ours is read or written.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// init_module(2): load the module image `image` with parameter string
/// `params` (what busybox insmod does; works whatever filesystem the module
/// file lives on).
pub fn init_module(image: &[u8], params: &CStr) -> Result<(), Errno> {
    let len = image.len() as c_ulong;
    let image: *const c_void = image.as_ptr().cast();
    let params: *const c_char = params.as_ptr();
    // SAFETY: init_module(void *image, unsigned long len, const char *params)
    // reads `len` bytes at `image` (the whole slice) and the NUL-terminated
    // string `params`; both outlive the call and neither is written.
    let ret = unsafe { libc::syscall(libc::SYS_init_module, image, len, params) };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// eventfd2(2) with initial count 0 and no flags: a new eventfd.
pub fn new_eventfd() -> Result<std::os::fd::OwnedFd, Errno> {
    // SAFETY: eventfd(unsigned int initval, int flags) takes two integers
    // and returns a new file descriptor or -1.
    let ret = unsafe { libc::eventfd(0, 0) };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: on success the call returned a new fd nothing else owns.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ret) })
}

/// One read(2) of an 8-byte value, as an eventfd's counter is read (the read
/// resets it); through the caller's descriptor, without duplicating it.
pub fn read_u64(fd: &impl AsRawFd) -> Result<u64, Fail> {
    let mut value = 0u64;
    // SAFETY: read(2) writes at most 8 bytes into `value`, which is 8 bytes
    // long and lives across the call.
    let n = unsafe { libc::read(fd.as_raw_fd(), (&mut value as *mut u64).cast::<c_void>(), 8) };
    match n {
        8 => Ok(value),
        n if n < 0 => Err(Fail::Os(Errno::last())),
        n => Err(Fail::other(format!("short read: {n} of 8 bytes"))),
    }
}

/// Puts the terminal `tty` in raw mode (no echo, no line editing, no CR/LF translation), its
/// reads returning after at most a tenth of a second with what arrived (VMIN 0, VTIME 1), and
/// drops whatever it had queued in either direction: a serial line used as a byte channel.
pub fn make_raw_tty(tty: &impl AsRawFd) -> Result<(), Errno> {
    // SAFETY: termios is plain data (integers and arrays); all zeroes is a valid value, which
    // tcgetattr overwrites.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr(int fd, struct termios *t) writes one termios into `t`, which lives
    // across the call.
    if unsafe { libc::tcgetattr(tty.as_raw_fd(), &mut t) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: cfmakeraw only changes the fields of the termios it is given.
    unsafe { libc::cfmakeraw(&mut t) };
    t.c_cc[libc::VMIN] = 0;
    t.c_cc[libc::VTIME] = 1;
    // SAFETY: tcsetattr reads the termios at `t`, which lives across the call; tcflush takes
    // two integers.
    let ret = unsafe {
        if libc::tcsetattr(tty.as_raw_fd(), libc::TCSANOW, &t) < 0 {
            -1
        } else {
            libc::tcflush(tty.as_raw_fd(), libc::TCIOFLUSH)
        }
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// delete_module(2) with O_NONBLOCK, as rmmod does.
pub fn delete_module(name: &CStr) -> Result<(), Errno> {
    let name: *const c_char = name.as_ptr();
    // SAFETY: delete_module(const char *name, unsigned flags) reads only the
    // NUL-terminated string `name`, which outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_delete_module, name, O_NONBLOCK) };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

use libc::{MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE};
const PAGE_SIZE: usize = 4096;

/// A `MAP_SHARED`, read/write mapping of the first `len` bytes of a file
/// (in this suite, a BAR through /sys/bus/pci/devices/BDF/resourceN), with
/// bounds-checked 32-bit volatile accessors.  Unmapped on drop.
pub struct Mmio {
    ptr: *mut u8,
    len: usize,
}

impl Mmio {
    /// Map the first `len` bytes (rounded up to whole pages) of `file`,
    /// which must be open for reading and writing.
    pub fn map_shared(file: &impl AsRawFd, len: usize) -> Result<Mmio, Errno> {
        Mmio::map_at(file, 0, len, true)
    }

    /// Map `len` bytes (rounded up to whole pages) of `file` at file offset
    /// `offset`, shared or private.
    pub fn map_at(file: &impl AsRawFd, offset: u64, len: usize, shared: bool) -> Result<Mmio, Errno> {
        let len = len.div_ceil(PAGE_SIZE).max(1) * PAGE_SIZE;
        let flags = if shared { MAP_SHARED } else { MAP_PRIVATE };
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL) overlaps
        // nothing of ours; the fd is only used by the call.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), len, PROT_READ | PROT_WRITE, flags, file.as_raw_fd(), offset as i64)
        };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(Mmio { ptr: p.cast::<u8>(), len })
    }

    fn at(&self, offset: usize) -> Option<*mut u32> {
        if offset % 4 != 0 || offset.checked_add(4)? > self.len {
            return None;
        }
        Some(self.ptr.wrapping_add(offset).cast::<u32>())
    }

    /// Read the 32-bit register at `offset`; None when it lies outside the
    /// mapping or is misaligned.
    pub fn read32(&self, offset: usize) -> Option<u32> {
        let p = self.at(offset)?;
        // SAFETY: `p` is 4-aligned and lies inside the live mapping (checked
        // by `at`); device memory must be read with one volatile access.
        Some(unsafe { p.read_volatile() })
    }

    /// Write the 32-bit register at `offset`; None when it lies outside the
    /// mapping or is misaligned.
    pub fn write32(&self, offset: usize, value: u32) -> Option<()> {
        let p = self.at(offset)?;
        // SAFETY: as in `read32`; the mapping is writable (PROT_WRITE) and
        // shared, so the store reaches the device.
        unsafe { p.write_volatile(value) };
        Some(())
    }
}

/// How a touch of a mapping in a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildTouch {
    /// The read completed (the value is not kept: it may differ between runs).
    Read,
    /// The child was killed by this signal (`SIGBUS` for a refused fault).
    Signal(i32),
    /// The child exited otherwise (with this status).
    Exit(i32),
}

impl Mmio {
    /// Read the 32-bit register at `offset` in a forked child, so that a
    /// fault the driver refuses (SIGBUS) kills the child, not the test.
    pub fn read32_in_child(&self, offset: usize) -> Result<ChildTouch, Fail> {
        let p = self.at(offset).ok_or_else(|| Fail::other("outside the mapping"))?;
        // SAFETY: fork has no memory-safety preconditions; the child only does
        // a volatile read and _exit (both async-signal-safe), so the other
        // threads' state it inherits is never used.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Fail::Os(Errno::last()));
        }
        if pid == 0 {
            // SAFETY: as in `read32` (`p` is inside the live, inherited
            // mapping); _exit never returns.
            unsafe {
                let _ = p.read_volatile();
                libc::_exit(0)
            }
        }
        let mut status: c_int = 0;
        // SAFETY: waits for our own child; `status` is a valid output location.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r < 0 {
            return Err(Fail::Os(Errno::last()));
        }
        Ok(if libc::WIFSIGNALED(status) {
            ChildTouch::Signal(libc::WTERMSIG(status))
        } else if libc::WEXITSTATUS(status) == 0 {
            ChildTouch::Read
        } else {
            ChildTouch::Exit(libc::WEXITSTATUS(status))
        })
    }
}

impl Drop for Mmio {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe exactly the mapping made in
        // `map_shared`, and no reference into it outlives `self`.
        unsafe { libc::munmap(self.ptr.cast::<c_void>(), self.len) };
    }
}

/// Major number of a `dev_t` (glibc's gnu_dev_major encoding, libc's `major`).
pub fn dev_major(dev: u64) -> u32 {
    libc::major(dev)
}

/// Minor number of a `dev_t` (glibc's gnu_dev_minor encoding, libc's `minor`).
pub fn dev_minor(dev: u64) -> u32 {
    libc::minor(dev)
}
