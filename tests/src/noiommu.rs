//! The noiommu scenarios: VFIO's unsafe no-IOMMU mode, in the guest booted without an IOMMU
//! and with `vfio.enable_unsafe_noiommu_mode=1` (scripts/guest.sh, the noiommu guest; the test
//! binary's `--noiommu`). Only that guest runs them, and it runs nothing else.
//!
//! Without an IOMMU no function has an IOMMU group until a VFIO driver registers it: the VFIO
//! core then gives it a group of its own named `vfio-noiommu`, whose node is
//! `/dev/vfio/noiommu-N`, taints the kernel (TAINT_USER) and warns; in 7.3 (IOMMUFD_NOIOMMU)
//! its cdev is `/dev/vfio/devices/noiommu-vfioN`, in 7.2 it has none (a sysfs `vfio-dev/vfioN`
//! entry only, and the cdev scenario checks just that). The group path needs a
//! container with the VFIO_NOIOMMU_IOMMU "IOMMU" (or an iommufd as the compat container); the
//! cdev path binds to an iommufd as usual. A function with no driver has no group, so a hot
//! reset reaching it is refused (EPERM) where with an IOMMU it would list its group.
//!
//! Group ids are allocated at bind time, so they are normalised (`group#1` is the first
//! distinct one seen) as dev_ids are (`ictx1#1`); every other byte is kept.

use crate::driver::Driver;
use crate::interrupts::{expect_irq_msi_device, msi_device_steps};
use crate::kunit::{kmsg_lines, log_of};
use crate::regions::{
    bytes, get_region_info, pread, pwrite, region_fields, CONFIG_INDEX, REGION_INFO_FLAG_CAPS, REGION_INFO_SIZE,
};
use crate::reset::{hot_reset_info_header, push_hot_reset_info_entries, Ids, LABELS};
use crate::scenarios::{driver_val, expect_get_info, none, record_get_info, scenario, Ctx, Scenario, Site};
use crate::sys::{Errno, Fail, Mmio};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Fields, Outcome, Transcript, Val};
use crate::uapi::*;
use crate::vfio::{self, Container, Device, Group, HotResetInfoCall, Iommufd};
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The topologies the noiommu guest runs its scenarios on: a two-function device behind a
/// root port without hotplug (bus reset, one dev_set, one noiommu group per function).
pub const TOPOLOGIES: [&str; 1] = ["multifunction"];

/// The topology whose function plays the foreign group (a group not in the reset).
const FOREIGN_TOPOLOGY: &str = "slot";

/// TAINT_USER and TAINT_WARN, bits of /proc/sys/kernel/tainted.
const TAINT_USER: u64 = 1 << 6;
const TAINT_WARN: u64 = 1 << 9;

/// The noiommu scenarios, in order.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "noiommu_group_path",
            rule: "noiommu: binding gives the function a vfio-noiommu IOMMU group (/dev/vfio/noiommu-N, no /dev/vfio/N), a noiommu-vfioN cdev, TAINT_USER and the core's taint warnings, no WARN; the container offers VFIO_NOIOMMU_IOMMU and refuses type1 for the group; GET_DEVICE_FD needs it set, then GET_INFO, REGION_INFO, config and BAR reads work; unbinding removes the group",
            loads_module: false,
            applies: two_functions,
            run: group_path,
            expect: expect_group_path,
        },
        Scenario {
            name: "noiommu_group_iommufd",
            rule: "noiommu: an iommufd as the group's container (the compat no-IOMMU mode) opens the device; GET_PCI_HOT_RESET_INFO then names groups, as on a container",
            loads_module: false,
            applies: two_functions,
            run: group_iommufd,
            expect: expect_group_iommufd,
        },
        Scenario {
            name: "noiommu_hot_reset_groups",
            rule: "noiommu, group path: GET_PCI_HOT_RESET_INFO is ENOSPC with the count when too small, EPERM while an affected function has no driver (so no group), else one entry per function with its noiommu group id; PCI_HOT_RESET needs the groups of every affected function, all in the driver's dev_set (EINVAL otherwise, EBADF for a closed fd, EINVAL for a non-group fd, too many fds or flags)",
            loads_module: false,
            applies: two_functions,
            run: hot_reset_groups,
            expect: expect_hot_reset_groups,
        },
        Scenario {
            name: "noiommu_msi",
            rule: "noiommu, group path: MSI and MSI-X raised by the device reach their eventfds as with an IOMMU (irq_msi_device's rule): each vector's own, none while detached, the pending message on reattach",
            loads_module: false,
            applies: two_functions,
            run: msi,
            expect: expect_msi,
        },
        Scenario {
            name: "noiommu_cdev",
            rule: "noiommu, cdev path: BIND_IOMMUFD with iommufd -1 is EINVAL; binding to an iommufd and attaching an IOAS work; the group cannot be opened meanwhile (EBUSY); GET_PCI_HOT_RESET_INFO gives dev_ids, NOT_OWNED for a function unopened or bound in another iommufd (DEV_ID_OWNED clear); the zero-length PCI_HOT_RESET works once every function is bound in the caller's iommufd, EINVAL before, and a group fd array is EINVAL",
            loads_module: false,
            applies: two_functions,
            run: cdev_path,
            expect: expect_cdev_path,
        },
    ]
}

fn two_functions(site: &Site) -> Result<(), String> {
    if !site.hot_reset || site.functions.len() != 2 {
        return Err("the noiommu scenarios want two functions that one bus reset reaches".into());
    }
    Ok(())
}

// ---------------------------------------------------------------- plumbing

/// A function bound to a VFIO driver in noiommu mode.
struct Member {
    label: &'static str,
    bdf: String,
    /// The number N of its IOMMU group (`/dev/vfio/noiommu-N`).
    group: String,
    /// Its `vfio-dev/` entry and cdev name: `noiommu-vfioN` (in 7.2 `vfioN`, with no cdev).
    cdev: String,
}

/// The noiommu group node of group `n`.
fn group_name(n: &str) -> String {
    format!("noiommu-{n}")
}

/// Whether noiommu devices have a cdev: from 7.3 on (IOMMUFD_NOIOMMU, which VFIO_NOIOMMU
/// selects with VFIO_DEVICE_CDEV), named `noiommu-vfioN`; in 7.2 the core gives them a sysfs
/// `vfio-dev/vfioN` entry and no cdev.
fn noiommu_cdev() -> bool {
    sysfs::kernel_version().is_some_and(|v| v >= (7, 3))
}

/// The entry name a noiommu device gets under `vfio-dev/`, normalised.
fn entry_val() -> Val {
    Val::Norm(if noiommu_cdev() { "noiommu-vfio<N>" } else { "vfio<N>" }.into())
}

/// The normalised form of a `vfio-dev/` entry name: `noiommu-vfio<N>` or `vfio<N>`.
fn entry_norm(name: &str) -> Option<Val> {
    match name.strip_prefix("noiommu-") {
        Some(rest) => sysfs::cdev_index(rest).map(|_| Val::Norm("noiommu-vfio<N>".into())),
        None => sysfs::cdev_index(name).map(|_| Val::Norm("vfio<N>".into())),
    }
}

/// The group number as recorded: normalised in the id space "group".
fn group_val(t: &mut Transcript, n: &str) -> Val {
    match n.parse::<u64>() {
        Ok(raw) => t.norm_id("group", raw),
        Err(_) => Val::text(n),
    }
}

/// A driver name as recorded: the driver under test and the other VFIO driver normalised.
fn other_val(c: &Ctx, name: &str) -> Val {
    if name == c.other.name {
        Val::Norm("the other VFIO driver".into())
    } else {
        driver_val(c.driver, name)
    }
}

/// The kernel log's lines about the noiommu mode, with the driver's name and the function's
/// address normalised (the core prints them with dev_warn: `DRIVER BDF: text`).
fn noiommu_lines(records: &[String], driver: &Driver, bdf: &str) -> Vec<String> {
    kmsg_lines(records)
        .into_iter()
        .filter(|l| l.contains("noiommu") && l.contains(bdf))
        .map(|l| l.replace(&format!("{} {bdf}", driver.name), "<driver> <function>").replace(bdf, "<function>"))
        .collect()
}

/// The kernel's taint flags.
fn tainted() -> Result<u64, Fail> {
    let text = fs::read_to_string("/proc/sys/kernel/tainted")?;
    text.trim().parse().map_err(|_| Fail::other(format!("/proc/sys/kernel/tainted: {text:?}")))
}

/// driver_override + drivers_probe of function `bdf` with `driver`, then its noiommu group
/// and cdev: steps "`label`: ...". Records the kernel log lines about noiommu the bind
/// printed when `log` is set.
fn bind(
    t: &mut Transcript,
    c: &Ctx,
    driver: &Driver,
    label: &'static str,
    bdf: &str,
    log: bool,
) -> Result<Member, Abort> {
    let bound = log_of(|| {
        sysfs::set_driver_override(bdf, driver.name)?;
        sysfs::drivers_probe(bdf)?;
        sysfs::wait_until(sysfs::SETTLE, || sysfs::current_driver(bdf).is_ok());
        sysfs::current_driver(bdf)
    });
    let (result, records) = match bound {
        Ok((result, records)) => (result, records),
        Err(e) => (Err(Fail::other(e)), Vec::new()),
    };
    let name = t.need(&format!("bind {label}"), result, |d, _| vec![("driver", other_val(c, d))])?;
    if name != driver.name {
        return Err(Abort);
    }
    if log {
        let lines = noiommu_lines(&records, driver, bdf);
        t.record(
            &format!("{label}: kernel log of the bind"),
            Outcome::Ok(vec![("noiommu lines", Val::text(lines.join(" | ")))]),
        );
    }
    let link = sysfs::device_dir(bdf).join("iommu_group");
    sysfs::wait_path(&link, true);
    let group =
        t.need(&format!("{label}: iommu_group"), sysfs::iommu_group(bdf), |g, t| vec![("group", group_val(t, g))])?;
    let gname = Path::new("/sys/kernel/iommu_groups").join(&group).join("name");
    t.step(&format!("{label}: IOMMU group name"), fs::read_to_string(&gname).map_err(Fail::from), |n, _| {
        vec![("name", Val::text(n.trim()))]
    });
    let gpath = PathBuf::from(vfio::group_path(&group_name(&group)));
    sysfs::wait_path(&gpath, true);
    t.need(&format!("{label}: group node"), sysfs::stat_node(&gpath), |n, _| {
        vec![("path", Val::Norm("/dev/vfio/noiommu-<group>".into())), ("char device", Val::Bool(n.is_char))]
    })?;
    t.step(&format!("{label}: /dev/vfio/<group>"), sysfs::exists(Path::new(&vfio::group_path(&group))), none);
    let dir = sysfs::device_dir(bdf).join("vfio-dev");
    sysfs::wait_path(&dir, true);
    let entries = sysfs::vfio_dev_entries(bdf).and_then(|v| match &v[..] {
        [one] if entry_norm(one).is_some() => Ok(one.clone()),
        _ => Err(Fail::other(format!("expected exactly one [noiommu-]vfioN in {}, found {v:?}", dir.display()))),
    });
    let cdev = t.need(&format!("{label}: sysfs vfio-dev entry"), entries, |e, _| {
        vec![("entry", entry_norm(e).unwrap_or(Val::text(e)))]
    })?;
    // The cdev, if the kernel gives noiommu devices one.
    let node_path = PathBuf::from(vfio::cdev_path(&cdev));
    sysfs::wait_path(&node_path, noiommu_cdev());
    let node = sysfs::stat_node(&node_path).and_then(|n| sysfs::read_dev(&dir.join(&cdev).join("dev")).map(|d| (n, d)));
    t.step(&format!("{label}: cdev node"), node, |(n, d), _| {
        vec![("char device", Val::Bool(n.is_char)), ("dev matches sysfs", Val::Bool((n.major, n.minor) == *d))]
    });
    Ok(Member { label, bdf: bdf.to_string(), group, cdev })
}

/// Bind function `i` of the site to the driver under test.
fn bind_site_member(t: &mut Transcript, c: &Ctx, i: usize) -> Result<Member, Abort> {
    bind(t, c, c.driver, LABELS[i], &c.site.functions[i], false)
}

/// Unbind a function and clear its override: step "unbind `label`".
fn unbind(t: &mut Transcript, label: &str, bdf: &str) {
    let r = sysfs::unbind(bdf).and_then(|()| sysfs::clear_driver_override(bdf));
    t.step(&format!("unbind {label}"), r, none);
}

/// The function of the foreign topology, whose group covers nothing a reset of the site
/// reaches.
fn foreign_function() -> Result<String, Fail> {
    let path =
        std::env::var_os("VFIO_PCI_RS_TOPOLOGY").map_or_else(|| PathBuf::from(sysfs::DEFAULT_TOPOLOGY), PathBuf::from);
    let text = fs::read_to_string(&path)?;
    let topologies = sysfs::parse_topology(&text).map_err(Fail::other)?;
    let topo = topologies
        .into_iter()
        .find(|t| t.name == FOREIGN_TOPOLOGY)
        .ok_or_else(|| Fail::other(format!("no topology {FOREIGN_TOPOLOGY}")))?;
    let functions = sysfs::functions_below(Path::new(sysfs::PCI_DEVICES), &topo.port)?;
    functions.into_iter().next().ok_or_else(|| Fail::other(format!("no function below {}", topo.port)))
}

/// Open the noiommu group of `m`.
fn open_group(t: &mut Transcript, step: &str, m: &Member) -> Result<Group, Abort> {
    t.need(step, Group::open(&group_name(&m.group)), none)
}

/// A noiommu container holding the group of `m`, and the group.
fn noiommu_container(t: &mut Transcript, p: &str, m: &Member) -> Result<(Container, Group), Abort> {
    let container = t.need(&format!("{p}open /dev/vfio/vfio"), Container::open(), none)?;
    let group = open_group(t, &format!("{p}open the group of {}", m.label), m)?;
    t.need(&format!("{p}VFIO_GROUP_SET_CONTAINER({})", m.label), group.set_container(&container), none)?;
    t.need(&format!("{p}VFIO_SET_IOMMU(VFIO_NOIOMMU_IOMMU)"), container.set_iommu(VFIO_NOIOMMU_IOMMU), |r, _| {
        vec![("returned", Val::Num(*r as u64))]
    })?;
    Ok((container, group))
}

/// The fields of a GET_PCI_HOT_RESET_INFO call: the header, and when it succeeded each entry
/// (function and normalised id) and whether the bytes past the entries are untouched.
fn info_fields(t: &mut Transcript, call: &HotResetInfoCall, ids: Ids) -> Fields {
    let mut f = hot_reset_info_header(call);
    if call.result.is_ok() {
        push_hot_reset_info_entries(t, call, ids, &mut f);
    }
    f
}

/// GET_PCI_HOT_RESET_INFO with `argsz`: step `step` (its errno on failure), and on failure
/// step "`step`: buffer" with the header as the call left it (ENOSPC writes the count back).
fn record_info(t: &mut Transcript, step: &str, d: &Device, argsz: u32, ids: Ids) {
    let call = match d.hot_reset_info(argsz) {
        Ok(call) => call,
        Err(e) => {
            t.record(step, e.into());
            return;
        }
    };
    match call.result {
        Ok(()) => {
            let f = info_fields(t, &call, ids);
            t.record(step, Outcome::Ok(f));
        }
        Err(e) => {
            t.record(step, Outcome::Err(e));
            let f = info_fields(t, &call, ids);
            t.record(format!("{step}: buffer"), Outcome::Ok(f));
        }
    }
}

/// Room for the header and eight entries.
const INFO_ARGSZ: u32 = VFIO_PCI_HOT_RESET_INFO_MINSZ + 8 * 8;

/// GET_INFO, the region infos (with their capability chains), 64 bytes of config space and
/// the first register of BAR0, as a VMM reads them first.
fn record_device_use(t: &mut Transcript, p: &str, d: &Device) {
    record_get_info(t, d);
    for index in 0..=VFIO_PCI_NUM_REGIONS {
        let name = format!("{p}GET_REGION_INFO index {index}");
        let Some(r) = t.step(&name, get_region_info(d, index, REGION_INFO_SIZE), |r, _| region_fields(r)) else {
            continue;
        };
        if r.flags & REGION_INFO_FLAG_CAPS != 0 && r.argsz > REGION_INFO_SIZE {
            t.step(&format!("{name} with argsz {}", r.argsz), get_region_info(d, index, r.argsz), |r, _| {
                region_fields(r)
            });
        }
    }
    t.step(&format!("{p}read config 0..64"), pread(d, CONFIG_INDEX, 0, 64), bytes);
    t.step(&format!("{p}read BAR0 0..4"), pread(d, 0, 0, 4), bytes);
    // Unmapped before the step ends: a mapping holds the device file open.
    let mapped = Mmio::map_at(d, 0, 4096, true)
        .map_err(Fail::Os)
        .and_then(|m| m.read32(0).ok_or_else(|| Fail::other("outside the mapping")));
    t.step(&format!("{p}mmap BAR0, read 0..4"), mapped, |v, _| vec![("bytes", Val::Bytes(v.to_ne_bytes().to_vec()))]);
}

/// A register of BAR0 whose reset value is 0 (sysfs::MODELS): the mark a hot reset clears.
const MARK: u32 = 0x5a5a_5a00;

/// Write MARK to A's mark register through the device file and read it back: step "`p`mark A".
fn mark(t: &mut Transcript, p: &str, d: &Device, bdf: &str) -> Option<u64> {
    let offset = sysfs::model_of(bdf)?.mark.0 as u64;
    let r = pwrite(d, 0, offset, &MARK.to_ne_bytes()).and_then(|_| pread(d, 0, offset, 4));
    t.step(&format!("{p}mark A"), r, bytes);
    Some(offset)
}

/// A's mark register after a reset: step "`p`A's mark after the reset".
fn read_mark(t: &mut Transcript, p: &str, d: &Device, offset: Option<u64>) {
    let r = match offset {
        Some(o) => pread(d, 0, o, 4),
        None => Err(Fail::other("no mark register known for this device model")),
    };
    t.step(&format!("{p}A's mark after the reset"), r, bytes);
}

fn expect_mark(e: &mut Expect, p: &str) {
    e.val(&format!("{p}mark A"), "bytes", &Val::Bytes(MARK.to_ne_bytes().to_vec()));
    e.val(&format!("{p}A's mark after the reset"), "bytes", &Val::Bytes(vec![0; 4]));
}

fn expect_device_use(e: &mut Expect, t: &Transcript, p: &str) {
    expect_get_info(e);
    e.num(&format!("{p}GET_REGION_INFO index 7"), "flags", 0x3);
    e.num(&format!("{p}GET_REGION_INFO index 7"), "size", 4096);
    e.err(&format!("{p}GET_REGION_INFO index 9"), Errno::EINVAL);
    e.num(&format!("{p}read config 0..64"), "len", 64);
    e.num(&format!("{p}read BAR0 0..4"), "len", 4);
    let read = format!("{p}read BAR0 0..4");
    let first = field_of(t, &read, "bytes");
    e.val(&format!("{p}mmap BAR0, read 0..4"), "bytes", &first);
}

/// Field `key` of step `step` (a placeholder that matches nothing when it is missing).
fn field_of(t: &Transcript, step: &str, key: &str) -> Val {
    t.find(step).and_then(|o| o.field(key)).cloned().unwrap_or(Val::text(format!("{step}: {key}")))
}

/// After an unbind: the group, its node and the cdev are gone.
fn record_gone(t: &mut Transcript, m: &Member) {
    let l = m.label;
    let gone = |t: &mut Transcript, step: String, path: &Path| {
        sysfs::wait_path(path, false);
        t.step(&step, sysfs::exists(path), |_, _| vec![("still there", Val::Bool(true))]);
    };
    gone(t, format!("{l}: iommu_group link after unbind"), &sysfs::device_dir(&m.bdf).join("iommu_group"));
    gone(t, format!("{l}: IOMMU group after unbind"), &Path::new("/sys/kernel/iommu_groups").join(&m.group));
    gone(t, format!("{l}: group node after unbind"), Path::new(&vfio::group_path(&group_name(&m.group))));
    gone(t, format!("{l}: cdev node after unbind"), Path::new(&vfio::cdev_path(&m.cdev)));
}

fn expect_gone(e: &mut Expect, l: &str) {
    e.err(&format!("{l}: iommu_group link after unbind"), Errno::ENOENT);
    e.err(&format!("{l}: IOMMU group after unbind"), Errno::ENOENT);
    e.err(&format!("{l}: group node after unbind"), Errno::ENOENT);
    e.err(&format!("{l}: cdev node after unbind"), Errno::ENOENT);
}

fn expect_bound(e: &mut Expect, l: &str) {
    e.val(&format!("bind {l}"), "driver", &Val::Norm("driver under test".into()));
    e.ok(&format!("{l}: iommu_group"));
    e.val(&format!("{l}: IOMMU group name"), "name", &Val::text("vfio-noiommu"));
    e.val(&format!("{l}: group node"), "char device", &Val::Bool(true));
    e.err(&format!("{l}: /dev/vfio/<group>"), Errno::ENOENT);
    e.val(&format!("{l}: sysfs vfio-dev entry"), "entry", &entry_val());
    if noiommu_cdev() {
        e.val(&format!("{l}: cdev node"), "char device", &Val::Bool(true));
        e.val(&format!("{l}: cdev node"), "dev matches sysfs", &Val::Bool(true));
    } else {
        e.err(&format!("{l}: cdev node"), Errno::ENOENT);
    }
}

// --------------------------------------------------------------- scenarios

fn group_path(c: &Ctx) -> Transcript {
    scenario(|t| {
        let a = bind(t, c, c.driver, "A", c.bdf(), true)?;
        t.step("taint after the bind", tainted(), |v, _| {
            vec![("TAINT_USER", Val::Bool(v & TAINT_USER != 0)), ("TAINT_WARN", Val::Bool(v & TAINT_WARN != 0))]
        });
        let result = (|| {
            let container = t.need("open /dev/vfio/vfio", Container::open(), none)?;
            t.step("VFIO_GET_API_VERSION", container.api_version(), |v, _| vec![("version", Val::Num(*v as u64))]);
            for (name, ext) in [("VFIO_NOIOMMU_IOMMU", VFIO_NOIOMMU_IOMMU), ("VFIO_TYPE1v2_IOMMU", VFIO_TYPE1v2_IOMMU)]
            {
                t.step(&format!("VFIO_CHECK_EXTENSION({name})"), container.check_extension(ext), |v, _| {
                    vec![("supported", Val::Num(*v as u64))]
                });
            }
            let group = open_group(t, "open /dev/vfio/noiommu-<group>", &a)?;
            t.step("VFIO_GROUP_GET_STATUS", group.status(argsz::<VfioGroupStatus>()), |s, _| {
                vec![("flags", Val::Hex(s.flags.into()))]
            });
            t.step("VFIO_GROUP_GET_DEVICE_FD without a container", group.get_device_fd(&a.bdf), none);
            t.need("VFIO_GROUP_SET_CONTAINER", group.set_container(&container), none)?;
            t.step("VFIO_GROUP_GET_STATUS in the container", group.status(argsz::<VfioGroupStatus>()), |s, _| {
                vec![("flags", Val::Hex(s.flags.into()))]
            });
            t.step("VFIO_GROUP_GET_DEVICE_FD before SET_IOMMU", group.get_device_fd(&a.bdf), none);
            t.step("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)", container.set_iommu(VFIO_TYPE1v2_IOMMU), none);
            t.need("VFIO_SET_IOMMU(VFIO_NOIOMMU_IOMMU)", container.set_iommu(VFIO_NOIOMMU_IOMMU), |r, _| {
                vec![("returned", Val::Num(*r as u64))]
            })?;
            let opened = log_of(|| group.get_device_fd(&a.bdf)).map_err(Fail::other);
            let (d, records) = match opened {
                Ok((d, records)) => (d, records),
                Err(e) => (Err(e), Vec::new()),
            };
            let d = t.need("VFIO_GROUP_GET_DEVICE_FD", d, none)?;
            let lines = noiommu_lines(&records, c.driver, &a.bdf);
            let lines: Vec<String> = lines.iter().map(|l| normalise_user(l)).collect();
            t.record("kernel log of the open", Outcome::Ok(vec![("noiommu lines", Val::text(lines.join(" | ")))]));
            record_device_use(t, "", &d);
            t.step("VFIO_DEVICE_RESET", d.reset(), none);
            Ok(())
        })();
        unbind(t, "A", &a.bdf);
        record_gone(t, &a);
        result
    })
}

/// The user's name and pid in "vfio-noiommu device opened by user (COMM:PID)".
fn normalise_user(line: &str) -> String {
    match line.find("opened by user (") {
        Some(i) => format!("{}opened by user (<comm>:<pid>)", &line[..i]),
        None => line.to_string(),
    }
}

fn expect_group_path(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bound(&mut e, "A");
    let mut lines = String::from("<driver> <function>: Adding kernel taint for vfio-noiommu group on device");
    if noiommu_cdev() {
        lines.push_str(" | <driver> <function>: Adding kernel taint for vfio-noiommu cdev");
    }
    e.val("A: kernel log of the bind", "noiommu lines", &Val::text(lines));
    e.val("taint after the bind", "TAINT_USER", &Val::Bool(true));
    e.val("taint after the bind", "TAINT_WARN", &Val::Bool(false));
    e.num("VFIO_GET_API_VERSION", "version", VFIO_API_VERSION as u64);
    e.num("VFIO_CHECK_EXTENSION(VFIO_NOIOMMU_IOMMU)", "supported", 1);
    e.num("VFIO_GROUP_GET_STATUS", "flags", VFIO_GROUP_FLAGS_VIABLE.into());
    e.err("VFIO_GROUP_GET_DEVICE_FD without a container", Errno::EINVAL);
    e.ok("VFIO_GROUP_SET_CONTAINER");
    e.num(
        "VFIO_GROUP_GET_STATUS in the container",
        "flags",
        (VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET).into(),
    );
    e.err("VFIO_GROUP_GET_DEVICE_FD before SET_IOMMU", Errno::EINVAL);
    e.fails("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)");
    e.ok("VFIO_SET_IOMMU(VFIO_NOIOMMU_IOMMU)");
    e.ok("VFIO_GROUP_GET_DEVICE_FD");
    e.val(
        "kernel log of the open",
        "noiommu lines",
        &Val::text("<driver> <function>: vfio-noiommu device opened by user (<comm>:<pid>)"),
    );
    expect_device_use(&mut e, t, "");
    e.ok("unbind A");
    expect_gone(&mut e, "A");
    e.finish()
}

fn group_iommufd(c: &Ctx) -> Transcript {
    scenario(|t| {
        let a = bind_site_member(t, c, 0)?;
        let b = match bind_site_member(t, c, 1) {
            Ok(b) => b,
            Err(abort) => {
                unbind(t, "A", &a.bdf);
                return Err(abort);
            }
        };
        let result = (|| {
            let ictx = t.need("open /dev/iommu", Iommufd::open(), none)?;
            let group = open_group(t, "open the group of A", &a)?;
            t.need("VFIO_GROUP_SET_CONTAINER(iommufd)", group.set_container_fd(ictx.raw_fd()), none)?;
            t.step("VFIO_GROUP_GET_STATUS", group.status(argsz::<VfioGroupStatus>()), |s, _| {
                vec![("flags", Val::Hex(s.flags.into()))]
            });
            let d = t.need("VFIO_GROUP_GET_DEVICE_FD", group.get_device_fd(&a.bdf), none)?;
            t.step("VFIO_DEVICE_GET_INFO", d.get_info(argsz::<VfioDeviceInfo>()), |r, _| {
                vec![("flags", Val::Hex(r.info.flags.into())), ("bytes", Val::Bytes(r.bytes.clone()))]
            });
            t.step("read config 0..64", pread(&d, CONFIG_INDEX, 0, 64), bytes);
            record_info(t, "GET_PCI_HOT_RESET_INFO", &d, INFO_ARGSZ, Ids::NewGroup);
            let gb = open_group(t, "open the group of B", &b)?;
            t.step("PCI_HOT_RESET [A, B]", d.hot_reset_groups(&[group.raw_fd(), gb.raw_fd()]), none);
            t.step("PCI_HOT_RESET []", d.hot_reset_groups(&[]), none);
            Ok(())
        })();
        unbind(t, "A", &a.bdf);
        unbind(t, "B", &b.bdf);
        result
    })
}

fn expect_group_iommufd(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bound(&mut e, "A");
    expect_bound(&mut e, "B");
    e.ok("VFIO_GROUP_SET_CONTAINER(iommufd)");
    e.num("VFIO_GROUP_GET_STATUS", "flags", (VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET).into());
    e.ok("VFIO_GROUP_GET_DEVICE_FD");
    e.bits("VFIO_DEVICE_GET_INFO", "flags", VFIO_DEVICE_FLAGS_PCI.into());
    e.num("read config 0..64", "len", 64);
    expect_group_entries(&mut e, c, "GET_PCI_HOT_RESET_INFO");
    e.ok("PCI_HOT_RESET [A, B]");
    e.err("PCI_HOT_RESET []", Errno::EINVAL);
    e.ok("unbind A");
    e.ok("unbind B");
    e.finish()
}

/// A successful group-path GET_PCI_HOT_RESET_INFO: flags 0, A and B with their groups.
fn expect_group_entries(e: &mut Expect, c: &Ctx, step: &str) {
    e.num(step, "flags", 0);
    e.num(step, "count", 2);
    e.val(step, "entry 1", &Val::text(&c.site.functions[0]));
    e.val(step, "entry 1 id", &Val::Norm("group#1".into()));
    e.val(step, "entry 2", &Val::text(&c.site.functions[1]));
    e.val(step, "entry 2 id", &Val::Norm("group#2".into()));
    e.val(step, "untouched past the entries", &Val::Bool(true));
}

fn hot_reset_groups(c: &Ctx) -> Transcript {
    scenario(|t| {
        let a = bind_site_member(t, c, 0)?;
        let mut bound: Vec<(&'static str, String)> = vec![("A", a.bdf.clone())];
        let result = hot_reset_groups_with(t, c, &a, &mut bound);
        for (label, bdf) in bound {
            unbind(t, label, &bdf);
        }
        result
    })
}

fn hot_reset_groups_with(
    t: &mut Transcript,
    c: &Ctx,
    a: &Member,
    bound: &mut Vec<(&'static str, String)>,
) -> Result<(), Abort> {
    let (container, ga) = noiommu_container(t, "", a)?;
    let d = t.need("VFIO_GROUP_GET_DEVICE_FD(A)", ga.get_device_fd(&a.bdf), none)?;

    // B has no driver, so no group: C's GET_PCI_HOT_RESET_INFO refuses.
    record_info(t, "B unbound: GET_PCI_HOT_RESET_INFO argsz 12", &d, VFIO_PCI_HOT_RESET_INFO_MINSZ, Ids::NewGroup);
    record_info(t, "B unbound: GET_PCI_HOT_RESET_INFO", &d, INFO_ARGSZ, Ids::NewGroup);
    t.step("B unbound: PCI_HOT_RESET [A]", d.hot_reset_groups(&[ga.raw_fd()]), none);

    // B bound to the other VFIO driver: it has a group, outside this driver's dev_set.
    let b_bdf = c.site.functions[1].clone();
    t.need("load the other VFIO driver", c.other.load(""), none)?;
    bound.push(("B", b_bdf.clone()));
    let b = bind(t, c, c.other, "B (other driver)", &b_bdf, false)?;
    record_info(t, "B on the other driver: GET_PCI_HOT_RESET_INFO", &d, INFO_ARGSZ, Ids::NewGroup);
    {
        let gb = open_group(t, "B on the other driver: open its group", &b)?;
        t.step("B on the other driver: PCI_HOT_RESET [A, B]", d.hot_reset_groups(&[ga.raw_fd(), gb.raw_fd()]), none);
    }
    bound.pop();
    unbind(t, "B (other driver)", &b_bdf);

    // B bound to the driver under test: a group of its own (a new one).
    bound.push(("B", b_bdf.clone()));
    let b = bind(t, c, c.driver, "B", &b_bdf, false)?;
    record_info(t, "GET_PCI_HOT_RESET_INFO argsz 12", &d, VFIO_PCI_HOT_RESET_INFO_MINSZ, Ids::NewGroup);
    record_info(t, "GET_PCI_HOT_RESET_INFO", &d, INFO_ARGSZ, Ids::NewGroup);
    let gb = open_group(t, "open the group of B", &b)?;
    let foreign = t.need("the foreign function", foreign_function(), none)?;
    bound.push(("foreign", foreign.clone()));
    let f = bind(t, c, c.driver, "foreign", &foreign, false)?;
    let gf = open_group(t, "open the foreign group", &f)?;
    // A group can be open only once at a time: the closed fd is another file's.
    let closed = t.need("open and close /dev/null", fs::File::open("/dev/null").map_err(Fail::from), none)?.as_raw_fd();
    let (fa, fb, ff) = (ga.raw_fd(), gb.raw_fd(), gf.raw_fd());
    t.step("PCI_HOT_RESET []", d.hot_reset_groups(&[]), none);
    t.step("PCI_HOT_RESET [A]", d.hot_reset_groups(&[fa]), none);
    t.step("PCI_HOT_RESET [B]", d.hot_reset_groups(&[fb]), none);
    t.step("PCI_HOT_RESET [A, foreign]", d.hot_reset_groups(&[fa, ff]), none);
    t.step("PCI_HOT_RESET [A, B, foreign]", d.hot_reset_groups(&[fa, fb, ff]), none);
    t.step("PCI_HOT_RESET [A, closed fd]", d.hot_reset_groups(&[fa, closed]), none);
    t.step("PCI_HOT_RESET [A, container]", d.hot_reset_groups(&[fa, container.raw_fd()]), none);
    t.step("PCI_HOT_RESET [A, B] flags 1", d.hot_reset(VFIO_PCI_HOT_RESET_MINSZ + 8, 1, &[fa, fb]), none);
    t.step("PCI_HOT_RESET argsz 11", d.hot_reset(VFIO_PCI_HOT_RESET_MINSZ - 1, 0, &[fa, fb]), none);
    let offset = mark(t, "", &d, &a.bdf);
    t.step("PCI_HOT_RESET [A, B]", d.hot_reset_groups(&[fa, fb]), none);
    read_mark(t, "", &d, offset);
    t.step("PCI_HOT_RESET [B, A]", d.hot_reset_groups(&[fb, fa]), none);
    record_info(t, "GET_PCI_HOT_RESET_INFO after the resets", &d, INFO_ARGSZ, Ids::NewGroup);
    t.step("read config 0..64 after the resets", pread(&d, CONFIG_INDEX, 0, 64), bytes);
    Ok(())
}

fn expect_hot_reset_groups(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bound(&mut e, "A");
    e.ok("VFIO_GROUP_GET_DEVICE_FD(A)");
    e.err("B unbound: GET_PCI_HOT_RESET_INFO argsz 12", Errno::ENOSPC);
    e.num("B unbound: GET_PCI_HOT_RESET_INFO argsz 12: buffer", "count", 2);
    e.err("B unbound: GET_PCI_HOT_RESET_INFO", Errno::EPERM);
    e.err("B unbound: PCI_HOT_RESET [A]", Errno::EINVAL);
    e.val("bind B (other driver)", "driver", &Val::Norm("the other VFIO driver".into()));
    expect_group_entries(&mut e, c, "B on the other driver: GET_PCI_HOT_RESET_INFO");
    e.err("B on the other driver: PCI_HOT_RESET [A, B]", Errno::EINVAL);
    expect_bound(&mut e, "B");
    e.err("GET_PCI_HOT_RESET_INFO argsz 12", Errno::ENOSPC);
    e.num("GET_PCI_HOT_RESET_INFO argsz 12: buffer", "count", 2);
    // B's group now: whatever number it got (the other driver's may have been freed).
    let step = "GET_PCI_HOT_RESET_INFO";
    let b_group = t.find("B: iommu_group").and_then(|o| o.field("group")).cloned().unwrap_or(Val::text("B's group"));
    e.num(step, "flags", 0);
    e.num(step, "count", 2);
    e.val(step, "entry 1", &Val::text(&c.site.functions[0]));
    e.val(step, "entry 1 id", &Val::Norm("group#1".into()));
    e.val(step, "entry 2", &Val::text(&c.site.functions[1]));
    e.val(step, "entry 2 id", &b_group);
    e.ok("open the foreign group");
    e.err("PCI_HOT_RESET []", Errno::EINVAL);
    e.err("PCI_HOT_RESET [A]", Errno::EINVAL);
    e.err("PCI_HOT_RESET [B]", Errno::EINVAL);
    e.err("PCI_HOT_RESET [A, foreign]", Errno::EINVAL);
    e.err("PCI_HOT_RESET [A, B, foreign]", Errno::EINVAL);
    e.err("PCI_HOT_RESET [A, closed fd]", Errno::EBADF);
    e.err("PCI_HOT_RESET [A, container]", Errno::EINVAL);
    e.err("PCI_HOT_RESET [A, B] flags 1", Errno::EINVAL);
    e.err("PCI_HOT_RESET argsz 11", Errno::EINVAL);
    e.ok("PCI_HOT_RESET [A, B]");
    expect_mark(&mut e, "");
    e.ok("PCI_HOT_RESET [B, A]");
    e.num("GET_PCI_HOT_RESET_INFO after the resets", "count", 2);
    e.num("read config 0..64 after the resets", "len", 64);
    e.ok("unbind A");
    e.ok("unbind B");
    e.ok("unbind foreign");
    e.finish()
}

fn msi(c: &Ctx) -> Transcript {
    scenario(|t| {
        let a = bind_site_member(t, c, 0)?;
        let result = (|| {
            let (_container, group) = noiommu_container(t, "", &a)?;
            let d = t.need("VFIO_GROUP_GET_DEVICE_FD(A)", group.get_device_fd(&a.bdf), none)?;
            msi_device_steps(t, &d, &a.bdf)
        })();
        unbind(t, "A", &a.bdf);
        result
    })
}

fn expect_msi(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bound(&mut e, "A");
    e.ok("VFIO_GROUP_GET_DEVICE_FD(A)");
    e.ok("unbind A");
    let mut failures = e.finish();
    failures.extend(expect_irq_msi_device(c, t));
    failures
}

/// Open `m`'s cdev and bind it to `ictx` (id space `space`): steps "`p`...".
fn cdev_bound(t: &mut Transcript, p: &str, m: &Member, ictx: &Iommufd, space: &str) -> Result<Device, Abort> {
    let d = t.need(&format!("{p}open the cdev of {}", m.label), Device::open_cdev(&m.cdev), none)?;
    t.need(&format!("{p}BIND_IOMMUFD({}, {space})", m.label), d.bind_iommufd(ictx), |id, t| {
        vec![("out_devid", t.norm_id(space, (*id).into()))]
    })?;
    Ok(d)
}

fn cdev_path(c: &Ctx) -> Transcript {
    scenario(|t| {
        let a = bind_site_member(t, c, 0)?;
        let b = match bind_site_member(t, c, 1) {
            Ok(b) => b,
            Err(abort) => {
                unbind(t, "A", &a.bdf);
                return Err(abort);
            }
        };
        let result = cdev_path_with(t, &a, &b);
        unbind(t, "A", &a.bdf);
        unbind(t, "B", &b.bdf);
        result
    })
}

fn cdev_path_with(t: &mut Transcript, a: &Member, b: &Member) -> Result<(), Abort> {
    let d = t.need("open the cdev of A", Device::open_cdev(&a.cdev), none)?;
    t.step("VFIO_DEVICE_GET_INFO before BIND_IOMMUFD", d.get_info(argsz::<VfioDeviceInfo>()), |_, _| Vec::new());
    t.step("BIND_IOMMUFD(A, iommufd -1)", d.bind_iommufd_fd(-1, None), |_, _| Vec::new());
    let ictx1 = t.need("open /dev/iommu (ictx1)", Iommufd::open(), none)?;
    t.need("BIND_IOMMUFD(A, ictx1)", d.bind_iommufd(&ictx1), |id, t| {
        vec![("out_devid", t.norm_id("ictx1", (*id).into()))]
    })?;
    t.step("BIND_IOMMUFD(A, ictx1) again", d.bind_iommufd(&ictx1), |_, _| Vec::new());
    t.step("open the group of A while its cdev is bound", Group::open(&group_name(&a.group)), |_, _| Vec::new());
    let ioas =
        t.need("IOMMU_IOAS_ALLOC", ictx1.ioas_alloc(), |id, t| vec![("id", t.norm_id("ictx1", (*id).into()))])?;
    t.step("ATTACH_IOMMUFD_PT(A, ioas)", d.attach_pt(ioas), |pt, t| vec![("pt_id", t.norm_id("ictx1", (*pt).into()))]);
    record_device_use(t, "", &d);
    record_info(t, "B unopened: GET_PCI_HOT_RESET_INFO", &d, INFO_ARGSZ, Ids::DevId("ictx1"));
    t.step("B unopened: PCI_HOT_RESET []", d.hot_reset_groups(&[]), none);
    {
        let ictx2 = t.need("open /dev/iommu (ictx2)", Iommufd::open(), none)?;
        let _db = cdev_bound(t, "B in ictx2: ", b, &ictx2, "ictx2")?;
        record_info(t, "B in ictx2: GET_PCI_HOT_RESET_INFO", &d, INFO_ARGSZ, Ids::DevId("ictx1"));
        t.step("B in ictx2: PCI_HOT_RESET []", d.hot_reset_groups(&[]), none);
    }
    let _db = cdev_bound(t, "B in ictx1: ", b, &ictx1, "ictx1")?;
    record_info(t, "B in ictx1: GET_PCI_HOT_RESET_INFO", &d, INFO_ARGSZ, Ids::DevId("ictx1"));
    let gb =
        t.step("open the group of B while its cdev is bound", Group::open(&group_name(&b.group)), |_, _| Vec::new());
    let fds: Vec<i32> = gb.iter().map(|g| g.raw_fd()).collect();
    if !fds.is_empty() {
        t.step("B in ictx1: PCI_HOT_RESET [B]", d.hot_reset_groups(&fds), none);
    }
    t.step("B in ictx1: PCI_HOT_RESET [] flags 1", d.hot_reset(VFIO_PCI_HOT_RESET_MINSZ, 1, &[]), none);
    let offset = mark(t, "B in ictx1: ", &d, &a.bdf);
    t.step("B in ictx1: PCI_HOT_RESET []", d.hot_reset_groups(&[]), none);
    read_mark(t, "B in ictx1: ", &d, offset);
    t.step("read config 0..64 after the reset", pread(&d, CONFIG_INDEX, 0, 64), bytes);
    t.step("DETACH_IOMMUFD_PT(A)", d.detach_pt(), none);
    Ok(())
}

fn expect_cdev_path(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bound(&mut e, "A");
    expect_bound(&mut e, "B");
    if !noiommu_cdev() {
        e.err("open the cdev of A", Errno::ENOENT);
        e.ok("unbind A");
        e.ok("unbind B");
        return e.finish();
    }
    e.ok("open the cdev of A");
    e.err("VFIO_DEVICE_GET_INFO before BIND_IOMMUFD", Errno::EINVAL);
    e.err("BIND_IOMMUFD(A, iommufd -1)", Errno::EINVAL);
    e.ok("BIND_IOMMUFD(A, ictx1)");
    e.err("BIND_IOMMUFD(A, ictx1) again", Errno::EINVAL);
    e.err("open the group of A while its cdev is bound", Errno::EBUSY);
    e.ok("ATTACH_IOMMUFD_PT(A, ioas)");
    expect_device_use(&mut e, t, "");
    let devid = (VFIO_PCI_HOT_RESET_FLAG_DEV_ID).into();
    let owned = (VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED).into();
    let field = |step: &str, key: &str| t.find(step).and_then(|o| o.field(key)).cloned();
    let a_id = field("BIND_IOMMUFD(A, ictx1)", "out_devid").unwrap_or(Val::text("A's out_devid"));
    let b_id = field("B in ictx1: BIND_IOMMUFD(B, ictx1)", "out_devid").unwrap_or(Val::text("B's out_devid"));
    let not_owned = Val::Norm("NOT_OWNED".into());
    for (p, flags, b_id) in
        [("B unopened: ", devid, &not_owned), ("B in ictx2: ", devid, &not_owned), ("B in ictx1: ", owned, &b_id)]
    {
        let step = format!("{p}GET_PCI_HOT_RESET_INFO");
        e.num(&step, "flags", flags);
        e.num(&step, "count", 2);
        e.val(&step, "entry 1", &Val::text(&c.site.functions[0]));
        e.val(&step, "entry 1 id", &a_id);
        e.val(&step, "entry 2", &Val::text(&c.site.functions[1]));
        e.val(&step, "entry 2 id", b_id);
    }
    e.err("B unopened: PCI_HOT_RESET []", Errno::EINVAL);
    e.err("B in ictx2: PCI_HOT_RESET []", Errno::EINVAL);
    e.err("open the group of B while its cdev is bound", Errno::EBUSY);
    e.err("B in ictx1: PCI_HOT_RESET [] flags 1", Errno::EINVAL);
    e.ok("B in ictx1: PCI_HOT_RESET []");
    expect_mark(&mut e, "B in ictx1: ");
    e.num("read config 0..64 after the reset", "len", 64);
    e.ok("DETACH_IOMMUFD_PT(A)");
    e.ok("unbind A");
    e.ok("unbind B");
    e.finish()
}
