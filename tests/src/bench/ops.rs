//! The per-operation benchmark: every device ioctl and file operation the
//! driver implements, timed on both drivers in one boot (see
//! [`super::table`] for the rows and their statistics).
//!
//! Each round binds the functions to one driver, then to the other (the
//! order alternates from round to round: C first in even rounds, Rust first
//! in odd ones), and measures in the same order on both:
//!
//! - on the e1000e of the "slot" topology, opened through its cdev in an
//!   iommufd with an IOAS attached: the INFO ioctls (device, every region
//!   kind, every IRQ index), config and BAR0 `read(2)`/`write(2)` of 1, 2, 4
//!   and 8 bytes, SET_IRQS (MSI-X and MSI enable/disable, MSI-X loopback
//!   trigger, INTx enable/disable, mask, unmask and loopback trigger),
//!   IOEVENTFD assign, de-assign and delivery, the FEATUREs, a BAR0 read
//!   through an mmap, the first touch of the mmap after a zap, MSI-X
//!   delivery (bench/msix.rs), then VFIO_DEVICE_RESET and the hot reset
//!   ioctls; closed again: open+bind+close through the cdev and
//!   GET_DEVICE_FD+close through the group, then the VFIO selftests'
//!   device-init time (bench/device_init.rs);
//! - on the NVMe controller of the bench-only "vectors" topology (65 MSI-X
//!   vectors): MSI-X enable/disable with 1 and with 32 vectors;
//! - on the igb PF of the "sriov" topology: the PCI_VF_TOKEN feature.
//!
//! Each group of operations is a function of its own taking the turn and
//! the open device, so a new row is a new function called from [`turn`].

use super::table::{Filter, Table, Turn};
use super::{device_init, msix};
use crate::interrupts::{ACTION_MASK, ACTION_TRIGGER, ACTION_UNMASK};
use crate::sys::{ioctl_ptr, ioctl_val, new_eventfd, read_u64, Errno, Fail, Mmio};
use crate::sysfs;
use crate::uapi::*;
use crate::vfio::{Container, Device, Group, Iommufd};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::raw::{c_ulong, c_void};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// Samples per round of a cheap operation (an INFO ioctl, a read), after
/// [`WARMUP`] untimed calls.
const CHEAP: usize = 200;
/// Samples per round of an operation that allocates or frees interrupts.
const IRQ_SETUP: usize = 20;
/// Samples per round of a reset, an open or a power transition.
const SLOW: usize = 4;
const WARMUP: usize = 5;

const VFIO_DEVICE_GET_REGION_INFO_: c_ulong = VFIO_DEVICE_GET_REGION_INFO;
const VFIO_DEVICE_GET_IRQ_INFO: c_ulong = io(VFIO_TYPE, VFIO_BASE + 9);
const VFIO_DEVICE_SET_IRQS: c_ulong = io(VFIO_TYPE, VFIO_BASE + 10);
const VFIO_DEVICE_IOEVENTFD: c_ulong = io(VFIO_TYPE, VFIO_BASE + 16);

const INTX: u32 = 0;
const MSI: u32 = 1;
const MSIX: u32 = 2;
const DATA_NONE: u32 = 1 << 0;
const DATA_EVENTFD: u32 = 1 << 2;

const FEATURE_SET: u32 = 1 << 17;
const FEATURE_PROBE: u32 = 1 << 18;
const PCI_VF_TOKEN: u32 = 0;
const LOW_POWER_ENTRY: u32 = 3;
const LOW_POWER_ENTRY_WITH_WAKEUP: u32 = 4;
const LOW_POWER_EXIT: u32 = 5;

const IOEVENTFD_SIZE_32: u32 = 1 << 2;

const REGION_SHIFT: u32 = 40;
const CONFIG_INDEX: u64 = 7;
const PCI_COMMAND: u64 = 0x4;
const PCI_COMMAND_MEMORY: u16 = 1 << 1;
const CAP_ID_MSI: u8 = 0x05;
const CAP_ID_EXP: u8 = 0x10;
/// e1000e's STATUS register (read-only).
const STATUS: u64 = 0x8;
/// e1000e's receive descriptor base address (low, high): plain storage
/// while receive is off, so writes there have no side effect.
const RDBAL: u64 = 0x2800;

/// The functions measured (PCI addresses), as the topologies give them.
pub(super) struct Functions {
    /// The e1000e of the "slot" topology.
    pub(super) e1000e: String,
    /// The NVMe controller of the "vectors" topology (65 MSI-X vectors).
    pub(super) vectors: Option<String>,
    /// The igb SR-IOV PF of the "sriov" topology.
    pub(super) pf: Option<String>,
}

/// What the table does not hold: per driver, MSI-X signals beyond one per
/// delivery sample.
#[derive(Default)]
pub(super) struct Side {
    pub(super) msix_extra: [msix::Extra; 2],
}

/// A buffer for the ioctls' arguments, 8-aligned, larger than any argsz used here.
#[repr(C, align(8))]
struct Buf([u8; 512]);

impl Buf {
    fn new() -> Buf {
        Buf([0; 512])
    }

    /// Writes `words` (native-endian u32s) at the start, zeroes the next `zero` bytes.
    fn set(&mut self, words: &[u32], zero: usize) -> &mut Buf {
        for (i, w) in words.iter().enumerate() {
            self.0[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
        }
        let n = words.len() * 4;
        self.0[n..n + zero].fill(0);
        self
    }

    /// Writes `bytes` at `offset`.
    fn put(&mut self, offset: usize, bytes: &[u8]) -> &mut Buf {
        self.0[offset..offset + bytes.len()].copy_from_slice(bytes);
        self
    }

    /// Issues `request` on `d` with this buffer as its argument.
    fn ioctl(&mut self, d: &impl AsRawFd, request: c_ulong) -> Result<(), Fail> {
        // SAFETY: every request issued with a `Buf` here (GET_INFO, GET_REGION_INFO,
        // GET_IRQ_INFO, SET_IRQS, GET_PCI_HOT_RESET_INFO, PCI_HOT_RESET, IOEVENTFD, FEATURE)
        // reads and writes at most its fixed part (at most 32 bytes) and argsz bytes, and
        // every argsz set here is at most 512, the buffer's size; it lives across the call.
        unsafe { ioctl_ptr(d, request, self.0.as_mut_ptr().cast::<c_void>()) }?;
        Ok(())
    }
}

/// Driver `t.driver()`'s turn in round `round` on every function of `f`.
pub(super) fn turn(t: &mut Turn<'_>, f: &Functions, round: usize, side: &mut Side, k: usize) -> Result<(), Fail> {
    let drv = t.driver().to_string();
    with_bound(&drv, &f.e1000e, || {
        let cdev = cdev_of(&f.e1000e, &drv)?;
        {
            let iommufd = Iommufd::open()?;
            let dev = open_bound(&cdev, &iommufd)?;
            info(t, &dev);
            config_rw(t, &dev);
            bar_rw(t, &dev);
            msix_setup(t, &dev, "e1000e", &[1]);
            msi_setup(t, &dev);
            intx(t, &dev);
            ioeventfd(t, &dev);
            features(t, &dev);
            mapped(t, &dev, &f.e1000e, &mut side.msix_extra[k]);
            resets(t, &dev);
        }
        open_close(t, &f.e1000e, &cdev);
        device_init_row(t, &f.e1000e, round);
        Ok(())
    })?;
    if let Some(bdf) = &f.vectors {
        with_bound(&drv, bdf, || {
            let iommufd = Iommufd::open()?;
            let dev = open_bound(&cdev_of(bdf, &drv)?, &iommufd)?;
            msix_setup(t, &dev, "NVMe", &[1, 32]);
            Ok(())
        })?;
    }
    if let Some(bdf) = &f.pf {
        with_bound(&drv, bdf, || {
            let iommufd = Iommufd::open()?;
            let dev = open_bound(&cdev_of(bdf, &drv)?, &iommufd)?;
            vf_token(t, &dev);
            Ok(())
        })?;
    }
    Ok(())
}

/// Prints the notes under the table.
pub(super) fn print_notes(side: &Side) {
    println!();
    println!(
        "Per round and driver: {CHEAP} samples of a cheap operation, {IRQ_SETUP} of an interrupt setup, {SLOW} of a reset, open or power transition, {} MSI-X deliveries and {} {} runs per IOMMU mode, after untimed warm-up calls; rounds alternate which driver goes first. Time is guest time under -icount shift=0 (1 ns = 1 instruction).",
        msix::SAMPLES,
        device_init::PASSES,
        device_init::TEST
    );
    let [c, r] = &side.msix_extra;
    println!(
        "MSI-X signals beyond one per delivery, in the delivery's read / late: C {} / {}, Rust {} / {}.",
        c.in_read, c.late, r.in_read, r.late
    );
}

/// Binds `bdf` to `drv` (unbinding it from any driver first), runs `body`, unbinds it again.
fn with_bound(drv: &str, bdf: &str, body: impl FnOnce() -> Result<(), Fail>) -> Result<(), Fail> {
    if sysfs::current_driver(bdf).is_ok() {
        sysfs::unbind(bdf)?;
    }
    sysfs::set_driver_override(bdf, drv)?;
    sysfs::drivers_probe(bdf)?;
    let result = body();
    let _ = sysfs::unbind(bdf);
    let _ = sysfs::clear_driver_override(bdf);
    result
}

fn cdev_of(bdf: &str, drv: &str) -> Result<String, Fail> {
    sysfs::vfio_dev_entries(bdf)?
        .into_iter()
        .next()
        .ok_or_else(|| Fail::other(format!("{bdf} has no cdev under {drv}")))
}

/// Opens the cdev `cdev`, binds it to `iommufd` and attaches a new IOAS.
fn open_bound(cdev: &str, iommufd: &Iommufd) -> Result<Device, Fail> {
    let dev = Device::open_cdev(cdev)?;
    dev.bind_iommufd(iommufd)?;
    let ioas = iommufd.ioas_alloc()?;
    dev.attach_pt(ioas)?;
    Ok(dev)
}

/// The file offset of `offset` in region `index`.
fn at(index: u64, offset: u64) -> u64 {
    (index << REGION_SHIFT) + offset
}

// ------------------------------------------------------------------ INFO

fn info(t: &mut Turn<'_>, d: &Device) {
    let mut b = Buf::new();
    t.time("GET_INFO", WARMUP, CHEAP, || b.set(&[24], 20).ioctl(d, VFIO_DEVICE_GET_INFO));
    for (name, index) in [
        ("GET_REGION_INFO config", 7),
        ("GET_REGION_INFO BAR0 (memory, mmap, no capability)", 0),
        ("GET_REGION_INFO BAR2 (I/O port)", 2),
        ("GET_REGION_INFO BAR3 (MSI-X table: sparse mmap + MSIX_MAPPABLE)", 3),
        ("GET_REGION_INFO ROM", 6),
        ("GET_REGION_INFO VGA (none: EINVAL)", 8),
    ] {
        t.time(name, WARMUP, CHEAP, || {
            let r = b.set(&[512, 0, index, 0], 16).ioctl(d, VFIO_DEVICE_GET_REGION_INFO_);
            if index == 8 {
                return expect_errno(r, Errno::EINVAL);
            }
            r
        });
    }
    for (name, index) in [
        ("GET_IRQ_INFO INTx", 0),
        ("GET_IRQ_INFO MSI", 1),
        ("GET_IRQ_INFO MSI-X", 2),
        ("GET_IRQ_INFO ERR", 3),
        ("GET_IRQ_INFO REQ", 4),
    ] {
        t.time(name, WARMUP, CHEAP, || b.set(&[16, 0, index, 0], 0).ioctl(d, VFIO_DEVICE_GET_IRQ_INFO));
    }
}

/// `r` is the errno `want`: the measured path is that error's.
fn expect_errno(r: Result<(), Fail>, want: Errno) -> Result<(), Fail> {
    match r {
        Err(Fail::Os(e)) if e == want => Ok(()),
        Err(e) => Err(e),
        Ok(()) => Err(Fail::other(format!("succeeded where {want} was expected"))),
    }
}

// ------------------------------------------------------------ read/write

/// Config space through `read(2)`/`write(2)`: reads at offset 0 (IDs, command, status);
/// writes put back what was read at 0x0c (cache line size, latency timer; BIST with 4
/// bytes) and at 0x08 (8 bytes: class code and revision, read-only, then 0x0c).
fn config_rw(t: &mut Turn<'_>, d: &Device) {
    let f = d.file();
    for n in [1usize, 2, 4, 8] {
        let mut buf = [0u8; 8];
        t.time(&format!("config read, {n} byte(s)"), WARMUP, CHEAP, || {
            f.read_exact_at(&mut buf[..n], at(CONFIG_INDEX, 0)).map_err(Fail::from)
        });
    }
    for n in [1usize, 2, 4, 8] {
        let offset = if n == 8 { 0x08 } else { 0x0c };
        let mut buf = [0u8; 8];
        t.run(&format!("config write, {n} byte(s)"), |t| {
            f.read_exact_at(&mut buf[..n], at(CONFIG_INDEX, offset))?;
            let name = format!("config write, {n} byte(s)");
            t.time(&name, WARMUP, CHEAP, || f.write_all_at(&buf[..n], at(CONFIG_INDEX, offset)).map_err(Fail::from));
            Ok(())
        });
    }
    // The virtualized registers a VMM writes most: the command register (the memory gate's
    // input; the value read is written back, so decoding never changes), the MSI capability's
    // message data and the PCI Express capability's device control; each read, then written back.
    let mut regs = vec![("command register", Some(PCI_COMMAND), 2)];
    regs.push(("MSI message data", capability(f, CAP_ID_MSI).and_then(|c| msi_data(f, c)), 2));
    regs.push(("PCIe device control", capability(f, CAP_ID_EXP).map(|c| c + 0x08), 2));
    for (what, offset, n) in regs {
        let Some(offset) = offset else { continue };
        let mut buf = [0u8; 2];
        t.time(&format!("config read, {what} ({n} bytes)"), WARMUP, CHEAP, || {
            f.read_exact_at(&mut buf[..n], at(CONFIG_INDEX, offset)).map_err(Fail::from)
        });
        let name = format!("config write, {what} ({n} bytes)");
        t.run(&name, |t| {
            f.read_exact_at(&mut buf[..n], at(CONFIG_INDEX, offset))?;
            t.time(&name, WARMUP, CHEAP, || f.write_all_at(&buf[..n], at(CONFIG_INDEX, offset)).map_err(Fail::from));
            Ok(())
        });
    }
}

/// The offset of the message data in the MSI capability at `cap`: after a 32- or 64-bit address.
fn msi_data(f: &std::fs::File, cap: u64) -> Option<u64> {
    let mut control = [0u8; 2];
    f.read_exact_at(&mut control, at(CONFIG_INDEX, cap + 2)).ok()?;
    Some(cap + if u16::from_le_bytes(control) & 0x80 != 0 { 0x0c } else { 0x08 })
}

/// The offset of the first standard capability `id` in the config space behind `f`.
fn capability(f: &std::fs::File, id: u8) -> Option<u64> {
    let byte = |offset: u64| {
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at(CONFIG_INDEX, offset)).ok().map(|()| b[0])
    };
    let mut next = byte(0x34)? & !3;
    for _ in 0..48 {
        if next == 0 {
            return None;
        }
        if byte(u64::from(next))? == id {
            return Some(u64::from(next));
        }
        next = byte(u64::from(next) + 1)? & !3;
    }
    None
}

/// BAR0 through `read(2)`/`write(2)`: reads of STATUS (8 bytes: STATUS and the next
/// register), writes of zero to RDBAL (8 bytes: RDBAL and RDBAH).
fn bar_rw(t: &mut Turn<'_>, d: &Device) {
    let f = d.file();
    for n in [1usize, 2, 4, 8] {
        let mut buf = [0u8; 8];
        let offset = if n == 8 { RDBAL } else { STATUS };
        t.time(&format!("BAR0 read, {n} byte(s)"), WARMUP, CHEAP, || {
            f.read_exact_at(&mut buf[..n], at(0, offset)).map_err(Fail::from)
        });
    }
    for n in [1usize, 2, 4, 8] {
        let zero = [0u8; 8];
        t.time(&format!("BAR0 write, {n} byte(s)"), WARMUP, CHEAP, || {
            f.write_all_at(&zero[..n], at(0, RDBAL)).map_err(Fail::from)
        });
    }
}

// -------------------------------------------------------------- SET_IRQS

/// SET_IRQS with `flags` on `index` from `start`, `count` entries of `data`.
fn set_irqs(b: &mut Buf, d: &Device, flags: u32, index: u32, start: u32, count: u32, data: &[u8]) -> Result<(), Fail> {
    b.set(&[20 + data.len() as u32, flags, index, start, count], 0).put(20, data).ioctl(d, VFIO_DEVICE_SET_IRQS)
}

fn eventfds(n: usize) -> Result<(Vec<OwnedFd>, Vec<u8>), Fail> {
    let fds = (0..n).map(|_| new_eventfd().map_err(Fail::Os)).collect::<Result<Vec<_>, _>>()?;
    let data = fds.iter().flat_map(|fd| fd.as_raw_fd().to_ne_bytes()).collect();
    Ok((fds, data))
}

/// MSI-X enabled with each of `vectors` eventfds (DATA_EVENTFD | ACTION_TRIGGER, from
/// vector 0), then disabled (DATA_NONE | ACTION_TRIGGER, count 0); with one vector also
/// the loopback trigger (DATA_NONE | ACTION_TRIGGER on vector 0, which signals its eventfd).
fn msix_setup(t: &mut Turn<'_>, d: &Device, model: &str, vectors: &[u32]) {
    let mut b = Buf::new();
    for &n in vectors {
        let enable = format!("SET_IRQS MSI-X enable, {n} vector(s) ({model})");
        let disable = format!("SET_IRQS MSI-X disable, {n} vector(s) ({model})");
        t.run(&enable, |t| {
            let (_fds, data) = eventfds(n as usize)?;
            for i in 0..WARMUP + IRQ_SETUP {
                // The enable alone in the instruction profile (scripts/profile.sh).
                let window = (i >= WARMUP).then(|| t.window(&enable, 1));
                let t0 = Instant::now();
                set_irqs(&mut b, d, DATA_EVENTFD | ACTION_TRIGGER, MSIX, 0, n, &data)?;
                let t1 = Instant::now();
                drop(window);
                set_irqs(&mut b, d, DATA_NONE | ACTION_TRIGGER, MSIX, 0, 0, &[])?;
                let t2 = Instant::now();
                if i >= WARMUP {
                    t.sample(&enable, t1 - t0);
                    t.sample(&disable, t2 - t1);
                }
            }
            Ok(())
        });
    }
    if vectors == [1] {
        let name = format!("SET_IRQS MSI-X trigger, loopback ({model})");
        t.run(&name, |t| {
            let (fds, data) = eventfds(1)?;
            set_irqs(&mut b, d, DATA_EVENTFD | ACTION_TRIGGER, MSIX, 0, 1, &data)?;
            t.time(&name, WARMUP, CHEAP, || set_irqs(&mut b, d, DATA_NONE | ACTION_TRIGGER, MSIX, 0, 1, &[]));
            read_u64(&fds[0])?;
            set_irqs(&mut b, d, DATA_NONE | ACTION_TRIGGER, MSIX, 0, 0, &[])
        });
    }
}

/// MSI enabled with one eventfd, then disabled.
fn msi_setup(t: &mut Turn<'_>, d: &Device) {
    let mut b = Buf::new();
    let (enable, disable) = ("SET_IRQS MSI enable, 1 vector", "SET_IRQS MSI disable, 1 vector");
    t.run(enable, |t| {
        let (_fds, data) = eventfds(1)?;
        for i in 0..WARMUP + IRQ_SETUP {
            let t0 = Instant::now();
            set_irqs(&mut b, d, DATA_EVENTFD | ACTION_TRIGGER, MSI, 0, 1, &data)?;
            let t1 = Instant::now();
            set_irqs(&mut b, d, DATA_NONE | ACTION_TRIGGER, MSI, 0, 0, &[])?;
            let t2 = Instant::now();
            if i >= WARMUP {
                t.sample(enable, t1 - t0);
                t.sample(disable, t2 - t1);
            }
        }
        Ok(())
    });
}

/// INTx: enable with an eventfd and disable; while enabled, mask and unmask
/// (DATA_NONE) and the loopback trigger.
fn intx(t: &mut Turn<'_>, d: &Device) {
    let mut b = Buf::new();
    let (enable, disable) = ("SET_IRQS INTx enable (eventfd)", "SET_IRQS INTx disable");
    t.run(enable, |t| {
        let (_fds, data) = eventfds(1)?;
        for i in 0..WARMUP + IRQ_SETUP {
            let t0 = Instant::now();
            set_irqs(&mut b, d, DATA_EVENTFD | ACTION_TRIGGER, INTX, 0, 1, &data)?;
            let t1 = Instant::now();
            set_irqs(&mut b, d, DATA_NONE | ACTION_TRIGGER, INTX, 0, 0, &[])?;
            let t2 = Instant::now();
            if i >= WARMUP {
                t.sample(enable, t1 - t0);
                t.sample(disable, t2 - t1);
            }
        }
        Ok(())
    });
    let (mask, unmask) = ("SET_IRQS INTx mask", "SET_IRQS INTx unmask");
    t.run(mask, |t| {
        let (fds, data) = eventfds(1)?;
        set_irqs(&mut b, d, DATA_EVENTFD | ACTION_TRIGGER, INTX, 0, 1, &data)?;
        let result = (|| {
            for i in 0..WARMUP + CHEAP {
                let t0 = Instant::now();
                set_irqs(&mut b, d, DATA_NONE | ACTION_MASK, INTX, 0, 1, &[])?;
                let t1 = Instant::now();
                set_irqs(&mut b, d, DATA_NONE | ACTION_UNMASK, INTX, 0, 1, &[])?;
                let t2 = Instant::now();
                if i >= WARMUP {
                    t.sample(mask, t1 - t0);
                    t.sample(unmask, t2 - t1);
                }
            }
            let trigger = "SET_IRQS INTx trigger, loopback";
            t.time(trigger, WARMUP, CHEAP, || set_irqs(&mut b, d, DATA_NONE | ACTION_TRIGGER, INTX, 0, 1, &[]));
            read_u64(&fds[0]).map(drop)
        })();
        let _ = set_irqs(&mut b, d, DATA_NONE | ACTION_TRIGGER, INTX, 0, 0, &[]);
        result
    });
}

// ------------------------------------------------------------- IOEVENTFD

/// VFIO_DEVICE_IOEVENTFD of a 4-byte write of zero to RDBAL: assign and de-assign (fd -1),
/// and the delivery: `write(2)` of the eventfd, in which the driver's handler writes the
/// register (in the signalling thread when it gets the memory gate at once, which it does
/// here).
fn ioeventfd(t: &mut Turn<'_>, d: &Device) {
    let mut b = Buf::new();
    let call = |b: &mut Buf, fd: i32| {
        b.set(&[32, IOEVENTFD_SIZE_32], 0)
            .put(8, &at(0, RDBAL).to_ne_bytes())
            .put(16, &0u64.to_ne_bytes())
            .put(24, &fd.to_ne_bytes())
            .put(28, &[0; 4])
            .ioctl(d, VFIO_DEVICE_IOEVENTFD)
    };
    let (assign, deassign) = ("IOEVENTFD assign", "IOEVENTFD de-assign");
    t.run(assign, |t| {
        let fd = new_eventfd()?;
        for i in 0..WARMUP + CHEAP {
            let t0 = Instant::now();
            call(&mut b, fd.as_raw_fd())?;
            let t1 = Instant::now();
            call(&mut b, -1)?;
            let t2 = Instant::now();
            if i >= WARMUP {
                t.sample(assign, t1 - t0);
                t.sample(deassign, t2 - t1);
            }
        }
        Ok(())
    });
    let delivery = "IOEVENTFD delivery (eventfd write → BAR0 write)";
    t.run(delivery, |t| {
        let fd = new_eventfd()?;
        call(&mut b, fd.as_raw_fd())?;
        let one = 1u64.to_ne_bytes();
        let file = std::fs::File::from(fd.try_clone()?);
        t.time(delivery, WARMUP, CHEAP, || {
            let n = std::io::Write::write(&mut &file, &one)?;
            if n != 8 {
                return Err(Fail::other(format!("eventfd write: {n} bytes")));
            }
            Ok(())
        });
        call(&mut b, -1)
    });
}

// --------------------------------------------------------------- FEATURE

fn feature(b: &mut Buf, d: &Device, flags: u32, data: &[u8]) -> Result<(), Fail> {
    b.set(&[8 + data.len() as u32, flags], 0).put(8, data).ioctl(d, VFIO_DEVICE_FEATURE)
}

/// The low-power features: PROBE, then LOW_POWER_ENTRY (and its wakeup variant) followed,
/// after a pause in which the function runtime-suspends, by LOW_POWER_EXIT (which resumes it).
fn features(t: &mut Turn<'_>, d: &Device) {
    let mut b = Buf::new();
    t.time("FEATURE PROBE (LOW_POWER_ENTRY, SET)", WARMUP, CHEAP, || {
        feature(&mut b, d, LOW_POWER_ENTRY | FEATURE_PROBE | FEATURE_SET, &[])
    });
    for wake in [false, true] {
        let (entry, exit) = if wake {
            ("FEATURE LOW_POWER_ENTRY_WITH_WAKEUP", "FEATURE LOW_POWER_EXIT (after the wakeup entry)")
        } else {
            ("FEATURE LOW_POWER_ENTRY", "FEATURE LOW_POWER_EXIT (resumes from D3hot)")
        };
        t.run(entry, |t| {
            let efd = new_eventfd()?;
            let mut data = efd.as_raw_fd().to_ne_bytes().to_vec();
            data.extend_from_slice(&[0; 4]);
            for i in 0..1 + SLOW {
                let t0 = Instant::now();
                if wake {
                    feature(&mut b, d, LOW_POWER_ENTRY_WITH_WAKEUP | FEATURE_SET, &data)?;
                } else {
                    feature(&mut b, d, LOW_POWER_ENTRY | FEATURE_SET, &[])?;
                }
                let t1 = Instant::now();
                std::thread::sleep(Duration::from_millis(20));
                let t2 = Instant::now();
                feature(&mut b, d, LOW_POWER_EXIT | FEATURE_SET, &[])?;
                let t3 = Instant::now();
                if i >= 1 {
                    t.sample(entry, t1 - t0);
                    t.sample(exit, t3 - t2);
                }
            }
            Ok(())
        });
    }
}

/// PCI_VF_TOKEN on an SR-IOV PF: PROBE and SET.
fn vf_token(t: &mut Turn<'_>, d: &Device) {
    let mut b = Buf::new();
    const TOKEN: [u8; 16] = *b"vfio-pci-rs-tok!";
    t.time("FEATURE PROBE (PCI_VF_TOKEN, SET; igb PF)", WARMUP, CHEAP, || {
        feature(&mut b, d, PCI_VF_TOKEN | FEATURE_PROBE | FEATURE_SET, &[])
    });
    t.time("FEATURE PCI_VF_TOKEN SET (igb PF)", WARMUP, CHEAP, || {
        feature(&mut b, d, PCI_VF_TOKEN | FEATURE_SET, &TOKEN)
    });
}

// ------------------------------------------------------------------ mmap

/// Through an mmap of BAR0's first page: a read (no driver code), its first touch after a
/// zap (clearing memory decode in the command register zaps the mapping; setting it again,
/// untimed, lets the next touch fault the page in through the driver), and MSI-X delivery.
fn mapped(t: &mut Turn<'_>, d: &Device, bdf: &str, extra: &mut msix::Extra) {
    let map = match Mmio::map_at(d, 0, 4096, true) {
        Ok(map) => map,
        Err(e) => {
            for name in ["BAR0 read, 4 bytes (mmap)", "mmap first touch after a zap (4 KiB page)", MSIX_DELIVERY] {
                t.fail(name, &Fail::other(format!("mmap: {e}")));
            }
            return;
        }
    };
    let read = || map.read32(STATUS as usize).map(drop).ok_or_else(|| Fail::other("outside the mapping"));
    t.time("BAR0 read, 4 bytes (mmap)", WARMUP, CHEAP, read);
    let fault = "mmap first touch after a zap (4 KiB page)";
    t.run(fault, |t| {
        let f = d.file();
        let mut cmd = [0u8; 2];
        f.read_exact_at(&mut cmd, at(CONFIG_INDEX, PCI_COMMAND))?;
        let cmd = u16::from_le_bytes(cmd) | PCI_COMMAND_MEMORY;
        for i in 0..WARMUP + CHEAP {
            f.write_all_at(&(cmd & !PCI_COMMAND_MEMORY).to_le_bytes(), at(CONFIG_INDEX, PCI_COMMAND))?;
            f.write_all_at(&cmd.to_le_bytes(), at(CONFIG_INDEX, PCI_COMMAND))?;
            let t0 = Instant::now();
            read()?;
            let d = t0.elapsed();
            if i >= WARMUP {
                t.sample(fault, d);
            }
        }
        Ok(())
    });
    t.run(MSIX_DELIVERY, |t| {
        let mut times = Vec::new();
        msix::measure(bdf, d, &map, &mut times, extra)?;
        for s in times {
            t.sample(MSIX_DELIVERY, s);
        }
        Ok(())
    });
}

const MSIX_DELIVERY: &str = "MSI-X delivery (ICS write → eventfd read)";

// ---------------------------------------------------------------- resets

/// VFIO_DEVICE_RESET (the e1000e's FLR), GET_PCI_HOT_RESET_INFO and the zero-length
/// PCI_HOT_RESET (a slot reset here).
fn resets(t: &mut Turn<'_>, d: &Device) {
    let mut b = Buf::new();
    t.time("GET_PCI_HOT_RESET_INFO (1 function)", WARMUP, CHEAP, || {
        b.set(&[64, 0, 0], 0).ioctl(d, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO)
    });
    t.time("VFIO_DEVICE_RESET (FLR)", 1, SLOW, || {
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        unsafe { ioctl_val(d, VFIO_DEVICE_RESET, 0) }?;
        Ok(())
    });
    t.time("PCI_HOT_RESET, zero-length (slot reset)", 1, SLOW, || {
        b.set(&[12, 0, 0], 0).ioctl(d, VFIO_DEVICE_PCI_HOT_RESET)
    });
}

// ------------------------------------------------------------ open/close

/// The first open and last close: through the cdev, open(2) + BIND_IOMMUFD (the driver's
/// open: enable, reset, saved state, virtual config space) + close(2) (the driver's close:
/// disable, reset, restore), with the iommufd opened beforehand; through the group (its
/// container set, type1v2, beforehand), GET_DEVICE_FD + close(2).
fn open_close(t: &mut Turn<'_>, bdf: &str, cdev: &str) {
    let name = "open + BIND_IOMMUFD + close (cdev)";
    t.run(name, |t| {
        let iommufd = Iommufd::open()?;
        t.time(name, 1, SLOW, || {
            let dev = Device::open_cdev(cdev)?;
            dev.bind_iommufd(&iommufd)?;
            drop(dev);
            Ok(())
        });
        Ok(())
    });
    let name = "GET_DEVICE_FD + close (group, type1v2 container)";
    t.run(name, |t| {
        let container = Container::open()?;
        let group = Group::open(&sysfs::iommu_group(bdf)?)?;
        group.set_container(&container)?;
        container.set_iommu(VFIO_TYPE1v2_IOMMU)?;
        t.time(name, 1, SLOW, || group.get_device_fd(bdf).map(drop));
        Ok(())
    });
}

/// The selftest's device-init time, all IOMMU modes pooled.
fn device_init_row(t: &mut Turn<'_>, bdf: &str, round: usize) {
    let name = "device init (vfio_pci_device_init_perf_test, 5 IOMMU modes)";
    t.run(name, |t| {
        for times in device_init::measure(bdf, round)? {
            for s in times {
                t.sample(name, s);
            }
        }
        Ok(())
    });
}

/// Runs the whole per-operation benchmark: `rounds` rounds on `f`; prints the table.
pub(super) fn bench(f: &Functions, rounds: usize, order: [(usize, &str); 2], filter: Filter) -> Result<(), Fail> {
    let mut table = Table::new(filter);
    let mut side = Side::default();
    for round in 0..rounds {
        let mut turns = order;
        if round % 2 == 1 {
            turns.reverse();
        }
        for (k, drv) in turns {
            let mut t = table.turn(k, drv);
            turn(&mut t, f, round, &mut side, k)?;
        }
    }
    let others = [("NVMe", &f.vectors), ("igb PF", &f.pf)]
        .iter()
        .filter_map(|(what, bdf)| bdf.as_ref().map(|b| format!(", {what} {b}")))
        .collect::<String>();
    println!("Device API: e1000e {}{others}; {rounds} rounds.", f.e1000e);
    println!();
    table.print();
    print_notes(&side);
    Ok(())
}
