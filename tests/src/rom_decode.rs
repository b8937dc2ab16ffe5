//! Scenarios for ROM reads and memory decode: vfio-pci checks that the
//! function decodes memory before it reads the ROM only when the ROM
//! resource is a memory resource (a ROM BAR).  The platform's copy of the
//! ROM of a function without a ROM BAR (struct pci_dev's rom and romlen,
//! set by the firmware for a boot GPU) is read whatever the function
//! decodes.  A SeaBIOS guest has no such copy, so the test module
//! tests/modules/pci_rom_shadow.c gives the ivshmem of "hugebar" (which has
//! no ROM BAR) one: the first 32 KiB of its own BAR2, whose bytes the
//! scenario writes first.

use crate::driver;
use crate::regions::{get_region_info, pread, pwrite, region_fields, single_known_function, with_group_device};
use crate::scenarios::{none, Ctx, Scenario, Site};
use crate::sys::{Errno, Fail};
use crate::sysfs;
use crate::transcript::{Expect, Fields, Transcript, Val};
use std::os::unix::fs::FileExt;
use std::path::Path;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "rom_read_decode",
            rule: "the ROM of a function with a ROM BAR reads while memory decode is on; with decode off the read fails with ENOMEM before vfio-pci's decode check (EIO) can refuse it: pci_map_rom() finds no image signature in a ROM the function does not decode; the same bytes after decode is back on",
            loads_module: false,
            applies: known_function_with_rom_bar,
            run: rom_read_decode,
            expect: expect_rom_read_decode,
        },
        Scenario {
            name: "rom_read_platform_copy",
            rule: "a function without a ROM BAR but with a platform copy of a ROM has a readable ROM region of the copy's size rounded up to a power of two, whose bytes are the copy's; it reads with memory decode off too (no decode check for a ROM resource that is not memory), while its BARs are EIO",
            loads_module: false,
            applies: no_rom_bar_with_bar2,
            run: rom_read_platform_copy,
            expect: expect_rom_read_platform_copy,
        },
    ]
}

const ROM_INDEX: u32 = 6;
const REGION_INFO_SIZE: u32 = 32;
const SHADOW_KO: &str = "/lib/modules/tests/pci_rom_shadow.ko";
const SHADOW_MODULE: &str = "pci_rom_shadow";
/// The length of the platform copy: not a power of two, so that the
/// region's size shows the rounding.
const SHADOW_LEN: u64 = 0x6000;

/// `bdf`'s sysfs resource lines as (start, end, flags).
fn resources(bdf: &str) -> Vec<(u64, u64, u64)> {
    let text = std::fs::read_to_string(sysfs::device_dir(bdf).join("resource")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let f: Vec<u64> =
                l.split_whitespace().filter_map(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).ok()).collect();
            (f.first().copied().unwrap_or(0), f.get(1).copied().unwrap_or(0), f.get(2).copied().unwrap_or(0))
        })
        .collect()
}

/// A single function the suite knows (e1000e, igb) whose ROM BAR is
/// assigned (QEMU gives e1000e a ROM image, igb none).
fn known_function_with_rom_bar(site: &Site) -> Result<(), String> {
    single_known_function(site)?;
    match resources(&site.functions[0]).get(6) {
        Some(&(start, _, _)) if start != 0 => Ok(()),
        _ => Err("the function has no ROM BAR".into()),
    }
}

/// A single function with no ROM resource and a memory BAR2 of 4 to 64 MiB
/// (the ivshmem of "hugebar").
fn no_rom_bar_with_bar2(site: &Site) -> Result<(), String> {
    let [f] = &site.functions[..] else {
        return Err("runs on a single function".into());
    };
    let r = resources(f);
    const IORESOURCE_MEM: u64 = 0x200;
    match (r.get(2), r.get(6)) {
        (Some(&(s, e, fl)), Some(&(_, _, 0)))
            if fl & IORESOURCE_MEM != 0 && (4 << 20..=64 << 20).contains(&(e - s + 1)) =>
        {
            Ok(())
        }
        _ => Err("not a function without a ROM BAR and with a 4 to 64 MiB memory BAR2".into()),
    }
}

fn region_offset(index: u32) -> u64 {
    u64::from(index) << 40
}

const PCI_COMMAND: u64 = 4;
const PCI_COMMAND_MEMORY: u16 = 1 << 1;

fn set_decode(d: &crate::vfio::Device, on: bool) -> Result<(), Fail> {
    let at = region_offset(7) + PCI_COMMAND;
    let mut cmd = [0u8; 2];
    d.file().read_exact_at(&mut cmd, at)?;
    let mut cmd = u16::from_le_bytes(cmd);
    if on {
        cmd |= PCI_COMMAND_MEMORY;
    } else {
        cmd &= !PCI_COMMAND_MEMORY;
    }
    d.file().write_all_at(&cmd.to_le_bytes(), at)?;
    Ok(())
}

fn bytes(v: &Vec<u8>, _: &mut Transcript) -> Fields {
    vec![("len", Val::Num(v.len() as u64)), ("bytes", Val::Bytes(v.clone()))]
}

fn rom_read_decode(c: &Ctx) -> Transcript {
    with_group_device(c, |t, d| {
        t.step("GET_REGION_INFO ROM", get_region_info(d, ROM_INDEX, REGION_INFO_SIZE), |r, _| region_fields(r));
        t.step("read the ROM (16 bytes)", pread(d, ROM_INDEX, 0, 16), bytes);
        t.step("memory decode off", set_decode(d, false), none);
        t.step("read the ROM with decode off", pread(d, ROM_INDEX, 0, 16), bytes);
        t.step("memory decode on", set_decode(d, true), none);
        t.step("read the ROM with decode on again", pread(d, ROM_INDEX, 0, 16), bytes);
        Ok(())
    })
}

fn expect_rom_read_decode(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.ok("read the ROM (16 bytes)");
    e.ok("memory decode off");
    e.err("read the ROM with decode off", Errno(libc::ENOMEM));
    e.ok("read the ROM with decode on again");
    let mut failures = e.finish();
    let a = t.find("read the ROM (16 bytes)").and_then(|o| o.field("bytes"));
    let b = t.find("read the ROM with decode on again").and_then(|o| o.field("bytes"));
    if a != b {
        failures.push(format!("the ROM reads differently after decode off and on: {a:?} vs {b:?}"));
    }
    failures
}

fn rom_read_platform_copy(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    let bar2 = resources(&bdf).get(2).map_or(0, |r| r.0);
    let mut t = Transcript::new();
    let loaded = t.need(
        "load pci_rom_shadow (BAR2's first bytes as the copy)",
        driver::insmod(Path::new(SHADOW_KO), &format!("bdf={bdf} addr={bar2:#x} len={SHADOW_LEN:#x}")),
        none,
    );
    if loaded.is_ok() {
        t.append(with_group_device(c, |t, d| {
            let pattern: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
            t.step("write 32 bytes at BAR2 offset 0", pwrite(d, 2, 0, &pattern), |n, _| {
                vec![("count", Val::Num(*n as u64))]
            });
            t.step("write 8 bytes at BAR2 offset 0x5ff8", pwrite(d, 2, 0x5ff8, &[0xc3; 8]), |n, _| {
                vec![("count", Val::Num(*n as u64))]
            });
            t.step("GET_REGION_INFO ROM", get_region_info(d, ROM_INDEX, REGION_INFO_SIZE), |r, _| region_fields(r));
            t.step("read the ROM (32 bytes)", pread(d, ROM_INDEX, 0, 32), bytes);
            t.step("read the ROM's last copied bytes and past them", pread(d, ROM_INDEX, 0x5ff8, 16), bytes);
            t.step("read the ROM at its region's end", pread(d, ROM_INDEX, 0x8000, 4), bytes);
            t.step("memory decode off", set_decode(d, false), none);
            t.step("read BAR2 with decode off", pread(d, 2, 0, 4), bytes);
            t.step("read the ROM with decode off", pread(d, ROM_INDEX, 0, 4).map(|v| v.len()), |n, _| {
                vec![("len", Val::Num(*n as u64))]
            });
            t.step("memory decode on", set_decode(d, true), none);
            t.step("read the ROM with decode on again", pread(d, ROM_INDEX, 0, 32), bytes);
            Ok(())
        }));
        t.step("unload pci_rom_shadow", driver::rmmod(SHADOW_MODULE), none);
    }
    t
}

fn expect_rom_read_platform_copy(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    let pattern: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    e.ok("load pci_rom_shadow (BAR2's first bytes as the copy)");
    e.num("GET_REGION_INFO ROM", "size", 0x8000);
    e.num("GET_REGION_INFO ROM", "flags", 1);
    e.val("read the ROM (32 bytes)", "bytes", &Val::Bytes(pattern.clone()));
    e.val("read the ROM's last copied bytes and past them", "bytes", &Val::Bytes([[0xc3; 8], [0xff; 8]].concat()));
    e.err("read the ROM at its region's end", Errno::EINVAL);
    e.err("read BAR2 with decode off", Errno::EIO);
    e.num("read the ROM with decode off", "len", 4);
    e.val("read the ROM with decode on again", "bytes", &Val::Bytes(pattern));
    e.ok("unload pci_rom_shadow");
    e.finish()
}
