//! The AER scenarios: a bound function's port or the function itself
//! reports PCIe errors, and the guest kernel's AER core runs its recovery
//! with the driver's `error_detected`.
//!
//! Two ways to raise an error:
//!
//! - QEMU's HMP command `pcie_aer_inject_error ID ERROR`, on the host: the
//!   test writes `inject ID ERROR` to the guest's third serial port (ttyS2),
//!   and scripts/monitor-relay.py, started by scripts/guest.sh for every
//!   guest, runs it on QEMU's monitor and answers `ok ...` or `error ...`.
//!   QEMU sets the error in the device's AER registers and sends the error
//!   message up to the root port, whose AER interrupt the kernel handles.
//!   QEMU 10.0 forwards a message only past devices whose Device Control
//!   has the reporting enable of its severity set, and an uncorrectable one
//!   only past devices with SERR# enabled (pcie_aer_msg_alldev()).  QEMU's
//!   e1000e and igb have read-only zero reporting enables (they do not call
//!   pcie_cap_deverr_init()), so no error of theirs ever reaches the kernel:
//!   the scenarios show it ([`UNDELIVERED`]).  Their root ports have the
//!   enables, so the uncorrectable errors come from the port
//!   (QEMU ids `rp_slot`, `rp_sriov`, harness/topology.sh): the kernel then
//!   recovers everything below the port, and calls the function's
//!   `error_detected` as for an error of its own.
//! - The guest kernel's aer_inject module (/dev/aer_inject), which fakes the
//!   AER registers of the function and its root port and raises the port's
//!   AER interrupt: errors of the function itself, correctable ones too.
//!
//! Kinds: correctable (receiver error) is only logged (neither driver has
//! `cor_error_detected`); uncorrectable non-fatal (completer abort) and
//! fatal (malformed TLP, fatal by default severity) make the kernel call
//! `error_detected` on every function below the port (the channel frozen
//! for a fatal one, whose recovery then resets the port's link) and log
//! "device recovery successful" when every driver said it can recover.
//!
//! Each run records, per error: the injection, the AER counter of the
//! device that reported it (sysfs `aer_dev_*`), the kernel log lines of the
//! function and its port from the injection until the recovery ended (the
//! driver's name normalised), the recovery's result, the ERR eventfd's
//! count when one is set, and the function's command register and BAR0 as
//! the host sees them (a fatal error's link reset clears them: the AER core
//! restores no state for a driver without `slot_reset`, and vfio-pci has
//! none; its user resets the device, and the last close restores what was
//! saved at open).  Then the function's state: config and BAR reads through
//! the device, a `VFIO_DEVICE_RESET`, a close and reopen.  After unbinding,
//! the scenario writes back the registers the link reset cleared (header,
//! PCI Express controls, AER masks and severities, as `pci_restore_state()`
//! would), so the function works for the scenarios after it, and records
//! which ones it had to.

use crate::interrupts::{set_fds, take_count};
use crate::ktap::CaseResult;
use crate::kunit::kmsg_lines;
use crate::regions::with_group;
use crate::scenarios::{none, scenario, Ctx, Scenario, Site};
use crate::sys::{make_raw_tty, new_eventfd, Fail};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Outcome, Transcript, Val};
use crate::vfio::{Device, Group};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::{Duration, Instant};

/// The serial port the relay listens on (scripts/guest.sh).
const CHANNEL: &str = "/dev/ttyS2";
/// How long the relay may take to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// How long the kernel may take to handle an error and end its recovery (a
/// fatal error's link reset included).
const RECOVERY_WAIT: Duration = Duration::from_secs(30);
/// After a correctable error (no recovery line ends it): the kernel log has
/// been quiet this long.
const QUIET: Duration = Duration::from_millis(500);

const O_NOCTTY: i32 = 0o400;
const O_NONBLOCK: i32 = 0o4000;

/// VFIO_PCI_ERR_IRQ_INDEX.
const ERR: u32 = 3;
/// The config region's offset in the device file.
const CONFIG_REGION: u64 = 7 << 40;
/// PCI_EXT_CAP_ID_ERR.
const EXT_CAP_AER: u16 = 0x0001;
/// PCI_CAP_ID_EXP.
const CAP_EXP: u8 = 0x10;

/// Who raises an error.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Injector {
    /// QEMU's `pcie_aer_inject_error` with this error name, through the
    /// host's relay, on the function's root port.
    QemuPort(&'static str),
    /// The same, on the function itself.
    QemuFunction(&'static str),
    /// The guest kernel's aer_inject module, on the function: correctable
    /// and uncorrectable status bits.
    Kernel { cor: u32, uncor: u32 },
}

impl Injector {
    /// Whether the port (not the function) reports the error.
    fn from_port(self) -> bool {
        matches!(self, Injector::QemuPort(_))
    }
}

/// One kind of error and how it is raised.
#[derive(Clone, Copy)]
struct Kind {
    label: &'static str,
    injector: Injector,
    /// The reporting device's sysfs counter of the severity and its total.
    counter: &'static str,
    total: &'static str,
    /// Whether the kernel runs a recovery (uncorrectable errors do).
    recovers: bool,
    /// Whether the recovery resets the port's link (fatal errors).
    fatal: bool,
}

impl Kind {
    fn how(&self) -> String {
        match self.injector {
            Injector::QemuPort(name) => format!("QEMU {name} on the port"),
            Injector::QemuFunction(name) => format!("QEMU {name} on the function"),
            Injector::Kernel { cor, uncor } => format!("aer_inject cor {cor:#x} uncor {uncor:#x}"),
        }
    }

    fn step(&self) -> String {
        format!("{} error: inject ({})", self.label, self.how())
    }
}

const COR: (&str, &str) = ("aer_dev_correctable", "TOTAL_ERR_COR");
const NONFATAL: (&str, &str) = ("aer_dev_nonfatal", "TOTAL_ERR_NONFATAL");
const FATAL_COUNT: (&str, &str) = ("aer_dev_fatal", "TOTAL_ERR_FATAL");

const fn kind(label: &'static str, injector: Injector, count: (&'static str, &'static str), fatal: bool) -> Kind {
    let recovers = !matches!(injector, Injector::Kernel { uncor: 0, .. });
    Kind { label, injector, counter: count.0, total: count.1, recovers, fatal }
}

/// A receiver error of the function (PCI_ERR_COR_RCVR).
const CORRECTABLE: Kind = kind("correctable", Injector::Kernel { cor: 0x1, uncor: 0 }, COR, false);
/// A completer abort (non-fatal by default severity) reported by the port.
const NON_FATAL: Kind = kind("non-fatal", Injector::QemuPort("COMP_ABORT"), NONFATAL, false);
/// A malformed TLP (fatal by default severity) reported by the port.
const FATAL: Kind = kind("fatal", Injector::QemuPort("MALF_TLP"), FATAL_COUNT, true);
/// A completer abort of the function (PCI_ERR_UNC_COMP_ABORT).
const NON_FATAL_OWN: Kind = kind("function's non-fatal", Injector::Kernel { cor: 0, uncor: 0x8000 }, NONFATAL, false);
/// A malformed TLP of the function (PCI_ERR_UNC_MALF_TLP).
const FATAL_OWN: Kind = kind("function's fatal", Injector::Kernel { cor: 0, uncor: 0x40000 }, FATAL_COUNT, true);

/// What QEMU does not deliver: errors of the function itself, whose Device
/// Control reporting enables cannot be set.
const UNDELIVERED: [Kind; 2] = [
    kind("QEMU's function correctable", Injector::QemuFunction("RCVR"), COR, false),
    kind("QEMU's function non-fatal", Injector::QemuFunction("COMP_ABORT"), NONFATAL, false),
];

/// The AER scenarios, in order.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "aer_open_err_eventfd",
            rule: "AER on an open function with an ERR eventfd: a correctable error of the function is only logged (no signal); a non-fatal and a fatal error, of the port (QEMU) or of the function (aer_inject), each signal the ERR eventfd once and recovery succeeds (a fatal one after a link reset); then config reads, VFIO_DEVICE_RESET, close and reopen work",
            loads_module: false,
            applies: aer_sites,
            run: aer_open_err_eventfd,
            expect: expect_aer_open_err_eventfd,
        },
        Scenario {
            name: "aer_open_no_eventfd",
            rule: "AER on an open function without an ERR eventfd: non-fatal and fatal errors of its port recover (the driver answers it can recover); then config reads, VFIO_DEVICE_RESET, close and reopen work",
            loads_module: false,
            applies: aer_sites,
            run: aer_open_no_eventfd,
            expect: expect_aer_open_no_eventfd,
        },
        Scenario {
            name: "aer_not_open",
            rule: "AER on a bound function that is not open: QEMU delivers no error of the function itself (its reporting enables read 0); correctable, port non-fatal and fatal, and function fatal errors are handled as on an open one (error_detected answers it can recover, no eventfd); then the function opens, resets and reopens",
            loads_module: false,
            applies: aer_sites,
            run: aer_not_open,
            expect: expect_aer_not_open,
        },
    ]
}

// ----------------------------------------------------------- applicability

/// The topologies whose function and root port have QEMU ids for injection
/// (harness/topology.sh), and those ids.
const SITES: [(&str, &str, &str); 2] = [("slot", "ep_slot", "rp_slot"), ("sriov", "ep_sriov", "rp_sriov")];

/// The single function of "slot" or "sriov", with an AER capability.
fn aer_sites(site: &Site) -> Result<(), String> {
    let [bdf] = &site.functions[..] else {
        return Err("AER scenarios run on the single-function slot and sriov topologies".into());
    };
    qemu_ids(bdf).ok_or("AER scenarios run on the slot (e1000e) and sriov (igb) topologies")?;
    let cfg = fs::read(sysfs::device_dir(bdf).join("config")).map_err(|e| format!("{bdf}: config: {e}"))?;
    find_ext_cap(&cfg, EXT_CAP_AER).map(|_| ()).ok_or_else(|| format!("{bdf} has no AER capability"))
}

/// The QEMU ids of `bdf` and its port, from the topology its port is
/// listed as.
fn qemu_ids(bdf: &str) -> Option<(&'static str, &'static str)> {
    let path = std::env::var_os("VFIO_PCI_RS_TOPOLOGY")
        .map_or_else(|| sysfs::DEFAULT_TOPOLOGY.into(), std::path::PathBuf::from);
    let topologies = sysfs::parse_topology(&fs::read_to_string(path).ok()?).ok()?;
    let port = port_of(bdf)?;
    let name = topologies.into_iter().find(|t| t.port == port)?.name;
    SITES.iter().find(|(n, _, _)| *n == name).map(|(_, f, p)| (*f, *p))
}

/// The port (the parent bridge) of `bdf`.
fn port_of(bdf: &str) -> Option<String> {
    let real = fs::canonicalize(sysfs::device_dir(bdf)).ok()?;
    Some(real.parent()?.file_name()?.to_str()?.to_string())
}

/// The offset of extended capability `id` in a 4 KiB config space.
fn find_ext_cap(cfg: &[u8], id: u16) -> Option<usize> {
    let mut pos = 0x100;
    for _ in 0..480 {
        let header = u32::from_le_bytes(cfg.get(pos..pos + 4)?.try_into().ok()?);
        if header == 0 || header == u32::MAX {
            return None;
        }
        if header & 0xffff == u32::from(id) {
            return Some(pos);
        }
        pos = (header >> 20) as usize & !3;
        if pos < 0x100 {
            return None;
        }
    }
    None
}

// ---------------------------------------------------------------- injection

/// Asks the host to inject `error` into QEMU device `id`; QEMU's answer.
fn inject(id: &str, error: &str) -> Result<String, Fail> {
    let mut tty = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(O_NOCTTY)
        .open(CHANNEL)
        .map_err(|e| Fail::other(format!("open {CHANNEL}: {e}")))?;
    make_raw_tty(&tty).map_err(|e| Fail::other(format!("{CHANNEL}: raw mode: {e}")))?;
    tty.write_all(format!("inject {id} {error}\n").as_bytes())?;
    let deadline = Instant::now() + ANSWER_WAIT;
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    while !answer.contains(&b'\n') {
        if Instant::now() >= deadline {
            return Err(Fail::other(format!(
                "no answer from the host's relay on {CHANNEL} within {ANSWER_WAIT:?} (got {:?})",
                String::from_utf8_lossy(&answer)
            )));
        }
        // VTIME: returns 0 after a tenth of a second without data.
        let n = tty.read(&mut buf)?;
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    let line = text.lines().next().unwrap_or("").trim().to_string();
    match line.split_once(' ') {
        Some(("ok", rest)) => Ok(rest.to_string()),
        _ => Err(Fail::other(format!("the host could not inject {error} into {id}: {line}"))),
    }
}

/// Raises the error.  Through QEMU, SERR# is set in the port's command
/// register first (QEMU forwards an uncorrectable message only past devices
/// that have it; the firmware sets it on the root ports, Linux does not:
/// PCI Express says the Device Control reporting enables suffice).  Through
/// aer_inject, the module stays loaded (the returned guard) until the
/// kernel has handled the error: it fakes the registers the handler reads.
fn raise(bdf: &str, port: &str, injector: Injector) -> Result<Option<AerInject>, Fail> {
    let (fn_id, port_id) = qemu_ids(bdf).ok_or_else(|| Fail::other("no QEMU id for the function"))?;
    match injector {
        Injector::QemuPort(name) | Injector::QemuFunction(name) => {
            set_serr(port)?;
            // The port's status bits of earlier errors: a fatal error's
            // recovery clears only the non-fatal ones.
            clear_aer_status(port)?;
            let id = if injector.from_port() { port_id } else { fn_id };
            inject(id, name).map(|_| None)
        }
        Injector::Kernel { cor, uncor } => AerInject::raise(bdf, cor, uncor).map(Some),
    }
}

/// PCI_COMMAND_SERR.
const COMMAND_SERR: u16 = 1 << 8;

/// Sets SERR# Enable in the command register of `bdf`, through sysfs.
fn set_serr(bdf: &str) -> Result<(), Fail> {
    let f = OpenOptions::new().read(true).write(true).open(sysfs::device_dir(bdf).join("config"))?;
    let mut b = [0u8; 2];
    f.read_exact_at(&mut b, 4)?;
    let cmd = u16::from_le_bytes(b);
    if cmd & COMMAND_SERR == 0 {
        f.write_all_at(&(cmd | COMMAND_SERR).to_le_bytes(), 4)?;
    }
    Ok(())
}

/// The kernel's aer_inject module, loaded to raise one error; unloaded by
/// [`AerInject::unload`] (it replaces the config accessors of the
/// function's and the root port's buses while it is loaded).
struct AerInject;

impl AerInject {
    /// Loads the module and writes one `struct aer_error_inj` (bus,
    /// device, function, then uncor_status, cor_status, four header log
    /// words and the domain) for `bdf`.
    fn raise(bdf: &str, cor: u32, uncor: u32) -> Result<AerInject, Fail> {
        let (domain, bus, devfn) = sysfs::parse_bdf(bdf).ok_or_else(|| Fail::other("not a PCI address"))?;
        let status = std::process::Command::new("modprobe").arg("aer_inject").status()?;
        if !status.success() {
            return Err(Fail::other(format!("modprobe aer_inject: {status}")));
        }
        let guard = AerInject;
        let node = std::path::Path::new("/dev/aer_inject");
        sysfs::wait_path(node, true);
        let mut rec = [0u8; 32];
        rec[0] = bus;
        rec[1] = devfn >> 3;
        rec[2] = devfn & 7;
        rec[4..8].copy_from_slice(&uncor.to_ne_bytes());
        rec[8..12].copy_from_slice(&cor.to_ne_bytes());
        rec[28..32].copy_from_slice(&u32::from(domain).to_ne_bytes());
        match OpenOptions::new().write(true).open(node).and_then(|mut f| f.write(&rec)) {
            Ok(32) => Ok(guard),
            Ok(n) => Err(Fail::other(format!("/dev/aer_inject took {n} of 32 bytes"))),
            Err(e) => Err(Fail::other(format!("write /dev/aer_inject: {e}"))),
        }
    }

    fn unload(self) -> Result<(), Fail> {
        let r = crate::driver::rmmod("aer_inject");
        std::mem::forget(self);
        r
    }
}

impl Drop for AerInject {
    /// On an early return: unloaded all the same.
    fn drop(&mut self) {
        let _ = crate::driver::rmmod("aer_inject");
    }
}

/// The kernel log from the moment it is opened.
struct KmsgTail(File);

impl KmsgTail {
    fn open() -> Result<KmsgTail, Fail> {
        let mut f = OpenOptions::new().read(true).custom_flags(O_NONBLOCK).open("/dev/kmsg")?;
        f.seek(SeekFrom::End(0))?;
        Ok(KmsgTail(f))
    }

    /// The lines logged since the last call.
    fn read_new(&mut self) -> Result<Vec<String>, Fail> {
        let mut records = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => records.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(32) => records.push("0,0,0,-;(kernel log records lost)".into()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(kmsg_lines(&records))
    }
}

/// The total of a device's AER counter (`TOTAL_...` line of `aer_dev_*`).
fn aer_total(bdf: &str, kind: Kind) -> Result<u64, Fail> {
    let text = fs::read_to_string(sysfs::device_dir(bdf).join(kind.counter))?;
    text.lines()
        .find_map(|l| l.strip_prefix(kind.total).and_then(|v| v.trim().parse().ok()))
        .ok_or_else(|| Fail::other(format!("{}: no {} line", kind.counter, kind.total)))
}

/// The lines of `bdf` and `port` among `lines`, the function's driver name
/// (the log prefix of its lines) normalised.
fn relevant_lines(lines: &[String], bdf: &str, port: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in lines {
        if !l.contains(bdf) && !l.contains(port) {
            continue;
        }
        let mut l = l.clone();
        for driver in ["vfio-pci-rs ", "vfio-pci "] {
            if let Some(rest) = l.strip_prefix(driver) {
                l = format!("<driver> {rest}");
                break;
            }
        }
        out.push(l);
    }
    out
}

/// What one error did.
struct Handled {
    /// The log lines of the function and its port.
    lines: Vec<String>,
    /// The AER counter's increase.
    counted: u64,
    /// "successful", "failed", or "none" (no recovery line).
    recovery: &'static str,
}

/// Raises `kind` for `bdf` and waits until the kernel has handled it.
fn inject_and_wait(bdf: &str, kind: Kind) -> Result<Handled, Fail> {
    let port = port_of(bdf).ok_or_else(|| Fail::other("no port"))?;
    let source = if kind.injector.from_port() { port.clone() } else { bdf.to_string() };
    let before = aer_total(&source, kind)?;
    let mut log = KmsgTail::open()?;
    let module = raise(bdf, &port, kind.injector)?;
    let deadline = Instant::now() + RECOVERY_WAIT;
    let mut lines: Vec<String> = Vec::new();
    let mut last_news = Instant::now();
    let recovery = loop {
        let new = relevant_lines(&log.read_new()?, bdf, &port);
        if !new.is_empty() {
            last_news = Instant::now();
        }
        lines.extend(new);
        let ended = lines.iter().find_map(|l| {
            if l.contains("AER: device recovery successful") {
                Some("successful")
            } else if l.contains("AER: device recovery failed") {
                Some("failed")
            } else {
                None
            }
        });
        if let Some(r) = ended {
            break r;
        }
        let counted = aer_total(&source, kind)? > before;
        if !kind.recovers && counted && last_news.elapsed() >= QUIET {
            break "none";
        }
        if Instant::now() >= deadline {
            return Err(Fail::other(format!(
                "the kernel did not finish handling the {} error within {RECOVERY_WAIT:?} (counted: {counted}; log: {lines:?})",
                kind.label
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever the recovery's last steps logged after its verdict.
    std::thread::sleep(Duration::from_millis(200));
    lines.extend(relevant_lines(&log.read_new()?, bdf, &port));
    if let Some(m) = module {
        m.unload()?;
    }
    Ok(Handled { lines, counted: aer_total(&source, kind)? - before, recovery })
}

/// Injects `kind`, records what the kernel did with it and, with `err`,
/// the ERR eventfd's count.
fn record_error(t: &mut Transcript, bdf: &str, kind: Kind, err: Option<&OwnedFd>) -> Result<(), Abort> {
    let label = kind.label;
    let h = t.need(&kind.step(), inject_and_wait(bdf, kind), |h, _| {
        vec![("recovery", Val::text(h.recovery)), ("counted", Val::Num(h.counted))]
    })?;
    let log_fields = vec![
        ("link reset", Val::Bool(h.lines.iter().any(|l| l.contains("link has been reset")))),
        ("can't recover", Val::Bool(h.lines.iter().any(|l| l.contains("can't recover")))),
        ("lines", Val::text(h.lines.join(" | "))),
    ];
    t.record(format!("{label} error: kernel log"), Outcome::Ok(log_fields));
    if let Some(fd) = err {
        t.step(&format!("{label} error: ERR eventfd"), take_count(fd, Duration::ZERO), |n, _| {
            vec![("signals", Val::Num(*n))]
        });
    }
    t.step(&format!("{label} error: command and BAR0 (host view)"), hardware_header(bdf), |(cmd, bar0), _| {
        vec![("command", Val::Hex((*cmd).into())), ("BAR0", Val::Hex((*bar0).into()))]
    });
    Ok(())
}

/// How long an error that QEMU does not deliver is given to show up anyway.
const UNDELIVERED_WAIT: Duration = Duration::from_millis(1500);

/// Asks QEMU for `kind`, which it does not deliver: records that the kernel
/// logged and counted nothing, and the reporting device's Device Control
/// after an attempt to set its reporting enables; then clears the status
/// QEMU set in the device's AER registers.
fn record_undelivered(t: &mut Transcript, bdf: &str, kind: Kind) {
    let seen = (|| {
        let port = port_of(bdf).ok_or_else(|| Fail::other("no port"))?;
        let source = if kind.injector.from_port() { port.clone() } else { bdf.to_string() };
        let devctl = enable_reporting(&source)?;
        let before = aer_total(&source, kind)?;
        let mut log = KmsgTail::open()?;
        raise(bdf, &port, kind.injector)?;
        std::thread::sleep(UNDELIVERED_WAIT);
        let lines = relevant_lines(&log.read_new()?, bdf, &port);
        let counted = aer_total(&source, kind)? - before;
        clear_aer_status(&source)?;
        Ok::<_, Fail>((devctl, counted, lines))
    })();
    t.step(&kind.step(), seen, |(devctl, counted, lines), _| {
        vec![
            ("reporting enables", Val::Hex((*devctl & 0xf).into())),
            ("counted", Val::Num(*counted)),
            ("lines", Val::text(lines.join(" | "))),
        ]
    });
}

/// Sets the four error reporting enables of `bdf`'s Device Control (as the
/// kernel did at enumeration) and reads the register back.
fn enable_reporting(bdf: &str) -> Result<u16, Fail> {
    let cfg = config_snapshot(bdf)?;
    let exp = find_cap_in(&cfg, CAP_EXP).ok_or_else(|| Fail::other("no PCI Express capability"))?;
    let f = OpenOptions::new().read(true).write(true).open(sysfs::device_dir(bdf).join("config"))?;
    let devctl = u16::from_le_bytes([cfg[exp + 8], cfg[exp + 9]]);
    f.write_all_at(&(devctl | 0xf).to_le_bytes(), (exp + 8) as u64)?;
    let mut b = [0u8; 2];
    f.read_exact_at(&mut b, (exp + 8) as u64)?;
    Ok(u16::from_le_bytes(b))
}

/// Clears the correctable and uncorrectable status bits of `bdf`'s AER
/// capability (write 1 to clear), through sysfs.
fn clear_aer_status(bdf: &str) -> Result<(), Fail> {
    let cfg = config_snapshot(bdf)?;
    let aer = find_ext_cap(&cfg, EXT_CAP_AER).ok_or_else(|| Fail::other("no AER capability"))?;
    let f = OpenOptions::new().write(true).open(sysfs::device_dir(bdf).join("config"))?;
    f.write_all_at(&cfg[aer + 0x04..aer + 0x08], (aer + 0x04) as u64)?;
    f.write_all_at(&cfg[aer + 0x10..aer + 0x14], (aer + 0x10) as u64)?;
    Ok(())
}

/// The offset of capability `id` in a config space.
fn find_cap_in(cfg: &[u8], id: u8) -> Option<usize> {
    let mut pos = usize::from(*cfg.get(0x34)?);
    for _ in 0..48 {
        if !(0x40..=0xfc).contains(&pos) {
            return None;
        }
        if *cfg.get(pos)? == id {
            return Some(pos);
        }
        pos = usize::from(*cfg.get(pos + 1)?);
    }
    None
}

/// The function's command register and BAR0, read through sysfs.
fn hardware_header(bdf: &str) -> Result<(u16, u32), Fail> {
    let f = File::open(sysfs::device_dir(bdf).join("config"))?;
    let mut b = [0u8; 0x14];
    f.read_exact_at(&mut b, 0)?;
    Ok((u16::from_le_bytes([b[4], b[5]]), u32::from_le_bytes([b[0x10], b[0x11], b[0x12], b[0x13]])))
}

// ------------------------------------------------------- the state afterwards

fn config_read(d: &Device, offset: u64, len: usize) -> Result<Vec<u8>, Fail> {
    let mut b = vec![0u8; len];
    d.file().read_exact_at(&mut b, CONFIG_REGION + offset)?;
    Ok(b)
}

/// A 4-byte read of BAR0 at `offset` (e1000e's and igb's STATUS is at 8).
fn bar0_read(d: &Device, offset: u64) -> Result<u32, Fail> {
    let mut b = [0u8; 4];
    d.file().read_exact_at(&mut b, offset)?;
    Ok(u32::from_le_bytes(b))
}

/// What user space sees of the open function `d`: its IDs and command
/// register through the config region, and a BAR0 register.
fn record_device_state(t: &mut Transcript, d: &Device, when: &str) {
    t.step(&format!("config IDs and command {when}"), config_read(d, 0, 6), |b, _| {
        vec![("bytes", Val::Bytes(b.clone()))]
    });
    // 0 when BAR0 is not decoded (QEMU reads unassigned memory as 0).
    t.step(&format!("BAR0 STATUS read {when}"), bar0_read(d, 8), |v, _| {
        vec![("decoded", Val::Bool(*v != 0 && *v != u32::MAX))]
    });
}

/// After the errors: the open function's state, a reset, a close and a reopen.
fn after_errors(t: &mut Transcript, group: &Group, d: Device, bdf: &str) -> Result<(), Abort> {
    record_device_state(t, &d, "after the errors");
    t.step("VFIO_DEVICE_RESET after the errors", d.reset(), none);
    record_device_state(t, &d, "after the reset");
    drop(d);
    let d = t.need("reopen: VFIO_GROUP_GET_DEVICE_FD", group.get_device_fd(bdf), none)?;
    let argsz = std::mem::size_of::<crate::uapi::VfioDeviceInfo>() as u32;
    t.step("GET_INFO after reopening", d.get_info(argsz).map(|r| r.info.flags), |f, _| {
        vec![("flags", Val::Hex((*f).into()))]
    });
    record_device_state(t, &d, "after reopening");
    Ok(())
}

// --------------------------------------------------------------- the repair

/// A register to write back after a link reset: offset and size.
/// A register to write back after a link reset: offset, size, and the bits
/// compared (the writable ones).
type Reg = (usize, usize, u32);

/// The registers `pci_restore_state()` would write back that matter here:
/// the header's command, cache line, latency, BARs, ROM and interrupt line;
/// the PCI Express device and link controls; the AER masks, severities and
/// control.
fn restorable(cfg: &[u8]) -> Vec<Reg> {
    const ALL: u32 = u32::MAX;
    let mut regs: Vec<Reg> = vec![(0x0c, 1, ALL), (0x0d, 1, ALL)];
    regs.extend((0x10..0x28).step_by(4).map(|o| (o, 4, ALL)));
    regs.extend([(0x30, 4, ALL), (0x3c, 1, ALL)]);
    if let Some(pos) = find_cap_in(cfg, CAP_EXP) {
        regs.extend([(pos + 8, 2, ALL), (pos + 0x10, 2, ALL), (pos + 0x28, 2, ALL), (pos + 0x30, 2, ALL)]);
    }
    if let Some(aer) = find_ext_cap(cfg, EXT_CAP_AER) {
        // Capabilities and Control: the ECRC and multiple-header enables;
        // its First Error Pointer is read-only and survives resets in QEMU.
        regs.extend([(aer + 8, 4, ALL), (aer + 0x0c, 4, ALL), (aer + 0x14, 4, ALL), (aer + 0x18, 4, 0x540)]);
    }
    // The command register last, once the BARs are back.
    regs.push((0x04, 2, ALL));
    regs
}

/// The function's config space as the host sees it.
fn config_snapshot(bdf: &str) -> Result<Vec<u8>, Fail> {
    let cfg = fs::read(sysfs::device_dir(bdf).join("config"))?;
    if cfg.len() < 0x1000 {
        return Err(Fail::other(format!("config space of {} bytes, not 4096", cfg.len())));
    }
    Ok(cfg)
}

/// Writes back the registers of `saved` that differ now; which, and their
/// values.
fn config_repair(bdf: &str, saved: &[u8]) -> Result<Vec<String>, Fail> {
    let now = config_snapshot(bdf)?;
    let f = OpenOptions::new().write(true).open(sysfs::device_dir(bdf).join("config"))?;
    let mut rewritten = Vec::new();
    let value = |b: &[u8]| b.iter().rev().fold(0u32, |v, x| v << 8 | u32::from(*x));
    for (off, len, mask) in restorable(saved) {
        let want = &saved[off..off + len];
        let have = &now[off..off + len];
        if value(have) & mask != value(want) & mask {
            f.write_all_at(want, off as u64)?;
            let hex = |b: &[u8]| b.iter().rev().map(|x| format!("{x:02x}")).collect::<String>();
            rewritten.push(format!("{off:#x}: {} for {}", hex(have), hex(want)));
        }
    }
    Ok(rewritten)
}

/// The function's config space before the run, and the record of what had
/// to be written back after it (the function is unbound by then).
fn repair(t: &mut Transcript, bdf: &str, saved: &[u8]) {
    t.step("registers written back after the run (host view)", config_repair(bdf, saved), |r, _| {
        vec![("registers", Val::text(r.join(", ")))]
    });
}

// ---------------------------------------------------------------- scenarios

/// Binds, snapshots the config space, runs `body` with the group set up in
/// a container, unbinds, and writes back what the errors cleared.
fn with_aer_site(c: &Ctx, body: impl FnOnce(&mut Transcript, &Group) -> Result<(), Abort>) -> Transcript {
    let bdf = c.bdf().to_string();
    let saved = match config_snapshot(&bdf) {
        Ok(s) => s,
        Err(e) => return scenario(|t| t.need("config space before the run", Err::<(), _>(e), none)),
    };
    let port_command = port_of(&bdf).map(|p| (p.clone(), config_snapshot(&p).map(|c| [c[4], c[5]])));
    let mut t = with_group(c, |t, group| {
        t.need("function bound, AER counters readable", aer_total(&bdf, CORRECTABLE), none)?;
        body(t, group)
    });
    repair(&mut t, &bdf, &saved);
    // The port's command register as it was (the injections set its SERR#).
    if let Some((port, Ok(cmd))) = port_command {
        let restored = OpenOptions::new()
            .write(true)
            .open(sysfs::device_dir(&port).join("config"))
            .and_then(|f| f.write_all_at(&cmd, 4));
        if let Err(e) = restored {
            t.notes.push(format!("restoring the command register of {port}: {e}"));
        }
    }
    t
}

fn aer_open_err_eventfd(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_aer_site(c, |t, group| {
        let d = t.need("VFIO_GROUP_GET_DEVICE_FD", group.get_device_fd(&bdf), none)?;
        let err = t.need("ERR eventfd", new_eventfd().map_err(Fail::Os), none)?;
        t.need("ERR set", set_fds(&d, ERR, 0, &[err.as_raw_fd()]), |r, _| vec![("ret", Val::Num(*r as u64))])?;
        for kind in [CORRECTABLE, NON_FATAL, FATAL, NON_FATAL_OWN, FATAL_OWN] {
            record_error(t, &bdf, kind, Some(&err))?;
        }
        after_errors(t, group, d, &bdf)
    })
}

fn aer_open_no_eventfd(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_aer_site(c, |t, group| {
        let d = t.need("VFIO_GROUP_GET_DEVICE_FD", group.get_device_fd(&bdf), none)?;
        for kind in [NON_FATAL, FATAL] {
            record_error(t, &bdf, kind, None)?;
        }
        after_errors(t, group, d, &bdf)
    })
}

fn aer_not_open(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_aer_site(c, |t, group| {
        for kind in UNDELIVERED {
            record_undelivered(t, &bdf, kind);
        }
        for kind in [CORRECTABLE, NON_FATAL, FATAL, FATAL_OWN] {
            record_error(t, &bdf, kind, None)?;
        }
        let d = t.need("VFIO_GROUP_GET_DEVICE_FD", group.get_device_fd(&bdf), none)?;
        after_errors(t, group, d, &bdf)
    })
}

// ------------------------------------------------------------- expectations

/// What every handled error must show: counted once, the recovery it has,
/// nobody unable to recover; a fatal error resets the link.
fn expect_handled(e: &mut Expect, kind: Kind) {
    let step = kind.step();
    e.num(&step, "counted", 1);
    e.val(&step, "recovery", &Val::text(if kind.recovers { "successful" } else { "none" }));
    let log = format!("{} error: kernel log", kind.label);
    e.val(&log, "can't recover", &Val::Bool(false));
    e.val(&log, "link reset", &Val::Bool(kind.fatal));
}

/// The state afterwards: config readable, the reset and the reopen work,
/// BAR0 decodes again after the reopen (the close restored the state saved
/// at open, or the open saw the written-back registers).
fn expect_after(e: &mut Expect, open: bool) {
    e.ok("config IDs and command after the errors");
    e.ok("VFIO_DEVICE_RESET after the errors");
    e.ok("GET_INFO after reopening");
    if open {
        e.val("BAR0 STATUS read after reopening", "decoded", &Val::Bool(true));
    } else {
        e.ok("BAR0 STATUS read after reopening");
    }
}

fn expect_aer_open_err_eventfd(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    for kind in [CORRECTABLE, NON_FATAL, FATAL, NON_FATAL_OWN, FATAL_OWN] {
        expect_handled(&mut e, kind);
        e.num(&format!("{} error: ERR eventfd", kind.label), "signals", u64::from(kind.recovers));
    }
    expect_after(&mut e, true);
    e.finish()
}

fn expect_aer_open_no_eventfd(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    for kind in [NON_FATAL, FATAL] {
        expect_handled(&mut e, kind);
    }
    expect_after(&mut e, true);
    e.finish()
}

fn expect_aer_not_open(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    for kind in UNDELIVERED {
        e.num(&kind.step(), "counted", 0);
        e.val(&kind.step(), "lines", &Val::text(""));
    }
    for kind in [CORRECTABLE, NON_FATAL, FATAL, FATAL_OWN] {
        expect_handled(&mut e, kind);
    }
    e.ok("VFIO_GROUP_GET_DEVICE_FD");
    expect_after(&mut e, false);
    e.finish()
}

// ------------------------------------------------------------- self-check

/// `--self-check`: the extended-capability walk and the log-line filter.
pub fn check_helpers() -> CaseResult {
    let mut f = Vec::new();
    let mut cfg = vec![0u8; 4096];
    // 0x100: id 0x0003 (DSN), next 0x140; 0x140: id 0x0001 (AER), the last.
    cfg[0x100..0x104].copy_from_slice(&(0x0003u32 | (1 << 16) | (0x140 << 20)).to_le_bytes());
    cfg[0x140..0x144].copy_from_slice(&(0x0001u32 | (2 << 16)).to_le_bytes());
    for (what, got, want) in [
        ("AER found", find_ext_cap(&cfg, 1), Some(0x140)),
        ("absent id", find_ext_cap(&cfg, 0x10), None),
        ("empty space", find_ext_cap(&[0u8; 4096], 1), None),
    ] {
        if got != want {
            f.push(format!("ext cap walk, {what}: expected {want:?}, got {got:?}"));
        }
    }
    let lines: Vec<String> = [
        "pcieport 0000:00:02.0: AER: Uncorrectable (Non-Fatal) error message received from 0000:01:00.0",
        "vfio-pci-rs 0000:01:00.0: PCIe Bus Error: severity=Uncorrectable (Non-Fatal)",
        "vfio-pci 0000:01:00.0: AER:   TLP Header: 00000000",
        "e1000e 0000:02:00.0: unrelated",
    ]
    .map(String::from)
    .to_vec();
    let want = [
        "pcieport 0000:00:02.0: AER: Uncorrectable (Non-Fatal) error message received from 0000:01:00.0",
        "<driver> 0000:01:00.0: PCIe Bus Error: severity=Uncorrectable (Non-Fatal)",
        "<driver> 0000:01:00.0: AER:   TLP Header: 00000000",
    ];
    let got = relevant_lines(&lines, "0000:01:00.0", "0000:00:02.0");
    if got != want {
        f.push(format!("log lines: expected {want:?}, got {got:?}"));
    }
    CaseResult::from_failures(f)
}
