//! Scenarios for VFIO_DEVICE_IOEVENTFD: the argument checks and their
//! errnos, a signalled eventfd writing a device register through the BAR
//! (the receive descriptor base register the suite marks elsewhere, read
//! back through read(2)), no write while memory decode is off or after
//! de-assignment, and every ioeventfd gone after the device is closed.
//!
//! The write happens in the kernel when the eventfd is signalled, so a step
//! that expects it polls the register for a bounded time; a step that
//! expects none gives it the same time to show up.  They run on the "slot"
//! (e1000e) and "sriov" (igb) topologies.

use crate::interrupts::{interrupt_topologies, signal_eventfd, take_count};
use crate::regions::{msix_table, with_group, with_group_device};
use crate::scenarios::{none, Ctx, Scenario};
use crate::sys::{ioctl_ptr, ioctl_val, new_eventfd, Errno, Fail};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Fields, Outcome, Transcript, Val};
use crate::uapi::*;
use crate::vfio::Device;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::raw::c_void;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

const VFIO_DEVICE_IOEVENTFD: std::os::raw::c_ulong = io(VFIO_TYPE, VFIO_BASE + 16);

const SIZE_8: u32 = 1 << 0;
const SIZE_16: u32 = 1 << 1;
const SIZE_32: u32 = 1 << 2;
const SIZE_64: u32 = 1 << 3;

/// `offsetofend(struct vfio_device_ioeventfd, fd)`.
const MINSZ: u32 = 28;
/// vfio-pci's VFIO_PCI_IOEVENTFD_MAX.
const MAX: u64 = 1000;

const REGION_SHIFT: u32 = 40;
const ROM_INDEX: u64 = 6;
const CONFIG_INDEX: u64 = 7;
const VGA_INDEX: u64 = 8;
const PCI_COMMAND: u64 = 4;
const PCI_COMMAND_MEMORY: u16 = 1 << 1;

/// How long a write the kernel should make may take to show up, and how
/// long one that should not is given.
const WRITE_WAIT: Duration = Duration::from_millis(300);

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "ioeventfd_errnos",
            rule: "VFIO_DEVICE_IOEVENTFD: argsz < 28, unknown flags, not exactly one size, the 8-byte size before 7.3 (7.3 takes it), fd < -1, a region that is not a BAR, an unimplemented BAR, a write past the BAR's end or touching the MSI-X table are EINVAL; a closed fd EBADF, a file that is not an eventfd EINVAL; the same offset, size and data again is EEXIST whatever the fd; fd -1 de-assigns a match or is ENODEV; the 1001st is ENOSPC",
            loads_module: false,
            applies: interrupt_topologies,
            run: ioeventfd_errnos,
            expect: expect_ioeventfd_errnos,
        },
        Scenario {
            name: "ioeventfd_write",
            rule: "a signalled ioeventfd writes its data at its BAR offset (4, 2 and 1 bytes), consuming the eventfd's count; nothing is written while memory decode is off; after de-assignment signals only count up the eventfd; closing the eventfd keeps the ioeventfd registered (EEXIST) until de-assigned; signals racing VFIO_DEVICE_RESET leave it working; a signal during a reset writes once the reset is over (so the reset does not undo it)",
            loads_module: false,
            applies: interrupt_topologies,
            run: ioeventfd_write,
            expect: expect_ioeventfd_write,
        },
        Scenario {
            name: "ioeventfd_teardown_on_close",
            rule: "closing the device releases every ioeventfd: after reopening, a signal writes nothing and counts up the eventfd, and the same ioeventfds can be assigned again",
            loads_module: false,
            applies: interrupt_topologies,
            run: ioeventfd_teardown_on_close,
            expect: expect_ioeventfd_teardown_on_close,
        },
    ]
}

// ----------------------------------------------------------------- helpers

/// The file offset of `offset` in region `index`.
fn at(index: u64, offset: u64) -> u64 {
    (index << REGION_SHIFT) + offset
}

/// One VFIO_DEVICE_IOEVENTFD call with every field given.
fn ioeventfd_raw(d: &Device, argsz: u32, flags: u32, offset: u64, data: u64, fd: i32) -> Result<i32, Fail> {
    let mut buf = [0u8; 32];
    buf[0..4].copy_from_slice(&argsz.to_ne_bytes());
    buf[4..8].copy_from_slice(&flags.to_ne_bytes());
    buf[8..16].copy_from_slice(&offset.to_ne_bytes());
    buf[16..24].copy_from_slice(&data.to_ne_bytes());
    buf[24..28].copy_from_slice(&fd.to_ne_bytes());
    // SAFETY: the kernel reads the 28 bytes up to `fd` and writes nothing;
    // the buffer is 32 bytes and lives across the call.
    Ok(unsafe { ioctl_ptr(d, VFIO_DEVICE_IOEVENTFD, buf.as_mut_ptr().cast::<c_void>()) }?)
}

/// Assign (`fd >= 0`) or de-assign (`fd == -1`) a write of `data`, `flags`
/// wide, at file offset `offset`.
pub(crate) fn ioeventfd(d: &Device, flags: u32, offset: u64, data: u64, fd: i32) -> Result<i32, Fail> {
    ioeventfd_raw(d, 32, flags, offset, data, fd)
}

fn ret(v: &i32, _: &mut Transcript) -> Fields {
    vec![("ret", Val::Num(*v as u64))]
}

fn eventfd(t: &mut Transcript, step: &str) -> Result<OwnedFd, Abort> {
    t.need(step, new_eventfd().map_err(Fail::Os), none)
}

/// The length of BAR `bar` as the PCI core assigned it (sysfs `resource`).
fn bar_len(bdf: &str, bar: usize) -> Result<u64, Fail> {
    let text = std::fs::read_to_string(sysfs::device_dir(bdf).join("resource"))?;
    let line = text.lines().nth(bar).ok_or_else(|| Fail::other("short resource file"))?;
    let hex = |s: Option<&str>| {
        s.and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .ok_or_else(|| Fail::other(format!("bad resource line {line:?}")))
    };
    let mut fields = line.split_whitespace();
    let (start, end) = (hex(fields.next())?, hex(fields.next())?);
    Ok(if end == 0 { 0 } else { end - start + 1 })
}

fn read32(d: &Device, offset: u64) -> Result<u32, Fail> {
    let mut b = [0u8; 4];
    let n = d.file().read_at(&mut b, offset)?;
    if n != 4 {
        return Err(Fail::other(format!("short read: {n} bytes")));
    }
    Ok(u32::from_le_bytes(b))
}

fn write32(d: &Device, offset: u64, value: u32) -> Result<(), Fail> {
    let n = d.file().write_at(&value.to_le_bytes(), offset)?;
    if n != 4 {
        return Err(Fail::other(format!("short write: {n} bytes")));
    }
    Ok(())
}

/// Read the register at `offset` until it holds `want` or `WRITE_WAIT` has
/// passed: the last value read.
fn poll_for(d: &Device, offset: u64, want: u32) -> Result<u32, Fail> {
    let deadline = Instant::now() + WRITE_WAIT;
    loop {
        let v = read32(d, offset)?;
        if v == want || Instant::now() >= deadline {
            return Ok(v);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn value(v: &u32, _: &mut Transcript) -> Fields {
    vec![("value", Val::Hex((*v).into()))]
}

/// Signal `fd`, then record the register at `offset` once it holds `want`
/// (or whatever it holds after the wait).
fn signal_and_read(t: &mut Transcript, step: &str, d: &Device, fd: &OwnedFd, offset: u64, want: u32) {
    let read = signal_eventfd(fd).and_then(|_| poll_for(d, offset, want));
    t.step(step, read, value);
}

/// Record the eventfd's count (0 when the kernel consumed every signal).
fn record_count(t: &mut Transcript, step: &str, fd: &OwnedFd) {
    t.step(step, take_count(fd, Duration::ZERO), |n, _| vec![("count", Val::Num(*n))]);
}

/// The register the scenarios write: the model's mark register in BAR0.
fn mark(bdf: &str) -> Result<u64, Abort> {
    Ok(sysfs::model_of(bdf).ok_or(Abort)?.mark.0 as u64)
}

/// Run `body` with the device open through its group, its mark register
/// and two fresh eventfds.
fn with_eventfds(
    c: &Ctx,
    body: impl FnOnce(&mut Transcript, &Device, u64, [OwnedFd; 2]) -> Result<(), Abort>,
) -> Transcript {
    let bdf = c.bdf().to_string();
    with_group_device(c, move |t, d| {
        let mark = mark(&bdf)?;
        let e = [eventfd(t, "eventfd 0")?, eventfd(t, "eventfd 1")?];
        body(t, d, mark, e)
    })
}

// ---------------------------------------------------------- ioeventfd_errnos

fn ioeventfd_errnos(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_eventfds(c, move |t, d, mark, [e0, e1]| {
        let (fd0, fd1) = (e0.as_raw_fd(), e1.as_raw_fd());
        let bar0 = t.need("BAR0 length (sysfs)", bar_len(&bdf, 0), |n, _| vec![("len", Val::Hex(*n))])?;

        t.step("argsz 27", ioeventfd_raw(d, MINSZ - 1, SIZE_32, mark, 0, fd0), ret);
        t.step("argsz 0", ioeventfd_raw(d, 0, SIZE_32, mark, 0, fd0), ret);
        // SAFETY: a null argument: the kernel's copy from user space fails.
        let null = unsafe { ioctl_val(d, VFIO_DEVICE_IOEVENTFD, 0) };
        t.step("null argument", null.map_err(Fail::Os), ret);
        t.step("flags 0 (no size)", ioeventfd(d, 0, mark, 0, fd0), ret);
        t.step("two sizes (1 and 2 bytes)", ioeventfd(d, SIZE_8 | SIZE_16, mark, 0, fd0), ret);
        t.step("unknown flag bit 4", ioeventfd(d, SIZE_32 | 1 << 4, mark, 0, fd0), ret);
        t.step("unknown flag bit 31", ioeventfd(d, SIZE_32 | 1 << 31, mark, 0, fd0), ret);
        t.step("8 bytes", ioeventfd(d, SIZE_64, mark, 0, fd0), ret);
        t.step("8 bytes, de-assign", ioeventfd(d, SIZE_64, mark, 0, -1), ret);
        t.step("fd -2", ioeventfd(d, SIZE_32, mark, 0, -2), ret);
        t.step("fd i32::MIN", ioeventfd(d, SIZE_32, mark, 0, i32::MIN), ret);
        t.step("config space", ioeventfd(d, SIZE_32, at(CONFIG_INDEX, PCI_COMMAND), 0, fd0), ret);
        t.step("the ROM", ioeventfd(d, SIZE_32, at(ROM_INDEX, 0), 0, fd0), ret);
        t.step("VGA region", ioeventfd(d, SIZE_8, at(VGA_INDEX, 0), 0, fd0), ret);
        t.step("region index 9", ioeventfd(d, SIZE_8, at(9, 0), 0, fd0), ret);
        t.step("region index 0xffffff", ioeventfd(d, SIZE_8, at(0xff_ffff, 0), 0, fd0), ret);
        t.step("offset with bit 63 set", ioeventfd(d, SIZE_8, 1 << 63, 0, fd0), ret);
        t.step("BAR5 (unimplemented)", ioeventfd(d, SIZE_8, at(5, 0), 0, fd0), ret);
        t.step("4 bytes at BAR0 end - 2", ioeventfd(d, SIZE_32, bar0 - 2, 0, fd0), ret);
        t.step("1 byte at BAR0 end", ioeventfd(d, SIZE_8, bar0, 0, fd0), ret);
        t.step("4 bytes at BAR0 end - 4", ioeventfd(d, SIZE_32, bar0 - 4, 0, fd0), ret);
        t.step("de-assign it", ioeventfd(d, SIZE_32, bar0 - 4, 0, -1), ret);
        let table = t.need("find the MSI-X table", msix_table(&bdf), |m, _| match m {
            Some((bar, off, size)) => {
                vec![("bar", Val::Num((*bar).into())), ("offset", Val::Hex(*off)), ("size", Val::Hex(*size))]
            }
            None => vec![("bar", Val::text("none"))],
        })?;
        if let Some((bar, off, size)) = table {
            let bar = u64::from(bar);
            t.step("the MSI-X table's first entry", ioeventfd(d, SIZE_32, at(bar, off), 0, fd0), ret);
            t.step("the MSI-X table's last byte", ioeventfd(d, SIZE_8, at(bar, off + size - 1), 0, fd0), ret);
            t.step("2 bytes straddling the table's end", ioeventfd(d, SIZE_16, at(bar, off + size - 1), 0, fd0), ret);
            t.step("right after the MSI-X table", ioeventfd(d, SIZE_32, at(bar, off + size), 0, fd0), ret);
            t.step("de-assign right after the table", ioeventfd(d, SIZE_32, at(bar, off + size), 0, -1), ret);
            if off >= 4 {
                t.step("right before the MSI-X table", ioeventfd(d, SIZE_32, at(bar, off - 4), 0, fd0), ret);
                t.step("de-assign right before the table", ioeventfd(d, SIZE_32, at(bar, off - 4), 0, -1), ret);
            }
        }
        t.step("BAR2 (an I/O BAR on both models)", ioeventfd(d, SIZE_32, at(2, 0), 0, fd0), ret);
        t.step("de-assign BAR2", ioeventfd(d, SIZE_32, at(2, 0), 0, -1), ret);

        let closed = new_eventfd().map(|e| e.as_raw_fd());
        let closed = t.need("a closed fd number", closed.map_err(Fail::Os), none)?;
        t.step("a closed fd", ioeventfd(d, SIZE_32, mark, 0, closed), ret);
        t.step("the device fd (not an eventfd)", ioeventfd(d, SIZE_32, mark, 0, d.as_raw_fd()), ret);
        t.step("de-assign what was never assigned", ioeventfd(d, SIZE_32, mark, 0, -1), ret);

        t.step("argsz 28 (up to fd)", ioeventfd_raw(d, MINSZ, SIZE_32, mark, 0x80, fd0), ret);
        t.step("the same again", ioeventfd(d, SIZE_32, mark, 0x80, fd0), ret);
        t.step("the same on another eventfd", ioeventfd(d, SIZE_32, mark, 0x80, fd1), ret);
        t.step("other data", ioeventfd(d, SIZE_32, mark, 0x100, fd0), ret);
        t.step("other size (2 bytes)", ioeventfd(d, SIZE_16, mark, 0x80, fd0), ret);
        t.step("other size (1 byte)", ioeventfd(d, SIZE_8, mark, 0x80, fd1), ret);
        t.step("data differing above the size (1 byte)", ioeventfd(d, SIZE_8, mark, 0x180, fd1), ret);
        t.step("de-assign the 4-byte one", ioeventfd(d, SIZE_32, mark, 0x80, -1), ret);
        t.step("de-assign it again", ioeventfd(d, SIZE_32, mark, 0x80, -1), ret);
        t.step("assign it again on another eventfd", ioeventfd(d, SIZE_32, mark, 0x80, fd1), ret);

        // Fill up to the cap: 5 are assigned now.
        let mut assigned = 5u64;
        let mut first_error = None;
        for data in 0x1000u64.. {
            if assigned == MAX {
                break;
            }
            match ioeventfd(d, SIZE_32, mark + 4, data, fd0) {
                Ok(_) => assigned += 1,
                Err(e) => {
                    first_error = Some(e);
                    break;
                }
            }
        }
        let filled = match first_error {
            None => Ok(assigned),
            Some(e) => Err(e),
        };
        t.step("assign up to 1000", filled, |n, _| vec![("assigned", Val::Num(*n))]);
        t.step("the 1001st", ioeventfd(d, SIZE_32, mark + 8, 0, fd0), ret);
        t.step("a duplicate at the cap", ioeventfd(d, SIZE_32, mark, 0x80, fd0), ret);
        t.step("de-assign one at the cap", ioeventfd(d, SIZE_32, mark + 4, 0x1000, -1), ret);
        t.step("the 1000th again", ioeventfd(d, SIZE_32, mark + 8, 0, fd0), ret);
        t.step("the 1001st again", ioeventfd(d, SIZE_32, mark + 8, 1, fd0), ret);
        Ok(())
    })
}

fn expect_ioeventfd_errnos(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    for step in [
        "argsz 27",
        "argsz 0",
        "flags 0 (no size)",
        "two sizes (1 and 2 bytes)",
        "unknown flag bit 4",
        "unknown flag bit 31",
        "fd -2",
        "fd i32::MIN",
        "config space",
        "the ROM",
        "VGA region",
        "region index 9",
        "region index 0xffffff",
        "offset with bit 63 set",
        "BAR5 (unimplemented)",
        "4 bytes at BAR0 end - 2",
        "1 byte at BAR0 end",
        "the device fd (not an eventfd)",
    ] {
        e.err(step, Errno::EINVAL);
    }
    e.err("null argument", Errno::EFAULT);
    // 7.3's vfio-pci dropped 7.2's refusal of 8-byte ioeventfds.
    if sysfs::kernel_version().is_some_and(|v| v >= (7, 3)) {
        e.num("8 bytes", "ret", 0);
        e.num("8 bytes, de-assign", "ret", 0);
    } else {
        e.err("8 bytes", Errno::EINVAL);
        e.err("8 bytes, de-assign", Errno::EINVAL);
    }
    e.num("4 bytes at BAR0 end - 4", "ret", 0);
    e.num("de-assign it", "ret", 0);
    if t.find("the MSI-X table's first entry").is_some() {
        e.err("the MSI-X table's first entry", Errno::EINVAL);
        e.err("the MSI-X table's last byte", Errno::EINVAL);
        e.err("2 bytes straddling the table's end", Errno::EINVAL);
        e.num("right after the MSI-X table", "ret", 0);
        e.num("de-assign right after the table", "ret", 0);
    }
    e.num("BAR2 (an I/O BAR on both models)", "ret", 0);
    e.err("a closed fd", Errno::EBADF);
    e.err("de-assign what was never assigned", Errno::ENODEV);
    e.num("argsz 28 (up to fd)", "ret", 0);
    e.err("the same again", Errno::EEXIST);
    e.err("the same on another eventfd", Errno::EEXIST);
    e.num("other data", "ret", 0);
    e.num("other size (2 bytes)", "ret", 0);
    e.num("other size (1 byte)", "ret", 0);
    e.num("data differing above the size (1 byte)", "ret", 0);
    e.num("de-assign the 4-byte one", "ret", 0);
    e.err("de-assign it again", Errno::ENODEV);
    e.num("assign it again on another eventfd", "ret", 0);
    e.num("assign up to 1000", "assigned", MAX);
    e.err("the 1001st", Errno::ENOSPC);
    e.err("a duplicate at the cap", Errno::EEXIST);
    e.num("de-assign one at the cap", "ret", 0);
    e.num("the 1000th again", "ret", 0);
    e.err("the 1001st again", Errno::ENOSPC);
    e.finish()
}

// ----------------------------------------------------------- ioeventfd_write

const VALUE_A: u32 = 0x0a0b_0c80;
const VALUE_B: u32 = 0x5555_aa00;

/// The narrow ioeventfds of `ioeventfd_write`: name, size flag, offset in
/// the mark register, data.
const NARROW: [(&str, u32, u64, u16); 2] =
    [("2 bytes of 0xbeef at +2", SIZE_16, 2, 0xbeef), ("1 byte of 0xab at +1", SIZE_8, 1, 0xab)];

/// The bytes a size flag writes.
fn width(flags: u32) -> usize {
    match flags {
        SIZE_8 => 1,
        SIZE_16 => 2,
        _ => 4,
    }
}

fn ioeventfd_write(c: &Ctx) -> Transcript {
    with_eventfds(c, |t, d, mark, [e0, e1]| {
        let (fd0, fd1) = (e0.as_raw_fd(), e1.as_raw_fd());

        t.need("clear the mark register", write32(d, mark, 0), none)?;
        t.need("assign 4 bytes of A", ioeventfd(d, SIZE_32, mark, VALUE_A.into(), fd0), ret)?;
        t.step("the register before any signal", read32(d, mark), value);
        signal_and_read(t, "signal: the register holds A", d, &e0, mark, VALUE_A);
        record_count(t, "eventfd 0's count after the write", &e0);

        // The emulated registers take narrow writes their own way: compare
        // with the same bytes written through write(2).
        for (name, flags, off, data) in NARROW {
            let bytes = &data.to_le_bytes()[..width(flags)];
            t.step(&format!("{name}: write A"), write32(d, mark, VALUE_A), none);
            let direct = d.file().write_all_at(bytes, mark + off).map_err(Fail::from).and_then(|()| read32(d, mark));
            t.step(&format!("{name} through write(2)"), direct, value);
            t.step(&format!("{name}: write A again"), write32(d, mark, VALUE_A), none);
            t.step(&format!("{name}: assign"), ioeventfd(d, flags, mark + off, data.into(), fd1), ret);
            let want = t.find(&format!("{name} through write(2)")).and_then(|o| o.field("value")).and_then(Val::as_u64);
            signal_and_read(t, &format!("{name} through the ioeventfd"), d, &e1, mark, want.unwrap_or(0) as u32);
            t.step(&format!("{name}: de-assign"), ioeventfd(d, flags, mark + off, data.into(), -1), ret);
        }

        // Memory decode off in the virtual command register: no write.
        t.step("write B through read(2)/write(2)", write32(d, mark, VALUE_B), none);
        let config = |o| at(CONFIG_INDEX, o);
        let mut cmd = [0u8; 2];
        t.need(
            "read the command register",
            d.file().read_exact_at(&mut cmd, config(PCI_COMMAND)).map_err(Fail::from),
            none,
        )?;
        let cmd = u16::from_le_bytes(cmd);
        let off = (cmd & !PCI_COMMAND_MEMORY).to_le_bytes();
        t.need("memory decode off", d.file().write_all_at(&off, config(PCI_COMMAND)).map_err(Fail::from), none)?;
        let signalled = signal_eventfd(&e0).map(|_| std::thread::sleep(WRITE_WAIT));
        t.step("signal with decode off", signalled, none);
        t.step("read with decode off", read32(d, mark), value);
        let on = (cmd | PCI_COMMAND_MEMORY).to_le_bytes();
        t.need("memory decode on", d.file().write_all_at(&on, config(PCI_COMMAND)).map_err(Fail::from), none)?;
        t.step("the register still holds B", read32(d, mark), value);
        record_count(t, "eventfd 0's count after the dropped write", &e0);
        signal_and_read(t, "signal with decode on again: A", d, &e0, mark, VALUE_A);

        // De-assignment stops the writes; the signals stay in the eventfd.
        t.step("de-assign A", ioeventfd(d, SIZE_32, mark, VALUE_A.into(), -1), ret);
        t.step("write B again", write32(d, mark, VALUE_B), none);
        signal_and_read(t, "signal after de-assignment: still B", d, &e0, mark, VALUE_A);
        record_count(t, "eventfd 0's count after de-assignment", &e0);

        // Closing the eventfd releases its virqfd, not the ioeventfd.
        let e2 = eventfd(t, "eventfd 2")?;
        t.step("assign A on eventfd 2", ioeventfd(d, SIZE_32, mark, VALUE_A.into(), e2.as_raw_fd()), ret);
        drop(e2);
        t.step("assign A again after closing eventfd 2", ioeventfd(d, SIZE_32, mark, VALUE_A.into(), fd0), ret);
        t.step("de-assign A after closing eventfd 2", ioeventfd(d, SIZE_32, mark, VALUE_A.into(), -1), ret);

        // Signals while resets hold the memory gate take the deferred path.
        t.step("assign A for the race", ioeventfd(d, SIZE_32, mark, VALUE_A.into(), fd0), ret);
        let raced = std::thread::scope(|s| {
            let resets = s.spawn(|| (0..3).map(|_| d.reset().is_ok()).filter(|ok| *ok).count());
            let start = Instant::now();
            let mut signals = 0u64;
            while !resets.is_finished() && start.elapsed() < Duration::from_secs(20) {
                if signal_eventfd(&e0).is_ok() {
                    signals += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            (resets.join().unwrap_or(0), signals)
        });
        t.step("signals racing 3 VFIO_DEVICE_RESETs", Ok::<_, Fail>(raced), |(resets, signals), t| {
            t.info.push(format!("{signals} signals during the resets"));
            vec![("resets", Val::Num(*resets as u64))]
        });
        // A signal 20 ms into a reset finds the gate held: the write waits
        // for the reset to end, so the reset cannot undo it (igb's FLR
        // clears the register; QEMU's e1000e PM reset leaves it alone).
        let cleared =
            write32(d, mark, VALUE_B).and_then(|()| d.reset().map_err(Fail::Os)).and_then(|()| read32(d, mark));
        t.info.push(format!("B, then a reset without a signal: register {cleared:x?}"));
        t.step("write B before the reset", write32(d, mark, VALUE_B), none);
        let overlapped = std::thread::scope(|s| {
            let reset = s.spawn(|| d.reset());
            std::thread::sleep(Duration::from_millis(20));
            let signalled = signal_eventfd(&e0);
            reset.join().unwrap_or(Err(Errno::EINVAL)).map_err(Fail::Os).and(signalled)
        });
        t.step("a signal 20 ms into a reset: A afterwards", overlapped.and_then(|_| poll_for(d, mark, VALUE_A)), value);
        t.step("clear the register after the race", write32(d, mark, 0), none);
        signal_and_read(t, "signal after the race: A", d, &e0, mark, VALUE_A);
        record_count(t, "eventfd 0's count after the race", &e0);
        Ok(())
    })
}

fn expect_ioeventfd_write(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.num("the register before any signal", "value", 0);
    e.num("signal: the register holds A", "value", VALUE_A.into());
    e.num("eventfd 0's count after the write", "count", 0);
    let mut failures = Vec::new();
    for (name, ..) in NARROW {
        e.num(&format!("{name}: assign"), "ret", 0);
        let [direct, via] = [" through write(2)", " through the ioeventfd"]
            .map(|how| t.find(&format!("{name}{how}")).and_then(|o| o.field("value")).and_then(Val::as_u64));
        if direct.is_none() || direct != via || direct == Some(VALUE_A.into()) {
            failures.push(format!(
                "{name}: the ioeventfd should change the register as write(2) does: {direct:?} vs {via:?}"
            ));
        }
    }
    e.err("read with decode off", Errno::EIO);
    e.num("the register still holds B", "value", VALUE_B.into());
    e.num("eventfd 0's count after the dropped write", "count", 0);
    e.num("signal with decode on again: A", "value", VALUE_A.into());
    e.num("signal after de-assignment: still B", "value", VALUE_B.into());
    e.num("eventfd 0's count after de-assignment", "count", 1);
    e.num("assign A on eventfd 2", "ret", 0);
    e.err("assign A again after closing eventfd 2", Errno::EEXIST);
    e.num("de-assign A after closing eventfd 2", "ret", 0);
    e.ok("signals racing 3 VFIO_DEVICE_RESETs");
    e.num("a signal 20 ms into a reset: A afterwards", "value", VALUE_A.into());
    e.num("signal after the race: A", "value", VALUE_A.into());
    e.num("eventfd 0's count after the race", "count", 0);
    failures.extend(e.finish());
    failures
}

// ------------------------------------------------ ioeventfd_teardown_on_close

fn ioeventfd_teardown_on_close(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_group(c, move |t, group| {
        let mark = mark(&bdf)?;
        let e0 = eventfd(t, "eventfd 0")?;
        let e1 = eventfd(t, "eventfd 1")?;
        {
            let d = t.need("first open", group.get_device_fd(&bdf), none)?;
            t.step("assign A at the mark register", ioeventfd(&d, SIZE_32, mark, VALUE_A.into(), e0.as_raw_fd()), ret);
            t.step("assign 2 bytes at +4", ioeventfd(&d, SIZE_16, mark + 4, 0x1234, e1.as_raw_fd()), ret);
            t.step("clear the register", write32(&d, mark, 0), none);
            signal_and_read(t, "signal while open: A", &d, &e0, mark, VALUE_A);
        }
        t.record("close", Outcome::Ok(Vec::new()));
        {
            let d = t.need("second open", group.get_device_fd(&bdf), none)?;
            t.step("write B after reopening", write32(&d, mark, VALUE_B), none);
            signal_and_read(t, "signal after reopening: still B", &d, &e0, mark, VALUE_A);
            record_count(t, "eventfd 0's count after reopening", &e0);
            t.step("de-assign A after reopening", ioeventfd(&d, SIZE_32, mark, VALUE_A.into(), -1), ret);
            t.step("assign A again", ioeventfd(&d, SIZE_32, mark, VALUE_A.into(), e0.as_raw_fd()), ret);
            t.step("assign the 2-byte one again", ioeventfd(&d, SIZE_16, mark + 4, 0x1234, e1.as_raw_fd()), ret);
            signal_and_read(t, "signal after assigning again: A", &d, &e0, mark, VALUE_A);
        }
        t.record("close with ioeventfds assigned", Outcome::Ok(Vec::new()));
        t.step("signal after the second close", signal_eventfd(&e1), none);
        record_count(t, "eventfd 1's count after the second close", &e1);
        Ok(())
    })
}

fn expect_ioeventfd_teardown_on_close(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.num("assign A at the mark register", "ret", 0);
    e.num("signal while open: A", "value", VALUE_A.into());
    e.num("signal after reopening: still B", "value", VALUE_B.into());
    e.num("eventfd 0's count after reopening", "count", 1);
    e.err("de-assign A after reopening", Errno::ENODEV);
    e.num("assign A again", "ret", 0);
    e.num("assign the 2-byte one again", "ret", 0);
    e.num("signal after assigning again: A", "value", VALUE_A.into());
    e.num("eventfd 1's count after the second close", "count", 1);
    e.finish()
}
