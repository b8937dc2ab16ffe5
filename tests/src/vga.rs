//! Scenarios for VGA-class functions (QEMU's `-device VGA`, the boot VGA device, behind a root
//! port: topology "vga"), on both drivers:
//!
//! - the VGA region (index 8): its region info, GET_INFO's region count, and read/write of the
//!   legacy I/O ports (0x3b0-0x3bb, 0x3c0-0x3df) and memory (0xa0000-0xbffff) with vfio-pci's
//!   clipping at the end of each range, `EINVAL` everywhere else, no mmap, and no gating by the
//!   memory decode bit;
//! - the VGA arbiter: the function's decodes and locks as `/dev/vga_arbiter` reports them before
//!   the bind, while bound, after legacy accesses and after the unbind; the kernel log of the
//!   bind, where the removal of conflicting framebuffers shows as the VGA text console being
//!   deactivated (the function is the boot VGA device, `boot_vga` 1);
//! - `disable_vga=1` (read-only, so vfio-pci is reloaded for it): no VGA region, and the
//!   function, alone below its bridge, reported to the arbiter as decoding no legacy range while
//!   bound (everything again after the unbind);
//! - the decode callback, with `disable_vga=1`: the arbiter calls it whenever a VGA function
//!   comes or goes (once it has been used), so the topology's second VGA function (behind a
//!   port of its own, bound to nothing) is removed and found again while the function is bound:
//!   alone, it decodes the legacy ranges (`single_vga`), with the other back, none;
//!
//! The VGA registers used: the miscellaneous output register (written at 0x3c2, read at 0x3cc:
//! bit 0 maps the CRT controller at 0x3d4/0x3d5 rather than 0x3b4/0x3b5), the CRT controller's
//! cursor-location registers, and the sequencer's map mask and memory mode (chain-4: each byte
//! of the 128 KiB legacy window is one byte of video memory). The open resets the function, so
//! both drivers' runs start from the same register state.

use crate::driver::Driver;
use crate::kunit::{kmsg_lines, log_of};
use crate::params::load_with;
use crate::regions::{get_region_info, pread, pwrite, region_fields, CONFIG_INDEX, REGION_INFO_SIZE};
use crate::scenarios::{bind_by_override, none, scenario, unbind_and_check, Ctx, Scenario, Site};
use crate::sys::{Errno, Fail, Mmio};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Fields, Outcome, Transcript, Val};
use crate::uapi::*;
use crate::vfio::{Container, Device, Group};
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

/// The topologies of VGA-class functions; only the VGA scenarios run on them, and they run
/// nowhere else.
pub const TOPOLOGY_PREFIX: &str = "vga";

/// Whether scenario `scenario` runs on topology `topology`.
pub fn pairs(topology: &str, scenario: &str) -> bool {
    topology.starts_with(TOPOLOGY_PREFIX) == scenario.starts_with(TOPOLOGY_PREFIX)
}

const VGA_INDEX: u32 = 8;
const REGION_SHIFT: u32 = 40;
const REGION_SIZE: u64 = 0xc0000;
const ARBITER: &str = "/dev/vga_arbiter";

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "vga_region_info",
            rule: "a VGA-class function has 9 regions (GET_INFO); the VGA region (index 8) is at 8 << 40, 0xc0000 bytes, READ|WRITE, no mmap (EINVAL); index 9 is EINVAL",
            loads_module: false,
            applies: vga_function,
            run: region_info,
            expect: expect_region_info,
        },
        Scenario {
            name: "vga_legacy_rw",
            rule: "VGA region read/write: the I/O ports 0x3b0-0x3bb and 0x3c0-0x3df and the memory 0xa0000-0xbffff reach the VGA registers and video memory (1, 2, 4-byte and split accesses), clipped at each range's end; every other offset is EINVAL; count 0 is 0; memory decode off does not gate the legacy ranges",
            loads_module: false,
            applies: vga_function,
            run: legacy_rw,
            expect: expect_legacy_rw,
        },
        Scenario {
            name: "vga_arbiter",
            rule: "the VGA arbiter: a bound VGA function with disable_vga=0 decodes the legacy ranges (/dev/vga_arbiter decodes=io+mem, count unchanged), holds no lock after legacy accesses, and decodes them after the unbind; the bind of the boot VGA device deactivates the VGA console (the conflicting framebuffers are removed)",
            loads_module: false,
            applies: vga_function,
            run: arbiter,
            expect: expect_arbiter,
        },
        Scenario {
            name: "vga_disable_vga",
            rule: "loaded with disable_vga=1: no VGA region (GET_REGION_INFO and read/write of index 8 EINVAL, still 9 regions), and a VGA function alone below its bridge is reported to the arbiter as decoding no legacy range while bound (decodes=none, logged), everything again after the unbind",
            loads_module: true,
            applies: vga_function,
            run: disable_vga,
            expect: expect_disable_vga,
        },
        Scenario {
            name: "vga_decode_callback",
            rule: "loaded with disable_vga=1, the arbiter's decode callback: a bound VGA function alone below its bridge decodes no legacy range while a second VGA function exists, both legacy ranges once that one is removed (sysfs remove: the arbiter asks the callback, single_vga) and none again when it is found again (its port's rescan), each change logged",
            loads_module: true,
            applies: vga_function,
            run: decode_callback,
            expect: expect_decode_callback,
        },
    ]
}

/// One VGA-class function (class 0x0300xx).
pub(crate) fn vga_function(site: &Site) -> Result<(), String> {
    match &site.functions[..] {
        [one] if is_vga(one) => Ok(()),
        _ => Err("the VGA scenarios run on one VGA-class function".into()),
    }
}

fn is_vga(bdf: &str) -> bool {
    fs::read_to_string(sysfs::device_dir(bdf).join("class"))
        .ok()
        .and_then(|c| sysfs::parse_hex(c.trim()).ok())
        .is_some_and(|c| c >> 8 == 0x0300)
}

fn vga_offset(offset: u64) -> u64 {
    (u64::from(VGA_INDEX) << REGION_SHIFT) + offset
}

/// Bind, set the group up, open the device, run `body`, close, unbind.
fn with_vga_device(c: &Ctx, body: impl FnOnce(&mut Transcript, &Device) -> Result<(), Abort>) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let b = bind_by_override(t, driver, bdf)?;
        let result = open_and(t, &b.group, bdf, body);
        unbind_and_check(t, bdf, &b, true);
        result
    })
}

pub(crate) fn open_and(
    t: &mut Transcript,
    group: &str,
    bdf: &str,
    body: impl FnOnce(&mut Transcript, &Device) -> Result<(), Abort>,
) -> Result<(), Abort> {
    let container = t.need("open /dev/vfio/vfio", Container::open(), none)?;
    let group = t.need("open group", Group::open(group), none)?;
    t.need("VFIO_GROUP_SET_CONTAINER", group.set_container(&container), none)?;
    t.need("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)", container.set_iommu(VFIO_TYPE1v2_IOMMU), none)?;
    let d = t.need("VFIO_GROUP_GET_DEVICE_FD", group.get_device_fd(bdf), none)?;
    body(t, &d)
}

fn bytes(v: &Vec<u8>, _: &mut Transcript) -> Fields {
    vec![("len", Val::Num(v.len() as u64)), ("bytes", Val::Bytes(v.clone()))]
}

fn count(n: &usize, _: &mut Transcript) -> Fields {
    vec![("count", Val::Num(*n as u64))]
}

fn region_info(c: &Ctx) -> Transcript {
    with_vga_device(c, |t, d| {
        t.step("GET_INFO", d.get_info(argsz::<VfioDeviceInfo>()), |r, _| {
            vec![("num_regions", Val::Num(r.info.num_regions.into())), ("flags", Val::Hex(r.info.flags.into()))]
        });
        for index in [VGA_INDEX, VGA_INDEX + 1] {
            t.step(&format!("GET_REGION_INFO index {index}"), get_region_info(d, index, REGION_INFO_SIZE), |r, _| {
                region_fields(r)
            });
        }
        t.step("mmap of the VGA region", Mmio::map_at(d, vga_offset(0xa0000), 4096, true).map(|_| ()), none);
        t.step("mmap of the VGA region at 0", Mmio::map_at(d, vga_offset(0), 4096, true).map(|_| ()), none);
        Ok(())
    })
}

fn expect_region_info(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.num("GET_INFO", "num_regions", 9);
    e.num("GET_REGION_INFO index 8", "offset", u64::from(VGA_INDEX) << REGION_SHIFT);
    e.num("GET_REGION_INFO index 8", "size", REGION_SIZE);
    e.num("GET_REGION_INFO index 8", "flags", 0x3);
    e.err("GET_REGION_INFO index 9", Errno::EINVAL);
    e.err("mmap of the VGA region", Errno::EINVAL);
    e.err("mmap of the VGA region at 0", Errno::EINVAL);
    e.finish()
}

/// The accesses of [`legacy_rw`] that must fail, by offset and length.
const REFUSED: [(u64, usize); 9] =
    [(0, 1), (0x3af, 1), (0x3bc, 1), (0x3bf, 1), (0x3e0, 1), (0x9ffff, 1), (0xc0000, 1), (0xfffff, 4), (1 << 39, 1)];

/// The video-memory pattern of [`legacy_rw`].
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add((i as u8).wrapping_mul(7))).collect()
}

fn legacy_rw(c: &Ctx) -> Transcript {
    with_vga_device(c, |t, d| {
        let vga = VGA_INDEX;
        // I/O: the miscellaneous output register, then the colour CRT controller's index and data.
        t.step("write 0x3c2 (misc output) = 0x67", pwrite(d, vga, 0x3c2, &[0x67]), count);
        t.step("read 0x3cc (misc output)", pread(d, vga, 0x3cc, 1), bytes);
        t.step("write 2 bytes at 0x3d4 (CRTC 0x0e = 0x12)", pwrite(d, vga, 0x3d4, &[0x0e, 0x12]), count);
        t.step("read 2 bytes at 0x3d4", pread(d, vga, 0x3d4, 2), bytes);
        t.step("write 0x3d4 (CRTC index 0x0f)", pwrite(d, vga, 0x3d4, &[0x0f]), count);
        t.step("write 0x3d5 (CRTC 0x0f = 0x34)", pwrite(d, vga, 0x3d5, &[0x34]), count);
        t.step("read 0x3d5", pread(d, vga, 0x3d5, 1), bytes);
        t.step("write 0x3d4 (CRTC index 0x0e)", pwrite(d, vga, 0x3d4, &[0x0e]), count);
        t.step("read 3 bytes at 0x3d3", pread(d, vga, 0x3d3, 3), bytes);
        t.step("read 4 bytes at 0x3cc", pread(d, vga, 0x3cc, 4), bytes);
        t.step("read 8 bytes at 0x3c8", pread(d, vga, 0x3c8, 8), bytes);
        // The monochrome range (not decoded in colour mode) and the clipped ends.
        t.step("read 12 bytes at 0x3b0", pread(d, vga, 0x3b0, 12), bytes);
        t.step("read 4 bytes at 0x3bb (clipped to 1)", pread(d, vga, 0x3bb, 4), bytes);
        t.step("read 4 bytes at 0x3de (clipped to 2)", pread(d, vga, 0x3de, 4), bytes);
        t.step("write 4 bytes at 0x3bb (clipped to 1)", pwrite(d, vga, 0x3bb, &[0xff; 4]), count);
        // Memory: all planes writable, chain-4 (each window byte is one video-memory byte).
        t.step("write 2 bytes at 0x3c4 (map mask 0x0f)", pwrite(d, vga, 0x3c4, &[0x02, 0x0f]), count);
        t.step("write 2 bytes at 0x3c4 (memory mode chain-4)", pwrite(d, vga, 0x3c4, &[0x04, 0x0e]), count);
        t.step("write 2 bytes at 0x3ce (GR06 = 0x01: 128 KiB at 0xa0000)", pwrite(d, vga, 0x3ce, &[0x06, 0x01]), count);
        let p = pattern(64, 0x11);
        t.step("write 64 bytes at 0xa0000", pwrite(d, vga, 0xa0000, &p), count);
        t.step("read 64 bytes at 0xa0000", pread(d, vga, 0xa0000, 64), bytes);
        t.step("write 5 bytes at 0xa1003", pwrite(d, vga, 0xa1003, &pattern(5, 0x80)), count);
        t.step("read 9 bytes at 0xa1001", pread(d, vga, 0xa1001, 9), bytes);
        t.step("write 8 bytes at 0xb8000", pwrite(d, vga, 0xb8000, &pattern(8, 0x40)), count);
        t.step("read 8 bytes at 0xb8000", pread(d, vga, 0xb8000, 8), bytes);
        t.step("write 32 bytes at 0xbfff0 (clipped to 16)", pwrite(d, vga, 0xbfff0, &pattern(32, 0x20)), count);
        t.step("read 32 bytes at 0xbfff0 (clipped to 16)", pread(d, vga, 0xbfff0, 32), bytes);
        t.step("read 4 bytes at 0xbfffe (clipped to 2)", pread(d, vga, 0xbfffe, 4), bytes);
        t.step("read 0 bytes at 0xa0000", pread(d, vga, 0xa0000, 0), bytes);
        t.step("read 0 bytes at 0 (no range)", pread(d, vga, 0, 0), bytes);
        for (offset, len) in REFUSED {
            t.step(&format!("read {len} at {offset:#x}"), pread(d, vga, offset, len), bytes);
            t.step(&format!("write {len} at {offset:#x}"), pwrite(d, vga, offset, &vec![0; len]), count);
        }
        // Memory decode off (command register, through the config region): still reachable.
        let cmd = t.step("read command", pread(d, CONFIG_INDEX, 4, 2), bytes);
        if let Some(cmd) = cmd {
            let off = u16::from_le_bytes([cmd[0], cmd[1]]) & !0x3;
            t.step("write command without IO and MEM", pwrite(d, CONFIG_INDEX, 4, &off.to_le_bytes()), count);
            t.step("read 64 bytes at 0xa0000 with decode off", pread(d, vga, 0xa0000, 64), bytes);
            t.step("read 0x3cc with decode off", pread(d, vga, 0x3cc, 1), bytes);
            t.step("restore command", pwrite(d, CONFIG_INDEX, 4, &cmd), count);
        }
        Ok(())
    })
}

fn expect_legacy_rw(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    let b = |v: &[u8]| Val::Bytes(v.to_vec());
    e.val("read 0x3cc (misc output)", "bytes", &b(&[0x67]));
    e.val("read 2 bytes at 0x3d4", "bytes", &b(&[0x0e, 0x12]));
    e.val("read 0x3d5", "bytes", &b(&[0x34]));
    e.num("read 3 bytes at 0x3d3", "len", 3);
    e.num("read 4 bytes at 0x3cc", "len", 4);
    e.num("read 8 bytes at 0x3c8", "len", 8);
    e.val("read 12 bytes at 0x3b0", "bytes", &b(&[0xff; 12]));
    e.num("read 4 bytes at 0x3bb (clipped to 1)", "len", 1);
    e.num("read 4 bytes at 0x3de (clipped to 2)", "len", 2);
    e.num("write 4 bytes at 0x3bb (clipped to 1)", "count", 1);
    e.val("read 64 bytes at 0xa0000", "bytes", &b(&pattern(64, 0x11)));
    e.num("read 9 bytes at 0xa1001", "len", 9);
    e.val("read 8 bytes at 0xb8000", "bytes", &b(&pattern(8, 0x40)));
    e.num("write 32 bytes at 0xbfff0 (clipped to 16)", "count", 16);
    e.val("read 32 bytes at 0xbfff0 (clipped to 16)", "bytes", &b(&pattern(16, 0x20)));
    e.val("read 4 bytes at 0xbfffe (clipped to 2)", "bytes", &b(&pattern(16, 0x20)[14..]));
    e.num("read 0 bytes at 0xa0000", "len", 0);
    e.num("read 0 bytes at 0 (no range)", "len", 0);
    for (offset, len) in REFUSED {
        e.err(&format!("read {len} at {offset:#x}"), Errno::EINVAL);
        e.err(&format!("write {len} at {offset:#x}"), Errno::EINVAL);
    }
    e.ok("read 64 bytes at 0xa0000 with decode off");
    e.ok("read 0x3cc with decode off");
    let mut problems = e.finish();
    // The bytes written at 0xa1003 read back inside the 9 bytes read at 0xa1001.
    if let Some(Val::Bytes(got)) = t.find("read 9 bytes at 0xa1001").and_then(|o| o.field("bytes")) {
        if got.len() == 9 && got[2..7] != pattern(5, 0x80)[..] {
            problems.push(format!("read 9 bytes at 0xa1001: bytes 2..7 should be the 5 written, got {got:02x?}"));
        }
    }
    problems
}

/// The arbiter's view of `bdf` (`/dev/vga_arbiter` targeted at it): the number of devices
/// decoding legacy ranges, what `bdf` decodes, and its locks (what it owns depends on which
/// device last had the ranges routed, so it is left out).
fn arbiter_state(bdf: &str) -> Result<String, Fail> {
    let mut f = OpenOptions::new().read(true).write(true).open(ARBITER)?;
    f.write_all(format!("target PCI:{bdf}").as_bytes())?;
    let mut buf = vec![0u8; 1024];
    let n = f.read(&mut buf)?;
    let line = String::from_utf8_lossy(&buf[..n]).trim().to_string();
    let kept: Vec<&str> = line.split(',').filter(|p| !p.starts_with("owns=")).collect();
    Ok(kept.join(","))
}

pub(crate) fn text(v: &String, _: &mut Transcript) -> Fields {
    vec![("value", Val::text(v.clone()))]
}

/// `action`'s kernel log: the lines of `bdf` and of the arbiter, with the driver's name and
/// what the function owns (which depends on earlier accesses) normalised away.
fn logged<T>(bdf: &str, action: impl FnOnce() -> T) -> (T, Result<Vec<String>, String>) {
    let mut out = None;
    let log = log_of(|| out = Some(action())).map(|((), records)| {
        kmsg_lines(&records)
            .into_iter()
            .filter(|l| l.contains(bdf) && l.contains("vgaarb"))
            .map(|l| {
                let l = l
                    .replace(&format!("vfio-pci-rs {bdf}"), &format!("DRIVER {bdf}"))
                    .replace(&format!("vfio-pci {bdf}"), &format!("DRIVER {bdf}"));
                match l.find(":owns=") {
                    Some(at) => l[..at].to_string(),
                    None => l,
                }
            })
            .collect()
    });
    (out.expect("the action ran"), log)
}

fn log_fields(log: &Result<Vec<String>, String>) -> Outcome {
    match log {
        Ok(lines) => Outcome::Ok(vec![("log", Val::text(lines.join(" | ")))]),
        Err(e) => Outcome::from(Fail::other(e.clone())),
    }
}

pub(crate) fn boot_vga(bdf: &str) -> Result<String, Fail> {
    Ok(fs::read_to_string(sysfs::device_dir(bdf).join("boot_vga"))?.trim().to_string())
}

/// The bind, the arbiter and the log around it, with VGA access as the driver was loaded.
fn arbiter_run(t: &mut Transcript, driver: &Driver, bdf: &str) -> Result<(), Abort> {
    t.step("boot_vga", boot_vga(bdf), text);
    t.step("arbiter before the bind", arbiter_state(bdf), text);
    let (b, log) = logged(bdf, || {
        let mut inner = Transcript::new();
        let b = bind_by_override(&mut inner, driver, bdf);
        (inner, b)
    });
    let (inner, b) = b;
    t.append(inner);
    t.record("bind: log", log_fields(&log));
    let b = b?;
    t.step("arbiter while bound", arbiter_state(bdf), text);
    let opened = open_and(t, &b.group, bdf, |t, d| {
        t.step("GET_INFO", d.get_info(argsz::<VfioDeviceInfo>()), |r, _| {
            vec![("num_regions", Val::Num(r.info.num_regions.into()))]
        });
        t.step("GET_REGION_INFO index 8", get_region_info(d, VGA_INDEX, REGION_INFO_SIZE), |r, _| region_fields(r));
        t.step("read 0x3cc", pread(d, VGA_INDEX, 0x3cc, 1), bytes);
        t.step("write 0x3c2", pwrite(d, VGA_INDEX, 0x3c2, &[0x67]), count);
        t.step("read 4 bytes at 0xa0000", pread(d, VGA_INDEX, 0xa0000, 4), |v, _| {
            vec![("len", Val::Num(v.len() as u64))]
        });
        t.step("arbiter after legacy accesses", arbiter_state(bdf), text);
        Ok(())
    });
    let ((), log) = logged(bdf, || unbind_and_check(t, bdf, &b, true));
    t.record("unbind: log", log_fields(&log));
    t.step("arbiter after the unbind", arbiter_state(bdf), text);
    opened
}

fn arbiter(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf().to_string());
    scenario(|t| arbiter_run(t, driver, &bdf))
}

pub(crate) fn field_text(t: &Transcript, step: &str, key: &str) -> Option<String> {
    t.find(step).and_then(|o| o.field(key)).map(|v| match v {
        Val::Text(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The `decodes=` and `count:` parts of an arbiter step.
fn decodes_of(t: &Transcript, step: &str) -> Option<(String, String)> {
    let line = field_text(t, step, "value")?;
    let part = |prefix: &str| line.split(',').find_map(|p| p.strip_prefix(prefix)).map(str::to_string);
    Some((part("count:")?, part("decodes=")?))
}

fn expect_arbiter_common(t: &Transcript, bound_decodes: &str, problems: &mut Vec<String>) {
    match field_text(t, "boot_vga", "value").as_deref() {
        Some("1") => {}
        other => problems.push(format!("boot_vga should be 1 (the boot VGA device): {other:?}")),
    }
    let before = decodes_of(t, "arbiter before the bind");
    match &before {
        Some((_, d)) if d == "io+mem" => {}
        other => problems.push(format!("before the bind the function should decode io+mem: {other:?}")),
    }
    match decodes_of(t, "arbiter while bound") {
        Some((_, d)) if d == bound_decodes => {}
        other => problems.push(format!("while bound the function should decode {bound_decodes}: {other:?}")),
    }
    match (decodes_of(t, "arbiter after the unbind"), &before) {
        (Some(after), Some(before)) if &after == before => {}
        (after, before) => {
            problems.push(format!("after the unbind the arbiter should be as before: {after:?} vs {before:?}"))
        }
    }
    match field_text(t, "bind: log", "log") {
        Some(log) if log.contains("vgaarb: deactivate vga console") => {}
        other => problems.push(format!("the bind of the boot VGA device should deactivate the VGA console: {other:?}")),
    }
}

fn expect_arbiter(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.num("GET_INFO", "num_regions", 9);
    e.num("GET_REGION_INFO index 8", "size", REGION_SIZE);
    e.num("read 0x3cc", "len", 1);
    e.num("read 4 bytes at 0xa0000", "len", 4);
    e.ok("unbind");
    let mut problems = e.finish();
    expect_arbiter_common(t, "io+mem", &mut problems);
    match field_text(t, "arbiter after legacy accesses", "value") {
        Some(v) if v.contains("locks=none(0:0)") => {}
        other => problems.push(format!("no arbiter lock may be held after the accesses: {other:?}")),
    }
    if let Some((count_before, _)) = decodes_of(t, "arbiter before the bind") {
        if decodes_of(t, "arbiter while bound").map(|(c, _)| c) != Some(count_before.clone()) {
            problems.push(format!("the count of legacy decoders should stay {count_before} while bound"));
        }
    }
    problems
}

fn disable_vga(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf().to_string());
    scenario(|t| {
        t.need("load with disable_vga=1", load_with(driver, "disable_vga=1"), none)?;
        let param = Path::new("/sys/module")
            .join(if driver.is_reference() { "vfio_pci" } else { "vfio_pci_rs" })
            .join("parameters/disable_vga");
        t.step("disable_vga value", fs::read_to_string(param).map(|s| s.trim().to_string()), text);
        let result = (|| {
            t.step("boot_vga", boot_vga(&bdf), text);
            t.step("arbiter before the bind", arbiter_state(&bdf), text);
            let (b, log) = logged(&bdf, || {
                let mut inner = Transcript::new();
                let b = bind_by_override(&mut inner, driver, &bdf);
                (inner, b)
            });
            let (inner, b) = b;
            t.append(inner);
            t.record("bind: log", log_fields(&log));
            let b = b?;
            t.step("arbiter while bound", arbiter_state(&bdf), text);
            let opened = open_and(t, &b.group, &bdf, |t, d| {
                t.step("GET_INFO", d.get_info(argsz::<VfioDeviceInfo>()), |r, _| {
                    vec![("num_regions", Val::Num(r.info.num_regions.into()))]
                });
                t.step("GET_REGION_INFO index 8", get_region_info(d, VGA_INDEX, REGION_INFO_SIZE), |r, _| {
                    region_fields(r)
                });
                t.step("read 0x3cc", pread(d, VGA_INDEX, 0x3cc, 1), bytes);
                t.step("write 0x3c2", pwrite(d, VGA_INDEX, 0x3c2, &[0x67]), count);
                t.step("read 4 bytes at 0xa0000", pread(d, VGA_INDEX, 0xa0000, 4), bytes);
                Ok(())
            });
            let ((), log) = logged(&bdf, || unbind_and_check(t, &bdf, &b, true));
            t.record("unbind: log", log_fields(&log));
            t.step("arbiter after the unbind", arbiter_state(&bdf), text);
            opened
        })();
        let step = "reload without parameters (vfio-pci) or unload (vfio-pci-rs)";
        if driver.is_reference() {
            t.step(step, load_with(driver, ""), none);
        } else {
            t.step(step, driver.unload(), none);
        }
        result
    })
}

fn expect_disable_vga(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.ok("load with disable_vga=1");
    e.val("disable_vga value", "value", &Val::text("Y"));
    e.num("GET_INFO", "num_regions", 9);
    e.err("GET_REGION_INFO index 8", Errno::EINVAL);
    e.err("read 0x3cc", Errno::EINVAL);
    e.err("write 0x3c2", Errno::EINVAL);
    e.err("read 4 bytes at 0xa0000", Errno::EINVAL);
    e.ok("unbind");
    e.ok("reload without parameters (vfio-pci) or unload (vfio-pci-rs)");
    let mut problems = e.finish();
    expect_arbiter_common(t, "none", &mut problems);
    for (step, want) in
        [("bind: log", "olddecodes=io+mem,decodes=none"), ("unbind: log", "olddecodes=none,decodes=io+mem")]
    {
        match field_text(t, step, "log") {
            Some(log) if log.contains(want) => {}
            other => problems.push(format!("{step}: the arbiter should log the change {want}: {other:?}")),
        }
    }
    problems
}

// ---- The decode callback ----

/// The other VGA-class function of the system (the `vga` topology's second `-device VGA`,
/// behind a root port of its own, bound to nothing).
fn other_vga(bdf: &str) -> Result<String, Fail> {
    let mut others = Vec::new();
    for entry in fs::read_dir("/sys/bus/pci/devices")? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let class = fs::read_to_string(sysfs::device_dir(&name).join("class"))?;
        if name != bdf && class.trim().starts_with("0x0300") {
            others.push(name);
        }
    }
    match &others[..] {
        [one] => Ok(one.clone()),
        _ => Err(Fail::other(format!("expected one other VGA function, found {others:?}"))),
    }
}

/// The sysfs directory of the bridge above `bdf`.
fn port_of(bdf: &str) -> Result<std::path::PathBuf, Fail> {
    let path = fs::canonicalize(sysfs::device_dir(bdf))?;
    path.parent().map(Path::to_path_buf).ok_or_else(|| Fail::other(format!("no bridge above {bdf}")))
}

/// Writes `what` to the sysfs file `path`.
fn sysfs_write(path: &Path, what: &str) -> Result<(), Fail> {
    fs::write(path, what)?;
    Ok(())
}

/// Makes the arbiter "used" (it calls decode callbacks only then): a lock and an unlock of the
/// legacy I/O of `bdf` through /dev/vga_arbiter, before any client of this scenario exists.
fn use_arbiter(bdf: &str) -> Result<(), Fail> {
    let mut f = OpenOptions::new().read(true).write(true).open(ARBITER)?;
    f.write_all(format!("target PCI:{bdf}").as_bytes())?;
    f.write_all(b"lock io")?;
    f.write_all(b"unlock io")?;
    Ok(())
}

/// With disable_vga=1 the decode answer depends on whether the function is the only VGA
/// function of the system; the arbiter asks again (the callback) whenever VGA functions come
/// or go. So the other VGA function is removed (sysfs `remove`) and found again (its port's
/// `rescan`) while the function is bound.
fn decode_callback(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf().to_string());
    scenario(|t| {
        let other = t.need("the other VGA function", other_vga(&bdf), text)?;
        let port = t.need("its port", port_of(&other), |p, _| vec![("value", Val::text(p.display().to_string()))])?;
        t.step("use the arbiter", use_arbiter(&bdf), none);
        t.need("load with disable_vga=1", load_with(driver, "disable_vga=1"), none)?;
        let result = (|| {
            let (b, log) = logged(&bdf, || {
                let mut inner = Transcript::new();
                let b = bind_by_override(&mut inner, driver, &bdf);
                (inner, b)
            });
            let (inner, b) = b;
            t.append(inner);
            t.record("bind: log", log_fields(&log));
            let b = b?;
            t.step("arbiter while bound", arbiter_state(&bdf), text);
            let (r, log) = logged(&bdf, || sysfs_write(&sysfs::device_dir(&other).join("remove"), "1"));
            t.step("remove the other VGA function", r, none);
            t.record("remove: log", log_fields(&log));
            t.step("arbiter while alone", arbiter_state(&bdf), text);
            let (r, log) = logged(&bdf, || sysfs_write(&port.join("rescan"), "1"));
            t.step("rescan its port", r, none);
            t.record("rescan: log", log_fields(&log));
            t.step("the other VGA function is back", Ok::<bool, Fail>(sysfs::device_dir(&other).exists()), |v, _| {
                vec![("value", Val::Bool(*v))]
            });
            t.step("arbiter with two again", arbiter_state(&bdf), text);
            let ((), log) = logged(&bdf, || unbind_and_check(t, &bdf, &b, true));
            t.record("unbind: log", log_fields(&log));
            t.step("arbiter after the unbind", arbiter_state(&bdf), text);
            Ok(())
        })();
        let step = "reload without parameters (vfio-pci) or unload (vfio-pci-rs)";
        if driver.is_reference() {
            t.step(step, load_with(driver, ""), none);
        } else {
            t.step(step, driver.unload(), none);
        }
        result
    })
}

fn expect_decode_callback(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.ok("use the arbiter");
    e.ok("remove the other VGA function");
    e.ok("rescan its port");
    e.val("the other VGA function is back", "value", &Val::Bool(true));
    e.ok("unbind");
    e.ok("reload without parameters (vfio-pci) or unload (vfio-pci-rs)");
    let mut problems = e.finish();
    for (step, want) in [
        ("arbiter while bound", "none"),
        ("arbiter while alone", "io+mem"),
        ("arbiter with two again", "none"),
        ("arbiter after the unbind", "io+mem"),
    ] {
        match decodes_of(t, step) {
            Some((_, d)) if d == want => {}
            other => problems.push(format!("{step}: the function should decode {want}: {other:?}")),
        }
    }
    for (step, want) in [
        ("bind: log", "olddecodes=io+mem,decodes=none"),
        ("remove: log", "olddecodes=none,decodes=io+mem"),
        ("rescan: log", "olddecodes=io+mem,decodes=none"),
        ("unbind: log", "olddecodes=none,decodes=io+mem"),
    ] {
        match field_text(t, step, "log") {
            Some(log) if log.contains(want) => {}
            other => problems.push(format!("{step}: the arbiter should log the change {want}: {other:?}")),
        }
    }
    problems
}
