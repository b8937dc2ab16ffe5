//! D3hot scenarios: user space puts the function in D3hot through PMCSR in
//! the config region, then resets it (VFIO_DEVICE_RESET or PCI_HOT_RESET,
//! group and cdev paths) or closes it.
//!
//! vfio-pci brings the function back to D0 through its power-state wrapper
//! before each of these: a function without No_Soft_Reset gets back the
//! state saved when it entered D3hot, BAR access works again at once, and
//! the close tears the interrupts down only once the function is in D0 (so
//! the PCI core really clears the MSI and MSI-X messages it programmed:
//! it does not touch a function outside D0).  They run on the single
//! functions behind a bridge whose registers the suite knows (e1000e of
//! "slot" and "switch", igb of "sriov"); the interrupt ones on "slot" and
//! "sriov".

use crate::interrupts::{
    config_read16, config_write16, find_cap, interrupt_topologies, set_fds, set_none, ACTION_TRIGGER, MSIX,
};
use crate::regions::{msix_table, single_known_function};
use crate::reset::{bind_site, cdev_bound, group_device, iommufd, legacy, unbind_site, Member};
use crate::scenarios::{none, scenario, Ctx, Scenario};
use crate::sys::{new_eventfd, ChildTouch, Errno, Fail, Mmio};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Fields, Outcome, Transcript, Val};
use crate::vfio::Device;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "d3hot_reset_bar_access",
            rule: "a function put in D3hot through PMCSR refuses BAR read/write (EIO) and mmap access (SIGBUS); a VFIO_DEVICE_RESET or PCI_HOT_RESET (group and cdev paths) brings it back to D0, after which BAR read/write, the mapping and the ROM answer again",
            loads_module: false,
            applies: single_known_function,
            run: d3hot_reset_bar_access,
            expect: expect_d3hot_reset_bar_access,
        },
        Scenario {
            name: "d3hot_reset_config_state",
            rule: "a reset from D3hot first restores a No_Soft_Reset- function to the state saved when it entered D3hot: cache line size and the command register's I/O and SERR bits read as before D3hot, not as written since (a No_Soft_Reset+ function keeps what was written); BAR, mapping and ROM access then follow the memory bit last written",
            loads_module: false,
            applies: single_known_function,
            run: d3hot_reset_config_state,
            expect: expect_d3hot_reset_config_state,
        },
        Scenario {
            name: "d3hot_close_msi",
            rule: "closing a function left in D3hot with MSI enabled brings it to D0 before MSI is torn down: the message the PCI core programmed is cleared (address 0 in the function and, after reopening, in the virtual MSI capability)",
            loads_module: false,
            applies: interrupt_topologies,
            run: d3hot_close_msi,
            expect: expect_d3hot_close_msi,
        },
        Scenario {
            name: "d3hot_close_msix_order",
            rule: "the last close goes to D0 before it tears interrupts down (vfio_pci_core_disable's order): MSI-X vectors enabled when user space left the function in D3hot are cleared in the MSI-X table (address and data 0) once it is closed, as a reopen's mapping of the table shows",
            loads_module: false,
            applies: interrupt_topologies,
            run: d3hot_close_msix_order,
            expect: expect_d3hot_close_msix_order,
        },
    ]
}

// ----------------------------------------------------------------- helpers

/// File offset of a region.
fn region(index: u32) -> u64 {
    u64::from(index) << 40
}

const ROM_INDEX: u32 = 6;
const COMMAND: u64 = 0x04;
const CACHE_LINE_SIZE: u64 = 0x0c;
const CMD_IO: u16 = 0x1;
const CMD_MEMORY: u16 = 0x2;
const CMD_SERR: u16 = 0x100;
const PM_CTRL_NO_SOFT_RESET: u16 = 0x8;
const CAP_ID_PM: u8 = 0x01;
const CAP_ID_MSI: u8 = 0x05;
const MSI: u32 = 1;

/// A read(2) of `len` bytes of BAR0 at `offset`: how many came back.
fn bar0_read(d: &Device, offset: u64, len: usize) -> Result<usize, Fail> {
    let mut buf = vec![0u8; len];
    Ok(d.file().read_at(&mut buf, region(0) + offset)?)
}

/// A write(2) of 4 bytes to BAR0 at `offset`.
fn bar0_write(d: &Device, offset: u64, value: u32) -> Result<usize, Fail> {
    Ok(d.file().write_at(&value.to_le_bytes(), region(0) + offset)?)
}

/// The first 4 bytes of the ROM.
fn rom_read(d: &Device) -> Result<Vec<u8>, Fail> {
    let mut buf = vec![0u8; 4];
    let n = d.file().read_at(&mut buf, region(ROM_INDEX))?;
    buf.truncate(n);
    Ok(buf)
}

fn config_read(d: &Device, offset: u64, len: usize) -> Result<Vec<u8>, Fail> {
    let mut buf = vec![0u8; len];
    d.file().read_exact_at(&mut buf, region(7) + offset)?;
    Ok(buf)
}

fn config_write8(d: &Device, offset: u64, value: u8) -> Result<(), Fail> {
    d.file().write_all_at(&[value], region(7) + offset)?;
    Ok(())
}

fn count(n: &usize, _: &mut Transcript) -> Fields {
    vec![("count", Val::Num(*n as u64))]
}

fn bytes(b: &Vec<u8>, _: &mut Transcript) -> Fields {
    vec![("bytes", Val::Bytes(b.clone()))]
}

fn value16(v: &u16, _: &mut Transcript) -> Fields {
    vec![("value", Val::Hex((*v).into()))]
}

fn touch(r: &ChildTouch, _: &mut Transcript) -> Fields {
    let what = match r {
        ChildTouch::Read => "read".to_string(),
        ChildTouch::Signal(libc::SIGBUS) => "SIGBUS".to_string(),
        ChildTouch::Signal(n) => format!("signal {n}"),
        ChildTouch::Exit(n) => format!("exit {n}"),
    };
    vec![("access", Val::text(what))]
}

fn state(s: &String, _: &mut Transcript) -> Fields {
    vec![("state", Val::text(s.clone()))]
}

/// A reset of the function: VFIO_DEVICE_RESET, or PCI_HOT_RESET with the
/// group fd (group path) or the zero-length array (cdev path).
#[derive(Clone, Copy)]
enum Reset {
    Device,
    Hot,
}

/// The four ways of resetting, with their step-name prefixes.
const VARIANTS: [(Reset, bool, &str); 4] = [
    (Reset::Device, false, "DEVICE_RESET, group path: "),
    (Reset::Device, true, "DEVICE_RESET, cdev path: "),
    (Reset::Hot, false, "PCI_HOT_RESET, group path: "),
    (Reset::Hot, true, "PCI_HOT_RESET, cdev path: "),
];

/// Opens the site's only function on the group or cdev path, runs `body`
/// with the device and what resets it, and closes it.
fn with_device(
    t: &mut Transcript,
    p: &str,
    a: &Member,
    cdev: bool,
    body: impl FnOnce(&mut Transcript, &Device, &dyn Fn(Reset) -> Result<(), Errno>) -> Result<(), Abort>,
) -> Result<(), Abort> {
    if cdev {
        let ictx = iommufd(t, &format!("{p}open /dev/iommu"))?;
        let d = cdev_bound(t, p, a, &ictx, "ictx1")?;
        let reset = |r: Reset| match r {
            Reset::Device => d.reset(),
            Reset::Hot => d.hot_reset_groups(&[]),
        };
        body(t, &d, &reset)
    } else {
        let lg = legacy(t, p, &[a])?;
        let d = group_device(t, p, &lg, a)?;
        let fds = lg.all_fds();
        let reset = |r: Reset| match r {
            Reset::Device => d.reset(),
            Reset::Hot => d.hot_reset_groups(&fds),
        };
        body(t, &d, &reset)
    }
}

fn reset_name(r: Reset) -> &'static str {
    match r {
        Reset::Device => "VFIO_DEVICE_RESET",
        Reset::Hot => "VFIO_DEVICE_PCI_HOT_RESET",
    }
}

// ------------------------------------------------------- BAR access after

fn d3hot_reset_bar_access(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_site(t, c)?;
        let a = &set[0];
        let mark = sysfs::model_of(&a.bdf).ok_or(Abort)?.mark.0 as u64;
        let pm = t.need("find PM", find_cap(&a.bdf, CAP_ID_PM), |p, _| vec![("offset", Val::Hex(*p))])?;
        for (kind, cdev, p) in VARIANTS {
            let _ = with_device(t, p, a, cdev, |t, d, reset| {
                let map = t.need(&format!("{p}mmap BAR0"), Mmio::map_at(d, 0, 4096, true).map_err(Fail::Os), none)?;
                t.step(&format!("{p}BAR0 read in D0"), bar0_read(d, 0x8, 4), count);
                t.step(&format!("{p}BAR0 mapping in D0"), map.read32_in_child(0x8), touch);
                t.step(&format!("{p}ROM read in D0"), rom_read(d), bytes);
                let pmcsr = t.need(&format!("{p}PMCSR"), config_read16(d, pm + 4), value16)?;
                t.step(&format!("{p}write PMCSR D3hot"), config_write16(d, pm + 4, (pmcsr & !3) | 3), none);
                t.step(&format!("{p}power_state in D3hot"), sysfs::power_state(&a.bdf), state);
                t.step(&format!("{p}BAR0 read in D3hot"), bar0_read(d, 0x8, 4), count);
                t.step(&format!("{p}BAR0 write in D3hot"), bar0_write(d, mark, 0), count);
                t.step(&format!("{p}BAR0 mapping in D3hot"), map.read32_in_child(0x8), touch);
                t.step(&format!("{p}ROM read in D3hot"), rom_read(d), bytes);
                t.step(&format!("{p}{} from D3hot", reset_name(kind)), reset(kind).map_err(Fail::Os), none);
                t.step(&format!("{p}power_state after the reset"), sysfs::power_state(&a.bdf), state);
                t.step(&format!("{p}PMCSR after the reset"), config_read16(d, pm + 4), |v, _| {
                    vec![("state", Val::Num(u64::from(*v & 3)))]
                });
                t.step(&format!("{p}BAR0 read after the reset"), bar0_read(d, 0x8, 4), count);
                t.step(&format!("{p}BAR0 write after the reset"), bar0_write(d, mark, 0), count);
                t.step(&format!("{p}BAR0 mapping after the reset"), map.read32_in_child(0x8), touch);
                t.step(&format!("{p}ROM read after the reset"), rom_read(d), bytes);
                Ok(())
            });
        }
        unbind_site(t, &set);
        Ok(())
    })
}

fn expect_d3hot_reset_bar_access(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    let mut more = Vec::new();
    e.ok("find PM");
    let read = Val::text("read");
    for (kind, _, p) in VARIANTS {
        e.num(&format!("{p}BAR0 read in D0"), "count", 4);
        e.val(&format!("{p}BAR0 mapping in D0"), "access", &read);
        e.val(&format!("{p}power_state in D3hot"), "state", &Val::text("D3hot"));
        e.err(&format!("{p}BAR0 read in D3hot"), Errno::EIO);
        e.err(&format!("{p}BAR0 write in D3hot"), Errno::EIO);
        e.val(&format!("{p}BAR0 mapping in D3hot"), "access", &Val::text("SIGBUS"));
        e.ok(&format!("{p}{} from D3hot", reset_name(kind)));
        e.val(&format!("{p}power_state after the reset"), "state", &Val::text("D0"));
        e.num(&format!("{p}PMCSR after the reset"), "state", 0);
        e.num(&format!("{p}BAR0 read after the reset"), "count", 4);
        e.num(&format!("{p}BAR0 write after the reset"), "count", 4);
        e.val(&format!("{p}BAR0 mapping after the reset"), "access", &read);
        // The ROM answers after the reset as it did before D3hot.
        if let (Some(before), Some(after)) =
            (t.find(&format!("{p}ROM read in D0")), t.find(&format!("{p}ROM read after the reset")))
        {
            if before != after {
                more.push(format!("{p}the ROM read after the reset ({after}) differs from before D3hot ({before})"));
            }
        }
    }
    let mut failures = e.finish();
    failures.extend(more);
    failures
}

// ---------------------------------------------------- config state after

/// Cache line sizes written before and after entering D3hot.
const CLS_BEFORE: u8 = 0x10;
const CLS_IN_D3: u8 = 0x20;

fn d3hot_reset_config_state(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_site(t, c)?;
        let a = &set[0];
        let pm = t.need("find PM", find_cap(&a.bdf, CAP_ID_PM), |p, _| vec![("offset", Val::Hex(*p))])?;
        for (kind, cdev, p) in VARIANTS {
            let _ = with_device(t, p, a, cdev, |t, d, reset| {
                let map = t.need(&format!("{p}mmap BAR0"), Mmio::map_at(d, 0, 4096, true).map_err(Fail::Os), none)?;
                let cmd = t.need(&format!("{p}command"), config_read16(d, COMMAND), value16)?;
                let on = cmd | CMD_MEMORY | CMD_IO | CMD_SERR;
                t.step(
                    &format!("{p}write cache line size before D3hot"),
                    config_write8(d, CACHE_LINE_SIZE, CLS_BEFORE),
                    none,
                );
                t.step(&format!("{p}write command I/O, memory, SERR on"), config_write16(d, COMMAND, on), none);
                t.step(&format!("{p}header before D3hot"), config_read(d, 0, 64), bytes);
                let pmcsr = t.need(&format!("{p}PMCSR"), config_read16(d, pm + 4), value16)?;
                t.step(&format!("{p}write PMCSR D3hot"), config_write16(d, pm + 4, (pmcsr & !3) | 3), none);
                t.step(
                    &format!("{p}write cache line size in D3hot"),
                    config_write8(d, CACHE_LINE_SIZE, CLS_IN_D3),
                    none,
                );
                let off = on & !(CMD_MEMORY | CMD_IO | CMD_SERR);
                t.step(
                    &format!("{p}write command I/O, memory, SERR off in D3hot"),
                    config_write16(d, COMMAND, off),
                    none,
                );
                t.step(&format!("{p}header in D3hot"), config_read(d, 0, 64), bytes);
                t.step(&format!("{p}{} from D3hot", reset_name(kind)), reset(kind).map_err(Fail::Os), none);
                t.step(&format!("{p}header after the reset"), config_read(d, 0, 64), |b, _| {
                    vec![
                        ("bytes", Val::Bytes(b.clone())),
                        ("cache line size", Val::Hex(b[CACHE_LINE_SIZE as usize].into())),
                        ("command", Val::Hex(u16::from_le_bytes([b[4], b[5]]).into())),
                    ]
                });
                t.step(&format!("{p}PM capability after the reset"), config_read(d, pm, 8), bytes);
                t.step(&format!("{p}BAR0 read after the reset"), bar0_read(d, 0x8, 4), count);
                t.step(&format!("{p}BAR0 mapping after the reset"), map.read32_in_child(0x8), touch);
                t.step(&format!("{p}ROM read after the reset"), rom_read(d), bytes);
                t.step(&format!("{p}write command memory on again"), config_write16(d, COMMAND, on), none);
                t.step(&format!("{p}BAR0 read with memory on again"), bar0_read(d, 0x8, 4), count);
                t.step(&format!("{p}BAR0 mapping with memory on again"), map.read32_in_child(0x8), touch);
                t.step(&format!("{p}ROM read with memory on again"), rom_read(d), bytes);
                Ok(())
            });
        }
        unbind_site(t, &set);
        Ok(())
    })
}

fn expect_d3hot_reset_config_state(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    let mut more = Vec::new();
    for (kind, _, p) in VARIANTS {
        e.ok(&format!("{p}{} from D3hot", reset_name(kind)));
        let Some(pmcsr) = t.find(&format!("{p}PMCSR")).and_then(|o| o.field("value")).and_then(Val::as_u64) else {
            continue;
        };
        let restores = pmcsr as u16 & PM_CTRL_NO_SOFT_RESET == 0;
        let Some(cmd) = t.find(&format!("{p}command")).and_then(|o| o.field("value")).and_then(Val::as_u64) else {
            continue;
        };
        let on = cmd as u16 | CMD_MEMORY | CMD_IO | CMD_SERR;
        let (cls, command) =
            if restores { (CLS_BEFORE, on) } else { (CLS_IN_D3, on & !(CMD_MEMORY | CMD_IO | CMD_SERR)) };
        let header = format!("{p}header after the reset");
        e.num(&header, "cache line size", cls.into());
        // Only the bits written are compared: the function may change others.
        let written = CMD_MEMORY | CMD_IO | CMD_SERR;
        if let Some(got) = t.find(&header).and_then(|o| o.field("command")).and_then(Val::as_u64) {
            if got as u16 & written != command & written {
                more.push(format!(
                    "'{header}': expected command I/O, memory and SERR bits {:#x}, got command={got:#x}",
                    command & written
                ));
            }
        }
        // The memory bit last written (off) decides BAR access, whatever the
        // function's command register says.
        e.err(&format!("{p}BAR0 read after the reset"), Errno::EIO);
        e.val(&format!("{p}BAR0 mapping after the reset"), "access", &Val::text("SIGBUS"));
        e.num(&format!("{p}BAR0 read with memory on again"), "count", 4);
        e.val(&format!("{p}BAR0 mapping with memory on again"), "access", &Val::text("read"));
    }
    let mut failures = e.finish();
    failures.extend(more);
    failures
}

// --------------------------------------------------------- close with MSI

/// The MSI capability's message address (low, high) and data of the function
/// as the host sees it (sysfs config).
fn physical_msi(bdf: &str) -> Result<(u32, u32, u16, u16), Fail> {
    let cfg = std::fs::read(sysfs::device_dir(bdf).join("config"))?;
    let msi = find_cap(bdf, CAP_ID_MSI)? as usize;
    let u16_at = |o: usize| u16::from_le_bytes([cfg[o], cfg[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(cfg[o..o + 4].try_into().expect("4 bytes"));
    let flags = u16_at(msi + 2);
    let is_64 = flags & 0x80 != 0;
    let hi = if is_64 { u32_at(msi + 8) } else { 0 };
    let data = u16_at(msi + if is_64 { 12 } else { 8 });
    Ok((u32_at(msi + 4), hi, data, flags))
}

fn msi_fields(m: &(u32, u32, u16, u16), _: &mut Transcript) -> Fields {
    // The address names the interrupt remapping entry, which may differ
    // between drivers: recorded as zero or not.
    vec![
        ("address zero", Val::Bool(m.0 == 0 && m.1 == 0)),
        ("data zero", Val::Bool(m.2 == 0)),
        ("enabled", Val::Bool(m.3 & 1 != 0)),
    ]
}

/// The virtual MSI capability's address (low, high) and data, through the
/// config region.
fn virtual_msi(d: &Device, msi: u64) -> Result<Vec<u8>, Fail> {
    config_read(d, msi, 16)
}

fn d3hot_close_msi(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_site(t, c)?;
        let a = &set[0];
        let pm = t.need("find PM", find_cap(&a.bdf, CAP_ID_PM), |p, _| vec![("offset", Val::Hex(*p))])?;
        let msi = t.need("find MSI", find_cap(&a.bdf, CAP_ID_MSI), |p, _| vec![("offset", Val::Hex(*p))])?;
        let efd = t.need("eventfd", new_eventfd().map_err(Fail::Os), none)?;
        let lg = legacy(t, "", &[a])?;
        {
            let d = group_device(t, "first open: ", &lg, a)?;
            t.step("virtual MSI capability at open", virtual_msi(&d, msi), bytes);
            t.need("MSI enable", set_fds(&d, MSI, 0, &[efd.as_raw_fd()]), none)?;
            t.step("physical MSI with MSI enabled", physical_msi(&a.bdf), msi_fields);
            let pmcsr = t.need("PMCSR", config_read16(&d, pm + 4), value16)?;
            t.step("write PMCSR D3hot", config_write16(&d, pm + 4, (pmcsr & !3) | 3), none);
            t.step("power_state in D3hot", sysfs::power_state(&a.bdf), state);
        }
        t.record("close with MSI enabled, in D3hot", Outcome::Ok(Vec::new()));
        t.step("physical MSI after the close", physical_msi(&a.bdf), msi_fields);
        {
            let d = group_device(t, "second open: ", &lg, a)?;
            t.step("virtual MSI capability after reopening", virtual_msi(&d, msi), bytes);
            t.step("MSI enable after reopening", set_fds(&d, MSI, 0, &[efd.as_raw_fd()]), none);
            t.step("MSI disable", set_none(&d, ACTION_TRIGGER, MSI, 0, 0), none);
        }
        drop(lg);
        unbind_site(t, &set);
        Ok(())
    })
}

fn expect_d3hot_close_msi(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    let mut more = Vec::new();
    e.val("physical MSI with MSI enabled", "address zero", &Val::Bool(false));
    e.val("physical MSI with MSI enabled", "enabled", &Val::Bool(true));
    e.val("power_state in D3hot", "state", &Val::text("D3hot"));
    e.val("physical MSI after the close", "address zero", &Val::Bool(true));
    e.val("physical MSI after the close", "enabled", &Val::Bool(false));
    if let Some(Val::Bytes(b)) = t.find("virtual MSI capability after reopening").and_then(|o| o.field("bytes")) {
        if b[4..12].iter().any(|&x| x != 0) {
            more.push(format!("the virtual MSI address after reopening is not 0: {}", Val::Bytes(b[4..12].to_vec())));
        }
    } else {
        e.ok("virtual MSI capability after reopening");
    }
    e.ok("MSI enable after reopening");
    let mut failures = e.finish();
    failures.extend(more);
    failures
}

// ------------------------------------------------------- close with MSI-X

fn d3hot_close_msix_order(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_site(t, c)?;
        let a = &set[0];
        let pm = t.need("find PM", find_cap(&a.bdf, CAP_ID_PM), |p, _| vec![("offset", Val::Hex(*p))])?;
        let (bar, table, _) = t.need(
            "find the MSI-X table",
            msix_table(&a.bdf).and_then(|m| m.ok_or_else(|| Fail::other("no MSI-X"))),
            |(bar, off, _), _| vec![("bar", Val::Num((*bar).into())), ("offset", Val::Hex(*off))],
        )?;
        let page = table & !0xfff;
        let at = (table - page) as usize;
        let e0 = t.need("eventfd 0", new_eventfd().map_err(Fail::Os), none)?;
        let e1 = t.need("eventfd 1", new_eventfd().map_err(Fail::Os), none)?;
        let lg = legacy(t, "", &[a])?;
        let entries = |map: &Mmio| -> Result<Vec<u8>, Fail> {
            let mut v = Vec::new();
            for i in 0..8 {
                let w = map.read32(at + 4 * i).ok_or_else(|| Fail::other("outside the mapping"))?;
                v.extend(w.to_le_bytes());
            }
            Ok(v)
        };
        // Address (low, high) and data of vectors 0 and 1, as zero or not
        // (the address names an interrupt remapping entry), and their masks.
        let table_fields = |b: &Vec<u8>, _: &mut Transcript| -> Fields {
            let word = |i: usize| u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().expect("4 bytes"));
            vec![
                ("vector 0 message zero", Val::Bool(word(0) == 0 && word(1) == 0 && word(2) == 0)),
                ("vector 0 masked", Val::Bool(word(3) & 1 != 0)),
                ("vector 1 message zero", Val::Bool(word(4) == 0 && word(5) == 0 && word(6) == 0)),
                ("vector 1 masked", Val::Bool(word(7) & 1 != 0)),
            ]
        };
        {
            let d = group_device(t, "first open: ", &lg, a)?;
            t.need("MSI-X enable 0-1", set_fds(&d, MSIX, 0, &[e0.as_raw_fd(), e1.as_raw_fd()]), none)?;
            let map = t.need(
                "mmap the MSI-X table's page",
                Mmio::map_at(&d, region(bar) + page, 4096, true).map_err(Fail::Os),
                none,
            )?;
            t.step("MSI-X table with MSI-X enabled", entries(&map), table_fields);
            drop(map);
            let pmcsr = t.need("PMCSR", config_read16(&d, pm + 4), value16)?;
            t.step("write PMCSR D3hot", config_write16(&d, pm + 4, (pmcsr & !3) | 3), none);
            t.step("power_state in D3hot", sysfs::power_state(&a.bdf), state);
        }
        t.record("close with MSI-X enabled, in D3hot", Outcome::Ok(Vec::new()));
        {
            let d = group_device(t, "second open: ", &lg, a)?;
            let map = t.need(
                "mmap the MSI-X table's page again",
                Mmio::map_at(&d, region(bar) + page, 4096, true).map_err(Fail::Os),
                none,
            )?;
            t.step("MSI-X table after the close", entries(&map), table_fields);
            drop(map);
            t.step("MSI-X enable after reopening", set_fds(&d, MSIX, 0, &[e0.as_raw_fd()]), none);
            t.step("MSI-X disable", set_none(&d, ACTION_TRIGGER, MSIX, 0, 0), none);
        }
        drop(lg);
        unbind_site(t, &set);
        Ok(())
    })
}

fn expect_d3hot_close_msix_order(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.val("MSI-X table with MSI-X enabled", "vector 0 message zero", &Val::Bool(false));
    e.val("MSI-X table with MSI-X enabled", "vector 1 message zero", &Val::Bool(false));
    e.val("power_state in D3hot", "state", &Val::text("D3hot"));
    e.val("MSI-X table after the close", "vector 0 message zero", &Val::Bool(true));
    e.val("MSI-X table after the close", "vector 1 message zero", &Val::Bool(true));
    e.val("MSI-X table after the close", "vector 0 masked", &Val::Bool(true));
    e.val("MSI-X table after the close", "vector 1 masked", &Val::Bool(true));
    e.ok("MSI-X enable after reopening");
    e.finish()
}
