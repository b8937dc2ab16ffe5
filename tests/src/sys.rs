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

/// mount(2) of a pseudo filesystem (`debugfs`, ...) of type `fstype` on `target`: no
/// source device, no flags, no options.
pub fn mount_pseudo(fstype: &CStr, target: &CStr) -> Result<(), Errno> {
    // SAFETY: mount(source, target, type, flags, data) reads the three NUL-terminated
    // strings (`fstype` serves as the source name too, as mount(8) does for pseudo
    // filesystems), which outlive the call; `data` is NULL.
    let ret = unsafe { libc::mount(fstype.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
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

/// A mapping of a device file at an offset, length, protection and sharing the caller
/// chooses (the fuzzer's, tests/src/fuzz.rs), which can be split by unmapping part of it.
/// It is only ever accessed by the kernel on the process's behalf (through a pipe) or by a
/// forked child, never through a Rust reference: device memory may vanish (a zapped BAR
/// faults with `SIGBUS`) at any time.  Unmapped on drop.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    /// mmap(2) of `len` bytes (the kernel rounds up to pages) of `file` at `offset`, with
    /// `prot` (`PROT_*` bits) and `flags` (`MAP_SHARED` or `MAP_PRIVATE`, never
    /// `MAP_FIXED`: the address is the kernel's choice).
    pub fn map(file: &impl AsRawFd, offset: u64, len: usize, prot: i32, flags: i32) -> Result<Mapping, Errno> {
        let flags = flags & !libc::MAP_FIXED & !libc::MAP_FIXED_NOREPLACE;
        // SAFETY: addr NULL and no MAP_FIXED: the kernel picks a range that overlaps nothing
        // of ours; the fd is only used by the call.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, file.as_raw_fd(), offset as i64) };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(Mapping { ptr: p.cast::<u8>(), len: len.div_ceil(PAGE_SIZE) * PAGE_SIZE })
    }

    /// The mapped length (whole pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Unmap the pages `[start, start + len)` (page multiples, inside the mapping): the
    /// pieces left before and after, and munmap's result.  On failure the mapping is kept
    /// whole (first piece).
    pub fn unmap_part(self, start: usize, len: usize) -> (Result<(), Errno>, Vec<Mapping>) {
        if start % PAGE_SIZE != 0 || len % PAGE_SIZE != 0 || len == 0 || start + len > self.len {
            return (Err(Errno::EINVAL), vec![self]);
        }
        let me = std::mem::ManuallyDrop::new(self);
        let (ptr, total) = (me.ptr, me.len);
        // SAFETY: the range lies inside our own mapping, which no reference points into; the
        // pieces around it become their own Mappings and the whole one is never unmapped again.
        let r = unsafe { libc::munmap(ptr.wrapping_add(start).cast::<c_void>(), len) };
        if r < 0 {
            let e = Errno::last();
            return (Err(e), vec![Mapping { ptr, len: total }]);
        }
        let mut left = Vec::new();
        if start > 0 {
            left.push(Mapping { ptr, len: start });
        }
        if start + len < total {
            left.push(Mapping { ptr: ptr.wrapping_add(start + len), len: total - start - len });
        }
        (Ok(()), left)
    }

    fn span(&self, offset: usize, n: usize) -> Option<*mut u8> {
        (n > 0 && offset.checked_add(n)? <= self.len).then(|| self.ptr.wrapping_add(offset))
    }

    /// The kernel reads `n` bytes of the mapping at `offset` (write(2) of them into `pipe`):
    /// a fault the driver refuses makes the copy fail with `EFAULT` instead of a signal.
    /// Returns the count the kernel copied; the pipe is drained afterwards.
    pub fn kernel_read(&self, offset: usize, n: usize, pipe: &Pipe) -> Result<usize, Errno> {
        let p = self.span(offset, n).ok_or(Errno::EINVAL)?;
        // SAFETY: write(2) only reads the `n` bytes at `p`, inside our live mapping.
        let r = unsafe { libc::write(pipe.w, p.cast::<c_void>(), n) };
        let result = if r < 0 { Err(Errno::last()) } else { Ok(r as usize) };
        pipe.drain();
        result
    }

    /// The kernel writes `data` into the mapping at `offset` (read(2) from `pipe` after
    /// `data` was written into it); as [`Mapping::kernel_read`].
    pub fn kernel_write(&self, offset: usize, data: &[u8], pipe: &Pipe) -> Result<usize, Errno> {
        let p = self.span(offset, data.len()).ok_or(Errno::EINVAL)?;
        pipe.drain();
        // SAFETY: write(2) reads the slice `data`, alive across the call.
        let w = unsafe { libc::write(pipe.w, data.as_ptr().cast::<c_void>(), data.len()) };
        if w < 0 || w as usize != data.len() {
            pipe.drain();
            return Err(Errno::last());
        }
        // SAFETY: read(2) writes at most `data.len()` bytes at `p`, inside our live mapping,
        // which no Rust reference points into.
        let r = unsafe { libc::read(pipe.r, p.cast::<c_void>(), data.len()) };
        let result = if r < 0 { Err(Errno::last()) } else { Ok(r as usize) };
        pipe.drain();
        result
    }

    /// One load (`value` None) or store of `size` bytes (1, 2, 4 or 8) at `offset`, made by a
    /// child process sharing our memory (clone with CLONE_VM and CLONE_VFORK: a fork of
    /// the whole test program costs over half a second in the KASAN guest), so that a fault the driver refuses (`SIGBUS`) or a protection fault
    /// (`SIGSEGV`) kills the child, not the test.
    pub fn touch_in_child(&self, offset: usize, size: usize, value: Option<u64>) -> Result<ChildTouch, Fail> {
        if !matches!(size, 1 | 2 | 4 | 8) {
            return Err(Fail::other("size must be 1, 2, 4 or 8"));
        }
        let p = self.span(offset, size).ok_or_else(|| Fail::other("outside the mapping"))?;
        let req = TouchReq { p, size, value };
        // The child's stack: 16-aligned top of a buffer of ours, unused meanwhile.
        let mut stack = vec![0u128; 4096];
        let top = stack.as_mut_ptr_range().end.cast::<c_void>();
        // SAFETY: clone(CLONE_VM | CLONE_VFORK) runs `touch_child` in a new process that
        // shares our memory, on `stack`, while this thread is suspended until the child
        // exits (so `req` and `stack` outlive it and nothing else uses that stack); the
        // child only makes one volatile access and calls _exit, touching no other state.
        // A refused fault kills the child (SIGBUS: std's handler finds no guard page and
        // restores the default action, in the child's own copy of the handlers).
        let pid = unsafe {
            libc::clone(
                touch_child,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&raw const req).cast_mut().cast::<c_void>(),
            )
        };
        drop(stack);
        if pid < 0 {
            return Err(Fail::Os(Errno::last()));
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

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe exactly a live range this value owns (made by `map`
        // or left by `unmap_part`), and no reference into it exists.
        unsafe { libc::munmap(self.ptr.cast::<c_void>(), self.len) };
    }
}

/// What the child of [`Mapping::touch_in_child`] does.
struct TouchReq {
    p: *mut u8,
    size: usize,
    value: Option<u64>,
}

/// The child of [`Mapping::touch_in_child`]: one access, then _exit.
extern "C" fn touch_child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's `TouchReq`, alive while the parent is suspended; `p` and
    // `size` lie inside a live mapping (checked by `span`); the access may be unaligned,
    // hence read/write_unaligned; _exit never returns.
    unsafe {
        let r = &*arg.cast::<TouchReq>();
        let p = r.p;
        match (r.size, r.value) {
            (1, None) => {
                let _ = p.read_volatile();
            }
            (2, None) => {
                let _ = p.cast::<u16>().read_unaligned();
            }
            (4, None) => {
                let _ = p.cast::<u32>().read_unaligned();
            }
            (_, None) => {
                let _ = p.cast::<u64>().read_unaligned();
            }
            (1, Some(v)) => p.write_volatile(v as u8),
            (2, Some(v)) => p.cast::<u16>().write_unaligned(v as u16),
            (4, Some(v)) => p.cast::<u32>().write_unaligned(v as u32),
            (_, Some(v)) => p.cast::<u64>().write_unaligned(v),
        }
        libc::_exit(0)
    }
}

/// A non-blocking pipe, through which the kernel copies to and from a [`Mapping`].
pub struct Pipe {
    r: c_int,
    w: c_int,
}

impl Pipe {
    pub fn new() -> Result<Pipe, Errno> {
        let mut fds: [c_int; 2] = [-1; 2];
        // SAFETY: pipe2 writes two fds into `fds`, which lives across the call.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(Errno::last());
        }
        Ok(Pipe { r: fds[0], w: fds[1] })
    }

    /// Read whatever the pipe holds and drop it.
    fn drain(&self) {
        let mut buf = [0u8; 256];
        loop {
            // SAFETY: read(2) writes at most 256 bytes into `buf`.
            let n = unsafe { libc::read(self.r, buf.as_mut_ptr().cast::<c_void>(), buf.len()) };
            if n <= 0 {
                break;
            }
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: both fds are ours, closed once.
        unsafe {
            libc::close(self.r);
            libc::close(self.w);
        }
    }
}
