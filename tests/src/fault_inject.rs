//! Fault injection: every open, close, device ioctl, mmap and bind path run with the N-th
//! allocation of the calling task failing, for N = 1, 2, ... until the call no longer reaches
//! an N-th allocation, on both drivers.
//!
//! The kernel's per-task fault injection (Documentation/fault-injection): writing N to
//! `/proc/thread-self/fail-nth` makes the N-th fault-injection point this task passes fail
//! (failslab: a slab allocation; fail_page_alloc: a page allocation of order >= 1, its
//! default `min-order`); reading it back gives 0 when the failure was injected and what is
//! left of N otherwise (the call passed fewer than N points). GFP_KERNEL allocations are
//! eligible only with `ignore-gfp-wait` = N in both debugfs directories, which the cases set
//! (with `verbose` = 0: no stack dump per injected failure) and restore afterwards; debugfs is
//! mounted on /sys/kernel/debug when it is not (and left mounted).
//!
//! Per operation ([`walk`]): the call once without injection (its answer, "before"), then for
//! every N the call with the N-th point failing, recording how it failed (an errno, or an
//! answer: "absorbed" when the same as before), whether anything was left behind (the
//! [`Snapshot`]: driver, PCI enable count, runtime-PM usage, fds, vfio IRQs and resources,
//! nodes) and, for the cheap calls, whether the same call without injection still answers as
//! before; the walk ends at the first N the call does not reach, whose answer must be the one
//! before. N stops at [`MAX_N`].
//!
//! What is compared with vfio-pci: the errnos other than ENOMEM, by inclusion (every errno
//! vfio-pci-rs answers an injected failure with must be one vfio-pci answers too:
//! [`Val::Among`]), and the verdicts; the number of points and the count per outcome differ
//! whenever the drivers allocate differently and are shown, not compared (`Transcript::info`).
//!
//! Nothing is allocated in user space while a failure is armed: a heap allocation could make
//! a brk or mmap syscall, and its injected failure would abort the test program. So every
//! call's arguments are prepared before arming it, and its answer is rendered after disarming.
//!
//! The function is held enabled through its sysfs `enable` meanwhile ([`held_enabled`]: the
//! drivers' enable and disable then skip ACPI's `_PRT`, which an injected failure breaks), and
//! the bind walk runs with a sibling of the same IOMMU group bound ([`bind`]: the VFIO core's
//! creation of a VFIO group WARNs when it fails).
//!
//! Not walked: the close of a cdev-opened device (releasing the group's DMA ownership makes
//! the IOMMU core reattach the default domain, which must not fail: a failed allocation there
//! is a WARN in iommu.c with either driver, not a driver path), and SET_IRQS enabling MSI or
//! MSI-X with an eventfd in one call (the first request_irq() of a fresh vector creates
//! /proc/irq/N/, whose entries' creation failures are ignored and then WARN in
//! remove_proc_entry() when the vector is freed, with either driver): those are walked as an
//! enable without eventfds and an eventfd attached to a vector that had one before.

use crate::driver::Driver;
use crate::interrupts::{self, slot_e1000e};
use crate::regions::{self, in_group};
use crate::scenarios::{bind_by_override, driver_val, none, scenario, unbind_and_check, Ctx, Scenario, Site};
use crate::sys::{ioctl_ptr, ioctl_val, mount_pseudo, new_eventfd, Errno, Fail, Mapping, Pipe};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Fields, Outcome, Transcript, Val};
use crate::uapi::*;
use crate::vfio::{self, Device, Group, Iommufd};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::raw::{c_ulong, c_void};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The largest N tried: a walk that still reaches its N-th point there fails.
const MAX_N: u32 = 400;

const ROM_INDEX: u32 = 6;
const CONFIG_INDEX: u32 = 7;
const PAGE: usize = 4096;

/// The step names of a walked operation (and whether it is repeated without injection after
/// every failure), shared by the runs and their expectations.
struct OpName {
    name: &'static str,
    follow_up: bool,
}

const fn op(name: &'static str, follow_up: bool) -> OpName {
    OpName { name, follow_up }
}

const OPEN_GROUP_OPS: [OpName; 2] = [op("VFIO_GROUP_GET_DEVICE_FD", false), op("close (group path)", true)];
const OPEN_CDEV_OPS: [OpName; 2] = [op("open cdev", true), op("VFIO_DEVICE_BIND_IOMMUFD", false)];
const IOCTL_OPS: [OpName; 11] = [
    op("VFIO_DEVICE_GET_INFO", true),
    op("GET_REGION_INFO BAR0", true),
    op("GET_REGION_INFO MSI-X BAR", true),
    op("GET_REGION_INFO ROM", true),
    op("GET_REGION_INFO config", true),
    op("GET_IRQ_INFO INTx", true),
    op("GET_IRQ_INFO MSI", true),
    op("GET_IRQ_INFO MSI-X", true),
    op("GET_PCI_HOT_RESET_INFO", true),
    op("FEATURE PROBE LOW_POWER_ENTRY", true),
    op("FEATURE GET DMA_BUF (BAR0, one page)", true),
];
const IRQ_OPS: [OpName; 5] = [
    op("SET_IRQS INTx enable (eventfd)", true),
    op("SET_IRQS MSI enable (1 vector, no eventfd)", true),
    op("SET_IRQS MSI attach an eventfd", true),
    op("SET_IRQS MSI-X enable (1 vector, no eventfd)", true),
    op("SET_IRQS MSI-X attach an eventfd", true),
];
const RESET_OPS: [OpName; 2] = [op("VFIO_DEVICE_RESET", true), op("VFIO_DEVICE_PCI_HOT_RESET (group fd)", true)];
const MAP_OPS: [OpName; 3] = [
    op("mmap BAR0 (first after open)", true),
    op("first fault of a BAR0 mapping", true),
    op("IOEVENTFD assign (first after open)", true),
];
const BIND_OPS: [OpName; 1] = [op("bind (sysfs bind, probe)", false)];

const RULE_COMMON: &str = "with the N-th allocation of the call failing (fail-nth: failslab and fail_page_alloc, GFP_KERNEL included), for every N, the call answers an errno or succeeds, leaves nothing behind (driver, PCI enable count, runtime-PM usage, fds, vfio IRQs and resources, nodes) and leaves the call answering as before; the walk over N ends (fewer than 400 points) with the usual answer; an errno other than ENOMEM, or a success with another answer than the usual, must be one vfio-pci gives too";

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "fault_inject_open_group",
            rule: RULE_COMMON,
            loads_module: false,
            applies: slot_e1000e,
            run: open_group,
            expect: |_, t| expect_ops(t, &OPEN_GROUP_OPS),
        },
        Scenario {
            name: "fault_inject_open_cdev",
            rule: RULE_COMMON,
            loads_module: false,
            applies: slot_e1000e,
            run: open_cdev,
            expect: |_, t| expect_ops(t, &OPEN_CDEV_OPS),
        },
        Scenario {
            name: "fault_inject_ioctls",
            rule: RULE_COMMON,
            loads_module: false,
            applies: slot_e1000e,
            run: ioctls,
            expect: |_, t| expect_ops(t, &IOCTL_OPS),
        },
        Scenario {
            name: "fault_inject_irqs",
            rule: RULE_COMMON,
            loads_module: false,
            applies: slot_e1000e,
            run: irqs,
            expect: |_, t| expect_ops(t, &IRQ_OPS),
        },
        Scenario {
            name: "fault_inject_resets",
            rule: RULE_COMMON,
            loads_module: false,
            applies: slot_e1000e,
            run: resets,
            expect: |_, t| expect_ops(t, &RESET_OPS),
        },
        Scenario {
            name: "fault_inject_mmap",
            rule: RULE_COMMON,
            loads_module: false,
            applies: slot_e1000e,
            run: mmap,
            expect: |_, t| expect_ops(t, &MAP_OPS),
        },
        Scenario {
            name: "fault_inject_bind",
            rule: RULE_COMMON,
            loads_module: false,
            applies: shared_group,
            run: bind,
            expect: |_, t| expect_ops(t, &BIND_OPS),
        },
    ]
}

/// The steps every fault-injection scenario must pass besides its walks.
const MUST_PASS: [&str; 5] = [
    "hold the function enabled (sysfs enable = 1)",
    "fault injection set up",
    "VFIO_DEVICE_GET_INFO after the walks",
    "fault injection knobs restored",
    "release it (sysfs enable = 0)",
];

fn expect_ops(t: &Transcript, ops: &[OpName]) -> Vec<String> {
    let mut e = Expect::new(t);
    for s in MUST_PASS {
        e.ok(s);
    }
    for o in ops {
        let walked = format!("{}: injected failures", o.name);
        e.ok(&format!("{}: before", o.name));
        e.val(&walked, "walk ended", &Val::Bool(true));
        e.val(&walked, "nothing left behind after every failure", &Val::Bool(true));
        if o.follow_up {
            e.val(&walked, "same answer after every failure", &Val::Bool(true));
        }
        e.val(&format!("{}: without injection", o.name), "as before", &Val::Bool(true));
    }
    e.finish()
}

// ------------------------------------------------------------ the kernel's knobs

const DEBUGFS: &str = "/sys/kernel/debug";
/// The debugfs knobs set for the walks, and their values.
const KNOBS: [(&str, &str); 4] = [
    ("failslab/ignore-gfp-wait", "N"),
    ("failslab/verbose", "0"),
    ("fail_page_alloc/ignore-gfp-wait", "N"),
    ("fail_page_alloc/verbose", "0"),
];

/// This task's `fail-nth`.
struct FailNth(File);

impl FailNth {
    fn open() -> Result<FailNth, Fail> {
        Ok(FailNth(OpenOptions::new().read(true).write(true).open("/proc/thread-self/fail-nth")?))
    }

    /// Run `call` with the `n`-th fault-injection point this task passes failing; returns its
    /// result and what was left of `n` afterwards (0: the failure was injected).  Nothing in
    /// here allocates: the number is formatted into a stack buffer.
    fn armed<T>(&self, n: u32, call: impl FnOnce() -> T) -> Result<(T, u32), Fail> {
        let mut digits = [0u8; 10];
        let mut len = 0;
        let mut rest = n;
        loop {
            digits[len] = b'0' + (rest % 10) as u8;
            len += 1;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        digits[..len].reverse();
        self.0.write_at(&digits[..len], 0)?;
        let r = call();
        let mut buf = [0u8; 16];
        let read = self.0.read_at(&mut buf, 0);
        let disarmed = self.0.write_at(b"0", 0);
        let got = read?;
        disarmed?;
        let text = std::str::from_utf8(&buf[..got]).unwrap_or("").trim();
        let left = text.parse::<u32>().map_err(|_| Fail::other(format!("fail-nth read back {text:?}")))?;
        Ok((r, left))
    }
}

/// The knobs as they were, put back by `restore` (or on drop).
struct FaultEnv {
    saved: Vec<(PathBuf, String)>,
    fail_nth: FailNth,
}

impl FaultEnv {
    fn set_up() -> Result<FaultEnv, Fail> {
        let base = Path::new(DEBUGFS);
        if !base.join("failslab").exists() {
            let (ty, target) = (CString::new("debugfs").expect("no NUL"), CString::new(DEBUGFS).expect("no NUL"));
            match mount_pseudo(&ty, &target) {
                Ok(()) | Err(Errno::EBUSY) => {}
                Err(e) => return Err(Fail::other(format!("mount debugfs on {DEBUGFS}: {e}"))),
            }
        }
        let mut env = FaultEnv { saved: Vec::new(), fail_nth: FailNth::open()? };
        for (knob, value) in KNOBS {
            let path = base.join(knob);
            let old = fs::read_to_string(&path)
                .map_err(|e| Fail::other(format!("{}: {e}", path.display())))?
                .trim()
                .to_string();
            sysfs::write_attr(&path, value)?;
            env.saved.push((path, old));
        }
        Ok(env)
    }

    fn restore(&mut self) -> Result<(), Fail> {
        let mut first = Ok(());
        for (path, old) in self.saved.drain(..).rev() {
            if let Err(e) = sysfs::write_attr(&path, &old) {
                first = first.and(Err(Fail::other(format!("{}: {e}", path.display()))));
            }
        }
        first
    }
}

impl Drop for FaultEnv {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

/// Set the knobs up, run `body`, restore them.
fn with_faults(
    t: &mut Transcript,
    body: impl FnOnce(&mut Transcript, &FailNth) -> Result<(), Abort>,
) -> Result<(), Abort> {
    let mut env = t.need("fault injection set up", FaultEnv::set_up(), none)?;
    let result = body(t, &env.fail_nth);
    t.step("fault injection knobs restored", env.restore(), none);
    result
}

// ------------------------------------------------------------ what a failure may leave behind

/// What a failed call must not change: the function's driver and its VFIO nodes, its PCI
/// enable count and runtime-PM usage count, this process's fds, the vfio IRQs and the
/// resources a VFIO driver requested (`kept`), and the config header as the host reads it
/// (command register, BARs, ROM BAR, interrupt line: `config`, compared, not a rule).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Snapshot {
    kept: Vec<(&'static str, String)>,
    config: Vec<u8>,
}

struct Probe {
    bdf: String,
    group: String,
}

impl Probe {
    fn new(bdf: &str) -> Probe {
        Probe { bdf: bdf.to_string(), group: sysfs::iommu_group(bdf).unwrap_or_default() }
    }

    fn snapshot(&self) -> Snapshot {
        let dev = sysfs::device_dir(&self.bdf);
        let attr =
            |a: &str| fs::read_to_string(dev.join(a)).map_or_else(|e| format!("({e})"), |s| s.trim().to_string());
        let driver = sysfs::current_driver(&self.bdf).unwrap_or_else(|_| "none".into());
        let vfio_dev = sysfs::vfio_dev_entries(&self.bdf).map_or(0, |v| v.len());
        let group_node = Path::new(&vfio::group_path(&self.group)).exists();
        let fds = fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
        let irqs = interrupts::vfio_irq_names().map_or_else(|e| format!("({e})"), |v| v.join(" "));
        let resources: usize = ["/proc/iomem", "/proc/ioports"]
            .iter()
            .map(|f| fs::read_to_string(f).map_or(0, |s| s.lines().filter(|l| l.contains("vfio")).count()))
            .sum();
        let cfg = fs::read(dev.join("config")).unwrap_or_default();
        let mut config = Vec::new();
        for range in [4..6, 0x10..0x28, 0x30..0x34, 0x3c..0x3d] {
            config.extend_from_slice(cfg.get(range).unwrap_or(&[]));
        }
        Snapshot {
            kept: vec![
                ("driver", driver),
                ("vfio-dev entries", vfio_dev.to_string()),
                ("group node", group_node.to_string()),
                ("enable", attr("enable")),
                ("runtime_usage", attr("power/runtime_usage")),
                ("fds", fds.to_string()),
                ("vfio IRQs", irqs),
                ("vfio resources", resources.to_string()),
            ],
            config,
        }
    }
}

/// The kept values that differ, as `name: before -> after`.
fn changes(before: &Snapshot, after: &Snapshot) -> String {
    let mut out: Vec<String> = before
        .kept
        .iter()
        .zip(&after.kept)
        .filter(|(b, a)| b != a)
        .map(|((k, b), (_, a))| format!("{k}: {b:?} -> {a:?}"))
        .collect();
    if out.is_empty() && before.kept.len() != after.kept.len() {
        out.push("different items".into());
    }
    out.join(", ")
}

// ------------------------------------------------------------ the walk

/// One operation to walk: `prepare` makes what one attempt needs (unarmed: it may
/// allocate), `call` is the one system call made with a failure armed (it must not allocate),
/// `answer` renders what the call gave (unarmed), `release` undoes it (unarmed).
struct Op<'a, P, R> {
    name: &'static str,
    prepare: Box<dyn FnMut() -> Result<P, Fail> + 'a>,
    call: Box<dyn FnMut(&mut P) -> Result<R, Errno> + 'a>,
    answer: Box<dyn FnMut(&P, &R) -> Fields + 'a>,
    release: Box<dyn FnMut(P, Option<R>) + 'a>,
    /// Repeat the call without injection after every failure (the cheap calls).
    follow_up: bool,
}

/// What the walk of one operation saw.
#[derive(Default)]
struct Walk {
    /// The points the call passed without a failure (its last attempt).
    points: u32,
    ended: bool,
    /// Errno name (or "another answer") -> how many N gave it.
    outcomes: BTreeMap<String, u32>,
    /// Injected failures the call absorbed, giving its usual answer.
    absorbed: u32,
    /// What was left behind, per N.
    left: Vec<String>,
    /// The N whose failure changed the config header.
    config: Vec<u32>,
    /// The N after whose failure the call without injection answered otherwise.
    follow_up_differs: Vec<String>,
    /// The N whose failure the call absorbed with another answer than its usual one.
    other_answers: Vec<String>,
    /// The walk could not go on (a preparation failed, fail-nth misbehaved).
    broken: Option<String>,
    last: Option<Outcome>,
}

const ANOTHER_ANSWER: &str = "another answer";

fn errno_name(e: Errno) -> String {
    e.name().map_or_else(|| format!("errno {}", e.0), str::to_string)
}

/// One attempt of `op` (armed or not: `call` is its only part that may run armed): its
/// answer, or its errno.
fn attempt<P, R>(op: &mut Op<'_, P, R>) -> Result<Fields, Fail> {
    let mut p = (op.prepare)()?;
    match (op.call)(&mut p) {
        Ok(r) => {
            let f = (op.answer)(&p, &r);
            (op.release)(p, Some(r));
            Ok(f)
        }
        Err(e) => {
            (op.release)(p, None);
            Err(Fail::Os(e))
        }
    }
}

/// Walk `op` (see the module comment) and record its steps: "OP: before", "OP: injected
/// failures", "OP: without injection".
fn walk<P, R>(t: &mut Transcript, fi: &FailNth, probe: &Probe, mut op: Op<'_, P, R>) -> Result<(), Abort> {
    let name = op.name;
    let t0 = Instant::now();
    // Without a usual answer there is nothing to walk against; the next operation still runs.
    let Some(baseline) = t.step(&format!("{name}: before"), attempt(&mut op), |f, _| f.clone()) else {
        return Ok(());
    };
    let before = probe.snapshot();
    let mut w = Walk::default();
    let mut n = 1;
    loop {
        let mut p = match (op.prepare)() {
            Ok(p) => p,
            Err(e) => {
                w.broken = Some(format!("N={n}: preparing the call: {e}"));
                break;
            }
        };
        let call = &mut op.call;
        let (r, left) = match fi.armed(n, || call(&mut p)) {
            Ok(x) => x,
            Err(e) => {
                (op.release)(p, None);
                w.broken = Some(format!("N={n}: fail-nth: {e}"));
                break;
            }
        };
        if left > 0 {
            w.points = n - left;
            w.ended = true;
            w.last = Some(match r {
                Ok(r) => {
                    let mut f = (op.answer)(&p, &r);
                    (op.release)(p, Some(r));
                    let same = f == baseline;
                    f.push(("as before", Val::Bool(same)));
                    Outcome::Ok(f)
                }
                Err(e) => {
                    (op.release)(p, None);
                    Outcome::Err(e)
                }
            });
            let after = probe.snapshot();
            if after.kept != before.kept {
                w.left.push(format!("after the call without injection: {}", changes(&before, &after)));
            }
            break;
        }
        match r {
            Err(e) => {
                *w.outcomes.entry(errno_name(e)).or_default() += 1;
                (op.release)(p, None);
            }
            Ok(r) => {
                let f = (op.answer)(&p, &r);
                (op.release)(p, Some(r));
                if f == baseline {
                    w.absorbed += 1;
                } else {
                    *w.outcomes.entry(ANOTHER_ANSWER.into()).or_default() += 1;
                    w.other_answers.push(format!("N={n}: answered {}", Outcome::Ok(f)));
                }
            }
        }
        let after = probe.snapshot();
        if after.kept != before.kept {
            w.left.push(format!("N={n}: {}", changes(&before, &after)));
        }
        if after.config != before.config {
            w.config.push(n);
        }
        if op.follow_up {
            match attempt(&mut op) {
                Ok(f) if f == baseline => {}
                Ok(f) => w.follow_up_differs.push(format!("N={n}: then without injection {}", Outcome::Ok(f))),
                Err(e) => w.follow_up_differs.push(format!("N={n}: then without injection {e}")),
            }
            let after = probe.snapshot();
            if after.kept != before.kept {
                w.left.push(format!("N={n}, after the call without injection: {}", changes(&before, &after)));
            }
        }
        if n == MAX_N {
            break;
        }
        n += 1;
    }
    record(t, name, op.follow_up, &w, t0.elapsed().as_secs_f64());
    Ok(())
}

fn record(t: &mut Transcript, name: &str, follow_up: bool, w: &Walk, secs: f64) {
    let walked = format!("{name}: injected failures");
    match &w.broken {
        Some(why) => {
            t.record(walked, Outcome::Broken(why.clone()));
        }
        None => {
            let among: Vec<String> = w.outcomes.keys().filter(|k| k.as_str() != "ENOMEM").cloned().collect();
            let mut f: Fields = vec![
                ("errnos other than ENOMEM", Val::Among(among)),
                ("walk ended", Val::Bool(w.ended)),
                ("nothing left behind after every failure", Val::Bool(w.left.is_empty())),
                ("config header as before after every failure", Val::Bool(w.config.is_empty())),
            ];
            if follow_up {
                f.push(("same answer after every failure", Val::Bool(w.follow_up_differs.is_empty())));
            }
            t.record(walked, Outcome::Ok(f));
        }
    }
    let last =
        w.last.clone().unwrap_or_else(|| Outcome::Broken("the walk stopped before the call went through".into()));
    t.record(format!("{name}: without injection"), last);
    let counts: Vec<String> = w.outcomes.iter().map(|(k, v)| format!("{k} x{v}")).collect();
    let ended = if w.ended { String::new() } else { format!(" (stopped at N = {MAX_N})") };
    t.info.push(format!(
        "{name}: {} fault-injection points{ended}; injected failures: {}{}absorbed x{}; {secs:.1} s",
        w.points,
        counts.join(", "),
        if counts.is_empty() { "" } else { ", " },
        w.absorbed
    ));
    if !w.config.is_empty() {
        t.info.push(format!("{name}: config header changed after the failures at N = {:?}", w.config));
    }
    for l in w.left.iter().take(4) {
        t.info.push(format!("{name}: left behind: {l}"));
    }
    for d in w.other_answers.iter().chain(&w.follow_up_differs).take(6) {
        t.info.push(format!("{name}: {d}"));
    }
}

// ------------------------------------------------------------ calls without allocations

/// An ioctl argument: `len` bytes (8-aligned), `bytes` first, the rest `fill`.
fn arg(bytes: &[u8], len: usize, fill: u8) -> Vec<u64> {
    let mut b = bytes.to_vec();
    b.resize(len.max(bytes.len()).div_ceil(8) * 8, fill);
    b.chunks(8).map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes"))).collect()
}

/// The first `n` bytes of an argument.
fn arg_bytes(a: &[u64], n: usize) -> Vec<u8> {
    a.iter().flat_map(|w| w.to_ne_bytes()).take(n).collect()
}

fn words(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

/// `ioctl(fd, req, a)`.
fn ioctl_arg(fd: &impl AsRawFd, req: c_ulong, a: &mut [u64]) -> Result<i32, Errno> {
    // SAFETY: every request issued here reads and writes at most the argsz its argument
    // carries, which `arg` made no larger than the buffer; the buffer lives across the call.
    unsafe { ioctl_ptr(fd, req, a.as_mut_ptr().cast::<c_void>()) }
}

/// VFIO_GROUP_GET_DEVICE_FD without the allocation of `Group::get_device_fd`.
fn get_device_fd(g: &Group, name: &CString) -> Result<Device, Errno> {
    // SAFETY: the argument is a NUL-terminated string the kernel reads; `name` outlives the call.
    let fd = unsafe { ioctl_ptr(g, VFIO_GROUP_GET_DEVICE_FD, name.as_ptr() as *mut c_void) }?;
    // SAFETY: on success the ioctl returned a new fd that nothing else owns.
    Ok(Device(File::from(unsafe { OwnedFd::from_raw_fd(fd) })))
}

fn open_device(g: &Group, name: &CString) -> Result<Device, Fail> {
    get_device_fd(g, name).map_err(Fail::Os)
}

/// GET_INFO of an open device, for the answers of the open paths (unarmed).
fn info_answer(d: &Device) -> Fields {
    match d.get_info(argsz::<VfioDeviceInfo>()) {
        Ok(r) => vec![("GET_INFO", Val::Bytes(r.bytes))],
        Err(e) => vec![("GET_INFO", Val::text(format!("error {e}")))],
    }
}

fn ret_answer(r: &i32) -> Fields {
    vec![("ret", Val::Num(*r as u64))]
}

/// An op issuing `req` on `d` with a fresh copy of `template` each time, answering the return
/// value and the first `shown` bytes of the argument afterwards.
fn buf_op<'a>(
    name: &'static str,
    d: &'a Device,
    req: c_ulong,
    template: Vec<u64>,
    shown: usize,
) -> Op<'a, Vec<u64>, i32> {
    Op {
        name,
        prepare: Box::new(move || Ok(template.clone())),
        call: Box::new(move |a| ioctl_arg(d, req, a)),
        answer: Box::new(move |a, r| {
            let mut f = ret_answer(r);
            f.push(("bytes", Val::Bytes(arg_bytes(a, shown))));
            f
        }),
        release: Box::new(|_, _| {}),
        follow_up: true,
    }
}

/// The after-the-walks check: the device still opens (or is open) and GET_INFO answers.
fn final_info(t: &mut Transcript, d: &Device) {
    t.step("VFIO_DEVICE_GET_INFO after the walks", d.get_info(argsz::<VfioDeviceInfo>()), |r, _| {
        vec![("bytes", Val::Bytes(r.bytes.clone()))]
    });
}

// ------------------------------------------------------------ the scenarios

/// Run `body` with the unbound function held enabled through its sysfs `enable` (a
/// `pci_enable_device()` of the PCI core's own), released afterwards.  The driver's enable at
/// the first open and its disable at the last close then only count: neither evaluates the
/// ACPI `_PRT` of the function's interrupt routing, where an injected failure breaks ACPICA
/// (its reference counts left half updated, "Could not update object reference count", then
/// an oops in `acpi_ut_update_object_reference()` at the next evaluation: seen with vfio-pci
/// in the first run of these cases).  That path is the PCI core's and ACPICA's, not a VFIO
/// driver's.
fn held_enabled(
    t: &mut Transcript,
    bdf: &str,
    body: impl FnOnce(&mut Transcript) -> Result<(), Abort>,
) -> Result<(), Abort> {
    let enable = sysfs::device_dir(bdf).join("enable");
    t.need("hold the function enabled (sysfs enable = 1)", sysfs::write_attr(&enable, "1"), none)?;
    let result = body(t);
    t.step("release it (sysfs enable = 0)", sysfs::write_attr(&enable, "0"), none);
    result
}

/// Bind, open the group in a type1 container, set the faults up, run `body`, close, unbind
/// (the function held enabled meanwhile: [`held_enabled`]).
fn in_group_faults(
    c: &Ctx,
    body: impl FnOnce(&mut Transcript, &Group, &FailNth, &Probe) -> Result<(), Abort>,
) -> Transcript {
    let bdf = c.bdf().to_string();
    scenario(|t| {
        held_enabled(t, &bdf.clone(), |t| {
            in_group(t, c.driver, &bdf, |t, g| {
                let probe = Probe::new(&bdf);
                with_faults(t, |t, fi| body(t, g, fi, &probe))
            })
        })
    })
}

fn open_group(c: &Ctx) -> Transcript {
    let name = CString::new(c.bdf()).expect("no NUL");
    in_group_faults(c, |t, g, fi, probe| {
        let name = &name;
        walk(
            t,
            fi,
            probe,
            Op {
                name: OPEN_GROUP_OPS[0].name,
                prepare: Box::new(|| Ok(())),
                call: Box::new(|_| get_device_fd(g, name)),
                answer: Box::new(|_, d| info_answer(d)),
                release: Box::new(|_, d| drop(d)),
                follow_up: OPEN_GROUP_OPS[0].follow_up,
            },
        )?;
        walk(
            t,
            fi,
            probe,
            Op {
                name: OPEN_GROUP_OPS[1].name,
                prepare: Box::new(|| open_device(g, name).map(Some)),
                call: Box::new(|d| {
                    drop(d.take());
                    Ok(())
                }),
                answer: Box::new(|_, _| Vec::new()),
                release: Box::new(|_, _| {}),
                follow_up: OPEN_GROUP_OPS[1].follow_up,
            },
        )?;
        let d = t.need("open after the walks", open_device(g, name), none)?;
        final_info(t, &d);
        Ok(())
    })
}

fn open_cdev(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf().to_string());
    scenario(|t| held_enabled(t, &bdf.clone(), |t| open_cdev_steps(t, driver, &bdf)))
}

fn open_cdev_steps(t: &mut Transcript, driver: &Driver, bdf: &str) -> Result<(), Abort> {
    let bdf = bdf.to_string();
    {
        let b = bind_by_override(t, driver, &bdf)?;
        let path = PathBuf::from(vfio::cdev_path(&b.cdev));
        let probe = Probe::new(&bdf);
        let open = |p: &Path| OpenOptions::new().read(true).write(true).open(p).map(Device);
        let errno = |e: std::io::Error| Errno(e.raw_os_error().unwrap_or(0));
        let result = with_faults(t, |t, fi| {
            walk(
                t,
                fi,
                &probe,
                Op {
                    name: OPEN_CDEV_OPS[0].name,
                    prepare: Box::new(|| Ok(())),
                    call: Box::new(|_| open(&path).map_err(errno)),
                    answer: Box::new(|_, _| Vec::new()),
                    release: Box::new(|_, d| drop(d)),
                    follow_up: OPEN_CDEV_OPS[0].follow_up,
                },
            )?;
            walk(
                t,
                fi,
                &probe,
                Op {
                    name: OPEN_CDEV_OPS[1].name,
                    prepare: Box::new(|| Ok((open(&path)?, Iommufd::open()?))),
                    call: Box::new(|(d, ictx)| d.bind_iommufd(ictx)),
                    answer: Box::new(|(d, _), _| info_answer(d)),
                    release: Box::new(|p, _| drop(p)),
                    follow_up: OPEN_CDEV_OPS[1].follow_up,
                },
            )?;
            let d = t.need("open cdev after the walks", open(&path).map_err(Fail::from), none)?;
            let ictx = t.need("open /dev/iommu after the walks", Iommufd::open(), none)?;
            t.need("VFIO_DEVICE_BIND_IOMMUFD after the walks", d.bind_iommufd(&ictx), none)?;
            final_info(t, &d);
            Ok(())
        });
        unbind_and_check(t, &bdf, &b, true);
        result
    }
}

fn ioctls(c: &Ctx) -> Transcript {
    let name = CString::new(c.bdf()).expect("no NUL");
    let bdf = c.bdf().to_string();
    in_group_faults(c, |t, g, fi, probe| {
        let d = t.need("VFIO_GROUP_GET_DEVICE_FD", open_device(g, &name), none)?;
        let d = &d;
        let info = {
            let mut a = words(&[argsz::<VfioDeviceInfo>()]);
            a.resize(64, vfio::SENTINEL);
            arg(&a, 64, vfio::SENTINEL)
        };
        walk(t, fi, probe, buf_op(IOCTL_OPS[0].name, d, VFIO_DEVICE_GET_INFO, info, 64))?;
        let msix_bar = t.need("the MSI-X BAR", regions::msix_table(&bdf), |m, _| {
            vec![("bar", m.map_or(Val::text("none"), |(b, _, _)| Val::Num(b.into())))]
        })?;
        let msix_bar = msix_bar.map_or(0, |(b, _, _)| b);
        for (o, index) in
            [(&IOCTL_OPS[1], 0), (&IOCTL_OPS[2], msix_bar), (&IOCTL_OPS[3], ROM_INDEX), (&IOCTL_OPS[4], CONFIG_INDEX)]
        {
            // The argsz the reply asks for (its capability chain included), learnt first.
            let size = regions::get_region_info(d, index, regions::REGION_INFO_SIZE)
                .map_or(regions::REGION_INFO_SIZE, |r| r.argsz.max(regions::REGION_INFO_SIZE));
            let a = arg(&words(&[size, 0, index]), size as usize, vfio::SENTINEL);
            walk(t, fi, probe, buf_op(o.name, d, VFIO_DEVICE_GET_REGION_INFO, a, size as usize))?;
        }
        for (o, index) in [
            (&IOCTL_OPS[5], VFIO_PCI_INTX_IRQ_INDEX),
            (&IOCTL_OPS[6], VFIO_PCI_MSI_IRQ_INDEX),
            (&IOCTL_OPS[7], VFIO_PCI_MSIX_IRQ_INDEX),
        ] {
            let a = arg(&words(&[16, 0, index]), 32, vfio::SENTINEL);
            walk(t, fi, probe, buf_op(o.name, d, VFIO_DEVICE_GET_IRQ_INFO, a, 32))?;
        }
        let hot = 12 + 8 * 8;
        let a = arg(&words(&[hot, 0, 0]), hot as usize, vfio::SENTINEL);
        walk(t, fi, probe, buf_op(IOCTL_OPS[8].name, d, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, a, hot as usize))?;
        let a = arg(
            &words(&[8, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY]),
            8,
            0,
        );
        walk(t, fi, probe, buf_op(IOCTL_OPS[9].name, d, VFIO_DEVICE_FEATURE, a, 8))?;
        // struct vfio_device_feature + vfio_device_feature_dma_buf with one range.
        let mut dma = words(&[
            8 + 16 + 16,
            VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF,
            0,
            (libc::O_RDWR | libc::O_CLOEXEC) as u32,
            0,
            1,
        ]);
        dma.extend_from_slice(&0u64.to_ne_bytes());
        dma.extend_from_slice(&(PAGE as u64).to_ne_bytes());
        let template = arg(&dma, dma.len(), 0);
        walk(
            t,
            fi,
            probe,
            Op {
                name: IOCTL_OPS[10].name,
                prepare: Box::new(move || Ok(template.clone())),
                call: Box::new(move |a| ioctl_arg(d, VFIO_DEVICE_FEATURE, a)),
                answer: Box::new(|_, fd| vec![("a new fd", Val::Bool(*fd >= 0))]),
                release: Box::new(|_, fd| {
                    if let Some(fd) = fd.filter(|fd| *fd >= 0) {
                        // SAFETY: the GET returned a new fd that nothing else owns.
                        drop(unsafe { OwnedFd::from_raw_fd(fd) });
                    }
                }),
                follow_up: IOCTL_OPS[10].follow_up,
            },
        )?;
        final_info(t, d);
        Ok(())
    })
}

/// SET_IRQS with DATA_EVENTFD | ACTION_TRIGGER for one vector (`fd` -1: none).
fn irq_arg(index: u32, fd: RawFd) -> Vec<u64> {
    arg(&words(&[24, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, 1, fd as u32]), 24, 0)
}

fn set_irqs(d: &Device, index: u32, fd: RawFd) -> Result<i32, Errno> {
    ioctl_arg(d, VFIO_DEVICE_SET_IRQS, &mut irq_arg(index, fd))
}

fn disable_irqs(d: &Device, index: u32) {
    let _ = ioctl_arg(
        d,
        VFIO_DEVICE_SET_IRQS,
        &mut arg(&words(&[20, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, 0]), 20, 0),
    );
}

fn irqs(c: &Ctx) -> Transcript {
    let name = CString::new(c.bdf()).expect("no NUL");
    in_group_faults(c, |t, g, fi, probe| {
        let d = t.need("VFIO_GROUP_GET_DEVICE_FD", open_device(g, &name), none)?;
        let d = &d;
        let efd = t.need("eventfd", new_eventfd().map_err(Fail::Os), none)?;
        let fd = efd.as_raw_fd();
        // An enable with an eventfd; released by disabling the index.
        let enable = |o: &'static OpName, index: u32, fd: RawFd| Op {
            name: o.name,
            prepare: Box::new(move || Ok(irq_arg(index, fd))),
            call: Box::new(move |a| ioctl_arg(d, VFIO_DEVICE_SET_IRQS, a)),
            answer: Box::new(|_, r| ret_answer(r)),
            release: Box::new(move |_, r| {
                if r.is_some() {
                    disable_irqs(d, index)
                }
            }),
            follow_up: o.follow_up,
        };
        // An eventfd attached to vector 0 of an enabled index; released by detaching it.
        let attach = |o: &'static OpName, index: u32| Op {
            name: o.name,
            prepare: Box::new(move || Ok(irq_arg(index, fd))),
            call: Box::new(move |a| ioctl_arg(d, VFIO_DEVICE_SET_IRQS, a)),
            answer: Box::new(|_, r| ret_answer(r)),
            release: Box::new(move |_, r| {
                if r.is_some() {
                    let _ = set_irqs(d, index, -1);
                }
            }),
            follow_up: o.follow_up,
        };
        walk(t, fi, probe, enable(&IRQ_OPS[0], VFIO_PCI_INTX_IRQ_INDEX, fd))?;
        for (en, at, index) in
            [(&IRQ_OPS[1], &IRQ_OPS[2], VFIO_PCI_MSI_IRQ_INDEX), (&IRQ_OPS[3], &IRQ_OPS[4], VFIO_PCI_MSIX_IRQ_INDEX)]
        {
            walk(t, fi, probe, enable(en, index, -1))?;
            // The vector's first request_irq() (its /proc/irq/N/) made without injection.
            let label = if index == VFIO_PCI_MSI_IRQ_INDEX { "MSI" } else { "MSI-X" };
            t.need(&format!("{label}: enable with an eventfd"), set_irqs(d, index, fd), |r, _| ret_answer(r))?;
            t.need(&format!("{label}: detach it"), set_irqs(d, index, -1), |r, _| ret_answer(r))?;
            let r = walk(t, fi, probe, attach(at, index));
            disable_irqs(d, index);
            r?;
        }
        final_info(t, d);
        Ok(())
    })
}

fn resets(c: &Ctx) -> Transcript {
    let name = CString::new(c.bdf()).expect("no NUL");
    in_group_faults(c, |t, g, fi, probe| {
        let d = t.need("VFIO_GROUP_GET_DEVICE_FD", open_device(g, &name), none)?;
        let d = &d;
        walk(
            t,
            fi,
            probe,
            Op {
                name: RESET_OPS[0].name,
                prepare: Box::new(|| Ok(())),
                // SAFETY: VFIO_DEVICE_RESET takes no argument.
                call: Box::new(|_| unsafe { ioctl_val(d, VFIO_DEVICE_RESET, 0) }),
                answer: Box::new(|_, r| ret_answer(r)),
                release: Box::new(|_, _| {}),
                follow_up: RESET_OPS[0].follow_up,
            },
        )?;
        let a = arg(&words(&[16, 0, 1, g.raw_fd() as u32]), 16, 0);
        walk(t, fi, probe, buf_op(RESET_OPS[1].name, d, VFIO_DEVICE_PCI_HOT_RESET, a, 0))?;
        final_info(t, d);
        Ok(())
    })
}

fn mmap(c: &Ctx) -> Transcript {
    let name = CString::new(c.bdf()).expect("no NUL");
    in_group_faults(c, |t, g, fi, probe| {
        let name = &name;
        let pipe = t.need("pipe", Pipe::new().map_err(Fail::Os), none)?;
        let pipe = &pipe;
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let map = |d: &Device| Mapping::map(d, 0, PAGE, rw, libc::MAP_SHARED);
        // The STATUS register (offset 8) through the kernel's copy from the mapping.
        let touch =
            |m: &Mapping| vec![("read through the mapping", Val::text(format!("{:?}", m.kernel_read(8, 4, pipe))))];
        walk(
            t,
            fi,
            probe,
            Op {
                name: MAP_OPS[0].name,
                prepare: Box::new(|| open_device(g, name)),
                call: Box::new(|d| map(d)),
                answer: Box::new(|_, m| touch(m)),
                release: Box::new(|d, m| {
                    drop(m);
                    drop(d)
                }),
                follow_up: MAP_OPS[0].follow_up,
            },
        )?;
        walk(
            t,
            fi,
            probe,
            Op {
                name: MAP_OPS[1].name,
                prepare: Box::new(|| {
                    let d = open_device(g, name)?;
                    let m = map(&d).map_err(Fail::Os)?;
                    Ok((d, m))
                }),
                call: Box::new(|(_, m)| m.kernel_read(8, 4, pipe)),
                answer: Box::new(|(_, m), n| {
                    let mut f = vec![("copied", Val::Num(*n as u64))];
                    f.extend(touch(m));
                    f
                }),
                release: Box::new(|p, _| drop(p)),
                follow_up: MAP_OPS[1].follow_up,
            },
        )?;
        // A 4-byte write of BAR0's mark register (BAR0 at file offset 0) on an eventfd.
        let mark = sysfs::model_of(probe.bdf.as_str()).map_or(0, |m| m.mark.0 as u64);
        walk(
            t,
            fi,
            probe,
            Op {
                name: MAP_OPS[2].name,
                prepare: Box::new(move || {
                    let d = open_device(g, name)?;
                    let e = new_eventfd().map_err(Fail::Os)?;
                    let mut a = words(&[32, VFIO_DEVICE_IOEVENTFD_32]);
                    a.extend_from_slice(&mark.to_ne_bytes());
                    a.extend_from_slice(&0x80u64.to_ne_bytes());
                    a.extend_from_slice(&e.as_raw_fd().to_ne_bytes());
                    let a = arg(&a, 32, 0);
                    Ok((d, e, a))
                }),
                call: Box::new(|(d, _, a)| ioctl_arg(d, VFIO_DEVICE_IOEVENTFD, a)),
                answer: Box::new(|_, r| ret_answer(r)),
                release: Box::new(|(d, e, mut a), r| {
                    if r.is_some() {
                        // De-assign: the same write with fd -1.
                        let words: &mut [u64] = &mut a;
                        words[3] = (words[3] & 0xffff_ffff_0000_0000) | u64::from((-1i32) as u32);
                        let _ = ioctl_arg(&d, VFIO_DEVICE_IOEVENTFD, words);
                    }
                    drop(e);
                    drop(d)
                }),
                follow_up: MAP_OPS[2].follow_up,
            },
        )?;
        let d = t.need("open after the walks", open_device(g, name), none)?;
        final_info(t, &d);
        Ok(())
    })
}

/// Two functions in one IOMMU group (the "multifunction" e1000e): the bind walk binds the
/// first while the second, bound to the same driver, keeps the group's VFIO group.
fn shared_group(site: &Site) -> Result<(), String> {
    match &site.groups[..] {
        [a, b] if a == b && site.hot_reset => Ok(()),
        _ => Err("the bind walk runs on two functions of one IOMMU group".into()),
    }
}

fn bind(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf().to_string());
    let sibling = c.site.functions[1].clone();
    scenario(|t| {
        held_enabled(t, &bdf.clone(), |t| {
            // The VFIO core creates the group's VFIO group at the first bind of a function of
            // the group, and a failure there (dev_set_name(), cdev_device_add() in
            // vfio_create_group()) puts the group with its iommu_group still set: a WARN in
            // vfio_group_release() (and the iommu_group's reference kept), with either driver.
            // With the sibling bound, the walk's binds find the VFIO group instead.
            let bound = sysfs::set_driver_override(&sibling, driver.name)
                .and_then(|()| sysfs::drivers_probe(&sibling))
                .and_then(|()| match sysfs::current_driver(&sibling)? {
                    d if d == driver.name => Ok(()),
                    d => Err(Fail::other(format!("bound to {d}"))),
                });
            let result = t.need("bind the sibling (it keeps the VFIO group)", bound, none).and_then(|()| {
                let r = bind_walk(t, driver, &bdf);
                t.step("unbind the sibling", sysfs::unbind(&sibling), none);
                r
            });
            t.step("clear the sibling's driver_override", sysfs::clear_driver_override(&sibling), none);
            result?;
            // The function binds, opens and closes after the walk.
            let name = CString::new(bdf.as_str()).expect("no NUL");
            in_group(t, driver, &bdf, |t, g| {
                let d = t.need("VFIO_GROUP_GET_DEVICE_FD", open_device(g, &name), none)?;
                final_info(t, &d);
                Ok(())
            })
        })
    })
}

fn bind_walk(t: &mut Transcript, driver: &Driver, bdf: &str) -> Result<(), Abort> {
    let bdf = bdf.to_string();
    {
        t.need("write driver_override for the walk", sysfs::set_driver_override(&bdf, driver.name), none)?;
        let bind_file = sysfs::driver_dir(driver.name).join("bind");
        let probe = Probe::new(&bdf);
        let result = with_faults(t, |t, fi| {
            walk(
                t,
                fi,
                &probe,
                Op {
                    name: BIND_OPS[0].name,
                    prepare: Box::new(|| Ok(OpenOptions::new().write(true).open(&bind_file)?)),
                    call: Box::new(|f| f.write(bdf.as_bytes()).map_err(|e| Errno(e.raw_os_error().unwrap_or(0)))),
                    answer: Box::new(|_, _| bound_answer(driver, &bdf, &probe.group)),
                    release: Box::new(|_, r| {
                        let stray = stray_nodes(&bdf, &sysfs::vfio_dev_entries(&bdf).unwrap_or_default());
                        if r.is_some() || sysfs::current_driver(&bdf).is_ok() {
                            let _ = sysfs::unbind(&bdf);
                        }
                        for node in stray {
                            let _ = fs::remove_file(node);
                        }
                    }),
                    follow_up: BIND_OPS[0].follow_up,
                },
            )
        });
        t.step("clear driver_override after the walk", sysfs::clear_driver_override(&bdf), none);
        result
    }
}

/// The character device number of the vfio device `entry` of `bdf`, as sysfs shows it.
fn entry_devt(bdf: &str, entry: &str) -> Option<u64> {
    let text = fs::read_to_string(sysfs::device_dir(bdf).join("vfio-dev").join(entry).join("dev")).ok()?;
    let (major, minor) = text.trim().split_once(':')?;
    Some(makedev(major.parse().ok()?, minor.parse().ok()?))
}

/// `makedev(3)`.
fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfffff000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffffff00) << 12) | (minor & 0xff)
}

/// The character nodes under `/dev` (at most two levels below `/dev/vfio`) of device number
/// `devt`, other than `canonical`.
fn other_nodes(devt: u64, canonical: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/dev"), PathBuf::from("/dev/vfio"), PathBuf::from("/dev/vfio/devices")];
    let mut found = Vec::new();
    while let Some(dir) = dirs.pop() {
        let Ok(list) = fs::read_dir(&dir) else { continue };
        for e in list.filter_map(|e| e.ok()) {
            let path = e.path();
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            if meta.file_type().is_char_device() && meta.rdev() == devt && path != canonical {
                found.push(path);
            }
        }
    }
    found
}

/// The nodes of `bdf`'s vfio devices `entries` at other names than the vfio class's
/// (`/dev/vfio/devices/vfioN`). When the class's name for the node (a kasprintf) cannot be
/// allocated, `device_get_devnode()` falls back to the device's own name and devtmpfs makes
/// `/dev/vfioN`; `device_add()` ignores the node's failures either way. That is the driver
/// core's answer to the failure, the same under both drivers, and the unbind then deletes
/// the class's name only, leaving the other node behind.
fn stray_nodes(bdf: &str, entries: &[String]) -> Vec<PathBuf> {
    entries
        .iter()
        .filter_map(|e| Some(other_nodes(entry_devt(bdf, e)?, Path::new(&vfio::cdev_path(e)))))
        .flatten()
        .collect()
}

/// What a bind produced, as user space sees it (waiting for the nodes as `require_bound` does).
/// The cdev node counts at the class's name or at any other (`stray_nodes`).
fn bound_answer(driver: &Driver, bdf: &str, group: &str) -> Fields {
    let gpath = PathBuf::from(vfio::group_path(group));
    sysfs::wait_path(&gpath, true);
    let entries = sysfs::vfio_dev_entries(bdf).unwrap_or_default();
    let canonical = entries.first().is_some_and(|e| Path::new(&vfio::cdev_path(e)).exists());
    let stray = stray_nodes(bdf, &entries);
    if !canonical {
        // What the kernel made instead, for the record (a KTAP comment).
        println!(
            "# {bdf}: no {}; other nodes of its devices: {stray:?}",
            entries.first().map_or_else(String::new, |e| vfio::cdev_path(e))
        );
    }
    let cdev = canonical || !stray.is_empty();
    vec![
        ("driver", sysfs::current_driver(bdf).map_or(Val::text("none"), |d| driver_val(driver, &d))),
        ("group node", Val::Bool(gpath.exists())),
        ("vfio-dev entries", Val::Num(entries.len() as u64)),
        ("cdev node", Val::Bool(cdev)),
    ]
}
