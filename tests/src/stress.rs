//! The concurrency stress cases (issue 12 item 5): several threads of the test program and
//! a second process (the test program again, run with `--stress-worker`) loop over random
//! device operations on one function or across a reset set for a bounded time, racing each
//! other on the same device fds and on the same functions: opens and closes on the group
//! and the cdev path, `SET_IRQS` (MSI-X, MSI and INTx enabled with fresh eventfds,
//! disabled, triggered, unmasked), config and BAR `pread`/`pwrite`, BAR0 `mmap` with a
//! fault through the mapping and `munmap`, `VFIO_DEVICE_RESET`, `GET_PCI_HOT_RESET_INFO`,
//! `PCI_HOT_RESET` and `IOEVENTFD` assign, de-assign and signal.  `stress_unbind`
//! additionally unbinds the function, removes it from the PCI bus (sysfs `remove`, then a
//! rescan) and removes its driver (vfio-pci-rs: `rmmod`, refused with `EAGAIN` while a
//! device is open; the built-in vfio-pci: every function unbound, as its unregistration
//! would) while all that runs, binding it back after each.
//!
//! Every call's result must be success or an errno of that operation's allowed set
//! ([`allowed`]); the outcomes are counted per (operation, errno) and shown, not compared
//! (they depend on timing), and the sets of errnos each operation saw are compared between
//! the drivers loosely (a difference is reported, not a failure: [`Transcript::loose`]).
//! Config writes never set Bus Master Enable and never touch a BAR; BAR writes go to one
//! register known to be harmless (the model's `mark`, a receive descriptor base).
//! Afterwards every worker must have stopped by itself (a thread or the process stuck past
//! a deadline fails the case), and the function must open cleanly on both paths with the
//! `GET_INFO` reply it had before.

use crate::driver::Driver;
use crate::interrupts::{set_fds, set_none, ACTION_TRIGGER, ACTION_UNMASK, INTX, MSIX};
use crate::ioeventfd::ioeventfd;
use crate::reset::{cdev_bound, group_device, legacy, unbind_site, vfio_nodes, Member, LABELS};
use crate::scenarios::{none, scenario, Ctx, Scenario, Site};
use crate::sys::{new_eventfd, Errno, Fail, Mapping, Pipe};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Outcome, Transcript, Val};
use crate::uapi::*;
use crate::vfio::{Container, Device, Group, Iommufd};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How long the workers run in `stress_single` and `stress_set` (`VFIO_PCI_RS_STRESS_SECS`
/// overrides it).
const RUN_TIME: Duration = Duration::from_secs(6);
/// How long the workers run before, between and after the disruptions of `stress_unbind`.
const PHASE_TIME: Duration = Duration::from_millis(1500);
/// Worker threads in the test program; the second process runs [`CHILD_THREADS`].
const THREADS: usize = 3;
const CHILD_THREADS: usize = 2;
/// How long a worker may take to notice the stop (one call in flight) before it counts as
/// stuck.
const STOP_GRACE: Duration = Duration::from_secs(20);
/// How long a disruption (unbind, remove, driver removal) may wait for the workers' device
/// fds before the workers are paused (they close what they hold and open nothing until
/// resumed): every fd holds the unbind, and new opens succeed while one is still open.
const DISRUPT_PATIENCE: Duration = Duration::from_secs(3);
/// How long a disruption may take in all.
const DISRUPT_DEADLINE: Duration = Duration::from_secs(30);
/// A session (an open device fd) is closed by the next operation of any worker after this
/// long, so that no fd is held for long.
const SESSION_AGE: Duration = Duration::from_millis(400);
/// A session of the path not preferred at the moment is closed after this long.
const OFF_PATH_AGE: Duration = Duration::from_millis(50);
/// The child process's own limit, should its parent never close its stdin.
const CHILD_MAX: Duration = Duration::from_secs(90);
/// The argument that makes the test program a stress worker process.
pub const WORKER_ARG: &str = "--stress-worker";

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "stress_single",
            rule: "three threads and a second process racing opens and closes (group and cdev), SET_IRQS, config and BAR access, mmap faults, VFIO_DEVICE_RESET, PCI_HOT_RESET and IOEVENTFD on one function for 6 s: every call succeeds or returns an errno of its operation's allowed set, every worker stops, and the function opens cleanly on both paths with the GET_INFO it had before (outcome counts are timing-dependent: shown; the errno sets per operation compared loosely)",
            loads_module: false,
            applies: slot_only,
            run: stress_single,
            expect: expect_stress,
        },
        Scenario {
            name: "stress_set",
            rule: "as stress_single, across every function of a multi-function reset set: hot resets of the set race opens, closes and resets of its functions in both processes",
            loads_module: false,
            applies: multifunction_only,
            run: stress_set,
            expect: expect_stress,
        },
        Scenario {
            name: "stress_unbind",
            rule: "as stress_single, while the function is unbound, removed from the bus (sysfs remove, rescan) and its driver removed (vfio-pci-rs: rmmod, EAGAIN while a device is open; vfio-pci, built in: every function unbound), bound back after each: every disruption completes, every call answers an allowed errno (ENOENT and ENODEV too while the function is away), and afterwards the function binds and opens cleanly",
            loads_module: false,
            applies: slot_only,
            run: stress_unbind,
            expect: expect_stress_unbind,
        },
    ]
}

/// The root port of a topology's site, by the canonical path of its first function.
fn port_of(site: &Site) -> Result<String, String> {
    let f = site.functions.first().ok_or("no function")?;
    let path = fs::canonicalize(sysfs::device_dir(f)).map_err(|e| format!("{f}: {e}"))?;
    let port = path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("");
    Ok(port.to_string())
}

fn known_models(site: &Site) -> Result<(), String> {
    match site.functions.iter().find(|f| sysfs::model_of(f).is_none()) {
        Some(f) => Err(format!("{f}: unknown device model")),
        None => Ok(()),
    }
}

/// The e1000e of "slot" only: the stress cases cost about 10 s of guest time per driver.
fn slot_only(site: &Site) -> Result<(), String> {
    if site.functions.len() != 1 || port_of(site)? != "0000:00:02.0" {
        return Err("runs on the e1000e of the slot topology".into());
    }
    known_models(site)
}

/// The 2-function e1000e of "multifunction" only.
fn multifunction_only(site: &Site) -> Result<(), String> {
    if site.functions.len() < 2 || !site.hot_reset || port_of(site)? != "0000:00:03.0" {
        return Err("runs on the 2-function reset set of the multifunction topology".into());
    }
    known_models(site)
}

// ------------------------------------------------------------------ the operations

/// What a worker does, and how often (weights out of their sum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    OpenGroup,
    OpenCdev,
    Close,
    DropGroups,
    GetInfo,
    SetIrqs,
    ConfigRead,
    ConfigWrite,
    BarRead,
    BarWrite,
    MapTouch,
    Reset,
    HotResetInfo,
    HotReset,
    IoeventfdAssign,
    IoeventfdDeassign,
    IoeventfdSignal,
}

const WEIGHTS: &[(Op, u64)] = &[
    (Op::OpenGroup, 6),
    (Op::OpenCdev, 6),
    (Op::Close, 6),
    (Op::DropGroups, 1),
    (Op::GetInfo, 4),
    (Op::SetIrqs, 12),
    (Op::ConfigRead, 10),
    (Op::ConfigWrite, 6),
    (Op::BarRead, 8),
    (Op::BarWrite, 4),
    (Op::MapTouch, 8),
    (Op::Reset, 2),
    (Op::HotResetInfo, 2),
    (Op::HotReset, 2),
    (Op::IoeventfdAssign, 5),
    (Op::IoeventfdDeassign, 3),
    (Op::IoeventfdSignal, 3),
];

/// The name an outcome is counted under.
fn op_name(op: Op) -> &'static str {
    match op {
        Op::OpenGroup => "open (group path)",
        Op::OpenCdev => "open (cdev path)",
        Op::Close => "close",
        Op::DropGroups => "close the groups",
        Op::GetInfo => "GET_INFO",
        Op::SetIrqs => "SET_IRQS",
        Op::ConfigRead => "config pread",
        Op::ConfigWrite => "config pwrite",
        Op::BarRead => "BAR0 pread",
        Op::BarWrite => "BAR0 pwrite",
        Op::MapTouch => "BAR0 mmap + fault + munmap",
        Op::Reset => "VFIO_DEVICE_RESET",
        Op::HotResetInfo => "GET_PCI_HOT_RESET_INFO",
        Op::HotReset => "PCI_HOT_RESET",
        Op::IoeventfdAssign => "IOEVENTFD assign",
        Op::IoeventfdDeassign => "IOEVENTFD de-assign",
        Op::IoeventfdSignal => "ioeventfd signal",
    }
}

/// The errnos an operation may answer with, by the uAPI and the driver core; `away` adds
/// those of a function that is being (or has been) unbound, removed or left without its
/// driver: its nodes are gone (`ENOENT`), its group or registration dead (`ENODEV`).
fn allowed(op: &str, away: bool) -> Vec<Errno> {
    use Errno as E;
    let mut v: Vec<Errno> = match op {
        // A group is open in one file at a time and excludes the cdev path (EBUSY); a cdev
        // bind of a device open elsewhere is EINVAL (the cdev path allows one open) or
        // EBUSY (its group is open); a device no longer registered is ENODEV.
        // EPERM: the group's DMA is owned by another iommufd (two functions of one group
        // bound in the two processes).  EAGAIN: the first open's function reset found the
        // device lock held (an unbind, a removal or a reset of the function in progress)
        // and vfio-pci fails the open rather than wait (vfio_pci_core_enable).
        "open (group path)" | "open (cdev path)" => vec![E::EBUSY, E::EINVAL, E::ENODEV, E::EPERM, E::EAGAIN],
        "close" | "close the groups" | "ioeventfd signal" | "GET_INFO" => vec![],
        // Enabling one type while another is on is EINVAL; MSI-X vectors past the count
        // without dynamic allocation EINVAL; a trigger of a disabled type EINVAL.
        "SET_IRQS" => vec![E::EINVAL, E::EBUSY],
        // Config accesses past what the virtual config space lets through.
        "config pread" | "config pwrite" => vec![E::EINVAL, E::EIO],
        // BAR access with memory decode off (written by another worker) is EIO.
        "BAR0 pread" | "BAR0 pwrite" => vec![E::EIO, E::EINVAL],
        // A fault with memory decode off fails (EFAULT in the kernel's copy).
        "BAR0 mmap + fault + munmap" => vec![E::EFAULT, E::EINVAL, E::EIO],
        // The device lock held by another reset (pci_try_reset_function) is EAGAIN.
        "VFIO_DEVICE_RESET" => vec![E::EAGAIN, E::EINVAL, E::ENOTTY, E::EBUSY],
        "GET_PCI_HOT_RESET_INFO" => vec![E::ENODEV, E::ENOSPC],
        // A set member open elsewhere (another process, another iommufd) is EINVAL or
        // EPERM; a locked device or bus EAGAIN or EBUSY; no reset method ENODEV.
        "PCI_HOT_RESET" => vec![E::EAGAIN, E::EBUSY, E::EINVAL, E::EPERM, E::ENODEV],
        // The same offset, size and data again is EEXIST; 1000 of them ENOSPC.
        "IOEVENTFD assign" => vec![E::EEXIST, E::EINVAL, E::ENOSPC],
        // No match is ENODEV.
        "IOEVENTFD de-assign" => vec![E::ENODEV, E::EINVAL],
        _ => vec![],
    };
    if away && op.starts_with("open ") {
        v.extend([E::ENOENT, E::ENODEV]);
    }
    v
}

/// Whether a counted outcome ("0", "EBUSY (16)", ...) is allowed for `op`.
fn is_allowed(op: &str, outcome: &str, away: bool) -> bool {
    outcome == "0" || allowed(op, away).iter().any(|e| e.to_string() == outcome)
}

// ------------------------------------------------------------------ the workers

/// Outcomes counted per (operation, outcome): "0" for success, else the errno as
/// [`Errno`]'s `Display` shows it (or a non-errno failure's text).
#[derive(Default, Clone, Debug, PartialEq, Eq)]
struct Tally(BTreeMap<(String, String), u64>);

impl Tally {
    fn add<T>(&mut self, op: Op, r: &Result<T, Fail>) {
        let key = match r {
            Ok(_) => "0".to_string(),
            Err(f) => f.to_string(),
        };
        *self.0.entry((op_name(op).to_string(), key)).or_insert(0) += 1;
    }

    fn merge(&mut self, other: &Tally) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_insert(0) += v;
        }
    }

    /// One line per (operation, outcome), for the child's stdout.
    fn lines(&self) -> String {
        self.0.iter().map(|((op, o), n)| format!("STRESS\t{op}\t{o}\t{n}\n")).collect()
    }

    /// The counts the child printed.
    fn parse(text: &str) -> Tally {
        let mut t = Tally::default();
        for line in text.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            if let ["STRESS", op, o, n] = f[..] {
                if let Ok(n) = n.parse::<u64>() {
                    *t.0.entry((op.to_string(), o.to_string())).or_insert(0) += n;
                }
            }
        }
        t
    }

    /// The outcomes each operation saw, as sets.
    fn sets(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (op, o) in self.0.keys() {
            m.entry(op.clone()).or_default().insert(o.clone());
        }
        m
    }

    fn render(&self) -> String {
        let mut by_op: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for ((op, o), n) in &self.0 {
            by_op.entry(op).or_default().push(format!("{o} x{n}"));
        }
        by_op.iter().map(|(op, v)| format!("{op}: {}", v.join(", "))).collect::<Vec<_>>().join("; ")
    }
}

/// What the workers run on: the functions and whether hot resets are tried.
#[derive(Clone, Debug)]
struct Plan {
    functions: Vec<String>,
    hot_reset: bool,
    seed: u64,
}

/// A process's container and groups (the group path), shared by its group-path sessions.
struct Groups {
    groups: Vec<(String, Group)>,
    _container: Container,
    opened: Instant,
}

impl Groups {
    fn fds(&self) -> Vec<i32> {
        self.groups.iter().map(|(_, g)| g.raw_fd()).collect()
    }
}

/// One open device fd, shared by the workers of a process for the time of an operation.
struct Session {
    func: usize,
    dev: Device,
    cdev: bool,
    groups: Option<Arc<Groups>>,
    _ictx: Option<Arc<Iommufd>>,
    opened: Instant,
    /// Assigned ioeventfds: (offset, data, eventfd).
    ioevents: Mutex<Vec<(u64, u64, OwnedFd)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the workers of one process share.
struct Shared {
    plan: Plan,
    stop: AtomicBool,
    /// The workers close what they hold and open nothing (a disruption waits for it).
    pause: AtomicBool,
    /// One group-path and one cdev-path session per function: slot `2 * func + cdev`.
    slots: Vec<Mutex<Option<Arc<Session>>>>,
    groups: Mutex<Option<Arc<Groups>>>,
    ictx: Mutex<Option<Arc<Iommufd>>>,
    /// Operations done, for the diagnostics.
    ops: AtomicU64,
}

impl Shared {
    fn new(plan: Plan) -> Shared {
        let slots = (0..plan.functions.len() * 2).map(|_| Mutex::new(None)).collect();
        Shared {
            plan,
            stop: AtomicBool::new(false),
            pause: AtomicBool::new(false),
            slots,
            groups: Mutex::new(None),
            ictx: Mutex::new(None),
            ops: AtomicU64::new(0),
        }
    }

    /// Close every session and the groups (the fds go with the last user's reference).
    fn close_all(&self) {
        for s in &self.slots {
            lock(s).take();
        }
        lock(&self.groups).take();
    }
}

/// A small generator (xorshift64*), seeded per worker.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn draw_op(&mut self, hot_reset: bool) -> Op {
        let total: u64 = WEIGHTS.iter().map(|(_, w)| w).sum();
        let mut x = self.below(total);
        for (op, w) in WEIGHTS {
            if x < *w {
                if !hot_reset && *op == Op::HotReset {
                    return Op::HotResetInfo;
                }
                return *op;
            }
            x -= w;
        }
        Op::GetInfo
    }
}

const REGION_SHIFT: u32 = 40;
const CONFIG_OFFSET: u64 = 7 << REGION_SHIFT;
const PCI_COMMAND: u64 = 0x04;
const COMMAND_MEMORY: u16 = 1 << 1;
const COMMAND_MASTER: u16 = 1 << 2;
const COMMAND_INTX_DISABLE: u16 = 1 << 10;

/// The model's harmless BAR0 register (see `sysfs::Model::mark`).
fn mark_of(bdf: &str) -> u64 {
    sysfs::model_of(bdf).map_or(0x2800, |m| m.mark.0 as u64)
}

/// One worker: random operations until told to stop.
fn worker(sh: &Shared, index: u64) -> Tally {
    let mut tally = Tally::default();
    let mut rng = Rng(sh.plan.seed ^ (index + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let pipe = Pipe::new().ok();
    while !sh.stop.load(Ordering::Relaxed) {
        if sh.pause.load(Ordering::Relaxed) {
            sh.close_all();
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        // The two paths exclude each other and a session is reopened as soon as it is
        // closed, so whichever path holds the function tends to keep it: every process
        // prefers the group path in even seconds of the wall clock (shared by both
        // processes) and the cdev path in odd ones, and closes the other path's sessions
        // (and its groups) soon.
        let prefer_cdev =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).is_ok_and(|d| d.as_secs() % 2 == 1);
        // Old sessions go first, whoever opened them, and the groups once no session uses
        // them (they keep the other process off the group path and off the cdev path).
        for s in &sh.slots {
            let mut g = lock(s);
            let age = g.as_ref().map(|x| (x.opened.elapsed(), x.cdev));
            if age.is_some_and(|(a, cdev)| a > SESSION_AGE || (cdev != prefer_cdev && a > OFF_PATH_AGE)) {
                g.take();
            }
        }
        {
            let mut g = lock(&sh.groups);
            let unused = g.as_ref().is_some_and(|x| Arc::strong_count(x) == 1);
            if unused && (prefer_cdev || g.as_ref().is_some_and(|x| x.opened.elapsed() > SESSION_AGE)) {
                g.take();
            }
        }
        let mut op = rng.draw_op(sh.plan.hot_reset);
        // (Failed opens are quick, so most iterations draw one: the other path gets one
        // try in fifty, enough to race the preferred one without keeping it off.)
        if matches!(op, Op::OpenGroup | Op::OpenCdev) && rng.below(50) != 0 {
            op = if prefer_cdev { Op::OpenCdev } else { Op::OpenGroup };
        }
        sh.ops.fetch_add(1, Ordering::Relaxed);
        let func = rng.below(sh.plan.functions.len() as u64) as usize;
        match op {
            Op::OpenGroup | Op::OpenCdev => {
                let cdev = op == Op::OpenCdev;
                let slot = &sh.slots[2 * func + usize::from(cdev)];
                if lock(slot).is_some() {
                    continue;
                }
                let r = if cdev { open_cdev(sh, func) } else { open_group(sh, func) };
                tally.add(op, &r);
                if let Ok(s) = r {
                    lock(slot).replace(Arc::new(s));
                }
            }
            Op::Close => {
                let i = rng.below(sh.slots.len() as u64) as usize;
                if lock(&sh.slots[i]).take().is_some() {
                    tally.add::<()>(op, &Ok(()));
                }
            }
            Op::DropGroups => {
                if lock(&sh.groups).take().is_some() {
                    tally.add::<()>(op, &Ok(()));
                }
            }
            _ => {
                // An operation on a session: any open one.
                let open: Vec<Arc<Session>> = sh.slots.iter().filter_map(|s| lock(s).clone()).collect();
                if open.is_empty() {
                    continue;
                }
                let s = &open[rng.below(open.len() as u64) as usize];
                let bdf = &sh.plan.functions[s.func];
                if let Some(r) = on_session(op, s, bdf, &mut rng, pipe.as_ref()) {
                    tally.add(op, &r);
                }
            }
        }
    }
    sh.close_all();
    tally
}

/// The IOMMU groups of the plan's functions (their nodes exist while a VFIO driver has them).
fn discover_groups(plan: &Plan) -> Result<Vec<String>, Fail> {
    let mut v: Vec<String> = Vec::new();
    for f in &plan.functions {
        let g = sysfs::iommu_group(f)?;
        if !v.contains(&g) {
            v.push(g);
        }
    }
    Ok(v)
}

/// The process's groups, opened into a container with type1v2 if none are open.
fn groups_of(sh: &Shared) -> Result<Arc<Groups>, Fail> {
    let mut g = lock(&sh.groups);
    if let Some(x) = g.as_ref() {
        return Ok(Arc::clone(x));
    }
    let container = Container::open()?;
    let mut groups = Vec::new();
    for name in discover_groups(&sh.plan)? {
        let grp = Group::open(&name)?;
        grp.set_container(&container)?;
        groups.push((name, grp));
    }
    container.set_iommu(VFIO_TYPE1v2_IOMMU)?;
    let x = Arc::new(Groups { groups, _container: container, opened: Instant::now() });
    g.replace(Arc::clone(&x));
    Ok(x)
}

fn open_group(sh: &Shared, func: usize) -> Result<Session, Fail> {
    let bdf = &sh.plan.functions[func];
    let groups = groups_of(sh)?;
    let name = sysfs::iommu_group(bdf)?;
    let r = match groups.groups.iter().find(|(n, _)| *n == name) {
        Some((_, g)) => g.get_device_fd(bdf),
        None => Err(Fail::Os(Errno::ENODEV)),
    };
    match r {
        Ok(dev) => Ok(Session {
            func,
            dev,
            cdev: false,
            groups: Some(groups),
            _ictx: None,
            opened: Instant::now(),
            ioevents: Mutex::new(Vec::new()),
        }),
        Err(e) => {
            // A group of a function gone away stays dead: open it anew next time.
            lock(&sh.groups).take();
            Err(e)
        }
    }
}

fn open_cdev(sh: &Shared, func: usize) -> Result<Session, Fail> {
    let bdf = &sh.plan.functions[func];
    let ictx = {
        let mut g = lock(&sh.ictx);
        match g.as_ref() {
            Some(x) => Arc::clone(x),
            None => {
                let x = Arc::new(Iommufd::open()?);
                g.replace(Arc::clone(&x));
                x
            }
        }
    };
    let cdev = match &sysfs::vfio_dev_entries(bdf)?[..] {
        [one] => one.clone(),
        _ => return Err(Fail::Os(Errno::ENOENT)),
    };
    let dev = Device::open_cdev(&cdev)?;
    dev.bind_iommufd(&ictx)?;
    Ok(Session {
        func,
        dev,
        cdev: true,
        groups: None,
        _ictx: Some(ictx),
        opened: Instant::now(),
        ioevents: Mutex::new(Vec::new()),
    })
}

/// One operation on an open session; None when there was nothing to do.
fn on_session(op: Op, s: &Session, bdf: &str, rng: &mut Rng, pipe: Option<&Pipe>) -> Option<Result<(), Fail>> {
    let d = &s.dev;
    let mark = mark_of(bdf);
    Some(match op {
        Op::GetInfo => d.get_info(argsz::<VfioDeviceInfo>()).map(|_| ()),
        Op::SetIrqs => set_irqs(d, rng),
        Op::ConfigRead => {
            let (off, len) = match rng.below(3) {
                0 => (rng.below(256), 1),
                1 => (rng.below(128) * 2, 2),
                _ => (rng.below(64) * 4, 4),
            };
            let mut b = [0u8; 4];
            d.file().read_exact_at(&mut b[..len], CONFIG_OFFSET + off).map_err(Fail::from)
        }
        Op::ConfigWrite => config_write(d, rng),
        Op::BarRead => {
            let off = if rng.below(2) == 0 { mark } else { rng.below(0x40) * 4 };
            let mut b = [0u8; 4];
            d.file().read_exact_at(&mut b, off).map_err(Fail::from)
        }
        Op::BarWrite => {
            let v = (rng.next() as u32) & !0xf;
            d.file().write_all_at(&v.to_le_bytes(), mark).map_err(Fail::from)
        }
        Op::MapTouch => {
            let pipe = pipe?;
            let page = mark & !0xfff;
            match Mapping::map(d.file(), page, 4096, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED) {
                Err(e) => Err(Fail::Os(e)),
                Ok(m) => {
                    let at = (mark - page) as usize;
                    let r = if rng.below(2) == 0 {
                        m.kernel_read(at, 4, pipe)
                    } else {
                        m.kernel_write(at, &((rng.next() as u32) & !0xf).to_le_bytes(), pipe)
                    };
                    drop(m);
                    r.map(|_| ()).map_err(Fail::Os)
                }
            }
        }
        Op::Reset => d.reset().map_err(Fail::Os),
        Op::HotResetInfo => d.hot_reset_info(4096).and_then(|c| c.result.map_err(Fail::Os)),
        Op::HotReset => {
            let fds = match (&s.groups, s.cdev) {
                (Some(g), false) => g.fds(),
                _ => Vec::new(),
            };
            d.hot_reset_groups(&fds).map_err(Fail::Os)
        }
        Op::IoeventfdAssign => {
            let data = rng.below(4) << 4;
            let efd = new_eventfd().map_err(Fail::Os);
            match efd {
                Err(e) => Err(e),
                Ok(efd) => {
                    let r = ioeventfd(d, VFIO_DEVICE_IOEVENTFD_32, mark, data, efd.as_raw_fd()).map(|_| ());
                    if r.is_ok() {
                        lock(&s.ioevents).push((mark, data, efd));
                    }
                    r
                }
            }
        }
        Op::IoeventfdDeassign => {
            // A registered one, or (a quarter of the time) one that may not be.
            let picked = {
                let mut v = lock(&s.ioevents);
                if v.is_empty() || rng.below(4) == 0 {
                    None
                } else {
                    let i = rng.below(v.len() as u64) as usize;
                    Some(v.remove(i))
                }
            };
            let (offset, data) = match &picked {
                Some((o, dt, _)) => (*o, *dt),
                None => (mark, rng.below(4) << 4),
            };
            ioeventfd(d, VFIO_DEVICE_IOEVENTFD_32, offset, data, -1).map(|_| ())
        }
        Op::IoeventfdSignal => {
            let fd = {
                let v = lock(&s.ioevents);
                if v.is_empty() {
                    return None;
                }
                let i = rng.below(v.len() as u64) as usize;
                v[i].2.try_clone()
            };
            match fd {
                Err(e) => Err(Fail::from(e)),
                Ok(fd) => {
                    let mut f = fs::File::from(fd);
                    f.write_all(&1u64.to_ne_bytes()).map_err(Fail::from)
                }
            }
        }
        Op::OpenGroup | Op::OpenCdev | Op::Close | Op::DropGroups => return None,
    })
}

/// SET_IRQS: MSI-X, MSI or INTx enabled with fresh eventfds, disabled, triggered, unmasked.
fn set_irqs(d: &Device, rng: &mut Rng) -> Result<(), Fail> {
    let msi = VFIO_PCI_MSI_IRQ_INDEX;
    let fresh = |n: usize| -> Result<Vec<OwnedFd>, Fail> { (0..n).map(|_| new_eventfd().map_err(Fail::Os)).collect() };
    let raw = |v: &[OwnedFd]| -> Vec<i32> { v.iter().map(|f| f.as_raw_fd()).collect() };
    // The eventfds are closed when the call returns: the kernel keeps its own references.
    match rng.below(9) {
        0 | 1 => {
            let fds = fresh(1 + rng.below(3) as usize)?;
            set_fds(d, MSIX, 0, &raw(&fds)).map(|_| ())
        }
        2 => {
            let fds = fresh(1)?;
            set_fds(d, msi, 0, &raw(&fds)).map(|_| ())
        }
        3 => {
            let fds = fresh(1)?;
            set_fds(d, INTX, 0, &raw(&fds)).map(|_| ())
        }
        4 => set_none(d, ACTION_TRIGGER, MSIX, 0, 0).map(|_| ()),
        5 => set_none(d, ACTION_TRIGGER, msi, 0, 0).map(|_| ()),
        6 => set_none(d, ACTION_TRIGGER, INTX, 0, 0).map(|_| ()),
        7 => set_none(d, ACTION_TRIGGER, MSIX, 0, 1).map(|_| ()),
        _ => set_none(d, ACTION_UNMASK, INTX, 0, 1).map(|_| ()),
    }
}

/// A config write that leaves Bus Master Enable off and the BARs alone: the command
/// register (memory decode and INTx disable flipped), the interrupt line or the latency
/// timer.
fn config_write(d: &Device, rng: &mut Rng) -> Result<(), Fail> {
    match rng.below(4) {
        0 | 1 => {
            let mut b = [0u8; 2];
            d.file().read_exact_at(&mut b, CONFIG_OFFSET + PCI_COMMAND)?;
            let mut cmd = u16::from_le_bytes(b) & !COMMAND_MASTER;
            // Memory decode on most of the time, so that BAR accesses mostly go through.
            if rng.below(5) == 0 {
                cmd &= !COMMAND_MEMORY;
            } else {
                cmd |= COMMAND_MEMORY;
            }
            if rng.below(2) == 0 {
                cmd ^= COMMAND_INTX_DISABLE;
            }
            d.file().write_all_at(&cmd.to_le_bytes(), CONFIG_OFFSET + PCI_COMMAND)?;
            Ok(())
        }
        2 => Ok(d.file().write_all_at(&[rng.next() as u8], CONFIG_OFFSET + 0x3c)?),
        _ => Ok(d.file().write_all_at(&[rng.next() as u8], CONFIG_OFFSET + 0x0d)?),
    }
}

// ------------------------------------------------------------------ the second process

/// The test program run as a worker process: `--stress-worker SEED HOTRESET BDF...`.  It
/// runs [`CHILD_THREADS`] workers until its stdin ends (`p` pauses them, `r` resumes them)
/// or [`CHILD_MAX`] passes, then prints its counts and exits 0.
pub fn worker_main(args: &[String]) -> i32 {
    let [seed, hot, functions @ ..] = args else {
        eprintln!("{WORKER_ARG} SEED HOTRESET BDF...");
        return 2;
    };
    let (Ok(seed), Ok(hot)) = (seed.parse::<u64>(), hot.parse::<u8>()) else {
        eprintln!("{WORKER_ARG}: bad SEED or HOTRESET");
        return 2;
    };
    let plan = Plan { functions: functions.to_vec(), hot_reset: hot != 0, seed };
    let sh = Arc::new(Shared::new(plan));
    {
        let sh = Arc::clone(&sh);
        thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut b = [0u8; 1];
            loop {
                match stdin.read(&mut b) {
                    Ok(1) if b[0] == b'p' => sh.pause.store(true, Ordering::Relaxed),
                    Ok(1) if b[0] == b'r' => sh.pause.store(false, Ordering::Relaxed),
                    Ok(1) => {}
                    _ => break,
                }
            }
            sh.stop.store(true, Ordering::Relaxed);
        });
    }
    {
        let sh = Arc::clone(&sh);
        thread::spawn(move || {
            thread::sleep(CHILD_MAX);
            sh.stop.store(true, Ordering::Relaxed);
        });
    }
    let handles: Vec<_> = (0..CHILD_THREADS)
        .map(|i| {
            let sh = Arc::clone(&sh);
            thread::spawn(move || worker(&sh, 100 + i as u64))
        })
        .collect();
    let mut tally = Tally::default();
    for h in handles {
        match h.join() {
            Ok(t) => tally.merge(&t),
            Err(_) => {
                eprintln!("a worker thread panicked");
                return 1;
            }
        }
    }
    print!("{}", tally.lines());
    let _ = std::io::stdout().flush();
    0
}

// ------------------------------------------------------------------ the crew

/// The workers of one run: this program's threads and the second process.
struct Crew {
    shared: Arc<Shared>,
    threads: Vec<(thread::JoinHandle<Tally>, mpsc::Receiver<()>)>,
    child: Option<Child>,
    started: Instant,
    /// Why the second process could not be started, if it could not.
    child_error: Option<String>,
}

impl Crew {
    fn start(plan: Plan) -> Crew {
        let shared = Arc::new(Shared::new(plan.clone()));
        let spawned = std::env::current_exe().map_err(Fail::from).and_then(|exe| {
            let mut cmd = Command::new(exe);
            cmd.arg(WORKER_ARG)
                .arg((plan.seed ^ 0xc41d).to_string())
                .arg(if plan.hot_reset { "1" } else { "0" })
                .args(&plan.functions)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd.spawn().map_err(Fail::from)
        });
        let (child, child_error) = match spawned {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e.to_string())),
        };
        // The threads after the process: it inherits no eventfd of theirs (eventfds are
        // made without O_CLOEXEC).
        let threads = (0..THREADS)
            .map(|i| {
                let sh = Arc::clone(&shared);
                let (tx, rx) = mpsc::channel();
                let h = thread::spawn(move || {
                    let t = worker(&sh, i as u64);
                    let _ = tx.send(());
                    t
                });
                (h, rx)
            })
            .collect();
        Crew { shared, threads, child, started: Instant::now(), child_error }
    }

    fn tell_child(&mut self, what: &[u8]) {
        if let Some(stdin) = self.child.as_mut().and_then(|c| c.stdin.as_mut()) {
            let _ = stdin.write_all(what);
            let _ = stdin.flush();
        }
    }

    fn pause(&mut self, on: bool) {
        self.shared.pause.store(on, Ordering::Relaxed);
        self.tell_child(if on { b"p" } else { b"r" });
    }

    /// Stop everything, wait for it (each worker [`STOP_GRACE`] at most) and gather the
    /// counts; the problems (a stuck worker, a child that failed) come back as notes.
    fn stop(mut self) -> (Tally, Vec<String>, Duration, u64) {
        let ran = self.started.elapsed();
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(c) = self.child.as_mut() {
            drop(c.stdin.take());
        }
        let deadline = Instant::now() + STOP_GRACE;
        let mut tally = Tally::default();
        let mut problems = Vec::new();
        if let Some(e) = &self.child_error {
            problems.push(format!("the worker process did not start: {e}"));
        }
        for (i, (h, rx)) in self.threads.into_iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
                    Ok(t) => tally.merge(&t),
                    Err(_) => problems.push(format!("worker thread {i} panicked")),
                },
                // Left running: its fds keep the device open, so what follows may hang,
                // and the harness's watchdog ends the run.
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    problems.push(format!("worker thread {i} did not stop within {} s", STOP_GRACE.as_secs()))
                }
            }
        }
        if let Some(mut c) = self.child.take() {
            let mut status = None;
            while Instant::now() < deadline {
                match c.try_wait() {
                    Ok(Some(s)) => {
                        status = Some(s);
                        break;
                    }
                    Ok(None) => thread::sleep(Duration::from_millis(20)),
                    Err(e) => {
                        problems.push(format!("waiting for the worker process: {e}"));
                        break;
                    }
                }
            }
            match status {
                None => {
                    problems.push(format!("the worker process did not stop within {} s", STOP_GRACE.as_secs()));
                    let _ = c.kill();
                    let _ = c.wait();
                }
                Some(s) => {
                    let mut out = String::new();
                    let mut err = String::new();
                    if let Some(mut o) = c.stdout.take() {
                        let _ = o.read_to_string(&mut out);
                    }
                    if let Some(mut e) = c.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    if !s.success() {
                        problems.push(format!("the worker process exited with {s}: {}", err.trim()));
                    }
                    tally.merge(&Tally::parse(&out));
                }
            }
        }
        self.shared.close_all();
        lock(&self.shared.ictx).take();
        let ops = self.shared.ops.load(Ordering::Relaxed);
        (tally, problems, ran, ops)
    }
}

// ------------------------------------------------------------------ the cases

const GET_INFO_BEFORE: &str = "before: GET_INFO (group path)";
const STOPPED: &str = "every worker stopped by itself";
const UNDOCUMENTED: &str = "outcomes outside the allowed errnos";
const NO_LEAK: &str = "afterwards, everything closed: no vfio IRQ left, PCI enable count";
const AFTER_GROUP: &str = "afterwards: GET_INFO (group path) as before";
const AFTER_CDEV: &str = "afterwards: GET_INFO (cdev path) as before";

/// The GET_INFO fields compared before and after.
fn info_key(d: &Device) -> Result<(u32, u32, u32), Fail> {
    let r = d.get_info(argsz::<VfioDeviceInfo>())?;
    Ok((r.info.flags, r.info.num_regions, r.info.num_irqs))
}

fn info_vals(k: &(u32, u32, u32), _: &mut Transcript) -> Vec<(&'static str, Val)> {
    vec![("flags", Val::Hex(k.0.into())), ("num_regions", Val::Num(k.1.into())), ("num_irqs", Val::Num(k.2.into()))]
}

/// GET_INFO of the first function through its group.
fn group_info(t: &mut Transcript, p: &str, set: &[Member]) -> Result<(u32, u32, u32), Abort> {
    let all: Vec<&Member> = set.iter().collect();
    let lg = legacy(t, p, &all)?;
    let d = group_device(t, p, &lg, &set[0])?;
    t.need(&format!("{p}GET_INFO"), info_key(&d), info_vals)
}

/// GET_INFO of the first function through its cdev.
fn cdev_info(t: &mut Transcript, p: &str, set: &[Member]) -> Result<(u32, u32, u32), Abort> {
    let ictx = t.need(&format!("{p}open /dev/iommu"), Iommufd::open(), none)?;
    let d = cdev_bound(t, p, &set[0], &ictx, "ictx")?;
    t.need(&format!("{p}GET_INFO"), info_key(&d), info_vals)
}

/// The members again, with the nodes they have now (a removal and a rescan renumber them).
fn refresh(set: &[Member]) -> Result<Vec<Member>, Fail> {
    set.iter()
        .enumerate()
        .map(|(i, m)| {
            let (group, cdev) = vfio_nodes(&m.bdf)?;
            Ok(Member { label: LABELS[i], bdf: m.bdf.clone(), group, cdev })
        })
        .collect()
}

/// The seed of a run: fixed, mixed with the site's first function and the driver, so the
/// two drivers' runs draw different sequences only by timing.
fn seed(site: &Site) -> u64 {
    site.functions[0].bytes().fold(0x5eed_5eed_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Stop the crew and record what the workers did: the counts (shown), the sets of outcomes
/// per operation (compared loosely), whether all stopped, and the outcomes outside the
/// allowed errnos.
fn finish_crew(t: &mut Transcript, crew: Crew, away: bool) {
    let (tally, problems, ran, ops) = crew.stop();
    t.info.push(format!(
        "stress: {ops} operations by this program's {THREADS} threads in {:.1} s, plus the worker process's {CHILD_THREADS} threads (timing-dependent, not compared): {}",
        ran.as_secs_f64(),
        tally.render()
    ));
    for (op, set) in tally.sets() {
        t.loose.push((format!("stress: outcomes of {op}"), set.into_iter().collect()));
    }
    t.record(STOPPED, Outcome::Ok(vec![("stopped", Val::Bool(problems.is_empty()))]));
    t.notes.extend(problems);
    let bad: Vec<String> = tally
        .0
        .iter()
        .filter(|((op, o), _)| !is_allowed(op, o, away))
        .map(|((op, o), n)| format!("{op} -> {o} x{n}"))
        .collect();
    t.record(
        UNDOCUMENTED,
        Outcome::Ok(vec![("count", Val::Num(bad.len() as u64)), ("which", Val::text(bad.join("; ")))]),
    );
}

/// Afterwards: nothing left behind once every fd is closed (no vfio IRQ in
/// /proc/interrupts; the functions' PCI enable counts, compared), and the first function
/// opens on both paths and answers GET_INFO as before.
fn afterwards(t: &mut Transcript, set: &[Member], before: (u32, u32, u32)) {
    let irqs = crate::interrupts::vfio_irq_names();
    let enable: Vec<String> = set
        .iter()
        .map(|m| fs::read_to_string(sysfs::device_dir(&m.bdf).join("enable")).unwrap_or_default().trim().to_string())
        .collect();
    t.step(NO_LEAK, irqs, |n, _| vec![("vfio IRQs", Val::text(n.join(" "))), ("enable", Val::text(enable.join(" ")))]);
    if let Ok(k) = group_info(t, "afterwards: group path: ", set) {
        t.record(AFTER_GROUP, Outcome::Ok(vec![("same", Val::Bool(k == before))]));
    }
    if let Ok(k) = cdev_info(t, "afterwards: cdev path: ", set) {
        t.record(AFTER_CDEV, Outcome::Ok(vec![("same", Val::Bool(k == before))]));
    }
}

fn plan_of(c: &Ctx) -> Plan {
    Plan { functions: c.site.functions.clone(), hot_reset: c.site.hot_reset, seed: seed(c.site) }
}

/// Bind every function of the site, recording the driver only: a removal and rescan may
/// renumber a function's IOMMU group, so the two drivers' runs need not see the same one.
fn bind_quiet(t: &mut Transcript, c: &Ctx) -> Result<Vec<Member>, Abort> {
    for (i, bdf) in c.site.functions.iter().enumerate() {
        let r = bind_back(c.driver, bdf);
        t.need(&format!("bind {}", LABELS[i]), r, |_, _| vec![("driver", Val::Norm("driver under test".into()))])?;
    }
    let members: Vec<Member> = c
        .site
        .functions
        .iter()
        .enumerate()
        .map(|(i, bdf)| Member { label: LABELS[i], bdf: bdf.clone(), group: String::new(), cdev: String::new() })
        .collect();
    t.need("the nodes of the bound functions", refresh(&members), |_, _| Vec::new())
}

fn stress_run(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_quiet(t, c)?;
        let before = group_info(t, "before: group path: ", &set);
        if let Ok(k) = &before {
            t.record(GET_INFO_BEFORE, Outcome::Ok(info_vals(k, &mut Transcript::new())));
        }
        if let Ok(before) = before {
            let crew = Crew::start(plan_of(c));
            thread::sleep(run_time());
            finish_crew(t, crew, false);
            afterwards(t, &set, before);
        }
        unbind_site(t, &set);
        Ok(())
    })
}

fn stress_single(c: &Ctx) -> Transcript {
    stress_run(c)
}

fn stress_set(c: &Ctx) -> Transcript {
    stress_run(c)
}

fn expect_stress(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    for l in LABELS.iter().take(c.site.functions.len()) {
        e.val(&format!("bind {l}"), "driver", &Val::Norm("driver under test".into()));
    }
    e.ok(GET_INFO_BEFORE);
    e.val(STOPPED, "stopped", &Val::Bool(true));
    e.num(UNDOCUMENTED, "count", 0);
    e.val(NO_LEAK, "vfio IRQs", &Val::text(""));
    e.val(AFTER_GROUP, "same", &Val::Bool(true));
    e.val(AFTER_CDEV, "same", &Val::Bool(true));
    for l in LABELS.iter().take(c.site.functions.len()) {
        e.ok(&format!("unbind {l}"));
    }
    e.finish()
}

// ------------------------------------------------------------------ stress_unbind

/// [`RUN_TIME`], or `VFIO_PCI_RS_STRESS_SECS` seconds (the long run,
/// harness/stress-long.sh).
fn run_time() -> Duration {
    std::env::var("VFIO_PCI_RS_STRESS_SECS").ok().and_then(|v| v.parse().ok()).map_or(RUN_TIME, Duration::from_secs)
}

/// How many times `stress_unbind` goes through its disruptions: 1, or
/// `VFIO_PCI_RS_STRESS_ROUNDS`.
fn rounds() -> u32 {
    std::env::var("VFIO_PCI_RS_STRESS_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1)
}

/// A step name of round `round` of `stress_unbind`: the name itself in the first round.
fn round_name(base: &str, round: u32) -> String {
    if round == 1 {
        base.to_string()
    } else {
        format!("{base} [round {round}]")
    }
}

/// Run `f` (a sysfs write that waits for the device fds) beside the workers: after
/// [`DISRUPT_PATIENCE`] the workers are paused until it returns, [`DISRUPT_DEADLINE`] at
/// most.  Returns its result and whether the workers had to be paused.
fn disrupt(crew: &mut Crew, f: impl FnOnce() -> Result<(), Fail> + Send + 'static) -> (Result<(), Fail>, bool) {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    if let Ok(r) = rx.recv_timeout(DISRUPT_PATIENCE) {
        return (r, false);
    }
    crew.pause(true);
    let r = rx
        .recv_timeout(DISRUPT_DEADLINE)
        .unwrap_or_else(|_| Err(Fail::other(format!("did not return within {} s", DISRUPT_DEADLINE.as_secs()))));
    crew.pause(false);
    (r, true)
}

/// Bind a function back to the driver (it may have bound by itself: a reloaded module
/// binds the functions whose driver_override names it), and wait for its nodes.
fn bind_back(driver: &Driver, bdf: &str) -> Result<String, Fail> {
    sysfs::wait_until(sysfs::SETTLE, || sysfs::current_driver(bdf).is_ok());
    match sysfs::current_driver(bdf) {
        Ok(d) if d == driver.name => {}
        Ok(_) => {
            sysfs::unbind(bdf)?;
            crate::reset::bind_to(driver.name, bdf)?;
        }
        Err(_) => {
            crate::reset::bind_to(driver.name, bdf)?;
        }
    }
    let d = sysfs::current_driver(bdf)?;
    if d != driver.name {
        return Err(Fail::other(format!("bound to {d}")));
    }
    vfio_nodes(bdf)?;
    Ok(d)
}

fn record_bind_back(t: &mut Transcript, step: &str, driver: &Driver, set: &[Member]) -> Result<(), Abort> {
    for m in set {
        let r = bind_back(driver, &m.bdf);
        t.need(&format!("{step} ({})", m.label), r, |_, _| vec![("driver", Val::Norm("driver under test".into()))])?;
    }
    Ok(())
}

const U_UNBIND: &str = "unbind while the workers run";
const U_REBIND: &str = "bind back while the workers run";
const U_REMOVE: &str = "PCI remove while the workers run";
const U_GONE: &str = "function gone after the remove";
const U_RESCAN: &str = "rescan its bus while the workers run";
const U_BACK: &str = "function back after the rescan";
const U_REBIND_RESCAN: &str = "bind back after the rescan";
const U_RMMOD: &str = "remove the driver while the workers run";
const U_RELOAD: &str = "load the driver again";
const U_REBIND_RELOAD: &str = "bind back after the driver came back";

/// vfio-pci-rs: rmmod (delete_module with O_NONBLOCK), retried while it answers EAGAIN
/// (a device is open: the VFIO core holds a reference on the driver's module per open
/// device), the workers paused after a while; returns the result and the answers seen.
fn rmmod_while_open(crew: &mut Crew) -> (Result<(), Fail>, BTreeMap<String, u64>) {
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let start = Instant::now();
    let mut paused = false;
    let r = loop {
        let r = crate::driver::rmmod(crate::driver::RUST_MODULE);
        let key = match &r {
            Ok(()) => "0".to_string(),
            Err(f) => f.to_string(),
        };
        *seen.entry(key).or_insert(0) += 1;
        match r {
            Err(Fail::Os(Errno::EAGAIN)) if start.elapsed() < DISRUPT_PATIENCE + DISRUPT_DEADLINE => {
                if !paused && start.elapsed() > DISRUPT_PATIENCE {
                    crew.pause(true);
                    paused = true;
                }
                thread::sleep(Duration::from_millis(5));
            }
            r => break r,
        }
    };
    if paused {
        crew.pause(false);
    }
    (r, seen)
}

fn stress_unbind(c: &Ctx) -> Transcript {
    let driver = c.driver;
    scenario(|t| {
        let set = bind_quiet(t, c)?;
        let before = group_info(t, "before: group path: ", &set);
        if let Ok(k) = &before {
            t.record(GET_INFO_BEFORE, Outcome::Ok(info_vals(k, &mut Transcript::new())));
        }
        let Ok(before) = before else {
            unbind_site(t, &set);
            return Err(Abort);
        };
        let mut crew = Crew::start(plan_of(c));
        let mut paused = Vec::new();
        let script = (|| -> Result<(), Abort> {
            for round in 1..=rounds() {
                let n = |base: &str| round_name(base, round);
                thread::sleep(PHASE_TIME);
                // Unbind.
                for m in &set {
                    let bdf = m.bdf.clone();
                    let (r, p) = disrupt(&mut crew, move || sysfs::unbind(&bdf));
                    if p {
                        paused.push(n(&format!("unbind {}", m.label)));
                    }
                    t.need(&n(&format!("{U_UNBIND} ({})", m.label)), r, none)?;
                }
                thread::sleep(PHASE_TIME / 3);
                record_bind_back(t, &n(U_REBIND), driver, &set)?;
                thread::sleep(PHASE_TIME);
                // PCI remove and rescan.
                let bdf = set[0].bdf.clone();
                let remove = sysfs::device_dir(&bdf).join("remove");
                let (r, p) = disrupt(&mut crew, move || sysfs::write_attr(&remove, "1"));
                if p {
                    paused.push(n("remove"));
                }
                t.need(&n(U_REMOVE), r, none)?;
                let gone = sysfs::wait_path(&sysfs::device_dir(&bdf), false);
                t.record(n(U_GONE), Outcome::Ok(vec![("gone", Val::Bool(gone))]));
                thread::sleep(PHASE_TIME / 3);
                let rescan = Path::new("/sys/class/pci_bus").join(&bdf[..7]).join("rescan");
                t.need(&n(U_RESCAN), sysfs::write_attr(&rescan, "1"), none)?;
                let back = set.iter().all(|m| sysfs::wait_path(&sysfs::device_dir(&m.bdf), true));
                t.record(n(U_BACK), Outcome::Ok(vec![("present", Val::Bool(back))]));
                record_bind_back(t, &n(U_REBIND_RESCAN), driver, &set)?;
                thread::sleep(PHASE_TIME);
                // The driver's removal.
                if driver.is_reference() {
                    // Built in: what its unregistration would do, driver_unregister unbinding
                    // every function, each unbind waiting for the function's fds.
                    for m in &set {
                        let bdf = m.bdf.clone();
                        let name = driver.name;
                        let (r, p) = disrupt(&mut crew, move || sysfs::unbind_from(name, &bdf));
                        if p {
                            paused.push(n(&format!("unbind {} from the driver", m.label)));
                        }
                        if r.is_err() {
                            t.need(&n(&format!("{U_RMMOD}: unbind {}", m.label)), r, none)?;
                        }
                    }
                    t.record(
                        n(U_RMMOD),
                        Outcome::Skipped(
                            "vfio-pci is built into the test kernel: its functions were unbound instead".into(),
                        ),
                    );
                } else {
                    let (r, seen) = rmmod_while_open(&mut crew);
                    t.info.push(format!(
                        "{}: rmmod {} while the workers run answered: {}",
                        n("remove the driver"),
                        crate::driver::RUST_MODULE,
                        seen.iter().map(|(k, n)| format!("{k} x{n}")).collect::<Vec<_>>().join(", ")
                    ));
                    t.need(&n(U_RMMOD), r, none)?;
                }
                thread::sleep(PHASE_TIME / 3);
                t.need(&n(U_RELOAD), driver.load(""), none)?;
                record_bind_back(t, &n(U_REBIND_RELOAD), driver, &set)?;
                thread::sleep(PHASE_TIME);
            }
            Ok(())
        })();
        finish_crew(t, crew, true);
        if !paused.is_empty() {
            t.info.push(format!("the workers were paused to let these finish: {}", paused.join(", ")));
        }
        if script.is_ok() {
            let again = bind_again(t, driver, &set);
            if let Some(fresh) = again {
                afterwards(t, &fresh, before);
            }
        }
        unbind_site(t, &set);
        Ok(())
    })
}

/// After the disruptions: every function bound (binding any that is not), with its nodes.
fn bind_again(t: &mut Transcript, driver: &Driver, set: &[Member]) -> Option<Vec<Member>> {
    record_bind_back(t, "afterwards: bound", driver, set).ok()?;
    t.step("afterwards: the nodes", refresh(set), |_, _| Vec::new())
}

fn expect_stress_unbind(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    let labels: Vec<&str> = LABELS.iter().take(c.site.functions.len()).copied().collect();
    for l in &labels {
        e.val(&format!("bind {l}"), "driver", &Val::Norm("driver under test".into()));
    }
    e.ok(GET_INFO_BEFORE);
    for round in 1..=rounds() {
        let n = |base: &str| round_name(base, round);
        for l in &labels {
            e.ok(&n(&format!("{U_UNBIND} ({l})")));
            e.ok(&format!("{} ({l})", n(U_REBIND)));
            e.ok(&format!("{} ({l})", n(U_REBIND_RESCAN)));
            e.ok(&format!("{} ({l})", n(U_REBIND_RELOAD)));
        }
        e.ok(&n(U_REMOVE));
        e.val(&n(U_GONE), "gone", &Val::Bool(true));
        e.ok(&n(U_RESCAN));
        e.val(&n(U_BACK), "present", &Val::Bool(true));
        e.ok_or_skipped(&n(U_RMMOD));
        e.ok(&n(U_RELOAD));
    }
    for l in &labels {
        e.ok(&format!("afterwards: bound ({l})"));
    }
    e.val(STOPPED, "stopped", &Val::Bool(true));
    e.num(UNDOCUMENTED, "count", 0);
    e.ok("afterwards: the nodes");
    e.val(NO_LEAK, "vfio IRQs", &Val::text(""));
    e.val(AFTER_GROUP, "same", &Val::Bool(true));
    e.val(AFTER_CDEV, "same", &Val::Bool(true));
    for l in &labels {
        e.ok(&format!("unbind {l}"));
    }
    e.finish()
}

/// The self-check (selfcheck.rs): the child's count lines parse back to the counts, and
/// the allowed sets answer as documented.
pub(crate) fn self_check() -> Vec<String> {
    let mut failures = Vec::new();
    let mut t = Tally::default();
    t.add::<()>(Op::Reset, &Err(Fail::Os(Errno::EAGAIN)));
    t.add::<()>(Op::Reset, &Err(Fail::Os(Errno::EAGAIN)));
    t.add::<()>(Op::OpenCdev, &Ok(()));
    if Tally::parse(&t.lines()) != t {
        failures.push(format!("the count lines {:?} did not parse back", t.lines()));
    }
    if !is_allowed("VFIO_DEVICE_RESET", &Errno::EAGAIN.to_string(), false) {
        failures.push("EAGAIN is not allowed for VFIO_DEVICE_RESET".into());
    }
    if is_allowed("open (cdev path)", &Errno::ENOENT.to_string(), false) {
        failures.push("ENOENT is allowed for an open while the function stays".into());
    }
    if !is_allowed("open (cdev path)", &Errno::ENOENT.to_string(), true) {
        failures.push("ENOENT is not allowed for an open while the function is away".into());
    }
    if is_allowed("GET_INFO", "ERESTARTSYS (512)", true) {
        failures.push("ERESTARTSYS is allowed".into());
    }
    let mut r = Rng(1);
    let ops: BTreeSet<String> = (0..10_000).map(|_| format!("{:?}", r.draw_op(true))).collect();
    if ops.len() != WEIGHTS.len() {
        failures.push(format!("only {} of the {} operations drawn", ops.len(), WEIGHTS.len()));
    }
    failures
}
