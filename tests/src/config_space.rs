//! Config-space scenarios: what user space reads and writes through the
//! config region (region 7, at file offset 7 << 40 in vfio-pci's layout) of
//! an open device, compared byte for byte with the C vfio-pci.
//!
//! They run on the single-function topologies only ("slot": e1000e with PM,
//! MSI, PCIe, MSI-X, AER, DSN; "sriov": igb, adding ARI and SR-IOV), to keep
//! the suite fast.

use crate::scenarios::{bind_by_override, none, scenario, unbind_and_check, Ctx, Scenario, Site};
use crate::sys::{Errno, Fail};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Fields, Transcript, Val};
use crate::vfio::{Device, Iommufd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

/// File offset of the config region.
const CONFIG: u64 = 7 << 40;
/// Config space size of a PCIe function.
const PCIE_CFG_SIZE: usize = 4096;

const COMMAND: u64 = 0x04;
const STATUS: u64 = 0x06;
const BAR0: u64 = 0x10;
const ROM: u64 = 0x30;
const CAP_PTR: u64 = 0x34;
const INTX_LINE: u64 = 0x3c;
const INTX_PIN: u64 = 0x3d;

const CMD_IO: u16 = 0x1;
const CMD_MEMORY: u16 = 0x2;
const CMD_MASTER: u16 = 0x4;
const CMD_INTX_DISABLE: u16 = 0x400;

const CAP_ID_PM: u8 = 0x01;
const CAP_ID_MSI: u8 = 0x05;
const CAP_ID_EXP: u8 = 0x10;
const CAP_ID_MSIX: u8 = 0x11;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "config_read_layout",
            rule: "config region reads: the whole config space in one read equals dword, word and byte reads of it; unaligned reads split into aligned chunks; reads past the config space size fail with EFAULT",
            loads_module: false,
            applies: single_function_models,
            run: config_read_layout,
            expect: expect_config_read_layout,
        },
        Scenario {
            name: "config_bar_sizing",
            rule: "BARs are virtual: writing all ones reads back the size mask with the type flags, unimplemented BARs read 0, the ROM BAR keeps its enable bit, and writing the old value back restores it",
            loads_module: false,
            applies: single_function_models,
            run: config_bar_sizing,
            expect: expect_config_bar_sizing,
        },
        Scenario {
            name: "config_command_status",
            rule: "command register: memory, I/O and bus-master enables read back as written, INTx disable is virtual and reads back as written (word and byte writes); the status register and the interrupt pin ignore writes; the interrupt line is virtual",
            loads_module: false,
            applies: single_function_models,
            run: config_command_status,
            expect: expect_config_command_status,
        },
        Scenario {
            name: "config_capability_chains",
            rule: "the standard and extended capability chains user space walks list only the capabilities vfio-pci exposes, each read at its offset the same way",
            loads_module: false,
            applies: single_function_models,
            run: config_capability_chains,
            expect: expect_config_capability_chains,
        },
        Scenario {
            name: "config_msi_msix",
            rule: "MSI control: enable and queue size written through config space are dropped (MSI is set up by SET_IRQS); MSI address and data are virtual and read back as written; MSI-X control is read-only",
            loads_module: false,
            applies: single_function_models,
            run: config_msi_msix,
            expect: expect_config_msi_msix,
        },
        Scenario {
            name: "config_readonly_writes",
            rule: "writes to read-only registers (ids, class, capability headers, PCIe capabilities) change nothing and succeed without reading the user buffer; writes past the config space size fail with EFAULT",
            loads_module: false,
            applies: single_function_models,
            run: config_readonly_writes,
            expect: expect_config_readonly_writes,
        },
        Scenario {
            name: "config_bad_user_buffer",
            rule: "a write from an unreadable user buffer fails with EFAULT where a write handler exists (the whole header, writable capabilities), and succeeds unread on read-only capabilities (MSI-X); a read into an unwritable buffer fails with EFAULT",
            loads_module: false,
            applies: single_function_models,
            run: config_bad_user_buffer,
            expect: expect_config_bad_user_buffer,
        },
        Scenario {
            name: "config_reopen",
            rule: "the virtual config space is rebuilt at every first open: virtual registers user space changed (BARs, interrupt line, INTx disable) read as the host set them after a close and reopen",
            loads_module: false,
            applies: single_function_models,
            run: config_reopen,
            expect: expect_config_reopen,
        },
        Scenario {
            name: "config_pm_and_flr",
            rule: "PM: the power state field follows D3hot and D0 writes, PME bits are hidden; PCIe Initiate FLR resets the function and reads back 0",
            loads_module: false,
            applies: single_function_models,
            run: config_pm_and_flr,
            expect: expect_config_pm_and_flr,
        },
        Scenario {
            name: "config_concurrent_access",
            rule: "config reads and BAR reads from two threads while a third toggles INTx disable and memory decode: every config read returns one of the two command values written, every BAR read returns data or EIO (decode off), and all three finish",
            loads_module: false,
            applies: single_function_models,
            run: config_concurrent_access,
            expect: expect_config_concurrent_access,
        },
    ]
}

// ----------------------------------------------------------- applicability

/// Only the topologies whose port has a single e1000e or igb below it directly.
fn single_function_models(site: &Site) -> Result<(), String> {
    let [bdf] = &site.functions[..] else {
        return Err("config-space scenarios run on single-function topologies only".into());
    };
    let name = topology_of(bdf).ok_or("not below a port listed in the topology file")?;
    if name == "slot" || name == "sriov" {
        Ok(())
    } else {
        Err(format!("config-space scenarios run on the slot and sriov topologies only, not {name}"))
    }
}

/// The name of the topology whose port `bdf` sits directly below.
fn topology_of(bdf: &str) -> Option<String> {
    let path = std::env::var_os("VFIO_PCI_RS_TOPOLOGY")
        .map_or_else(|| sysfs::DEFAULT_TOPOLOGY.into(), std::path::PathBuf::from);
    let text = std::fs::read_to_string(path).ok()?;
    let topologies = sysfs::parse_topology(&text).ok()?;
    let real = std::fs::canonicalize(sysfs::device_dir(bdf)).ok()?;
    let parent = real.parent()?.file_name()?.to_str()?.to_string();
    topologies.into_iter().find(|t| t.port == parent).map(|t| t.name)
}

// ---------------------------------------------------------------- plumbing

/// An open device on the cdev path, with what keeps it bound.
struct Open {
    dev: Device,
    _iommufd: Iommufd,
}

impl Open {
    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, Fail> {
        let mut buf = vec![0u8; len];
        let n = self.dev.0.read_at(&mut buf, CONFIG + offset)?;
        buf.truncate(n);
        Ok(buf)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<usize, Fail> {
        Ok(self.dev.0.write_at(data, CONFIG + offset)?)
    }

    fn read16(&self, offset: u64) -> Result<u16, Fail> {
        let b = self.read(offset, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn read32(&self, offset: u64) -> Result<u32, Fail> {
        let b = self.read(offset, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn write16(&self, offset: u64, v: u16) -> Result<usize, Fail> {
        self.write(offset, &v.to_le_bytes())
    }

    fn write32(&self, offset: u64, v: u32) -> Result<usize, Fail> {
        self.write(offset, &v.to_le_bytes())
    }

    /// Offsets and ids of the standard capabilities, following the chain.
    fn caps(&self) -> Result<Vec<(u64, u8)>, Fail> {
        let mut out = Vec::new();
        let mut pos = u64::from(self.read(CAP_PTR, 1)?[0]);
        while pos != 0 && out.len() < 48 {
            let hdr = self.read(pos, 2)?;
            out.push((pos, hdr[0]));
            pos = u64::from(hdr[1]);
        }
        Ok(out)
    }

    fn cap(&self, id: u8) -> Result<Option<u64>, Fail> {
        Ok(self.caps()?.into_iter().find(|(_, i)| *i == id).map(|(p, _)| p))
    }
}

fn hex(v: impl Into<u64>) -> Val {
    Val::Hex(v.into())
}

fn bytes_field(b: &Vec<u8>, _: &mut Transcript) -> Fields {
    vec![("bytes", Val::Bytes(b.clone()))]
}

fn value16(v: &u16, _: &mut Transcript) -> Fields {
    vec![("value", hex(*v))]
}

fn value32(v: &u32, _: &mut Transcript) -> Fields {
    vec![("value", hex(*v))]
}

fn written(n: &usize, _: &mut Transcript) -> Fields {
    vec![("bytes written", Val::Num(*n as u64))]
}

/// Binds `c.bdf()` to the driver, opens it on the cdev path, runs `body`,
/// closes it and unbinds.
fn with_open(c: &Ctx, body: impl FnOnce(&mut Transcript, &Open) -> Result<(), Abort>) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let b = bind_by_override(t, driver, bdf)?;
        let opened: Result<Open, Abort> = (|| {
            let dev = t.need("open cdev", Device::open_cdev(&b.cdev), none)?;
            let iommufd = t.need("open /dev/iommu", Iommufd::open(), none)?;
            t.need("VFIO_DEVICE_BIND_IOMMUFD", dev.bind_iommufd(&iommufd), none)?;
            let ioas = t.need("IOMMU_IOAS_ALLOC", iommufd.ioas_alloc(), none)?;
            t.need("VFIO_DEVICE_ATTACH_IOMMUFD_PT", dev.attach_pt(ioas), none)?;
            Ok(Open { dev, _iommufd: iommufd })
        })();
        if let Ok(open) = opened {
            let _ = body(t, &open);
        }
        unbind_and_check(t, bdf, &b, true);
        Ok(())
    })
}

fn expect_open(e: &mut Expect) {
    e.ok("open cdev");
    e.ok("VFIO_DEVICE_BIND_IOMMUFD");
    e.ok("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
}

// ----------------------------------------------------------------- layout

fn config_read_layout(c: &Ctx) -> Transcript {
    with_open(c, |t, d| {
        let whole = t.need("read whole config space", d.read(0, PCIE_CFG_SIZE), bytes_field)?;
        for (step, width) in [("read by dwords", 4), ("read by words", 2), ("read by bytes", 1)] {
            let mut pieces = Vec::new();
            let mut result = Ok(());
            for off in (0..PCIE_CFG_SIZE).step_by(width) {
                match d.read(off as u64, width) {
                    Ok(b) => pieces.extend(b),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            t.step(step, result.map(|()| pieces), |p, _| vec![("same as whole read", Val::Bool(*p == whole))]);
        }
        for (off, len) in [(0x1, 3), (0x2, 7), (0x3d, 5), (0x33, 9), (0xfe, 4), (0xff, 2), (0x101, 3)] {
            t.step(&format!("read {len} bytes at {off:#x}"), d.read(off, len), bytes_field);
        }
        t.step("read 4 bytes at cfg_size", d.read(PCIE_CFG_SIZE as u64, 4), bytes_field);
        t.step("read 8 bytes at cfg_size - 4", d.read(PCIE_CFG_SIZE as u64 - 4, 8), bytes_field);
        t.step("read 1 byte far past cfg_size", d.read(0x10000, 1), bytes_field);
        Ok(())
    })
}

fn expect_config_read_layout(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_open(&mut e);
    e.ok("read whole config space");
    for step in ["read by dwords", "read by words", "read by bytes"] {
        e.val(step, "same as whole read", &Val::Bool(true));
    }
    e.ok("read 3 bytes at 0x1");
    e.err("read 4 bytes at cfg_size", Errno(14));
    e.err("read 8 bytes at cfg_size - 4", Errno(14));
    e.err("read 1 byte far past cfg_size", Errno(14));
    e.finish()
}

// ------------------------------------------------------------------- BARs

fn config_bar_sizing(c: &Ctx) -> Transcript {
    with_open(c, |t, d| {
        for (i, off) in (BAR0..=BAR0 + 20).step_by(4).chain([ROM]).enumerate() {
            let name = if off == ROM { "ROM".to_string() } else { format!("BAR{i}") };
            let Some(orig) = t.step(&format!("{name} read"), d.read32(off), value32) else { continue };
            t.step(&format!("{name} write all ones"), d.write32(off, u32::MAX), written);
            t.step(&format!("{name} after all ones"), d.read32(off), value32);
            t.step(&format!("{name} upper word after all ones"), d.read16(off + 2), value16);
            t.step(&format!("{name} write back"), d.write32(off, orig), written);
            t.step(&format!("{name} after write back"), d.read32(off), |v, _| {
                vec![("value", hex(*v)), ("restored", Val::Bool(*v == orig))]
            });
        }
        // Sizing with a byte write only touches that byte of the virtual BAR.
        t.step("BAR0 byte write 0xff at +3", d.write(BAR0 + 3, &[0xff]), written);
        t.step("BAR0 after byte write", d.read32(BAR0), value32);
        Ok(())
    })
}

fn expect_config_bar_sizing(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_open(&mut e);
    e.num("BAR0 write all ones", "bytes written", 4);
    e.val("BAR0 after write back", "restored", &Val::Bool(true));
    e.val("ROM after write back", "restored", &Val::Bool(true));
    // BAR0 of both models is a non-prefetchable 32-bit memory BAR of 128 KiB.
    e.num("BAR0 after all ones", "value", 0xfffe_0000);
    e.finish()
}

// ------------------------------------------------------- command & status

fn config_command_status(c: &Ctx) -> Transcript {
    with_open(c, |t, d| {
        let orig = t.need("command", d.read16(COMMAND), value16)?;
        let settings = [
            ("memory off", orig & !CMD_MEMORY),
            ("memory, I/O and master on", orig | CMD_MEMORY | CMD_IO | CMD_MASTER),
            ("INTx disable on", orig | CMD_MEMORY | CMD_INTX_DISABLE),
            ("INTx disable off", (orig | CMD_MEMORY) & !CMD_INTX_DISABLE),
        ];
        for (what, v) in settings {
            t.step(&format!("write command: {what}"), d.write16(COMMAND, v), written);
            t.step(&format!("command after {what}"), d.read16(COMMAND), value16);
        }
        t.step("byte write INTx disable (offset 5)", d.write(COMMAND + 1, &[(CMD_INTX_DISABLE >> 8) as u8]), written);
        t.step("command after byte write", d.read16(COMMAND), value16);
        t.step("dword write command+status", d.write32(COMMAND, u32::from(orig | CMD_MEMORY) | 0xffff_0000), written);
        t.step("command+status after dword write", d.read32(COMMAND), value32);
        t.step("write status all ones", d.write16(STATUS, 0xffff), written);
        t.step("status after write", d.read16(STATUS), value16);
        t.step("write interrupt line", d.write(INTX_LINE, &[0x5a]), written);
        t.step("write interrupt pin", d.write(INTX_PIN, &[0x3]), written);
        t.step("interrupt line and pin", d.read(INTX_LINE, 2), bytes_field);
        t.step("write cache line size", d.write(0x0c, &[0x10]), written);
        t.step("cache line size", d.read(0x0c, 1), bytes_field);
        t.step("restore command", d.write16(COMMAND, orig), written);
        t.step("command restored", d.read16(COMMAND), value16);
        Ok(())
    })
}

fn expect_config_command_status(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_open(&mut e);
    e.ok("command");
    if let Some(Val::Hex(orig)) = t.find("command").and_then(|o| o.field("value")).cloned() {
        let orig = orig as u16;
        let want = (orig | CMD_MEMORY | CMD_INTX_DISABLE) as u64;
        e.num("command after INTx disable on", "value", want);
        e.num("command after INTx disable off", "value", ((orig | CMD_MEMORY) & !CMD_INTX_DISABLE).into());
        e.num("command after memory off", "value", (orig & !CMD_MEMORY).into());
    }
    e.bits("command after byte write", "value", CMD_INTX_DISABLE.into());
    e.val("interrupt line and pin", "bytes", &Val::Bytes(vec![0x5a, first_pin(t)]));
    e.finish()
}

/// The interrupt pin as the whole-space read would show it is not recorded
/// here; the pin must be unchanged by the write, so 0x3 must not appear.
fn first_pin(t: &Transcript) -> u8 {
    match t.find("interrupt line and pin").and_then(|o| o.field("bytes")) {
        Some(Val::Bytes(b)) if b.len() == 2 && b[1] != 0x3 => b[1],
        _ => 0xff,
    }
}

// ---------------------------------------------------------- capabilities

fn config_capability_chains(c: &Ctx) -> Transcript {
    with_open(c, |t, d| {
        t.step("status capability-list bit", d.read16(STATUS), |s, _| vec![("set", Val::Bool(s & 0x10 != 0))]);
        let caps = t.need("standard chain", d.caps(), |caps, _| {
            caps.iter().map(|(pos, id)| ("cap", Val::Text(format!("{id:#04x}@{pos:#x}")))).collect()
        })?;
        for (pos, id) in caps {
            t.step(&format!("cap {id:#04x} first 16 bytes"), d.read(pos, 16), bytes_field);
        }
        let mut ecaps = Vec::new();
        let mut pos = 0x100u64;
        let walk: Result<(), Fail> = (|| {
            while pos >= 0x100 && ecaps.len() < 64 {
                let h = d.read32(pos)?;
                ecaps.push((pos, h));
                pos = u64::from((h >> 20) & 0xffc);
            }
            Ok(())
        })();
        t.step("extended chain", walk.map(|()| ecaps.clone()), |e, _| {
            e.iter()
                .map(|(pos, h)| ("ecap", Val::Text(format!("{:#06x} v{}@{pos:#x}", h & 0xffff, (h >> 16) & 0xf))))
                .collect()
        });
        for (pos, h) in ecaps {
            t.step(&format!("ecap {:#06x}@{pos:#x} first 16 bytes", h & 0xffff), d.read(pos, 16), bytes_field);
        }
        Ok(())
    })
}

fn expect_config_capability_chains(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_open(&mut e);
    e.val("status capability-list bit", "set", &Val::Bool(true));
    e.ok("standard chain");
    e.ok("extended chain");
    let mut out = e.finish();
    if let Some(crate::transcript::Outcome::Ok(fields)) = t.find("standard chain") {
        let ids: Vec<String> = fields.iter().map(|(_, v)| v.to_string()).collect();
        for want in [CAP_ID_PM, CAP_ID_MSI, CAP_ID_EXP, CAP_ID_MSIX] {
            if !ids.iter().any(|s| s.starts_with(&format!("\"{want:#04x}@"))) {
                out.push(format!("standard chain lacks capability {want:#04x}: {ids:?}"));
            }
        }
    }
    out
}

// ----------------------------------------------------------------- MSI(-X)

fn config_msi_msix(c: &Ctx) -> Transcript {
    with_open(c, |t, d| {
        let msi = t.need("find MSI", d.cap(CAP_ID_MSI).and_then(|p| p.ok_or(Fail::other("no MSI"))), |p, _| {
            vec![("offset", hex(*p))]
        })?;
        let flags = t.need("MSI flags", d.read16(msi + 2), value16)?;
        // Enable, 8 vectors requested.
        t.step("write MSI flags enable + QSIZE 8", d.write16(msi + 2, flags | 0x1 | (3 << 4)), written);
        t.step("MSI flags after write", d.read16(msi + 2), value16);
        t.step("write MSI address", d.write32(msi + 4, 0xfee0_1000), written);
        t.step("MSI address", d.read32(msi + 4), value32);
        let data_at = if flags & 0x80 != 0 { msi + 12 } else { msi + 8 };
        t.step("write MSI data", d.write16(data_at, 0x4321), written);
        t.step("MSI data", d.read16(data_at), value16);
        t.step("MSI dword at cap start", d.read32(msi), value32);
        let msix =
            t.need("find MSI-X", d.cap(CAP_ID_MSIX).and_then(|p| p.ok_or(Fail::other("no MSI-X"))), |p, _| {
                vec![("offset", hex(*p))]
            })?;
        let xflags = t.need("MSI-X flags", d.read16(msix + 2), value16)?;
        t.step("write MSI-X flags enable + mask all", d.write16(msix + 2, xflags | 0xc000), written);
        t.step("MSI-X flags after write", d.read16(msix + 2), value16);
        t.step("MSI-X table and PBA", d.read(msix + 4, 8), bytes_field);
        Ok(())
    })
}

fn expect_config_msi_msix(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_open(&mut e);
    e.ok("find MSI");
    if let Some(Val::Hex(flags)) = t.find("MSI flags").and_then(|o| o.field("value")).cloned() {
        // Enable dropped, queue size clamped to what SET_IRQS set up (nothing).
        e.num("MSI flags after write", "value", flags & !0x71);
    }
    e.num("MSI address", "value", 0xfee0_1000);
    e.num("MSI data", "value", 0x4321);
    if let Some(Val::Hex(flags)) = t.find("MSI-X flags").and_then(|o| o.field("value")).cloned() {
        e.num("MSI-X flags after write", "value", flags);
    }
    e.finish()
}

// ------------------------------------------------------- read-only writes

fn config_readonly_writes(c: &Ctx) -> Transcript {
    with_open(c, |t, d| {
        let before = t.need("header before", d.read(0, 64), bytes_field)?;
        t.step("write vendor and device id", d.write32(0, 0x1234_5678), written);
        t.step("write revision and class", d.write32(0x08, 0xffff_ffff), written);
        t.step("write capability pointer", d.write(CAP_PTR, &[0x40]), written);
        t.step("header after", d.read(0, 64), |b, _| {
            vec![("bytes", Val::Bytes(b.clone())), ("ids unchanged", Val::Bool(b[..4] == before[..4]))]
        });
        if let Ok(Some(exp)) = d.cap(CAP_ID_EXP) {
            t.step("write PCIe capabilities and DEVCAP", d.write(exp + 2, &[0xff; 6]), written);
            t.step("PCIe cap after", d.read(exp, 12), bytes_field);
            t.step("write PCIe next pointer", d.write(exp + 1, &[0x00]), written);
            t.step("PCIe header after", d.read(exp, 2), bytes_field);
        }
        t.step("write unaligned 6 bytes at 0x3a", d.write(0x3a, &[0xa5; 6]), written);
        t.step("0x38..0x40 after", d.read(0x38, 8), bytes_field);
        t.step("write 4 bytes at cfg_size - 2", d.write(PCIE_CFG_SIZE as u64 - 2, &[0; 4]), written);
        t.step("write 1 byte at cfg_size", d.write(PCIE_CFG_SIZE as u64, &[0]), written);
        t.step("header at end", d.read(0, 64), bytes_field);
        Ok(())
    })
}

fn expect_config_readonly_writes(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_open(&mut e);
    e.num("write vendor and device id", "bytes written", 4);
    e.val("header after", "ids unchanged", &Val::Bool(true));
    e.num("write unaligned 6 bytes at 0x3a", "bytes written", 6);
    e.err("write 4 bytes at cfg_size - 2", Errno(14));
    e.err("write 1 byte at cfg_size", Errno(14));
    e.finish()
}

// ------------------------------------------------------------ PM and FLR

fn config_pm_and_flr(c: &Ctx) -> Transcript {
    with_open(c, |t, d| {
        let pm = t.need("find PM", d.cap(CAP_ID_PM).and_then(|p| p.ok_or(Fail::other("no PM"))), |p, _| {
            vec![("offset", hex(*p))]
        })?;
        t.step("PMC and PMCSR", d.read(pm + 2, 4), bytes_field);
        let pmcsr = t.need("PMCSR", d.read16(pm + 4), value16)?;
        t.step("write PMCSR D3hot + PME enable", d.write16(pm + 4, (pmcsr & !0x3) | 0x3 | 0x100), written);
        t.step("PMCSR in D3hot", d.read16(pm + 4), value16);
        t.step("command in D3hot", d.read16(COMMAND), value16);
        t.step("write PMCSR D0", d.write16(pm + 4, pmcsr & !0x3), written);
        t.step("PMCSR back in D0", d.read16(pm + 4), value16);
        t.step("BAR0 back in D0", d.read32(BAR0), value32);
        if let Ok(Some(exp)) = d.cap(CAP_ID_EXP) {
            let devctl = t.need("DEVCTL", d.read16(exp + 8), value16)?;
            t.step("write DEVCTL Initiate FLR", d.write16(exp + 8, devctl | 0x8000), written);
            t.step("DEVCTL after FLR", d.read16(exp + 8), value16);
            t.step("write DEVCTL MRRS 1024", d.write16(exp + 8, (devctl & !0x7000) | 0x3000), written);
            t.step("DEVCTL after MRRS", d.read16(exp + 8), value16);
            t.step("write DEVCTL back", d.write16(exp + 8, devctl), written);
            t.step("DEVCTL restored", d.read16(exp + 8), value16);
        }
        t.step("command after FLR", d.read16(COMMAND), value16);
        Ok(())
    })
}

fn expect_config_pm_and_flr(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_open(&mut e);
    e.ok("find PM");
    if let Some(Val::Hex(pmcsr)) = t.find("PMCSR").and_then(|o| o.field("value")).cloned() {
        e.num("PMCSR in D3hot", "value", (pmcsr & !0x3) | 0x3);
        e.num("PMCSR back in D0", "value", pmcsr & !0x3);
    }
    if let Some(Val::Hex(devctl)) = t.find("DEVCTL").and_then(|o| o.field("value")).cloned() {
        e.num("DEVCTL after FLR", "value", devctl & !0x8000);
    }
    e.finish()
}

// ------------------------------------------------------------ bad buffers

extern "C" {
    fn pread(fd: std::ffi::c_int, buf: *mut std::ffi::c_void, count: usize, offset: i64) -> isize;
    fn pwrite(fd: std::ffi::c_int, buf: *const std::ffi::c_void, count: usize, offset: i64) -> isize;
}

/// pwrite(2) of `count` bytes from an address nothing is mapped at.
fn write_unmapped(d: &Open, offset: u64, count: usize) -> Result<usize, Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: the kernel only reads the buffer (and fails with EFAULT on
    // the unmapped page 0); nothing in this process is touched.
    let n = unsafe { pwrite(d.dev.0.as_raw_fd(), 8 as *const std::ffi::c_void, count, (CONFIG + offset) as i64) };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(n as usize)
    }
}

/// pread(2) of `count` bytes into an address nothing is mapped at.
fn read_unmapped(d: &Open, offset: u64, count: usize) -> Result<usize, Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: the kernel writes to the unmapped page 0 only, which fails
    // with EFAULT; nothing in this process is touched.
    let n = unsafe { pread(d.dev.0.as_raw_fd(), 8 as *mut std::ffi::c_void, count, (CONFIG + offset) as i64) };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(n as usize)
    }
}

fn config_bad_user_buffer(c: &Ctx) -> Transcript {
    with_open(c, |t, d| {
        t.step("unmapped write to vendor id", write_unmapped(d, 0, 2), written);
        t.step("unmapped write to class code", write_unmapped(d, 0x08, 4), written);
        if let Ok(Some(msix)) = d.cap(CAP_ID_MSIX) {
            t.step("unmapped write to MSI-X control", write_unmapped(d, msix + 2, 2), written);
        }
        t.step("unmapped write to command", write_unmapped(d, COMMAND, 2), written);
        t.step("unmapped write to interrupt line", write_unmapped(d, INTX_LINE, 1), written);
        t.step("unmapped 8-byte write at 0x00", write_unmapped(d, 0, 8), written);
        t.step("unmapped read of vendor id", read_unmapped(d, 0, 2), |n, _| vec![("bytes read", Val::Num(*n as u64))]);
        t.step("header after", d.read(0, 64), bytes_field);
        Ok(())
    })
}

fn expect_config_bad_user_buffer(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_open(&mut e);
    // The header has a write handler for every byte: the buffer is read.
    e.err("unmapped write to vendor id", Errno(14));
    e.err("unmapped write to class code", Errno(14));
    // A read-only capability drops writes without reading the buffer.
    e.num("unmapped write to MSI-X control", "bytes written", 2);
    e.err("unmapped write to command", Errno(14));
    e.err("unmapped write to interrupt line", Errno(14));
    e.err("unmapped 8-byte write at 0x00", Errno(14));
    e.err("unmapped read of vendor id", Errno(14));
    e.finish()
}

// ----------------------------------------------------------------- reopen

fn config_reopen(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let b = bind_by_override(t, driver, bdf)?;
        let mut first = Vec::new();
        for round in ["first open", "second open"] {
            let r: Result<(), Abort> = (|| {
                let dev = t.need(&format!("{round}: open cdev"), Device::open_cdev(&b.cdev), none)?;
                let iommufd = t.need(&format!("{round}: open /dev/iommu"), Iommufd::open(), none)?;
                t.need(&format!("{round}: bind"), dev.bind_iommufd(&iommufd), none)?;
                let ioas = t.need(&format!("{round}: IOAS"), iommufd.ioas_alloc(), none)?;
                t.need(&format!("{round}: attach"), dev.attach_pt(ioas), none)?;
                let d = Open { dev, _iommufd: iommufd };
                let header = t.need(&format!("{round}: header"), d.read(0, 64), |b, _| {
                    vec![
                        ("bytes", Val::Bytes(b.clone())),
                        ("same as first open", Val::Bool(first.is_empty() || *b == first)),
                    ]
                })?;
                if first.is_empty() {
                    first = header;
                    t.step("write BAR0 all ones", d.write32(BAR0, u32::MAX), written);
                    t.step("write interrupt line", d.write(INTX_LINE, &[0x77]), written);
                    let cmd = d.read16(COMMAND).unwrap_or(0);
                    t.step("write INTx disable", d.write16(COMMAND, cmd | CMD_INTX_DISABLE), written);
                    t.step("header changed", d.read(0, 64), bytes_field);
                }
                Ok(())
            })();
            if r.is_err() {
                break;
            }
        }
        unbind_and_check(t, bdf, &b, true);
        Ok(())
    })
}

fn expect_config_reopen(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.ok("first open: header");
    e.val("second open: header", "same as first open", &Val::Bool(true));
    e.finish()
}

// ------------------------------------------------------------ concurrency

/// Rounds of the writer in `config_concurrent_access`, and reads per reader round.
const RACE_ROUNDS: usize = 300;
const RACE_READS: usize = 4;

/// What the reader threads of `config_concurrent_access` saw.
#[derive(Default)]
struct RaceSeen {
    config_reads: usize,
    /// Command values that are neither of the two the writer wrote.
    stray_commands: Vec<u16>,
    bar_reads: usize,
    bar_eio: usize,
    /// Errors other than EIO, as text.
    other_errors: Vec<String>,
}

fn config_concurrent_access(c: &Ctx) -> Transcript {
    with_open(c, |t, d| {
        let base = t.need("read command", d.read16(COMMAND), value16)? & !CMD_INTX_DISABLE;
        let base = base | CMD_MEMORY;
        t.need("enable memory decode", d.write16(COMMAND, base), written)?;
        // With one vCPU the threads interleave only where they yield: all three yield after
        // every step, so each write lands between reads.
        let done = AtomicBool::new(false);
        let started = AtomicUsize::new(0);
        let reader = || {
            let mut seen = RaceSeen::default();
            let mut word = [0u8; 4];
            started.fetch_add(1, Relaxed);
            loop {
                for _ in 0..RACE_READS {
                    match d.read16(COMMAND) {
                        Ok(cmd) if cmd == base || cmd == base | CMD_INTX_DISABLE => {}
                        Ok(cmd) if cmd == base & !CMD_MEMORY || cmd == (base & !CMD_MEMORY) | CMD_INTX_DISABLE => {}
                        Ok(cmd) => seen.stray_commands.push(cmd),
                        Err(e) => seen.other_errors.push(format!("config read: {e}")),
                    }
                    seen.config_reads += 1;
                    // BAR0 offset 8: the e1000e/igb STATUS register.
                    match d.dev.0.read_at(&mut word, 8) {
                        Ok(_) => {}
                        Err(e) if e.raw_os_error() == Some(Errno::EIO.0) => seen.bar_eio += 1,
                        Err(e) => seen.other_errors.push(format!("BAR read: {e}")),
                    }
                    seen.bar_reads += 1;
                }
                std::thread::yield_now();
                if done.load(Relaxed) {
                    break;
                }
            }
            seen
        };
        let (writes, seen) = std::thread::scope(|s| {
            let readers = [s.spawn(reader), s.spawn(reader)];
            while started.load(Relaxed) < readers.len() {
                std::thread::yield_now();
            }
            let mut writes = Ok(0usize);
            for round in 0..RACE_ROUNDS {
                let intx = if round % 2 == 0 { CMD_INTX_DISABLE } else { 0 };
                let memory = if round % 3 == 0 { 0 } else { CMD_MEMORY };
                match d.write16(COMMAND, (base & !CMD_MEMORY) | memory | intx) {
                    Ok(_) => writes = writes.map(|n| n + 1),
                    Err(e) => {
                        writes = Err(e);
                        break;
                    }
                }
                std::thread::yield_now();
            }
            done.store(true, Relaxed);
            let seen: Vec<RaceSeen> = readers.into_iter().filter_map(|r| r.join().ok()).collect();
            (writes, seen)
        });
        t.step("toggle INTx disable and memory decode", writes, |n, _| vec![("writes", Val::Num(*n as u64))]);
        let threads = seen.len();
        let total = seen.into_iter().fold(RaceSeen::default(), |mut a, s| {
            a.config_reads += s.config_reads;
            a.stray_commands.extend(s.stray_commands);
            a.bar_reads += s.bar_reads;
            a.bar_eio += s.bar_eio;
            a.other_errors.extend(s.other_errors);
            a
        });
        t.step("readers", Ok::<_, Fail>(()), |_, _| {
            vec![
                ("threads finished", Val::Num(threads as u64)),
                ("read config", Val::Bool(total.config_reads > 0)),
                ("stray command values", Val::Text(format!("{:x?}", total.stray_commands))),
                ("read BAR", Val::Bool(total.bar_reads > total.bar_eio)),
                // Proves the threads interleaved: some reads met a decode-off window.
                ("BAR read refused while decode off", Val::Bool(total.bar_eio > 0)),
                ("errors other than EIO", Val::Text(total.other_errors.join("; "))),
            ]
        });
        t.step("restore command", d.write16(COMMAND, base), written);
        Ok(())
    })
}

fn expect_config_concurrent_access(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_open(&mut e);
    e.val("toggle INTx disable and memory decode", "writes", &Val::Num(RACE_ROUNDS as u64));
    e.val("readers", "threads finished", &Val::Num(2));
    e.val("readers", "read config", &Val::Bool(true));
    e.val("readers", "stray command values", &Val::Text("[]".into()));
    e.val("readers", "read BAR", &Val::Bool(true));
    e.val("readers", "BAR read refused while decode off", &Val::Bool(true));
    e.val("readers", "errors other than EIO", &Val::Text(String::new()));
    e.finish()
}
