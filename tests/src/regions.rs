//! Scenarios for the regions of a device file: VFIO_DEVICE_GET_REGION_INFO
//! for every index, read(2)/write(2) of BARs, the ROM and the MSI-X table,
//! and mmap(2) of BARs (including a mapping surviving a reset by faulting
//! again).  The transcripts record the raw bytes the drivers return, so the
//! comparison with vfio-pci is byte for byte.

use crate::driver::Driver;
use crate::scenarios::{bind_by_override, none, scenario, unbind_and_check, Ctx, Scenario, Site};
use crate::sys::{ioctl_ptr, Errno, Fail, Mmio};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Fields, Outcome, Transcript, Val};
use crate::uapi::*;
use crate::vfio::{Container, Device, Group};
use std::os::raw::c_void;
use std::os::unix::fs::FileExt;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "region_info",
            rule: "GET_REGION_INFO: argsz < 32 is EINVAL; config, BARs and ROM report vfio-pci's offsets (index << 40), sizes and READ/WRITE/MMAP flags; the MSI-X BAR carries the MSIX_MAPPABLE capability (argsz grows to fit it); VGA and indexes past the last region are EINVAL",
            loads_module: false,
            applies: single_known_function,
            run: region_info,
            expect: expect_region_info,
        },
        Scenario {
            name: "bar_read_write",
            rule: "read/write of a BAR: aligned 1/2/4/8-byte and unaligned accesses reach the device registers; accesses are clipped at the BAR's end; offsets past it are EINVAL; the MSI-X table reads as 0xff and ignores writes; the ROM is read-only (write EINVAL)",
            loads_module: false,
            applies: single_known_function,
            run: bar_read_write,
            expect: expect_bar_read_write,
        },
        Scenario {
            name: "bar_mmap",
            rule: "mmap of a BAR: shared mappings inside the BAR see the same registers as read(); private mappings, mappings past the BAR's end, of config space or of an I/O BAR are EINVAL; after VFIO_DEVICE_RESET the mapping refaults and still works",
            loads_module: false,
            applies: single_known_function,
            run: bar_mmap,
            expect: expect_bar_mmap,
        },
        Scenario {
            name: "bar_mmap_sub_page",
            rule: "a memory BAR smaller than a page that starts a page is mmappable (region info MMAP) once the rest of its page is reserved (\"vfio sub-page reserved\" in /proc/iomem while open, gone after the close); the one page maps and reaches the registers, two pages or the next page are EINVAL",
            loads_module: false,
            applies: sub_page_bar0,
            run: bar_mmap_sub_page,
            expect: expect_bar_mmap_sub_page,
        },
    ]
}

/// One function the suite knows the registers of, behind a bridge: the
/// e1000e of "slot" and "switch", the igb of "sriov".
pub(crate) fn single_known_function(site: &Site) -> Result<(), String> {
    if site.functions.len() != 1 || !site.hot_reset {
        return Err("device API scenarios run on single functions behind a bridge".into());
    }
    match sysfs::model_of(&site.functions[0]) {
        Some(_) => Ok(()),
        None => Err("unknown device model".into()),
    }
}

const REGION_SHIFT: u32 = 40;
pub(crate) const CONFIG_INDEX: u32 = 7;
const ROM_INDEX: u32 = 6;
pub(crate) const REGION_INFO_SIZE: u32 = 32;
const REGION_INFO_FLAG_MMAP: u32 = 1 << 2;
pub(crate) const REGION_INFO_FLAG_CAPS: u32 = 1 << 3;

fn region_offset(index: u32) -> u64 {
    u64::from(index) << REGION_SHIFT
}

/// The reply of one GET_REGION_INFO call: the fixed part and what followed.
pub(crate) struct RegionInfo {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    index: u32,
    cap_offset: u32,
    size: u64,
    offset: u64,
    /// The bytes after the fixed part, up to argsz (the capability chain).
    caps: Vec<u8>,
}

/// VFIO_DEVICE_GET_REGION_INFO for `index` with `argsz`, in a buffer of
/// `max(argsz, 32)` bytes filled with 0xa5.
pub(crate) fn get_region_info(d: &Device, index: u32, argsz: u32) -> Result<RegionInfo, Fail> {
    let len = argsz.max(REGION_INFO_SIZE) as usize;
    let mut buf = vec![0xa5u8; len.div_ceil(8) * 8];
    buf[0..4].copy_from_slice(&argsz.to_ne_bytes());
    buf[8..12].copy_from_slice(&index.to_ne_bytes());
    // SAFETY: the kernel reads the 32-byte fixed part and writes at most
    // max(argsz, 32) bytes; the buffer holds at least that many, lives across
    // the call and is not otherwise borrowed.
    unsafe { ioctl_ptr(d, VFIO_DEVICE_GET_REGION_INFO, buf.as_mut_ptr().cast::<c_void>()) }?;
    let u32_at = |o: usize| u32::from_ne_bytes(buf[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_ne_bytes(buf[o..o + 8].try_into().expect("8 bytes"));
    Ok(RegionInfo {
        argsz: u32_at(0),
        flags: u32_at(4),
        index: u32_at(8),
        cap_offset: u32_at(12),
        size: u64_at(16),
        offset: u64_at(24),
        caps: buf[REGION_INFO_SIZE as usize..len].to_vec(),
    })
}

pub(crate) fn region_fields(r: &RegionInfo) -> Fields {
    let mut f = vec![
        ("argsz", Val::Num(r.argsz.into())),
        ("flags", Val::Hex(r.flags.into())),
        ("index", Val::Num(r.index.into())),
        ("cap_offset", Val::Num(r.cap_offset.into())),
        ("size", Val::Hex(r.size)),
        ("offset", Val::Hex(r.offset)),
    ];
    if !r.caps.is_empty() {
        f.push(("caps", Val::Bytes(r.caps.clone())));
    }
    f
}

/// Bind `bdf` with `driver`, set its group up in a type1 container and run
/// `body` with the group (which opens the device as often as it needs);
/// unbind.
pub(crate) fn with_group(c: &Ctx, body: impl FnOnce(&mut Transcript, &Group) -> Result<(), Abort>) -> Transcript {
    scenario(|t| in_group(t, c.driver, c.bdf(), body))
}

/// The steps of [`with_group`] inside a scenario: bind `bdf` with `driver`, set its group up
/// in a type1 container, run `body` with the group, unbind.
pub(crate) fn in_group(
    t: &mut Transcript,
    driver: &Driver,
    bdf: &str,
    body: impl FnOnce(&mut Transcript, &Group) -> Result<(), Abort>,
) -> Result<(), Abort> {
    let b = bind_by_override(t, driver, bdf)?;
    let result = (|| {
        let container = t.need("open /dev/vfio/vfio", Container::open(), none)?;
        let group = t.need("open group", Group::open(&b.group), none)?;
        t.need("VFIO_GROUP_SET_CONTAINER", group.set_container(&container), none)?;
        t.need("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)", container.set_iommu(VFIO_TYPE1v2_IOMMU), none)?;
        body(t, &group)
    })();
    unbind_and_check(t, bdf, &b, true);
    result
}

/// As [`with_group`], with the device opened once: `body` gets the device,
/// which is closed before the unbind.
pub(crate) fn with_group_device(
    c: &Ctx,
    body: impl FnOnce(&mut Transcript, &Device) -> Result<(), Abort>,
) -> Transcript {
    let bdf = c.bdf();
    with_group(c, |t, group| {
        let d = t.need("VFIO_GROUP_GET_DEVICE_FD", group.get_device_fd(bdf), none)?;
        body(t, &d)
    })
}

fn region_info(c: &Ctx) -> Transcript {
    with_group_device(c, |t, d| {
        t.step("GET_REGION_INFO argsz 16", get_region_info(d, 0, 16), |r, _| region_fields(r));
        for index in 0..=VFIO_PCI_NUM_REGIONS {
            let name = format!("GET_REGION_INFO index {index}");
            let Some(r) = t.step(&name, get_region_info(d, index, REGION_INFO_SIZE), |r, _| region_fields(r)) else {
                continue;
            };
            if r.flags & REGION_INFO_FLAG_CAPS != 0 && r.argsz > REGION_INFO_SIZE {
                t.step(&format!("{name} with argsz {}", r.argsz), get_region_info(d, index, r.argsz), |r, _| {
                    region_fields(r)
                });
            }
        }
        Ok(())
    })
}

fn expect_region_info(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.err("GET_REGION_INFO argsz 16", Errno::EINVAL);
    e.num("GET_REGION_INFO index 7", "offset", region_offset(CONFIG_INDEX));
    e.num("GET_REGION_INFO index 7", "flags", 0x3);
    e.num("GET_REGION_INFO index 0", "offset", 0);
    e.err("GET_REGION_INFO index 8", Errno::EINVAL);
    e.err("GET_REGION_INFO index 9", Errno::EINVAL);
    e.finish()
}

/// read(2) of `len` bytes at `offset` of region `index`.
pub(crate) fn pread(d: &Device, index: u32, offset: u64, len: usize) -> Result<Vec<u8>, Fail> {
    let mut buf = vec![0x5au8; len];
    let n = d.file().read_at(&mut buf, region_offset(index) + offset)?;
    buf.truncate(n);
    Ok(buf)
}

/// write(2) of `bytes` at `offset` of region `index`; the count written.
pub(crate) fn pwrite(d: &Device, index: u32, offset: u64, bytes: &[u8]) -> Result<usize, Fail> {
    Ok(d.file().write_at(bytes, region_offset(index) + offset)?)
}

pub(crate) fn bytes(v: &Vec<u8>, _: &mut Transcript) -> Fields {
    vec![("len", Val::Num(v.len() as u64)), ("bytes", Val::Bytes(v.clone()))]
}

/// Field `key` of steps `a` and `b` is the same value (both must have succeeded).
fn same(t: &Transcript, a: &str, b: &str, key: &str) -> Option<String> {
    let (va, vb) = (t.find(a).and_then(|o| o.field(key)), t.find(b).and_then(|o| o.field(key)));
    match (va, vb) {
        (Some(x), Some(y)) if x == y => None,
        (x, y) => Some(format!("'{a}' and '{b}' should agree on {key}: {x:?} vs {y:?}")),
    }
}

fn count(n: &usize, _: &mut Transcript) -> Fields {
    vec![("count", Val::Num(*n as u64))]
}

/// The MSI-X table's BAR, offset and size, from the function's config space
/// as the host sees it (sysfs), so that scenarios do not depend on the
/// driver's config-space virtualization.
pub(crate) fn msix_table(bdf: &str) -> Result<Option<(u32, u64, u64)>, Fail> {
    let cfg = std::fs::read(sysfs::device_dir(bdf).join("config"))?;
    if cfg.len() < 256 {
        return Err(Fail::other("short config read"));
    }
    let mut pos = cfg[0x34] as usize;
    for _ in 0..48 {
        if pos < 0x40 || pos > 0xfc {
            return Ok(None);
        }
        if cfg[pos] == 0x11 {
            let table = u32::from_le_bytes(cfg[pos + 4..pos + 8].try_into().expect("4 bytes"));
            let entries = u64::from(u16::from_le_bytes([cfg[pos + 2], cfg[pos + 3]]) & 0x7ff) + 1;
            return Ok(Some((table & 7, u64::from(table & !7), entries * 16)));
        }
        pos = cfg[pos + 1] as usize;
    }
    Ok(None)
}

fn bar_read_write(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_group_device(c, move |t, d| {
        let model = sysfs::model_of(&bdf).ok_or(Abort)?;
        let (mark, _) = model.mark;
        let mark = mark as u64;
        let bar0 = t.need("GET_REGION_INFO BAR0", get_region_info(d, 0, REGION_INFO_SIZE), |r, _| region_fields(r))?;
        t.step("read BAR0 STATUS (4 bytes at 0x8)", pread(d, 0, 0x8, 4), bytes);
        // The register's low bits are masked by the device and a function-level reset may
        // leave it alone: write both halves before reading them.
        t.step("write mark register (4 bytes)", pwrite(d, 0, mark, &0x1234_5680u32.to_le_bytes()), count);
        t.step("write the register after it (4 bytes)", pwrite(d, 0, mark + 4, &0u32.to_le_bytes()), count);
        t.step("read mark register (4 bytes)", pread(d, 0, mark, 4), bytes);
        t.step("read mark register (8 bytes)", pread(d, 0, mark, 8), bytes);
        t.step("read mark register (2 bytes at +2)", pread(d, 0, mark + 2, 2), bytes);
        t.step("read mark register (3 bytes at +1, unaligned)", pread(d, 0, mark + 1, 3), bytes);
        t.step("write mark register (1 byte at +1)", pwrite(d, 0, mark + 1, &[0xab]), count);
        t.step("read mark register after the byte write", pread(d, 0, mark, 4), bytes);
        t.step("write mark register (8 bytes)", pwrite(d, 0, mark, &0x0000_0001_0000_0080u64.to_le_bytes()), count);
        t.step("read mark register after the 8-byte write", pread(d, 0, mark, 8), bytes);
        t.step("read 8 bytes at BAR0 end - 2 (clipped)", pread(d, 0, bar0.size - 2, 8), bytes);
        t.step("read at BAR0 end", pread(d, 0, bar0.size, 4), bytes);
        t.step("read BAR index 5 (unimplemented)", pread(d, 5, 0, 4), bytes);
        match t.need("find the MSI-X table", msix_table(&bdf), |m, _| match m {
            Some((bar, off, _)) => vec![("bar", Val::Num((*bar).into())), ("offset", Val::Hex(*off))],
            None => vec![("bar", Val::text("none"))],
        })? {
            Some((bar, off, _)) => {
                t.step("read the first MSI-X entry (16 bytes)", pread(d, bar, off, 16), bytes);
                t.step(
                    "write the first MSI-X entry's data",
                    pwrite(d, bar, off + 8, &0xdead_beefu32.to_le_bytes()),
                    count,
                );
                t.step("read it again", pread(d, bar, off, 16), bytes);
                t.step("read 8 bytes straddling the table's start", pread(d, bar, off.saturating_sub(4), 8), bytes);
            }
            None => {}
        }
        t.step("read the ROM (4 bytes)", pread(d, ROM_INDEX, 0, 4), bytes);
        t.step("write the ROM", pwrite(d, ROM_INDEX, 0, &[0; 4]), count);
        t.step("read an I/O BAR if any (BAR2, 4 bytes)", pread(d, 2, 0, 4), bytes);
        t.step("read VGA region", pread(d, 8, 0, 4), bytes);
        t.step("read past the last region", pread(d, 9, 0, 4), bytes);
        Ok(())
    })
}

fn expect_bar_read_write(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.ok("read BAR0 STATUS (4 bytes at 0x8)");
    e.num("write mark register (4 bytes)", "count", 4);
    e.val("read mark register (4 bytes)", "bytes", &Val::Bytes(vec![0x80, 0x56, 0x34, 0x12]));
    e.num("read 8 bytes at BAR0 end - 2 (clipped)", "len", 2);
    e.err("read at BAR0 end", Errno::EINVAL);
    e.err("read BAR index 5 (unimplemented)", Errno::EINVAL);
    if let Some(Outcome::Ok(_)) = t.find("read the first MSI-X entry (16 bytes)") {
        e.val("read the first MSI-X entry (16 bytes)", "bytes", &Val::Bytes(vec![0xff; 16]));
        e.num("write the first MSI-X entry's data", "count", 4);
        e.val("read it again", "bytes", &Val::Bytes(vec![0xff; 16]));
    }
    e.err("write the ROM", Errno::EINVAL);
    e.err("read VGA region", Errno::EINVAL);
    e.err("read past the last region", Errno::EINVAL);
    e.finish()
}

fn map_result(m: Result<Mmio, Errno>) -> Result<Mmio, Fail> {
    m.map_err(Fail::Os)
}

fn bar_mmap(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_group_device(c, move |t, d| {
        let model = sysfs::model_of(&bdf).ok_or(Abort)?;
        let (mark, _) = model.mark;
        let bar0 = t.need("GET_REGION_INFO BAR0", get_region_info(d, 0, REGION_INFO_SIZE), |r, _| region_fields(r))?;
        t.step("mmap BAR0 private", map_result(Mmio::map_at(d, 0, 4096, false)), none);
        t.step("mmap past BAR0's end", map_result(Mmio::map_at(d, bar0.size, 4096, true)), none);
        t.step("mmap config space", map_result(Mmio::map_at(d, region_offset(CONFIG_INDEX), 4096, true)), none);
        t.step("mmap the ROM", map_result(Mmio::map_at(d, region_offset(ROM_INDEX), 4096, true)), none);
        t.step("mmap BAR2", map_result(Mmio::map_at(d, region_offset(2), 4096, true)), none);
        let map =
            t.need("mmap BAR0 shared (whole BAR)", map_result(Mmio::map_at(d, 0, bar0.size as usize, true)), none)?;
        let via_read = pread(d, 0, 0x8, 4);
        t.step("STATUS via read()", via_read, bytes);
        let status = map.read32(0x8).ok_or_else(|| Fail::other("outside the mapping"));
        t.step("STATUS via the mapping", status, |v, t| bytes(&v.to_le_bytes().to_vec(), t));
        let marked =
            map.write32(mark, 0x0bad_ca80).and_then(|()| map.read32(mark)).ok_or_else(|| Fail::other("outside"));
        t.step("write the mark register through the mapping", marked, |v, _| {
            vec![("read back", Val::Hex((*v).into()))]
        });
        t.step("the mark register via read()", pread(d, 0, mark as u64, 4), bytes);
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        let reset = unsafe { crate::sys::ioctl_val(d, VFIO_DEVICE_RESET, 0) };
        t.step("VFIO_DEVICE_RESET", reset.map_err(Fail::Os), none);
        let after = map.read32(0x8).ok_or_else(|| Fail::other("outside the mapping"));
        t.step("STATUS via the mapping after the reset (refault)", after, |v, _| {
            vec![("bytes", Val::Bytes(v.to_le_bytes().to_vec()))]
        });
        t.step("STATUS via read() after the reset", pread(d, 0, 0x8, 4), bytes);
        Ok(())
    })
}

fn expect_bar_mmap(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.err("mmap BAR0 private", Errno::EINVAL);
    e.err("mmap past BAR0's end", Errno::EINVAL);
    e.err("mmap config space", Errno::EINVAL);
    e.err("mmap the ROM", Errno::EINVAL);
    e.ok("mmap BAR0 shared (whole BAR)");

    e.num("write the mark register through the mapping", "read back", 0x0bad_ca80);
    e.val("the mark register via read()", "bytes", &Val::Bytes(0x0bad_ca80u32.to_le_bytes().to_vec()));
    e.ok("STATUS via the mapping after the reset (refault)");
    let mut failures = e.finish();
    failures.extend(same(t, "STATUS via read()", "STATUS via the mapping", "bytes"));
    failures
}

// ------------------------------------------------------------- sub-page BAR

/// The name vfio-pci gives the reservation of the rest of a sub-page BAR's page.
const SUB_PAGE_RESERVED: &str = "vfio sub-page reserved";

/// The first function's BAR0 is a memory BAR smaller than a page (the OHCI of "subpage").
fn sub_page_bar0(site: &Site) -> Result<(), String> {
    let bdf = site.functions.first().ok_or("no function")?;
    let resources = std::fs::read_to_string(sysfs::device_dir(bdf).join("resource")).map_err(|e| e.to_string())?;
    let first = resources.lines().next().unwrap_or_default();
    let fields: Vec<u64> =
        first.split_whitespace().filter_map(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).ok()).collect();
    const IORESOURCE_MEM: u64 = 0x200;
    match fields[..] {
        [start, end, flags] if flags & IORESOURCE_MEM != 0 && end > start && end - start + 1 < 4096 => Ok(()),
        _ => Err("BAR0 is not a memory BAR smaller than a page".into()),
    }
}

/// Whether /proc/iomem lists the sub-page reservation.
fn sub_page_reserved() -> Result<bool, Fail> {
    Ok(std::fs::read_to_string("/proc/iomem")?.contains(SUB_PAGE_RESERVED))
}

fn bar_mmap_sub_page(c: &Ctx) -> Transcript {
    let mut t = with_group_device(c, |t, d| {
        t.need("GET_REGION_INFO BAR0", get_region_info(d, 0, REGION_INFO_SIZE), |r, _| {
            let mut fields = region_fields(r);
            fields.push(("mmap", Val::Bool(r.flags & REGION_INFO_FLAG_MMAP != 0)));
            fields
        })?;
        t.step("reserved while open", sub_page_reserved(), |v, _| vec![("listed", Val::Bool(*v))]);
        t.step("mmap two pages", map_result(Mmio::map_at(d, 0, 8192, true)), none);
        t.step("mmap the next page", map_result(Mmio::map_at(d, 4096, 4096, true)), none);
        let map = t.need("mmap the page", map_result(Mmio::map_at(d, 0, 4096, true)), none)?;
        // The first register of the BAR, whatever the device (the OHCI's HcRevision).
        t.step("register 0 via read()", pread(d, 0, 0, 4), bytes);
        let mapped = map.read32(0).ok_or_else(|| Fail::other("outside the mapping"));
        t.step("register 0 via the mapping", mapped, |v, t| bytes(&v.to_le_bytes().to_vec(), t));
        Ok(())
    });
    t.step("reserved after the close", sub_page_reserved(), |v, _| vec![("listed", Val::Bool(*v))]);
    t
}

fn expect_bar_mmap_sub_page(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.val("GET_REGION_INFO BAR0", "mmap", &Val::Bool(true));
    e.val("reserved while open", "listed", &Val::Bool(true));
    e.err("mmap two pages", Errno::EINVAL);
    e.err("mmap the next page", Errno::EINVAL);
    e.ok("mmap the page");
    e.val("reserved after the close", "listed", &Val::Bool(false));
    let mut failures = e.finish();
    failures.extend(same(t, "register 0 via read()", "register 0 via the mapping", "bytes"));
    failures
}
