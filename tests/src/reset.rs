//! The reset scenarios: VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
//! VFIO_DEVICE_PCI_HOT_RESET and VFIO_DEVICE_RESET, on every function a
//! slot or bus reset of the topology's first function reaches (the site).
//!
//! The site's functions are called A, B, ... in BDF order; A is the one the
//! ioctls are issued on.  Unless a scenario says otherwise every function of
//! the site is bound to the driver under test, since a hot reset needs all of
//! them in the driver's dev_set.  Group ids are recorded as they are (both
//! drivers run in the same boot), dev_ids normalised per iommufd
//! (`ictx1#1`), OWNED (0) and NOT_OWNED (0xffffffff) kept as such.

use crate::driver::Driver;
use crate::scenarios::{driver_val, everywhere, info_fields, none, scenario, Ctx, Scenario, Site};
use crate::sys::{Errno, Fail, Mmio};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Fields, Outcome, Transcript, Val};
use crate::uapi::*;
use crate::vfio::{self, Container, Device, Group, HotResetInfoCall, Iommufd, SENTINEL};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// The reset scenarios, in order.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "hot_reset_info_group",
            rule: "GET_PCI_HOT_RESET_INFO: argsz < 12 is EINVAL; no slot or bus reset is ENODEV; too small for the entries is ENOSPC with count written back; a group-opened device gets flags 0 and one entry per affected function carrying its IOMMU group id",
            loads_module: false,
            applies: at_most_labels,
            run: hot_reset_info_group,
            expect: expect_hot_reset_info_group,
        },
        Scenario {
            name: "hot_reset_info_cdev",
            rule: "GET_PCI_HOT_RESET_INFO on a cdev-opened device: flags DEV_ID, entries carry the dev_id of functions bound in the caller's iommufd, OWNED (0) for unopened ones whose group it owns, NOT_OWNED (0xffffffff) otherwise; DEV_ID_OWNED is set iff no entry is NOT_OWNED",
            loads_module: false,
            applies: at_most_labels,
            run: hot_reset_info_cdev,
            expect: expect_hot_reset_info_cdev,
        },
        Scenario {
            name: "hot_reset_errnos",
            rule: "PCI_HOT_RESET: argsz < 12 or flags != 0 is EINVAL; a group fd array only from group-opened devices, only a zero-length one from cdev-opened ones (EINVAL); no slot or bus reset is ENODEV; count above the affected functions is EINVAL; a closed fd is EBADF, a non-group fd EINVAL; groups not covering every affected function, or an affected function not bound to the driver, are EINVAL; otherwise 0",
            loads_module: false,
            applies: at_most_labels,
            run: hot_reset_errnos,
            expect: expect_hot_reset_errnos,
        },
        Scenario {
            name: "hot_reset_really_resets",
            rule: "a successful PCI_HOT_RESET resets every affected function: a BAR0 register marked before reads back its reset value after, on the group path and on the cdev path",
            loads_module: false,
            applies: resettable_known_models,
            run: hot_reset_really_resets,
            expect: expect_hot_reset_really_resets,
        },
        Scenario {
            name: "hot_reset_multigroup_legacy",
            rule: "group path: the group fds passed to PCI_HOT_RESET must cover the groups of every affected function (EINVAL otherwise), even when the other groups share the container",
            loads_module: false,
            applies: resettable_multigroup,
            run: hot_reset_multigroup_legacy,
            expect: expect_hot_reset_multigroup_legacy,
        },
        Scenario {
            name: "dirty_set_reset_on_last_close",
            rule: "a function closed without a function-level reset stays dirty; when the last open function of its set closes, the whole set gets a slot or bus reset",
            loads_module: false,
            applies: resettable_multifunction,
            run: dirty_set_reset_on_last_close,
            expect: expect_dirty_set_reset_on_last_close,
        },
        Scenario {
            name: "hot_reset_cdev_ownership",
            rule: "cdev path: an affected function is owned when bound in the caller's iommufd or unopened in a group that iommufd owns; a function bound in another iommufd is NOT_OWNED and refuses the zero-length reset; a group owned by one iommufd cannot be bound in another",
            loads_module: false,
            applies: resettable_multifunction,
            run: hot_reset_cdev_ownership,
            expect: expect_hot_reset_cdev_ownership,
        },
        Scenario {
            name: "hot_reset_refused_foreign_driver",
            rule: "an affected function bound to a native driver or to another VFIO driver is outside the dev_set: NOT_OWNED in GET_PCI_HOT_RESET_INFO, and PCI_HOT_RESET is EINVAL on both paths, even with every group fd",
            loads_module: false,
            applies: resettable_foreign_capable,
            run: hot_reset_refused_foreign_driver,
            expect: expect_hot_reset_refused_foreign_driver,
        },
        Scenario {
            name: "vfio_device_reset",
            rule: "VFIO_DEVICE_RESET succeeds iff GET_INFO reports VFIO_DEVICE_FLAGS_RESET (the function reset worked at open), and is EINVAL otherwise, on both paths",
            loads_module: false,
            applies: everywhere,
            run: vfio_device_reset,
            expect: expect_vfio_device_reset,
        },
        Scenario {
            name: "hot_reset_race",
            rule: "PCI_HOT_RESET racing open/bind/close and VFIO_DEVICE_RESET of a sibling returns 0, EBUSY, EAGAIN, EINVAL, EPERM or ENODEV, and never hangs (outcome counts are timing-dependent: shown, not compared)",
            loads_module: false,
            applies: resettable_multifunction,
            run: hot_reset_race,
            expect: expect_hot_reset_race,
        },
    ]
}

// ----------------------------------------------------------- applicability

/// The names the functions of a site go by.
pub(crate) const LABELS: [&str; 8] = ["A", "B", "C", "D", "E", "F", "G", "H"];

/// The field keys of the entries of a GET_PCI_HOT_RESET_INFO reply.
const ENTRY_KEYS: [(&str, &str); 8] = [
    ("entry 1", "entry 1 id"),
    ("entry 2", "entry 2 id"),
    ("entry 3", "entry 3 id"),
    ("entry 4", "entry 4 id"),
    ("entry 5", "entry 5 id"),
    ("entry 6", "entry 6 id"),
    ("entry 7", "entry 7 id"),
    ("entry 8", "entry 8 id"),
];

pub(crate) fn at_most_labels(site: &Site) -> Result<(), String> {
    if site.functions.len() > LABELS.len() {
        return Err(format!(
            "{} functions share the reset; the suite names at most {}",
            site.functions.len(),
            LABELS.len()
        ));
    }
    Ok(())
}

pub(crate) fn resettable(site: &Site) -> Result<(), String> {
    at_most_labels(site)?;
    if !site.hot_reset {
        return Err("no slot or bus reset reaches the function (root bus)".into());
    }
    Ok(())
}

fn resettable_known_models(site: &Site) -> Result<(), String> {
    resettable(site)?;
    for f in &site.functions {
        if sysfs::model_of(f).is_none() {
            return Err(format!("{f}: no BAR0 register known to mark on this device model"));
        }
    }
    Ok(())
}

pub(crate) fn resettable_multifunction(site: &Site) -> Result<(), String> {
    resettable(site)?;
    if site.functions.len() < 2 {
        return Err("the reset reaches a single function".into());
    }
    Ok(())
}

pub(crate) fn resettable_multigroup(site: &Site) -> Result<(), String> {
    resettable_multifunction(site)?;
    if site.distinct_groups().len() < 2 {
        return Err("one IOMMU group holds every function the reset reaches".into());
    }
    Ok(())
}

pub(crate) fn resettable_foreign_capable(site: &Site) -> Result<(), String> {
    resettable_multifunction(site)?;
    if site.groups[1] == site.groups[0] {
        return Err("B shares A's IOMMU group: a native driver on B would make A's group unusable".into());
    }
    if sysfs::model_of(&site.functions[1]).is_none() {
        return Err(format!("{}: no native driver known for this device model", site.functions[1]));
    }
    Ok(())
}

// ---------------------------------------------------------------- plumbing

/// A function of the site, bound to a VFIO driver.
pub(crate) struct Member {
    pub(crate) label: &'static str,
    pub(crate) bdf: String,
    pub(crate) group: String,
    pub(crate) cdev: String,
}

/// driver_override + drivers_probe; returns the driver the function ends up
/// bound to.
pub(crate) fn bind_to(driver: &str, bdf: &str) -> Result<String, Fail> {
    sysfs::set_driver_override(bdf, driver)?;
    sysfs::drivers_probe(bdf)?;
    sysfs::wait_until(sysfs::SETTLE, || sysfs::current_driver(bdf).is_ok());
    sysfs::current_driver(bdf)
}

/// The group and cdev of a function bound to a VFIO driver, once their
/// nodes exist.
pub(crate) fn vfio_nodes(bdf: &str) -> Result<(String, String), Fail> {
    let group = sysfs::iommu_group(bdf)?;
    let gpath = vfio::group_path(&group);
    if !sysfs::wait_path(Path::new(&gpath), true) {
        return Err(Fail::other(format!("{gpath} did not appear")));
    }
    let dir = sysfs::device_dir(bdf).join("vfio-dev");
    sysfs::wait_path(&dir, true);
    let cdev = match &sysfs::vfio_dev_entries(bdf)?[..] {
        [one] if sysfs::cdev_index(one).is_some() => one.clone(),
        v => return Err(Fail::other(format!("expected exactly one vfioN in {}, found {v:?}", dir.display()))),
    };
    let cpath = vfio::cdev_path(&cdev);
    if !sysfs::wait_path(Path::new(&cpath), true) {
        return Err(Fail::other(format!("{cpath} did not appear")));
    }
    Ok((group, cdev))
}

/// Bind function `i` of the site to the VFIO driver `driver` (the one under
/// test or the other one) and find its nodes: step "bind A".
pub(crate) fn bind_member(t: &mut Transcript, step: &str, c: &Ctx, driver: &Driver, i: usize) -> Result<Member, Abort> {
    let bdf = c.site.functions[i].clone();
    let r = bind_to(driver.name, &bdf).and_then(|d| {
        if d == driver.name {
            vfio_nodes(&bdf).map(|n| (d, n))
        } else {
            Err(Fail::other(format!("bound to {d}, not {}", driver.name)))
        }
    });
    let (_, (group, cdev)) = t.need(step, r, |(d, (g, _)), _| {
        vec![("function", Val::text(&bdf)), ("driver", other_val(c, d)), ("group", Val::text(g))]
    })?;
    Ok(Member { label: LABELS[i], bdf, group, cdev })
}

/// A driver name as recorded: the driver under test and the other VFIO
/// driver are normalised, native drivers kept.
fn other_val(c: &Ctx, name: &str) -> Val {
    if name == c.other.name {
        Val::Norm("the other VFIO driver".into())
    } else {
        driver_val(c.driver, name)
    }
}

/// Bind every function of the site to the driver under test.
pub(crate) fn bind_site(t: &mut Transcript, c: &Ctx) -> Result<Vec<Member>, Abort> {
    (0..c.site.functions.len()).map(|i| bind_member(t, &format!("bind {}", LABELS[i]), c, c.driver, i)).collect()
}

/// Unbind a function (whatever it is bound to) and clear its override.
pub(crate) fn unbind_member(t: &mut Transcript, step: &str, bdf: &str) {
    let r = sysfs::unbind(bdf).and_then(|()| sysfs::clear_driver_override(bdf));
    t.step(step, r, none);
}

pub(crate) fn unbind_site(t: &mut Transcript, set: &[Member]) {
    for m in set {
        unbind_member(t, &format!("unbind {}", m.label), &m.bdf);
    }
}

/// A legacy container holding some groups, with the type1v2 IOMMU set.
pub(crate) struct Legacy {
    groups: Vec<(String, Group)>,
    _container: Container,
}

impl Legacy {
    pub(crate) fn group(&self, g: &str) -> Option<&Group> {
        self.groups.iter().find(|(n, _)| n == g).map(|(_, grp)| grp)
    }

    /// The fds of the groups of `members`, in order, each group once.
    pub(crate) fn fds_of(&self, members: &[&Member]) -> Vec<i32> {
        let mut v: Vec<i32> = Vec::new();
        for m in members {
            if let Some(g) = self.group(&m.group) {
                if !v.contains(&g.raw_fd()) {
                    v.push(g.raw_fd());
                }
            }
        }
        v
    }

    pub(crate) fn all_fds(&self) -> Vec<i32> {
        self.groups.iter().map(|(_, g)| g.raw_fd()).collect()
    }
}

/// Open a container and the groups of `members` (each once), attach them
/// and set the IOMMU.  Step names start with `p`.
pub(crate) fn legacy(t: &mut Transcript, p: &str, members: &[&Member]) -> Result<Legacy, Abort> {
    let container = t.need(&format!("{p}open /dev/vfio/vfio"), Container::open(), none)?;
    let mut groups: Vec<(String, Group)> = Vec::new();
    for m in members {
        if groups.iter().any(|(n, _)| *n == m.group) {
            continue;
        }
        let g = t.need(&format!("{p}open the group of {}", m.label), Group::open(&m.group), none)?;
        t.need(&format!("{p}VFIO_GROUP_SET_CONTAINER(group of {})", m.label), g.set_container(&container), none)?;
        groups.push((m.group.clone(), g));
    }
    t.need(&format!("{p}VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)"), container.set_iommu(VFIO_TYPE1v2_IOMMU), none)?;
    Ok(Legacy { groups, _container: container })
}

/// VFIO_GROUP_GET_DEVICE_FD for `m` from its group in `lg`.
pub(crate) fn group_device(t: &mut Transcript, p: &str, lg: &Legacy, m: &Member) -> Result<Device, Abort> {
    let step = format!("{p}VFIO_GROUP_GET_DEVICE_FD({})", m.label);
    let r = match lg.group(&m.group) {
        Some(g) => g.get_device_fd(&m.bdf),
        None => Err(Fail::other(format!("the group of {} is not open", m.label))),
    };
    t.need(&step, r, none)
}

/// Open `m`'s cdev and bind it to `ictx` (id space `space`).
pub(crate) fn cdev_bound(
    t: &mut Transcript,
    p: &str,
    m: &Member,
    ictx: &Iommufd,
    space: &str,
) -> Result<Device, Abort> {
    let d = t.need(&format!("{p}open the cdev of {}", m.label), Device::open_cdev(&m.cdev), none)?;
    t.need(&format!("{p}VFIO_DEVICE_BIND_IOMMUFD({}, {space})", m.label), d.bind_iommufd(ictx), |id, t| {
        vec![("out_devid", t.norm_id(space, (*id).into()))]
    })?;
    Ok(d)
}

/// Open a fresh iommufd.
pub(crate) fn iommufd(t: &mut Transcript, step: &str) -> Result<Iommufd, Abort> {
    t.need(step, Iommufd::open(), none)
}

/// How the entries of a GET_PCI_HOT_RESET_INFO reply name functions.
#[derive(Clone, Copy)]
pub(crate) enum Ids<'a> {
    /// Group-opened caller: IOMMU group ids, recorded as they are.
    Group,
    /// Group-opened caller whose groups are numbered as they are made (the noiommu groups):
    /// normalised in the id space "group".
    NewGroup,
    /// cdev-opened caller: dev_ids, normalised in this id space.
    DevId(&'a str),
}

fn id_val(t: &mut Transcript, raw: u32, ids: Ids) -> Val {
    match ids {
        Ids::Group => Val::Num(raw.into()),
        Ids::NewGroup => t.norm_id("group", raw.into()),
        Ids::DevId(_) if raw == VFIO_PCI_DEVID_OWNED => Val::Norm("OWNED".into()),
        Ids::DevId(_) if raw == VFIO_PCI_DEVID_NOT_OWNED => Val::Norm("NOT_OWNED".into()),
        Ids::DevId(space) => t.norm_id(space, raw.into()),
    }
}

/// The reply bytes in 4-byte words, with every real dev_id replaced by its
/// normalised name: byte-exact otherwise.
fn dump(t: &mut Transcript, call: &HotResetInfoCall, ids: Ids) -> String {
    let b = &call.bytes;
    let count = call.header().count as usize;
    let base = VFIO_PCI_HOT_RESET_INFO_MINSZ as usize;
    let mut words: Vec<String> = Vec::new();
    for (i, chunk) in b.chunks(4).enumerate() {
        let off = i * 4;
        let entry_id = off >= base && (off - base) % 8 == 0 && (off - base) / 8 < count && chunk.len() == 4;
        if entry_id {
            if let Ids::DevId(_) = ids {
                let raw = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                if raw != VFIO_PCI_DEVID_OWNED && raw != VFIO_PCI_DEVID_NOT_OWNED {
                    words.push(id_val(t, raw, ids).to_string());
                    continue;
                }
            }
        }
        words.push(chunk.iter().map(|x| format!("{x:02x}")).collect());
    }
    words.join(" ")
}

/// The fields of a successful GET_PCI_HOT_RESET_INFO: the header, each
/// entry's function and id, whether the buffer past the entries is
/// untouched, and the whole buffer.
fn hot_reset_info_fields(t: &mut Transcript, call: &HotResetInfoCall, ids: Ids) -> Fields {
    let mut f = hot_reset_info_header(call);
    push_hot_reset_info_entries(t, call, ids, &mut f);
    let d = dump(t, call, ids);
    f.push(("bytes", Val::Text(d)));
    f
}

/// The header fields of a GET_PCI_HOT_RESET_INFO reply, as the call left them.
pub(crate) fn hot_reset_info_header(call: &HotResetInfoCall) -> Fields {
    let h = call.header();
    vec![("argsz", Val::Num(h.argsz.into())), ("flags", Val::Hex(h.flags.into())), ("count", Val::Num(h.count.into()))]
}

/// Appends to `f` each entry of a GET_PCI_HOT_RESET_INFO reply (function and id, named as
/// `ids` says), and whether the bytes past the entries are untouched.
pub(crate) fn push_hot_reset_info_entries(t: &mut Transcript, call: &HotResetInfoCall, ids: Ids, f: &mut Fields) {
    let devices = call.devices();
    for (i, d) in devices.iter().enumerate() {
        let Some(&(k_fn, k_id)) = ENTRY_KEYS.get(i) else {
            f.push(("entries not shown", Val::Num((devices.len() - i) as u64)));
            break;
        };
        f.push((k_fn, Val::text(sysfs::format_bdf(d.segment, d.bus, d.devfn))));
        let v = id_val(t, d.id, ids);
        f.push((k_id, v));
    }
    let end = VFIO_PCI_HOT_RESET_INFO_MINSZ as usize + 8 * devices.len();
    if let Some(tail) = call.bytes.get(end..).filter(|tail| !tail.is_empty()) {
        f.push(("untouched past the entries", Val::Bool(tail.iter().all(|x| *x == SENTINEL))));
    }
}

/// Record GET_PCI_HOT_RESET_INFO with `argsz` as step `step`; on ENOSPC
/// also the header written back, as step "`step`: header written back".
fn record_info(t: &mut Transcript, step: &str, d: &Device, argsz: u32, ids: Ids) -> Option<HotResetInfoCall> {
    let call = match d.hot_reset_info(argsz) {
        Ok(call) => call,
        Err(e) => {
            t.record(step, e.into());
            return None;
        }
    };
    match call.result {
        Ok(()) => {
            let f = hot_reset_info_fields(t, &call, ids);
            t.record(step, Outcome::Ok(f));
        }
        Err(e) => {
            t.record(step, Outcome::Err(e));
            if e == Errno::ENOSPC {
                let h = call.header();
                t.record(
                    format!("{step}: header written back"),
                    Outcome::Ok(vec![
                        ("argsz", Val::Num(h.argsz.into())),
                        ("flags", Val::Hex(h.flags.into())),
                        ("count", Val::Num(h.count.into())),
                        ("bytes", Val::Bytes(call.bytes.clone())),
                    ]),
                );
            }
        }
    }
    Some(call)
}

/// argsz for `n` entries.
pub(crate) fn info_argsz(n: usize) -> u32 {
    VFIO_PCI_HOT_RESET_INFO_MINSZ + 8 * n as u32
}

/// GET_PCI_HOT_RESET_INFO at the full size (the count the kernel announces
/// at argsz 12, else the site's size).
fn record_info_full(t: &mut Transcript, step: &str, d: &Device, ids: Ids, n: usize) -> Option<HotResetInfoCall> {
    let count = match d.hot_reset_info(VFIO_PCI_HOT_RESET_INFO_MINSZ) {
        Ok(HotResetInfoCall { result: Err(Errno::ENOSPC), bytes }) => {
            HotResetInfoCall { result: Ok(()), bytes }.header().count as usize
        }
        _ => n,
    };
    record_info(t, step, d, info_argsz(count), ids)
}

const INFO4: &str = "GET_PCI_HOT_RESET_INFO argsz=4";
const INFO11: &str = "GET_PCI_HOT_RESET_INFO argsz=11";
const INFO12: &str = "GET_PCI_HOT_RESET_INFO argsz=12";
const INFO12_HDR: &str = "GET_PCI_HOT_RESET_INFO argsz=12: header written back";
const INFO_SHORT: &str = "GET_PCI_HOT_RESET_INFO with room for one entry less than count";
const INFO_SHORT_HDR: &str = "GET_PCI_HOT_RESET_INFO with room for one entry less than count: header written back";
const INFO_FULL: &str = "GET_PCI_HOT_RESET_INFO with room for count entries";
const INFO_SPARE: &str = "GET_PCI_HOT_RESET_INFO with room for one entry more than count";

/// The argsz rules of GET_PCI_HOT_RESET_INFO, then the full reply.
fn record_info_sequence(t: &mut Transcript, d: &Device, ids: Ids, n: usize) {
    record_info(t, INFO4, d, 4, ids);
    record_info(t, INFO11, d, 11, ids);
    let count = match record_info(t, INFO12, d, 12, ids) {
        Some(HotResetInfoCall { result: Err(Errno::ENOSPC), bytes }) => {
            HotResetInfoCall { result: Ok(()), bytes }.header().count as usize
        }
        _ => n,
    };
    if count > 1 {
        record_info(t, INFO_SHORT, d, info_argsz(count - 1), ids);
    }
    record_info(t, INFO_FULL, d, info_argsz(count), ids);
    record_info(t, INFO_SPARE, d, info_argsz(count + 1), ids);
}

/// The expected ids of a cdev-opened caller's reply, and its flags:
/// `bound[i]` is function i's normalised dev_id in the caller's iommufd,
/// `foreign[i]` says it is outside the driver's dev_set.
pub(crate) fn cdev_expectation(site: &Site, bound: &[Option<Val>], foreign: &[bool]) -> (Vec<Val>, u32) {
    let n = site.functions.len();
    let mut ids = Vec::new();
    for i in 0..n {
        let is_foreign = foreign.get(i).copied().unwrap_or(false);
        let own = bound.get(i).cloned().flatten();
        let v = match own {
            _ if is_foreign => Val::Norm("NOT_OWNED".into()),
            Some(v) => v,
            None => {
                let group_owned = (0..n).any(|j| {
                    site.groups[j] == site.groups[i]
                        && bound.get(j).is_some_and(|b| b.is_some())
                        && !foreign.get(j).copied().unwrap_or(false)
                });
                Val::Norm(if group_owned { "OWNED" } else { "NOT_OWNED" }.into())
            }
        };
        ids.push(v);
    }
    let all_owned = !ids.contains(&Val::Norm("NOT_OWNED".into()));
    let flags = VFIO_PCI_HOT_RESET_FLAG_DEV_ID | if all_owned { VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED } else { 0 };
    (ids, flags)
}

/// Expect a full reply naming every function of the site, in order, with
/// these ids and flags.
fn expect_entries(e: &mut Expect, step: &str, site: &Site, ids: &[Val], flags: u32) {
    e.num(step, "flags", flags.into());
    e.num(step, "count", site.functions.len() as u64);
    for (i, (f, id)) in site.functions.iter().zip(ids).enumerate() {
        if let Some(&(k_fn, k_id)) = ENTRY_KEYS.get(i) {
            e.val(step, k_fn, &Val::text(f));
            e.val(step, k_id, id);
        }
    }
}

/// The expectations of `record_info_sequence`.
fn expect_info_sequence(e: &mut Expect, site: &Site, ids: &[Val], flags: u32) {
    e.err(INFO4, Errno::EINVAL);
    e.err(INFO11, Errno::EINVAL);
    let n = site.functions.len() as u64;
    if site.hot_reset {
        e.err(INFO12, Errno::ENOSPC);
        e.num(INFO12_HDR, "count", n);
        e.num(INFO12_HDR, "argsz", 12);
        if n > 1 {
            e.err(INFO_SHORT, Errno::ENOSPC);
            e.num(INFO_SHORT_HDR, "count", n);
        }
        expect_entries(e, INFO_FULL, site, ids, flags);
        expect_entries(e, INFO_SPARE, site, ids, flags);
        e.val(INFO_SPARE, "untouched past the entries", &Val::Bool(true));
    } else {
        e.err(INFO12, Errno::ENODEV);
        e.err(INFO_FULL, Errno::ENODEV);
        e.err(INFO_SPARE, Errno::ENODEV);
    }
}

/// Success where a hot reset can reach the site, ENODEV where none can.
fn expect_reset_ok(e: &mut Expect, step: &str, site: &Site) {
    if site.hot_reset {
        e.ok(step);
    } else {
        e.err(step, Errno::ENODEV);
    }
}

/// `errno` where a hot reset can reach the site, ENODEV where none can
/// (the probe comes before the checks of the fd array).
fn expect_reset_err(e: &mut Expect, step: &str, site: &Site, errno: Errno) {
    e.err(step, if site.hot_reset { errno } else { Errno::ENODEV });
}

/// The group ids of the site's functions, as recorded.
fn group_ids(site: &Site) -> Vec<Val> {
    site.groups.iter().map(|g| g.parse::<u64>().map_or_else(|_| Val::text(g), Val::Num)).collect()
}

fn expect_bind_site(e: &mut Expect, c: &Ctx) {
    for l in LABELS.iter().take(c.site.functions.len()) {
        e.val(&format!("bind {l}"), "driver", &Val::Norm("driver under test".into()));
    }
}

fn expect_unbind_site(e: &mut Expect, c: &Ctx) {
    for l in LABELS.iter().take(c.site.functions.len()) {
        e.ok(&format!("unbind {l}"));
    }
}

// ------------------------------------------------------ GET_PCI_HOT_RESET_INFO

fn hot_reset_info_group(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_site(t, c)?;
        {
            let lg = legacy(t, "", &[&set[0]])?;
            let d = group_device(t, "", &lg, &set[0])?;
            record_info_sequence(t, &d, Ids::Group, set.len());
        }
        unbind_site(t, &set);
        Ok(())
    })
}

fn expect_hot_reset_info_group(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bind_site(&mut e, c);
    e.ok("VFIO_GROUP_GET_DEVICE_FD(A)");
    expect_info_sequence(&mut e, c.site, &group_ids(c.site), 0);
    expect_unbind_site(&mut e, c);
    e.finish()
}

fn hot_reset_info_cdev(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_site(t, c)?;
        {
            let ictx = iommufd(t, "open /dev/iommu")?;
            let d = cdev_bound(t, "", &set[0], &ictx, "ictx1")?;
            record_info_sequence(t, &d, Ids::DevId("ictx1"), set.len());
        }
        unbind_site(t, &set);
        Ok(())
    })
}

fn expect_hot_reset_info_cdev(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bind_site(&mut e, c);
    e.ok("VFIO_DEVICE_BIND_IOMMUFD(A, ictx1)");
    let (ids, flags) = cdev_expectation(c.site, &[Some(Val::Norm("ictx1#1".into()))], &[]);
    expect_info_sequence(&mut e, c.site, &ids, flags);
    expect_unbind_site(&mut e, c);
    e.finish()
}

// ------------------------------------------------------- PCI_HOT_RESET errnos

const G_ARGSZ: &str = "group path: PCI_HOT_RESET argsz=11";
const G_FLAGS: &str = "group path: PCI_HOT_RESET flags=1";
const G_COUNT0: &str = "group path: PCI_HOT_RESET zero-length from a group-opened device";
const G_TOO_MANY: &str = "group path: PCI_HOT_RESET count above the number of affected functions";
const G_CLOSED: &str = "group path: PCI_HOT_RESET with a closed fd (-1)";
const G_DEVNULL: &str = "group path: PCI_HOT_RESET with /dev/null";
const G_PARTIAL: &str = "group path: PCI_HOT_RESET with A's group only, not every affected function's";
const G_ALL: &str = "group path: PCI_HOT_RESET with every group";
const C_ARGSZ: &str = "cdev path: PCI_HOT_RESET argsz=11";
const C_FLAGS: &str = "cdev path: PCI_HOT_RESET flags=1";
const C_COUNT1: &str = "cdev path: PCI_HOT_RESET with a group fd array (count=1, fd -1)";
const C_ZERO: &str = "cdev path: PCI_HOT_RESET zero-length";
const U_GROUP: &str = "B unbound: group path: PCI_HOT_RESET with every group still there";
const U_INFO: &str = "B unbound: cdev path: GET_PCI_HOT_RESET_INFO";
const U_ZERO: &str = "B unbound: cdev path: PCI_HOT_RESET zero-length";

fn hot_reset_errnos(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_site(t, c)?;
        let all: Vec<&Member> = set.iter().collect();
        let n = set.len();
        {
            let lg = legacy(t, "group path: ", &all)?;
            let d = group_device(t, "group path: ", &lg, &set[0])?;
            let fds = lg.all_fds();
            let full = VFIO_PCI_HOT_RESET_MINSZ + 4 * fds.len() as u32;
            t.step(G_ARGSZ, d.hot_reset(11, 0, &fds), none);
            t.step(G_FLAGS, d.hot_reset(full, 1, &fds), none);
            t.step(G_COUNT0, d.hot_reset_groups(&[]), none);
            let too_many: Vec<i32> = (0..=n).map(|i| fds[i % fds.len()]).collect();
            t.step(G_TOO_MANY, d.hot_reset_groups(&too_many), none);
            t.step(G_CLOSED, d.hot_reset_groups(&[-1]), none);
            let null = t.need("open /dev/null", File::open("/dev/null"), none)?;
            t.step(G_DEVNULL, d.hot_reset_groups(&[std::os::fd::AsRawFd::as_raw_fd(&null)]), none);
            if fds.len() > 1 {
                t.step(G_PARTIAL, d.hot_reset_groups(&lg.fds_of(&[&set[0]])), none);
            }
            t.step(G_ALL, d.hot_reset_groups(&fds), none);
        }
        {
            let ictx = iommufd(t, "cdev path: open /dev/iommu")?;
            let d = cdev_bound(t, "cdev path: ", &set[0], &ictx, "ictx1")?;
            // One bound function per group, so that ictx1 owns every group.
            let mut others = Vec::new();
            for (i, m) in set.iter().enumerate().skip(1) {
                if !set[..i].iter().any(|o| o.group == m.group) {
                    others.push(cdev_bound(t, "cdev path: ", m, &ictx, "ictx1")?);
                }
            }
            t.step(C_ARGSZ, d.hot_reset(11, 0, &[]), none);
            t.step(C_FLAGS, d.hot_reset(VFIO_PCI_HOT_RESET_MINSZ, 1, &[]), none);
            t.step(C_COUNT1, d.hot_reset_groups(&[-1]), none);
            t.step(C_ZERO, d.hot_reset_groups(&[]), none);
        }
        if n > 1 {
            unbind_member(t, "unbind B", &set[1].bdf);
            let rest: Vec<&Member> = set.iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, m)| m).collect();
            {
                let lg = legacy(t, "B unbound: group path: ", &rest)?;
                let d = group_device(t, "B unbound: group path: ", &lg, &set[0])?;
                t.step(U_GROUP, d.hot_reset_groups(&lg.all_fds()), none);
            }
            {
                let ictx = iommufd(t, "B unbound: cdev path: open /dev/iommu")?;
                let d = cdev_bound(t, "B unbound: cdev path: ", &set[0], &ictx, "ictx2")?;
                record_info_full(t, U_INFO, &d, Ids::DevId("ictx2"), n);
                t.step(U_ZERO, d.hot_reset_groups(&[]), none);
            }
            unbind_member(t, "unbind A", &set[0].bdf);
            for m in &set[2..] {
                unbind_member(t, &format!("unbind {}", m.label), &m.bdf);
            }
        } else {
            unbind_site(t, &set);
        }
        Ok(())
    })
}

fn expect_hot_reset_errnos(c: &Ctx, t: &Transcript) -> Vec<String> {
    let s = c.site;
    let mut e = Expect::new(t);
    expect_bind_site(&mut e, c);
    e.err(G_ARGSZ, Errno::EINVAL);
    e.err(G_FLAGS, Errno::EINVAL);
    e.err(G_COUNT0, Errno::EINVAL);
    expect_reset_err(&mut e, G_TOO_MANY, s, Errno::EINVAL);
    expect_reset_err(&mut e, G_CLOSED, s, Errno::EBADF);
    expect_reset_err(&mut e, G_DEVNULL, s, Errno::EINVAL);
    if s.distinct_groups().len() > 1 {
        expect_reset_err(&mut e, G_PARTIAL, s, Errno::EINVAL);
    }
    expect_reset_ok(&mut e, G_ALL, s);
    e.err(C_ARGSZ, Errno::EINVAL);
    e.err(C_FLAGS, Errno::EINVAL);
    e.err(C_COUNT1, Errno::EINVAL);
    expect_reset_ok(&mut e, C_ZERO, s);
    if s.functions.len() > 1 {
        e.ok("unbind B");
        expect_reset_err(&mut e, U_GROUP, s, Errno::EINVAL);
        let mut foreign = vec![false; s.functions.len()];
        foreign[1] = true;
        let (ids, flags) = cdev_expectation(s, &[Some(Val::Norm("ictx2#1".into()))], &foreign);
        if s.hot_reset {
            expect_entries(&mut e, U_INFO, s, &ids, flags);
        }
        expect_reset_err(&mut e, U_ZERO, s, Errno::EINVAL);
        e.ok("unbind A");
    } else {
        expect_unbind_site(&mut e, c);
    }
    e.finish()
}

// ---------------------------------------------------- the reset is real

/// The value written to mark a register: its reset value is 0, and the
/// devices ignore the low bits of a descriptor base (e1000e 4, igb 7).
const MARK: u32 = 0x5a5a_5a00;

/// A function's BAR0, mapped through sysfs, and the register to mark.
struct Marked {
    label: &'static str,
    map: Mmio,
    offset: usize,
    name: &'static str,
}

fn map_bar0(bdf: &str, len: usize) -> Result<Mmio, Fail> {
    let f = OpenOptions::new().read(true).write(true).open(sysfs::resource_path(bdf, 0))?;
    Mmio::map_shared(&f, len).map_err(Fail::Os)
}

/// Write MARK to the register at `offset` and read it back.
fn write_mark(map: &Mmio, offset: usize) -> Result<u32, Fail> {
    map.write32(offset, MARK).and_then(|()| map.read32(offset)).ok_or_else(|| Fail::other("outside the mapping"))
}

/// Map every function's BAR0 and mark its register; steps start with `p`.
fn mark_site(t: &mut Transcript, p: &str, set: &[Member]) -> Result<Vec<Marked>, Abort> {
    let mut out = Vec::new();
    for m in set {
        let Some(model) = sysfs::model_of(&m.bdf) else {
            t.record(format!("{p}map the BAR0 of {}", m.label), Outcome::Broken("unknown device model".into()));
            return Err(Abort);
        };
        let (offset, name) = model.mark;
        let map =
            t.need(&format!("{p}map the BAR0 of {} (sysfs resource0)", m.label), map_bar0(&m.bdf, offset + 4), none)?;
        t.need(&format!("{p}mark {}'s {name}", m.label), write_mark(&map, offset), |v, _| {
            vec![("read back", Val::Hex((*v).into()))]
        })?;
        out.push(Marked { label: m.label, map, offset, name });
    }
    Ok(out)
}

fn read_marks(t: &mut Transcript, p: &str, marks: &[Marked]) {
    for mk in marks {
        let r = mk.map.read32(mk.offset).ok_or_else(|| Fail::other("outside the mapping"));
        t.step(&format!("{p}{}'s {} after the hot reset", mk.label, mk.name), r, |v, _| {
            vec![("value", Val::Hex((*v).into()))]
        });
    }
}

const RR_GROUP: &str = "group path: PCI_HOT_RESET with every group";
const RR_CDEV: &str = "cdev path: PCI_HOT_RESET zero-length";

fn hot_reset_really_resets(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_site(t, c)?;
        let all: Vec<&Member> = set.iter().collect();
        {
            let lg = legacy(t, "group path: ", &all)?;
            let mut devs = Vec::new();
            for m in &set {
                devs.push(group_device(t, "group path: ", &lg, m)?);
            }
            let marks = mark_site(t, "group path: ", &set)?;
            t.step(RR_GROUP, devs[0].hot_reset_groups(&lg.all_fds()), none);
            read_marks(t, "group path: ", &marks);
        }
        {
            let ictx = iommufd(t, "cdev path: open /dev/iommu")?;
            let mut devs = Vec::new();
            for m in &set {
                devs.push(cdev_bound(t, "cdev path: ", m, &ictx, "ictx1")?);
            }
            let marks = mark_site(t, "cdev path: ", &set)?;
            t.step(RR_CDEV, devs[0].hot_reset_groups(&[]), none);
            read_marks(t, "cdev path: ", &marks);
        }
        unbind_site(t, &set);
        Ok(())
    })
}

fn expect_hot_reset_really_resets(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bind_site(&mut e, c);
    for p in ["group path: ", "cdev path: "] {
        for (i, f) in c.site.functions.iter().enumerate() {
            let Some(model) = sysfs::model_of(f) else { continue };
            let l = LABELS[i];
            let name = model.mark.1;
            e.val(&format!("{p}mark {l}'s {name}"), "read back", &Val::Hex(MARK.into()));
            e.val(&format!("{p}{l}'s {name} after the hot reset"), "value", &Val::Hex(0));
        }
    }
    e.ok(RR_GROUP);
    e.ok(RR_CDEV);
    expect_unbind_site(&mut e, c);
    e.finish()
}

// ---------------------------------------------- dirty set, last close

const DS_INFO: &str = "VFIO_DEVICE_GET_INFO on A without function-level resets";
const DS_CLOSE_B: &str = "close every function but A";
const DS_CLOSE_A: &str = "close A, the last open function of the set";
const DS_P: &str = "last close: ";

pub(crate) fn reset_method_path(bdf: &str) -> std::path::PathBuf {
    sysfs::device_dir(bdf).join("reset_method")
}

fn dirty_set_reset_on_last_close(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_site(t, c)?;
        // The marks are read through sysfs mmaps of functions that are closed, which both
        // drivers runtime-suspend to D3hot (where the BARs do not answer) at a time of the PM
        // core's choosing: keep them resumed, so the reads see the reset, not the power state.
        for m in &set {
            t.step(&format!("keep {} resumed (power/control on)", m.label), set_power_control(&m.bdf, "on"), none);
        }
        // Without a function-level reset, a closing function stays dirty.
        for m in &set {
            t.step(
                &format!("disable {}'s reset methods", m.label),
                sysfs::write_attr(&reset_method_path(&m.bdf), "\n"),
                none,
            );
        }
        {
            let ictx = iommufd(t, "open /dev/iommu")?;
            let mut devs = Vec::new();
            for m in &set {
                devs.push(cdev_bound(t, "", m, &ictx, "ictx1")?);
            }
            t.step(DS_INFO, devs[0].get_info(argsz::<VfioDeviceInfo>()), |r, _| info_fields(r));
            let marks = mark_site(t, DS_P, &set)?;
            let a = devs.remove(0);
            drop(devs);
            t.record(DS_CLOSE_B, Outcome::Ok(Vec::new()));
            read_marks(t, "others closed, A open: ", &marks);
            drop(a);
            drop(ictx);
            t.record(DS_CLOSE_A, Outcome::Ok(Vec::new()));
            read_marks(t, DS_P, &marks);
        }
        for m in &set {
            t.step(
                &format!("restore {}'s reset methods", m.label),
                sysfs::write_attr(&reset_method_path(&m.bdf), "default"),
                none,
            );
            t.step(&format!("let {} suspend (power/control auto)", m.label), set_power_control(&m.bdf, "auto"), none);
        }
        unbind_site(t, &set);
        Ok(())
    })
}

/// Write the function's `power/control`: `on` keeps it resumed whatever its driver allows
/// (`pm_runtime_forbid`), `auto` gives the choice back to the driver.
fn set_power_control(bdf: &str, value: &str) -> Result<(), Fail> {
    sysfs::write_attr(&sysfs::device_dir(bdf).join("power/control"), value)
}

fn expect_dirty_set_reset_on_last_close(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bind_site(&mut e, c);
    // No function-level reset worked at open: no VFIO_DEVICE_FLAGS_RESET.
    e.val(DS_INFO, "flags", &Val::Hex(VFIO_DEVICE_FLAGS_PCI.into()));
    for (i, f) in c.site.functions.iter().enumerate() {
        let Some(model) = sysfs::model_of(f) else { continue };
        let (l, name) = (LABELS[i], model.mark.1);
        e.val(&format!("{DS_P}mark {l}'s {name}"), "read back", &Val::Hex(MARK.into()));
        // While A is open nothing may be reset; A's mark is still there.
        if i == 0 {
            e.val(&format!("others closed, A open: {l}'s {name} after the hot reset"), "value", &Val::Hex(MARK.into()));
        }
        e.val(&format!("{DS_P}{l}'s {name} after the hot reset"), "value", &Val::Hex(0));
    }
    expect_unbind_site(&mut e, c);
    e.finish()
}

// ------------------------------------------------- legacy, several groups

const ML_A: &str = "PCI_HOT_RESET with A's group only";
const ML_NOT_A: &str = "PCI_HOT_RESET with every group but A's";
const ML_ALL: &str = "PCI_HOT_RESET with every group";

fn hot_reset_multigroup_legacy(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_site(t, c)?;
        let all: Vec<&Member> = set.iter().collect();
        {
            let lg = legacy(t, "", &all)?;
            let d = group_device(t, "", &lg, &set[0])?;
            let a = lg.fds_of(&[&set[0]]);
            t.step(ML_A, d.hot_reset_groups(&a), none);
            let not_a: Vec<i32> = lg.all_fds().into_iter().filter(|fd| !a.contains(fd)).collect();
            t.step(ML_NOT_A, d.hot_reset_groups(&not_a), none);
            t.step(ML_ALL, d.hot_reset_groups(&lg.all_fds()), none);
        }
        unbind_site(t, &set);
        Ok(())
    })
}

fn expect_hot_reset_multigroup_legacy(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bind_site(&mut e, c);
    e.ok("VFIO_GROUP_GET_DEVICE_FD(A)");
    e.err(ML_A, Errno::EINVAL);
    e.err(ML_NOT_A, Errno::EINVAL);
    e.ok(ML_ALL);
    expect_unbind_site(&mut e, c);
    e.finish()
}

// ---------------------------------------------------- cdev ownership

// B in A's group.
const OW_INFO_UNOPENED: &str = "GET_PCI_HOT_RESET_INFO, B not opened";
const OW_RESET_UNOPENED: &str = "PCI_HOT_RESET zero-length, B not opened";
const OW_BIND_ICTX2: &str = "VFIO_DEVICE_BIND_IOMMUFD(B, ictx2)";
const OW_INFO_REFUSED: &str = "GET_PCI_HOT_RESET_INFO after B's bind to ictx2 was refused";
const OW_RESET_REFUSED: &str = "PCI_HOT_RESET zero-length after B's bind to ictx2 was refused";
// B in a group of its own.
const OW_INFO_ICTX2: &str = "GET_PCI_HOT_RESET_INFO, B bound in ictx2";
const OW_RESET_ICTX2: &str = "PCI_HOT_RESET zero-length, B bound in ictx2";
const OW_INFO_CLOSED: &str = "GET_PCI_HOT_RESET_INFO after B is closed";
const OW_RESET_CLOSED: &str = "PCI_HOT_RESET zero-length after B is closed";
// Both.
const OW_BIND_ICTX1: &str = "VFIO_DEVICE_BIND_IOMMUFD(B, ictx1)";
const OW_INFO_ICTX1: &str = "GET_PCI_HOT_RESET_INFO, B bound in ictx1";
const OW_RESET_ICTX1: &str = "PCI_HOT_RESET zero-length, B bound in ictx1";

fn hot_reset_cdev_ownership(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_site(t, c)?;
        let n = set.len();
        let (a, b) = (&set[0], &set[1]);
        {
            let ictx1 = iommufd(t, "open /dev/iommu (ictx1)")?;
            let ictx2 = iommufd(t, "open a second /dev/iommu (ictx2)")?;
            let da = cdev_bound(t, "", a, &ictx1, "ictx1")?;
            let bind = |t: &mut Transcript, step: &str, d: &Device, ictx: &Iommufd, space: &str| {
                t.step(step, d.bind_iommufd(ictx), |id, t| vec![("out_devid", t.norm_id(space, (*id).into()))])
                    .is_some()
            };
            if a.group == b.group {
                record_info_full(t, OW_INFO_UNOPENED, &da, Ids::DevId("ictx1"), n);
                t.step(OW_RESET_UNOPENED, da.hot_reset_groups(&[]), none);
                let db = t.need("open the cdev of B", Device::open_cdev(&b.cdev), none)?;
                bind(t, OW_BIND_ICTX2, &db, &ictx2, "ictx2");
                record_info_full(t, OW_INFO_REFUSED, &da, Ids::DevId("ictx1"), n);
                t.step(OW_RESET_REFUSED, da.hot_reset_groups(&[]), none);
                if !bind(t, OW_BIND_ICTX1, &db, &ictx1, "ictx1") {
                    return Err(Abort);
                }
                record_info_full(t, OW_INFO_ICTX1, &da, Ids::DevId("ictx1"), n);
                t.step(OW_RESET_ICTX1, da.hot_reset_groups(&[]), none);
            } else {
                let db = t.need("open the cdev of B", Device::open_cdev(&b.cdev), none)?;
                if !bind(t, OW_BIND_ICTX2, &db, &ictx2, "ictx2") {
                    return Err(Abort);
                }
                record_info_full(t, OW_INFO_ICTX2, &da, Ids::DevId("ictx1"), n);
                t.step(OW_RESET_ICTX2, da.hot_reset_groups(&[]), none);
                drop(db);
                t.record("close the cdev of B", Outcome::Ok(Vec::new()));
                record_info_full(t, OW_INFO_CLOSED, &da, Ids::DevId("ictx1"), n);
                t.step(OW_RESET_CLOSED, da.hot_reset_groups(&[]), none);
                let db = t.need("open the cdev of B again", Device::open_cdev(&b.cdev), none)?;
                if !bind(t, OW_BIND_ICTX1, &db, &ictx1, "ictx1") {
                    return Err(Abort);
                }
                record_info_full(t, OW_INFO_ICTX1, &da, Ids::DevId("ictx1"), n);
                t.step(OW_RESET_ICTX1, da.hot_reset_groups(&[]), none);
            }
        }
        unbind_site(t, &set);
        Ok(())
    })
}

fn expect_hot_reset_cdev_ownership(c: &Ctx, t: &Transcript) -> Vec<String> {
    let s = c.site;
    let mut e = Expect::new(t);
    expect_bind_site(&mut e, c);
    e.ok("VFIO_DEVICE_BIND_IOMMUFD(A, ictx1)");
    let a = Some(Val::Norm("ictx1#1".into()));
    let a_only = cdev_expectation(s, &[a.clone()], &[]);
    let both = cdev_expectation(s, &[a, Some(Val::Norm("ictx1#2".into()))], &[]);
    if s.groups[0] == s.groups[1] {
        expect_entries(&mut e, OW_INFO_UNOPENED, s, &a_only.0, a_only.1);
        e.ok(OW_RESET_UNOPENED);
        // The group is owned by ictx1: iommufd refuses to let ictx2 claim it.
        e.err(OW_BIND_ICTX2, Errno::EPERM);
        expect_entries(&mut e, OW_INFO_REFUSED, s, &a_only.0, a_only.1);
        e.ok(OW_RESET_REFUSED);
    } else {
        // Bound in another iommufd counts as not owned, whatever the group.
        e.ok(OW_BIND_ICTX2);
        let mut ids = a_only.0.clone();
        ids[1] = Val::Norm("NOT_OWNED".into());
        expect_entries(&mut e, OW_INFO_ICTX2, s, &ids, VFIO_PCI_HOT_RESET_FLAG_DEV_ID);
        e.err(OW_RESET_ICTX2, Errno::EINVAL);
        // Closed, B is unopened in a group ictx1 does not own: NOT_OWNED,
        // as documented (vfio.h: "belongs to the same IOMMU group as the
        // calling device or another opened device").
        expect_entries(&mut e, OW_INFO_CLOSED, s, &a_only.0, a_only.1);
        if a_only.1 & VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED == 0 {
            e.err(OW_RESET_CLOSED, Errno::EINVAL);
        } else {
            e.ok(OW_RESET_CLOSED);
        }
    }
    e.ok(OW_BIND_ICTX1);
    expect_entries(&mut e, OW_INFO_ICTX1, s, &both.0, both.1);
    if both.1 & VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED != 0 {
        e.ok(OW_RESET_ICTX1);
    } else {
        e.err(OW_RESET_ICTX1, Errno::EINVAL);
    }
    expect_unbind_site(&mut e, c);
    e.finish()
}

// ------------------------------------------------ foreign drivers on B

/// modprobe `module` without letting it bind every unbound matching device:
/// PCI autoprobe is off while it registers.
pub(crate) fn load_native(module: &str) -> Result<(), Fail> {
    let was_on = sysfs::autoprobe()?;
    sysfs::set_autoprobe(false)?;
    let r = Command::new("modprobe").arg(module).output().map_err(Fail::from).and_then(|o| {
        if o.status.success() {
            Ok(())
        } else {
            Err(Fail::other(format!("modprobe {module}: {} {}", o.status, String::from_utf8_lossy(&o.stderr).trim())))
        }
    });
    let back = if was_on { sysfs::set_autoprobe(true) } else { Ok(()) };
    r.and(back)
}

const FN_INFO: &str = "B native: cdev path: GET_PCI_HOT_RESET_INFO";
const FN_ZERO: &str = "B native: cdev path: PCI_HOT_RESET zero-length";
const FN_GROUP: &str = "B native: group path: PCI_HOT_RESET with A's group";
const FO_BIND_B: &str = "B other: cdev path: VFIO_DEVICE_BIND_IOMMUFD(B, ictx2)";
const FO_INFO: &str = "B other: cdev path: GET_PCI_HOT_RESET_INFO, B bound in the same iommufd";
const FO_ZERO: &str = "B other: cdev path: PCI_HOT_RESET zero-length";
const FO_GROUP: &str = "B other: group path: PCI_HOT_RESET with A's and B's groups";
const FO_GROUP_B: &str = "B other: group path: PCI_HOT_RESET from B with A's and B's groups";

fn hot_reset_refused_foreign_driver(c: &Ctx) -> Transcript {
    scenario(|t| {
        let n = c.site.functions.len();
        let a = bind_member(t, "bind A", c, c.driver, 0)?;
        let b_bdf = c.site.functions[1].clone();
        let Some(model) = sysfs::model_of(&b_bdf) else {
            t.record("B's native driver", Outcome::Broken("unknown device model".into()));
            return Err(Abort);
        };
        let native = model.native_driver;
        t.need("load B's native driver", load_native(native), none)?;
        let r = bind_to(native, &b_bdf);
        let d = t.need("bind B to its native driver", r, |d, _| vec![("driver", Val::text(d))])?;
        if d != native {
            return Err(Abort);
        }
        {
            let ictx = iommufd(t, "B native: cdev path: open /dev/iommu")?;
            let da = cdev_bound(t, "B native: cdev path: ", &a, &ictx, "ictx1")?;
            record_info_full(t, FN_INFO, &da, Ids::DevId("ictx1"), n);
            t.step(FN_ZERO, da.hot_reset_groups(&[]), none);
        }
        {
            let lg = legacy(t, "B native: group path: ", &[&a])?;
            let da = group_device(t, "B native: group path: ", &lg, &a)?;
            t.step(FN_GROUP, da.hot_reset_groups(&lg.all_fds()), none);
        }
        unbind_member(t, "unbind B from its native driver", &b_bdf);
        t.step("unload B's native driver", crate::driver::rmmod(native), none);

        t.need("load the other VFIO driver", c.other.load(""), none)?;
        let b = bind_member(t, "bind B to the other VFIO driver", c, c.other, 1)?;
        {
            let ictx = iommufd(t, "B other: cdev path: open /dev/iommu")?;
            let da = cdev_bound(t, "B other: cdev path: ", &a, &ictx, "ictx2")?;
            let db = t.need("B other: cdev path: open the cdev of B", Device::open_cdev(&b.cdev), none)?;
            t.step(FO_BIND_B, db.bind_iommufd(&ictx), |id, t| vec![("out_devid", t.norm_id("ictx2", (*id).into()))]);
            record_info_full(t, FO_INFO, &da, Ids::DevId("ictx2"), n);
            t.step(FO_ZERO, da.hot_reset_groups(&[]), none);
        }
        {
            let lg = legacy(t, "B other: group path: ", &[&a, &b])?;
            let da = group_device(t, "B other: group path: ", &lg, &a)?;
            t.step(FO_GROUP, da.hot_reset_groups(&lg.all_fds()), none);
            let db = group_device(t, "B other: group path: ", &lg, &b)?;
            t.step(FO_GROUP_B, db.hot_reset_groups(&lg.all_fds()), none);
        }
        unbind_member(t, "unbind B", &b.bdf);
        unbind_member(t, "unbind A", &a.bdf);
        Ok(())
    })
}

fn expect_hot_reset_refused_foreign_driver(c: &Ctx, t: &Transcript) -> Vec<String> {
    let s = c.site;
    let mut e = Expect::new(t);
    e.val("bind A", "driver", &Val::Norm("driver under test".into()));
    e.ok("load B's native driver");
    if let Some(m) = sysfs::model_of(&s.functions[1]) {
        e.val("bind B to its native driver", "driver", &Val::text(m.native_driver));
    }
    let mut foreign = vec![true; s.functions.len()];
    foreign[0] = false;
    let (ids, flags) = cdev_expectation(s, &[Some(Val::Norm("ictx1#1".into()))], &foreign);
    expect_entries(&mut e, FN_INFO, s, &ids, flags);
    e.err(FN_ZERO, Errno::EINVAL);
    e.err(FN_GROUP, Errno::EINVAL);
    e.ok("unbind B from its native driver");
    e.ok("unload B's native driver");
    e.ok("load the other VFIO driver");
    e.val("bind B to the other VFIO driver", "driver", &Val::Norm("the other VFIO driver".into()));
    e.ok(FO_BIND_B);
    let (ids, flags) = cdev_expectation(s, &[Some(Val::Norm("ictx2#1".into()))], &foreign);
    expect_entries(&mut e, FO_INFO, s, &ids, flags);
    e.err(FO_ZERO, Errno::EINVAL);
    e.err(FO_GROUP, Errno::EINVAL);
    e.err(FO_GROUP_B, Errno::EINVAL);
    e.ok("unbind B");
    e.ok("unbind A");
    e.finish()
}

// ----------------------------------------------------- VFIO_DEVICE_RESET

/// GET_INFO, VFIO_DEVICE_RESET, and (on a known model) a BAR0 mark across
/// it, recorded but not judged: which reset method runs is the PCI core's
/// and the device model's business.
fn record_device_reset(t: &mut Transcript, p: &str, d: &Device, m: &Member) {
    t.step(&format!("{p}VFIO_DEVICE_GET_INFO"), d.get_info(argsz::<VfioDeviceInfo>()), |r, _| info_fields(r));
    let mark = sysfs::model_of(&m.bdf).map(|model| model.mark);
    let map = mark.and_then(|(offset, name)| {
        let map = t.step(&format!("{p}map the BAR0 of A (sysfs resource0)"), map_bar0(&m.bdf, offset + 4), none)?;
        t.step(&format!("{p}mark A's {name}"), write_mark(&map, offset), |v, _| {
            vec![("read back", Val::Hex((*v).into()))]
        })?;
        Some((map, offset, name))
    });
    t.step(&format!("{p}VFIO_DEVICE_RESET"), d.reset(), none);
    if let Some((map, offset, name)) = map {
        let r = map.read32(offset).ok_or_else(|| Fail::other("outside the mapping"));
        t.step(&format!("{p}A's {name} after VFIO_DEVICE_RESET"), r, |v, _| vec![("value", Val::Hex((*v).into()))]);
    }
}

fn vfio_device_reset(c: &Ctx) -> Transcript {
    scenario(|t| {
        let a = bind_member(t, "bind A", c, c.driver, 0)?;
        {
            let lg = legacy(t, "group path: ", &[&a])?;
            let d = group_device(t, "group path: ", &lg, &a)?;
            record_device_reset(t, "group path: ", &d, &a);
        }
        {
            let ictx = iommufd(t, "cdev path: open /dev/iommu")?;
            let d = cdev_bound(t, "cdev path: ", &a, &ictx, "ictx1")?;
            record_device_reset(t, "cdev path: ", &d, &a);
        }
        unbind_member(t, "unbind A", &a.bdf);
        Ok(())
    })
}

fn expect_vfio_device_reset(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.val("bind A", "driver", &Val::Norm("driver under test".into()));
    for p in ["group path: ", "cdev path: "] {
        let info = format!("{p}VFIO_DEVICE_GET_INFO");
        let reset = format!("{p}VFIO_DEVICE_RESET");
        e.bits(&info, "flags", VFIO_DEVICE_FLAGS_PCI.into());
        let flags = t.find(&info).and_then(|o| o.field("flags")).and_then(Val::as_u64);
        match flags {
            Some(f) if f & u64::from(VFIO_DEVICE_FLAGS_RESET) != 0 => {
                e.ok(&reset);
            }
            Some(_) => e.err(&reset, Errno::EINVAL),
            None => {}
        }
    }
    e.ok("unbind A");
    e.finish()
}

// --------------------------------------------------------------- the race

/// How long each side of the race runs.
///
/// With two TCG vCPUs (VFIO_PCI_RS_GUEST_SMP=2) this race froze the whole
/// guest in about one run of twenty, under either driver: both vCPUs idle
/// with interrupts enabled, vCPU0's LAPIC timer vector stuck in service, so
/// jiffies stop and no in-guest timeout fires.  With one vCPU (the default)
/// 180 runs went through.
const RACE_TIME: Duration = Duration::from_millis(2500);
/// How much longer than RACE_TIME the loops may take to notice the end
/// (one call in flight) before they count as not stopping by themselves.
const RACE_GRACE: Duration = Duration::from_secs(30);

/// The errnos the race may legitimately see.
const RACE_DOCUMENTED: [Errno; 5] = [Errno::EBUSY, Errno::EAGAIN, Errno::EINVAL, Errno::EPERM, Errno::ENODEV];

/// Outcomes per operation: ("PCI_HOT_RESET", "EBUSY (16)") -> count.
#[derive(Default)]
struct Tally(BTreeMap<(&'static str, String), u64>);

impl Tally {
    /// Count one outcome; returns whether the call succeeded.
    fn add(&mut self, op: &'static str, r: Result<(), Fail>) -> bool {
        let key = match &r {
            Ok(()) => "0".to_string(),
            Err(f) => f.to_string(),
        };
        *self.0.entry((op, key)).or_insert(0) += 1;
        r.is_ok()
    }

    fn merge(&mut self, other: Tally) {
        for (k, v) in other.0 {
            *self.0.entry(k).or_insert(0) += v;
        }
    }
}

/// Whether an outcome (as tallied) is documented.
fn documented(outcome: &str) -> bool {
    outcome == "0" || RACE_DOCUMENTED.iter().any(|e| e.to_string() == outcome)
}

const RACE_STOPPED: &str = "race: both loops stopped by themselves";
const RACE_UNDOCUMENTED: &str = "race: outcomes other than 0, EBUSY, EAGAIN, EINVAL, EPERM, ENODEV";

fn hot_reset_race(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_site(t, c)?;
        {
            let ictx = iommufd(t, "open /dev/iommu")?;
            let da = cdev_bound(t, "", &set[0], &ictx, "ictx1")?;
            let b = &set[1];
            let start = Instant::now();
            let deadline = start + RACE_TIME;
            let (resets, others) = thread::scope(|s| {
                let resetter = s.spawn(|| {
                    let mut tally = Tally::default();
                    while Instant::now() < deadline {
                        tally.add("A: PCI_HOT_RESET zero-length", da.hot_reset_groups(&[]).map_err(Fail::Os));
                    }
                    tally
                });
                let opener = s.spawn(|| {
                    let mut tally = Tally::default();
                    while Instant::now() < deadline {
                        let db = Device::open_cdev(&b.cdev);
                        tally.add("B: open the cdev", db.as_ref().map(|_| ()).map_err(Fail::clone));
                        let Ok(db) = db else { continue };
                        let bound = db.bind_iommufd(&ictx).map(|_| ()).map_err(Fail::Os);
                        if tally.add("B: VFIO_DEVICE_BIND_IOMMUFD(ictx1)", bound) {
                            tally.add("B: VFIO_DEVICE_RESET", db.reset().map_err(Fail::Os));
                        }
                    }
                    tally
                });
                (resetter.join(), opener.join())
            });
            let elapsed = start.elapsed();
            let mut tally = Tally::default();
            let mut broken = Vec::new();
            for (side, r) in [("the hot reset loop", resets), ("the open/bind/reset loop", others)] {
                match r {
                    Ok(x) => tally.merge(x),
                    Err(_) => broken.push(format!("{side} panicked")),
                }
            }
            if !broken.is_empty() {
                t.record(RACE_STOPPED, Outcome::Broken(broken.join("; ")));
                return Err(Abort);
            }
            t.info.push(format!(
                "race for {} ms (timing-dependent, not compared): {}",
                elapsed.as_millis(),
                tally.0.iter().map(|((op, o), n)| format!("{op} -> {o}: {n}")).collect::<Vec<_>>().join("; ")
            ));
            t.record(RACE_STOPPED, Outcome::Ok(vec![("finished", Val::Bool(elapsed <= RACE_TIME + RACE_GRACE))]));
            let bad: Vec<String> = tally
                .0
                .iter()
                .filter(|((_, o), _)| !documented(o))
                .map(|((op, o), n)| format!("{op} -> {o} x{n}"))
                .collect();
            t.record(
                RACE_UNDOCUMENTED,
                Outcome::Ok(vec![("count", Val::Num(bad.len() as u64)), ("which", Val::text(bad.join("; ")))]),
            );
        }
        unbind_site(t, &set);
        Ok(())
    })
}

fn expect_hot_reset_race(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bind_site(&mut e, c);
    e.ok("VFIO_DEVICE_BIND_IOMMUFD(A, ictx1)");
    e.val(RACE_STOPPED, "finished", &Val::Bool(true));
    e.num(RACE_UNDOCUMENTED, "count", 0);
    expect_unbind_site(&mut e, c);
    e.finish()
}
