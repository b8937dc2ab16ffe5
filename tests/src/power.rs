//! Scenarios for runtime power management, as the PCI core reports it in
//! sysfs (`power_state`, `power/runtime_status`, `power/runtime_usage`):
//! a bound function nobody uses is runtime-suspended to D3hot, resumed for
//! open, for every ioctl and read/write, and suspended again after the last
//! close; LOW_POWER_ENTRY (with and without a wakeup eventfd) and
//! LOW_POWER_EXIT move it for real, BAR mmaps SIGBUS meanwhile; resets work
//! from there; `disable_idle_d3` keeps idle functions in D0; a PF stays
//! resumed while it has VFs.
//!
//! Suspends are asynchronous (the PM core queues them): every step that
//! expects one polls `runtime_status` with a bounded timeout first. Resumes
//! are synchronous, so the steps after them read sysfs at once. Nothing here
//! reads the function's config space through sysfs while it matters: that
//! resumes it.

use crate::driver::{Driver, REFERENCE_MODULE, RUST_MODULE};
use crate::features::{feature, FEATURE_SET};
use crate::interrupts::{
    config_read16, config_write16, find_cap, interrupt_topologies, quiet, raise, registers, set_fds, set_none,
    take_count, ACTION_MASK, ACTION_TRIGGER, ACTION_UNMASK, CAUSE_TXD_LOW, INTX,
};
use crate::regions::{in_group, single_known_function};
use crate::scenarios::{bind_by_override, none, scenario, unbind_and_check, Ctx, Scenario, Site};
use crate::sys::{Errno, Fail, Mmio};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Fields, Transcript, Val};
use crate::vfio::Device;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

const FEATURE_GET: u32 = 1 << 16;
const FEATURE_PROBE: u32 = 1 << 18;
const LOW_POWER_ENTRY: u32 = 3;
const LOW_POWER_ENTRY_WITH_WAKEUP: u32 = 4;
const LOW_POWER_EXIT: u32 = 5;
const CAP_ID_PM: u8 = 0x01;
/// How long a queued runtime suspend may take to show in sysfs.
const SUSPEND_TIMEOUT: Duration = Duration::from_secs(5);

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "runtime_pm_open_close",
            rule: "runtime PM: a bound, unopened function is runtime-suspended (D3hot, usage 0); opening its device resumes it and holds one reference (D0, active, usage 1) across ioctls and reads; the last close lets it suspend again; unbinding leaves it active in D0",
            loads_module: false,
            applies: single_known_function,
            run: runtime_pm_open_close,
            expect: expect_runtime_pm_open_close,
        },
        Scenario {
            name: "runtime_pm_low_power",
            rule: "LOW_POWER_ENTRY gives up the open's reference: the function suspends to D3hot (usage 0) when the ioctl ends; a BAR mmap then SIGBUSes (checked in a child), while config reads, ioctls, VFIO_DEVICE_RESET and a hot reset resume it for their duration and let it suspend again; entry twice is EINVAL; LOW_POWER_EXIT brings it back (D0, usage 1, the mapping works); a close in low power leaves it suspended",
            loads_module: false,
            applies: single_known_function,
            run: runtime_pm_low_power,
            expect: expect_runtime_pm_low_power,
        },
        Scenario {
            name: "runtime_pm_wakeup",
            rule: "LOW_POWER_ENTRY_WITH_WAKEUP: bad payloads (short argsz, GET, fd -1, a closed fd, not an eventfd) are refused as vfio-pci refuses them and change nothing; with an eventfd the function suspends, an mmap fault does not wake it (SIGBUS, no signal), a config read or an ioctl does: the eventfd is signalled once and the function leaves low power (usage 1), so a second entry succeeds; an entry with wakeup in plain low power is EINVAL; a close in low power does not signal",
            loads_module: false,
            applies: single_known_function,
            run: runtime_pm_wakeup,
            expect: expect_runtime_pm_wakeup,
        },
        Scenario {
            name: "runtime_pm_intx",
            rule: "INTx across a low power cycle: INTx in use is masked while the function is suspended and unmasked at resume, so a device interrupt after LOW_POWER_EXIT is delivered; INTx the user masked stays masked (the interrupt is delivered at the user's unmask)",
            loads_module: false,
            applies: interrupt_topologies,
            run: runtime_pm_intx,
            expect: expect_runtime_pm_intx,
        },
        Scenario {
            name: "runtime_pm_disable_idle_d3",
            rule: "disable_idle_d3 (bool, mode 0644, N by default): a function bound while it is set stays active in D0 with the probe's reference (usage 1), opened or not, also after the parameter is cleared (it is latched at bind); LOW_POWER_ENTRY still suspends it and LOW_POWER_EXIT resumes it",
            loads_module: false,
            applies: single_known_function,
            run: runtime_pm_disable_idle_d3,
            expect: expect_runtime_pm_disable_idle_d3,
        },
        Scenario {
            name: "runtime_pm_user_d3hot_reset",
            rule: "a function user space put in D3hot through PMCSR (runtime PM still active) is brought back to D0 by VFIO_DEVICE_RESET and by a hot reset",
            loads_module: false,
            applies: single_known_function,
            run: runtime_pm_user_d3hot_reset,
            expect: expect_runtime_pm_user_d3hot_reset,
        },
        Scenario {
            name: "runtime_pm_sriov_pf",
            rule: "a PF with VFs holds a runtime-PM reference: enabling VFs resumes the suspended PF (D0, usage 1) and its VFs, bound to the same driver, suspend while idle; removing the VFs lets the PF suspend again",
            loads_module: false,
            applies: sriov_pf,
            run: runtime_pm_sriov_pf,
            expect: expect_runtime_pm_sriov_pf,
        },
    ]
}

fn sriov_pf(site: &Site) -> Result<(), String> {
    match &site.functions[..] {
        [pf] if sysfs::is_pf(pf) => Ok(()),
        _ => Err("runs on a single SR-IOV physical function".into()),
    }
}

// ------------------------------------------------------------- plumbing

/// A function's power as sysfs shows it.
struct Pm {
    state: String,
    status: String,
    usage: u64,
}

fn read_attr(bdf: &str, attr: &str) -> Result<String, Fail> {
    Ok(fs::read_to_string(sysfs::device_dir(bdf).join(attr))?.trim().to_string())
}

fn runtime_status(bdf: &str) -> String {
    read_attr(bdf, "power/runtime_status").unwrap_or_default()
}

fn pm(bdf: &str) -> Result<Pm, Fail> {
    let usage = read_attr(bdf, "power/runtime_usage")?;
    Ok(Pm {
        state: sysfs::power_state(bdf)?,
        status: read_attr(bdf, "power/runtime_status")?,
        usage: usage.parse().map_err(|_| Fail::other(format!("runtime_usage {usage:?}")))?,
    })
}

fn pm_fields(p: &Pm, _: &mut Transcript) -> Fields {
    vec![
        ("power_state", Val::text(p.state.as_str())),
        ("runtime_status", Val::text(p.status.as_str())),
        ("runtime_usage", Val::Num(p.usage)),
    ]
}

/// Record the power of `bdf` now (after a synchronous resume).
fn now(t: &mut Transcript, step: &str, bdf: &str) {
    t.step(step, pm(bdf), pm_fields);
}

/// Wait (bounded) for `bdf` to be runtime-suspended, then record its power.
fn suspended(t: &mut Transcript, step: &str, bdf: &str) {
    sysfs::wait_until(SUSPEND_TIMEOUT, || runtime_status(bdf) == "suspended");
    now(t, step, bdf);
}

/// Expect the power fields of `step`.
fn want(e: &mut Expect, step: &str, state: &str, status: &str, usage: u64) {
    e.val(step, "power_state", &Val::text(state));
    e.val(step, "runtime_status", &Val::text(status));
    e.num(step, "runtime_usage", usage);
}

fn want_suspended(e: &mut Expect, step: &str) {
    want(e, step, "D3hot", "suspended", 0);
}

fn want_open(e: &mut Expect, step: &str) {
    want(e, step, "D0", "active", 1);
}

fn ret(v: &i32, _: &mut Transcript) -> Fields {
    vec![("ret", Val::Num(*v as u64))]
}

fn enter(d: &Device) -> Result<i32, Fail> {
    feature(d, LOW_POWER_ENTRY | FEATURE_SET, &[])
}

fn exit(d: &Device) -> Result<i32, Fail> {
    feature(d, LOW_POWER_EXIT | FEATURE_SET, &[])
}

/// The LOW_POWER_ENTRY_WITH_WAKEUP payload for `fd` (with its padding).
fn wakeup_payload(fd: i32) -> Vec<u8> {
    let mut data = fd.to_ne_bytes().to_vec();
    data.extend_from_slice(&[0; 4]);
    data
}

fn enter_wakeup(d: &Device, fd: i32) -> Result<i32, Fail> {
    feature(d, LOW_POWER_ENTRY_WITH_WAKEUP | FEATURE_SET, &wakeup_payload(fd))
}

/// A non-blocking eventfd, so that reading an unsignalled counter is EAGAIN.
fn nonblocking_eventfd() -> Result<OwnedFd, Errno> {
    // SAFETY: eventfd(2) takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a new fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn counter(v: &u64, _: &mut Transcript) -> Fields {
    vec![("counter", Val::Num(*v))]
}

/// Read config space (the vendor ID) through the device file.
fn config_read(d: &Device) -> Result<u16, Fail> {
    config_read16(d, 0)
}

fn value16(v: &u16, _: &mut Transcript) -> Fields {
    vec![("value", Val::Hex((*v).into()))]
}

/// How a child that read `offset` of `map` ended: "exit 0" or "signal N".
fn touch_in_child(map: &Mmio, offset: usize) -> Result<String, Fail> {
    // SAFETY: the child only does one volatile read of the mapping, which it
    // inherited, and _exit(2): nothing that needs the parent's other threads.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Fail::Os(Errno::last()));
    }
    if pid == 0 {
        let _ = map.read32(offset);
        // SAFETY: ends the child at once, running no destructors or atexit handlers.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` outlives the call.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(Fail::Os(Errno::last()));
    }
    if libc::WIFSIGNALED(status) {
        Ok(format!("signal {}", libc::WTERMSIG(status)))
    } else {
        Ok(format!("exit {}", libc::WEXITSTATUS(status)))
    }
}

fn ended(s: &String, _: &mut Transcript) -> Fields {
    vec![("ended", Val::text(s.as_str()))]
}

// ---------------------------------------------------------- open / close

fn runtime_pm_open_close(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let r = in_group(t, driver, bdf, |t, group| {
            suspended(t, "idle after bind", bdf);
            let d = t.need("open device", group.get_device_fd(bdf), none)?;
            now(t, "open", bdf);
            t.step("GET_INFO", d.get_info(256).map(drop), none);
            now(t, "after an ioctl", bdf);
            t.step("config read", config_read(&d), value16);
            now(t, "after a config read", bdf);
            drop(d);
            suspended(t, "after the last close", bdf);
            let d = t.need("open device again", group.get_device_fd(bdf), none)?;
            now(t, "open again", bdf);
            drop(d);
            suspended(t, "after the second close", bdf);
            Ok(())
        });
        now(t, "after unbind", bdf);
        r
    })
}

fn expect_runtime_pm_open_close(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    want_suspended(&mut e, "idle after bind");
    want_open(&mut e, "open");
    want_open(&mut e, "after an ioctl");
    e.ok("config read");
    want_open(&mut e, "after a config read");
    want_suspended(&mut e, "after the last close");
    want_open(&mut e, "open again");
    want_suspended(&mut e, "after the second close");
    e.val("after unbind", "power_state", &Val::text("D0"));
    e.val("after unbind", "runtime_status", &Val::text("active"));
    e.finish()
}

// ------------------------------------------------------------- low power

fn runtime_pm_low_power(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        in_group(t, driver, bdf, |t, group| {
            let d = t.need("open device", group.get_device_fd(bdf), none)?;
            let map = t.need("mmap BAR0", Mmio::map_at(&d, 0, 4096, true).map_err(Fail::Os), none)?;
            t.step("child reads the mapping before the entry", touch_in_child(&map, 0x8), ended);
            t.step("LOW_POWER_ENTRY", enter(&d), ret);
            suspended(t, "in low power", bdf);
            t.step("child reads the mapping in low power", touch_in_child(&map, 0x8), ended);
            suspended(t, "after the mmap fault", bdf);
            t.step("config read in low power", config_read(&d), value16);
            suspended(t, "suspended again after the config read", bdf);
            t.step("GET_INFO in low power", d.get_info(256).map(drop), none);
            suspended(t, "suspended again after the ioctl", bdf);
            t.step("LOW_POWER_ENTRY again", enter(&d), ret);
            suspended(t, "after the second entry", bdf);
            t.step("VFIO_DEVICE_RESET in low power", d.reset(), none);
            suspended(t, "suspended again after VFIO_DEVICE_RESET", bdf);
            t.step("hot reset in low power", d.hot_reset_groups(&[group.raw_fd()]), none);
            suspended(t, "suspended again after the hot reset", bdf);
            t.step("LOW_POWER_EXIT", exit(&d), ret);
            now(t, "after the exit", bdf);
            t.step("child reads the mapping after the exit", touch_in_child(&map, 0x8), ended);
            t.step("LOW_POWER_EXIT again", exit(&d), ret);
            now(t, "after the second exit", bdf);
            t.step("LOW_POWER_ENTRY before the close", enter(&d), ret);
            suspended(t, "in low power before the close", bdf);
            drop(map);
            drop(d);
            suspended(t, "closed in low power", bdf);
            Ok(())
        })
    })
}

fn expect_runtime_pm_low_power(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.val("child reads the mapping before the entry", "ended", &Val::text("exit 0"));
    e.num("LOW_POWER_ENTRY", "ret", 0);
    want_suspended(&mut e, "in low power");
    e.val("child reads the mapping in low power", "ended", &Val::text(format!("signal {}", libc::SIGBUS)));
    want_suspended(&mut e, "after the mmap fault");
    e.ok("config read in low power");
    want_suspended(&mut e, "suspended again after the config read");
    e.ok("GET_INFO in low power");
    want_suspended(&mut e, "suspended again after the ioctl");
    e.err("LOW_POWER_ENTRY again", Errno::EINVAL);
    want_suspended(&mut e, "after the second entry");
    e.ok("VFIO_DEVICE_RESET in low power");
    want_suspended(&mut e, "suspended again after VFIO_DEVICE_RESET");
    want_suspended(&mut e, "suspended again after the hot reset");
    e.num("LOW_POWER_EXIT", "ret", 0);
    want_open(&mut e, "after the exit");
    e.val("child reads the mapping after the exit", "ended", &Val::text("exit 0"));
    e.num("LOW_POWER_EXIT again", "ret", 0);
    want_open(&mut e, "after the second exit");
    want_suspended(&mut e, "in low power before the close");
    want_suspended(&mut e, "closed in low power");
    e.finish()
}

// ---------------------------------------------------------------- wakeup

fn runtime_pm_wakeup(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        in_group(t, driver, bdf, |t, group| {
            let d = t.need("open device", group.get_device_fd(bdf), none)?;
            let efd = t.need("eventfd", nonblocking_eventfd().map_err(Fail::Os), none)?;
            let fd = efd.as_raw_fd();
            let w = LOW_POWER_ENTRY_WITH_WAKEUP;
            t.step("PROBE|SET", feature(&d, w | FEATURE_PROBE | FEATURE_SET, &[]), ret);
            t.step("short argsz", feature(&d, w | FEATURE_SET, &wakeup_payload(fd)[..3]), ret);
            t.step("GET", feature(&d, w | FEATURE_GET, &wakeup_payload(fd)), ret);
            t.step("GET|SET", feature(&d, w | FEATURE_GET | FEATURE_SET, &wakeup_payload(fd)), ret);
            t.step("no GET or SET", feature(&d, w, &wakeup_payload(fd)), ret);
            t.step("fd -1", enter_wakeup(&d, -1), ret);
            let closed = t.need("a closed fd", nonblocking_eventfd().map_err(Fail::Os), none)?;
            let closed_fd = closed.as_raw_fd();
            drop(closed);
            t.step("closed fd", enter_wakeup(&d, closed_fd), ret);
            if let Some(null) = t.step("open /dev/null", fs::File::open("/dev/null").map_err(Fail::from), none) {
                t.step("not an eventfd", enter_wakeup(&d, null.as_raw_fd()), ret);
            }
            now(t, "after the refused entries", bdf);

            t.step("entry", enter_wakeup(&d, fd), ret);
            suspended(t, "in low power", bdf);
            t.step("counter before any access", crate::sys::read_u64(&efd), counter);
            t.step("config read wakes", config_read(&d), value16);
            t.step("counter after the config read", crate::sys::read_u64(&efd), counter);
            now(t, "after the wakeup", bdf);
            t.step("LOW_POWER_EXIT after the wakeup", exit(&d), ret);
            now(t, "after the exit", bdf);

            t.step("entry before an ioctl", enter_wakeup(&d, fd), ret);
            suspended(t, "in low power before the ioctl", bdf);
            t.step("GET_INFO wakes", d.get_info(256).map(drop), none);
            t.step("counter after the ioctl", crate::sys::read_u64(&efd), counter);
            now(t, "after the ioctl wakeup", bdf);

            let map = t.need("mmap BAR0", Mmio::map_at(&d, 0, 4096, true).map_err(Fail::Os), none)?;
            t.step("entry before the mmap fault", enter_wakeup(&d, fd), ret);
            suspended(t, "in low power before the mmap fault", bdf);
            t.step("child reads the mapping", touch_in_child(&map, 0x8), ended);
            t.step("counter after the mmap fault", crate::sys::read_u64(&efd), counter);
            suspended(t, "after the mmap fault", bdf);
            t.step("config read after the fault", config_read(&d), value16);
            t.step("counter after the config read following the fault", crate::sys::read_u64(&efd), counter);
            now(t, "woken after the fault", bdf);
            drop(map);

            t.step("plain entry", enter(&d), ret);
            suspended(t, "in plain low power", bdf);
            t.step("entry with wakeup in plain low power", enter_wakeup(&d, fd), ret);
            t.step("counter after the refused entry", crate::sys::read_u64(&efd), counter);
            t.step("exit from plain low power", exit(&d), ret);
            now(t, "after the plain exit", bdf);

            t.step("entry before the close", enter_wakeup(&d, fd), ret);
            suspended(t, "in low power before the second entry", bdf);
            t.step("entry again in low power", enter_wakeup(&d, fd), ret);
            t.step("counter after the second entry", crate::sys::read_u64(&efd), counter);
            suspended(t, "in low power before the close", bdf);
            drop(d);
            suspended(t, "closed in low power", bdf);
            t.step("counter after the close", crate::sys::read_u64(&efd), counter);
            Ok(())
        })
    })
}

fn expect_runtime_pm_wakeup(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.num("PROBE|SET", "ret", 0);
    e.err("short argsz", Errno::EINVAL);
    e.err("GET", Errno::EINVAL);
    e.err("GET|SET", Errno::EINVAL);
    e.err("no GET or SET", Errno::EINVAL);
    e.err("fd -1", Errno::EINVAL);
    e.err("closed fd", Errno::EBADF);
    e.err("not an eventfd", Errno::EINVAL);
    want_open(&mut e, "after the refused entries");
    e.num("entry", "ret", 0);
    want_suspended(&mut e, "in low power");
    e.err("counter before any access", Errno::EAGAIN);
    e.ok("config read wakes");
    e.num("counter after the config read", "counter", 1);
    want_open(&mut e, "after the wakeup");
    e.num("LOW_POWER_EXIT after the wakeup", "ret", 0);
    want_open(&mut e, "after the exit");
    want_suspended(&mut e, "in low power before the ioctl");
    e.ok("GET_INFO wakes");
    e.num("counter after the ioctl", "counter", 1);
    want_open(&mut e, "after the ioctl wakeup");
    want_suspended(&mut e, "in low power before the mmap fault");
    e.val("child reads the mapping", "ended", &Val::text(format!("signal {}", libc::SIGBUS)));
    e.err("counter after the mmap fault", Errno::EAGAIN);
    want_suspended(&mut e, "after the mmap fault");
    e.num("counter after the config read following the fault", "counter", 1);
    want_open(&mut e, "woken after the fault");
    want_suspended(&mut e, "in plain low power");
    e.err("entry with wakeup in plain low power", Errno::EINVAL);
    e.err("counter after the refused entry", Errno::EAGAIN);
    want_open(&mut e, "after the plain exit");
    want_suspended(&mut e, "in low power before the second entry");
    // The ioctl resumes the function first, which signals and ends the first entry.
    e.num("entry again in low power", "ret", 0);
    e.num("counter after the second entry", "counter", 1);
    want_suspended(&mut e, "in low power before the close");
    want_suspended(&mut e, "closed in low power");
    e.err("counter after the close", Errno::EAGAIN);
    e.finish()
}

// ------------------------------------------------------------------ INTx

/// How long a step waits for a device interrupt (it goes through QEMU).
const SIGNAL_WAIT: Duration = Duration::from_millis(300);

fn signals(n: &u64, _: &mut Transcript) -> Fields {
    vec![("signals", Val::Num(*n))]
}

fn runtime_pm_intx(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        in_group(t, driver, bdf, |t, group| {
            let d = t.need("open device", group.get_device_fd(bdf), none)?;
            let r = registers(bdf).ok_or(Abort)?;
            let a = t.need("eventfd", crate::sys::new_eventfd().map_err(Fail::Os), none)?;
            t.need("quiet the device", quiet(&d, r), none)?;
            t.need("INTx enable", set_fds(&d, INTX, 0, &[a.as_raw_fd()]), ret)?;
            t.step("signals after enable", take_count(&a, SIGNAL_WAIT), signals);
            for (label, user_masked) in [("unmasked", false), ("masked by the user", true)] {
                if user_masked {
                    t.step("user mask", set_none(&d, ACTION_MASK, INTX, 0, 1), ret);
                }
                t.step(&format!("LOW_POWER_ENTRY ({label})"), enter(&d), ret);
                suspended(t, &format!("in low power ({label})"), bdf);
                t.step(&format!("LOW_POWER_EXIT ({label})"), exit(&d), ret);
                t.step(&format!("raise TXD_LOW ({label})"), raise(&d, r, CAUSE_TXD_LOW), none);
                t.step(&format!("signals after the interrupt ({label})"), take_count(&a, SIGNAL_WAIT), signals);
                t.step(&format!("unmask ({label})"), set_none(&d, ACTION_UNMASK, INTX, 0, 1), ret);
                t.step(&format!("signals after the unmask ({label})"), take_count(&a, SIGNAL_WAIT), signals);
                t.step(&format!("quiet the device ({label})"), quiet(&d, r), none);
                t.step(&format!("unmask with nothing pending ({label})"), set_none(&d, ACTION_UNMASK, INTX, 0, 1), ret);
            }
            t.step("INTx disable", set_none(&d, ACTION_TRIGGER, INTX, 0, 0), ret);
            Ok(())
        })
    })
}

fn expect_runtime_pm_intx(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.num("signals after enable", "signals", 0);
    want_suspended(&mut e, "in low power (unmasked)");
    e.num("signals after the interrupt (unmasked)", "signals", 1);
    e.num("signals after the unmask (unmasked)", "signals", 1);
    want_suspended(&mut e, "in low power (masked by the user)");
    e.num("signals after the interrupt (masked by the user)", "signals", 0);
    e.num("signals after the unmask (masked by the user)", "signals", 1);
    e.ok("INTx disable");
    e.finish()
}

// ------------------------------------------------------- disable_idle_d3

fn idle_d3_param(driver: &Driver) -> PathBuf {
    let module = if driver.is_reference() { REFERENCE_MODULE } else { RUST_MODULE };
    PathBuf::from("/sys/module").join(module).join("parameters").join("disable_idle_d3")
}

/// Clears `disable_idle_d3` when dropped: the C vfio-pci stays loaded across scenarios.
struct ClearIdleD3(PathBuf);

impl Drop for ClearIdleD3 {
    fn drop(&mut self) {
        let _ = fs::write(&self.0, "0");
    }
}

fn runtime_pm_disable_idle_d3(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    let param = idle_d3_param(driver);
    scenario(|t| {
        let mode = fs::metadata(&param).map(|m| m.permissions().mode() & 0o777).map_err(Fail::from);
        t.step("disable_idle_d3 mode", mode, |m, _| vec![("mode", Val::Hex((*m).into()))]);
        t.step("disable_idle_d3 default", fs::read_to_string(&param).map_err(Fail::from), |v, _| {
            vec![("value", Val::text(v.trim()))]
        });
        let _clear = ClearIdleD3(param.clone());
        t.need("write disable_idle_d3=1", sysfs::write_attr(&param, "1"), none)?;
        in_group(t, driver, bdf, |t, group| {
            now(t, "idle after bind", bdf);
            let d = t.need("open device", group.get_device_fd(bdf), none)?;
            now(t, "open", bdf);
            t.step("LOW_POWER_ENTRY", enter(&d), ret);
            suspended(t, "in low power", bdf);
            t.step("LOW_POWER_EXIT", exit(&d), ret);
            now(t, "after the exit", bdf);
            t.step("write disable_idle_d3=0 while bound", sysfs::write_attr(&param, "0"), none);
            drop(d);
            now(t, "after the close", bdf);
            Ok(())
        })
    })
}

fn expect_runtime_pm_disable_idle_d3(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.num("disable_idle_d3 mode", "mode", 0o644);
    e.val("disable_idle_d3 default", "value", &Val::text("N"));
    want(&mut e, "idle after bind", "D0", "active", 1);
    want(&mut e, "open", "D0", "active", 1);
    e.num("LOW_POWER_ENTRY", "ret", 0);
    want_suspended(&mut e, "in low power");
    want(&mut e, "after the exit", "D0", "active", 1);
    want(&mut e, "after the close", "D0", "active", 1);
    e.finish()
}

// --------------------------------------------------- resets from D3hot

fn runtime_pm_user_d3hot_reset(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        // Read before the bind: a sysfs config read resumes the function.
        let pm_cap = t.need("PM capability", find_cap(bdf, CAP_ID_PM), |_, _| Vec::new())?;
        let pmcsr = pm_cap + 4;
        in_group(t, driver, bdf, |t, group| {
            let d = t.need("open device", group.get_device_fd(bdf), none)?;
            let v = t.need("PMCSR", config_read16(&d, pmcsr), value16)?;
            for (label, reset) in [("VFIO_DEVICE_RESET", false), ("hot reset", true)] {
                t.step(&format!("write PMCSR D3hot before {label}"), config_write16(&d, pmcsr, (v & !3) | 3), none);
                now(t, &format!("in D3hot before {label}"), bdf);
                let r = if reset { d.hot_reset_groups(&[group.raw_fd()]) } else { d.reset() };
                t.step(label, r, none);
                now(t, &format!("after {label}"), bdf);
                t.step(&format!("PMCSR after {label}"), config_read16(&d, pmcsr), value16);
            }
            Ok(())
        })
    })
}

fn expect_runtime_pm_user_d3hot_reset(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    for label in ["VFIO_DEVICE_RESET", "hot reset"] {
        want(&mut e, &format!("in D3hot before {label}"), "D3hot", "active", 1);
        e.ok(label);
        want(&mut e, &format!("after {label}"), "D0", "active", 1);
    }
    e.finish()
}

// ------------------------------------------------------------ PF with VFs

fn runtime_pm_sriov_pf(c: &Ctx) -> Transcript {
    let (driver, pf) = (c.driver, c.bdf());
    scenario(|t| {
        t.need("enable_sriov=1", driver.set_enable_sriov(true), none)?;
        let b = bind_by_override(t, driver, pf);
        let r = b.map(|b| {
            suspended(t, "PF idle", pf);
            if t.step("write sriov_numvfs 1", sysfs::set_sriov_numvfs(pf, 1), none).is_some() {
                now(t, "PF with a VF", pf);
                let vf = sysfs::virtfns(pf).into_iter().next();
                let vf = t.step("the VF", vf.ok_or_else(|| Fail::other("no virtfn0")), none);
                if let Some(vf) = vf {
                    sysfs::wait_until(sysfs::SETTLE, || sysfs::current_driver(&vf).is_ok());
                    suspended(t, "VF idle", &vf);
                    now(t, "PF while its VF is idle", pf);
                }
                t.step("write sriov_numvfs 0", sysfs::set_sriov_numvfs(pf, 0), none);
                suspended(t, "PF idle without VFs", pf);
            }
            unbind_and_check(t, pf, &b, true);
        });
        t.step("enable_sriov=0", driver.set_enable_sriov(false), none);
        r
    })
}

fn expect_runtime_pm_sriov_pf(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    want_suspended(&mut e, "PF idle");
    e.ok("write sriov_numvfs 1");
    want(&mut e, "PF with a VF", "D0", "active", 1);
    e.val("VF idle", "runtime_status", &Val::text("suspended"));
    e.num("VF idle", "runtime_usage", 0);
    want(&mut e, "PF while its VF is idle", "D0", "active", 1);
    e.ok("write sriov_numvfs 0");
    want_suspended(&mut e, "PF idle without VFs");
    e.finish()
}
