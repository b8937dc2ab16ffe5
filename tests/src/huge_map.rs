//! Scenarios for huge PFN mappings of BARs: mmap(2) of a large memory BAR
//! (QEMU's ivshmem-plain, whose BAR2 is its memory backend: the "hugebar"
//! and "hugebar1g" topologies) faults a PMD (2 MiB) or a PUD (1 GiB) at a
//! time where the mapping's address, its offset in the BAR and the BAR's bus
//! address allow it, as vfio-pci's huge_fault does, and falls back to
//! smaller blocks otherwise.
//!
//! The block size chosen is shown by the number of page faults the process
//! takes (getrusage's minor faults) while it touches every page (or every
//! 64 KiB of a 1 GiB BAR) of a fresh mapping: one per block.  No kernel
//! interface reports the entries of a PFN mapping (smaps and pagemap skip
//! VM_PFNMAP mappings), and the fault count is the same for both drivers
//! whatever the kernel, so the transcripts compare it directly.  Nothing
//! aligns a new mapping (neither driver has get_unmapped_area), so the
//! scenarios place each mapping themselves, MAP_FIXED inside a reserved
//! PROT_NONE range, at an address with a chosen offset from a 2 MiB or
//! 1 GiB boundary.

use crate::regions::{get_region_info, pread, region_fields, with_group_device, REGION_INFO_SIZE};
use crate::scenarios::{
    bind_by_override, expect_bound, expect_gone, none, record_all_gone, scenario, waits_for_close, Ctx, Scenario, Site,
};
use crate::sys::{ChildTouch, Errno, Fail};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Fields, Transcript, Val};
use crate::uapi::*;
use crate::vfio::{Container, Device, Group};
use std::os::raw::c_void;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "huge_map_pmd",
            rule: "mmap of a whole large BAR at a 2 MiB-aligned address faults one PMD per 2 MiB; every byte written through the mapping reads the same through read(2); VFIO_DEVICE_RESET zaps it and it refaults a PMD per 2 MiB with the bytes kept; memory decode off zaps it (access SIGBUS, read(2) EIO) and decode on refaults it a PMD per 2 MiB",
            loads_module: false,
            applies: pmd_bar,
            run: huge_map_pmd,
            expect: expect_huge_map_pmd,
        },
        Scenario {
            name: "huge_map_fallback",
            rule: "a block is mapped huge only when it lies inside the mapping and its frames are aligned to its size: a mapping at BAR offset 4 KiB at a 2 MiB-aligned address, or at offset 0 at an address 4 KiB past a 2 MiB boundary, faults page by page; offset 4 KiB at an address 4 KiB past a boundary maps the whole 2 MiB blocks inside it as PMDs and the partial block page by page; a mapping smaller than 2 MiB faults page by page; 2 MiB + 4 KiB faults one PMD and one page",
            loads_module: false,
            applies: pmd_bar,
            run: huge_map_fallback,
            expect: expect_huge_map_fallback,
        },
        Scenario {
            name: "huge_map_pud",
            rule: "mmap of a 1 GiB BAR at a 1 GiB-aligned address faults one PUD; the bytes read as through read(2); VFIO_DEVICE_RESET zaps it and it refaults one PUD; at an address 2 MiB past a 1 GiB boundary the same BAR faults one PMD per 2 MiB",
            loads_module: false,
            applies: pud_bar,
            run: huge_map_pud,
            expect: expect_huge_map_pud,
        },
        Scenario {
            name: "huge_map_outlives_close",
            rule: "a huge mapping keeps the device open after its fd, group and container are closed: it still reads what was written, without a fault; an unbind waits while it lives (the device is not released) and returns once it is unmapped, after which the function is unbound",
            loads_module: false,
            applies: pmd_bar,
            run: huge_map_outlives_close,
            expect: expect_huge_map_outlives_close,
        },
    ]
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const PAGE: u64 = 4 * KIB;
const PMD: u64 = 2 * MIB;
const PUD: u64 = GIB;
/// The BAR of ivshmem-plain that maps its memory backend.
const SHMEM_BAR: u32 = 2;
/// The largest BAR huge_map_pmd reads whole through read(2).
const PMD_BAR_MAX: u64 = 64 * MIB;

/// The size of memory BAR `bar` of `bdf`, from sysfs (0 if it is not one).
fn sysfs_bar_len(bdf: &str, bar: u32) -> u64 {
    let Ok(text) = std::fs::read_to_string(sysfs::device_dir(bdf).join("resource")) else {
        return 0;
    };
    let Some(line) = text.lines().nth(bar as usize) else {
        return 0;
    };
    let f: Vec<u64> =
        line.split_whitespace().filter_map(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).ok()).collect();
    const IORESOURCE_MEM: u64 = 0x200;
    match f[..] {
        [start, end, flags] if flags & IORESOURCE_MEM != 0 && end > start => end - start + 1,
        _ => 0,
    }
}

/// A single function whose BAR2 is a memory BAR of 4 MiB to 64 MiB.
fn pmd_bar(site: &Site) -> Result<(), String> {
    let [f] = &site.functions[..] else {
        return Err("huge mapping scenarios run on a single function".into());
    };
    let len = sysfs_bar_len(f, SHMEM_BAR);
    if (2 * PMD..=PMD_BAR_MAX).contains(&len) {
        Ok(())
    } else {
        Err("BAR2 is not a memory BAR of 4 to 64 MiB".into())
    }
}

/// A single function whose BAR2 is a memory BAR of exactly 1 GiB.
fn pud_bar(site: &Site) -> Result<(), String> {
    let [f] = &site.functions[..] else {
        return Err("huge mapping scenarios run on a single function".into());
    };
    if sysfs_bar_len(f, SHMEM_BAR) == PUD {
        Ok(())
    } else {
        Err("BAR2 is not a 1 GiB memory BAR".into())
    }
}

fn region_offset(index: u32) -> u64 {
    u64::from(index) << 40
}

/// A shared mapping of `len` bytes of a device file at file offset
/// `offset`, placed `skew` bytes past an `align` boundary inside a
/// PROT_NONE reservation made for it; the reservation and the mapping go
/// on drop.
pub(crate) struct PlacedMap {
    reservation: *mut u8,
    reserved: usize,
    ptr: *mut u8,
    len: usize,
}

impl PlacedMap {
    pub(crate) fn new(d: &Device, offset: u64, len: u64, align: u64, skew: u64) -> Result<PlacedMap, Errno> {
        let (len, align, skew) = (len as usize, align as usize, skew as usize);
        let reserved = len + 2 * align;
        // SAFETY: an anonymous PROT_NONE reservation chosen by the kernel
        // overlaps nothing of ours.
        let r = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserved,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if r == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let reservation = r.cast::<u8>();
        let at = (reservation as usize).next_multiple_of(align) + skew;
        // SAFETY: `at..at + len` lies inside our own reservation (at most
        // align - 1 + skew < 2 * align bytes from its start), which
        // MAP_FIXED replaces; nothing else lives there.
        let p = unsafe {
            libc::mmap(
                at as *mut c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                d.as_raw_fd(),
                offset as i64,
            )
        };
        if p == libc::MAP_FAILED {
            let e = Errno::last();
            // SAFETY: the reservation made above, not used by anything else.
            unsafe { libc::munmap(r, reserved) };
            return Err(e);
        }
        Ok(PlacedMap { reservation, reserved, ptr: p.cast::<u8>(), len })
    }

    /// Reads the u32 at every `stride` bytes; returns the minor page faults
    /// this thread took meanwhile.
    pub(crate) fn touch(&self, stride: u64) -> Result<u64, Fail> {
        // A first call takes the copy-on-write fault of its own stack frame,
        // if a fork (`touch_in_child`) left the page write-protected, before
        // the count starts.
        minor_faults()?;
        let before = minor_faults()?;
        let mut off = 0usize;
        while off < self.len {
            // SAFETY: `off` is 4-aligned and inside the live mapping.
            let _ = unsafe { self.ptr.add(off).cast::<u32>().read_volatile() };
            off += stride as usize;
        }
        Ok(minor_faults()? - before)
    }

    /// Writes `pattern(i)` to every u64 `i` of the mapping.
    fn fill(&self, pattern: impl Fn(u64) -> u64) {
        for i in 0..self.len / 8 {
            // SAFETY: 8-aligned, inside the live writable mapping.
            unsafe { self.ptr.add(i * 8).cast::<u64>().write_volatile(pattern(i as u64)) };
        }
    }

    /// The bytes `off..off + len` of the mapping.
    fn bytes(&self, off: usize, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        for i in (off..off + len).step_by(8) {
            // SAFETY: 8-aligned, inside the live mapping (callers pass
            // ranges of whole u64s inside it).
            v.extend_from_slice(&unsafe { self.ptr.add(i).cast::<u64>().read_volatile() }.to_le_bytes());
        }
        v
    }

    /// Reads the first word in a forked child (SIGBUS kills the child).
    fn touch_in_child(&self) -> Result<ChildTouch, Fail> {
        let p = self.ptr.cast::<u32>();
        // SAFETY: the child only does a volatile read and _exit (both
        // async-signal-safe).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Fail::Os(Errno::last()));
        }
        if pid == 0 {
            // SAFETY: `p` is the start of the live, inherited mapping.
            unsafe {
                let _ = p.read_volatile();
                libc::_exit(0)
            }
        }
        let mut status = 0;
        // SAFETY: waits for our own child into a valid location.
        if unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
            return Err(Fail::Os(Errno::last()));
        }
        Ok(if libc::WIFSIGNALED(status) {
            ChildTouch::Signal(libc::WTERMSIG(status))
        } else if libc::WEXITSTATUS(status) == 0 {
            ChildTouch::Read
        } else {
            ChildTouch::Exit(libc::WEXITSTATUS(status))
        })
    }
}

impl Drop for PlacedMap {
    fn drop(&mut self) {
        // SAFETY: the reservation (which holds the mapping) is ours, and no
        // reference into it outlives `self`.
        unsafe { libc::munmap(self.reservation.cast::<c_void>(), self.reserved) };
    }
}

/// The calling thread's minor page faults so far: not the process's, which
/// count the harness's watchdog thread too (after a fork, its wake-ups take
/// copy-on-write faults of their own: a `huge_map_pmd` transcript once showed
/// 6 faults for 4 PMDs, on both drivers).
fn minor_faults() -> Result<u64, Fail> {
    // SAFETY: getrusage writes a rusage into the zeroed local.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD and a valid output location.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
        return Err(Fail::Os(Errno::last()));
    }
    Ok(ru.ru_minflt as u64)
}

fn faults(n: &u64, _: &mut Transcript) -> Fields {
    vec![("faults", Val::Num(*n))]
}

fn touch_fields(r: &ChildTouch, _: &mut Transcript) -> Fields {
    let what = match r {
        ChildTouch::Read => "read".to_string(),
        ChildTouch::Signal(libc::SIGBUS) => "SIGBUS".to_string(),
        ChildTouch::Signal(n) => format!("signal {n}"),
        ChildTouch::Exit(n) => format!("exit {n}"),
    };
    vec![("access", Val::text(what))]
}

/// The test pattern: distinct in every u64 of the BAR, and per `seed`.
fn pattern(seed: u64) -> impl Fn(u64) -> u64 {
    move |i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed
}

/// Compares `len` bytes of BAR `bar` read through read(2) (1 MiB at a
/// time) with `pattern`: the number of bytes that differ and a checksum of
/// what read(2) returned.
fn compare_read(d: &Device, bar: u32, len: u64, pattern: &impl Fn(u64) -> u64) -> Result<(u64, u64), Fail> {
    let mut buf = vec![0u8; MIB as usize];
    let (mut differ, mut sum) = (0u64, 0xcbf2_9ce4_8422_2325u64);
    let mut off = 0u64;
    while off < len {
        let n = d.file().read_at(&mut buf, region_offset(bar) + off)?;
        if n == 0 || n % 8 != 0 {
            return Err(Fail::other(format!("read(2) at {off:#x} returned {n} bytes")));
        }
        for (k, word) in buf[..n].chunks_exact(8).enumerate() {
            let got = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            let want = pattern((off / 8) + k as u64);
            differ += (got ^ want).to_le_bytes().iter().filter(|b| **b != 0).count() as u64;
            sum = (sum ^ got).wrapping_mul(0x100_0000_01b3);
        }
        off += n as u64;
    }
    Ok((differ, sum))
}

/// Compares the mapping with `pattern`: the number of bytes that differ.
fn compare_map(m: &PlacedMap, pattern: &impl Fn(u64) -> u64) -> u64 {
    let mut differ = 0u64;
    for i in 0..m.len / 8 {
        // SAFETY: 8-aligned, inside the live mapping.
        let got = unsafe { m.ptr.add(i * 8).cast::<u64>().read_volatile() };
        differ += (got ^ pattern(i as u64)).to_le_bytes().iter().filter(|b| **b != 0).count() as u64;
    }
    differ
}

fn compared(v: &(u64, u64), _: &mut Transcript) -> Fields {
    vec![("bytes differing", Val::Num(v.0)), ("checksum", Val::Hex(v.1))]
}

fn differing(n: &u64, _: &mut Transcript) -> Fields {
    vec![("bytes differing", Val::Num(*n))]
}

const PCI_COMMAND: u64 = 4;
const PCI_COMMAND_MEMORY: u16 = 1 << 1;

fn config(offset: u64) -> u64 {
    region_offset(7) + offset
}

/// Sets the virtual command register's memory-decode bit to `on`.
fn set_decode(d: &Device, on: bool) -> Result<(), Fail> {
    let mut cmd = [0u8; 2];
    d.file().read_exact_at(&mut cmd, config(PCI_COMMAND))?;
    let mut cmd = u16::from_le_bytes(cmd);
    if on {
        cmd |= PCI_COMMAND_MEMORY;
    } else {
        cmd &= !PCI_COMMAND_MEMORY;
    }
    d.file().write_all_at(&cmd.to_le_bytes(), config(PCI_COMMAND))?;
    Ok(())
}

/// GET_REGION_INFO of BAR2, and the BAR's size (from sysfs), which the
/// scenarios need.
fn bar_info(t: &mut Transcript, d: &Device, bdf: &str) -> Result<u64, Abort> {
    t.need("GET_REGION_INFO BAR2", get_region_info(d, SHMEM_BAR, REGION_INFO_SIZE), |r, _| region_fields(r))?;
    let len = sysfs_bar_len(bdf, SHMEM_BAR);
    t.need("BAR2 size", Ok::<u64, Fail>(len), |n, _| vec![("size", Val::Hex(*n))])
}

fn reset(d: &Device) -> Result<(), Fail> {
    // SAFETY: VFIO_DEVICE_RESET takes no argument.
    unsafe { crate::sys::ioctl_val(d, VFIO_DEVICE_RESET, 0) }.map(|_| ()).map_err(Fail::Os)
}

fn huge_map_pmd(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_group_device(c, move |t, d| {
        let len = bar_info(t, d, &bdf)?;
        let map = t.need(
            "mmap BAR2 whole at a 2 MiB-aligned address",
            PlacedMap::new(d, region_offset(SHMEM_BAR), len, PMD, 0).map_err(Fail::Os),
            none,
        )?;
        t.step("first touch of every page", map.touch(PAGE), faults);
        t.step("touch again (all present)", map.touch(PAGE), faults);
        let p = pattern(0x5eed_0000_0000_0001);
        map.fill(&p);
        t.step(
            "read(2) of the whole BAR against what the mapping wrote",
            compare_read(d, SHMEM_BAR, len, &p),
            compared,
        );
        t.step("the mapping against the pattern", Ok::<u64, Fail>(compare_map(&map, &p)), differing);
        t.step("read(2) of 16 bytes at 2 MiB - 8", pread(d, SHMEM_BAR, PMD - 8, 16), |v, _| {
            vec![("bytes", Val::Bytes(v.clone()))]
        });
        t.step(
            "the same 16 bytes through the mapping",
            Ok::<Vec<u8>, Fail>(map.bytes((PMD - 8) as usize, 16)),
            |v, _| vec![("bytes", Val::Bytes(v.clone()))],
        );

        t.step("VFIO_DEVICE_RESET", reset(d), none);
        t.step("touch after the reset (refault)", map.touch(PAGE), faults);
        t.step("the mapping after the reset against the pattern", Ok::<u64, Fail>(compare_map(&map, &p)), differing);

        t.step("memory decode off", set_decode(d, false), none);
        t.step("touch with decode off (child)", map.touch_in_child(), touch_fields);
        t.step("read(2) with decode off", pread(d, SHMEM_BAR, 0, 8), |v, _| vec![("bytes", Val::Bytes(v.clone()))]);
        t.step("memory decode on", set_decode(d, true), none);
        t.step("touch after decode on (refault)", map.touch(PAGE), faults);
        t.step("the mapping after decode on against the pattern", Ok::<u64, Fail>(compare_map(&map, &p)), differing);
        drop(map);
        Ok(())
    })
}

fn expect_huge_map_pmd(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    let len = t.find("BAR2 size").and_then(|o| o.field("size")).and_then(Val::as_u64).unwrap_or(0);
    let blocks = len / PMD;
    e.ok("mmap BAR2 whole at a 2 MiB-aligned address");
    e.num("first touch of every page", "faults", blocks);
    e.num("touch again (all present)", "faults", 0);
    e.num("read(2) of the whole BAR against what the mapping wrote", "bytes differing", 0);
    e.num("the mapping against the pattern", "bytes differing", 0);
    e.ok("VFIO_DEVICE_RESET");
    e.num("touch after the reset (refault)", "faults", blocks);
    e.num("the mapping after the reset against the pattern", "bytes differing", 0);
    e.val("touch with decode off (child)", "access", &Val::text("SIGBUS"));
    e.err("read(2) with decode off", Errno::EIO);
    e.num("touch after decode on (refault)", "faults", blocks);
    e.num("the mapping after decode on against the pattern", "bytes differing", 0);
    let mut failures = e.finish();
    let a = t.find("read(2) of 16 bytes at 2 MiB - 8").and_then(|o| o.field("bytes"));
    let b = t.find("the same 16 bytes through the mapping").and_then(|o| o.field("bytes"));
    if a.is_none() || a != b {
        failures.push(format!("read(2) and the mapping disagree across the first PMD boundary: {a:?} vs {b:?}"));
    }
    failures
}

/// The mappings of huge_map_fallback: name, BAR offset, length (None: the
/// BAR's length minus the offset), alignment and skew of the address.
struct Placement {
    name: &'static str,
    offset: u64,
    len: Option<u64>,
    skew: u64,
}

const PLACEMENTS: &[Placement] = &[
    Placement { name: "offset 4 KiB at a 2 MiB-aligned address", offset: PAGE, len: None, skew: 0 },
    Placement { name: "offset 0 at 4 KiB past a 2 MiB boundary", offset: 0, len: None, skew: PAGE },
    Placement { name: "offset 4 KiB at 4 KiB past a 2 MiB boundary", offset: PAGE, len: None, skew: PAGE },
    Placement { name: "1 MiB at offset 0, 2 MiB-aligned", offset: 0, len: Some(MIB), skew: 0 },
    Placement { name: "2 MiB + 4 KiB at offset 0, 2 MiB-aligned", offset: 0, len: Some(PMD + PAGE), skew: 0 },
    Placement { name: "2 MiB at offset 2 MiB, 2 MiB-aligned", offset: PMD, len: Some(PMD), skew: 0 },
];

/// The faults a fresh mapping of `p` in a BAR of `bar_len` takes when
/// every page is touched, by vfio-pci's rule (a PMD where the whole
/// 2 MiB-aligned block is inside the mapping and the BAR offset is
/// congruent to the address; a page elsewhere).
fn expected_faults(p: &Placement, bar_len: u64) -> u64 {
    let len = p.len.unwrap_or(bar_len - p.offset);
    let start = PMD * 16 + p.skew; // any 2 MiB-aligned base
    let (end, mut n, mut a) = (start + len, 0, start);
    while a < end {
        let block = a & !(PMD - 1);
        let congruent = (block.wrapping_sub(start).wrapping_add(p.offset)) % PMD == 0;
        if block >= start && block + PMD <= end && congruent {
            n += 1;
            a = block + PMD;
        } else {
            n += 1;
            a += PAGE;
        }
    }
    n
}

fn huge_map_fallback(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_group_device(c, move |t, d| {
        let len = bar_info(t, d, &bdf)?;
        for p in PLACEMENTS {
            let map_len = p.len.unwrap_or(len - p.offset);
            let Some(map) = t.step(
                &format!("mmap {}", p.name),
                PlacedMap::new(d, region_offset(SHMEM_BAR) + p.offset, map_len, PMD, p.skew).map_err(Fail::Os),
                none,
            ) else {
                continue;
            };
            t.step(&format!("touch every page: {}", p.name), map.touch(PAGE), faults);
        }
        t.step(
            "mmap 4 KiB past the BAR's end",
            PlacedMap::new(d, region_offset(SHMEM_BAR) + PAGE, len, PMD, 0).map(|_| ()).map_err(Fail::Os),
            none,
        );
        Ok(())
    })
}

fn expect_huge_map_fallback(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    let len = t.find("BAR2 size").and_then(|o| o.field("size")).and_then(Val::as_u64).unwrap_or(0);
    for p in PLACEMENTS {
        e.ok(&format!("mmap {}", p.name));
        e.num(&format!("touch every page: {}", p.name), "faults", expected_faults(p, len));
    }
    e.err("mmap 4 KiB past the BAR's end", Errno::EINVAL);
    e.finish()
}

/// The stride huge_map_pud touches a 1 GiB mapping with: 16384 touches.
const PUD_STRIDE: u64 = 64 * KIB;

fn huge_map_pud(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_group_device(c, move |t, d| {
        let len = bar_info(t, d, &bdf)?;
        {
            let map = t.need(
                "mmap BAR2 whole at a 1 GiB-aligned address",
                PlacedMap::new(d, region_offset(SHMEM_BAR), len, PUD, 0).map_err(Fail::Os),
                none,
            )?;
            t.step("first touch of every 64 KiB", map.touch(PUD_STRIDE), faults);
            let samples = [0, PMD, len / 2 + PAGE, len - 64 * KIB];
            for (k, at) in samples.iter().enumerate() {
                let v = 0x0bad_f00d_0000_0000 | (*at / PAGE);
                // SAFETY: 8-aligned, inside the live writable mapping.
                unsafe { map.ptr.add(*at as usize).cast::<u64>().write_volatile(v) };
                t.step(
                    &format!("read(2) of sample {k} written through the mapping"),
                    pread(d, SHMEM_BAR, *at, 8),
                    |b, _| vec![("bytes", Val::Bytes(b.clone()))],
                );
                t.step(
                    &format!("sample {k} through the mapping"),
                    Ok::<Vec<u8>, Fail>(map.bytes(*at as usize, 8)),
                    |b, _| vec![("bytes", Val::Bytes(b.clone()))],
                );
            }
            t.step("VFIO_DEVICE_RESET", reset(d), none);
            t.step("touch after the reset (refault)", map.touch(PUD_STRIDE), faults);
        }
        let map = t.need(
            "mmap BAR2 whole at 2 MiB past a 1 GiB boundary",
            PlacedMap::new(d, region_offset(SHMEM_BAR), len, PUD, PMD).map_err(Fail::Os),
            none,
        )?;
        t.step("first touch of every 64 KiB, PUD-misaligned", map.touch(PUD_STRIDE), faults);
        Ok(())
    })
}

fn expect_huge_map_pud(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    let len = t.find("BAR2 size").and_then(|o| o.field("size")).and_then(Val::as_u64).unwrap_or(0);
    e.num("BAR2 size", "size", PUD);
    e.num("first touch of every 64 KiB", "faults", 1);
    e.ok("VFIO_DEVICE_RESET");
    e.num("touch after the reset (refault)", "faults", 1);
    e.num("first touch of every 64 KiB, PUD-misaligned", "faults", len / PMD);
    let mut failures = e.finish();
    for k in 0..4 {
        let a = t.find(&format!("read(2) of sample {k} written through the mapping")).and_then(|o| o.field("bytes"));
        let b = t.find(&format!("sample {k} through the mapping")).and_then(|o| o.field("bytes"));
        if a.is_none() || a != b {
            failures.push(format!("sample {k}: read(2) and the mapping disagree: {a:?} vs {b:?}"));
        }
    }
    failures
}

fn huge_map_outlives_close(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf().to_string());
    scenario(|t| {
        let b = bind_by_override(t, driver, &bdf)?;
        let container = t.need("open /dev/vfio/vfio", Container::open(), none)?;
        let group = t.need("open group", Group::open(&b.group), none)?;
        t.need("VFIO_GROUP_SET_CONTAINER", group.set_container(&container), none)?;
        t.need("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)", container.set_iommu(VFIO_TYPE1v2_IOMMU), none)?;
        let d = t.need("VFIO_GROUP_GET_DEVICE_FD", group.get_device_fd(&bdf), none)?;
        let len = bar_info(t, &d, &bdf)?;
        let map = t.need(
            "mmap BAR2 whole at a 2 MiB-aligned address",
            PlacedMap::new(&d, region_offset(SHMEM_BAR), len, PMD, 0).map_err(Fail::Os),
            none,
        )?;
        t.step("first touch of every page", map.touch(PAGE), faults);
        let p = pattern(0x5eed_0000_0000_0002);
        map.fill(&p);
        drop(d);
        drop(group);
        drop(container);
        t.step("closed: touch every page", map.touch(PAGE), faults);
        t.step("closed: the mapping against the pattern", Ok::<u64, Fail>(compare_map(&map, &p)), differing);
        let map = std::cell::RefCell::new(Some(map));
        let target = bdf.clone();
        waits_for_close(
            t,
            "unbind",
            move || sysfs::unbind(&target),
            |t| {
                if let Some(map) = &*map.borrow() {
                    t.step("while the unbind waits: touch every page", map.touch(PAGE), faults);
                    t.step(
                        "while the unbind waits: the mapping against the pattern",
                        Ok::<u64, Fail>(compare_map(map, &p)),
                        differing,
                    );
                }
            },
            |t| {
                drop(map.borrow_mut().take());
                t.record("munmap", crate::transcript::Outcome::Ok(Vec::new()));
            },
        );
        record_all_gone(t, &bdf, &b, "after unbind", true);
        t.step("clear driver_override", sysfs::clear_driver_override(&bdf), none);
        Ok(())
    })
}

fn expect_huge_map_outlives_close(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    let len = t.find("BAR2 size").and_then(|o| o.field("size")).and_then(Val::as_u64).unwrap_or(0);
    expect_bound(&mut e);
    e.ok("mmap BAR2 whole at a 2 MiB-aligned address");
    e.num("first touch of every page", "faults", len / PMD);
    e.num("closed: touch every page", "faults", 0);
    e.num("closed: the mapping against the pattern", "bytes differing", 0);
    e.val("unbind 1.5 s after it was started, device still open", "finished", &Val::Bool(false));
    e.num("while the unbind waits: touch every page", "faults", 0);
    e.num("while the unbind waits: the mapping against the pattern", "bytes differing", 0);
    e.ok("unbind returns once the device is closed");
    expect_gone(&mut e, "after unbind", true);
    e.ok("clear driver_override");
    e.finish()
}
