//! The boot framebuffer a VGA-class function's bind removes, on both drivers, in boots of their
//! own (the framebuffer guests of scripts/guest.sh: `--framebuffer DRIVER`).
//!
//! These boots start in the BIOS's 640x480 16-colour mode (`vga=0x112`: the boot setup code
//! sets BIOS mode 0x12 through SeaBIOS's VGA BIOS), so the firmware's screen_info describes a
//! VGA (`VIDEO_TYPE_VGAC`) in a mode vga16fb drives: sysfb registers the platform device
//! `vga-framebuffer.0`, and vga16fb (loaded by the guest's init in these boots, as udev would
//! load it) binds it and registers `fb0` over the legacy window at 0xa0000. (The VGA text
//! console leaves 16-colour modes to vga16fb.) The bind of the boot VGA device must remove that framebuffer before the
//! driver touches the device (`aperture_remove_conflicting_pci_devices()`: sysfb's device is
//! unregistered, which unbinds vga16fb, and the VGA text console is deactivated), and the
//! framebuffer must stay gone after the unbind: nothing gives it back.
//!
//! The removal happens once per boot, so a boot runs the scenario for one driver only; the
//! harness compares the transcripts of the two boots, which the program prints as
//! `HARNESS: framebuffer` lines ([`print_transcript`]), line by line.

use crate::kunit::{kmsg_lines, log_of};
use crate::regions::{bytes, pread};
use crate::scenarios::{bind_by_override, scenario, unbind_and_check, Ctx, Scenario};
use crate::sys::Fail;
use crate::transcript::{Abort, Expect, Fields, Outcome, Transcript, Val};
use crate::uapi::*;
use crate::vga::{boot_vga, field_text, open_and, text, vga_function};
use std::fs;
use std::path::Path;

/// The platform device sysfb makes of a VGA text-mode screen_info.
const SYSFB_DEVICE: &str = "/sys/bus/platform/devices/vga-framebuffer.0";
/// The framebuffer class.
const GRAPHICS: &str = "/sys/class/graphics";
/// The VGA region, and the start of its legacy memory window (vga16fb's aperture).
const VGA_INDEX: u32 = 8;
const LEGACY_WINDOW: u64 = 0xa0000;

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "vga_boot_framebuffer",
        rule: "the boot framebuffer: before the bind, sysfb's vga-framebuffer.0 is bound to vga16fb and fb0 is \"VGA16 VGA\"; the bind of the boot VGA device removes both (and deactivates the VGA console) before the device is used; BAR0 and the legacy window then read through the device; after the unbind the framebuffer stays gone",
        loads_module: false,
        applies: vga_function,
        run: boot_framebuffer,
        expect: expect_boot_framebuffer,
    }]
}

/// sysfb's platform device and the driver bound to it, e.g. `vga-framebuffer.0 driver=vga16fb`,
/// or `none`.
fn sysfb_device() -> Result<String, Fail> {
    let dev = Path::new(SYSFB_DEVICE);
    if !dev.exists() {
        return Ok("none".into());
    }
    let driver = match fs::read_link(dev.join("driver")) {
        Ok(link) => link.file_name().map_or_else(|| "?".into(), |n| n.to_string_lossy().into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "none".into(),
        Err(e) => return Err(e.into()),
    };
    Ok(format!("vga-framebuffer.0 driver={driver}"))
}

/// The registered framebuffers and their names, e.g. `fb0=VGA16 VGA`, or `none`.
fn framebuffers() -> Result<String, Fail> {
    let mut fbs = Vec::new();
    match fs::read_dir(GRAPHICS) {
        Ok(dir) => {
            for entry in dir {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with("fb") {
                    continue;
                }
                let id = fs::read_to_string(entry.path().join("name"))?;
                fbs.push(format!("{name}={}", id.trim()));
            }
        }
        // No framebuffer was ever registered: the class has no directory.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    fbs.sort();
    Ok(if fbs.is_empty() { "none".into() } else { fbs.join(",") })
}

fn state_fields((device, fbs): &(String, String), _: &mut Transcript) -> Fields {
    vec![("sysfb device", Val::text(device.clone())), ("framebuffers", Val::text(fbs.clone()))]
}

fn record_state(t: &mut Transcript, step: &str) {
    t.step(step, sysfb_device().and_then(|d| framebuffers().map(|f| (d, f))), state_fields);
}

/// The bind's kernel log: the function's own lines (the arbiter's among them) and the messages
/// of the framebuffer's removal (vga16fb's device, fb0, sysfb), with the driver's name
/// normalised away. (Not the known upstream WARN of that removal, whose module list names the
/// loaded drivers: scripts/guest.sh reads it from the console log.)
fn bind_log(bdf: &str, lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| {
            let l = l.trim_start();
            l.contains(bdf) || ["vga16fb ", "fb0: ", "sysfb"].iter().any(|p| l.starts_with(p))
        })
        .map(|l| {
            l.replace(&format!("vfio-pci-rs {bdf}"), &format!("DRIVER {bdf}"))
                .replace(&format!("vfio-pci {bdf}"), &format!("DRIVER {bdf}"))
        })
        .map(|l| match l.find(":owns=") {
            Some(at) => l[..at].to_string(),
            None => l,
        })
        .collect()
}

fn boot_framebuffer_run(t: &mut Transcript, c: &Ctx) -> Result<(), Abort> {
    let (driver, bdf) = (c.driver, c.bdf());
    t.step("boot_vga", boot_vga(bdf), text);
    record_state(t, "framebuffer before the bind");
    let mut bound = None;
    let log = log_of(|| {
        let mut inner = Transcript::new();
        bound = Some(bind_by_override(&mut inner, driver, bdf));
        inner
    });
    let log = match log {
        Ok((inner, records)) => {
            t.append(inner);
            Outcome::Ok(vec![("log", Val::text(bind_log(bdf, &kmsg_lines(&records)).join(" | ")))])
        }
        Err(e) => Outcome::from(Fail::other(e)),
    };
    t.record("bind: log", log);
    let b = bound.ok_or(Abort)??;
    record_state(t, "framebuffer after the bind");
    let opened = open_and(t, &b.group, bdf, |t, d| {
        t.step("GET_INFO", d.get_info(argsz::<VfioDeviceInfo>()), |r, _| {
            vec![("num_regions", Val::Num(r.info.num_regions.into()))]
        });
        // BAR0 is the framebuffer's memory: the driver claims it for this read.
        t.step("read 4 bytes of BAR0", pread(d, 0, 0, 4), |v, _| vec![("len", Val::Num(v.len() as u64))]);
        t.step("read 0x3cc", pread(d, VGA_INDEX, 0x3cc, 1), bytes);
        t.step("read 4 bytes at 0xa0000", pread(d, VGA_INDEX, LEGACY_WINDOW, 4), |v, _| {
            vec![("len", Val::Num(v.len() as u64))]
        });
        Ok(())
    });
    unbind_and_check(t, bdf, &b, true);
    record_state(t, "framebuffer after the unbind");
    opened
}

fn boot_framebuffer(c: &Ctx) -> Transcript {
    scenario(|t| boot_framebuffer_run(t, c))
}

fn expect_state(t: &Transcript, step: &str, device: &str, fbs: &str, problems: &mut Vec<String>) {
    let got = (field_text(t, step, "sysfb device"), field_text(t, step, "framebuffers"));
    if got.0.as_deref() != Some(device) || got.1.as_deref() != Some(fbs) {
        problems.push(format!("{step}: expected sysfb device {device:?} and framebuffers {fbs:?}, got {got:?}"));
    }
}

fn expect_boot_framebuffer(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.num("GET_INFO", "num_regions", 9);
    e.num("read 4 bytes of BAR0", "len", 4);
    e.num("read 0x3cc", "len", 1);
    e.num("read 4 bytes at 0xa0000", "len", 4);
    e.ok("unbind");
    let mut problems = e.finish();
    if field_text(t, "boot_vga", "value").as_deref() != Some("1") {
        problems.push("the function should be the boot VGA device (boot_vga 1)".into());
    }
    expect_state(t, "framebuffer before the bind", "vga-framebuffer.0 driver=vga16fb", "fb0=VGA16 VGA", &mut problems);
    expect_state(t, "framebuffer after the bind", "none", "none", &mut problems);
    expect_state(t, "framebuffer after the unbind", "none", "none", &mut problems);
    match field_text(t, "bind: log", "log") {
        Some(log) if log.contains("vgaarb: deactivate vga console") => {}
        other => problems.push(format!("the bind should deactivate the VGA console: {other:?}")),
    }
    problems
}

/// Print `t` for the harness's comparison of the two boots.
pub fn print_transcript(t: &Transcript) {
    for line in t.render() {
        println!("HARNESS: framebuffer {line}");
    }
}
