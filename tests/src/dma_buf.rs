//! VFIO_DEVICE_FEATURE_DMA_BUF scenarios: a BAR's pages exported as a
//! dma-buf, its file (fdinfo, size, the operations a dma-buf file has), its
//! use by iommufd (IOMMU_IOAS_MAP_FILE), every argument rule, and its
//! revocation wherever vfio-pci revokes it (memory decode off, D3hot through
//! PMCSR, low power, VFIO_DEVICE_RESET, PCI hot reset, FLR, close, unbind)
//! and restoration where vfio-pci restores it.
//!
//! How revocation is observed, the same way on both drivers: iommufd's
//! IOMMU_IOAS_MAP_FILE of the dma-buf attaches to it, and the exporter
//! refuses an attachment to a revoked dma-buf with ENODEV. A live dma-buf
//! gets further: iommufd then asks for its physical range through a private
//! interface that only vfio-pci-core's dma-bufs answer
//! (`vfio_pci_dma_buf_iommufd_map()` compares the dma-buf's ops with its
//! own), so the map succeeds for vfio-pci and fails with EOPNOTSUPP for any
//! other exporter, this driver included. The step records the state each
//! driver's answer means: "live" (vfio-pci: mapped, and unmapped again;
//! vfio-pci-rs: EOPNOTSUPP), "revoked" (ENODEV from either), or the raw
//! answer for anything else, so a dma-buf revoked where it should be live,
//! or live where it should be revoked, is a difference.
//!
//! And through an importer that maps them for real, the same for both:
//! tests/modules/dmabuf_importer.c (`/dev/dmabuf_importer`, loaded by
//! harness/init) attaches as a revocable peer-to-peer importer on behalf of
//! the exporting function itself (its own BAR is reachable by bus address),
//! maps the dma-buf into a scatter list, counts the exporter's
//! invalidations (each unmaps at once) and maps again after each one: a
//! revoked dma-buf refuses the map with ENODEV, a live one gives the same
//! segments as before.

use crate::driver::{Driver, REFERENCE_NAME, RUST_NAME};
use crate::features::{feature, FEATURE_SET};
use crate::interrupts::{config_read16, config_write16, find_cap};
use crate::regions::{single_known_function, with_group_device};
use crate::scenarios::{bind_by_override, none, scenario, unbind_and_check, Ctx, Scenario};
use crate::sys::{ioctl_ptr, Errno, Fail};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Fields, Outcome, Transcript, Val};
use crate::uapi::*;
use crate::vfio::{Device, Iommufd};
use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::raw::{c_ulong, c_void};

const FEATURE_GET: u32 = 1 << 16;
const FEATURE_PROBE: u32 = 1 << 18;
const DMA_BUF: u32 = 11;
const LOW_POWER_ENTRY: u32 = 3;
const LOW_POWER_EXIT: u32 = 5;
const PAGE: u64 = 4096;
const ROM_INDEX: u32 = 6;
const CONFIG_INDEX: u32 = 7;
const PCI_COMMAND: u64 = 0x04;
const COMMAND_MEMORY: u16 = 1 << 1;
const CAP_ID_PM: u8 = 0x01;
const CAP_ID_EXP: u8 = 0x10;
const PCI_EXP_DEVCAP: u64 = 4;
const PCI_EXP_DEVCTL: u64 = 8;
const PCI_EXP_DEVCAP_FLR: u32 = 1 << 28;
const PCI_EXP_DEVCTL_BCR_FLR: u16 = 1 << 15;
const EOPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);
const EOVERFLOW: Errno = Errno(libc::EOVERFLOW);
const ENOMEM: Errno = Errno(libc::ENOMEM);

const IOMMUFD_TYPE: u32 = b';' as u32;
const IOMMU_IOAS_MAP_FILE: c_ulong = libc_io(IOMMUFD_TYPE, 0x80 + 0xf);
const IOMMU_IOAS_UNMAP: c_ulong = libc_io(IOMMUFD_TYPE, 0x80 + 0x6);
const IOMMU_IOAS_MAP_WRITEABLE: u32 = 1 << 1;
const IOMMU_IOAS_MAP_READABLE: u32 = 1 << 2;

/// `_IO(type, nr)`.
const fn libc_io(ty: u32, nr: u32) -> c_ulong {
    ((ty << 8) | nr) as c_ulong
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "dma_buf_args",
            rule: "VFIO_DEVICE_FEATURE_DMA_BUF: PROBE|GET is 0 and PROBE|SET EINVAL; GET needs argsz >= 16, flags 0 and nr_ranges > 0 (EINVAL), a BAR that was mapped at open (ROM, config, beyond, an empty BAR: ENODEV), ranges readable (EFAULT), allocatable (ENOMEM), non-empty and page-aligned with a total below 2^63 (EINVAL), a memory BAR (I/O BAR: EINVAL), addresses that do not overflow (EOVERFLOW) inside the BAR (EINVAL); a refusal opens no file",
            loads_module: false,
            applies: single_known_function,
            run: dma_buf_args,
            expect: expect_dma_buf_args,
        },
        Scenario {
            name: "dma_buf_export",
            rule: "VFIO_DEVICE_FEATURE_DMA_BUF GET returns a dma-buf fd: fdinfo size is the ranges' total, count 1, exp_name the exporting module, open_flags' access mode, O_NONBLOCK and O_CLOEXEC apply; lseek SEEK_END gives the size, fstat st_size too; mmap and read are EINVAL (EACCES and EBADF from the VFS on a write-only file); an importer maps one segment per range; IOMMU_IOAS_MAP_FILE of a range past its end is EINVAL, of a multi-range dma-buf EOPNOTSUPP",
            loads_module: false,
            applies: single_known_function,
            run: dma_buf_export,
            expect: expect_dma_buf_export,
        },
        Scenario {
            name: "dma_buf_revoke",
            rule: "a dma-buf is revoked (iommufd's attach: ENODEV) while memory decode is off, in D3hot, in low power, across VFIO_DEVICE_RESET, PCI_HOT_RESET and FLR, and for good at close and unbind; one made while decode is off starts revoked; access coming back (decode on, D0, low power exit, the end of a reset with decode on) restores it; a reset or low power exit with decode off leaves it revoked",
            loads_module: false,
            applies: single_known_function,
            run: dma_buf_revoke,
            expect: expect_dma_buf_revoke,
        },
    ]
}

// ------------------------------------------------------------ the request

/// A `struct vfio_device_feature_dma_buf` with its ranges.
#[derive(Clone)]
struct Request {
    region_index: u32,
    open_flags: u32,
    flags: u32,
    nr_ranges: u32,
    ranges: Vec<(u64, u64)>,
}

impl Request {
    /// One range of `region`, opened O_RDWR | O_CLOEXEC.
    fn new(region: u32, ranges: &[(u64, u64)]) -> Request {
        Request {
            region_index: region,
            open_flags: (libc::O_RDWR | libc::O_CLOEXEC) as u32,
            flags: 0,
            nr_ranges: ranges.len() as u32,
            ranges: ranges.to_vec(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [self.region_index, self.open_flags, self.flags, self.nr_ranges] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        for (offset, length) in &self.ranges {
            b.extend_from_slice(&offset.to_ne_bytes());
            b.extend_from_slice(&length.to_ne_bytes());
        }
        b
    }
}

/// VFIO_DEVICE_FEATURE(GET | DMA_BUF) with `req`: the new dma-buf.
fn get_dma_buf(d: &Device, req: &Request) -> Result<OwnedFd, Fail> {
    let fd = feature(d, DMA_BUF | FEATURE_GET, &req.bytes())?;
    // SAFETY: a successful GET returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// VFIO_DEVICE_FEATURE(GET | DMA_BUF) whose header and first range end a
/// readable page and whose further ranges (`nr_ranges` 2) fall on an
/// unreadable one.
fn get_dma_buf_unreadable_ranges(d: &Device, region: u32) -> Result<OwnedFd, Fail> {
    let len = 2 * PAGE as usize;
    // SAFETY: a fresh anonymous mapping, unmapped below; nothing else uses it.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(Errno::last().into());
    }
    let req = Request { nr_ranges: 2, ..Request::new(region, &[(0, PAGE)]) };
    let mut arg = ((8 + 16 + 32) as u32).to_ne_bytes().to_vec();
    arg.extend_from_slice(&(DMA_BUF | FEATURE_GET).to_ne_bytes());
    arg.extend_from_slice(&req.bytes());
    let at = PAGE as usize - arg.len();
    // SAFETY: `at + arg.len()` is the end of the first page of the mapping;
    // the second page is made unreadable before the call, which reads from
    // `map + at`; the mapping is removed afterwards.
    let r = unsafe {
        std::ptr::copy_nonoverlapping(arg.as_ptr(), map.cast::<u8>().add(at), arg.len());
        libc::mprotect(map.cast::<u8>().add(PAGE as usize).cast(), PAGE as usize, libc::PROT_NONE);
        let r = ioctl_ptr(d, VFIO_DEVICE_FEATURE, map.cast::<u8>().add(at).cast::<c_void>());
        libc::munmap(map, len);
        r
    };
    let fd = r?;
    // SAFETY: a successful GET returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn opened(_: &OwnedFd, _: &mut Transcript) -> Fields {
    Vec::new()
}

fn ret(v: &i32, _: &mut Transcript) -> Fields {
    vec![("ret", Val::Num(*v as u64))]
}

/// How many files the test process has open.
fn open_files() -> Result<usize, Fail> {
    Ok(fs::read_dir("/proc/self/fd")?.count())
}

/// The BARs of the function as the host assigned them (sysfs `resource`):
/// (index, size, is I/O).
fn bars(bdf: &str) -> Result<Vec<(u32, u64, bool)>, Fail> {
    let text = fs::read_to_string(sysfs::device_dir(bdf).join("resource"))?;
    let mut v = Vec::new();
    for (i, line) in text.lines().take(6).enumerate() {
        let f: Vec<u64> = line
            .split_whitespace()
            .map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16))
            .collect::<Result<_, _>>()
            .map_err(|e| Fail::other(format!("resource line {line:?}: {e}")))?;
        let [start, end, flags] = f[..] else { return Err(Fail::other(format!("resource line {line:?}"))) };
        let size = if end == 0 { 0 } else { end - start + 1 };
        v.push((i as u32, size, flags & 0x100 != 0));
    }
    Ok(v)
}

/// The first memory BAR of at least two pages, the first I/O BAR, the first
/// empty BAR.
struct BarChoice {
    mem: (u32, u64),
    io: Option<u32>,
    empty: Option<u32>,
}

fn choose_bars(bdf: &str) -> Result<BarChoice, Fail> {
    let b = bars(bdf)?;
    let mem = b.iter().find(|(_, size, io)| !io && *size >= 2 * PAGE).map(|(i, s, _)| (*i, *s));
    let mem = mem.ok_or_else(|| Fail::other("no memory BAR of two pages"))?;
    let io = b.iter().find(|(_, size, io)| *io && *size > 0).map(|(i, _, _)| *i);
    let empty = b.iter().find(|(_, size, _)| *size == 0).map(|(i, _, _)| *i);
    Ok(BarChoice { mem, io, empty })
}

fn bar_fields(b: &BarChoice, _: &mut Transcript) -> Fields {
    vec![
        ("memory BAR", Val::Num(b.mem.0.into())),
        ("size", Val::Hex(b.mem.1)),
        ("I/O BAR", b.io.map_or(Val::text("none"), |i| Val::Num(i.into()))),
        ("empty BAR", b.empty.map_or(Val::text("none"), |i| Val::Num(i.into()))),
    ]
}

// ------------------------------------------------------------- arguments

fn dma_buf_args(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_group_device(c, |t, d| {
        let bars = t.need("BARs", choose_bars(&bdf), bar_fields)?;
        let (mem, size) = bars.mem;
        t.step("PROBE|GET", feature(d, DMA_BUF | FEATURE_PROBE | FEATURE_GET, &[]), ret);
        t.step("PROBE|SET", feature(d, DMA_BUF | FEATURE_PROBE | FEATURE_SET, &[]), ret);
        t.step("PROBE|GET|SET", feature(d, DMA_BUF | FEATURE_PROBE | FEATURE_GET | FEATURE_SET, &[]), ret);
        t.step("PROBE alone", feature(d, DMA_BUF | FEATURE_PROBE, &[]), ret);
        let good = Request::new(mem, &[(0, PAGE)]);
        let before = t.need("open files before", open_files(), |n, _| vec![("count", Val::Num(*n as u64))])?;

        t.step("SET", feature(d, DMA_BUF | FEATURE_SET, &good.bytes()), ret);
        t.step("neither GET nor SET", feature(d, DMA_BUF, &good.bytes()), ret);
        t.step("GET argsz 8 + 15", feature(d, DMA_BUF | FEATURE_GET, &good.bytes()[..15]), ret);
        t.step("GET no data", feature(d, DMA_BUF | FEATURE_GET, &[]), ret);
        let cases: Vec<(&str, Request)> = vec![
            ("nr_ranges 0", Request { nr_ranges: 0, ..good.clone() }),
            ("flags 1", Request { flags: 1, ..good.clone() }),
            ("flags 0x80000000", Request { flags: 0x8000_0000, ..good.clone() }),
            ("region ROM", Request::new(ROM_INDEX, &[(0, PAGE)])),
            ("region config", Request::new(CONFIG_INDEX, &[(0, PAGE)])),
            ("region 8", Request::new(8, &[(0, PAGE)])),
            ("region 0xffffffff", Request::new(u32::MAX, &[(0, PAGE)])),
            ("range length 0", Request::new(mem, &[(0, 0)])),
            ("range offset unaligned", Request::new(mem, &[(8, PAGE)])),
            ("range length unaligned", Request::new(mem, &[(0, PAGE + 8)])),
            ("second range length 0", Request::new(mem, &[(0, PAGE), (PAGE, 0)])),
            ("ranges' total overflows", Request::new(mem, &[(0, 1 << 63), (0, 1 << 63)])),
            ("range of 2^63 bytes", Request::new(mem, &[(0, 1 << 63)])),
            ("range of 2^63 - 4096 bytes", Request::new(mem, &[(0, (1 << 63) - PAGE)])),
            ("range past the BAR's end", Request::new(mem, &[(size - PAGE, 2 * PAGE)])),
            ("range after the BAR", Request::new(mem, &[(size, PAGE)])),
            ("second range past the end", Request::new(mem, &[(0, PAGE), (size, PAGE)])),
            ("offset overflows the address", Request::new(mem, &[(0u64.wrapping_sub(PAGE), PAGE)])),
            ("end overflows the address", Request::new(mem, &[(0xffff_ffff_0000_0000, 0x1_0000_0000)])),
            ("nr_ranges 2^28 (4 GiB of ranges)", Request { nr_ranges: 1 << 28, ..good.clone() }),
        ];
        for (name, req) in &cases {
            t.step(name, get_dma_buf(d, req), opened);
        }
        if let Some(io) = bars.io {
            t.step("I/O BAR", get_dma_buf(d, &Request::new(io, &[(0, PAGE)])), opened);
        }
        if let Some(empty) = bars.empty {
            t.step("empty BAR", get_dma_buf(d, &Request::new(empty, &[(0, PAGE)])), opened);
        }
        t.step("ranges unreadable", get_dma_buf_unreadable_ranges(d, mem), opened);
        t.step("open files after the refusals", open_files(), |n, _| vec![("same as before", Val::Bool(*n == before))]);
        let buf = t.step("GET one page", get_dma_buf(d, &good), opened);
        t.step("open files with the dma-buf", open_files(), |n, _| vec![("more", Val::Num((*n - before) as u64))]);
        drop(buf);
        t.step("GET the whole BAR", get_dma_buf(d, &Request::new(mem, &[(0, size)])), opened);
        t.step("GET its last page", get_dma_buf(d, &Request::new(mem, &[(size - PAGE, PAGE)])), opened);
        let many: Vec<(u64, u64)> = (0..size / PAGE).map(|i| (i * PAGE, PAGE)).collect();
        t.step("GET every page as a range", get_dma_buf(d, &Request::new(mem, &many)), opened);
        t.step("GET the same page twice", get_dma_buf(d, &Request::new(mem, &[(0, PAGE), (0, PAGE)])), opened);
        Ok(())
    })
}

fn expect_dma_buf_args(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.num("PROBE|GET", "ret", 0);
    e.err("PROBE|SET", Errno::EINVAL);
    e.err("PROBE|GET|SET", Errno::EINVAL);
    e.num("PROBE alone", "ret", 0);
    for step in
        ["SET", "neither GET nor SET", "GET argsz 8 + 15", "GET no data", "nr_ranges 0", "flags 1", "flags 0x80000000"]
    {
        e.err(step, Errno::EINVAL);
    }
    for step in ["region ROM", "region config", "region 8", "region 0xffffffff"] {
        e.err(step, Errno::ENODEV);
    }
    for step in [
        "range length 0",
        "range offset unaligned",
        "range length unaligned",
        "second range length 0",
        "ranges' total overflows",
        "range of 2^63 bytes",
        "range past the BAR's end",
        "range after the BAR",
        "second range past the end",
    ] {
        e.err(step, Errno::EINVAL);
    }
    e.err("offset overflows the address", EOVERFLOW);
    e.err("end overflows the address", EOVERFLOW);
    e.err("nr_ranges 2^28 (4 GiB of ranges)", ENOMEM);
    e.err("range of 2^63 - 4096 bytes", Errno::EINVAL);
    if t.find("I/O BAR").is_some() {
        e.err("I/O BAR", Errno::EINVAL);
    }
    if t.find("empty BAR").is_some() {
        e.err("empty BAR", Errno::ENODEV);
    }
    e.err("ranges unreadable", Errno::EFAULT);
    e.val("open files after the refusals", "same as before", &Val::Bool(true));
    e.ok("GET one page");
    e.num("open files with the dma-buf", "more", 1);
    e.ok("GET the whole BAR");
    e.ok("GET its last page");
    e.ok("GET every page as a range");
    e.ok("GET the same page twice");
    e.finish()
}

// ---------------------------------------------------------------- export

/// The dma-buf lines of /proc/self/fdinfo/FD, with the exporter's name
/// normalised to whether it is `driver`'s module.
fn fdinfo(driver: &Driver, fd: &OwnedFd) -> Result<Fields, Fail> {
    let text = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
    let mut f = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match key {
            "flags" => f.push(("flags", Val::text(value))),
            "size" => f.push(("size", Val::text(value))),
            "count" => f.push(("count", Val::text(value))),
            "exp_name" => {
                let module = if driver.name == RUST_NAME { "vfio_pci_rs" } else { "vfio_pci_core" };
                let v = if value == module { Val::Norm("the driver's module".into()) } else { Val::text(value) };
                f.push(("exp_name", v));
            }
            "name" => f.push(("name", Val::text(value))),
            _ => {}
        }
    }
    Ok(f)
}

fn lseek(fd: &OwnedFd, offset: i64, whence: i32) -> Result<i64, Fail> {
    // SAFETY: lseek on an fd we own.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), offset, whence) };
    if r < 0 {
        return Err(Errno::last().into());
    }
    Ok(r)
}

pub(crate) fn fstat_size(fd: &OwnedFd) -> Result<u64, Fail> {
    // SAFETY: `st` is written by fstat before it is read.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on an fd we own into a stat buffer that lives across the call.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(Errno::last().into());
    }
    Ok(st.st_size as u64)
}

pub(crate) fn fd_flags(fd: &OwnedFd) -> Result<Fields, Fail> {
    // SAFETY: fcntl queries on an fd we own.
    let (fdf, fl) = unsafe { (libc::fcntl(fd.as_raw_fd(), libc::F_GETFD), libc::fcntl(fd.as_raw_fd(), libc::F_GETFL)) };
    if fdf < 0 || fl < 0 {
        return Err(Errno::last().into());
    }
    Ok(vec![
        ("cloexec", Val::Bool(fdf & libc::FD_CLOEXEC != 0)),
        ("access", Val::Num((fl & libc::O_ACCMODE) as u64)),
        ("nonblock", Val::Bool(fl & libc::O_NONBLOCK != 0)),
    ])
}

fn mmap_dma_buf(fd: &OwnedFd, len: usize) -> Result<(), Fail> {
    // SAFETY: a new shared mapping of the dma-buf, unmapped right away.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, fd.as_raw_fd(), 0) };
    if p == libc::MAP_FAILED {
        return Err(Errno::last().into());
    }
    // SAFETY: the mapping made just above.
    unsafe { libc::munmap(p, len) };
    Ok(())
}

fn read_dma_buf(fd: &OwnedFd) -> Result<usize, Fail> {
    let mut b = [0u8; 16];
    // SAFETY: read into a buffer of 16 bytes.
    let r = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
    if r < 0 {
        return Err(Errno::last().into());
    }
    Ok(r as usize)
}

fn dma_buf_export(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf().to_string());
    with_cdev(c, |t, o| {
        let bars = t.need("BARs", choose_bars(&bdf), bar_fields)?;
        let (mem, _) = bars.mem;
        let base = t.need("BAR start", bar_start(&bdf, mem), |_, _| Vec::new())?;
        let d = &o.dev;
        for (name, req) in [
            ("one page, O_RDWR|O_CLOEXEC", Request::new(mem, &[(0, PAGE)])),
            (
                "two ranges, O_RDONLY",
                Request { open_flags: libc::O_RDONLY as u32, ..Request::new(mem, &[(PAGE, PAGE), (0, PAGE)]) },
            ),
            (
                "one range of two pages, O_WRONLY|O_NONBLOCK",
                Request {
                    open_flags: (libc::O_WRONLY | libc::O_NONBLOCK) as u32,
                    ..Request::new(mem, &[(0, 2 * PAGE)])
                },
            ),
        ] {
            let Some(buf) = t.step(&format!("GET {name}"), get_dma_buf(d, &req), opened) else { continue };
            let total: u64 = req.ranges.iter().map(|r| r.1).sum();
            t.step(&format!("{name}: fdinfo"), fdinfo(driver, &buf), |f, _| f.clone());
            t.step(&format!("{name}: fd flags"), fd_flags(&buf), |f, _| f.clone());
            t.step(&format!("{name}: lseek SEEK_END"), lseek(&buf, 0, libc::SEEK_END), |n, _| {
                vec![("offset", Val::Hex(*n as u64)), ("is the total", Val::Bool(*n as u64 == total))]
            });
            t.step(&format!("{name}: lseek SEEK_SET"), lseek(&buf, 0, libc::SEEK_SET), |n, _| {
                vec![("offset", Val::Num(*n as u64))]
            });
            t.step(&format!("{name}: lseek SEEK_CUR"), lseek(&buf, 0, libc::SEEK_CUR), |n, _| {
                vec![("offset", Val::Num(*n as u64))]
            });
            t.step(&format!("{name}: fstat"), fstat_size(&buf), |n, _| vec![("size", Val::Hex(*n))]);
            t.step(&format!("{name}: mmap"), mmap_dma_buf(&buf, PAGE as usize), none);
            t.step(&format!("{name}: read"), read_dma_buf(&buf), |n, _| vec![("count", Val::Num(*n as u64))]);
            if let Some(imp) = t.step(&format!("{name}: importer open"), Importer::open(), none) {
                if t.step(&format!("{name}: importer attach"), imp.attach(&buf, &bdf, ""), none).is_some() {
                    record_importer(t, &format!("{name}: attached"), &imp, base);
                    t.step(&format!("{name}: importer map again"), imp.cmd("map"), none);
                    t.step(&format!("{name}: importer unmap"), imp.cmd("unmap"), none);
                    t.step(&format!("{name}: importer unmap again"), imp.cmd("unmap"), none);
                }
            }
            if req.ranges.len() == 1 {
                record_map_state(t, driver, &format!("{name}: IOMMU_IOAS_MAP_FILE"), &o.m, &buf, 0, PAGE);
            } else {
                // Refused by both exporters' side of iommufd: the raw answer.
                let mapped = map_file(&o.m, &buf, 0, PAGE).and_then(|iova| unmap(&o.m, iova, PAGE));
                t.step(&format!("{name}: IOMMU_IOAS_MAP_FILE"), mapped, none);
            }
            let past = map_file(&o.m, &buf, total - PAGE, 2 * PAGE).and_then(|iova| unmap(&o.m, iova, 2 * PAGE));
            t.step(&format!("{name}: IOMMU_IOAS_MAP_FILE past the end"), past, none);
        }
        Ok(())
    })
}

fn expect_dma_buf_export(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    let one = "one page, O_RDWR|O_CLOEXEC";
    let two = "two ranges, O_RDONLY";
    let big = "one range of two pages, O_WRONLY|O_NONBLOCK";
    for name in [one, two, big] {
        e.ok(&format!("GET {name}"));
        e.val(&format!("{name}: fdinfo"), "count", &Val::text("1"));
        e.val(&format!("{name}: fdinfo"), "exp_name", &Val::Norm("the driver's module".into()));
        e.val(&format!("{name}: lseek SEEK_END"), "is the total", &Val::Bool(true));
        e.num(&format!("{name}: lseek SEEK_SET"), "offset", 0);
        e.err(&format!("{name}: lseek SEEK_CUR"), Errno::EINVAL);
        // A write-only file is refused by the VFS first.
        let (mmap, read) = if name == big { (Errno::EACCES, Errno::EBADF) } else { (Errno::EINVAL, Errno::EINVAL) };
        e.err(&format!("{name}: mmap"), mmap);
        e.err(&format!("{name}: read"), read);
        e.err(&format!("{name}: IOMMU_IOAS_MAP_FILE past the end"), Errno::EINVAL);
    }
    e.val(&format!("{one}: fdinfo"), "size", &Val::text("4096"));
    e.val(&format!("{two}: fdinfo"), "size", &Val::text("8192"));
    e.val(&format!("{one}: fd flags"), "cloexec", &Val::Bool(true));
    e.num(&format!("{one}: fd flags"), "access", libc::O_RDWR as u64);
    e.val(&format!("{two}: fd flags"), "cloexec", &Val::Bool(false));
    e.num(&format!("{two}: fd flags"), "access", libc::O_RDONLY as u64);
    e.num(&format!("{big}: fd flags"), "access", libc::O_WRONLY as u64);
    e.val(&format!("{big}: fd flags"), "nonblock", &Val::Bool(true));
    e.num(&format!("{one}: fstat"), "size", PAGE);
    for (name, nents, len, addr) in [(one, 1, PAGE, 0), (two, 2, 2 * PAGE, PAGE), (big, 1, 2 * PAGE, 0)] {
        let at = format!("{name}: attached: importer mapped");
        e.num(&at, "nents", nents);
        e.val(&at, "len", &Val::Hex(len));
        e.val(&at, "addr in the BAR", &Val::Hex(addr));
        e.err(&format!("{name}: importer map again"), Errno::EBUSY);
        e.ok(&format!("{name}: importer unmap"));
        e.err(&format!("{name}: importer unmap again"), Errno::EINVAL);
    }
    e.val(&format!("{one}: IOMMU_IOAS_MAP_FILE"), "state", &Val::text("live"));
    e.val(&format!("{big}: IOMMU_IOAS_MAP_FILE"), "state", &Val::text("live"));
    // vfio-pci gives iommufd only single-range dma-bufs.
    e.err(&format!("{two}: IOMMU_IOAS_MAP_FILE"), EOPNOTSUPP);
    e.finish()
}

// --------------------------------------------------------------- iommufd

/// An iommufd and an IOAS of it, where dma-bufs are mapped.
struct Mapper {
    ictx: Iommufd,
    ioas: u32,
}

/// The device opened on the cdev path, bound to an iommufd and attached to
/// an IOAS of it.
struct Open {
    dev: Device,
    m: Mapper,
}

/// Binds the function, opens it through its cdev into a fresh iommufd and
/// IOAS, runs `body`, and unbinds (after `body` dropped what it kept).
fn with_cdev(c: &Ctx, body: impl FnOnce(&mut Transcript, Open) -> Result<(), Abort>) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let b = bind_by_override(t, driver, bdf)?;
        let _ = open_cdev(t, &b.cdev, "").and_then(|o| body(t, o));
        unbind_and_check(t, bdf, &b, true);
        Ok(())
    })
}

/// Opens the cdev `cdev` into a fresh iommufd and IOAS; `p` prefixes the
/// step names.
fn open_cdev(t: &mut Transcript, cdev: &str, p: &str) -> Result<Open, Abort> {
    let dev = t.need(&format!("{p}open cdev"), Device::open_cdev(cdev), none)?;
    let ictx = t.need(&format!("{p}open /dev/iommu"), Iommufd::open(), none)?;
    t.need(&format!("{p}VFIO_DEVICE_BIND_IOMMUFD"), dev.bind_iommufd(&ictx), none)?;
    let ioas = t.need(&format!("{p}IOMMU_IOAS_ALLOC"), ictx.ioas_alloc(), none)?;
    t.need(&format!("{p}VFIO_DEVICE_ATTACH_IOMMUFD_PT"), dev.attach_pt(ioas), none)?;
    Ok(Open { dev, m: Mapper { ictx, ioas } })
}

/// IOMMU_IOAS_MAP_FILE of `length` bytes of `buf` from `start`, readable
/// and writable, at an IOVA iommufd picks: that IOVA.
fn map_file(o: &Mapper, buf: &OwnedFd, start: u64, length: u64) -> Result<u64, Fail> {
    #[repr(C)]
    struct MapFile {
        size: u32,
        flags: u32,
        ioas_id: u32,
        fd: i32,
        start: u64,
        length: u64,
        iova: u64,
    }
    let mut cmd = MapFile {
        size: std::mem::size_of::<MapFile>() as u32,
        flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
        ioas_id: o.ioas,
        fd: buf.as_raw_fd(),
        start,
        length,
        iova: 0,
    };
    // SAFETY: iommufd reads and writes `size` bytes of `cmd`, which lives
    // across the call.
    unsafe {
        ioctl_ptr(&BorrowedFd::borrow_raw(o.ictx.raw_fd()), IOMMU_IOAS_MAP_FILE, (&raw mut cmd).cast::<c_void>())
    }?;
    Ok(cmd.iova)
}

/// IOMMU_IOAS_UNMAP of what [`map_file`] mapped.
fn unmap(o: &Mapper, iova: u64, length: u64) -> Result<(), Fail> {
    #[repr(C)]
    struct Unmap {
        size: u32,
        ioas_id: u32,
        iova: u64,
        length: u64,
    }
    let mut cmd = Unmap { size: std::mem::size_of::<Unmap>() as u32, ioas_id: o.ioas, iova, length };
    // SAFETY: iommufd reads and writes `size` bytes of `cmd`, which lives
    // across the call.
    unsafe { ioctl_ptr(&BorrowedFd::borrow_raw(o.ictx.raw_fd()), IOMMU_IOAS_UNMAP, (&raw mut cmd).cast::<c_void>()) }?;
    Ok(())
}

/// What IOMMU_IOAS_MAP_FILE of `buf` means for `driver`'s dma-buf (see the
/// module comment): "live", "revoked", or the raw answer. A mapping made is
/// unmapped again (a failed unmap is a note: the run fails).
fn map_state(t: &mut Transcript, driver: &Driver, o: &Mapper, buf: &OwnedFd, start: u64, length: u64) -> Outcome {
    let live_answer = if driver.name == REFERENCE_NAME { None } else { Some(EOPNOTSUPP) };
    match map_file(o, buf, start, length) {
        Ok(iova) => {
            if let Err(e) = unmap(o, iova, length) {
                t.notes.push(format!("IOMMU_IOAS_UNMAP of a dma-buf mapping: {e}"));
            }
            if live_answer.is_none() {
                Outcome::Ok(vec![("state", Val::text("live"))])
            } else {
                Outcome::Ok(vec![("state", Val::text("mapped"))])
            }
        }
        Err(Fail::Os(e)) if e == Errno::ENODEV => Outcome::Ok(vec![("state", Val::text("revoked"))]),
        Err(Fail::Os(e)) if Some(e) == live_answer => Outcome::Ok(vec![("state", Val::text("live"))]),
        Err(e) => Outcome::from(e),
    }
}

fn record_map_state(
    t: &mut Transcript,
    driver: &Driver,
    name: &str,
    o: &Mapper,
    buf: &OwnedFd,
    start: u64,
    length: u64,
) {
    let outcome = map_state(t, driver, o, buf, start, length);
    t.record(name, outcome);
}

// -------------------------------------------------------------- importer

const IMPORTER_DEV: &str = "/dev/dmabuf_importer";

/// One attachment of the test importer (see the module comment).
struct Importer(fs::File);

impl Importer {
    fn open() -> Result<Importer, Fail> {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(IMPORTER_DEV)
            .map(Importer)
            .map_err(|e| Fail::other(format!("{IMPORTER_DEV}: {e} (is dmabuf_importer.ko loaded?)")))
    }

    fn cmd(&self, cmd: &str) -> Result<(), Fail> {
        use std::io::Write;
        (&self.0).write_all(cmd.as_bytes()).map_err(Fail::from)
    }

    /// Attaches to `buf` for `bdf` ("", " static" or " norevoke").
    fn attach(&self, buf: &OwnedFd, bdf: &str, kind: &str) -> Result<(), Fail> {
        self.cmd(&format!("attach {} {bdf}{kind}", buf.as_raw_fd()))
    }

    /// The importer's state; the first segment's address relative to `base`.
    fn status(&self, base: u64) -> Result<Fields, Fail> {
        use std::os::unix::fs::FileExt;
        let mut b = [0u8; 160];
        let n = self.0.read_at(&mut b, 0)?;
        let text = String::from_utf8_lossy(&b[..n]).to_string();
        let w: Vec<&str> = text.split_whitespace().collect();
        let num = |key: &str| -> Result<u64, Fail> {
            let at = w.iter().position(|x| *x == key).ok_or_else(|| Fail::other(format!("no {key} in {text:?}")))?;
            let v = w.get(at + 1).ok_or_else(|| Fail::other(format!("no {key} value in {text:?}")))?;
            let r = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            r.map_err(|e| Fail::other(format!("{key} in {text:?}: {e}")))
        };
        let mapped = num("mapped")? != 0;
        let mut f = vec![
            ("attached", Val::Bool(num("attached")? != 0)),
            ("mapped", Val::Bool(mapped)),
            ("invalidations", Val::Num(num("invalidations")?)),
        ];
        if mapped {
            f.push(("nents", Val::Num(num("nents")?)));
            f.push(("len", Val::Hex(num("len")?)));
            f.push(("addr in the BAR", Val::Hex(num("addr")?.wrapping_sub(base))));
        }
        Ok(f)
    }
}

/// The bus address of BAR `bar` of `bdf` as the host assigned it (sysfs).
fn bar_start(bdf: &str, bar: u32) -> Result<u64, Fail> {
    let text = fs::read_to_string(sysfs::device_dir(bdf).join("resource"))?;
    let line = text.lines().nth(bar as usize).ok_or_else(|| Fail::other("no such BAR"))?;
    let first = line.split_whitespace().next().unwrap_or("");
    u64::from_str_radix(first.trim_start_matches("0x"), 16).map_err(|e| Fail::other(format!("{line:?}: {e}")))
}

/// Records the importer's state, then (when it holds no mapping) a map.
fn record_importer(t: &mut Transcript, name: &str, imp: &Importer, base: u64) {
    let mapped = t.step(&format!("{name}: importer"), imp.status(base), |f, _| f.clone());
    let holds = mapped.is_some_and(|f| f.iter().any(|(k, v)| *k == "mapped" && *v == Val::Bool(true)));
    if !holds {
        if t.step(&format!("{name}: importer map"), imp.cmd("map"), none).is_some() {
            t.step(&format!("{name}: importer mapped"), imp.status(base), |f, _| f.clone());
        }
    }
}

// ------------------------------------------------------------ revocation

fn command(d: &Device) -> Result<u16, Fail> {
    config_read16(d, PCI_COMMAND)
}

fn set_decode(d: &Device, on: bool) -> Result<(), Fail> {
    let cmd = command(d)?;
    let cmd = if on { cmd | COMMAND_MEMORY } else { cmd & !COMMAND_MEMORY };
    config_write16(d, PCI_COMMAND, cmd)
}

fn dma_buf_revoke(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf().to_string());
    scenario(|t| {
        let b = bind_by_override(t, driver, &bdf)?;
        let kept = revoke_steps(t, driver, &bdf, &b.cdev);
        // The dma-buf kept past the close outlives the unbind too, revoked.
        unbind_and_check(t, &bdf, &b, true);
        if let Ok(Kept { buf, m, imp, base }) = kept {
            record_map_state(t, driver, "after unbind: the dma-buf kept", &m, &buf, 0, PAGE);
            record_importer(t, "after unbind", &imp, base);
            drop(buf);
            t.step("after unbind: importer detach", imp.cmd("detach"), none);
        }
        Ok(())
    })
}

/// The revocation steps; returns a dma-buf whose device was closed (and the
/// iommufd to map it in), kept across the unbind.
fn revoke_steps(t: &mut Transcript, driver: &Driver, bdf: &str, cdev: &str) -> Result<Kept, Abort> {
    let bars = t.need("BARs", choose_bars(bdf), bar_fields)?;
    let (mem, _) = bars.mem;
    let o = open_cdev(t, cdev, "")?;
    let d = &o.dev;
    let page = Request::new(mem, &[(0, PAGE)]);
    let buf = t.need("GET", get_dma_buf(d, &page), opened)?;
    let base = t.need("BAR start", bar_start(bdf, mem), |_, _| Vec::new())?;
    let imp = t.need("importer: open", Importer::open(), none)?;
    t.need("importer: attach", imp.attach(&buf, bdf, ""), none)?;
    t.step("importer: map", imp.cmd("map"), none);
    let state = |t: &mut Transcript, name: &str, buf: &OwnedFd| record_map_state(t, driver, name, &o.m, buf, 0, PAGE);
    let observe = |t: &mut Transcript, name: &str| {
        record_map_state(t, driver, &format!("{name}: map"), &o.m, &buf, 0, PAGE);
        record_importer(t, name, &imp, base);
    };
    observe(t, "new");
    t.step("command", command(d), |v, _| vec![("memory", Val::Bool(v & COMMAND_MEMORY != 0))]);

    // Memory decode off and on.
    t.step("decode off", set_decode(d, false), none);
    observe(t, "decode off");
    let late = t.step("decode off: GET", get_dma_buf(d, &page), opened);
    if let Some(late) = &late {
        state(t, "decode off: map the new one", late);
        let other = Importer::open();
        if let Some(other) = t.step("decode off: importer of the new one", other, none) {
            t.step("decode off: attach to the new one", other.attach(late, bdf, ""), none);
        }
    }
    t.step("decode off: VFIO_DEVICE_RESET", d.reset(), none);
    observe(t, "decode off, after the reset");
    t.step("decode off: LOW_POWER_ENTRY", feature(d, LOW_POWER_ENTRY | FEATURE_SET, &[]), ret);
    t.step("decode off: LOW_POWER_EXIT", feature(d, LOW_POWER_EXIT | FEATURE_SET, &[]), ret);
    observe(t, "decode off, after low power");
    t.step("decode on", set_decode(d, true), none);
    observe(t, "decode on");
    if let Some(late) = &late {
        state(t, "decode on: map the one made while off", late);
    }
    drop(late);

    // D3hot through PMCSR.
    if let Some(pm) = t.step("find PM", find_cap(bdf, CAP_ID_PM), |p, _| vec![("offset", Val::Hex(*p))]) {
        if let Some(pmcsr) = t.step("PMCSR", config_read16(d, pm + 4), |v, _| vec![("state", Val::Num((v & 3).into()))])
        {
            t.step("PMCSR D3hot", config_write16(d, pm + 4, (pmcsr & !3) | 3), none);
            observe(t, "D3hot");
            t.step("PMCSR D0", config_write16(d, pm + 4, pmcsr & !3), none);
            observe(t, "D0");
        }
    }

    // Low power.
    t.step("LOW_POWER_ENTRY", feature(d, LOW_POWER_ENTRY | FEATURE_SET, &[]), ret);
    observe(t, "low power");
    t.step("LOW_POWER_EXIT", feature(d, LOW_POWER_EXIT | FEATURE_SET, &[]), ret);
    observe(t, "after low power");

    // Resets.
    t.step("VFIO_DEVICE_RESET", d.reset(), none);
    observe(t, "after VFIO_DEVICE_RESET");
    t.step("PCI_HOT_RESET (iommufd)", d.hot_reset(VFIO_PCI_HOT_RESET_MINSZ, 0, &[]), none);
    observe(t, "after PCI_HOT_RESET");
    if let Some(exp) = t.step("find PCI Express", find_cap(bdf, CAP_ID_EXP), |p, _| vec![("offset", Val::Hex(*p))]) {
        let devcap = read_config32(d, exp + PCI_EXP_DEVCAP);
        if let Some(devcap) = t.step("DEVCAP", devcap, |v, _| vec![("FLR", Val::Bool(v & PCI_EXP_DEVCAP_FLR != 0))]) {
            if devcap & PCI_EXP_DEVCAP_FLR != 0 {
                if let Some(ctl) = t.step("DEVCTL", config_read16(d, exp + PCI_EXP_DEVCTL), |_, _| Vec::new()) {
                    t.step(
                        "DEVCTL initiate FLR",
                        config_write16(d, exp + PCI_EXP_DEVCTL, ctl | PCI_EXP_DEVCTL_BCR_FLR),
                        none,
                    );
                    observe(t, "after FLR");
                }
            }
        }
        t.step("decode off for the hot reset", set_decode(d, false), none);
        t.step("decode off: PCI_HOT_RESET", d.hot_reset(VFIO_PCI_HOT_RESET_MINSZ, 0, &[]), none);
        observe(t, "decode off, after PCI_HOT_RESET");
        t.step("decode on after the hot reset", set_decode(d, true), none);
        observe(t, "decode on after the hot reset");
    }

    // Attach rules: only revocable peer-to-peer importers.
    let other = t.need("importer: open another", Importer::open(), none)?;
    t.step("static importer: attach", other.attach(&buf, bdf, " static"), none);
    t.step("importer without invalidation: attach", other.attach(&buf, bdf, " norevoke"), none);
    drop(other);

    // Close: revoked for good, also after the device is opened again.
    let Open { dev, m } = o;
    drop(dev);
    record_map_state(t, driver, "closed: map", &m, &buf, 0, PAGE);
    record_importer(t, "closed", &imp, base);
    let again = open_cdev(t, cdev, "reopened: ")?;
    let new = t.need("reopened: GET", get_dma_buf(&again.dev, &page), opened)?;
    record_map_state(t, driver, "reopened: map the new one", &again.m, &new, 0, PAGE);
    record_map_state(t, driver, "reopened: map the one of the first open", &again.m, &buf, 0, PAGE);
    drop(new);
    drop(again);
    Ok(Kept { buf, m, imp, base })
}

/// What [`revoke_steps`] keeps past the close for the checks after the unbind.
struct Kept {
    buf: OwnedFd,
    m: Mapper,
    imp: Importer,
    base: u64,
}

fn read_config32(d: &Device, offset: u64) -> Result<u32, Fail> {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 4];
    d.file().read_exact_at(&mut b, (u64::from(CONFIG_INDEX) << 40) + offset)?;
    Ok(u32::from_le_bytes(b))
}

fn expect_dma_buf_revoke(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    let live = Val::text("live");
    let revoked = Val::text("revoked");
    let optional = |name: &str| t.find(&format!("{name}: map")).is_some();
    // Revoked at `name`: iommufd's attach and the importer's map are ENODEV.
    let is_revoked = |e: &mut Expect, name: &str| {
        e.val(&format!("{name}: map"), "state", &revoked);
        e.val(&format!("{name}: importer"), "mapped", &Val::Bool(false));
        e.err(&format!("{name}: importer map"), Errno::ENODEV);
    };
    // Live at `name`: iommufd gets past the attach, the importer maps the page again.
    let is_live = |e: &mut Expect, name: &str| {
        e.val(&format!("{name}: map"), "state", &live);
        e.val(&format!("{name}: importer"), "mapped", &Val::Bool(false));
        e.val(&format!("{name}: importer mapped"), "len", &Val::Hex(PAGE));
        e.val(&format!("{name}: importer mapped"), "addr in the BAR", &Val::Hex(0));
    };
    e.val("command", "memory", &Val::Bool(true));
    e.val("new: map", "state", &live);
    e.val("new: importer", "mapped", &Val::Bool(true));
    e.num("new: importer", "invalidations", 0);
    e.num("new: importer", "nents", 1);
    e.val("new: importer", "len", &Val::Hex(PAGE));
    is_revoked(&mut e, "decode off");
    e.val("decode off: map the new one", "state", &revoked);
    e.err("decode off: attach to the new one", Errno::ENODEV);
    e.ok("decode off: VFIO_DEVICE_RESET");
    is_revoked(&mut e, "decode off, after the reset");
    is_revoked(&mut e, "decode off, after low power");
    is_live(&mut e, "decode on");
    e.val("decode on: map the one made while off", "state", &live);
    // Both test devices (e1000e, igb) have the PM capability.
    e.ok("PMCSR D3hot");
    is_revoked(&mut e, "D3hot");
    is_live(&mut e, "D0");
    e.num("LOW_POWER_ENTRY", "ret", 0);
    is_revoked(&mut e, "low power");
    is_live(&mut e, "after low power");
    e.ok("VFIO_DEVICE_RESET");
    e.val("after VFIO_DEVICE_RESET: map", "state", &live);
    e.ok("PCI_HOT_RESET (iommufd)");
    e.val("after PCI_HOT_RESET: map", "state", &live);
    if optional("after FLR") {
        e.val("after FLR: map", "state", &live);
    }
    if t.find("decode off: PCI_HOT_RESET").is_some() {
        e.ok("decode off: PCI_HOT_RESET");
        is_revoked(&mut e, "decode off, after PCI_HOT_RESET");
        is_live(&mut e, "decode on after the hot reset");
    }
    e.err("static importer: attach", EOPNOTSUPP);
    e.err("importer without invalidation: attach", EOPNOTSUPP);
    is_revoked(&mut e, "closed");
    e.val("reopened: map the new one", "state", &live);
    e.val("reopened: map the one of the first open", "state", &revoked);
    e.val("after unbind: the dma-buf kept", "state", &revoked);
    e.val("after unbind: importer", "mapped", &Val::Bool(false));
    e.err("after unbind: importer map", Errno::ENODEV);
    e.finish()
}
