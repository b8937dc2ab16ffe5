//! vfio-ioctls-client: a third real client of the VFIO uAPI, written against
//! rust-vmm's vfio-ioctls (the library cloud-hypervisor drives its VFIO
//! devices with), run by the suite on a function bound to the C vfio-pci and
//! then on the same function bound to vfio-pci-rs (tests/src/vmm_client.rs).
//!
//! Usage: vfio-ioctls-client cdev|group BDF [BDF...]
//!
//! `cdev` opens every function through one `VfioIommufd` (IOMMUFD and the
//! device cdev, the crate's `vfio_cdev` feature); `group` through one
//! `VfioContainer` (the legacy container and group path).  Then, on the
//! first function: the device and IRQ information, every region, a config
//! space and a BAR read through the region API, the crate's reset, MSI-X,
//! MSI and INTx enabled, triggered (loopback) and disabled through the
//! crate's IRQ API, and the hot-reset ioctls.  vfio-ioctls has no hot-reset
//! API (its ioctl numbers are private), so those two are issued on the
//! crate's device fd with vfio-bindings' structures; in the group mode the
//! crate keeps its group fds private, so only the zero-length (iommufd-style)
//! reset can be asked for, which the uAPI refuses there with EINVAL.
//!
//! Output: TAP, one `ok N step` / `not ok N step` line per step, preceded by
//! `# ` lines with what the step saw (all of it deterministic, so that the
//! two drivers' outputs can be compared line by line), the plan last.
//! Whatever the crate logs (it reports failed region reads and writes only
//! through `log`) is printed and fails the step it happened in.  Exit 0 iff
//! every step passed.

#![deny(unsafe_op_in_unsafe_fn)]

use iommufd_ioctls::IommuFd;
use std::fmt::Write as _;
use std::fs;
use std::mem::size_of;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use vfio_bindings::bindings::vfio::{
    vfio_device_info, vfio_pci_dependent_device, vfio_pci_hot_reset, vfio_pci_hot_reset_info,
    VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX,
    VFIO_PCI_NUM_IRQS, VFIO_REGION_INFO_FLAG_READ, VFIO_TYPE,
};
use vfio_ioctls::{VfioContainer, VfioDevice, VfioIommufd, VfioOps, VfioRegionInfoCap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmm_sys_util::ioctl::{ioctl_with_mut_ref, ioctl_with_ref};

const VFIO_BASE: u32 = vfio_bindings::bindings::vfio::VFIO_BASE;
vmm_sys_util::ioctl_io_nr!(VFIO_DEVICE_GET_INFO, VFIO_TYPE as u32, VFIO_BASE + 7);
vmm_sys_util::ioctl_io_nr!(VFIO_DEVICE_RESET, VFIO_TYPE as u32, VFIO_BASE + 11);
vmm_sys_util::ioctl_io_nr!(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, VFIO_TYPE as u32, VFIO_BASE + 12);
vmm_sys_util::ioctl_io_nr!(VFIO_DEVICE_PCI_HOT_RESET, VFIO_TYPE as u32, VFIO_BASE + 13);

const PCI_DEVICES: &str = "/sys/bus/pci/devices";
/// A value no register of the suite's devices reads as: a region read that
/// did not happen leaves it in the buffer.
const SENTINEL: u32 = 0xa5a5_a5a5;

// ------------------------------------------------------------- the crate's log

/// The messages the crate logged since the last `take`.
static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn
    }

    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let line = format!("vfio-ioctls {}: {}", r.level(), r.args());
            LOGGED.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    }

    fn flush(&self) {}
}

fn take_logged() -> Vec<String> {
    std::mem::take(&mut *LOGGED.lock().unwrap_or_else(|e| e.into_inner()))
}

// ------------------------------------------------------------------ TAP out

struct Tap {
    n: usize,
    failed: usize,
}

impl Tap {
    /// Report one step: its detail lines, then the verdict.  Anything the
    /// crate logged meanwhile is shown and fails the step.
    fn step(&mut self, name: &str, result: Result<Vec<String>, Vec<String>>) -> bool {
        self.n += 1;
        let logged = take_logged();
        let (mut lines, mut ok) = match result {
            Ok(l) => (l, true),
            Err(l) => (l, false),
        };
        if !logged.is_empty() {
            ok = false;
            lines.extend(logged);
        }
        for l in &lines {
            println!("# {name}: {l}");
        }
        if ok {
            println!("ok {} {name}", self.n);
        } else {
            self.failed += 1;
            println!("not ok {} {name}", self.n);
        }
        ok
    }
}

fn errno_of(ret: i32) -> Result<i32, String> {
    if ret < 0 {
        Err(errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)))
    } else {
        Ok(ret)
    }
}

fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOTTY => "ENOTTY",
        libc::ENOSPC => "ENOSPC",
        _ => "",
    };
    format!("{name} ({e})")
}

// ---------------------------------------------------------------- the steps

enum Mode {
    Cdev,
    Group,
}

/// The crate's wrapper of the IOMMU context the devices are opened against.
fn open_ops(mode: &Mode) -> Result<(Arc<dyn VfioOps>, String), String> {
    match mode {
        Mode::Cdev => {
            let iommufd = IommuFd::new().map_err(|e| format!("IommuFd::new: {e}"))?;
            let ops = VfioIommufd::new(Arc::new(iommufd), None, None).map_err(|e| format!("VfioIommufd::new: {e}"))?;
            Ok((Arc::new(ops), "VfioIommufd (/dev/iommu, an IOAS of its own)".into()))
        }
        Mode::Group => {
            let ops = VfioContainer::new(None).map_err(|e| format!("VfioContainer::new: {e}"))?;
            Ok((Arc::new(ops), "VfioContainer (/dev/vfio/vfio, type1v2)".into()))
        }
    }
}

fn device_info(dev: &VfioDevice) -> Result<Vec<String>, Vec<String>> {
    let mut info = vfio_device_info { argsz: size_of::<vfio_device_info>() as u32, ..Default::default() };
    // SAFETY: VFIO_DEVICE_GET_INFO reads and writes at most `argsz` bytes of
    // `info`, a live vfio_device_info of exactly that size.
    let ret = unsafe { ioctl_with_mut_ref(dev, VFIO_DEVICE_GET_INFO(), &mut info) };
    errno_of(ret).map_err(|e| vec![format!("VFIO_DEVICE_GET_INFO on the crate's fd: {e}")])?;
    Ok(vec![format!("flags {:#x} num_regions {} num_irqs {}", info.flags, info.num_regions, info.num_irqs)])
}

fn regions(dev: &VfioDevice) -> Result<Vec<String>, Vec<String>> {
    let mut lines = Vec::new();
    // BAR0-5, ROM, config: the VGA region (index 8) does not exist on these
    // functions, and the crate logs a warning when asked about it.
    for i in 0..=VFIO_PCI_CONFIG_REGION_INDEX {
        let caps: Vec<String> = dev
            .get_region_caps(i)
            .iter()
            .map(|c| match c {
                VfioRegionInfoCap::SparseMmap(s) => {
                    let areas: Vec<String> = s.areas.iter().map(|a| format!("{:#x}+{:#x}", a.offset, a.size)).collect();
                    format!("sparse-mmap [{}]", areas.join(" "))
                }
                VfioRegionInfoCap::Type(t) => format!("type {}/{}", t.type_, t.subtype),
                VfioRegionInfoCap::MsixMappable => "msix-mappable".into(),
                VfioRegionInfoCap::Nvlink2Ssatgt(_) => "nvlink2-ssatgt".into(),
                VfioRegionInfoCap::Nvlink2Lnkspd(_) => "nvlink2-lnkspd".into(),
            })
            .collect();
        lines.push(format!(
            "region {i}: flags {:#x} size {:#x} offset {:#x} caps [{}]",
            dev.get_region_flags(i),
            dev.get_region_size(i),
            dev.get_region_offset(i),
            caps.join(", ")
        ));
    }
    Ok(lines)
}

fn irqs(dev: &VfioDevice) -> Result<Vec<String>, Vec<String>> {
    let mut lines = Vec::new();
    for i in 0..VFIO_PCI_NUM_IRQS {
        match dev.get_irq_info(i) {
            Some(irq) => lines.push(format!("irq {i}: flags {:#x} count {}", irq.flags, irq.count)),
            None => lines.push(format!("irq {i}: none")),
        }
    }
    lines.push(format!("max_interrupts {}", dev.max_interrupts()));
    Ok(lines)
}

fn read32(dev: &VfioDevice, index: u32, offset: u64) -> u32 {
    let mut buf = SENTINEL.to_le_bytes();
    dev.region_read(index, &mut buf, offset);
    u32::from_le_bytes(buf)
}

fn sysfs_hex(bdf: &str, attr: &str) -> Result<u32, String> {
    let p = Path::new(PCI_DEVICES).join(bdf).join(attr);
    let s = fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).map_err(|e| format!("{}: {e}", p.display()))
}

/// The vendor and device IDs through the config region, against sysfs.
fn config_read(dev: &VfioDevice, bdf: &str) -> Result<Vec<String>, Vec<String>> {
    let id = read32(dev, VFIO_PCI_CONFIG_REGION_INDEX, 0);
    let want = sysfs_hex(bdf, "vendor").and_then(|v| sysfs_hex(bdf, "device").map(|d| (d << 16) | v));
    let line = format!("config dword 0: {id:#010x}");
    match want {
        Ok(w) if w == id => Ok(vec![line]),
        Ok(w) => Err(vec![line, format!("sysfs says vendor/device {w:#010x}")]),
        Err(e) => Err(vec![line, e]),
    }
}

/// The first readable memory BAR's first two dwords, through the region API.
fn bar_read(dev: &VfioDevice) -> Result<Vec<String>, Vec<String>> {
    let bar =
        (0..6).find(|&i| dev.get_region_size(i) >= 8 && dev.get_region_flags(i) & VFIO_REGION_INFO_FLAG_READ != 0);
    let Some(bar) = bar else {
        return Err(vec!["no readable BAR of at least 8 bytes".into()]);
    };
    let values = [read32(dev, bar, 0), read32(dev, bar, 4)];
    let line = format!("BAR{bar} dwords 0 and 1: {:#010x} {:#010x}", values[0], values[1]);
    if values.contains(&SENTINEL) {
        return Err(vec![line, "a read left the sentinel in the buffer: it did not happen".into()]);
    }
    Ok(vec![line])
}

fn reset(dev: &VfioDevice, bdf: &str) -> Result<Vec<String>, Vec<String>> {
    // The crate's reset() issues VFIO_DEVICE_RESET when the device
    // advertises it and drops the result; the device must still answer.
    dev.reset();
    let mut lines = vec!["VfioDevice::reset() returned".to_string()];
    let after = config_read(dev, bdf);
    match after {
        Ok(l) => lines.extend(l.into_iter().map(|l| format!("after the reset: {l}"))),
        Err(l) => return Err([lines, l].concat()),
    }
    // The same ioctl on the crate's fd, for its result.
    // SAFETY: VFIO_DEVICE_RESET takes no argument.
    let ret = unsafe { libc::ioctl(dev.as_raw_fd(), VFIO_DEVICE_RESET() as _, 0) };
    match errno_of(ret) {
        Ok(_) => lines.push("VFIO_DEVICE_RESET on the crate's fd: ok".into()),
        Err(e) => lines.push(format!("VFIO_DEVICE_RESET on the crate's fd: {e}")),
    }
    Ok(lines)
}

/// Enable `index` with one eventfd per vector (at most `max`), trigger the
/// first and last vectors from user space (the loopback the uAPI offers),
/// read the eventfds, disable.
fn irq_cycle(dev: &VfioDevice, index: u32, max: u32) -> Result<Vec<String>, Vec<String>> {
    let mut lines = Vec::new();
    let Some(irq) = dev.get_irq_info(index).copied() else {
        return Err(vec!["no IRQ info for the index".into()]);
    };
    let n = irq.count.min(max);
    if n == 0 {
        return Err(vec![format!("count {}: nothing to enable", irq.count)]);
    }
    let fds: Vec<EventFd> = (0..n)
        .map(|_| EventFd::new(EFD_NONBLOCK))
        .collect::<Result<_, _>>()
        .map_err(|e| vec![format!("eventfd: {e}")])?;
    let refs: Vec<&EventFd> = fds.iter().collect();
    let enabled = match index {
        VFIO_PCI_MSI_IRQ_INDEX => dev.enable_msi(refs),
        VFIO_PCI_MSIX_IRQ_INDEX => dev.enable_msix(refs),
        _ => dev.enable_irq(index, refs),
    };
    let mut ok = true;
    match enabled {
        Ok(()) => lines.push(format!("enabled with {n} eventfd(s)")),
        Err(e) => return Err(vec![format!("enable with {n} eventfd(s): {e}")]),
    }
    let mut vectors = vec![0];
    if n > 1 {
        vectors.push(n - 1);
    }
    for v in vectors {
        let t = dev.trigger_irq(index, v);
        let count = fds[v as usize].read();
        match (t, count) {
            (Ok(()), Ok(c)) => lines.push(format!("vector {v}: triggered, eventfd counted {c}")),
            (Ok(()), Err(e)) => {
                ok = false;
                lines.push(format!("vector {v}: triggered, eventfd not signalled ({e})"));
            }
            (Err(e), _) => {
                ok = false;
                lines.push(format!("vector {v}: trigger: {e}"));
            }
        }
    }
    if index == VFIO_PCI_INTX_IRQ_INDEX {
        match dev.unmask_irq(index) {
            Ok(()) => lines.push("unmasked".into()),
            Err(e) => {
                ok = false;
                lines.push(format!("unmask: {e}"));
            }
        }
    }
    let disabled = match index {
        VFIO_PCI_MSI_IRQ_INDEX => dev.disable_msi(),
        VFIO_PCI_MSIX_IRQ_INDEX => dev.disable_msix(),
        _ => dev.disable_irq(index),
    };
    match disabled {
        Ok(()) => lines.push("disabled".into()),
        Err(e) => {
            ok = false;
            lines.push(format!("disable: {e}"));
        }
    }
    if ok {
        Ok(lines)
    } else {
        Err(lines)
    }
}

/// The most functions a reset set of the suite's topologies has.
const MAX_DEPENDENT: usize = 16;

#[repr(C)]
struct HotResetInfo {
    hdr: vfio_pci_hot_reset_info,
    devices: [vfio_pci_dependent_device; MAX_DEPENDENT],
}

fn hot_reset_info(dev: &VfioDevice) -> Result<Vec<String>, Vec<String>> {
    let mut lines = Vec::new();
    // First with room for none: ENOSPC and the count, as QEMU asks.
    let mut probe =
        vfio_pci_hot_reset_info { argsz: size_of::<vfio_pci_hot_reset_info>() as u32, ..Default::default() };
    // SAFETY: with argsz at the header's size the kernel writes at most the
    // header (flags and count), which `probe` is.
    let ret = unsafe { ioctl_with_mut_ref(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO(), &mut probe) };
    match errno_of(ret) {
        Ok(_) => lines.push(format!("no room for entries: ok?! count {}", probe.count)),
        Err(e) => lines.push(format!("no room for entries: {e}, flags {:#x} count {}", probe.flags, probe.count)),
    }
    let mut info = HotResetInfo { hdr: Default::default(), devices: [Default::default(); MAX_DEPENDENT] };
    info.hdr.argsz = size_of::<HotResetInfo>() as u32;
    // SAFETY: the kernel writes the header and at most `argsz - 12` bytes of
    // entries after it, which is exactly `info`'s size and layout (the
    // header's flexible array member sits at offset 12 = `devices`).
    let ret = unsafe { ioctl_with_mut_ref(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO(), &mut info) };
    if let Err(e) = errno_of(ret) {
        lines.push(format!("with room for {MAX_DEPENDENT}: {e}"));
        return Err(lines);
    }
    lines.push(format!("flags {:#x} count {}", info.hdr.flags, info.hdr.count));
    for d in info.devices.iter().take((info.hdr.count as usize).min(MAX_DEPENDENT)) {
        // SAFETY: both members of the union are a u32.
        let id = unsafe { d.__bindgen_anon_1.devid };
        lines.push(format!("  {:04x}:{:02x}:{:02x}.{} id {:#x}", d.segment, d.bus, d.devfn >> 3, d.devfn & 7, id));
    }
    Ok(lines)
}

/// VFIO_DEVICE_PCI_HOT_RESET with no group fds: the iommufd form, which the
/// cdev mode can use (every affected function opened through the one
/// iommufd) and the group mode cannot (EINVAL).
fn hot_reset(dev: &VfioDevice, mode: &Mode) -> Result<Vec<String>, Vec<String>> {
    let req = vfio_pci_hot_reset { argsz: size_of::<vfio_pci_hot_reset>() as u32, ..Default::default() };
    // SAFETY: with count 0 the kernel reads the 12-byte header only.
    let ret = unsafe { ioctl_with_ref(dev, VFIO_DEVICE_PCI_HOT_RESET(), &req) };
    let got = errno_of(ret).map(|_| ());
    let line = format!("zero-length hot reset: {}", got.as_ref().map_or_else(|e| e.clone(), |()| "ok".into()));
    match (mode, got) {
        (Mode::Cdev, Ok(())) => Ok(vec![line]),
        (Mode::Group, Err(e)) if e.starts_with("EINVAL") => {
            Ok(vec![line, "(the group mode needs the group fds, which vfio-ioctls keeps private)".into()])
        }
        _ => Err(vec![line]),
    }
}

fn run(mode: Mode, bdfs: &[String]) -> i32 {
    let mut tap = Tap { n: 0, failed: 0 };
    println!("TAP version 13");
    let ops = match open_ops(&mode) {
        Ok((ops, what)) => {
            tap.step("open the IOMMU context", Ok(vec![what]));
            ops
        }
        Err(e) => {
            tap.step("open the IOMMU context", Err(vec![e]));
            println!("1..{}", tap.n);
            return 1;
        }
    };
    let mut devices: Vec<VfioDevice> = Vec::new();
    let mut groups: Vec<(String, String)> = Vec::new();
    let mut wanted = 0;
    for bdf in bdfs {
        let path: PathBuf = Path::new(PCI_DEVICES).join(bdf);
        // The container keeps one device per group: dropping the first of
        // two devices of a group unsets the group's container while the
        // other is still open (EBUSY).  So, as its documentation asks, one.
        if let Mode::Group = mode {
            let group = fs::read_link(path.join("iommu_group"))
                .ok()
                .and_then(|g| g.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            if let Some((_, first)) = groups.iter().find(|(g, _)| *g == group) {
                let why =
                    format!("not opened: IOMMU group {group}, like {first} (vfio-ioctls opens one device per group)");
                tap.step(&format!("open {bdf}"), Ok(vec![why]));
                continue;
            }
            groups.push((group, bdf.clone()));
        }
        wanted += 1;
        match VfioDevice::new(&path, Arc::clone(&ops)) {
            Ok(d) => {
                tap.step(&format!("open {bdf}"), Ok(vec!["VfioDevice::new: ok".into()]));
                devices.push(d);
            }
            Err(e) => {
                let mut why = format!("VfioDevice::new: {e}");
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    let _ = write!(why, ": {s}");
                    src = s.source();
                }
                tap.step(&format!("open {bdf}"), Err(vec![why]));
            }
        }
    }
    if !devices.is_empty() && devices.len() == wanted {
        let dev = &devices[0];
        let bdf = bdfs[0].as_str();
        tap.step("device info", device_info(dev));
        tap.step("regions", regions(dev));
        tap.step("irqs", irqs(dev));
        tap.step("config read", config_read(dev, bdf));
        tap.step("BAR read", bar_read(dev));
        tap.step("reset", reset(dev, bdf));
        tap.step("MSI-X", irq_cycle(dev, VFIO_PCI_MSIX_IRQ_INDEX, u32::MAX));
        tap.step("MSI", irq_cycle(dev, VFIO_PCI_MSI_IRQ_INDEX, 1));
        tap.step("INTx", irq_cycle(dev, VFIO_PCI_INTX_IRQ_INDEX, 1));
        tap.step("hot reset info", hot_reset_info(dev));
        tap.step("hot reset", hot_reset(dev, &mode));
        tap.step("config read after the hot reset", config_read(dev, bdf));
    }
    // Closing: the crate's Drop detaches (cdev) or unsets the container
    // (group) and unwraps the result; a panic there is a failed close.
    let n = devices.len();
    let closed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(devices)));
    drop(ops);
    tap.step(
        "close",
        match closed {
            Ok(()) => Ok(vec![format!("{n} device(s) dropped")]),
            Err(_) => Err(vec!["the crate panicked dropping a device".into()]),
        },
    );
    println!("1..{}", tap.n);
    i32::from(tap.failed > 0)
}

fn main() {
    let _ = log::set_logger(&Logger).map(|()| log::set_max_level(log::LevelFilter::Warn));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.first().map(String::as_str) {
        Some("cdev") => Mode::Cdev,
        Some("group") => Mode::Group,
        _ => {
            eprintln!("usage: vfio-ioctls-client cdev|group BDF [BDF...]");
            std::process::exit(2);
        }
    };
    if args.len() < 2 {
        eprintln!("usage: vfio-ioctls-client cdev|group BDF [BDF...]");
        std::process::exit(2);
    }
    std::process::exit(run(mode, &args[1..]));
}
