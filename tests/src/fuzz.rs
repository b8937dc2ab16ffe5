//! The seeded fuzzer of the device surface (issue 12): one program, many seeds.  A run
//! binds every function of a site, opens the first one through its group or its cdev, and
//! performs a long random sequence of every device operation with mutated arguments: the
//! info ioctls with edge `argsz`/index values, `SET_IRQS` with every flag combination,
//! index/start/count edges and fd arrays of fresh, closed, wrong-type and reused eventfds,
//! config and BAR `pread`/`pwrite` of random offsets and sizes, `mmap`/`munmap` of random
//! ranges and accesses through the mappings (by the kernel through a pipe, where a refused
//! fault is `EFAULT`, and by a forked child, where it is `SIGBUS`), `IOEVENTFD` and its
//! signals, `FEATURE`, `GET_PCI_HOT_RESET_INFO`, `PCI_HOT_RESET` with valid, closed, foreign
//! and wrong-type fds, `VFIO_DEVICE_RESET`, unknown ioctls, second opens, closes and
//! reopens on either path.
//!
//! Every operation draws its arguments from a generator seeded by the run's seed and the
//! operation's number, never from earlier results, so both drivers perform the same
//! operations in the same order; each is one transcript step (its number, what it did,
//! its result, errno, count or bytes: nothing that depends on time, fd numbers or
//! addresses), and the harness compares the two drivers' transcripts step by step.
//!
//! Left out, because their outcome is the emulated device's or the clock's, not the
//! driver's (both drivers forward them unchanged): the data of BAR reads (device registers
//! such as timers and interrupt causes change by themselves; the ROM's bytes are kept),
//! the Interrupt Status bit of the status register, and eventfd counts (device interrupts
//! and ioeventfd writes are asynchronous).  Excluded, because they would make the device
//! itself act on random memory for both drivers: setting Bus Master Enable (config writes
//! to the command register have bit 2 cleared), so that randomly programmed DMA and MSI
//! never leave the device.  `VFIO_DEVICE_FEATURE_DMA_BUF` GETs draw random regions, flags,
//! open flags and ranges; a dma-buf one returns is described (size, fd flags) and closed at
//! once.  A successful `LOW_POWER_ENTRY` is followed by a wait
//! for the function to runtime-suspend, which vfio-pci does asynchronously.

use crate::regions::single_known_function;
use crate::reset::{at_most_labels, bind_site, cdev_bound, group_device, legacy, unbind_site, Legacy, Member};
use crate::scenarios::{Ctx, Scenario, Site};
use crate::sys::{ioctl_ptr, ioctl_val, new_eventfd, ChildTouch, Errno, Fail, Mapping, Pipe};
use crate::sysfs;
use crate::transcript::{Abort, Fields, Outcome, Step, Transcript, Val};
use crate::uapi::*;
use crate::vfio::{Container, Device, Iommufd};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::raw::{c_ulong, c_void};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// Operations per run in the suite (`VFIO_PCI_RS_FUZZ_OPS` overrides it).
const OPS_SINGLE: usize = 7_500;
const OPS_SET: usize = 7_500;
const OPS_ROOTBUS: usize = 7_500;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "fuzz_single",
            rule: "a seeded random sequence of every device operation with mutated arguments, on a single function behind a bridge: every result, errno, count and virtual config byte as vfio-pci's; every errno one the uAPI documents; the function opens and answers cleanly afterwards",
            loads_module: false,
            applies: single_known_function,
            run: fuzz_single,
            expect: expect_fuzz,
        },
        Scenario {
            name: "fuzz_set",
            rule: "as fuzz_single, on the first function of a multi-function reset set (hot-reset proofs with every group, a foreign group, wrong-type and closed fds)",
            loads_module: false,
            applies: multi_function_known,
            run: fuzz_set,
            expect: expect_fuzz,
        },
        Scenario {
            name: "fuzz_rootbus",
            rule: "as fuzz_single, on a function no slot or bus reset reaches",
            loads_module: false,
            applies: rootbus_known,
            run: fuzz_rootbus,
            expect: expect_fuzz,
        },
    ]
}

fn known(site: &Site) -> Result<(), String> {
    match site.functions.iter().find(|f| sysfs::model_of(f).is_none()) {
        Some(f) => Err(format!("{f}: unknown device model")),
        None => Ok(()),
    }
}

fn multi_function_known(site: &Site) -> Result<(), String> {
    at_most_labels(site)?;
    if site.functions.len() < 2 || !site.hot_reset {
        return Err("not a multi-function reset set".into());
    }
    known(site)
}

fn rootbus_known(site: &Site) -> Result<(), String> {
    if site.functions.len() != 1 || site.hot_reset {
        return Err("not a single function without slot or bus reset".into());
    }
    known(site)
}

fn fuzz_single(c: &Ctx) -> Transcript {
    run(c, 0x5eed_0001, OPS_SINGLE)
}

fn fuzz_set(c: &Ctx) -> Transcript {
    run(c, 0x5eed_0002, OPS_SET)
}

fn fuzz_rootbus(c: &Ctx) -> Transcript {
    run(c, 0x5eed_0003, OPS_ROOTBUS)
}

// ------------------------------------------------------------------ the generator

/// SplitMix64: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when n is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// An edge value of a u32 field, or `typical`.
    fn edge32(&mut self, typical: u32) -> u32 {
        if self.percent(75) {
            return typical;
        }
        let e = [0, 1, typical.wrapping_sub(1), typical.wrapping_add(1), 0x7fff_ffff, 0x8000_0000, u32::MAX];
        self.pick(&e)
    }

    /// `n` bytes: zeroes, ones, or random.
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        match self.below(4) {
            0 => vec![0; n],
            1 => vec![0xff; n],
            _ => (0..n).map(|_| self.next() as u8).collect(),
        }
    }
}

/// The generator of operation `op` of the run seeded `seed`.
fn op_rng(seed: u64, op: usize) -> Rng {
    let mut r = Rng::new(seed ^ (op as u64).wrapping_mul(0xd6e8_feb8_6659_fd93));
    r.next();
    r
}

/// FNV-1a of a string (the site's first function), to give every site its own seed.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

// ------------------------------------------------------------------ the uAPI, raw

const REGION_SHIFT: u32 = 40;
const ROM_INDEX: u32 = 6;
const CONFIG_INDEX: u32 = 7;
const VFIO_DEVICE_GET_IRQ_INFO: c_ulong = io(VFIO_TYPE, VFIO_BASE + 9);
const VFIO_DEVICE_SET_IRQS: c_ulong = io(VFIO_TYPE, VFIO_BASE + 10);
const VFIO_DEVICE_IOEVENTFD: c_ulong = io(VFIO_TYPE, VFIO_BASE + 16);
const PCI_STATUS: u64 = 0x06;
const PCI_STATUS_INTERRUPT: u8 = 0x08;
const PCI_COMMAND: u64 = 0x04;
const PCI_COMMAND_MASTER: u8 = 0x04;
const FEATURE_GET: u32 = 1 << 16;
const FEATURE_SET: u32 = 1 << 17;
const FEATURE_PROBE: u32 = 1 << 18;
const FEATURE_LOW_POWER_ENTRY: u32 = 3;
const FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP: u32 = 4;
const FEATURE_LOW_POWER_EXIT: u32 = 5;
/// Operations in low power before the fuzzer leaves it (`LOW_POWER_EXIT`): each one that
/// reaches the function costs a resume and a suspend (about 0.1 s in the guest).
const LOW_POWER_OPS: usize = 8;
const FEATURE_DMA_BUF: u32 = 11;
/// The largest buffer an ioctl gets: every reply the uAPI defines is far smaller.
const BUF: usize = 8192;

fn region_offset(index: u32) -> u64 {
    u64::from(index) << REGION_SHIFT
}

/// One ioctl with a pointer to a `BUF`-byte buffer holding `head`; the buffer afterwards.
///
/// Every request issued through here is a device ioctl that reads at most its fixed header
/// plus what its header's fields size (bounded by the function's IRQ, region and group
/// counts) and writes at most its reply (the fixed part and a capability chain well under
/// a page), whatever `argsz` says; `BUF` bytes cover all of them.
fn raw_ioctl(d: &Device, request: c_ulong, head: &[u8], fill: u8) -> (Result<i32, Errno>, Vec<u8>) {
    let mut buf = vec![fill; BUF + 8];
    // Align to 8 inside the Vec.
    let off = buf.as_ptr().align_offset(8);
    buf[off..off + head.len().min(BUF)].copy_from_slice(&head[..head.len().min(BUF)]);
    // SAFETY: the kernel reads and writes at most BUF bytes from the pointer for every
    // request this module issues (see above); the buffer holds BUF bytes from `off`, is not
    // otherwise borrowed during the call and outlives it.
    let r = unsafe { ioctl_ptr(d, request, buf[off..].as_mut_ptr().cast::<c_void>()) };
    buf.drain(..off);
    buf.truncate(BUF);
    (r, buf)
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).map_or(0, |w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
}

fn words(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

// ------------------------------------------------------------------ the run

/// How the function is open.
struct Open {
    cdev: bool,
    dev: Device,
    /// The group path's container and groups (every function of the site).
    legacy: Option<Legacy>,
    /// The cdev path's iommufd.
    _ictx: Option<Iommufd>,
}

/// What an fd slot of an fd array holds.
#[derive(Clone, Copy, Debug)]
enum FdKind {
    Fresh,
    Minus1,
    Closed,
    DevNull,
    Container,
    Device,
    Reused,
    Group,
    ForeignGroup,
}

impl FdKind {
    fn name(self) -> &'static str {
        match self {
            FdKind::Fresh => "efd",
            FdKind::Minus1 => "-1",
            FdKind::Closed => "closed",
            FdKind::DevNull => "null",
            FdKind::Container => "container",
            FdKind::Device => "device",
            FdKind::Reused => "reused-efd",
            FdKind::Group => "group",
            FdKind::ForeignGroup => "foreign-group",
        }
    }
}

/// A fd number that is never open (the process has far fewer fds).
const CLOSED_FD: i32 = 977;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    ConfigRead,
    ConfigWrite,
    BarRead,
    BarWrite,
    RegionInfo,
    DeviceInfo,
    IrqInfo,
    SetIrqs,
    Mmap,
    Munmap,
    MapAccess,
    MapChild,
    Ioeventfd,
    SignalIoeventfd,
    Feature,
    HotResetInfo,
    HotReset,
    Reset,
    RawIoctl,
    SecondOpen,
    Reopen,
}

/// The operations and their weights (out of the sum): cheap ones often, resets and reopens
/// (each a function or bus reset: tens to hundreds of milliseconds in the guest) rarely.
const WEIGHTS: &[(Op, u64)] = &[
    (Op::ConfigRead, 220),
    (Op::ConfigWrite, 150),
    (Op::BarRead, 150),
    (Op::BarWrite, 100),
    (Op::RegionInfo, 40),
    (Op::DeviceInfo, 20),
    (Op::IrqInfo, 25),
    (Op::SetIrqs, 30),
    (Op::Mmap, 20),
    (Op::Munmap, 12),
    (Op::MapAccess, 150),
    (Op::MapChild, 8),
    (Op::Ioeventfd, 15),
    (Op::SignalIoeventfd, 8),
    (Op::Feature, 35),
    (Op::HotResetInfo, 25),
    (Op::HotReset, 3),
    (Op::Reset, 1),
    (Op::RawIoctl, 15),
    (Op::SecondOpen, 3),
    (Op::Reopen, 1),
];

struct Fuzz<'a> {
    t: Transcript,
    seed: u64,
    op: usize,
    rng: Rng,
    site: &'a Site,
    members: &'a [Member],
    open: Option<Open>,
    /// (size, flags) of regions 0..=8 as GET_REGION_INFO gave them at the last open.
    regions: Vec<Option<(u64, u32)>>,
    maps: Vec<Mapping>,
    eventfds: Vec<OwnedFd>,
    /// Registered ioeventfds: flags, offset, data and the eventfd.
    ioevents: Vec<(u32, u64, u64, OwnedFd)>,
    pipe: Pipe,
    null: File,
    container: Container,
    counts: Vec<(Op, u64)>,
    /// Config registers with side effects (command, BARs, ROM BAR, interrupt line, PMCSR,
    /// MSI and MSI-X control, PCIe device and link control), which a quarter of the config
    /// writes aim at.
    hot: Vec<u64>,
    /// PMCSR's offset (the PM capability's control register), if the function has one.
    pmcsr: Option<u64>,
    /// Waits for a runtime suspend after an operation in low power (see [`Fuzz::settle`]):
    /// how many, and how many timed out.
    settles: (u64, u64),
    /// Operations since the function last went to low power (0 when it is not in low power).
    low_power_ops: usize,
}

fn ok(fields: Fields) -> Outcome {
    Outcome::Ok(fields)
}

fn ret_outcome(r: Result<i32, Errno>) -> Outcome {
    match r {
        Ok(v) => ok(vec![("ret", Val::Num(v as u64))]),
        Err(e) => Outcome::Err(e),
    }
}

fn count_outcome(r: Result<usize, Errno>) -> Outcome {
    match r {
        Ok(n) => ok(vec![("count", Val::Num(n as u64))]),
        Err(e) => Outcome::Err(e),
    }
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno(e.raw_os_error().unwrap_or(0))
}

impl<'a> Fuzz<'a> {
    /// Append one step (names carry the operation number, so they are unique).
    fn rec(&mut self, what: String, outcome: Outcome) {
        self.t.steps.push(Step { name: format!("{:06} {what}", self.op), outcome });
    }

    fn dev(&self) -> Option<&Device> {
        self.open.as_ref().map(|o| &o.dev)
    }

    fn region(&self, index: u32) -> Option<(u64, u32)> {
        self.regions.get(index as usize).copied().flatten()
    }

    /// The BAR indices with a non-zero size.
    fn bars(&self) -> Vec<u32> {
        (0..6).filter(|i| self.region(*i).is_some_and(|(s, _)| s > 0)).collect()
    }

    fn config_size(&self) -> u64 {
        self.region(CONFIG_INDEX).map_or(256, |(s, _)| s)
    }

    /// Open the first function through its group or cdev; records the steps of the open
    /// and the region infos.  Failing, the fuzzer carries on with no device open.
    fn open(&mut self, cdev: bool) {
        // After the last close both drivers let the function runtime-suspend, asynchronously
        // (the put's idle work). Whether this open finds it still resumed or resumes it
        // (PMCSR written 0, so the Data Select bits user space set are gone) would be up to the
        // scheduler; with two vCPUs the work runs beside the fuzzer and both happened, on
        // either driver. Waiting for the suspend makes it always the latter.
        self.await_suspend();
        let p = format!("{:06} open {}: ", self.op, if cdev { "cdev" } else { "group" });
        let members = self.members;
        let a = &members[0];
        let opened = (|| -> Result<Open, Abort> {
            if cdev {
                let ictx = self.t.need(&format!("{p}open /dev/iommu"), Iommufd::open(), |_, _| Vec::new())?;
                let dev = cdev_bound(&mut self.t, &p, a, &ictx, "ictx")?;
                Ok(Open { cdev, dev, legacy: None, _ictx: Some(ictx) })
            } else {
                let all: Vec<&Member> = members.iter().collect();
                let lg = legacy(&mut self.t, &p, &all)?;
                let dev = group_device(&mut self.t, &p, &lg, a)?;
                Ok(Open { cdev, dev, legacy: Some(lg), _ictx: None })
            }
        })();
        self.open = opened.ok();
        self.regions = vec![None; 9];
        if self.open.is_none() {
            return;
        }
        for index in 0..9u32 {
            let (r, b) = self.region_info_raw(index, 32);
            if r.is_ok() {
                self.regions[index as usize] =
                    Some((u64::from_ne_bytes(b[16..24].try_into().unwrap_or([0; 8])), le32(&b, 4)));
            }
            let outcome = match r {
                Ok(_) => ok(vec![("bytes", Val::Bytes(b[..32].to_vec()))]),
                Err(e) => Outcome::Err(e),
            };
            self.rec(format!("open: GET_REGION_INFO {index}"), outcome);
        }
    }

    fn region_info_raw(&self, index: u32, argsz: u32) -> (Result<i32, Errno>, Vec<u8>) {
        let Some(d) = self.dev() else { return (Err(Errno::EBADF), Vec::new()) };
        let mut head = words(&[argsz, 0, index, 0]);
        head.extend_from_slice(&[0xa5; 16]);
        raw_ioctl(d, VFIO_DEVICE_GET_REGION_INFO, &head, 0xa5)
    }

    fn close(&mut self, unmap: bool) {
        if unmap {
            self.maps.clear();
        }
        self.ioevents.clear();
        self.open = None;
    }

    /// A fresh eventfd, kept until the pool overflows.
    fn fresh_eventfd(&mut self) -> i32 {
        match new_eventfd() {
            Ok(fd) => {
                let raw = fd.as_raw_fd();
                self.eventfds.push(fd);
                if self.eventfds.len() > 48 {
                    self.eventfds.remove(0);
                }
                raw
            }
            Err(_) => CLOSED_FD,
        }
    }

    /// An fd of the kind drawn, and the kind.
    fn draw_fd(&mut self, kinds: &[(FdKind, u64)]) -> (i32, FdKind) {
        let total: u64 = kinds.iter().map(|(_, w)| w).sum();
        let mut x = self.rng.below(total);
        let mut kind = kinds[0].0;
        for (k, w) in kinds {
            if x < *w {
                kind = *k;
                break;
            }
            x -= w;
        }
        let fd = match kind {
            FdKind::Fresh => self.fresh_eventfd(),
            FdKind::Minus1 => -1,
            FdKind::Closed => CLOSED_FD,
            FdKind::DevNull => self.null.as_raw_fd(),
            FdKind::Container => self.container.raw_fd(),
            FdKind::Device => self.dev().map_or(CLOSED_FD, |d| d.as_raw_fd()),
            FdKind::Reused => match self.eventfds.len() as u64 {
                0 => self.fresh_eventfd(),
                n => {
                    let i = self.rng.below(n) as usize;
                    self.eventfds[i].as_raw_fd()
                }
            },
            FdKind::Group | FdKind::ForeignGroup => {
                let lg = self.open.as_ref().and_then(|o| o.legacy.as_ref());
                let fds = match (lg, kind) {
                    (Some(lg), FdKind::Group) => lg.fds_of(&[&self.members[0]]),
                    (Some(lg), _) => {
                        let others: Vec<&Member> =
                            self.members.iter().filter(|m| m.group != self.members[0].group).collect();
                        lg.fds_of(&others)
                    }
                    _ => Vec::new(),
                };
                fds.first().copied().unwrap_or(CLOSED_FD)
            }
        };
        (fd, kind)
    }

    /// A region offset: inside the region mostly, else an edge.
    fn draw_offset(&mut self, size: u64, align: u64) -> u64 {
        if size > 0 && self.rng.percent(85) {
            let o = self.rng.below(size);
            return if self.rng.percent(70) { o & !(align - 1) } else { o };
        }
        let e = [size.wrapping_sub(1), size, size + 1, size.wrapping_sub(4), 0xffff_ffff, (1 << REGION_SHIFT) - 1];
        self.rng.pick(&e)
    }

    fn draw_len(&mut self) -> usize {
        if self.rng.percent(75) {
            return self.rng.pick(&[1, 2, 4, 4, 8]);
        }
        let random = 1 + self.rng.below(300) as usize;
        self.rng.pick(&[0, 3, 5, 6, 7, 16, 64, 256, 4096, random])
    }

    fn draw_region_index(&mut self) -> u32 {
        let bars = self.bars();
        if !bars.is_empty() && self.rng.percent(85) {
            return self.rng.pick(&bars);
        }
        self.rng.pick(&[ROM_INDEX, 8, 9, 0x1f, 0xff, 0xffff])
    }

    // ------------------------------------------------------------- the operations

    fn config_read(&mut self) {
        let size = self.config_size();
        let offset = if self.rng.percent(60) { self.rng.below(0x100) } else { self.draw_offset(size, 4) };
        let len = self.draw_len();
        let Some(d) = self.dev() else { return };
        let mut buf = vec![0x5a; len];
        let r = d.file().read_at(&mut buf, region_offset(CONFIG_INDEX) + offset).map_err(io_errno);
        let outcome = match r {
            Ok(n) => {
                buf.truncate(n);
                // The Interrupt Status bit follows the emulated device's INTx line.
                if offset <= PCI_STATUS && PCI_STATUS < offset + n as u64 {
                    buf[(PCI_STATUS - offset) as usize] &= !PCI_STATUS_INTERRUPT;
                }
                ok(vec![("bytes", Val::Bytes(buf))])
            }
            Err(e) => Outcome::Err(e),
        };
        self.rec(format!("config read {offset:#x}+{len}"), outcome);
    }

    fn config_write(&mut self) {
        let size = self.config_size();
        let (offset, len) = if self.rng.percent(25) {
            (self.rng.pick(&self.hot), self.rng.pick(&[1, 2, 2, 4]))
        } else {
            let offset = if self.rng.percent(60) { self.rng.below(0x100) } else { self.draw_offset(size, 4) };
            (offset, if self.rng.percent(85) { self.rng.pick(&[1, 2, 4]) } else { self.draw_len() })
        };
        let mut data = self.rng.bytes(len);
        if offset <= PCI_COMMAND && PCI_COMMAND < offset + len as u64 {
            data[(PCI_COMMAND - offset) as usize] &= !PCI_COMMAND_MASTER;
        }
        let Some(d) = self.dev() else { return };
        let r = d.file().write_at(&data, region_offset(CONFIG_INDEX) + offset).map_err(io_errno);
        let mut outcome = count_outcome(r);
        // A write that reaches PMCSR's power state may change it: what the PCI core says now.
        if self.pmcsr.is_some_and(|at| offset <= at && at < offset + len as u64) {
            self.with_power_state(&mut outcome);
        }
        self.rec(format!("config write {offset:#x}+{len} {}", Val::Bytes(data)), outcome);
    }

    fn bar_read(&mut self) {
        let index = self.draw_region_index();
        let size = self.region(index).map_or(0, |(s, _)| s);
        let offset = self.draw_offset(size, 4);
        let len = self.draw_len();
        let Some(d) = self.dev() else { return };
        let mut buf = vec![0x5a; len];
        let r = d.file().read_at(&mut buf, region_offset(index) + offset).map_err(io_errno);
        let outcome = match r {
            // The ROM's bytes are the device's firmware image: kept.
            Ok(n) if index == ROM_INDEX => {
                buf.truncate(n);
                ok(vec![("count", Val::Num(n as u64)), ("bytes", Val::Bytes(buf))])
            }
            Ok(n) => ok(vec![("count", Val::Num(n as u64))]),
            Err(e) => Outcome::Err(e),
        };
        self.rec(format!("region {index} read {offset:#x}+{len}"), outcome);
    }

    fn bar_write(&mut self) {
        let index = self.draw_region_index();
        let size = self.region(index).map_or(0, |(s, _)| s);
        let offset = self.draw_offset(size, 4);
        let len = self.draw_len();
        let data = self.rng.bytes(len);
        let Some(d) = self.dev() else { return };
        let r = d.file().write_at(&data, region_offset(index) + offset).map_err(io_errno);
        self.rec(format!("region {index} write {offset:#x}+{len}"), count_outcome(r));
    }

    /// Record an info ioctl's reply: its return and the first `shown` bytes of the buffer.
    fn rec_reply(&mut self, what: String, (r, b): (Result<i32, Errno>, Vec<u8>), shown: usize) {
        let outcome = match r {
            Ok(v) => ok(vec![("ret", Val::Num(v as u64)), ("bytes", Val::Bytes(b[..shown.min(b.len())].to_vec()))]),
            Err(e) => Outcome::Err(e),
        };
        self.rec(what, outcome);
    }

    fn draw_argsz(&mut self, typical: u32) -> u32 {
        if self.rng.percent(25) {
            return self.rng.pick(&[0, 4, 8, 11, 12, 15, 16, 20, 24, 28, 31, 32, 64, 100, 4096, u32::MAX]);
        }
        self.rng.edge32(typical)
    }

    fn shown(argsz: u32, min: usize) -> usize {
        (argsz as usize).clamp(min, 256)
    }

    fn device_info(&mut self) {
        let argsz = self.draw_argsz(24);
        let Some(d) = self.dev() else { return };
        let mut head = words(&[argsz]);
        head.resize(24, 0xa5);
        let reply = raw_ioctl(d, VFIO_DEVICE_GET_INFO, &head, 0xa5);
        self.rec_reply(format!("GET_INFO argsz={argsz}"), reply, Self::shown(argsz, 24));
    }

    fn region_info(&mut self) {
        let argsz = self.draw_argsz(32);
        let index = if self.rng.percent(80) { self.rng.below(10) as u32 } else { self.rng.edge32(8) };
        let reply = self.region_info_raw(index, argsz);
        if self.open.is_none() {
            return;
        }
        self.rec_reply(format!("GET_REGION_INFO index={index} argsz={argsz}"), reply, Self::shown(argsz, 32));
    }

    fn irq_info(&mut self) {
        let argsz = self.draw_argsz(16);
        let index = if self.rng.percent(80) { self.rng.below(6) as u32 } else { self.rng.edge32(5) };
        let Some(d) = self.dev() else { return };
        let mut head = words(&[argsz, 0xa5a5_a5a5, index, 0xa5a5_a5a5]);
        head.resize(32, 0xa5);
        let reply = raw_ioctl(d, VFIO_DEVICE_GET_IRQ_INFO, &head, 0xa5);
        self.rec_reply(format!("GET_IRQ_INFO index={index} argsz={argsz}"), reply, 32);
    }

    fn set_irqs(&mut self) {
        const DATA: [u32; 3] = [1, 2, 4];
        const ACTION: [u32; 3] = [1 << 3, 1 << 4, 1 << 5];
        let index = if self.rng.percent(90) { self.rng.below(5) as u32 } else { self.rng.edge32(5) };
        let flags = if self.rng.percent(90) {
            let data = if self.rng.percent(50) { 4 } else { self.rng.pick(&DATA) };
            data | self.rng.pick(&ACTION)
        } else {
            self.rng.next() as u32 & 0x3f | if self.rng.percent(20) { 1 << 6 } else { 0 }
        };
        let start = if self.rng.percent(80) { self.rng.below(3) as u32 } else { self.rng.edge32(0) };
        let count = if self.rng.percent(85) { self.rng.below(6) as u32 } else { self.rng.edge32(1) };
        // The data: as many elements as count says (at most 8), as flags' data type wants.
        let n = (count as usize).min(8);
        let mut desc: Vec<&str> = Vec::new();
        let data: Vec<u8> = if flags & 4 != 0 {
            let kinds = [
                (FdKind::Fresh, 70),
                (FdKind::Minus1, 10),
                (FdKind::Closed, 5),
                (FdKind::DevNull, 4),
                (FdKind::Device, 3),
                (FdKind::Reused, 8),
            ];
            let fds: Vec<u32> = (0..n)
                .map(|_| {
                    let (fd, k) = self.draw_fd(&kinds);
                    desc.push(k.name());
                    fd as u32
                })
                .collect();
            words(&fds)
        } else if flags & 2 != 0 {
            (0..n).map(|_| if self.rng.percent(80) { self.rng.below(2) as u8 } else { self.rng.next() as u8 }).collect()
        } else {
            Vec::new()
        };
        let exact = 20 + data.len() as u32;
        let argsz = if self.rng.percent(85) { exact } else { self.draw_argsz(exact) };
        let mut head = words(&[argsz, flags, index, start, count]);
        head.extend_from_slice(&data);
        let what = format!(
            "SET_IRQS argsz={argsz} flags={flags:#x} index={index} start={start} count={count} data=[{}]",
            if desc.is_empty() { Val::Bytes(data.clone()).to_string() } else { desc.join(" ") }
        );
        let Some(d) = self.dev() else { return };
        let (r, _) = raw_ioctl(d, VFIO_DEVICE_SET_IRQS, &head, 0);
        self.rec(what, ret_outcome(r));
    }

    fn mmap(&mut self) {
        if self.maps.len() >= 16 {
            return self.munmap();
        }
        let index =
            if self.rng.percent(85) { self.draw_region_index() } else { self.rng.pick(&[CONFIG_INDEX, ROM_INDEX]) };
        let size = self.region(index).map_or(0, |(s, _)| s);
        let pages = size.div_ceil(4096).max(1);
        let offset = if self.rng.percent(85) {
            self.rng.below(pages) * 4096
        } else {
            self.rng.pick(&[1, 0x800, size, size + 4096, pages * 4096, 1 << 39])
        };
        let len = if self.rng.percent(85) {
            (1 + self.rng.below(pages.min(8))) as usize * 4096
        } else {
            self.rng.pick(&[0usize, 1, 100, 4095, 4097, (pages as usize + 1) * 4096])
        };
        let prot = if self.rng.percent(75) {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            self.rng.pick(&[libc::PROT_READ, libc::PROT_WRITE, libc::PROT_NONE, libc::PROT_READ | libc::PROT_EXEC])
        };
        let flags = if self.rng.percent(85) { libc::MAP_SHARED } else { libc::MAP_PRIVATE };
        let Some(d) = self.dev() else { return };
        let r = Mapping::map(d, region_offset(index) + offset, len, prot, flags);
        let what = format!("mmap region {index} {offset:#x}+{len:#x} prot={prot} flags={flags}");
        match r {
            Ok(m) => {
                let pages = m.len() / 4096;
                self.maps.push(m);
                self.rec(what, ok(vec![("pages", Val::Num(pages as u64))]));
            }
            Err(e) => self.rec(what, Outcome::Err(e)),
        }
    }

    fn munmap(&mut self) {
        if self.maps.is_empty() {
            return;
        }
        let i = self.rng.below(self.maps.len() as u64) as usize;
        let pages = self.maps[i].len() / 4096;
        let start = self.rng.below(pages as u64) as usize;
        let n = 1 + self.rng.below((pages - start) as u64) as usize;
        let m = self.maps.remove(i);
        let (r, left) = m.unmap_part(start * 4096, n * 4096);
        let outcome = match r {
            Ok(()) => ok(vec![("pieces left", Val::Num(left.len() as u64))]),
            Err(e) => Outcome::Err(e),
        };
        self.maps.extend(left);
        self.rec(format!("munmap map {i} pages {start}+{n} of {pages}"), outcome);
    }

    /// A mapping, an offset in it and an access size.
    fn draw_access(&mut self) -> Option<(usize, usize, usize)> {
        if self.maps.is_empty() {
            return None;
        }
        let i = self.rng.below(self.maps.len() as u64) as usize;
        let size = self.rng.pick(&[1usize, 2, 4, 4, 4, 8]);
        let len = self.maps[i].len();
        let mut off = self.rng.below((len - size + 1) as u64) as usize;
        if self.rng.percent(80) {
            off &= !(size - 1);
        }
        Some((i, off, size))
    }

    fn map_access(&mut self) {
        let Some((i, off, size)) = self.draw_access() else { return };
        let write = self.rng.percent(40);
        let data = self.rng.bytes(size);
        let (what, r) = if write {
            ("write", self.maps[i].kernel_write(off, &data, &self.pipe))
        } else {
            ("read", self.maps[i].kernel_read(off, size, &self.pipe))
        };
        self.rec(format!("map {i} kernel {what} {off:#x}+{size}"), count_outcome(r));
    }

    fn map_child(&mut self) {
        let Some((i, off, size)) = self.draw_access() else { return };
        let value = self.rng.percent(40).then(|| self.rng.next());
        let r = self.maps[i].touch_in_child(off, size, value);
        let what = if value.is_some() { "write" } else { "read" };
        let outcome = match r {
            Ok(ChildTouch::Read) => ok(vec![("access", Val::text("done"))]),
            Ok(ChildTouch::Signal(libc::SIGBUS)) => ok(vec![("access", Val::text("SIGBUS"))]),
            Ok(ChildTouch::Signal(libc::SIGSEGV)) => ok(vec![("access", Val::text("SIGSEGV"))]),
            Ok(ChildTouch::Signal(n)) => ok(vec![("access", Val::text(format!("signal {n}")))]),
            Ok(ChildTouch::Exit(n)) => ok(vec![("access", Val::text(format!("exit {n}")))]),
            Err(f) => Outcome::from(f),
        };
        self.rec(format!("map {i} child {what} {off:#x}+{size}"), outcome);
    }

    fn ioeventfd(&mut self) {
        // De-assign one registered half of the time there is one.
        if !self.ioevents.is_empty() && self.rng.percent(35) {
            let i = self.rng.below(self.ioevents.len() as u64) as usize;
            let (flags, offset, data) = (self.ioevents[i].0, self.ioevents[i].1, self.ioevents[i].2);
            let head = ioeventfd_head(32, flags, offset, data, -1);
            let Some(d) = self.dev() else { return };
            let (r, _) = raw_ioctl(d, VFIO_DEVICE_IOEVENTFD, &head, 0);
            if r.is_ok() {
                self.ioevents.remove(i);
            }
            self.rec(
                format!("IOEVENTFD de-assign #{i} flags={flags:#x} offset={offset:#x} data={data:#x}"),
                ret_outcome(r),
            );
            return;
        }
        let flags = if self.rng.percent(85) { self.rng.pick(&[1, 2, 4, 4, 8]) } else { self.rng.next() as u32 & 0x1f };
        let width = match flags {
            1 => 1,
            2 => 2,
            8 => 8,
            _ => 4,
        };
        let index =
            if self.rng.percent(85) { self.draw_region_index() } else { self.rng.pick(&[ROM_INDEX, CONFIG_INDEX, 8]) };
        let size = self.region(index).map_or(0, |(s, _)| s);
        let offset = region_offset(index) + self.draw_offset(size, width);
        let data = self.rng.next() & if self.rng.percent(50) { 0xffff_ffff } else { u64::MAX };
        let (fd, kind) = self.draw_fd(&[
            (FdKind::Fresh, 80),
            (FdKind::Minus1, 6),
            (FdKind::Closed, 4),
            (FdKind::DevNull, 4),
            (FdKind::Reused, 6),
        ]);
        let argsz = if self.rng.percent(90) { 32 } else { self.draw_argsz(32) };
        let head = ioeventfd_head(argsz, flags, offset, data, fd);
        let Some(d) = self.dev() else { return };
        let (r, _) = raw_ioctl(d, VFIO_DEVICE_IOEVENTFD, &head, 0);
        if r.is_ok() && matches!(kind, FdKind::Fresh) {
            if let Some(efd) = self.eventfds.pop() {
                self.ioevents.push((flags, offset, data, efd));
            }
        }
        self.rec(
            format!("IOEVENTFD argsz={argsz} flags={flags:#x} offset={offset:#x} data={data:#x} fd={}", kind.name()),
            ret_outcome(r),
        );
    }

    fn signal_ioeventfd(&mut self) {
        if self.ioevents.is_empty() {
            return;
        }
        let i = self.rng.below(self.ioevents.len() as u64) as usize;
        let mut f = match self.ioevents[i].3.try_clone() {
            Ok(fd) => File::from(fd),
            Err(_) => return,
        };
        let r = std::io::Write::write(&mut f, &1u64.to_ne_bytes()).map_err(io_errno);
        self.rec(format!("signal ioeventfd #{i}"), count_outcome(r));
    }

    fn feature(&mut self) {
        let index = if self.rng.percent(85) { self.rng.below(13) as u32 } else { self.rng.next() as u32 & 0xffff };
        let ops = if self.rng.percent(85) {
            self.rng.pick(&[
                FEATURE_GET,
                FEATURE_SET,
                FEATURE_PROBE | FEATURE_GET,
                FEATURE_PROBE | FEATURE_SET,
                FEATURE_PROBE,
                0,
            ])
        } else {
            (self.rng.next() as u32) & 0xffff_0000
        };
        let flags = index | ops;
        if index == FEATURE_DMA_BUF && self.rng.percent(90) {
            return self.dma_buf(flags);
        }
        let mut desc = String::new();
        let data: Vec<u8> = if index == FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP && self.rng.percent(70) {
            let (fd, kind) =
                self.draw_fd(&[(FdKind::Fresh, 80), (FdKind::Closed, 5), (FdKind::DevNull, 5), (FdKind::Minus1, 10)]);
            desc = format!(" wakeup={}", kind.name());
            let reserved = if self.rng.percent(90) { 0 } else { self.rng.next() as u32 };
            words(&[fd as u32, reserved])
        } else {
            let random = 1 + self.rng.below(40) as usize;
            let len = self.rng.pick(&[0usize, 0, 4, 8, 16, random]);
            self.rng.bytes(len)
        };
        let exact = 8 + data.len() as u32;
        let argsz = if self.rng.percent(85) { exact } else { self.draw_argsz(exact) };
        let mut head = words(&[argsz, flags]);
        head.extend_from_slice(&data);
        if desc.is_empty() && !data.is_empty() {
            desc = format!(" data={}", Val::Bytes(data.clone()));
        }
        let Some(d) = self.dev() else { return };
        let (r, _) = raw_ioctl(d, VFIO_DEVICE_FEATURE, &head, 0);
        let mut outcome = ret_outcome(r);
        let entered = r.is_ok()
            && ops & FEATURE_SET != 0
            && ops & FEATURE_PROBE == 0
            && matches!(index, FEATURE_LOW_POWER_ENTRY | FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP);
        if entered {
            // Both drivers suspend asynchronously: wait for it, so that what follows is not a
            // race.
            self.settle();
            let status = std::fs::read_to_string(sysfs::device_dir(&self.members[0].bdf).join("power/runtime_status"))
                .unwrap_or_default();
            if let Outcome::Ok(f) = &mut outcome {
                f.push(("runtime_status", Val::text(status.trim())));
            }
        }
        self.rec(format!("FEATURE argsz={argsz} flags={flags:#x}{desc}"), outcome);
    }

    /// `VFIO_DEVICE_FEATURE_DMA_BUF` (`flags`: its index and the operation bits drawn): a
    /// region (a BAR mostly), open flags, flags and 0-3 ranges (or a count the kernel cannot
    /// allocate: it fails before reading them), ranges in the BAR mostly, else unaligned,
    /// empty, past the end or overflowing.  A dma-buf it returns is looked at (size, fd
    /// flags) and closed at once.
    fn dma_buf(&mut self, flags: u32) {
        let region = if self.rng.percent(85) { self.draw_region_index() } else { self.rng.pick(&[CONFIG_INDEX, 8]) };
        let size = self.region(region).map_or(0, |(s, _)| s);
        let open_flags = if self.rng.percent(80) {
            self.rng.pick(&[libc::O_RDWR | libc::O_CLOEXEC, libc::O_RDWR, libc::O_RDONLY | libc::O_CLOEXEC])
        } else {
            self.rng.pick(&[libc::O_WRONLY, libc::O_RDWR | libc::O_NONBLOCK, libc::O_ACCMODE, libc::O_PATH, -1])
        } as u32;
        let buf_flags = if self.rng.percent(90) { 0 } else { self.rng.edge32(0) };
        let n = self.rng.pick(&[1usize, 1, 1, 2, 3, 0]);
        let count = if self.rng.percent(95) { n as u32 } else { self.rng.pick(&[1 << 28, u32::MAX]) };
        let pages = size / 4096;
        let mut desc = Vec::new();
        let mut ranges = Vec::new();
        for _ in 0..n {
            let (offset, len) = if pages > 0 && self.rng.percent(80) {
                let first = self.rng.below(pages);
                (first * 4096, (1 + self.rng.below(pages - first)) * 4096)
            } else {
                let offset = self.rng.pick(&[0, 0x800, size, size.wrapping_sub(4096), u64::MAX & !0xfff, 1 << 62]);
                let len = self.rng.pick(&[0, 4096, 100, size, size + 4096, 1 << 63, u64::MAX & !0xfff]);
                (offset, len)
            };
            desc.push(format!("{offset:#x}+{len:#x}"));
            ranges.extend_from_slice(&offset.to_ne_bytes());
            ranges.extend_from_slice(&len.to_ne_bytes());
        }
        let exact = 8 + 16 + ranges.len() as u32;
        let argsz = if self.rng.percent(85) { exact } else { self.draw_argsz(exact) };
        let mut head = words(&[argsz, flags, region, open_flags, buf_flags, count]);
        head.extend_from_slice(&ranges);
        let Some(d) = self.dev() else { return };
        let (r, _) = raw_ioctl(d, VFIO_DEVICE_FEATURE, &head, 0);
        let outcome = match r {
            // The dma-buf's fd: its size and flags, then closed (the number is not recorded).
            Ok(fd) if flags & FEATURE_PROBE == 0 && fd >= 0 => {
                // SAFETY: the feature returned a new fd this process owns and nothing else
                // refers to.
                let buf = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                let mut f = vec![("dma-buf", Val::Bool(true))];
                match crate::dma_buf::fstat_size(&buf) {
                    Ok(n) => f.push(("size", Val::Num(n))),
                    Err(e) => f.push(("size", Val::text(e.to_string()))),
                }
                match crate::dma_buf::fd_flags(&buf) {
                    Ok(fl) => f.extend(fl),
                    Err(e) => f.push(("flags", Val::text(e.to_string()))),
                }
                ok(f)
            }
            r => ret_outcome(r),
        };
        self.rec(
            format!(
                "FEATURE DMA_BUF argsz={argsz} flags={flags:#x} region={region} open_flags={open_flags:#x} flags={buf_flags:#x} nr_ranges={count} ranges=[{}]",
                desc.join(" ")
            ),
            outcome,
        );
    }

    fn hot_reset_info(&mut self) {
        let argsz = self.draw_argsz(12 + 8 * self.members.len() as u32);
        let Some(o) = self.open.as_ref() else { return };
        let cdev = o.cdev;
        let mut head = words(&[argsz, 0, 0]);
        head.resize(64, 0xa5);
        let (r, b) = raw_ioctl(&o.dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &head, 0xa5);
        let outcome = match r {
            Err(e) if e != Errno::ENOSPC => Outcome::Err(e),
            _ => {
                let (flags, count) = (le32(&b, 4), le32(&b, 8));
                let mut f: Fields = vec![
                    ("errno", Val::text(r.err().map_or("none".to_string(), |e| e.to_string()))),
                    ("argsz", Val::Num(le32(&b, 0).into())),
                    ("flags", Val::Hex(flags.into())),
                    ("count", Val::Num(count.into())),
                ];
                if r.is_ok() {
                    let mut ids = Vec::new();
                    for i in 0..(count as usize).min(8) {
                        let base = 12 + 8 * i;
                        let id = le32(&b, base);
                        let v = if !cdev {
                            Val::Num(id.into())
                        } else if id == VFIO_PCI_DEVID_OWNED {
                            Val::Norm("OWNED".into())
                        } else if id == VFIO_PCI_DEVID_NOT_OWNED {
                            Val::Norm("NOT_OWNED".into())
                        } else {
                            self.t.norm_id("ictx", id.into())
                        };
                        ids.push(format!("{v} {}", Val::Bytes(b[base + 4..base + 8].to_vec())));
                    }
                    f.push(("devices", Val::text(ids.join(", "))));
                }
                ok(f)
            }
        };
        self.rec(format!("GET_PCI_HOT_RESET_INFO argsz={argsz}"), outcome);
    }

    fn hot_reset(&mut self) {
        let Some(o) = self.open.as_ref() else { return };
        let valid: Vec<i32> = o.legacy.as_ref().map_or(Vec::new(), |lg| lg.all_fds());
        // A valid proof a third of the time: the group fds (group path), none (cdev path).
        let (fds, desc): (Vec<i32>, Vec<&str>) = if self.rng.percent(33) {
            let n = valid.len();
            (valid, vec!["group"; n])
        } else {
            let n = self.rng.below(4) as usize;
            let kinds = [
                (FdKind::Group, 30),
                (FdKind::ForeignGroup, 15),
                (FdKind::Closed, 10),
                (FdKind::Minus1, 10),
                (FdKind::DevNull, 10),
                (FdKind::Container, 10),
                (FdKind::Device, 10),
                (FdKind::Reused, 5),
            ];
            (0..n).map(|_| self.draw_fd(&kinds)).map(|(fd, k)| (fd, k.name())).unzip()
        };
        let count = if self.rng.percent(85) { fds.len() as u32 } else { self.rng.edge32(fds.len() as u32) };
        let exact = 12 + 4 * fds.len() as u32;
        let argsz = if self.rng.percent(85) { exact } else { self.draw_argsz(exact) };
        let flags = if self.rng.percent(90) { 0 } else { self.rng.edge32(0) };
        let mut v = vec![argsz, flags, count];
        v.extend(fds.iter().map(|fd| *fd as u32));
        // Room for the fds a larger count announces (the kernel bounds count by the set).
        v.extend([u32::MAX; 16]);
        let Some(d) = self.dev() else { return };
        let (r, _) = raw_ioctl(d, VFIO_DEVICE_PCI_HOT_RESET, &words(&v), 0);
        let mut outcome = ret_outcome(r);
        self.with_power_state(&mut outcome);
        self.rec(
            format!("PCI_HOT_RESET argsz={argsz} flags={flags:#x} count={count} fds=[{}]", desc.join(" ")),
            outcome,
        );
    }

    fn reset(&mut self) {
        let Some(d) = self.dev() else { return };
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        let r = unsafe { ioctl_val(d, VFIO_DEVICE_RESET, 0) };
        let mut outcome = ret_outcome(r);
        self.with_power_state(&mut outcome);
        self.rec("VFIO_DEVICE_RESET".into(), outcome);
    }

    /// Waits, while the open function is in low power (`LOW_POWER_ENTRY` gave up the open's
    /// runtime-PM reference: `runtime_usage` is 0), until it is runtime-suspended again.
    ///
    /// In low power every access through the driver resumes the function (to D0, PMCSR
    /// written 0: a D3hot user space set through PMCSR and the Data Select bits are gone) and
    /// the put at its end suspends it again asynchronously.  Without this wait, whether the
    /// next operation finds it suspended or still resumed is up to the scheduler, for either
    /// driver.
    fn settle(&mut self) {
        if self.open.is_none() {
            return;
        }
        if !self.await_suspend() {
            self.low_power_ops = 0;
            return;
        }
        self.low_power_ops += 1;
    }

    /// Waits, if nothing holds the first function resumed (`runtime_usage` 0), until it is
    /// runtime-suspended (2 s at most; [`Self::settle`] and [`Self::open`] say why); false if
    /// something holds it.
    fn await_suspend(&mut self) -> bool {
        let power = sysfs::device_dir(&self.members[0].bdf).join("power");
        let read = |name: &str| std::fs::read_to_string(power.join(name)).unwrap_or_default();
        if read("runtime_usage").trim() != "0" {
            return false;
        }
        if read("runtime_status").trim() == "suspended" {
            return true;
        }
        self.settles.0 += 1;
        let deadline = Instant::now() + Duration::from_secs(2);
        while read("runtime_status").trim() != "suspended" {
            if Instant::now() >= deadline {
                self.settles.1 += 1;
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// After [`LOW_POWER_OPS`] operations in low power: `LOW_POWER_EXIT`, recorded.
    fn leave_low_power(&mut self) {
        if self.low_power_ops < LOW_POWER_OPS {
            return;
        }
        let Some(d) = self.dev() else { return };
        let (r, _) = raw_ioctl(d, VFIO_DEVICE_FEATURE, &words(&[8, FEATURE_SET | FEATURE_LOW_POWER_EXIT]), 0);
        let outcome = ret_outcome(r);
        self.low_power_ops = 0;
        self.rec(format!("leave low power after {LOW_POWER_OPS} operations: FEATURE SET LOW_POWER_EXIT"), outcome);
    }

    /// Adds the first function's power state as the PCI core knows it (sysfs `power_state`)
    /// to a successful outcome (after [`Self::settle`]).
    fn with_power_state(&mut self, outcome: &mut Outcome) {
        self.settle();
        if let Outcome::Ok(f) = outcome {
            let state = sysfs::power_state(&self.members[0].bdf).unwrap_or_else(|e| format!("unknown ({e})"));
            f.push(("power_state", Val::text(state)));
        }
    }

    fn raw(&mut self) {
        // Device ioctls nobody implements for PCI, container and group ioctls on a device
        // fd, the known ones with size or direction bits (other numbers), iommufd numbers.
        // Not BIND/ATTACH/DETACH_IOMMUFD (118-120): the core's, and they change the open.
        let nr =
            self.rng.pick(&[100u8, 101, 102, 103, 104, 105, 106, 114, 115, 121, 122, 125, 130, 0x80, 0x85, 0x8a, 0xff]);
        let cmd = if self.rng.percent(70) {
            io(VFIO_TYPE, nr)
        } else {
            let known = self.rng.pick(&[107u8, 108, 109, 110, 111, 112, 113, 116, 117]);
            // _IOWR(';', known, 32): a different number than the _IO one VFIO defines.
            (3 << 30 | 32 << 16) as c_ulong | io(VFIO_TYPE, known)
        };
        let Some(d) = self.dev() else { return };
        let (r, _) = raw_ioctl(d, cmd, &[0; 64], 0);
        self.rec(format!("ioctl {cmd:#x}"), ret_outcome(r));
    }

    fn second_open(&mut self) {
        let Some(o) = self.open.as_ref() else { return };
        let a = &self.members[0];
        let outcome = if o.cdev {
            // A second cdev open binds to a fresh iommufd: the device is already bound.
            match crate::vfio::Device::open_cdev(&a.cdev) {
                Ok(d2) => match Iommufd::open() {
                    Ok(ictx) => match d2.bind_iommufd(&ictx) {
                        Ok(_) => ok(vec![("bound", Val::Bool(true))]),
                        Err(e) => Outcome::Err(e),
                    },
                    Err(f) => Outcome::from(f),
                },
                Err(f) => Outcome::from(f),
            }
        } else {
            match o.legacy.as_ref().and_then(|lg| lg.group(&a.group)) {
                Some(g) => match g.get_device_fd(&a.bdf) {
                    Ok(d2) => {
                        // One info call through the second fd, then it closes.
                        let (r, b) = raw_ioctl(&d2, VFIO_DEVICE_GET_INFO, &words(&[24, 0, 0, 0, 0, 0]), 0);
                        match r {
                            Ok(_) => ok(vec![("GET_INFO", Val::Bytes(b[..24].to_vec()))]),
                            Err(e) => Outcome::Err(e),
                        }
                    }
                    Err(f) => Outcome::from(f),
                },
                None => Outcome::Broken("no group".into()),
            }
        };
        self.rec("second open, one GET_INFO, close".into(), outcome);
    }

    fn reopen(&mut self) {
        let unmap = self.rng.percent(70);
        let cdev = self.rng.percent(50);
        self.close(unmap);
        self.rec(
            format!("close{}", if unmap { " (mappings unmapped first)" } else { " (mappings kept)" }),
            ok(Vec::new()),
        );
        self.open(cdev);
    }

    fn one(&mut self, op: Op) {
        if self.open.is_none() {
            // Nothing to operate on: the only thing to do is to open again (without
            // mappings, which may be what keeps the old open alive).
            let cdev = self.rng.percent(50);
            self.close(true);
            self.open(cdev);
            return;
        }
        match op {
            Op::ConfigRead => self.config_read(),
            Op::ConfigWrite => self.config_write(),
            Op::BarRead => self.bar_read(),
            Op::BarWrite => self.bar_write(),
            Op::RegionInfo => self.region_info(),
            Op::DeviceInfo => self.device_info(),
            Op::IrqInfo => self.irq_info(),
            Op::SetIrqs => self.set_irqs(),
            Op::Mmap => self.mmap(),
            Op::Munmap => self.munmap(),
            Op::MapAccess => self.map_access(),
            Op::MapChild => self.map_child(),
            Op::Ioeventfd => self.ioeventfd(),
            Op::SignalIoeventfd => self.signal_ioeventfd(),
            Op::Feature => self.feature(),
            Op::HotResetInfo => self.hot_reset_info(),
            Op::HotReset => self.hot_reset(),
            Op::Reset => self.reset(),
            Op::RawIoctl => self.raw(),
            Op::SecondOpen => self.second_open(),
            Op::Reopen => self.reopen(),
        }
    }
}

fn ioeventfd_head(argsz: u32, flags: u32, offset: u64, data: u64, fd: i32) -> Vec<u8> {
    let mut h = words(&[argsz, flags]);
    h.extend_from_slice(&offset.to_ne_bytes());
    h.extend_from_slice(&data.to_ne_bytes());
    h.extend_from_slice(&fd.to_ne_bytes());
    h.extend_from_slice(&[0; 4]);
    h
}

fn draw_op(rng: &mut Rng) -> Op {
    let total: u64 = WEIGHTS.iter().map(|(_, w)| w).sum();
    let mut x = rng.below(total);
    for (op, w) in WEIGHTS {
        if x < *w {
            return *op;
        }
        x -= w;
    }
    Op::ConfigRead
}

/// The run's seed and length: the scenario's, unless the environment says otherwise
/// (`VFIO_PCI_RS_FUZZ_SEED`, `VFIO_PCI_RS_FUZZ_OPS`: for long runs outside CI).
fn seed_and_ops(base: u64, bdf: &str, ops: usize) -> (u64, usize) {
    let env = |k: &str| {
        std::env::var(k).ok().and_then(|v| {
            let v = v.trim().to_string();
            v.strip_prefix("0x").map_or_else(|| v.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
        })
    };
    let seed = env("VFIO_PCI_RS_FUZZ_SEED").unwrap_or(base) ^ fnv(bdf);
    let ops = env("VFIO_PCI_RS_FUZZ_OPS").map_or(ops, |n| n as usize);
    (seed, ops)
}

/// The function's config space as sysfs shows it (the host's view), to put back the bytes
/// past the header that the run's raw writes changed (QEMU keeps what is written to the
/// unassigned bytes; the drivers restore only what they saved).
fn sysfs_config(bdf: &str) -> Vec<u8> {
    std::fs::read(sysfs::device_dir(bdf).join("config")).unwrap_or_default()
}

fn restore_config(bdf: &str, before: &[u8]) -> Result<usize, Fail> {
    let now = sysfs_config(bdf);
    let f = std::fs::OpenOptions::new().write(true).open(sysfs::device_dir(bdf).join("config"))?;
    let mut n = 0;
    for (i, (b, a)) in before.iter().zip(&now).enumerate().skip(0x40) {
        if b != a {
            f.write_all_at(&[*b], i as u64)?;
            n += 1;
        }
    }
    Ok(n)
}

fn run(c: &Ctx, base: u64, planned: usize) -> Transcript {
    let mut t = Transcript::new();
    let before = sysfs_config(c.bdf());
    let Ok(set) = bind_site(&mut t, c) else { return t };
    let (seed, ops) = seed_and_ops(base, c.bdf(), planned);
    t.record("seed and operations", ok(vec![("seed", Val::Hex(seed)), ("operations", Val::Num(ops as u64))]));
    let setup = (|| -> Result<(Pipe, File, Container), Fail> {
        Ok((Pipe::new()?, File::open("/dev/null")?, Container::open()?))
    })();
    let Some((pipe, null, container)) = t.step("pipe, /dev/null, spare container", setup, |_, _| Vec::new()) else {
        unbind_site(&mut t, &set);
        return t;
    };
    let bdf = c.bdf();
    let mut hot = vec![0x04, 0x0c, 0x10, 0x30, 0x3c];
    for (id, regs) in [(0x01u8, &[4u64][..]), (0x05, &[2, 4]), (0x11, &[2]), (0x10, &[8, 0x10])] {
        if let Ok(at) = crate::interrupts::find_cap(bdf, id) {
            hot.extend(regs.iter().map(|r| at + r));
        }
    }
    t.record("config registers aimed at", ok(vec![("offsets", Val::text(format!("{hot:x?}")))]));
    let pmcsr = crate::interrupts::find_cap(bdf, 0x01).ok().map(|at| at + 4);
    let mut f = Fuzz {
        t,
        seed,
        op: 0,
        rng: Rng::new(seed),
        site: c.site,
        members: &set,
        open: None,
        regions: vec![None; 9],
        maps: Vec::new(),
        eventfds: Vec::new(),
        ioevents: Vec::new(),
        pipe,
        null,
        container,
        counts: WEIGHTS.iter().map(|(o, _)| (*o, 0)).collect(),
        hot,
        pmcsr,
        settles: (0, 0),
        low_power_ops: 0,
    };
    let first_cdev = seed & 1 == 1;
    f.open(first_cdev);
    let t0 = Instant::now();
    let trace = std::env::var_os("VFIO_PCI_RS_FUZZ_TRACE").is_some();
    let mut spent = vec![Duration::ZERO; WEIGHTS.len()];
    for op in 1..=ops {
        f.op = op;
        f.rng = op_rng(f.seed, op);
        let kind = draw_op(&mut f.rng);
        let k = WEIGHTS.iter().position(|(o, _)| *o == kind).unwrap_or(0);
        f.counts[k].1 += 1;
        let t1 = Instant::now();
        f.one(kind);
        f.settle();
        f.leave_low_power();
        spent[k] += t1.elapsed();
        if trace {
            // Nothing that touches the function (a sysfs config read would resume it).
            let b = &f.members[0].bdf;
            let status = std::fs::read_to_string(sysfs::device_dir(b).join("power/runtime_status")).unwrap_or_default();
            eprintln!(
                "# fuzz {op} {kind:?} {:?} [{} {}]: {}",
                t1.elapsed(),
                sysfs::power_state(b).unwrap_or_default(),
                status.trim(),
                f.t.steps.last().map_or(String::new(), |s| format!("{}: {}", s.name, s.outcome))
            );
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    f.op = ops + 1;
    f.close(true);
    let _ = f.site;
    // Afterwards: the function opens (group path) and answers.
    f.open(false);
    if let Some(d) = f.dev() {
        let (r, b) = raw_ioctl(d, VFIO_DEVICE_GET_INFO, &words(&[24, 0, 0, 0, 0, 0]), 0);
        let mut cfg = [0u8; 4];
        let id = d.file().read_exact_at(&mut cfg, region_offset(CONFIG_INDEX)).map(|()| cfg);
        let outcome = match (r, id) {
            (Ok(_), Ok(id)) => ok(vec![("flags", Val::Hex(le32(&b, 4).into())), ("ids", Val::Bytes(id.to_vec()))]),
            (Err(e), _) => Outcome::Err(e),
            (_, Err(e)) => Outcome::Err(io_errno(e)),
        };
        f.t.record("afterwards: GET_INFO and the IDs in config space", outcome);
    }
    f.close(true);
    let mut t = f.t;
    let steps = t.steps.len();
    t.info.push(format!(
        "{ops} operations ({steps} steps) in {secs:.1} s: {:.0} operations/s; {}",
        ops as f64 / secs.max(1e-9),
        f.counts
            .iter()
            .zip(&spent)
            .map(|((o, n), d)| format!("{o:?} {n} ({:.1} s)", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    t.info.push(format!(
        "{} waits for a runtime suspend in low power, {} of them timed out (2 s)",
        f.settles.0, f.settles.1
    ));
    drop(f.maps);
    unbind_site(&mut t, &set);
    match restore_config(c.bdf(), &before) {
        Ok(n) => t.info.push(format!("{n} config bytes past the header written back through sysfs")),
        Err(e) => t.notes.push(format!("writing the config space back through sysfs: {e}")),
    }
    t
}

/// The errnos the uAPI documents for the device operations (and the VFS's for read, write
/// and mmap); anything else (ERESTARTSYS, ENOIOCTLCMD, ENOTSUPP leaking) is a failure.
const DOCUMENTED: &[Errno] = &[
    Errno::EPERM,
    Errno::ENOENT,
    Errno::EIO,
    Errno::EBADF,
    Errno::EAGAIN,
    Errno(libc::ENOMEM),
    Errno::EACCES,
    Errno::EFAULT,
    Errno::EBUSY,
    Errno::EEXIST,
    Errno(libc::ENXIO),
    Errno::ENODEV,
    Errno::EINVAL,
    Errno::ENOTTY,
    Errno::ENOSPC,
    Errno(libc::ESPIPE),
    Errno(libc::EOVERFLOW),
    Errno(libc::EOPNOTSUPP),
];

fn expect_fuzz(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut failures = Vec::new();
    let planned = t.find("seed and operations").and_then(|o| o.field("operations")).and_then(Val::as_u64);
    let Some(planned) = planned else {
        return vec!["the run did not start (binding failed)".into()];
    };
    let last = t.steps.iter().filter_map(|s| s.name.get(..6)?.parse::<u64>().ok()).max().unwrap_or(0);
    if last < planned {
        failures.push(format!("the run stopped at operation {last} of {planned}"));
    }
    let mut odd = Vec::new();
    for s in &t.steps {
        match &s.outcome {
            Outcome::Broken(why) => odd.push(format!("'{}': {why}", s.name)),
            // ERANGE: SET_IRQS enabling MSI or MSI-X with count 0 (DATA_EVENTFD), from
            // pci_alloc_irq_vectors(1, 0) in vfio-pci, which vfio-pci-rs answers alike.
            Outcome::Err(e) if *e == Errno(libc::ERANGE) && s.name.contains(" SET_IRQS ") => {}
            Outcome::Err(e) if !DOCUMENTED.contains(e) => odd.push(format!("'{}': undocumented errno {e}", s.name)),
            _ => {}
        }
    }
    if !odd.is_empty() {
        failures.push(format!(
            "{} steps with an undocumented outcome, first: {}",
            odd.len(),
            odd[..odd.len().min(5)].join("; ")
        ));
    }
    match t.find("afterwards: GET_INFO and the IDs in config space") {
        Some(Outcome::Ok(_)) => {
            let want = sysfs::PciId::of(c.bdf()).ok().map(|id| {
                let mut b = id.vendor.to_le_bytes().to_vec();
                b.extend_from_slice(&id.device.to_le_bytes());
                Val::Bytes(b)
            });
            let got = t.find("afterwards: GET_INFO and the IDs in config space").and_then(|o| o.field("ids"));
            if want.as_ref() != got {
                failures.push(format!("afterwards the config space reads IDs {got:?}, sysfs says {want:?}"));
            }
        }
        other => failures.push(format!("afterwards the function did not open and answer: {other:?}")),
    }
    failures
}

/// The self-check of the generator (selfcheck.rs): SplitMix64's published first outputs,
/// operation draws that depend only on the seed and the operation number, and every
/// operation drawn with about its weight.
pub(crate) fn self_check() -> Vec<String> {
    let mut failures = Vec::new();
    let mut r = Rng::new(0);
    let first: Vec<u64> = (0..3).map(|_| r.next()).collect();
    if first != [0xe220_a839_7b1d_cdaf, 0x6e78_9e6a_a1b9_65f4, 0x06c4_5d18_8009_454f] {
        failures.push(format!("SplitMix64(0) gave {first:x?}"));
    }
    let a: Vec<Op> = (1..200).map(|op| draw_op(&mut op_rng(42, op))).collect();
    let b: Vec<Op> =
        (1..200).rev().map(|op| draw_op(&mut op_rng(42, op))).collect::<Vec<_>>().into_iter().rev().collect();
    if a != b {
        failures.push("operation draws depend on the order they are made in".into());
    }
    let total: u64 = WEIGHTS.iter().map(|(_, w)| w).sum();
    let n = 200_000u64;
    let mut seen = vec![0u64; WEIGHTS.len()];
    for op in 0..n as usize {
        let o = draw_op(&mut op_rng(7, op));
        if let Some(i) = WEIGHTS.iter().position(|(w, _)| *w == o) {
            seen[i] += 1;
        }
    }
    for ((op, w), got) in WEIGHTS.iter().zip(&seen) {
        let want = n * w / total;
        if got.abs_diff(want) > want / 4 + 20 {
            failures.push(format!("{op:?}: drawn {got} times in {n}, weight says about {want}"));
        }
    }
    failures
}
