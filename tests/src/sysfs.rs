//! sysfs: the topology file and the functions below each port, PCI ids in
//! the two formats drivers accept, the bind/unbind knobs (driver_override,
//! drivers_probe, new_id, remove_id, unbind) and the nodes a bound VFIO
//! device must have.
//!
//! Paths are built from a root so the pure parts can be exercised on a fake
//! tree by `--self-check`.

use crate::sys::{dev_major, dev_minor, Fail};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

pub const PCI_DEVICES: &str = "/sys/bus/pci/devices";
pub const PCI_DRIVERS: &str = "/sys/bus/pci/drivers";
pub const PCI_DRIVERS_PROBE: &str = "/sys/bus/pci/drivers_probe";
pub const PCI_DRIVERS_AUTOPROBE: &str = "/sys/bus/pci/drivers_autoprobe";
pub const DEFAULT_TOPOLOGY: &str = "/etc/vfio-pci-rs/topology";

/// How long a state change (a bind, an unbind, a node appearing) may take
/// to become visible before the test concludes it did not happen.
pub const SETTLE: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------- topology

/// One line of the topology file: a name and the root port it lives under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub name: String,
    pub port: String,
}

/// Parse the topology file: `NAME PORT` per line, `#` starts a comment,
/// blank lines ignored.  Names must be unique and ports must be BDFs.
pub fn parse_topology(text: &str) -> Result<Vec<Topology>, String> {
    let mut out: Vec<Topology> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let [name, port] = words[..] else {
            return Err(format!("line {}: expected `NAME PORT`, got {raw:?}", i + 1));
        };
        if !is_bdf(port) {
            return Err(format!("line {}: {port:?} is not a PCI address like 0000:00:02.0", i + 1));
        }
        if out.iter().any(|t| t.name == name) {
            return Err(format!("line {}: topology {name:?} listed twice", i + 1));
        }
        out.push(Topology { name: name.to_string(), port: port.to_string() });
    }
    Ok(out)
}

/// `DDDD:BB:DD.F` in lower-case hex, as sysfs spells PCI addresses.
pub fn is_bdf(s: &str) -> bool {
    let b = s.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && hex(0..4)
        && hex(5..7)
        && hex(8..10)
        && (b'0'..=b'7').contains(&b[11])
}

/// The non-bridge functions below `port`, sorted.  `devices` is the
/// directory holding `port` (normally /sys/bus/pci/devices); bridges (class
/// 0x0604xx: the switch's upstream and downstream ports) are descended into.
/// A `port` that is not a bridge (an endpoint on the root bus) is its own
/// only function.
pub fn functions_below(devices: &Path, port: &str) -> Result<Vec<String>, Fail> {
    if !is_bridge(devices, port)? {
        return Ok(vec![port.to_string()]);
    }
    let mut out = Vec::new();
    walk(&devices.join(port), &mut out)?;
    out.sort();
    Ok(out)
}

/// Whether `bdf` (in `devices`) is a PCI-to-PCI bridge (class 0x0604xx).
pub fn is_bridge(devices: &Path, bdf: &str) -> Result<bool, Fail> {
    Ok(read_hex(&devices.join(bdf).join("class"))? >> 8 == 0x0604)
}

fn walk(dir: &Path, out: &mut Vec<String>) -> Result<(), Fail> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_bdf(&name) {
            continue;
        }
        let child = entry.path();
        let class = read_hex(&child.join("class"))?;
        if class >> 8 == 0x0604 {
            walk(&child, out)?;
        } else {
            out.push(name);
        }
    }
    Ok(())
}

// ----------------------------------------------------------------- PCI ids

/// A PCI id as matched by a driver's dynamic id table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciId {
    pub vendor: u16,
    pub device: u16,
    /// subvendor, subdevice; None means PCI_ANY_ID.
    pub subsystem: Option<(u16, u16)>,
    /// class, class_mask; None means any class.
    pub class: Option<(u32, u32)>,
}

impl PciId {
    pub const fn new(vendor: u16, device: u16) -> PciId {
        PciId { vendor, device, subsystem: None, class: None }
    }

    /// The `ids=` module parameter format of vfio-pci:
    /// `vendor:device[:subvendor:subdevice[:class:class_mask]]`, hex.
    pub fn ids_param(&self) -> String {
        let mut s = format!("{:04x}:{:04x}", self.vendor, self.device);
        if self.subsystem.is_some() || self.class.is_some() {
            let (sv, sd) = self.subsystem.map_or((ANY, ANY), |(v, d)| (v as u32, d as u32));
            s += &format!(":{sv:x}:{sd:x}");
        }
        if let Some((c, m)) = self.class {
            s += &format!(":{c:x}:{m:x}");
        }
        s
    }

    /// The new_id/remove_id format: `vendor device [subvendor subdevice
    /// [class class_mask]]`, hex.
    pub fn new_id_line(&self) -> String {
        let mut s = format!("{:04x} {:04x}", self.vendor, self.device);
        if self.subsystem.is_some() || self.class.is_some() {
            let (sv, sd) = self.subsystem.map_or((ANY, ANY), |(v, d)| (v as u32, d as u32));
            s += &format!(" {sv:x} {sd:x}");
        }
        if let Some((c, m)) = self.class {
            s += &format!(" {c:x} {m:x}");
        }
        s
    }

    /// The `ids=` value for several ids: comma separated.
    pub fn ids_param_list(ids: &[PciId]) -> String {
        ids.iter().map(PciId::ids_param).collect::<Vec<_>>().join(",")
    }

    /// Read a function's vendor and device ids from sysfs.
    pub fn of(bdf: &str) -> Result<PciId, Fail> {
        let dir = device_dir(bdf);
        let vendor = read_hex(&dir.join("vendor"))?;
        let device = read_hex(&dir.join("device"))?;
        match (u16::try_from(vendor), u16::try_from(device)) {
            (Ok(v), Ok(d)) => Ok(PciId::new(v, d)),
            _ => Err(Fail::other(format!("{bdf}: vendor {vendor:#x} / device {device:#x} out of range"))),
        }
    }
}

/// PCI_ANY_ID as the parsers print it.
const ANY: u32 = 0xffff_ffff;

/// Parse a sysfs hex attribute such as `0x8086\n` or `0x060400\n`.
pub fn parse_hex(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let digits = t.strip_prefix("0x").unwrap_or(t);
    u32::from_str_radix(digits, 16).map_err(|_| format!("{t:?} is not a hex number"))
}

fn read_hex(path: &Path) -> Result<u32, Fail> {
    let text = fs::read_to_string(path)?;
    parse_hex(&text).map_err(|e| Fail::other(format!("{}: {e}", path.display())))
}

/// `DDDD:BB:DD.F` as (segment, bus, devfn), the fields of a
/// vfio_pci_dependent_device.
pub fn parse_bdf(s: &str) -> Option<(u16, u8, u8)> {
    if !is_bdf(s) {
        return None;
    }
    let seg = u16::from_str_radix(&s[0..4], 16).ok()?;
    let bus = u8::from_str_radix(&s[5..7], 16).ok()?;
    let dev = u8::from_str_radix(&s[8..10], 16).ok()?;
    let func = s[11..12].parse::<u8>().ok()?;
    if dev > 0x1f {
        return None;
    }
    Some((seg, bus, dev << 3 | func))
}

/// The inverse of `parse_bdf`.
pub fn format_bdf(segment: u16, bus: u8, devfn: u8) -> String {
    format!("{segment:04x}:{bus:02x}:{:02x}.{}", devfn >> 3, devfn & 7)
}

/// What the suite knows about a device model it runs on: its native Linux
/// driver (the module and the PCI driver have the same name) and a BAR0
/// register that a reset returns to 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Model {
    pub id: PciId,
    pub native_driver: &'static str,
    /// Offset and name of a 32-bit BAR0 register whose reset value is 0 and
    /// that keeps a written value (its low bits are masked by the device).
    pub mark: (usize, &'static str),
}

/// The models of the emulated topologies: e1000e (82574L) and igb (82576).
pub const MODELS: &[Model] = &[
    Model { id: PciId::new(0x8086, 0x10d3), native_driver: "e1000e", mark: (0x2800, "RDBAL") },
    Model { id: PciId::new(0x8086, 0x10c9), native_driver: "igb", mark: (0xc000, "RDBAL0") },
];

/// The model of `bdf`, if the suite knows it.
pub fn model_of(bdf: &str) -> Option<&'static Model> {
    let id = PciId::of(bdf).ok()?;
    MODELS.iter().find(|m| m.id.vendor == id.vendor && m.id.device == id.device)
}

// --------------------------------------------------------- binding knobs

/// The bridge whose secondary bus `bdf` is on (its sysfs parent), as a PCI address.
pub fn parent_bridge(bdf: &str) -> Result<String, Fail> {
    let real = fs::canonicalize(device_dir(bdf))?;
    real.parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.contains(':') && n.contains('.'))
        .ok_or_else(|| Fail::other(format!("{bdf} has no parent bridge")))
}

pub fn device_dir(bdf: &str) -> PathBuf {
    Path::new(PCI_DEVICES).join(bdf)
}

pub fn driver_dir(driver: &str) -> PathBuf {
    Path::new(PCI_DRIVERS).join(driver)
}

/// Write `value` to a sysfs attribute in a single write(2), as echo does.
pub fn write_attr(path: &Path, value: &str) -> Result<(), Fail> {
    fs::write(path, value.as_bytes()).map_err(Fail::from)
}

pub fn set_driver_override(bdf: &str, driver: &str) -> Result<(), Fail> {
    write_attr(&device_dir(bdf).join("driver_override"), driver)
}

pub fn clear_driver_override(bdf: &str) -> Result<(), Fail> {
    write_attr(&device_dir(bdf).join("driver_override"), "\n")
}

/// The current driver_override, None when unset (sysfs shows `(null)`).
pub fn driver_override(bdf: &str) -> Result<Option<String>, Fail> {
    let text = fs::read_to_string(device_dir(bdf).join("driver_override"))?;
    Ok(parse_driver_override(&text))
}

pub fn parse_driver_override(text: &str) -> Option<String> {
    match text.trim() {
        "" | "(null)" => None,
        s => Some(s.to_string()),
    }
}

/// The running kernel's version as (major, minor), from `/proc/sys/kernel/osrelease`: some
/// rules of the C vfio-pci (the reference) differ between the kernels the suite runs on.
pub fn kernel_version() -> Option<(u32, u32)> {
    parse_kernel_release(&fs::read_to_string("/proc/sys/kernel/osrelease").ok()?)
}

/// (major, minor) of a kernel release string such as `7.3.4` or `7.2.12-rc1`.
pub fn parse_kernel_release(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Ask the bus to probe `bdf` again (honours driver_override).
pub fn drivers_probe(bdf: &str) -> Result<(), Fail> {
    write_attr(Path::new(PCI_DRIVERS_PROBE), bdf)
}

pub fn new_id(driver: &str, id: &PciId) -> Result<(), Fail> {
    write_attr(&driver_dir(driver).join("new_id"), &id.new_id_line())
}

pub fn remove_id(driver: &str, id: &PciId) -> Result<(), Fail> {
    write_attr(&driver_dir(driver).join("remove_id"), &id.new_id_line())
}

/// Whether the PCI bus binds drivers to devices by itself (a driver that
/// registers attaches to every unbound matching device).
pub fn autoprobe() -> Result<bool, Fail> {
    Ok(fs::read_to_string(PCI_DRIVERS_AUTOPROBE)?.trim() != "0")
}

pub fn set_autoprobe(on: bool) -> Result<(), Fail> {
    write_attr(Path::new(PCI_DRIVERS_AUTOPROBE), if on { "1" } else { "0" })
}

/// /sys/bus/pci/devices/BDF/resourceN: BAR N, mmap-able by root.
pub fn resource_path(bdf: &str, bar: u32) -> PathBuf {
    device_dir(bdf).join(format!("resource{bar}"))
}

/// Unbind `bdf` from whatever driver it has, through the device's own
/// `driver/unbind`.
pub fn unbind(bdf: &str) -> Result<(), Fail> {
    write_attr(&device_dir(bdf).join("driver").join("unbind"), bdf)
}

/// Unbind `bdf` through the driver's `unbind` attribute.
pub fn unbind_from(driver: &str, bdf: &str) -> Result<(), Fail> {
    write_attr(&driver_dir(driver).join("unbind"), bdf)
}

/// The name of the driver `bdf` is bound to (basename of the `driver`
/// link); ENOENT when unbound.
pub fn current_driver(bdf: &str) -> Result<String, Fail> {
    link_basename(&device_dir(bdf).join("driver"))
}

/// The devices bound to `driver` (its BDF-named links); empty when the
/// driver is not registered.
pub fn bound_devices(driver: &str) -> Vec<String> {
    let Ok(rd) = fs::read_dir(driver_dir(driver)) else {
        return Vec::new();
    };
    let mut v: Vec<String> =
        rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| is_bdf(n)).collect();
    v.sort();
    v
}

// ------------------------------------------------------------------ SR-IOV

/// Whether `bdf` is an SR-IOV physical function (sysfs lists sriov_totalvfs).
pub fn is_pf(bdf: &str) -> bool {
    device_dir(bdf).join("sriov_totalvfs").exists()
}

/// A PF's `sriov_totalvfs` or `sriov_numvfs`.
pub fn sriov_count(bdf: &str, attr: &str) -> Result<u32, Fail> {
    let text = fs::read_to_string(device_dir(bdf).join(attr))?;
    text.trim().parse().map_err(|_| Fail::other(format!("{bdf}/{attr}: {text:?} is not a number")))
}

/// Write a PF's `sriov_numvfs` (the PF driver's sriov_configure).
pub fn set_sriov_numvfs(bdf: &str, count: u32) -> Result<(), Fail> {
    write_attr(&device_dir(bdf).join("sriov_numvfs"), &count.to_string())
}

/// The VFs of a PF, in VF order (its `virtfnN` links).
pub fn virtfns(bdf: &str) -> Vec<String> {
    let dir = device_dir(bdf);
    (0..)
        .map_while(|n| fs::read_link(dir.join(format!("virtfn{n}"))).ok())
        .filter_map(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// The function's power state as the PCI core knows it (`power_state`: D0, D3hot, ...).
pub fn power_state(bdf: &str) -> Result<String, Fail> {
    Ok(fs::read_to_string(device_dir(bdf).join("power_state"))?.trim().to_string())
}

/// The IOMMU group number of `bdf` (basename of `iommu_group`).
pub fn iommu_group(bdf: &str) -> Result<String, Fail> {
    link_basename(&device_dir(bdf).join("iommu_group"))
}

fn link_basename(link: &Path) -> Result<String, Fail> {
    let target = fs::read_link(link)?;
    target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Fail::other(format!("{} points to {}", link.display(), target.display())))
}

/// The entries of /sys/bus/pci/devices/BDF/vfio-dev/ (the cdev's sysfs
/// device, `vfioN`); ENOENT when the directory does not exist.
pub fn vfio_dev_entries(bdf: &str) -> Result<Vec<String>, Fail> {
    let mut v: Vec<String> = fs::read_dir(device_dir(bdf).join("vfio-dev"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Ok(v)
}

/// The index N of a `vfioN` cdev name.
pub fn cdev_index(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("vfio")?;
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Parse a sysfs `dev` attribute, `MAJOR:MINOR\n`.
pub fn parse_dev(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A device node as stat(2) sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    pub is_char: bool,
    pub major: u32,
    pub minor: u32,
}

pub fn stat_node(path: &Path) -> Result<Node, Fail> {
    let md = fs::metadata(path)?;
    Ok(Node { is_char: md.file_type().is_char_device(), major: dev_major(md.rdev()), minor: dev_minor(md.rdev()) })
}

pub fn read_dev(path: &Path) -> Result<(u32, u32), Fail> {
    let text = fs::read_to_string(path)?;
    parse_dev(&text).ok_or_else(|| Fail::other(format!("{}: {text:?} is not MAJOR:MINOR", path.display())))
}

/// Whether `path` exists (without following a final symlink): Ok, or the
/// errno lstat(2) gave.
pub fn exists(path: &Path) -> Result<(), Fail> {
    fs::symlink_metadata(path).map(|_| ()).map_err(Fail::from)
}

/// Poll `cond` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Wait for `path` to exist (or, with `present == false`, to be gone).
pub fn wait_path(path: &Path, present: bool) -> bool {
    wait_until(SETTLE, || exists(path).is_ok() == present)
}
