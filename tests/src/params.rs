//! Scenarios for vfio-pci's module parameters and its denylist, on both drivers:
//!
//! - the parameter files: `nointxmask` (0644), `disable_vga` and `disable_denylist` (0444),
//!   `enable_sriov` (0644), their values, and what writing them does;
//! - `nointxmask`: latched at bind, it makes INTx masked at the interrupt controller, so the
//!   function's physical DisINTx (command register bit 10, read through sysfs) stays clear
//!   while the line is auto-masked after an interrupt; without it DisINTx masks the line;
//! - the denylist: a function reporting a denylisted ID (Intel QuickAssist DH895xCC, 8086:0435,
//!   made with the test module `pci_id_spoof`: no QEMU device can present such an ID) is
//!   refused, with vfio-pci's errno and log line; loaded with `disable_denylist=1` (the
//!   parameter is read-only, so vfio-pci is reloaded for it) the driver binds it with
//!   vfio-pci's warnings.
//!
//! They run on the "slot" topology (one e1000e behind a hotplug root port).

use crate::driver::{self, Driver, REFERENCE_MODULE, RUST_MODULE};
use crate::interrupts::{quiet, raise, registers, set_fds, set_none, take_count};
use crate::kunit::{kmsg_lines, log_of};
use crate::regions::with_group_device;
use crate::scenarios::{driver_val, none, scenario, Ctx, Scenario, Site};
use crate::sys::{new_eventfd, Errno, Fail};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Fields, Outcome, Transcript, Val};
use std::fs::{self, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const INTX: u32 = 0;
const ACTION_UNMASK: u32 = 1 << 4;
const ACTION_TRIGGER: u32 = 1 << 5;
const CAUSE_TXD_LOW: u32 = 1 << 15;
const COMMAND_INTX_DISABLE: u16 = 1 << 10;

/// The denylisted ID the spoofed function reports: PCI_DEVICE_ID_INTEL_QAT_DH895XCC.
const DENYLISTED_DEVICE: &str = "0x0435";
/// The test module that makes a function report another device ID.
const SPOOF_KO: &str = "/lib/modules/tests/pci_id_spoof.ko";
const SPOOF_MODULE: &str = "pci_id_spoof";

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "param_files",
            rule: "the module's parameters nointxmask (0644), disable_vga (0444), disable_denylist (0444), enable_sriov (0644) and disable_idle_d3 (0644) read N; nointxmask takes Y and N at run time; the read-only ones refuse a write (EACCES)",
            loads_module: false,
            applies: slot,
            run: param_files,
            expect: expect_param_files,
        },
        Scenario {
            name: "param_intx_masking_default",
            rule: "with nointxmask=0 at bind, a device INTx is auto-masked with DisINTx: the physical command register has INTX_DISABLE set until the user unmasks",
            loads_module: false,
            applies: slot,
            run: |c| intx_masking(c, false),
            expect: |c, t| expect_intx_masking(c, t, false),
        },
        Scenario {
            name: "param_nointxmask",
            rule: "with nointxmask=1 at bind, a device INTx is auto-masked at the interrupt controller: the physical INTX_DISABLE stays clear; signals, masking and unmasking are as without it",
            loads_module: false,
            applies: slot,
            run: |c| intx_masking(c, true),
            expect: |c, t| expect_intx_masking(c, t, true),
        },
        Scenario {
            name: "param_no_autobind",
            rule: "the driver's override-only ID table (its vfio_pci: alias) binds nothing by itself: a function removed and found again by a rescan while the driver is loaded, or probed with drivers_probe, stays unbound; new_id with driver_data other than the table's 0 is EINVAL, with 0 it binds",
            loads_module: false,
            applies: slot,
            run: param_no_autobind,
            expect: expect_param_no_autobind,
        },
        Scenario {
            name: "param_denylist",
            rule: "a function with a denylisted ID (8086:0435) is refused by bind and drivers_probe with EINVAL and the log line '8086:0435 exists in vfio-pci device denylist, driver probing disallowed.'; loaded with disable_denylist=1 the driver warns 'device denylist disabled.' and binds it with 'device denylist disabled - allowing device 8086:0435.'",
            loads_module: true,
            applies: slot,
            run: param_denylist,
            expect: expect_param_denylist,
        },
    ]
}

/// The scenarios run on the slot topology's e1000e.
fn slot(site: &Site) -> Result<(), String> {
    match &site.functions[..] {
        [f] if sysfs::model_of(f).is_some_and(|m| m.native_driver == "e1000e") && registers(f).is_some() => {
            let port = fs::canonicalize(sysfs::device_dir(f)).map_err(|e| format!("{f}: {e}"))?;
            let port = port.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("");
            if port == "0000:00:02.0" {
                return Ok(());
            }
            Err("the parameter scenarios run on the slot topology".into())
        }
        _ => Err("the parameter scenarios run on the slot topology's single e1000e".into()),
    }
}

fn module_of(driver: &Driver) -> &'static str {
    if driver.is_reference() {
        REFERENCE_MODULE
    } else {
        RUST_MODULE
    }
}

fn param_path(driver: &Driver, name: &str) -> PathBuf {
    Path::new("/sys/module").join(module_of(driver)).join("parameters").join(name)
}

fn read_param(driver: &Driver, name: &str) -> Result<String, Fail> {
    Ok(fs::read_to_string(param_path(driver, name))?.trim().to_string())
}

fn set_param(driver: &Driver, name: &str, on: bool) -> Result<(), Fail> {
    sysfs::write_attr(&param_path(driver, name), if on { "1" } else { "0" })
}

fn text(v: &String, _: &mut Transcript) -> Fields {
    vec![("value", Val::text(v.clone()))]
}

// ------------------------------------------------------------ param_files

fn param_files(c: &Ctx) -> Transcript {
    let driver = c.driver;
    scenario(|t| {
        for name in ["nointxmask", "disable_vga", "disable_denylist", "enable_sriov", "disable_idle_d3"] {
            let mode = fs::metadata(param_path(driver, name)).map(|m| m.permissions().mode() & 0o777);
            t.step(&format!("{name} mode"), mode, |m, _| vec![("mode", Val::text(format!("{m:o}")))]);
            t.step(&format!("{name} value"), read_param(driver, name), text);
        }
        t.step("write nointxmask Y", sysfs::write_attr(&param_path(driver, "nointxmask"), "Y"), none);
        t.step("nointxmask after writing Y", read_param(driver, "nointxmask"), text);
        t.step("write nointxmask N", sysfs::write_attr(&param_path(driver, "nointxmask"), "N"), none);
        t.step("nointxmask after writing N", read_param(driver, "nointxmask"), text);
        for name in ["disable_vga", "disable_denylist"] {
            t.step(&format!("write {name} 1"), set_param(driver, name, true), none);
            t.step(&format!("{name} after the write"), read_param(driver, name), text);
        }
        Ok(())
    })
}

fn expect_param_files(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    for (name, mode) in [
        ("nointxmask", "644"),
        ("disable_vga", "444"),
        ("disable_denylist", "444"),
        ("enable_sriov", "644"),
        ("disable_idle_d3", "644"),
    ] {
        e.val(&format!("{name} mode"), "mode", &Val::text(mode));
        e.val(&format!("{name} value"), "value", &Val::text("N"));
    }
    e.val("nointxmask after writing Y", "value", &Val::text("Y"));
    e.val("nointxmask after writing N", "value", &Val::text("N"));
    for name in ["disable_vga", "disable_denylist"] {
        e.err(&format!("write {name} 1"), Errno::EACCES);
        e.val(&format!("{name} after the write"), "value", &Val::text("N"));
    }
    e.finish()
}

// ----------------------------------------------------------- nointxmask

/// The physical command register, through the function's sysfs config file.
fn physical_command(bdf: &str) -> Result<u16, Fail> {
    let f = OpenOptions::new().read(true).open(sysfs::device_dir(bdf).join("config"))?;
    let mut cmd = [0u8; 2];
    f.read_exact_at(&mut cmd, 4)?;
    Ok(u16::from_le_bytes(cmd))
}

fn record_disintx(t: &mut Transcript, step: &str, bdf: &str) {
    t.step(step, physical_command(bdf), |cmd, _| vec![("INTX_DISABLE", Val::Bool(cmd & COMMAND_INTX_DISABLE != 0))]);
}

fn record_signals(t: &mut Transcript, step: &str, fd: &OwnedFd) {
    t.step(step, take_count(fd, Duration::from_millis(300)), |n, _| vec![("signals", Val::Num(*n))]);
}

fn ret(v: &i32, _: &mut Transcript) -> Fields {
    vec![("ret", Val::Num(*v as u64))]
}

fn intx_masking(c: &Ctx, nointxmask: bool) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf().to_string());
    // Latched at bind: set before with_group_device binds the function.
    let set = set_param(driver, "nointxmask", nointxmask);
    let t = with_group_device(c, |t, d| {
        t.need(&format!("nointxmask={} before the bind", u8::from(nointxmask)), set, none)?;
        let r = registers(&bdf).ok_or(Abort)?;
        let a = t.need("eventfd A", new_eventfd().map_err(Fail::Os), none)?;
        t.need("quiet the device", quiet(d, r), none)?;
        t.need("INTx enable with A", set_fds(d, INTX, 0, &[a.as_raw_fd()]), ret)?;
        // A run-time change does not reach a bound function.
        t.step("flip nointxmask after the bind", set_param(driver, "nointxmask", !nointxmask), none);
        record_disintx(t, "physical INTX_DISABLE after enable", &bdf);
        t.step("raise TXD_LOW", raise(d, r, CAUSE_TXD_LOW), none);
        record_signals(t, "A after the interrupt", &a);
        record_disintx(t, "physical INTX_DISABLE while auto-masked", &bdf);
        t.step("quiet the device (line masked)", quiet(d, r), none);
        t.step("unmask", set_none(d, ACTION_UNMASK, INTX, 0, 1), ret);
        record_disintx(t, "physical INTX_DISABLE after unmask", &bdf);
        t.step("raise TXD_LOW after unmask", raise(d, r, CAUSE_TXD_LOW), none);
        record_signals(t, "A after the second interrupt", &a);
        t.step("quiet the device at the end", quiet(d, r), none);
        t.step("INTx disable", set_none(d, ACTION_TRIGGER, INTX, 0, 0), ret);
        Ok(())
    });
    let _ = set_param(driver, "nointxmask", false);
    t
}

fn expect_intx_masking(_: &Ctx, t: &Transcript, nointxmask: bool) -> Vec<String> {
    let mut e = Expect::new(t);
    e.ok(&format!("nointxmask={} before the bind", u8::from(nointxmask)));
    e.ok("INTx enable with A");
    e.ok("flip nointxmask after the bind");
    e.val("physical INTX_DISABLE after enable", "INTX_DISABLE", &Val::Bool(false));
    e.num("A after the interrupt", "signals", 1);
    e.val("physical INTX_DISABLE while auto-masked", "INTX_DISABLE", &Val::Bool(!nointxmask));
    e.val("physical INTX_DISABLE after unmask", "INTX_DISABLE", &Val::Bool(false));
    e.num("A after the second interrupt", "signals", 1);
    e.ok("INTx disable");
    e.finish()
}

// ----------------------------------------------------- param_no_autobind

fn param_no_autobind(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf().to_string());
    scenario(|t| {
        let present = |b: &str| sysfs::exists(&sysfs::device_dir(b)).is_ok();
        t.need("remove the function", sysfs::write_attr(&sysfs::device_dir(&bdf).join("remove"), "1"), none)?;
        sysfs::wait_until(sysfs::SETTLE, || !present(&bdf));
        let bus = Path::new("/sys/class/pci_bus").join(&bdf[..7]).join("rescan");
        t.need("rescan its bus", sysfs::write_attr(&bus, "1"), none)?;
        let back = sysfs::wait_until(sysfs::SETTLE, || present(&bdf));
        t.record("function back after the rescan", Outcome::Ok(vec![("present", Val::Bool(back))]));
        // Give a wrong bind time to happen.
        std::thread::sleep(Duration::from_millis(500));
        t.step("driver link after the rescan", sysfs::current_driver(&bdf), |d, _| {
            vec![("driver", driver_val(driver, d))]
        });
        t.step("drivers_probe without driver_override", sysfs::drivers_probe(&bdf), none);
        t.step("driver link after drivers_probe", sysfs::current_driver(&bdf), |d, _| {
            vec![("driver", driver_val(driver, d))]
        });
        let id = t.need("read vendor and device", sysfs::PciId::of(&bdf), none)?;
        let new_id = sysfs::driver_dir(driver.name).join("new_id");
        let line = format!("{:04x} {:04x} ffffffff ffffffff 0 0", id.vendor, id.device);
        t.step("new_id with driver_data 1", sysfs::write_attr(&new_id, &format!("{line} 1")), none);
        t.step("driver link after new_id with driver_data 1", sysfs::current_driver(&bdf), |d, _| {
            vec![("driver", driver_val(driver, d))]
        });
        t.step("new_id with driver_data 0", sysfs::write_attr(&new_id, &format!("{line} 0")), none);
        sysfs::wait_until(sysfs::SETTLE, || sysfs::current_driver(&bdf).is_ok());
        t.step("driver link after new_id with driver_data 0", sysfs::current_driver(&bdf), |d, _| {
            vec![("driver", driver_val(driver, d))]
        });
        t.step("remove_id", sysfs::remove_id(driver.name, &id), none);
        t.step("unbind", sysfs::unbind(&bdf), none);
        Ok(())
    })
}

fn expect_param_no_autobind(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.val("function back after the rescan", "present", &Val::Bool(true));
    e.err("driver link after the rescan", Errno::ENOENT);
    e.err("driver link after drivers_probe", Errno::ENOENT);
    e.err("new_id with driver_data 1", Errno::EINVAL);
    e.err("driver link after new_id with driver_data 1", Errno::ENOENT);
    e.ok("new_id with driver_data 0");
    e.val("driver link after new_id with driver_data 0", "driver", &Val::Norm("driver under test".into()));
    e.ok("remove_id");
    e.ok("unbind");
    e.finish()
}

// -------------------------------------------------------------- denylist

/// The kernel log lines `action` printed that are about the function or the driver's
/// denylist, with the drivers' and modules' names replaced, so that both drivers' lines compare.
fn logged<T>(bdf: &str, action: impl FnOnce() -> T) -> (T, Result<Vec<String>, String>) {
    let mut out = None;
    let log = log_of(|| out = Some(action())).map(|((), records)| {
        kmsg_lines(&records)
            .into_iter()
            .filter(|l| (l.contains(bdf) && !l.contains("pci_id_spoof")) || l.contains("denylist"))
            .map(|l| {
                l.replace(&format!("vfio-pci-rs {bdf}"), &format!("DRIVER {bdf}"))
                    .replace(&format!("vfio-pci {bdf}"), &format!("DRIVER {bdf}"))
                    .replace("driver vfio-pci-rs ", "driver DRIVER ")
                    .replace("driver vfio-pci ", "driver DRIVER ")
                    .replace("vfio_pci_rs: ", "MODULE: ")
                    .replace("vfio_pci: ", "MODULE: ")
            })
            .collect()
    });
    match out {
        Some(v) => (v, log),
        None => unreachable!("log_of runs its action"),
    }
}

/// Records a step whose outcome is `result`, with the log lines it printed.
fn record_logged(t: &mut Transcript, step: &str, result: Result<(), Fail>, log: Result<Vec<String>, String>) {
    match (result, log) {
        (_, Err(e)) => t.record(step, Outcome::Broken(e)),
        (Ok(()), Ok(lines)) => t.record(step, Outcome::Ok(vec![("log", Val::text(lines.join(" | ")))])),
        (Err(Fail::Os(errno)), Ok(lines)) => {
            t.record(format!("{step}: log"), Outcome::Ok(vec![("log", Val::text(lines.join(" | ")))]));
            t.record(step, Outcome::Err(errno))
        }
        (Err(f), Ok(_)) => t.record(step, f.into()),
    };
}

/// (Re)loads the driver with `params`: the module under test is inserted; the resident
/// vfio-pci is removed and modprobed again (its disable_denylist is read-only).
pub(crate) fn load_with(driver: &Driver, params: &str) -> Result<(), Fail> {
    if !driver.is_reference() {
        return driver.load(params);
    }
    driver::rmmod(REFERENCE_MODULE)?;
    let mut cmd = Command::new("modprobe");
    cmd.arg(REFERENCE_MODULE);
    if !params.is_empty() {
        cmd.arg(params);
    }
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(Fail::other(format!("modprobe {REFERENCE_MODULE} {params}: {s}"))),
        Err(e) => Err(Fail::other(format!("modprobe: {e}"))),
    }
}

fn param_denylist(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf().to_string());
    scenario(|t| {
        t.need(
            "load pci_id_spoof (device 0435)",
            driver::insmod(Path::new(SPOOF_KO), &format!("bdf={bdf} device={DENYLISTED_DEVICE}")),
            none,
        )?;
        let result = denylisted(t, driver, &bdf);
        t.step("unload pci_id_spoof", driver::rmmod(SPOOF_MODULE), none);
        t.step("sysfs device after the spoof", fs::read_to_string(sysfs::device_dir(&bdf).join("device")), |v, _| {
            vec![("device", Val::text(v.trim()))]
        });
        result
    })
}

fn denylisted(t: &mut Transcript, driver: &Driver, bdf: &str) -> Result<(), Abort> {
    t.step("sysfs device while spoofed", fs::read_to_string(sysfs::device_dir(bdf).join("device")), |v, _| {
        vec![("device", Val::text(v.trim()))]
    });
    if driver.is_reference() {
        t.record("load the driver", Outcome::Skipped("vfio-pci is resident".into()));
    } else {
        t.need("load the driver", driver.load(""), none)?;
    }
    t.need("write driver_override", sysfs::set_driver_override(bdf, driver.name), none)?;
    let bind = sysfs::driver_dir(driver.name).join("bind");
    let (r, log) = logged(bdf, || sysfs::write_attr(&bind, bdf));
    record_logged(t, "bind (denylisted)", r, log);
    let (r, log) = logged(bdf, || sysfs::drivers_probe(bdf));
    record_logged(t, "drivers_probe (denylisted)", r, log);
    t.step("driver link after the refusals", sysfs::current_driver(bdf), |d, _| {
        vec![("driver", driver_val(driver, d))]
    });

    // The denylist lifted: reload with disable_denylist=1 (with no driver_override set, so
    // that loading binds nothing).
    t.step("clear driver_override after the refusals", sysfs::clear_driver_override(bdf), none);
    if driver.is_reference() {
        t.record("unload the driver", Outcome::Skipped("vfio-pci is unloaded by the reload".into()));
    } else {
        t.step("unload the driver", driver.unload(), none);
    }
    let (r, log) = logged(bdf, || load_with(driver, "disable_denylist=1"));
    record_logged(t, "load with disable_denylist=1", r, log);
    let lifted = (|| {
        t.step("disable_denylist value", read_param(driver, "disable_denylist"), text);
        t.step("driver link after the load", sysfs::current_driver(bdf), |d, _| {
            vec![("driver", driver_val(driver, d))]
        });
        t.need("write driver_override again", sysfs::set_driver_override(bdf, driver.name), none)?;
        let (r, log) = logged(bdf, || sysfs::write_attr(&bind, bdf));
        record_logged(t, "bind (denylist disabled)", r, log);
        sysfs::wait_until(sysfs::SETTLE, || sysfs::current_driver(bdf).is_ok());
        t.need("driver link with the denylist disabled", sysfs::current_driver(bdf), |d, _| {
            vec![("driver", driver_val(driver, d))]
        })?;
        t.step("unbind", sysfs::unbind(bdf), none);
        Ok(())
    })();
    t.step("clear driver_override", sysfs::clear_driver_override(bdf), none);
    // Back to the load without parameters: the module under test unloaded, vfio-pci resident.
    let step = "reload without parameters (vfio-pci) or unload (vfio-pci-rs)";
    if driver.is_reference() {
        t.step(step, load_with(driver, ""), none);
    } else {
        t.step(step, driver.unload(), none);
    }
    lifted
}

/// The `log` field of a step, or of its `: log` companion for a refused one.
fn step_log(t: &Transcript, step: &str) -> Option<String> {
    let log = t.find(&format!("{step}: log")).and_then(|o| o.field("log"));
    log.or_else(|| t.find(step).and_then(|o| o.field("log"))).map(|v| v.to_string())
}

fn expect_param_denylist(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut problems = Vec::new();
    let refused = "8086:0435 exists in vfio-pci device denylist, driver probing disallowed.";
    for (step, line) in [
        ("bind (denylisted)", refused),
        ("drivers_probe (denylisted)", refused),
        ("load with disable_denylist=1", "MODULE: device denylist disabled."),
        ("bind (denylist disabled)", "device denylist disabled - allowing device 8086:0435."),
    ] {
        match step_log(t, step) {
            Some(log) if log.contains(line) => {}
            other => problems.push(format!("{step}: the log has no '{line}': {other:?}")),
        }
    }
    let mut e = Expect::new(t);
    e.val("sysfs device while spoofed", "device", &Val::text(DENYLISTED_DEVICE));
    e.err("bind (denylisted)", Errno::EINVAL);
    e.err("driver link after the refusals", Errno::ENOENT);
    e.ok("load with disable_denylist=1");
    e.val("disable_denylist value", "value", &Val::text("Y"));
    e.err("driver link after the load", Errno::ENOENT);
    e.ok("bind (denylist disabled)");
    e.val("driver link with the denylist disabled", "driver", &Val::Norm("driver under test".into()));
    e.ok("unbind");
    e.ok("unload pci_id_spoof");
    e.val("sysfs device after the spoof", "device", &Val::text("0x10d3"));
    problems.extend(e.finish());
    problems
}
