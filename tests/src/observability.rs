//! Reset decisions user space can see, beyond the uAPI: vfio-pci-rs's sysfs
//! attributes `vfio_pci_rs/reset_set` and `reset_scope`, its trace events
//! (tracefs `events/vfio_pci_rs/`) and its dynamic-debug refusal messages of
//! the hot-reset ioctls.
//!
//! vfio-pci offers none of them, so each scenario runs its uAPI steps on both
//! drivers (compared as usual: the errnos must not change) and its
//! observation steps on vfio-pci-rs only (`Skipped` for vfio-pci); the
//! observations are checked against the site's topology and against the
//! uAPI steps' own outcomes.

use crate::kunit::{kmsg_lines, log_of};
use crate::reset::{
    at_most_labels, bind_site, bind_to, cdev_bound, group_device, iommufd, legacy, load_native, reset_method_path,
    resettable, resettable_foreign_capable, unbind_member, unbind_site, Member,
};
use crate::scenarios::{none, scenario, Ctx, Scenario, Site};
use crate::sys::{Errno, Fail};
use crate::sysfs;
use crate::transcript::{Expect, Outcome, Transcript, Val};
use crate::uapi::*;
use crate::vfio::Device;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The observability scenarios, in order.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "reset_set_sysfs",
            rule: "vfio-pci-rs: every bound function's vfio_pci_rs/reset_set lists each function its slot or bus reset reaches (address, driver, IOMMU group, open: no/group/cdev, - when not bound here) and reset_scope names the reset",
            loads_module: false,
            applies: at_most_labels,
            run: reset_set_sysfs,
            expect: expect_reset_set_sysfs,
        },
        Scenario {
            name: "trace_events",
            rule: "vfio-pci-rs: the vfio_pci_rs trace events record every open and close, VFIO_DEVICE_RESET with its method, each hot reset with its scope, proof and members, and the dirty-set reset, each with the outcome the uAPI returned",
            loads_module: false,
            applies: resettable,
            run: trace_events,
            expect: expect_trace_events,
        },
        Scenario {
            name: "hot_reset_refusal_logs",
            rule: "vfio-pci-rs: with dynamic debug on, every refused hot-reset ioctl logs which function refused it and which rule (naming the function to blame); the errnos are those of vfio-pci",
            loads_module: false,
            applies: at_most_labels,
            run: refusal_logs,
            expect: expect_refusal_logs,
        },
    ]
}

/// Why an observation step is skipped for vfio-pci.
const NOT_OFFERED: &str = "vfio-pci has no such interface";

/// Record an observation step: `observe` runs on vfio-pci-rs only.
fn observe(t: &mut Transcript, c: &Ctx, name: &str, observe: impl FnOnce() -> Result<String, Fail>) {
    if c.driver.is_reference() {
        t.record(name, Outcome::Skipped(NOT_OFFERED.into()));
    } else {
        t.step(name, observe(), |text, _| vec![("text", Val::text(text.clone()))]);
    }
}

/// The text of an observation step, if it succeeded.
fn observed<'a>(t: &'a Transcript, step: &str) -> Option<&'a str> {
    match t.find(step)?.field("text")? {
        Val::Text(s) => Some(s.as_str()),
        _ => None,
    }
}

// --------------------------------------------------------- sysfs attributes

fn attr_path(bdf: &str, name: &str) -> PathBuf {
    sysfs::device_dir(bdf).join("vfio_pci_rs").join(name)
}

fn read_attr(bdf: &str, name: &str) -> Result<String, Fail> {
    Ok(fs::read_to_string(attr_path(bdf, name))?)
}

/// How a function is expected in a reset_set line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Seen {
    Closed,
    Group,
    Cdev,
    /// Not bound to vfio-pci-rs: bound to this driver (None: to none).
    Foreign(Option<&'static str>),
}

const RS_CLOSED: &str = "reset_set of A, every function closed";
const RS_SCOPE: &str = "reset_scope of A";
const RS_A_GROUP: &str = "reset_set of A, A open through its group";
const RS_B: &str = "reset_set of B, A open through its group, B open too";
const RS_AFTER: &str = "reset_set of A, every function closed again";
const RS_B_UNBOUND: &str = "reset_set of A, B unbound";
const RS_B_NATIVE: &str = "reset_set of A, B bound to its native driver";
const RS_UNBOUND_GONE: &str = "A unbound: vfio_pci_rs/ is gone";

/// Whether B can be opened through its cdev while A's group is open: B is
/// in another group (one group cannot be open both ways).
fn b_by_cdev(site: &Site) -> bool {
    site.functions.len() > 1 && site.groups[1] != site.groups[0]
}

fn reset_set_sysfs(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_site(t, c)?;
        let a = &set[0];
        observe(t, c, RS_SCOPE, || read_attr(&a.bdf, "reset_scope"));
        observe(t, c, RS_CLOSED, || read_attr(&a.bdf, "reset_set"));
        {
            let lg = legacy(t, "group path: ", &[a])?;
            let _da = group_device(t, "group path: ", &lg, a)?;
            observe(t, c, RS_A_GROUP, || read_attr(&a.bdf, "reset_set"));
            if set.len() > 1 {
                let b = &set[1];
                if b_by_cdev(c.site) {
                    let ictx = iommufd(t, "cdev path: open /dev/iommu")?;
                    let _db = cdev_bound(t, "cdev path: ", b, &ictx, "ictx1")?;
                    observe(t, c, RS_B, || read_attr(&b.bdf, "reset_set"));
                } else {
                    let _db = group_device(t, "group path: ", &lg, b)?;
                    observe(t, c, RS_B, || read_attr(&b.bdf, "reset_set"));
                }
            }
        }
        observe(t, c, RS_AFTER, || read_attr(&a.bdf, "reset_set"));
        if set.len() > 1 {
            let b = &set[1];
            unbind_member(t, "unbind B", &b.bdf);
            observe(t, c, RS_B_UNBOUND, || read_attr(&a.bdf, "reset_set"));
            if resettable_foreign_capable(c.site).is_ok() {
                if let Some(model) = sysfs::model_of(&b.bdf) {
                    t.need("load B's native driver", load_native(model.native_driver), none)?;
                    t.need("bind B to its native driver", bind_to(model.native_driver, &b.bdf), |d, _| {
                        vec![("driver", Val::text(d))]
                    })?;
                    observe(t, c, RS_B_NATIVE, || read_attr(&a.bdf, "reset_set"));
                    unbind_member(t, "unbind B from its native driver", &b.bdf);
                    t.step("unload B's native driver", crate::driver::rmmod(model.native_driver), none);
                }
            }
        }
        unbind_member(t, "unbind A", &a.bdf);
        observe(t, c, RS_UNBOUND_GONE, || match sysfs::exists(&attr_path(&a.bdf, "reset_set")) {
            Ok(()) => Err(Fail::other("vfio_pci_rs/reset_set still exists")),
            Err(_) => Ok("gone".into()),
        });
        for m in set.iter().skip(2) {
            unbind_member(t, &format!("unbind {}", m.label), &m.bdf);
        }
        Ok(())
    })
}

/// The lines reset_set should show when the functions of the site are as
/// `seen` says (indexed like the site's functions).
fn expected_lines(site: &Site, seen: &[Seen]) -> Vec<String> {
    let n = if site.hot_reset { site.functions.len() } else { 1 };
    let mut lines: Vec<String> = (0..n)
        .map(|i| {
            let (driver, open) = match seen.get(i).copied().unwrap_or(Seen::Closed) {
                Seen::Closed => ("vfio-pci-rs", "no"),
                Seen::Group => ("vfio-pci-rs", "group"),
                Seen::Cdev => ("vfio-pci-rs", "cdev"),
                Seen::Foreign(d) => (d.unwrap_or("none"), "-"),
            };
            format!("{} driver={driver} iommu_group={} open={open}", site.functions[i], site.groups[i])
        })
        .collect();
    lines.sort();
    lines
}

fn expect_lines(e: &mut Vec<String>, t: &Transcript, step: &str, site: &Site, seen: &[Seen]) {
    let Some(text) = observed(t, step) else {
        e.push(format!("{step}: not read ({:?})", t.find(step)));
        return;
    };
    let mut got: Vec<String> = text.lines().map(str::to_string).collect();
    got.sort();
    let want = expected_lines(site, seen);
    if got != want {
        e.push(format!("{step}: got {got:?}, expected {want:?}"));
    }
}

fn expect_reset_set_sysfs(c: &Ctx, t: &Transcript) -> Vec<String> {
    let s = c.site;
    let mut e = Expect::new(t);
    for i in 0..s.functions.len() {
        e.ok(&format!("bind {}", crate::reset::LABELS[i]));
    }
    let mut failures = e.finish();
    if c.driver.is_reference() {
        return failures;
    }
    let f = &mut failures;
    let closed = vec![Seen::Closed; s.functions.len()];
    match observed(t, RS_SCOPE) {
        Some(scope) => {
            let ok = if s.hot_reset { scope == "slot\n" || scope == "bus\n" } else { scope == "none\n" };
            if !ok {
                f.push(format!("{RS_SCOPE}: {scope:?} (hot reset possible: {})", s.hot_reset));
            }
        }
        None => f.push(format!("{RS_SCOPE}: not read")),
    }
    expect_lines(f, t, RS_CLOSED, s, &closed);
    let mut a_open = closed.clone();
    a_open[0] = Seen::Group;
    expect_lines(f, t, RS_A_GROUP, s, &a_open);
    if s.functions.len() > 1 {
        let mut both = a_open.clone();
        both[1] = if b_by_cdev(s) { Seen::Cdev } else { Seen::Group };
        expect_lines(f, t, RS_B, s, &both);
    }
    expect_lines(f, t, RS_AFTER, s, &closed);
    if s.functions.len() > 1 {
        let mut b_gone = closed.clone();
        b_gone[1] = Seen::Foreign(None);
        expect_lines(f, t, RS_B_UNBOUND, s, &b_gone);
        if resettable_foreign_capable(s).is_ok() {
            if let Some(model) = sysfs::model_of(&s.functions[1]) {
                let mut native = closed.clone();
                native[1] = Seen::Foreign(Some(model.native_driver));
                expect_lines(f, t, RS_B_NATIVE, s, &native);
            }
        }
    }
    if observed(t, RS_UNBOUND_GONE).is_none() {
        f.push(format!("{RS_UNBOUND_GONE}: {:?}", t.find(RS_UNBOUND_GONE)));
    }
    failures
}

// ------------------------------------------------------------- trace events

const TRACEFS: &str = "/sys/kernel/tracing";

/// Mounts tracefs if it is not yet, enables the driver's events and empties
/// the buffer.
fn start_tracing() -> Result<String, Fail> {
    let root = Path::new(TRACEFS);
    if sysfs::exists(&root.join("trace")).is_err() {
        let o = Command::new("mount").args(["-t", "tracefs", "nodev", TRACEFS]).output()?;
        if !o.status.success() {
            return Err(Fail::other(format!("mount tracefs: {}", String::from_utf8_lossy(&o.stderr).trim())));
        }
    }
    sysfs::write_attr(&root.join("events/vfio_pci_rs/enable"), "1")?;
    // Opening `trace` for writing with O_TRUNC empties the buffer.
    File::create(root.join("trace"))?;
    Ok("on".into())
}

/// The driver's records in the buffer, one line each (`EVENT: FIELDS`), and
/// the events disabled again.
fn stop_tracing() -> Result<String, Fail> {
    let root = Path::new(TRACEFS);
    sysfs::write_attr(&root.join("events/vfio_pci_rs/enable"), "0")?;
    let text = fs::read_to_string(root.join("trace"))?;
    let lines: Vec<&str> =
        text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.find("vfio_pci_rs_").map(|i| &l[i..])).collect();
    Ok(lines.join("\n"))
}

/// One trace record: its event and its `key=value` fields.
#[derive(Debug)]
struct Record {
    event: String,
    fields: BTreeMap<String, String>,
}

fn parse_records(text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|l| {
            let (event, rest) = l.split_once(": ")?;
            let fields = rest
                .split_whitespace()
                .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect();
            Some(Record { event: event.to_string(), fields })
        })
        .collect()
}

const TR_START: &str = "enable the vfio_pci_rs trace events";
const TR_STOP: &str = "the vfio_pci_rs trace records";
const TR_METHOD: &str = "A's first reset method (sysfs reset_method)";
const TC_RESET: &str = "cdev path: VFIO_DEVICE_RESET(A)";
const TC_HOT: &str = "cdev path: PCI_HOT_RESET zero-length";
const TG_HOT: &str = "group path: PCI_HOT_RESET with every group";
const TD_P: &str = "dirty: ";
const TD_RESET: &str = "dirty: VFIO_DEVICE_RESET(A) without reset methods";

fn trace_events(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_site(t, c)?;
        let all: Vec<&Member> = set.iter().collect();
        // No reset method at all: sysfs hides the attribute.
        observe(t, c, TR_METHOD, || match fs::read_to_string(reset_method_path(&set[0].bdf)) {
            Ok(text) => Ok(text.split_whitespace().next().unwrap_or("none").to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok("none".into()),
            Err(e) => Err(e.into()),
        });
        observe(t, c, TR_START, start_tracing);
        {
            let ictx = iommufd(t, "cdev path: open /dev/iommu")?;
            let d = cdev_bound(t, "cdev path: ", &set[0], &ictx, "ictx1")?;
            let mut others = Vec::new();
            for (i, m) in set.iter().enumerate().skip(1) {
                if !set[..i].iter().any(|o| o.group == m.group) {
                    others.push(cdev_bound(t, "cdev path: ", m, &ictx, "ictx1")?);
                }
            }
            t.step(TC_RESET, d.reset(), none);
            t.step(TC_HOT, d.hot_reset_groups(&[]), none);
        }
        {
            let lg = legacy(t, "group path: ", &all)?;
            let d = group_device(t, "group path: ", &lg, &set[0])?;
            t.step(TG_HOT, d.hot_reset_groups(&lg.all_fds()), none);
        }
        // Without a function-level reset every closing function stays dirty: the last close
        // resets the set.
        for m in &set {
            let step = format!("{TD_P}disable {}'s reset methods", m.label);
            t.step(&step, sysfs::write_attr(&reset_method_path(&m.bdf), "\n"), none);
        }
        {
            let ictx = iommufd(t, "dirty: open /dev/iommu")?;
            let mut devs = Vec::new();
            for m in &set {
                devs.push(cdev_bound(t, TD_P, m, &ictx, "ictx2")?);
            }
            t.step(TD_RESET, devs[0].reset(), none);
        }
        for m in &set {
            let step = format!("{TD_P}restore {}'s reset methods", m.label);
            t.step(&step, sysfs::write_attr(&reset_method_path(&m.bdf), "default"), none);
        }
        observe(t, c, TR_STOP, stop_tracing);
        unbind_site(t, &set);
        Ok(())
    })
}

/// What the trace records as `ret` for a step's outcome.
fn ret_of(t: &Transcript, step: &str) -> Option<String> {
    match t.find(step)? {
        Outcome::Ok(_) => Some("0".into()),
        Outcome::Err(e) => Some(format!("-{}", e.0)),
        _ => None,
    }
}

fn expect_trace_events(c: &Ctx, t: &Transcript) -> Vec<String> {
    let s = c.site;
    let mut e = Expect::new(t);
    e.ok(TC_HOT);
    e.ok(TG_HOT);
    let mut f = e.finish();
    if c.driver.is_reference() {
        return f;
    }
    let Some(text) = observed(t, TR_STOP) else {
        f.push(format!("{TR_STOP}: {:?}", t.find(TR_STOP)));
        return f;
    };
    let records = parse_records(text);
    let a = &s.functions[0];
    let members = s.functions.join(",");
    let of = |event: &str, dev: &str| -> Vec<&Record> {
        records.iter().filter(|r| r.event == event && r.fields.get("dev").map(String::as_str) == Some(dev)).collect()
    };
    let field = |r: &Record, k: &str| r.fields.get(k).cloned().unwrap_or_default();
    // A was opened three times: through its cdev (bound to an iommufd), its group (type1
    // container), its cdev again.
    let opens = of("vfio_pci_rs_open", a);
    let iommufd: Vec<String> = opens.iter().map(|r| field(r, "iommufd")).collect();
    if iommufd != ["1", "0", "1"] || opens.iter().any(|r| field(r, "ret") != "0") {
        f.push(format!("A's open records: {opens:?}, expected three, iommufd=1, 0, 1, ret=0"));
    }
    for dev in &s.functions {
        let opened = of("vfio_pci_rs_open", dev).len();
        let closed = of("vfio_pci_rs_close", dev);
        if opened != closed.len() {
            f.push(format!("{dev}: {opened} open records but {} close records", closed.len()));
        }
        // The last close of each, without reset methods: not attempted, left dirty.
        match closed.last() {
            Some(r) if field(r, "reset") == "-25" && field(r, "needs_reset") == "1" => {}
            r => f.push(format!("{dev}: last close record {r:?}, expected reset=-25 needs_reset=1")),
        }
    }
    let resets = of("vfio_pci_rs_reset", a);
    let want_method = observed(t, TR_METHOD).unwrap_or("?").to_string();
    let want = [(want_method, ret_of(t, TC_RESET)), ("none".to_string(), ret_of(t, TD_RESET))];
    let got: Vec<(String, Option<String>)> =
        resets.iter().map(|r| (field(r, "method"), Some(field(r, "ret")))).collect();
    if got != want {
        f.push(format!("VFIO_DEVICE_RESET records: {resets:?}, expected (method, ret) {want:?}"));
    }
    let hot = of("vfio_pci_rs_hot_reset", a);
    let proofs: Vec<String> = hot.iter().map(|r| field(r, "proof")).collect();
    if proofs != ["iommufd", "groups"] {
        f.push(format!("hot reset records: {hot:?}, expected proof=iommufd then proof=groups"));
    }
    for (r, step) in hot.iter().zip([TC_HOT, TG_HOT]) {
        let scope = field(r, "scope");
        if field(r, "members") != members
            || Some(field(r, "ret")) != ret_of(t, step)
            || !["slot", "bus"].contains(&scope.as_str())
        {
            f.push(format!("{step}: record {r:?}, expected members={members} ret={:?}", ret_of(t, step)));
        }
    }
    // The last close of the dirty set reset it, the event right after that close's.
    let dirty: Vec<&Record> = records.iter().filter(|r| r.event == "vfio_pci_rs_dirty_reset").collect();
    match (&dirty[..], records.last()) {
        ([d], Some(last)) if std::ptr::eq(*d, last) && field(d, "members") == members && field(d, "ret") == "0" => {}
        _ => f.push(format!("dirty-set reset records {dirty:?}, expected one, last, with members={members} ret=0")),
    }
    f
}

// -------------------------------------------------------- refusal messages

const DYNDBG: &str = "/proc/dynamic_debug/control";

/// Switches the module's dynamic-debug messages on or off.
fn dyndbg(on: bool) -> Result<String, Fail> {
    let flag = if on { "+p" } else { "-p" };
    sysfs::write_attr(Path::new(DYNDBG), &format!("module vfio_pci_rs {flag}"))?;
    Ok(flag.into())
}

/// Runs `call` (a refused ioctl) and records its errno as step `name`; on
/// vfio-pci-rs also the kernel log lines it produced, as step `name: log`.
fn refused<T>(t: &mut Transcript, c: &Ctx, name: &str, call: impl FnOnce() -> Result<T, Errno>) {
    if c.driver.is_reference() {
        t.step(name, call(), none);
        t.record(format!("{name}: log"), Outcome::Skipped(NOT_OFFERED.into()));
        return;
    }
    match log_of(call) {
        Ok((r, records)) => {
            t.step(name, r, none);
            let lines: Vec<String> =
                kmsg_lines(&records).into_iter().filter(|l| l.starts_with("vfio-pci-rs ")).collect();
            t.record(format!("{name}: log"), Outcome::Ok(vec![("text", Val::text(lines.join("\n")))]));
        }
        Err(e) => {
            t.record(name, Outcome::Broken(e.clone()));
            t.record(format!("{name}: log"), Outcome::Broken(e));
        }
    }
}

/// GET_PCI_HOT_RESET_INFO's errno with `argsz` (the reply's bytes are the
/// hot-reset scenarios' business).
fn info_result(d: &Device, argsz: u32) -> Result<(), Errno> {
    match d.hot_reset_info(argsz) {
        Ok(call) => call.result,
        Err(e) => Err(e.errno().unwrap_or(Errno(0))),
    }
}

const L_ON: &str = "dynamic debug on for module vfio_pci_rs";
const L_OFF: &str = "dynamic debug off for module vfio_pci_rs";
const L_OFF_MID: &str = "dynamic debug off for a while";
const L_ON_AGAIN: &str = "dynamic debug on again";
const LG_QUIET: &str = "group path: PCI_HOT_RESET argsz=11, dynamic debug off";
const LI_ARGSZ: &str = "group path: GET_PCI_HOT_RESET_INFO argsz=11";
const LI_ROOM: &str = "group path: GET_PCI_HOT_RESET_INFO argsz=16 (no room for entries)";
const LG_ARGSZ: &str = "group path: PCI_HOT_RESET argsz=11";
const LG_FLAGS: &str = "group path: PCI_HOT_RESET flags=1";
const LG_COUNT0: &str = "group path: PCI_HOT_RESET zero-length";
const LG_TOO_MANY: &str = "group path: PCI_HOT_RESET with more fds than functions";
const LG_CLOSED: &str = "group path: PCI_HOT_RESET with fd -1";
const LG_DEVNULL: &str = "group path: PCI_HOT_RESET with /dev/null";
const LG_PARTIAL: &str = "group path: PCI_HOT_RESET with A's group only";
const LC_COUNT1: &str = "cdev path: PCI_HOT_RESET with a group fd array (count=1, fd -1)";
const LC_NOT_OWNED: &str = "cdev path: PCI_HOT_RESET zero-length, B's group not in A's iommufd";
const LU_GROUP: &str = "B unbound: group path: PCI_HOT_RESET";
const LN_ZERO: &str = "B native: cdev path: PCI_HOT_RESET zero-length";

fn refusal_logs(c: &Ctx) -> Transcript {
    scenario(|t| {
        let set = bind_site(t, c)?;
        let all: Vec<&Member> = set.iter().collect();
        let n = set.len();
        observe(t, c, L_ON, || dyndbg(true));
        {
            let lg = legacy(t, "group path: ", &all)?;
            let d = group_device(t, "group path: ", &lg, &set[0])?;
            let fds = lg.all_fds();
            let full = VFIO_PCI_HOT_RESET_MINSZ + 4 * fds.len() as u32;
            refused(t, c, LI_ARGSZ, || info_result(&d, 11));
            refused(t, c, LI_ROOM, || info_result(&d, 16));
            refused(t, c, LG_ARGSZ, || d.hot_reset(11, 0, &fds));
            refused(t, c, LG_FLAGS, || d.hot_reset(full, 1, &fds));
            // Switched off, the same refusal logs nothing.
            observe(t, c, L_OFF_MID, || dyndbg(false));
            refused(t, c, LG_QUIET, || d.hot_reset(11, 0, &fds));
            observe(t, c, L_ON_AGAIN, || dyndbg(true));
            refused(t, c, LG_COUNT0, || d.hot_reset_groups(&[]));
            if c.site.hot_reset {
                let too_many: Vec<i32> = (0..=n).map(|i| fds[i % fds.len()]).collect();
                refused(t, c, LG_TOO_MANY, || d.hot_reset_groups(&too_many));
                refused(t, c, LG_CLOSED, || d.hot_reset_groups(&[-1]));
                let null = t.need("open /dev/null", File::open("/dev/null"), none)?;
                refused(t, c, LG_DEVNULL, || d.hot_reset_groups(&[std::os::fd::AsRawFd::as_raw_fd(&null)]));
                if fds.len() > 1 {
                    refused(t, c, LG_PARTIAL, || d.hot_reset_groups(&lg.fds_of(&[&set[0]])));
                }
            }
        }
        {
            let ictx = iommufd(t, "cdev path: open /dev/iommu")?;
            let d = cdev_bound(t, "cdev path: ", &set[0], &ictx, "ictx1")?;
            refused(t, c, LC_COUNT1, || d.hot_reset_groups(&[-1]));
            if c.site.hot_reset && b_by_cdev(c.site) {
                refused(t, c, LC_NOT_OWNED, || d.hot_reset_groups(&[]));
            }
        }
        if n > 1 && c.site.hot_reset {
            unbind_member(t, "unbind B", &set[1].bdf);
            let rest: Vec<&Member> = set.iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, m)| m).collect();
            {
                let lg = legacy(t, "B unbound: group path: ", &rest)?;
                let d = group_device(t, "B unbound: group path: ", &lg, &set[0])?;
                refused(t, c, LU_GROUP, || d.hot_reset_groups(&lg.all_fds()));
            }
            if resettable_foreign_capable(c.site).is_ok() {
                if let Some(model) = sysfs::model_of(&set[1].bdf) {
                    t.need("load B's native driver", load_native(model.native_driver), none)?;
                    t.need("bind B to its native driver", bind_to(model.native_driver, &set[1].bdf), |d, _| {
                        vec![("driver", Val::text(d))]
                    })?;
                    {
                        let ictx = iommufd(t, "B native: cdev path: open /dev/iommu")?;
                        let d = cdev_bound(t, "B native: cdev path: ", &set[0], &ictx, "ictx2")?;
                        refused(t, c, LN_ZERO, || d.hot_reset_groups(&[]));
                    }
                    unbind_member(t, "unbind B from its native driver", &set[1].bdf);
                    t.step("unload B's native driver", crate::driver::rmmod(model.native_driver), none);
                }
            }
            unbind_member(t, "unbind A", &set[0].bdf);
            for m in &set[2..] {
                unbind_member(t, &format!("unbind {}", m.label), &m.bdf);
            }
        } else {
            unbind_site(t, &set);
        }
        observe(t, c, L_OFF, || dyndbg(false));
        Ok(())
    })
}

/// The step's log must hold a line from A naming the ioctl and containing
/// every one of `parts`.
fn expect_log(f: &mut Vec<String>, t: &Transcript, step: &str, a: &str, ioctl: &str, parts: &[&str]) {
    let log_step = format!("{step}: log");
    let Some(text) = observed(t, &log_step) else {
        f.push(format!("{log_step}: not read ({:?})", t.find(&log_step)));
        return;
    };
    let prefix = format!("vfio-pci-rs {a}: {ioctl} ");
    if !text.lines().any(|l| l.starts_with(&prefix) && parts.iter().all(|p| l.contains(p))) {
        f.push(format!("{log_step}: no line starting {prefix:?} with {parts:?} in {text:?}"));
    }
}

fn expect_refusal_logs(c: &Ctx, t: &Transcript) -> Vec<String> {
    let s = c.site;
    let a = s.functions[0].as_str();
    let mut e = Expect::new(t);
    e.err(LI_ARGSZ, Errno::EINVAL);
    e.err(LI_ROOM, if s.hot_reset { Errno::ENOSPC } else { Errno::ENODEV });
    e.err(LG_ARGSZ, Errno::EINVAL);
    e.err(LG_FLAGS, Errno::EINVAL);
    e.err(LG_QUIET, Errno::EINVAL);
    e.err(LG_COUNT0, Errno::EINVAL);
    e.err(LC_COUNT1, Errno::EINVAL);
    let multigroup = s.distinct_groups().len() > 1;
    if s.hot_reset {
        e.err(LG_TOO_MANY, Errno::EINVAL);
        e.err(LG_CLOSED, Errno::EBADF);
        e.err(LG_DEVNULL, Errno::EINVAL);
        if multigroup {
            e.err(LG_PARTIAL, Errno::EINVAL);
        }
        if b_by_cdev(s) {
            e.err(LC_NOT_OWNED, Errno::EINVAL);
        }
        if s.functions.len() > 1 {
            e.err(LU_GROUP, Errno::EINVAL);
            if resettable_foreign_capable(s).is_ok() {
                e.err(LN_ZERO, Errno::EINVAL);
            }
        }
    }
    let mut failures = e.finish();
    if c.driver.is_reference() {
        return failures;
    }
    const INFO: &str = "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO";
    const RESET: &str = "VFIO_DEVICE_PCI_HOT_RESET";
    let f = &mut failures;
    expect_log(f, t, LI_ARGSZ, a, INFO, &["refused: argsz does not cover the 12-byte header"]);
    if s.hot_reset {
        let held = format!("the reset scope holds {}", s.functions.len());
        expect_log(f, t, LI_ROOM, a, INFO, &["refused: argsz has room for 0 entries", &held]);
    } else {
        expect_log(f, t, LI_ROOM, a, INFO, &["refused: no slot or bus reset can reach this function"]);
    }
    expect_log(f, t, LG_ARGSZ, a, RESET, &["refused: argsz does not cover the 12-byte header"]);
    expect_log(f, t, LG_FLAGS, a, RESET, &["refused: flags 0x1, must be 0"]);
    match observed(t, &format!("{LG_QUIET}: log")) {
        Some("") => {}
        other => f.push(format!("{LG_QUIET}: logged {other:?}, expected nothing")),
    }
    expect_log(f, t, LG_COUNT0, a, RESET, &["refused: no group fds for a device opened through its group"]);
    expect_log(f, t, LC_COUNT1, a, RESET, &["refused: 1 group fds for a device opened through its cdev"]);
    if s.hot_reset {
        let more = format!("more than the {} functions in the reset scope", s.functions.len());
        expect_log(f, t, LG_TOO_MANY, a, RESET, &["refused:", &more]);
        expect_log(f, t, LG_CLOSED, a, RESET, &["refused: fd -1 is not open"]);
        expect_log(f, t, LG_DEVNULL, a, RESET, &["refused: fd", "is not a VFIO group"]);
        if multigroup {
            // The first function outside A's group.
            if let Some(i) = (1..s.functions.len()).find(|&i| s.groups[i] != s.groups[0]) {
                let covers = format!("no group fd given covers {}", s.functions[i]);
                expect_log(f, t, LG_PARTIAL, a, RESET, &[&covers]);
            }
        }
        if b_by_cdev(s) {
            let owned = format!("{} in the reset scope is not owned by the caller's iommufd_ctx", s.functions[1]);
            expect_log(f, t, LC_NOT_OWNED, a, RESET, &[&owned]);
        }
        if s.functions.len() > 1 {
            let none = format!("{} in the reset scope is bound to no driver", s.functions[1]);
            expect_log(f, t, LU_GROUP, a, RESET, &[&none]);
            if resettable_foreign_capable(s).is_ok() {
                if let Some(model) = sysfs::model_of(&s.functions[1]) {
                    let native = format!(
                        "{} in the reset scope is bound to {}, not to this driver",
                        s.functions[1], model.native_driver
                    );
                    expect_log(f, t, LN_ZERO, a, RESET, &[&native]);
                }
            }
        }
    }
    failures
}
