//! The interrupt scenarios: VFIO_DEVICE_GET_IRQ_INFO and VFIO_DEVICE_SET_IRQS
//! for INTx, MSI, MSI-X, ERR and REQ, with eventfds read back after every
//! step that may signal them, device interrupts raised through BAR0
//! (e1000e and igb interrupt cause set registers), the vfio lines of
//! /proc/interrupts, and everything torn down at close.
//!
//! Eventfd counts are read without blocking (a short poll), so a step
//! records how many signals arrived since the last read: 0 is an answer
//! too.  They run on the "slot" (e1000e) and "sriov" (igb) topologies.

use crate::regions::{with_group, with_group_device};
use crate::scenarios::{bind_by_override, none, scenario, Ctx, Scenario, Site};
use crate::sys::{ioctl_ptr, new_eventfd, read_u64, Errno, Fail};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Fields, Outcome, Transcript, Val};
use crate::uapi::*;
use crate::vfio::{Container, Device, Group};
use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::raw::{c_int, c_short, c_ulong, c_void};
use std::os::unix::fs::FileExt;
use std::time::Duration;

const VFIO_DEVICE_GET_IRQ_INFO: c_ulong = io(VFIO_TYPE, VFIO_BASE + 9);
const VFIO_DEVICE_SET_IRQS: c_ulong = io(VFIO_TYPE, VFIO_BASE + 10);

pub(crate) const INTX: u32 = 0;
const MSI: u32 = 1;
pub(crate) const MSIX: u32 = 2;
const ERR: u32 = 3;
const REQ: u32 = 4;

const INFO_EVENTFD: u64 = 1 << 0;
const INFO_MASKABLE: u64 = 1 << 1;
const INFO_AUTOMASKED: u64 = 1 << 2;
const INFO_NORESIZE: u64 = 1 << 3;

const DATA_NONE: u32 = 1 << 0;
const DATA_BOOL: u32 = 1 << 1;
const DATA_EVENTFD: u32 = 1 << 2;
pub(crate) const ACTION_MASK: u32 = 1 << 3;
pub(crate) const ACTION_UNMASK: u32 = 1 << 4;
pub(crate) const ACTION_TRIGGER: u32 = 1 << 5;

/// `offsetofend(struct vfio_irq_info, count)`.
const IRQ_INFO_MINSZ: u32 = 16;
/// `offsetofend(struct vfio_irq_set, count)`.
const IRQ_SET_MINSZ: u32 = 20;

/// The interrupt scenarios, in order.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "irq_info",
            rule: "GET_IRQ_INFO: argsz < 16 or index >= 5 is EINVAL; INTx is EVENTFD|MASKABLE|AUTOMASKED with count 1 when the pin is visible; MSI and ERR/REQ are NORESIZE, MSI-X too unless dynamic allocation is supported; counts from the capabilities; ERR only on PCIe; 16 bytes written whatever argsz",
            loads_module: false,
            applies: interrupt_topologies,
            run: irq_info,
            expect: expect_irq_info,
        },
        Scenario {
            name: "irq_set_errnos",
            rule: "SET_IRQS: argsz < 20, index >= 5, unknown flags, not exactly one data type, a range past the index's count or data shorter than count are EINVAL; an action the index lacks is ENOTTY; actions on a disabled type are EINVAL; a closed fd is EBADF, a file that is not an eventfd EINVAL",
            loads_module: false,
            applies: interrupt_topologies,
            run: irq_set_errnos,
            expect: expect_irq_set_errnos,
        },
        Scenario {
            name: "irq_intx_loopback",
            rule: "INTx: an eventfd enables it; DATA_NONE/DATA_BOOL triggers signal it (masked or not); mask/unmask take DATA_NONE or BOOL, mask with an eventfd is ENOTTY; one unmask eventfd (a second is EBUSY); the trigger can be switched or removed; MSI cannot be enabled meanwhile; count 0 DATA_NONE disables",
            loads_module: false,
            applies: interrupt_topologies,
            run: irq_intx_loopback,
            expect: expect_irq_intx_loopback,
        },
        Scenario {
            name: "irq_msi_loopback",
            rule: "MSI/MSI-X: eventfds enable vectors; triggers signal attached vectors only; fd -1 detaches a vector; MSI and MSI-X and INTx exclude each other (EINVAL); MSI-X grows past the enabled vectors only with dynamic allocation; the vfio-msi[x] lines of /proc/interrupts follow; count 0 DATA_NONE disables",
            loads_module: false,
            applies: interrupt_topologies,
            run: irq_msi_loopback,
            expect: expect_irq_msi_loopback,
        },
        Scenario {
            name: "irq_err_req",
            rule: "ERR/REQ: one eventfd each, set with fd >= 0, removed with fd -1 or count 0 DATA_NONE; DATA_NONE without one is EINVAL, fd < -1 EINVAL; unbinding the open function signals REQ and waits for the close",
            loads_module: false,
            applies: interrupt_topologies,
            run: irq_err_req,
            expect: expect_irq_err_req,
        },
        Scenario {
            name: "irq_teardown_on_close",
            rule: "closing the device disables MSI-X/INTx, frees every IRQ (no vfio lines left in /proc/interrupts) and drops the ERR/REQ eventfds: after reopening, triggers are EINVAL and INTx can be enabled again",
            loads_module: false,
            applies: interrupt_topologies,
            run: irq_teardown_on_close,
            expect: expect_irq_teardown_on_close,
        },
        Scenario {
            name: "irq_intx_device",
            rule: "a device INTx (raised through the interrupt cause set register) signals the trigger and masks the line: no further signal until unmasked; unmasking with the interrupt still pending signals again at once; unmasking through the unmask eventfd works the same",
            loads_module: false,
            applies: interrupt_topologies,
            run: irq_intx_device,
            expect: expect_irq_intx_device,
        },
        Scenario {
            name: "irq_msi_device",
            rule: "a device MSI signals the vector's eventfd on every interrupt, without masking; with MSI-X the routed vector's eventfd only (e1000e: IVAR routes the 'other' cause to vector 1; igb outside its MSI-X mode uses vector 0), and nothing while that vector is detached",
            loads_module: false,
            applies: interrupt_topologies,
            run: irq_msi_device,
            expect: expect_irq_msi_device,
        },
        Scenario {
            name: "irq_config_intx_disable",
            rule: "INTX_DISABLE written to the virtual command register masks INTx (a device interrupt then signals nothing) and clearing it unmasks, delivering an interrupt still pending; the MSI capability's queue size reads back the vectors enabled",
            loads_module: false,
            applies: interrupt_topologies,
            run: irq_config_intx_disable,
            expect: expect_irq_config_intx_disable,
        },
        Scenario {
            name: "irq_race",
            rule: "SET_IRQS switching INTx triggers, masking, unmask eventfds and MSI-X on and off, racing device interrupts and unmask-eventfd signals, returns 0, EINVAL or EBUSY and never hangs; nothing stays allocated once disabled (outcome counts are timing-dependent: shown, not compared)",
            loads_module: false,
            applies: interrupt_topologies,
            run: irq_race,
            expect: expect_irq_race,
        },
        Scenario {
            name: "irq_msi_cycles",
            rule: "MSI-X (1 vector, every vector, 1 vector then one beyond it by dynamic allocation) and MSI enabled with eventfds, triggered and disabled 100 times back to back: every call returns 0 (the dynamic attach EINVAL where the index is NORESIZE), every attached eventfd gets one signal per cycle, and no vfio IRQ is left",
            loads_module: false,
            applies: slot_e1000e,
            run: irq_msi_cycles,
            expect: expect_irq_msi_cycles,
        },
        Scenario {
            name: "irq_err_conventional",
            rule: "on a function that is not PCI Express, the ERR index: GET_IRQ_INFO is EINVAL before 7.3; from 7.3 (vfio-pci offers ERR on every function) it is EVENTFD|NORESIZE with count 1 and SET_IRQS can set and remove its eventfd",
            loads_module: false,
            applies: conventional_pci,
            run: irq_err_conventional,
            expect: expect_irq_err_conventional,
        },
    ]
}

// ----------------------------------------------------------- applicability

/// One function without a PCI Express capability (sysfs shows link attributes only for PCIe
/// functions): the OHCI of "subpage".
fn conventional_pci(site: &Site) -> Result<(), String> {
    let [f] = &site.functions[..] else {
        return Err("runs on a single conventional PCI function".into());
    };
    if sysfs::device_dir(f).join("current_link_speed").exists() {
        return Err("the function is PCI Express".into());
    }
    Ok(())
}

/// The root ports of the topologies these scenarios run on: "slot" (e1000e)
/// and "sriov" (igb).
const PORTS: [&str; 2] = ["0000:00:02.0", "0000:00:05.0"];

pub(crate) fn interrupt_topologies(site: &Site) -> Result<(), String> {
    let [f] = &site.functions[..] else {
        return Err("interrupt scenarios run on the single-function slot and sriov topologies".into());
    };
    let path = fs::canonicalize(sysfs::device_dir(f)).map_err(|e| format!("{f}: {e}"))?;
    let port = path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("");
    if !PORTS.contains(&port) {
        return Err("interrupt scenarios run on the slot (e1000e) and sriov (igb) topologies".into());
    }
    registers(f).map(|_| ()).ok_or_else(|| "unknown device model".into())
}

/// The e1000e of "slot" only, where the benchmark's MSI-X cycles oopsed (a scenario too long
/// to repeat on every interrupt topology: ~10 s per driver under TCG).
pub(crate) fn slot_e1000e(site: &Site) -> Result<(), String> {
    interrupt_topologies(site)?;
    let path = fs::canonicalize(sysfs::device_dir(&site.functions[0])).map_err(|e| e.to_string())?;
    match path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()) {
        Some(port) if port == PORTS[0] => Ok(()),
        _ => Err("runs on the e1000e of the slot topology".into()),
    }
}

/// The interrupt registers of a model in BAR0.
#[derive(Clone, Copy)]
pub(crate) struct IrqRegs {
    icr: u64,
    pub(crate) ics: u64,
    pub(crate) ims: u64,
    imc: u64,
    /// e1000e's interrupt vector allocation register, which routes causes to
    /// MSI-X vectors; igb out of its MSI-X mode (GPIE) sends everything to
    /// vector 0.
    ivar: Option<u64>,
}

/// The cause the scenarios raise through ICS (and enable through IMS):
/// "transmit descriptor low", which the emulated devices never raise by
/// themselves without traffic (link status changes do, after a reset).
pub(crate) const CAUSE_TXD_LOW: u32 = 1 << 15;
/// e1000e's "other" cause, which MSI-X delivers through IVAR's other field.
const E1000E_CAUSE_OTHER: u32 = 1 << 24;

pub(crate) fn registers(bdf: &str) -> Option<IrqRegs> {
    match sysfs::model_of(bdf)?.native_driver {
        "e1000e" => Some(IrqRegs { icr: 0xc0, ics: 0xc8, ims: 0xd0, imc: 0xd8, ivar: Some(0xe4) }),
        "igb" => Some(IrqRegs { icr: 0xc0, ics: 0xc8, ims: 0xd0, imc: 0xd8, ivar: None }),
        _ => None,
    }
}

/// Where a cause raised through ICS arrives with MSI-X enabled: e1000e routes its 'other'
/// cause to a vector through IVAR (bits 19:16, valid bit 3 of the field), here vector 1;
/// igb outside its MSI-X mode (GPIE) sends everything to vector 0.
#[derive(Clone, Copy)]
pub(crate) struct MsixRoute {
    /// The vector the cause arrives on.
    pub(crate) vector: u32,
    /// The causes to enable (IMS) and raise (ICS).
    pub(crate) cause: u32,
    /// The IVAR write that routes them, if the model needs one: (offset, value).
    pub(crate) ivar: Option<(u64, u32)>,
}

pub(crate) fn msix_route(r: IrqRegs) -> MsixRoute {
    match r.ivar {
        Some(ivar) => {
            MsixRoute { vector: 1, cause: CAUSE_TXD_LOW | E1000E_CAUSE_OTHER, ivar: Some((ivar, (0x8 | 1) << 16)) }
        }
        None => MsixRoute { vector: 0, cause: CAUSE_TXD_LOW, ivar: None },
    }
}

// ----------------------------------------------------------------- helpers

/// VFIO_DEVICE_GET_IRQ_INFO with `argsz` for `index`, in a 32-byte buffer
/// prefilled with 0xa5: returns the whole buffer.
fn get_irq_info(d: &Device, index: u32, argsz: u32) -> Result<Vec<u8>, Fail> {
    let mut buf = [0xa5u8; 32];
    buf[0..4].copy_from_slice(&argsz.to_ne_bytes());
    buf[8..12].copy_from_slice(&index.to_ne_bytes());
    // SAFETY: the kernel reads and writes the 16-byte fixed part only; the
    // buffer is 32 bytes and lives across the call.
    unsafe { ioctl_ptr(d, VFIO_DEVICE_GET_IRQ_INFO, buf.as_mut_ptr().cast::<c_void>()) }?;
    Ok(buf.to_vec())
}

fn info_fields(b: &Vec<u8>, _: &mut Transcript) -> Fields {
    let w = |i: usize| u64::from(u32::from_ne_bytes([b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]]));
    vec![
        ("argsz", Val::Num(w(0))),
        ("flags", Val::Hex(w(1))),
        ("index", Val::Num(w(2))),
        ("count", Val::Num(w(3))),
        ("bytes", Val::Bytes(b.clone())),
    ]
}

/// VFIO_DEVICE_SET_IRQS with an explicit argsz: header then `data`.
fn set_irqs_raw(
    d: &Device,
    argsz: u32,
    flags: u32,
    index: u32,
    start: u32,
    count: u32,
    data: &[u8],
) -> Result<i32, Fail> {
    let mut buf: Vec<u8> = Vec::with_capacity(IRQ_SET_MINSZ as usize + data.len());
    for v in [argsz, flags, index, start, count] {
        buf.extend_from_slice(&v.to_ne_bytes());
    }
    buf.extend_from_slice(data);
    // The kernel reads at most argsz bytes; never let it read past the buffer.
    buf.resize(buf.len().max(argsz as usize), 0);
    // SAFETY: the kernel reads the 20-byte header and then count * (0, 1 or
    // 4) bytes, only if argsz covers them, and argsz <= buf.len(); it writes
    // nothing.  `buf` lives across the call.
    Ok(unsafe { ioctl_ptr(d, VFIO_DEVICE_SET_IRQS, buf.as_mut_ptr().cast::<c_void>()) }?)
}

/// SET_IRQS with argsz = 20 + data.len().
fn set_irqs(d: &Device, flags: u32, index: u32, start: u32, count: u32, data: &[u8]) -> Result<i32, Fail> {
    set_irqs_raw(d, IRQ_SET_MINSZ + data.len() as u32, flags, index, start, count, data)
}

/// Attach eventfds (`-1`: none) to `index` from `start`.
pub(crate) fn set_fds(d: &Device, index: u32, start: u32, fds: &[i32]) -> Result<i32, Fail> {
    let data: Vec<u8> = fds.iter().flat_map(|fd| fd.to_ne_bytes()).collect();
    set_irqs(d, DATA_EVENTFD | ACTION_TRIGGER, index, start, fds.len() as u32, &data)
}

/// A DATA_NONE action.
pub(crate) fn set_none(d: &Device, action: u32, index: u32, start: u32, count: u32) -> Result<i32, Fail> {
    set_irqs(d, DATA_NONE | action, index, start, count, &[])
}

/// A DATA_BOOL action.
fn set_bools(d: &Device, action: u32, index: u32, start: u32, bools: &[u8]) -> Result<i32, Fail> {
    set_irqs(d, DATA_BOOL | action, index, start, bools.len() as u32, bools)
}

fn ret(v: &i32, _: &mut Transcript) -> Fields {
    vec![("ret", Val::Num(*v as u64))]
}

#[repr(C)]
struct PollFd {
    fd: c_int,
    events: c_short,
    revents: c_short,
}

extern "C" {
    /// glibc: `int poll(struct pollfd *fds, nfds_t nfds, int timeout);`
    fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
}

const POLLIN: c_short = 1;

/// The eventfd's counter (reading resets it), waiting up to `wait` for a
/// signal; 0 if none came.
pub(crate) fn take_count(fd: &OwnedFd, wait: Duration) -> Result<u64, Fail> {
    let mut p = PollFd { fd: fd.as_raw_fd(), events: POLLIN, revents: 0 };
    // SAFETY: one valid pollfd that lives across the call.
    let n = unsafe { poll(&mut p, 1, wait.as_millis() as c_int) };
    if n < 0 {
        return Err(Fail::Os(Errno::last()));
    }
    if n == 0 {
        return Ok(0);
    }
    read_u64(fd)
}

/// Leave the device `wait` to send a late message, then take whatever count
/// `fd` got meanwhile (0 if none), without waiting further.
pub(crate) fn take_late(fd: &OwnedFd, wait: Duration) -> Result<u64, Fail> {
    std::thread::sleep(wait);
    take_count(fd, Duration::ZERO)
}

/// How long a step waits for a signal that should come (a device interrupt
/// goes through QEMU); signals the driver sends synchronously are already
/// there, and one that should not come is given the same time to show up.
const SIGNAL_WAIT: Duration = Duration::from_millis(300);

/// Record the signals `fd` got since the last read.
fn record_count(t: &mut Transcript, step: &str, fd: &OwnedFd) {
    t.step(step, take_count(fd, SIGNAL_WAIT), |n, _| vec![("signals", Val::Num(*n))]);
}

/// Record whether `fd` got at least one signal since the last read: an
/// emulated device may send an MSI twice for one cause (interrupt
/// throttling timers), so device MSIs are compared as "some" or "none".
fn record_signalled(t: &mut Transcript, step: &str, fd: &OwnedFd) {
    // Also drain a second, throttled message, so it cannot count for the next step.
    let n = take_count(fd, SIGNAL_WAIT).and_then(|first| Ok(first + take_late(fd, SIGNAL_WAIT)?));
    t.step(step, n, |n, _| vec![("signalled", Val::Bool(*n > 0))]);
}

fn eventfd(t: &mut Transcript, step: &str) -> Result<OwnedFd, Abort> {
    t.need(step, new_eventfd().map_err(Fail::Os), none)
}

fn raw(fd: &OwnedFd) -> i32 {
    fd.as_raw_fd()
}

/// The vfio IRQ names in /proc/interrupts, sorted.
pub(crate) fn vfio_irq_names() -> Result<Vec<String>, Fail> {
    let text = fs::read_to_string("/proc/interrupts")?;
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(i) = rest.find("vfio-") {
            let tail = &rest[i..];
            let end = tail.find(')').map_or(tail.len(), |e| e + 1);
            names.push(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    names.sort();
    Ok(names)
}

fn record_irq_names(t: &mut Transcript, step: &str) {
    t.step(step, vfio_irq_names(), |n, _| vec![("names", Val::text(n.join(" ")))]);
}

/// Add one to an eventfd's counter, as user space signals it.
pub(crate) fn signal_eventfd(fd: &OwnedFd) -> Result<usize, Fail> {
    let mut file = File::from(fd.try_clone()?);
    Ok(std::io::Write::write(&mut file, &1u64.to_ne_bytes())?)
}

/// A 32-bit BAR0 write.
pub(crate) fn bar0_write(d: &Device, offset: u64, value: u32) -> Result<(), Fail> {
    let n = d.file().write_at(&value.to_le_bytes(), offset)?;
    if n != 4 {
        return Err(Fail::other(format!("short BAR0 write: {n} bytes")));
    }
    Ok(())
}

// ----------------------------------------------------- irq_err_conventional

fn irq_err_conventional(c: &Ctx) -> Transcript {
    with_group_device(c, |t, d| {
        t.step("GET_IRQ_INFO ERR", get_irq_info(d, ERR, IRQ_INFO_MINSZ), info_fields);
        let err = eventfd(t, "ERR eventfd")?;
        t.step("ERR set", set_fds(d, ERR, 0, &[err.as_raw_fd()]), ret);
        t.step("ERR remove (DATA_NONE count 0)", set_none(d, ACTION_TRIGGER, ERR, 0, 0), ret);
        Ok(())
    })
}

fn expect_irq_err_conventional(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    if sysfs::kernel_version().is_some_and(|v| v >= (7, 3)) {
        e.bits("GET_IRQ_INFO ERR", "flags", INFO_EVENTFD | INFO_NORESIZE);
        e.num("GET_IRQ_INFO ERR", "count", 1);
        e.num("ERR set", "ret", 0);
        e.num("ERR remove (DATA_NONE count 0)", "ret", 0);
    } else {
        e.err("GET_IRQ_INFO ERR", Errno::EINVAL);
    }
    e.finish()
}

// ----------------------------------------------------------------- irq_info

fn irq_info(c: &Ctx) -> Transcript {
    with_group_device(c, |t, d| {
        for index in [INTX, MSI, MSIX, ERR, REQ] {
            t.step(&format!("GET_IRQ_INFO index {index}"), get_irq_info(d, index, IRQ_INFO_MINSZ), info_fields);
        }
        t.step("GET_IRQ_INFO argsz 15", get_irq_info(d, INTX, IRQ_INFO_MINSZ - 1), info_fields);
        t.step("GET_IRQ_INFO argsz 0", get_irq_info(d, INTX, 0), info_fields);
        t.step("GET_IRQ_INFO index 5", get_irq_info(d, 5, IRQ_INFO_MINSZ), info_fields);
        t.step("GET_IRQ_INFO index 0xffffffff", get_irq_info(d, u32::MAX, IRQ_INFO_MINSZ), info_fields);
        t.step("GET_IRQ_INFO argsz 32 (MSI-X)", get_irq_info(d, MSIX, 32), info_fields);
        Ok(())
    })
}

fn expect_irq_info(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.bits("GET_IRQ_INFO index 0", "flags", INFO_EVENTFD | INFO_MASKABLE | INFO_AUTOMASKED);
    e.num("GET_IRQ_INFO index 0", "count", 1);
    e.bits("GET_IRQ_INFO index 1", "flags", INFO_EVENTFD | INFO_NORESIZE);
    e.at_least("GET_IRQ_INFO index 1", "count", 1);
    e.bits("GET_IRQ_INFO index 2", "flags", INFO_EVENTFD);
    e.at_least("GET_IRQ_INFO index 2", "count", 5);
    e.num("GET_IRQ_INFO index 3", "count", 1);
    e.num("GET_IRQ_INFO index 4", "count", 1);
    e.bits("GET_IRQ_INFO index 4", "flags", INFO_EVENTFD | INFO_NORESIZE);
    e.err("GET_IRQ_INFO argsz 15", Errno::EINVAL);
    e.err("GET_IRQ_INFO argsz 0", Errno::EINVAL);
    e.err("GET_IRQ_INFO index 5", Errno::EINVAL);
    e.err("GET_IRQ_INFO index 0xffffffff", Errno::EINVAL);
    e.ok("GET_IRQ_INFO argsz 32 (MSI-X)");
    e.finish()
}

// ------------------------------------------------------------ irq_set_errnos

fn irq_set_errnos(c: &Ctx) -> Transcript {
    with_group_device(c, |t, d| {
        let trig = DATA_NONE | ACTION_TRIGGER;
        t.step("argsz 19", set_irqs_raw(d, IRQ_SET_MINSZ - 1, trig, REQ, 0, 0, &[]), ret);
        t.step("index 5", set_none(d, ACTION_TRIGGER, 5, 0, 0), ret);
        t.step("unknown flag bit 6", set_irqs(d, trig | (1 << 6), REQ, 0, 0, &[]), ret);
        t.step("no data type", set_irqs(d, ACTION_TRIGGER, REQ, 0, 0, &[]), ret);
        t.step("two data types", set_irqs(d, DATA_NONE | DATA_BOOL | ACTION_TRIGGER, REQ, 0, 1, &[1]), ret);
        t.step("two actions", set_irqs(d, DATA_NONE | ACTION_MASK | ACTION_TRIGGER, INTX, 0, 1, &[]), ret);
        t.step("no action", set_irqs(d, DATA_NONE, INTX, 0, 1, &[]), ret);
        t.step("start past the count (MSI-X start 4096)", set_none(d, ACTION_TRIGGER, MSIX, 4096, 1), ret);
        t.step("range past the count (INTx start 0 count 2)", set_none(d, ACTION_TRIGGER, INTX, 0, 2), ret);
        t.step("count wrapping (start 1 count 0xffffffff)", set_none(d, ACTION_TRIGGER, MSIX, 1, u32::MAX), ret);
        t.step(
            "eventfd data shorter than count",
            set_irqs_raw(d, IRQ_SET_MINSZ + 4, DATA_EVENTFD | ACTION_TRIGGER, MSIX, 0, 2, &[0xff; 8]),
            ret,
        );
        t.step(
            "bool data shorter than count",
            set_irqs_raw(d, IRQ_SET_MINSZ + 1, DATA_BOOL | ACTION_TRIGGER, MSIX, 0, 2, &[1, 1]),
            ret,
        );
        t.step("MSI mask", set_none(d, ACTION_MASK, MSI, 0, 1), ret);
        t.step("MSI-X unmask", set_none(d, ACTION_UNMASK, MSIX, 0, 1), ret);
        t.step("ERR mask", set_none(d, ACTION_MASK, ERR, 0, 1), ret);
        t.step("REQ unmask", set_none(d, ACTION_UNMASK, REQ, 0, 1), ret);
        t.step("INTx mask, INTx disabled", set_none(d, ACTION_MASK, INTX, 0, 1), ret);
        t.step("INTx unmask, INTx disabled", set_none(d, ACTION_UNMASK, INTX, 0, 1), ret);
        t.step(
            "INTx mask eventfd, INTx disabled",
            set_irqs(d, DATA_EVENTFD | ACTION_MASK, INTX, 0, 1, &(-1i32).to_ne_bytes()),
            ret,
        );
        t.step("INTx trigger DATA_NONE, INTx disabled", set_none(d, ACTION_TRIGGER, INTX, 0, 1), ret);
        t.step("INTx disable (count 0), INTx disabled", set_none(d, ACTION_TRIGGER, INTX, 0, 0), ret);
        t.step("MSI trigger DATA_NONE, MSI disabled", set_none(d, ACTION_TRIGGER, MSI, 0, 1), ret);
        t.step("MSI-X disable (count 0), MSI-X disabled", set_none(d, ACTION_TRIGGER, MSIX, 0, 0), ret);
        t.step("MSI-X bool trigger, MSI-X disabled", set_bools(d, ACTION_TRIGGER, MSIX, 0, &[1]), ret);
        t.step("REQ DATA_NONE, none set", set_none(d, ACTION_TRIGGER, REQ, 0, 1), ret);
        t.step("REQ count 2", set_none(d, ACTION_TRIGGER, REQ, 0, 2), ret);
        t.step("ERR BOOL count 0", set_irqs(d, DATA_BOOL | ACTION_TRIGGER, ERR, 0, 0, &[]), ret);
        t.step("ERR eventfd count 0", set_irqs(d, DATA_EVENTFD | ACTION_TRIGGER, ERR, 0, 0, &[]), ret);
        t.step("ERR fd -2", set_fds(d, ERR, 0, &[-2]), ret);
        t.step("MSI-X closed fd", set_fds(d, MSIX, 0, &[4000]), ret);
        t.step("INTx closed fd", set_fds(d, INTX, 0, &[4000]), ret);
        t.step("REQ closed fd", set_fds(d, REQ, 0, &[4000]), ret);
        let null =
            t.need("open /dev/null", OpenOptions::new().read(true).open("/dev/null").map_err(Fail::from), none)?;
        let fd = null.as_raw_fd();
        t.step("MSI-X not an eventfd", set_fds(d, MSIX, 0, &[fd]), ret);
        t.step("INTx not an eventfd", set_fds(d, INTX, 0, &[fd]), ret);
        t.step("ERR not an eventfd", set_fds(d, ERR, 0, &[fd]), ret);
        t.step("MSI-X after the failures: still disabled", set_none(d, ACTION_TRIGGER, MSIX, 0, 1), ret);
        record_irq_names(t, "vfio IRQs after the failures");
        Ok(())
    })
}

fn expect_irq_set_errnos(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    for step in [
        "argsz 19",
        "index 5",
        "unknown flag bit 6",
        "no data type",
        "two data types",
        "start past the count (MSI-X start 4096)",
        "range past the count (INTx start 0 count 2)",
        "count wrapping (start 1 count 0xffffffff)",
        "eventfd data shorter than count",
        "bool data shorter than count",
        "INTx mask, INTx disabled",
        "INTx unmask, INTx disabled",
        "INTx mask eventfd, INTx disabled",
        "INTx trigger DATA_NONE, INTx disabled",
        "INTx disable (count 0), INTx disabled",
        "MSI trigger DATA_NONE, MSI disabled",
        "MSI-X disable (count 0), MSI-X disabled",
        "MSI-X bool trigger, MSI-X disabled",
        "REQ DATA_NONE, none set",
        "REQ count 2",
        "ERR BOOL count 0",
        "ERR eventfd count 0",
        "ERR fd -2",
        "MSI-X not an eventfd",
        "INTx not an eventfd",
        "ERR not an eventfd",
        "MSI-X after the failures: still disabled",
    ] {
        e.err(step, Errno::EINVAL);
    }
    for step in ["two actions", "no action", "MSI mask", "MSI-X unmask", "ERR mask", "REQ unmask"] {
        e.err(step, Errno::ENOTTY);
    }
    for step in ["MSI-X closed fd", "INTx closed fd", "REQ closed fd"] {
        e.err(step, Errno::EBADF);
    }
    e.val("vfio IRQs after the failures", "names", &Val::text(""));
    e.finish()
}

// --------------------------------------------------------- irq_intx_loopback

fn irq_intx_loopback(c: &Ctx) -> Transcript {
    with_group_device(c, |t, d| {
        let a = eventfd(t, "eventfd A")?;
        let b = eventfd(t, "eventfd B")?;
        let u = eventfd(t, "unmask eventfd")?;
        t.need("INTx enable with A", set_fds(d, INTX, 0, &[raw(&a)]), ret)?;
        record_irq_names(t, "vfio IRQs with INTx");
        record_count(t, "A after enable", &a);
        t.step("INTx trigger DATA_NONE", set_none(d, ACTION_TRIGGER, INTX, 0, 1), ret);
        record_count(t, "A after DATA_NONE", &a);
        t.step("INTx trigger BOOL 1", set_bools(d, ACTION_TRIGGER, INTX, 0, &[1]), ret);
        record_count(t, "A after BOOL 1", &a);
        t.step("INTx trigger BOOL 0", set_bools(d, ACTION_TRIGGER, INTX, 0, &[0]), ret);
        record_count(t, "A after BOOL 0", &a);
        t.step("INTx mask DATA_NONE", set_none(d, ACTION_MASK, INTX, 0, 1), ret);
        t.step("INTx mask BOOL 1 (already masked)", set_bools(d, ACTION_MASK, INTX, 0, &[1]), ret);
        t.step("INTx trigger while masked", set_none(d, ACTION_TRIGGER, INTX, 0, 1), ret);
        record_count(t, "A after a trigger while masked", &a);
        t.step(
            "INTx mask with an eventfd",
            set_irqs(d, DATA_EVENTFD | ACTION_MASK, INTX, 0, 1, &raw(&u).to_ne_bytes()),
            ret,
        );
        t.step("INTx unmask BOOL 0", set_bools(d, ACTION_UNMASK, INTX, 0, &[0]), ret);
        t.step("INTx unmask DATA_NONE", set_none(d, ACTION_UNMASK, INTX, 0, 1), ret);
        record_count(t, "A after unmask (nothing pending)", &a);
        t.step("INTx unmask start 1", set_none(d, ACTION_UNMASK, INTX, 1, 1), ret);
        t.step(
            "INTx unmask eventfd",
            set_irqs(d, DATA_EVENTFD | ACTION_UNMASK, INTX, 0, 1, &raw(&u).to_ne_bytes()),
            ret,
        );
        t.step(
            "INTx second unmask eventfd",
            set_irqs(d, DATA_EVENTFD | ACTION_UNMASK, INTX, 0, 1, &raw(&b).to_ne_bytes()),
            ret,
        );
        t.step("INTx mask again", set_none(d, ACTION_MASK, INTX, 0, 1), ret);
        t.step("signal the unmask eventfd", signal_eventfd(&u), |n, _| vec![("bytes", Val::Num(*n as u64))]);
        record_count(t, "A after the unmask eventfd", &a);
        t.step(
            "INTx unmask eventfd removed (fd -1)",
            set_irqs(d, DATA_EVENTFD | ACTION_UNMASK, INTX, 0, 1, &(-1i32).to_ne_bytes()),
            ret,
        );
        t.step("MSI enable while INTx", set_fds(d, MSI, 0, &[raw(&b)]), ret);
        t.step("MSI-X disable while INTx", set_none(d, ACTION_TRIGGER, MSIX, 0, 0), ret);
        t.step("INTx trigger switched to B", set_fds(d, INTX, 0, &[raw(&b)]), ret);
        t.step("INTx trigger after the switch", set_none(d, ACTION_TRIGGER, INTX, 0, 1), ret);
        record_count(t, "A after the switch", &a);
        record_count(t, "B after the switch", &b);
        t.step("INTx trigger removed (fd -1)", set_fds(d, INTX, 0, &[-1]), ret);
        t.step("INTx trigger without an eventfd", set_none(d, ACTION_TRIGGER, INTX, 0, 1), ret);
        record_count(t, "B after removal", &b);
        t.step("INTx enable again (count 1) switches the trigger back to A", set_fds(d, INTX, 0, &[raw(&a)]), ret);
        t.step("INTx disable (count 0 DATA_NONE)", set_none(d, ACTION_TRIGGER, INTX, 0, 0), ret);
        t.step("INTx trigger after disable", set_none(d, ACTION_TRIGGER, INTX, 0, 1), ret);
        record_count(t, "A after disable", &a);
        record_irq_names(t, "vfio IRQs after disable");
        t.step("INTx enable without an eventfd (fd -1)", set_fds(d, INTX, 0, &[-1]), ret);
        t.step("INTx trigger with no eventfd", set_none(d, ACTION_TRIGGER, INTX, 0, 1), ret);
        t.step("INTx disable again", set_none(d, ACTION_TRIGGER, INTX, 0, 0), ret);
        Ok(())
    })
}

fn expect_irq_intx_loopback(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    for (step, n) in [
        ("A after enable", 0),
        ("A after DATA_NONE", 1),
        ("A after BOOL 1", 1),
        ("A after BOOL 0", 0),
        ("A after a trigger while masked", 1),
        ("A after unmask (nothing pending)", 0),
        ("A after the unmask eventfd", 0),
        ("A after the switch", 0),
        ("B after the switch", 1),
        ("B after removal", 0),
        ("A after disable", 0),
    ] {
        e.num(step, "signals", n);
    }
    e.err("INTx mask with an eventfd", Errno::ENOTTY);
    e.err("INTx unmask start 1", Errno::EINVAL);
    e.ok("INTx unmask eventfd");
    e.err("INTx second unmask eventfd", Errno::EBUSY);
    e.err("MSI enable while INTx", Errno::EINVAL);
    e.err("MSI-X disable while INTx", Errno::EINVAL);
    e.err("INTx trigger after disable", Errno::EINVAL);
    e.ok("INTx disable (count 0 DATA_NONE)");
    e.val("vfio IRQs after disable", "names", &Val::text(""));
    e.ok("INTx enable without an eventfd (fd -1)");
    e.ok("INTx disable again");
    e.finish()
}

// ----------------------------------------------------------- irq_msi_loopback

fn irq_msi_loopback(c: &Ctx) -> Transcript {
    with_group_device(c, |t, d| {
        let fds: Vec<OwnedFd> = (0..5).map(|i| eventfd(t, &format!("eventfd {i}"))).collect::<Result<_, _>>()?;
        let raws: Vec<i32> = fds.iter().map(raw).collect();
        let counts = |t: &mut Transcript, when: &str| {
            let n: Result<Vec<u64>, Fail> = fds.iter().map(|f| take_count(f, Duration::from_millis(50))).collect();
            t.step(&format!("eventfds 0-4 {when}"), n, |n, _| {
                vec![("signals", Val::text(n.iter().map(u64::to_string).collect::<Vec<_>>().join(",")))]
            });
        };
        // MSI.
        t.need("MSI enable vector 0", set_fds(d, MSI, 0, &raws[..1]), ret)?;
        record_irq_names(t, "vfio IRQs with MSI");
        t.step("MSI trigger DATA_NONE", set_none(d, ACTION_TRIGGER, MSI, 0, 1), ret);
        counts(t, "after the MSI trigger");
        t.step("MSI-X enable while MSI", set_fds(d, MSIX, 0, &raws[..1]), ret);
        t.step("INTx enable while MSI", set_fds(d, INTX, 0, &raws[..1]), ret);
        t.step("MSI vector 0 switched to eventfd 1", set_fds(d, MSI, 0, &raws[1..2]), ret);
        t.step("MSI trigger BOOL 1", set_bools(d, ACTION_TRIGGER, MSI, 0, &[1]), ret);
        counts(t, "after the MSI BOOL trigger");
        t.step("MSI disable", set_none(d, ACTION_TRIGGER, MSI, 0, 0), ret);
        t.step("MSI trigger after disable", set_none(d, ACTION_TRIGGER, MSI, 0, 1), ret);
        // MSI-X.
        t.need("MSI-X enable vectors 0-1", set_fds(d, MSIX, 0, &raws[..2]), ret)?;
        record_irq_names(t, "vfio IRQs with MSI-X 0-1");
        t.step("MSI-X trigger DATA_NONE 0-4 (unattached skipped)", set_none(d, ACTION_TRIGGER, MSIX, 0, 5), ret);
        counts(t, "after the MSI-X trigger of 0-4");
        t.step("MSI-X trigger BOOL 0,1", set_bools(d, ACTION_TRIGGER, MSIX, 0, &[0, 1]), ret);
        counts(t, "after the MSI-X BOOL trigger");
        t.step("MSI-X attach vector 4 (beyond the enabled 2)", set_fds(d, MSIX, 4, &raws[4..5]), ret);
        record_irq_names(t, "vfio IRQs after attaching vector 4");
        t.step("MSI-X trigger vector 4", set_none(d, ACTION_TRIGGER, MSIX, 4, 1), ret);
        counts(t, "after the trigger of vector 4");
        t.step("MSI-X detach vector 0 (fd -1)", set_fds(d, MSIX, 0, &[-1]), ret);
        t.step("MSI-X trigger 0-1 after detaching 0", set_none(d, ACTION_TRIGGER, MSIX, 0, 2), ret);
        counts(t, "after detaching vector 0");
        t.step("MSI-X reattach vector 0 to eventfd 3", set_fds(d, MSIX, 0, &raws[3..4]), ret);
        t.step("MSI-X trigger 0", set_none(d, ACTION_TRIGGER, MSIX, 0, 1), ret);
        counts(t, "after reattaching vector 0");
        t.step(
            "MSI-X block with a bad fd in the middle (0: fd 0, 1: closed)",
            set_fds(d, MSIX, 0, &[raws[0], 4000]),
            ret,
        );
        record_irq_names(t, "vfio IRQs after the failed block");
        t.step("MSI-X trigger 0-1 after the failed block", set_none(d, ACTION_TRIGGER, MSIX, 0, 2), ret);
        counts(t, "after the failed block");
        t.step("MSI-X disable", set_none(d, ACTION_TRIGGER, MSIX, 0, 0), ret);
        record_irq_names(t, "vfio IRQs after MSI-X disable");
        t.step("MSI-X enable from vector 3 only", set_fds(d, MSIX, 3, &raws[3..4]), ret);
        t.step("MSI-X trigger 0-4", set_none(d, ACTION_TRIGGER, MSIX, 0, 5), ret);
        counts(t, "after enabling from vector 3");
        t.step("MSI-X disable again", set_none(d, ACTION_TRIGGER, MSIX, 0, 0), ret);
        t.step("MSI enable with a closed fd", set_fds(d, MSI, 0, &[4000]), ret);
        t.step("MSI trigger after the failed enable", set_none(d, ACTION_TRIGGER, MSI, 0, 1), ret);
        record_irq_names(t, "vfio IRQs at the end");
        Ok(())
    })
}

fn expect_irq_msi_loopback(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.val("eventfds 0-4 after the MSI trigger", "signals", &Val::text("1,0,0,0,0"));
    e.err("MSI-X enable while MSI", Errno::EINVAL);
    e.err("INTx enable while MSI", Errno::EINVAL);
    e.val("eventfds 0-4 after the MSI BOOL trigger", "signals", &Val::text("0,1,0,0,0"));
    e.err("MSI trigger after disable", Errno::EINVAL);
    e.val("eventfds 0-4 after the MSI-X trigger of 0-4", "signals", &Val::text("1,1,0,0,0"));
    e.val("eventfds 0-4 after the MSI-X BOOL trigger", "signals", &Val::text("0,1,0,0,0"));
    e.val("eventfds 0-4 after detaching vector 0", "signals", &Val::text("0,1,0,0,0"));
    e.val("eventfds 0-4 after reattaching vector 0", "signals", &Val::text("0,0,0,1,0"));
    e.err("MSI-X block with a bad fd in the middle (0: fd 0, 1: closed)", Errno::EBADF);
    e.val("eventfds 0-4 after the failed block", "signals", &Val::text("0,0,0,0,0"));
    e.val("vfio IRQs after MSI-X disable", "names", &Val::text(""));
    e.val("eventfds 0-4 after enabling from vector 3", "signals", &Val::text("0,0,0,1,0"));
    e.err("MSI enable with a closed fd", Errno::EBADF);
    e.err("MSI trigger after the failed enable", Errno::EINVAL);
    e.val("vfio IRQs at the end", "names", &Val::text(""));
    e.finish()
}

// ------------------------------------------------------------- irq_msi_cycles

/// Back-to-back enable/disable cycles per shape of `irq_msi_cycles` (the benchmark's
/// MSI-X rows did ~25 when a stack overwrite in the MSI-X table rewrite oopsed a KASAN kernel).
const MSI_CYCLES: u64 = 100;

/// How each shape of `irq_msi_cycles` went: cycles whose calls all returned 0, and the first
/// failure ("cycle N, step: errno").
struct CycleRun {
    ok: u64,
    first_failure: String,
}

fn cycle_fields(r: &CycleRun, _: &mut Transcript) -> Fields {
    vec![("cycles ok", Val::Num(r.ok)), ("first failure", Val::text(r.first_failure.clone()))]
}

/// `MSI_CYCLES` times: attach `attach` (start vector, eventfds) in order, trigger
/// `0..trigger` with DATA_NONE, disable `index`.
fn msi_cycles(d: &Device, index: u32, attach: &[(u32, &[i32])], trigger: u32) -> Result<CycleRun, Fail> {
    let mut run = CycleRun { ok: 0, first_failure: String::new() };
    for cycle in 0..MSI_CYCLES {
        let mut failed: Option<String> = None;
        for (start, fds) in attach {
            if let Err(e) = set_fds(d, index, *start, fds) {
                failed.get_or_insert(format!("cycle {cycle}, attach from {start}: {e}"));
            }
        }
        if let Err(e) = set_none(d, ACTION_TRIGGER, index, 0, trigger) {
            failed.get_or_insert(format!("cycle {cycle}, trigger: {e}"));
        }
        if let Err(e) = set_none(d, ACTION_TRIGGER, index, 0, 0) {
            failed.get_or_insert(format!("cycle {cycle}, disable: {e}"));
        }
        match failed {
            None => run.ok += 1,
            Some(f) if run.first_failure.is_empty() => run.first_failure = f,
            Some(_) => {}
        }
    }
    Ok(run)
}

/// The MSI-X or MSI vector count GET_IRQ_INFO reports, and whether the index is NORESIZE.
fn irq_count(d: &Device, index: u32) -> Result<(u32, bool), Fail> {
    let b = get_irq_info(d, index, IRQ_INFO_MINSZ)?;
    let w = |i: usize| u32::from_ne_bytes([b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]]);
    Ok((w(3), u64::from(w(1)) & INFO_NORESIZE != 0))
}

fn irq_msi_cycles(c: &Ctx) -> Transcript {
    with_group_device(c, |t, d| {
        let fds: Vec<OwnedFd> = (0..5).map(|i| eventfd(t, &format!("eventfd {i}"))).collect::<Result<_, _>>()?;
        let raws: Vec<i32> = fds.iter().map(raw).collect();
        let counts = |t: &mut Transcript, when: &str| {
            let n: Result<Vec<u64>, Fail> = fds.iter().map(|f| take_count(f, Duration::from_millis(50))).collect();
            t.step(&format!("eventfds 0-4 after {when}"), n, |n, _| {
                vec![("signals", Val::text(n.iter().map(u64::to_string).collect::<Vec<_>>().join(",")))]
            });
        };
        let (msix, noresize) = t.need("MSI-X count", irq_count(d, MSIX), |(n, r), _| {
            vec![("count", Val::Num(u64::from(*n))), ("noresize", Val::Bool(*r))]
        })?;
        let (msi, _) = t.need("MSI count", irq_count(d, MSI), |(n, _), _| vec![("count", Val::Num(u64::from(*n)))])?;
        // Several vectors: as many as the function has, up to the 5 eventfds.
        let many = msix.min(5);
        t.step("MSI-X 1 vector x100", msi_cycles(d, MSIX, &[(0, &raws[..1])], 1), cycle_fields);
        counts(t, "MSI-X 1 vector x100");
        let label = format!("MSI-X {many} vectors x100");
        t.step(&label, msi_cycles(d, MSIX, &[(0, &raws[..many as usize])], many), cycle_fields);
        counts(t, &label);
        // Vector 0 enabled, then the last vector attached: beyond the enabled one, so
        // allocated dynamically (pci_msix_alloc_irq_at) where the index is not NORESIZE.
        let last = many - 1;
        let shape: [(u32, &[i32]); 2] = [(0, &raws[..1]), (last, &raws[last as usize..many as usize])];
        t.step("MSI-X vector 0, then the last one dynamically x100", msi_cycles(d, MSIX, &shape, many), cycle_fields);
        counts(t, "MSI-X dynamic x100");
        let msi_many = msi.min(5);
        t.step("MSI 1 vector x100", msi_cycles(d, MSI, &[(0, &raws[..1])], 1), cycle_fields);
        counts(t, "MSI 1 vector x100");
        if msi_many > 1 {
            let label = format!("MSI {msi_many} vectors x100");
            t.step(&label, msi_cycles(d, MSI, &[(0, &raws[..msi_many as usize])], msi_many), cycle_fields);
            counts(t, &label);
        }
        record_irq_names(t, "vfio IRQs at the end");
        t.record("dynamic MSI-X expected", Outcome::Ok(vec![("dynamic", Val::Bool(!noresize && last > 0))]));
        Ok(())
    })
}

fn expect_irq_msi_cycles(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    let many = t.find("MSI-X count").and_then(|o| o.field("count")).and_then(Val::as_u64).unwrap_or(1).min(5);
    let per_vector = |n: u64| {
        let v: Vec<String> = (0..5).map(|i| if i < n { MSI_CYCLES.to_string() } else { "0".to_string() }).collect();
        Val::text(v.join(","))
    };
    e.num("MSI-X 1 vector x100", "cycles ok", MSI_CYCLES);
    e.val("eventfds 0-4 after MSI-X 1 vector x100", "signals", &per_vector(1));
    e.num(&format!("MSI-X {many} vectors x100"), "cycles ok", MSI_CYCLES);
    e.val(&format!("eventfds 0-4 after MSI-X {many} vectors x100"), "signals", &per_vector(many));
    let dynamic = t.find("dynamic MSI-X expected").and_then(|o| o.field("dynamic")) == Some(&Val::Bool(true));
    if dynamic {
        e.num("MSI-X vector 0, then the last one dynamically x100", "cycles ok", MSI_CYCLES);
        let v: Vec<String> =
            (0..5).map(|i| if i == 0 || i == many - 1 { MSI_CYCLES.to_string() } else { "0".to_string() }).collect();
        e.val("eventfds 0-4 after MSI-X dynamic x100", "signals", &Val::text(v.join(",")));
    } else {
        // NORESIZE: the attach beyond the enabled vector is EINVAL in every cycle.
        e.num("MSI-X vector 0, then the last one dynamically x100", "cycles ok", 0);
        e.val("eventfds 0-4 after MSI-X dynamic x100", "signals", &per_vector(1));
    }
    e.num("MSI 1 vector x100", "cycles ok", MSI_CYCLES);
    e.val("eventfds 0-4 after MSI 1 vector x100", "signals", &per_vector(1));
    e.val("vfio IRQs at the end", "names", &Val::text(""));
    e.finish()
}

// ---------------------------------------------------------------- irq_err_req

fn irq_err_req(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf().to_string());
    scenario(|t| {
        let b = bind_by_override(t, driver, &bdf)?;
        let container = t.need("open /dev/vfio/vfio", Container::open(), none)?;
        let group = t.need("open group", Group::open(&b.group), none)?;
        t.need("VFIO_GROUP_SET_CONTAINER", group.set_container(&container), none)?;
        t.need("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)", container.set_iommu(VFIO_TYPE1v2_IOMMU), none)?;
        let d = t.need("VFIO_GROUP_GET_DEVICE_FD", group.get_device_fd(&bdf), none)?;
        let err = eventfd(t, "ERR eventfd")?;
        let req = eventfd(t, "REQ eventfd")?;
        t.step("ERR set", set_fds(&d, ERR, 0, &[raw(&err)]), ret);
        t.step("ERR trigger DATA_NONE", set_none(&d, ACTION_TRIGGER, ERR, 0, 1), ret);
        record_count(t, "ERR after DATA_NONE", &err);
        t.step("ERR trigger BOOL 1", set_bools(&d, ACTION_TRIGGER, ERR, 0, &[1]), ret);
        t.step("ERR trigger BOOL 0", set_bools(&d, ACTION_TRIGGER, ERR, 0, &[0]), ret);
        record_count(t, "ERR after BOOL 1 and 0", &err);
        t.step("ERR removed (count 0 DATA_NONE)", set_none(&d, ACTION_TRIGGER, ERR, 0, 0), ret);
        t.step("ERR trigger after removal", set_none(&d, ACTION_TRIGGER, ERR, 0, 1), ret);
        t.step("ERR BOOL trigger after removal", set_bools(&d, ACTION_TRIGGER, ERR, 0, &[1]), ret);
        t.step("ERR set again", set_fds(&d, ERR, 0, &[raw(&err)]), ret);
        t.step("ERR removed (fd -1)", set_fds(&d, ERR, 0, &[-1]), ret);
        t.step("ERR removed twice (fd -1)", set_fds(&d, ERR, 0, &[-1]), ret);
        t.step("ERR trigger after fd -1", set_none(&d, ACTION_TRIGGER, ERR, 0, 1), ret);
        t.step("REQ set", set_fds(&d, REQ, 0, &[raw(&req)]), ret);
        t.step("REQ trigger DATA_NONE", set_none(&d, ACTION_TRIGGER, REQ, 0, 1), ret);
        record_count(t, "REQ after DATA_NONE", &req);
        let target = bdf.clone();
        let unbinder = std::thread::spawn(move || sysfs::unbind(&target));
        t.step("REQ after unbinding the open function", take_count(&req, Duration::from_secs(3)), |n, _| {
            vec![("signalled", Val::Bool(*n > 0))]
        });
        t.record("unbind still waiting", Outcome::Ok(vec![("finished", Val::Bool(unbinder.is_finished()))]));
        drop(d);
        drop(group);
        drop(container);
        let joined = unbinder.join().unwrap_or_else(|_| Err(Fail::other("the unbind thread panicked")));
        t.step("unbind returns once the device is closed", joined, none);
        t.step("clear driver_override", sysfs::clear_driver_override(&bdf), none);
        Ok(())
    })
}

fn expect_irq_err_req(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.ok("ERR set");
    e.num("ERR after DATA_NONE", "signals", 1);
    e.num("ERR after BOOL 1 and 0", "signals", 1);
    e.ok("ERR removed (count 0 DATA_NONE)");
    e.err("ERR trigger after removal", Errno::EINVAL);
    e.ok("ERR BOOL trigger after removal");
    e.ok("ERR removed twice (fd -1)");
    e.err("ERR trigger after fd -1", Errno::EINVAL);
    e.num("REQ after DATA_NONE", "signals", 1);
    e.val("REQ after unbinding the open function", "signalled", &Val::Bool(true));
    e.val("unbind still waiting", "finished", &Val::Bool(false));
    e.ok("unbind returns once the device is closed");
    e.finish()
}

// ------------------------------------------------------ irq_teardown_on_close

fn irq_teardown_on_close(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_group(c, |t, group| {
        let e0 = eventfd(t, "eventfd 0")?;
        let e1 = eventfd(t, "eventfd 1")?;
        {
            let d = t.need("first open", group.get_device_fd(&bdf), none)?;
            t.step("MSI-X enable 0-1", set_fds(&d, MSIX, 0, &[raw(&e0), raw(&e1)]), ret);
            t.step("ERR set", set_fds(&d, ERR, 0, &[raw(&e0)]), ret);
            t.step("REQ set", set_fds(&d, REQ, 0, &[raw(&e1)]), ret);
            record_irq_names(t, "vfio IRQs while open");
        }
        t.record("close", Outcome::Ok(Vec::new()));
        record_irq_names(t, "vfio IRQs after close");
        {
            let d = t.need("second open", group.get_device_fd(&bdf), none)?;
            t.step("MSI-X trigger after reopen", set_none(&d, ACTION_TRIGGER, MSIX, 0, 1), ret);
            t.step("ERR trigger after reopen", set_none(&d, ACTION_TRIGGER, ERR, 0, 1), ret);
            t.step("REQ trigger after reopen", set_none(&d, ACTION_TRIGGER, REQ, 0, 1), ret);
            t.step("INTx enable after reopen", set_fds(&d, INTX, 0, &[raw(&e0)]), ret);
            t.step(
                "INTx unmask eventfd",
                set_irqs(&d, DATA_EVENTFD | ACTION_UNMASK, INTX, 0, 1, &raw(&e1).to_ne_bytes()),
                ret,
            );
            record_irq_names(t, "vfio IRQs with INTx");
        }
        t.record("close with INTx enabled", Outcome::Ok(Vec::new()));
        record_irq_names(t, "vfio IRQs after the second close");
        {
            let d = t.need("third open", group.get_device_fd(&bdf), none)?;
            t.step("INTx trigger after the third open", set_none(&d, ACTION_TRIGGER, INTX, 0, 1), ret);
            t.step("MSI enable after the third open", set_fds(&d, MSI, 0, &[raw(&e0)]), ret);
        }
        record_count(t, "eventfd 0 at the end", &e0);
        record_count(t, "eventfd 1 at the end", &e1);
        record_irq_names(t, "vfio IRQs after the third close");
        Ok(())
    })
}

fn expect_irq_teardown_on_close(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.ok("MSI-X enable 0-1");
    e.val("vfio IRQs after close", "names", &Val::text(""));
    e.err("MSI-X trigger after reopen", Errno::EINVAL);
    e.err("ERR trigger after reopen", Errno::EINVAL);
    e.err("REQ trigger after reopen", Errno::EINVAL);
    e.ok("INTx enable after reopen");
    e.val("vfio IRQs after the second close", "names", &Val::text(""));
    e.err("INTx trigger after the third open", Errno::EINVAL);
    e.ok("MSI enable after the third open");
    e.val("vfio IRQs after the third close", "names", &Val::text(""));
    e.finish()
}

// ---------------------------------------------------------- irq_intx_device

/// Quiet the device: no cause enabled, none pending.
pub(crate) fn quiet(d: &Device, r: IrqRegs) -> Result<(), Fail> {
    bar0_write(d, r.imc, u32::MAX)?;
    bar0_write(d, r.icr, u32::MAX)
}

/// Enable `cause` and raise it.
pub(crate) fn raise(d: &Device, r: IrqRegs, cause: u32) -> Result<(), Fail> {
    bar0_write(d, r.ims, cause)?;
    bar0_write(d, r.ics, cause)
}

fn irq_intx_device(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_group_device(c, move |t, d| {
        let r = registers(&bdf).ok_or(Abort)?;
        let a = eventfd(t, "eventfd A")?;
        let u = eventfd(t, "unmask eventfd")?;
        t.need("quiet the device", quiet(d, r), none)?;
        t.need("INTx enable with A", set_fds(d, INTX, 0, &[raw(&a)]), ret)?;
        record_count(t, "A after enable", &a);
        t.step("raise TXD_LOW", raise(d, r, CAUSE_TXD_LOW), none);
        record_count(t, "A after the interrupt", &a);
        t.step("raise TXD_LOW again while masked", raise(d, r, CAUSE_TXD_LOW), none);
        record_count(t, "A while masked", &a);
        t.step("unmask with the interrupt pending", set_none(d, ACTION_UNMASK, INTX, 0, 1), ret);
        record_count(t, "A after unmask with the interrupt pending", &a);
        t.step("quiet the device (line masked)", quiet(d, r), none);
        t.step("unmask with nothing pending", set_none(d, ACTION_UNMASK, INTX, 0, 1), ret);
        record_count(t, "A after unmask with nothing pending", &a);
        t.step("raise TXD_LOW after unmask", raise(d, r, CAUSE_TXD_LOW), none);
        record_count(t, "A after the second interrupt", &a);
        t.step("quiet the device again", quiet(d, r), none);
        t.step(
            "set the unmask eventfd",
            set_irqs(d, DATA_EVENTFD | ACTION_UNMASK, INTX, 0, 1, &raw(&u).to_ne_bytes()),
            ret,
        );
        t.step("signal the unmask eventfd", signal_eventfd(&u), |n, _| vec![("bytes", Val::Num(*n as u64))]);
        record_count(t, "A after the unmask eventfd", &a);
        t.step("raise TXD_LOW after the unmask eventfd", raise(d, r, CAUSE_TXD_LOW), none);
        record_count(t, "A after the third interrupt", &a);
        t.step("mask (DATA_NONE) with the interrupt pending", set_none(d, ACTION_MASK, INTX, 0, 1), ret);
        t.step("signal the unmask eventfd with the interrupt pending", signal_eventfd(&u), |n, _| {
            vec![("bytes", Val::Num(*n as u64))]
        });
        record_count(t, "A after the unmask eventfd with the interrupt pending", &a);
        t.step("quiet the device at the end", quiet(d, r), none);
        t.step("INTx disable", set_none(d, ACTION_TRIGGER, INTX, 0, 0), ret);
        Ok(())
    })
}

fn expect_irq_intx_device(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    for (step, n) in [
        ("A after enable", 0),
        ("A after the interrupt", 1),
        ("A while masked", 0),
        ("A after unmask with the interrupt pending", 1),
        ("A after unmask with nothing pending", 0),
        ("A after the second interrupt", 1),
        ("A after the unmask eventfd", 0),
        ("A after the third interrupt", 1),
        ("A after the unmask eventfd with the interrupt pending", 1),
    ] {
        e.num(step, "signals", n);
    }
    e.ok("INTx disable");
    e.finish()
}

// ----------------------------------------------------------- irq_msi_device

/// Set Bus Master in the physical command register through sysfs (the
/// device's MSI writes need it; the VFIO config space is not under test here).
pub(crate) fn set_bus_master(bdf: &str) -> Result<(), Fail> {
    let f = OpenOptions::new().read(true).write(true).open(sysfs::device_dir(bdf).join("config"))?;
    let mut cmd = [0u8; 2];
    f.read_exact_at(&mut cmd, 4)?;
    let v = u16::from_le_bytes(cmd) | 0x4;
    f.write_all_at(&v.to_le_bytes(), 4)?;
    Ok(())
}

fn irq_msi_device(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_group_device(c, move |t, d| msi_device_steps(t, d, &bdf))
}

/// The steps of `irq_msi_device` on the open device `d` of function `bdf` (the noiommu guest
/// runs them on a noiommu device).
pub(crate) fn msi_device_steps(t: &mut Transcript, d: &Device, bdf: &str) -> Result<(), Abort> {
    let r = registers(bdf).ok_or(Abort)?;
    let v0 = eventfd(t, "eventfd 0")?;
    let v1 = eventfd(t, "eventfd 1")?;
    t.need("set Bus Master (sysfs config)", set_bus_master(bdf), none)?;
    t.need("quiet the device", quiet(d, r), none)?;
    t.need("MSI enable", set_fds(d, MSI, 0, &[raw(&v0)]), ret)?;
    t.step("raise TXD_LOW", raise(d, r, CAUSE_TXD_LOW), none);
    record_signalled(t, "MSI eventfd after the interrupt", &v0);
    t.step("quiet the device after the MSI", quiet(d, r), none);
    t.step("raise TXD_LOW again", raise(d, r, CAUSE_TXD_LOW), none);
    record_signalled(t, "MSI eventfd after the second interrupt (no masking)", &v0);
    t.step("quiet the device before MSI-X", quiet(d, r), none);
    t.step("MSI disable", set_none(d, ACTION_TRIGGER, MSI, 0, 0), ret);
    t.need("MSI-X enable 0-1", set_fds(d, MSIX, 0, &[raw(&v0), raw(&v1)]), ret)?;
    let MsixRoute { vector: routed, cause, ivar } = msix_route(r);
    if let Some((ivar, value)) = ivar {
        t.step("route the other cause to vector 1 (IVAR)", bar0_write(d, ivar, value), none);
    }
    let fds = [&v0, &v1];
    t.step("raise an MSI-X interrupt", raise(d, r, cause), none);
    record_signalled(t, "MSI-X vector 0 after the interrupt", &v0);
    record_signalled(t, "MSI-X vector 1 after the interrupt", &v1);
    t.step("quiet the device after MSI-X", quiet(d, r), none);
    t.step("detach the routed vector", set_fds(d, MSIX, routed, &[-1]), ret);
    t.step("raise an MSI-X interrupt with the vector detached", raise(d, r, cause), none);
    record_signalled(t, "the routed vector's eventfd while detached", fds[routed as usize]);
    t.step("quiet the device with the vector detached", quiet(d, r), none);
    t.step("reattach the routed vector", set_fds(d, MSIX, routed, &[raw(fds[routed as usize])]), ret);
    // The message the device could not send while the vector was masked is pending (PBA)
    // and goes out when the new IRQ unmasks the vector.
    record_signalled(t, "the routed vector's eventfd after reattaching (pending message)", fds[routed as usize]);
    t.step("quiet the device after reattaching", quiet(d, r), none);
    t.step("raise an MSI-X interrupt after reattaching", raise(d, r, cause), none);
    record_signalled(t, "the routed vector's eventfd after reattaching", fds[routed as usize]);
    t.step("quiet the device at the end", quiet(d, r), none);
    t.step("MSI-X disable", set_none(d, ACTION_TRIGGER, MSIX, 0, 0), ret);
    Ok(())
}

pub(crate) fn expect_irq_msi_device(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.val("MSI eventfd after the interrupt", "signalled", &Val::Bool(true));
    e.val("MSI eventfd after the second interrupt (no masking)", "signalled", &Val::Bool(true));
    e.ok("MSI disable");
    let routed_is_1 = registers(c.bdf()).is_some_and(|r| msix_route(r).vector == 1);
    e.val("MSI-X vector 0 after the interrupt", "signalled", &Val::Bool(!routed_is_1));
    e.val("MSI-X vector 1 after the interrupt", "signalled", &Val::Bool(routed_is_1));
    e.val("the routed vector's eventfd while detached", "signalled", &Val::Bool(false));
    e.val("the routed vector's eventfd after reattaching (pending message)", "signalled", &Val::Bool(true));
    e.val("the routed vector's eventfd after reattaching", "signalled", &Val::Bool(true));
    e.ok("MSI-X disable");
    e.finish()
}

// ------------------------------------------------------------------ irq_race

/// How long the race runs.
const RACE_TIME: Duration = Duration::from_millis(1500);

/// The outcomes the race may see.
const RACE_DOCUMENTED: [Errno; 2] = [Errno::EINVAL, Errno::EBUSY];

fn irq_race(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_group_device(c, move |t, d| {
        let r = registers(&bdf).ok_or(Abort)?;
        let a = eventfd(t, "eventfd A")?;
        let b = eventfd(t, "eventfd B")?;
        let u = eventfd(t, "unmask eventfd")?;
        t.need("quiet the device", quiet(d, r), none)?;
        let deadline = std::time::Instant::now() + RACE_TIME;
        let ioctl_loop = |phase: u32| {
            let mut tally: std::collections::BTreeMap<String, u64> = Default::default();
            let mut i = phase;
            while std::time::Instant::now() < deadline {
                let result = match i % 9 {
                    0 => set_fds(d, INTX, 0, &[raw(&a)]),
                    1 => set_fds(d, INTX, 0, &[raw(&b)]),
                    2 => set_irqs(d, DATA_EVENTFD | ACTION_UNMASK, INTX, 0, 1, &raw(&u).to_ne_bytes()),
                    3 => set_none(d, ACTION_MASK, INTX, 0, 1),
                    4 => set_none(d, ACTION_UNMASK, INTX, 0, 1),
                    5 => set_irqs(d, DATA_EVENTFD | ACTION_UNMASK, INTX, 0, 1, &(-1i32).to_ne_bytes()),
                    6 => set_none(d, ACTION_TRIGGER, INTX, 0, 0),
                    7 => set_fds(d, MSIX, 0, &[raw(&a), raw(&b)]),
                    _ => set_none(d, ACTION_TRIGGER, MSIX, 0, 0),
                };
                let key = match result {
                    Ok(_) => "0".to_string(),
                    Err(f) => f.to_string(),
                };
                *tally.entry(key).or_insert(0) += 1;
                i += 1;
            }
            tally
        };
        let (ioctls, device) = std::thread::scope(|s| {
            // Two loops a few steps apart, so ioctls also race each other.
            let first = s.spawn(|| ioctl_loop(0));
            let second = s.spawn(|| ioctl_loop(4));
            let device = s.spawn(|| {
                let mut raised = 0u64;
                while std::time::Instant::now() < deadline {
                    let _ = raise(d, r, CAUSE_TXD_LOW);
                    let _ = signal_eventfd(&u);
                    let _ = quiet(d, r);
                    raised += 1;
                }
                raised
            });
            let mut tally = first.join().unwrap_or_default();
            for (k, v) in second.join().unwrap_or_default() {
                *tally.entry(k).or_insert(0) += v;
            }
            (tally, device.join())
        });
        let tally = ioctls;
        let documented = tally.keys().all(|k| k == "0" || RACE_DOCUMENTED.iter().any(|e| e.to_string() == *k));
        t.info.push(format!("irq_race: SET_IRQS outcomes {tally:?}; device interrupts raised {}", device.unwrap_or(0)));
        t.record("every SET_IRQS outcome is documented", Outcome::Ok(vec![("documented", Val::Bool(documented))]));
        let _ = set_none(d, ACTION_TRIGGER, INTX, 0, 0);
        let _ = set_none(d, ACTION_TRIGGER, MSIX, 0, 0);
        t.step("quiet the device after the race", quiet(d, r), none);
        record_irq_names(t, "vfio IRQs after disabling everything");
        t.step("INTx enable after the race", set_fds(d, INTX, 0, &[raw(&a)]), ret);
        t.step("INTx disable after the race", set_none(d, ACTION_TRIGGER, INTX, 0, 0), ret);
        Ok(())
    })
}

fn expect_irq_race(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.val("every SET_IRQS outcome is documented", "documented", &Val::Bool(true));
    e.val("vfio IRQs after disabling everything", "names", &Val::text(""));
    e.ok("INTx enable after the race");
    e.ok("INTx disable after the race");
    e.finish()
}

// -------------------------------------------------- irq_config_intx_disable

/// The config region's offset in the device file.
const CONFIG_REGION: u64 = 7 << 40;

pub(crate) fn config_read16(d: &Device, offset: u64) -> Result<u16, Fail> {
    let mut b = [0u8; 2];
    d.file().read_exact_at(&mut b, CONFIG_REGION + offset)?;
    Ok(u16::from_le_bytes(b))
}

pub(crate) fn config_write16(d: &Device, offset: u64, value: u16) -> Result<(), Fail> {
    d.file().write_all_at(&value.to_le_bytes(), CONFIG_REGION + offset)?;
    Ok(())
}

/// The offset of capability `id` in the function's (physical) config space.
pub(crate) fn find_cap(bdf: &str, id: u8) -> Result<u64, Fail> {
    let cfg = fs::read(sysfs::device_dir(bdf).join("config"))?;
    let mut pos = usize::from(*cfg.get(0x34).unwrap_or(&0));
    for _ in 0..48 {
        if pos == 0 {
            break;
        }
        if cfg.get(pos) == Some(&id) {
            return Ok(pos as u64);
        }
        pos = usize::from(*cfg.get(pos + 1).unwrap_or(&0));
    }
    Err(Fail::other(format!("no capability {id:#x}")))
}

const COMMAND: u64 = 4;
const COMMAND_INTX_DISABLE: u16 = 1 << 10;
const COMMAND_MEMORY: u16 = 1 << 1;
const COMMAND_MASTER: u16 = 1 << 2;

fn irq_config_intx_disable(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_group_device(c, move |t, d| {
        let r = registers(&bdf).ok_or(Abort)?;
        let a = eventfd(t, "eventfd A")?;
        t.need("quiet the device", quiet(d, r), none)?;
        t.need("INTx enable with A", set_fds(d, INTX, 0, &[raw(&a)]), ret)?;
        let cmd = t.need("read the virtual command register", config_read16(d, COMMAND), |v, _| {
            vec![("command", Val::Hex((*v).into()))]
        })?;
        t.step("set INTX_DISABLE", config_write16(d, COMMAND, cmd | COMMAND_INTX_DISABLE), none);
        t.step("raise TXD_LOW with INTx virtually disabled", raise(d, r, CAUSE_TXD_LOW), none);
        record_count(t, "A with INTx virtually disabled", &a);
        t.step("INTx unmask ioctl while virtually disabled", set_none(d, ACTION_UNMASK, INTX, 0, 1), ret);
        record_count(t, "A after the unmask ioctl while virtually disabled", &a);
        t.step("INTx trigger DATA_NONE while virtually disabled", set_none(d, ACTION_TRIGGER, INTX, 0, 1), ret);
        record_count(t, "A after a loopback trigger while virtually disabled", &a);
        t.step(
            "clear INTX_DISABLE with the interrupt pending",
            config_write16(d, COMMAND, cmd & !COMMAND_INTX_DISABLE),
            none,
        );
        record_count(t, "A after clearing INTX_DISABLE", &a);
        t.step("quiet the device after clearing", quiet(d, r), none);
        t.step("INTx unmask", set_none(d, ACTION_UNMASK, INTX, 0, 1), ret);
        t.step("raise TXD_LOW after unmask", raise(d, r, CAUSE_TXD_LOW), none);
        record_count(t, "A after the interrupt", &a);
        t.step("quiet the device at the end of INTx", quiet(d, r), none);
        t.step("set INTX_DISABLE with INTx off", config_write16(d, COMMAND, cmd | COMMAND_INTX_DISABLE), none);
        t.step("INTx disable", set_none(d, ACTION_TRIGGER, INTX, 0, 0), ret);
        t.step("INTx enable while virtually disabled", set_fds(d, INTX, 0, &[raw(&a)]), ret);
        t.step("raise TXD_LOW with INTx enabled while virtually disabled", raise(d, r, CAUSE_TXD_LOW), none);
        record_count(t, "A after enabling while virtually disabled", &a);
        t.step("clear INTX_DISABLE again", config_write16(d, COMMAND, cmd & !COMMAND_INTX_DISABLE), none);
        record_count(t, "A after clearing INTX_DISABLE again", &a);
        t.step("quiet the device before MSI", quiet(d, r), none);
        t.step("INTx disable again", set_none(d, ACTION_TRIGGER, INTX, 0, 0), ret);
        let msi = t.need("find the MSI capability", find_cap(&bdf, 0x05), |o, _| vec![("offset", Val::Hex(*o))])?;
        t.step("MSI flags before enabling", config_read16(d, msi + 2), |v, _| vec![("flags", Val::Hex((*v).into()))]);
        t.step("MSI enable vector 0", set_fds(d, MSI, 0, &[raw(&a)]), ret);
        t.step("MSI flags with MSI enabled", config_read16(d, msi + 2), |v, _| vec![("flags", Val::Hex((*v).into()))]);
        t.step("MSI disable", set_none(d, ACTION_TRIGGER, MSI, 0, 0), ret);
        // MSI-X vectors are programmed in a BAR: enabling them must work while the user has
        // memory decoding off.
        let b = eventfd(t, "eventfd B")?;
        let no_memory = (cmd | COMMAND_MASTER) & !COMMAND_MEMORY & !COMMAND_INTX_DISABLE;
        t.step("clear memory decode, set bus master", config_write16(d, COMMAND, no_memory), none);
        t.step("MSI-X enable 0-1 with memory decode off", set_fds(d, MSIX, 0, &[raw(&a), raw(&b)]), ret);
        t.step("set memory decode again", config_write16(d, COMMAND, no_memory | COMMAND_MEMORY), none);
        let route = msix_route(r);
        if let Some((ivar, value)) = route.ivar {
            t.step("route the other cause to vector 1 (IVAR)", bar0_write(d, ivar, value), none);
        }
        let (routed, cause) = ([&a, &b][route.vector as usize], route.cause);
        t.step("raise an MSI-X interrupt", raise(d, r, cause), none);
        record_signalled(t, "the routed vector after enabling with memory decode off", routed);
        t.step("quiet the device after MSI-X", quiet(d, r), none);
        t.step("MSI-X disable", set_none(d, ACTION_TRIGGER, MSIX, 0, 0), ret);
        Ok(())
    })
}

fn expect_irq_config_intx_disable(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    for (step, n) in [
        ("A with INTx virtually disabled", 0),
        ("A after the unmask ioctl while virtually disabled", 0),
        ("A after a loopback trigger while virtually disabled", 0),
        ("A after clearing INTX_DISABLE", 1),
        ("A after the interrupt", 1),
        ("A after enabling while virtually disabled", 0),
        ("A after clearing INTX_DISABLE again", 1),
    ] {
        e.num(step, "signals", n);
    }
    e.ok("MSI enable vector 0");
    e.ok("MSI-X enable 0-1 with memory decode off");
    e.val("the routed vector after enabling with memory decode off", "signalled", &Val::Bool(true));
    e.finish()
}
