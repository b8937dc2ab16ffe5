//! The differential scenarios.  Each one exercises one documented rule of
//! the VFIO uAPI against one driver on one PCI function and returns the
//! transcript of what user space observed; each has its own expectation
//! check (the rule as documented), and the harness also compares the
//! vfio-pci-rs transcript with the C vfio-pci one step by step.
//!
//! A scenario closes every fd it opened before it unbinds the device, and
//! stops at the first step its remaining steps depend on; the harness then
//! restores the resting state (nothing bound, module unloaded).

use crate::driver::{self, Driver, RUST_MODULE, RUST_NAME};
use crate::sys::{Errno, Fail};
use crate::sysfs::{self, PciId};
use crate::transcript::{Abort, Expect, Fields, Outcome, Transcript, Val};
use crate::uapi::*;
use crate::vfio::{self, Container, Device, Group, InfoReply, Iommufd, SENTINEL};
use std::fs;
use std::path::{Path, PathBuf};

/// One documented rule, run against one driver on one function.
pub struct Scenario {
    pub name: &'static str,
    /// The rule, as the uAPI (or the driver-core ABI) documents it.
    pub rule: &'static str,
    /// The scenario loads and unloads the driver itself; otherwise the
    /// harness loads it (step "load driver") before running it.
    pub loads_module: bool,
    /// Why the scenario does not apply to a site (`# SKIP`), if it does not.
    pub applies: fn(&Site) -> Result<(), String>,
    pub run: fn(&Ctx) -> Transcript,
    pub expect: fn(&Ctx, &Transcript) -> Vec<String>,
}

/// Where a topology's scenarios run: the functions one slot or bus reset of
/// its first function reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// Every function below the topology's port, sorted; scenarios open the
    /// first one.
    pub functions: Vec<String>,
    /// Their IOMMU groups, in the same order.
    pub groups: Vec<String>,
    /// Whether a slot or bus reset can reach them: the port is a bridge.
    /// An endpoint on the root bus has neither.
    pub hot_reset: bool,
}

impl Site {
    /// The distinct groups, in function order.
    pub fn distinct_groups(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for g in &self.groups {
            if !v.contains(&g.as_str()) {
                v.push(g);
            }
        }
        v
    }
}

/// One run: the driver under test, the other VFIO driver, and the site.
pub struct Ctx<'a> {
    pub driver: &'a Driver,
    /// The other VFIO PCI driver (vfio-pci when testing vfio-pci-rs and vice
    /// versa), for the scenarios that need a foreign VFIO driver.
    pub other: &'a Driver,
    pub site: &'a Site,
}

impl Ctx<'_> {
    /// The function the scenario opens.
    pub fn bdf(&self) -> &str {
        &self.site.functions[0]
    }
}

/// For scenarios that apply everywhere.
pub fn everywhere(_: &Site) -> Result<(), String> {
    Ok(())
}

/// The scenarios run on the first function of every topology, in order.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "bind_driver_override",
            rule: "driver_override + drivers_probe binds the function; the group node, the cdev and its sysfs entry appear; unbind removes them",
            loads_module: false,
            applies: everywhere,
            run: bind_driver_override,
            expect: expect_bind_driver_override,
        },
        Scenario {
            name: "bind_new_id",
            rule: "new_id binds unbound matching functions; remove_id leaves them bound; unbind removes the cdev",
            loads_module: false,
            applies: everywhere,
            run: bind_new_id,
            expect: expect_bind_new_id,
        },
        Scenario {
            name: "bind_ids_param",
            rule: "ids=vendor:device at load binds unbound matching functions; unloading unbinds them",
            loads_module: true,
            applies: everywhere,
            run: bind_ids_param,
            expect: expect_bind_ids_param,
        },
        Scenario {
            name: "unload_with_bound_device",
            rule: "unloading the driver with a bound function succeeds, unbinds it and removes its nodes",
            loads_module: false,
            applies: everywhere,
            run: unload_with_bound_device,
            expect: expect_unload_with_bound_device,
        },
        Scenario {
            name: "group_path_get_info",
            rule: "container + group + SET_CONTAINER + SET_IOMMU(TYPE1v2) + GET_DEVICE_FD reach VFIO_DEVICE_GET_INFO",
            loads_module: false,
            applies: everywhere,
            run: group_path_get_info,
            expect: expect_group_path_get_info,
        },
        Scenario {
            name: "cdev_path_get_info",
            rule: "a cdev fd grants nothing before BIND_IOMMUFD; bind + IOAS_ALLOC + ATTACH_IOMMUFD_PT reach VFIO_DEVICE_GET_INFO",
            loads_module: false,
            applies: everywhere,
            run: cdev_path_get_info,
            expect: expect_cdev_path_get_info,
        },
        Scenario {
            name: "cdev_bind_twice",
            rule: "one device cannot be bound twice: not on the same fd, not through a second open of the cdev",
            loads_module: false,
            applies: everywhere,
            run: cdev_bind_twice,
            expect: expect_cdev_bind_twice,
        },
        Scenario {
            name: "unbind_while_open_waits",
            rule: "unbinding a function that user space has open asks the user to release it and waits; the unbind completes once the device is closed",
            loads_module: false,
            applies: everywhere,
            run: unbind_while_open_waits,
            expect: expect_unbind_while_open_waits,
        },
        Scenario {
            name: "group_open_blocks_cdev",
            rule: "while the group is open (legacy path), BIND_IOMMUFD on the cdev fails with EBUSY",
            loads_module: false,
            applies: everywhere,
            run: group_open_blocks_cdev,
            expect: expect_group_open_blocks_cdev,
        },
        Scenario {
            name: "cdev_open_blocks_group",
            rule: "while the cdev is bound, the group cannot be opened (EBUSY); opening the cdev alone blocks nothing",
            loads_module: false,
            applies: everywhere,
            run: cdev_open_blocks_group,
            expect: expect_cdev_open_blocks_group,
        },
    ]
    .into_iter()
    .chain(crate::reset::scenarios())
    .chain(crate::regions::scenarios())
    .chain(crate::huge_map::scenarios())
    .chain(crate::rom_decode::scenarios())
    .chain(crate::info_caps::scenarios())
    .chain(crate::features::scenarios())
    .chain(crate::config_space::scenarios())
    .chain(crate::interrupts::scenarios())
    .chain(crate::irqbypass::scenarios())
    .chain(crate::d3_reset::scenarios())
    .chain(crate::sriov::scenarios())
    .chain(crate::ioeventfd::scenarios())
    .chain(crate::observability::scenarios())
    .chain(crate::params::scenarios())
    .chain(crate::power::scenarios())
    .chain(crate::dma_buf::scenarios())
    .chain(crate::vga::scenarios())
    .chain(crate::fuzz::scenarios())
    .chain(crate::fault_inject::scenarios())
    .chain(crate::stress::scenarios())
    .collect()
}

// ------------------------------------------------------------- plumbing

/// Run a scenario body, keeping the transcript however far it got.
pub(crate) fn scenario(body: impl FnOnce(&mut Transcript) -> Result<(), Abort>) -> Transcript {
    let mut t = Transcript::new();
    let _stopped_early: Result<(), Abort> = body(&mut t);
    t
}

pub(crate) fn none<T>(_: &T, _: &mut Transcript) -> Fields {
    Vec::new()
}

/// A driver name as recorded: the driver under test is normalised.
pub(crate) fn driver_val(driver: &Driver, name: &str) -> Val {
    if name == driver.name {
        Val::Norm("driver under test".into())
    } else {
        Val::text(name)
    }
}

/// What a bind produced: the group number and the cdev name.
pub(crate) struct Bound {
    pub(crate) group: String,
    pub(crate) cdev: String,
}

/// Record the `driver` link of `bdf`; Abort unless it names `driver`.
fn require_driver_link(t: &mut Transcript, step: &str, driver: &Driver, bdf: &str) -> Result<(), Abort> {
    sysfs::wait_until(sysfs::SETTLE, || sysfs::current_driver(bdf).is_ok());
    let name = t.need(step, sysfs::current_driver(bdf), |d, _| vec![("driver", driver_val(driver, d))])?;
    if name == driver.name {
        Ok(())
    } else {
        Err(Abort)
    }
}

/// After a bind: the driver link, the group node and the cdev.
fn require_bound(t: &mut Transcript, driver: &Driver, bdf: &str) -> Result<Bound, Abort> {
    require_driver_link(t, "driver link", driver, bdf)?;
    let group = t.need("iommu_group", sysfs::iommu_group(bdf), none)?;
    let gpath = PathBuf::from(vfio::group_path(&group));
    sysfs::wait_path(&gpath, true);
    let node = t.need("group node", sysfs::stat_node(&gpath), |n, _| {
        vec![("path", Val::text(gpath.display().to_string())), ("char device", Val::Bool(n.is_char))]
    })?;
    if !node.is_char {
        return Err(Abort);
    }
    let cdev = require_cdev(t, bdf)?;
    Ok(Bound { group, cdev })
}

/// The cdev of a bound function: exactly one `vfioN` under BDF/vfio-dev,
/// /sys/class/vfio-dev/vfioN resolving to it, and /dev/vfio/devices/vfioN a
/// character device with the numbers of the sysfs `dev` attribute.
fn require_cdev(t: &mut Transcript, bdf: &str) -> Result<String, Abort> {
    let dir = sysfs::device_dir(bdf).join("vfio-dev");
    sysfs::wait_path(&dir, true);
    let entries = sysfs::vfio_dev_entries(bdf).and_then(|v| match &v[..] {
        [one] if sysfs::cdev_index(one).is_some() => Ok(one.clone()),
        _ => Err(Fail::other(format!("expected exactly one vfioN in {}, found {v:?}", dir.display()))),
    });
    let name = t.need("sysfs vfio-dev entry", entries, |_, _| vec![("entry", Val::Norm("vfio<N>".into()))])?;

    let class_link = Path::new("/sys/class/vfio-dev").join(&name);
    let same = fs::canonicalize(&class_link).and_then(|a| fs::canonicalize(dir.join(&name)).map(|b| a == b));
    t.need("sysfs class link", same, |s, _| vec![("resolves to the device", Val::Bool(*s))])?;

    let node_path = PathBuf::from(vfio::cdev_path(&name));
    sysfs::wait_path(&node_path, true);
    let node = sysfs::stat_node(&node_path).and_then(|n| sysfs::read_dev(&dir.join(&name).join("dev")).map(|d| (n, d)));
    t.need("cdev node", node, |(n, d), _| {
        vec![
            ("path", Val::Norm("/dev/vfio/devices/vfio<N>".into())),
            ("char device", Val::Bool(n.is_char)),
            ("dev matches sysfs", Val::Bool((n.major, n.minor) == *d)),
        ]
    })?;
    Ok(name)
}

/// Record whether `path` is gone (ENOENT) after waiting for it to go.
fn record_gone(t: &mut Transcript, step: &str, path: &Path) {
    sysfs::wait_path(path, false);
    t.step(step, sysfs::exists(path), |_, _| vec![("still there", Val::Bool(true))]);
}

/// The nodes of a bound function that must go when it is unbound.
pub(crate) fn record_all_gone(t: &mut Transcript, bdf: &str, b: &Bound, when: &str, group_too: bool) {
    let dev = sysfs::device_dir(bdf);
    record_gone(t, &format!("driver link {when}"), &dev.join("driver"));
    record_gone(t, &format!("sysfs vfio-dev entry {when}"), &dev.join("vfio-dev").join(&b.cdev));
    record_gone(t, &format!("cdev node {when}"), Path::new(&vfio::cdev_path(&b.cdev)));
    if group_too {
        record_gone(t, &format!("group node {when}"), Path::new(&vfio::group_path(&b.group)));
    }
}

/// driver_override + drivers_probe, then the checks of a bound function.
pub(crate) fn bind_by_override(t: &mut Transcript, driver: &Driver, bdf: &str) -> Result<Bound, Abort> {
    t.need("write driver_override", sysfs::set_driver_override(bdf, driver.name), none)?;
    t.need("write drivers_probe", sysfs::drivers_probe(bdf), none)?;
    require_bound(t, driver, bdf)
}

/// Unbind through the device's driver link, check the nodes are gone, clear
/// driver_override.
pub(crate) fn unbind_and_check(t: &mut Transcript, bdf: &str, b: &Bound, group_too: bool) {
    t.step("unbind", sysfs::unbind(bdf), none);
    record_all_gone(t, bdf, b, "after unbind", group_too);
    t.step("clear driver_override", sysfs::clear_driver_override(bdf), none);
}

/// The fields of a VFIO_DEVICE_GET_INFO reply: the decoded structure and
/// the raw bytes.
pub(crate) fn info_fields(r: &InfoReply) -> Fields {
    vec![
        ("argsz", Val::Num(r.info.argsz.into())),
        ("flags", Val::Hex(r.info.flags.into())),
        ("num_regions", Val::Num(r.info.num_regions.into())),
        ("num_irqs", Val::Num(r.info.num_irqs.into())),
        ("cap_offset", Val::Num(r.info.cap_offset.into())),
        ("pad", Val::Num(r.info.pad.into())),
        ("bytes", Val::Bytes(r.bytes.clone())),
    ]
}

/// VFIO_DEVICE_GET_INFO as documented: with argsz = sizeof, again with the
/// argsz the kernel asked for when there is a capability chain, with the
/// pre-cap_offset size (16: nothing written past it), and below the minimum
/// (EINVAL).
pub(crate) fn record_get_info(t: &mut Transcript, d: &Device) {
    let full = argsz::<VfioDeviceInfo>();
    let reply = t.step("VFIO_DEVICE_GET_INFO", d.get_info(full), |r, _| info_fields(r));
    if let Some(r) = reply {
        if r.info.argsz > full {
            t.step("VFIO_DEVICE_GET_INFO with the argsz it asked for", d.get_info(r.info.argsz), |r, _| info_fields(r));
        }
    }
    let min = VFIO_DEVICE_INFO_MINSZ;
    t.step("VFIO_DEVICE_GET_INFO argsz=16", d.get_info(min), |r, _| {
        let tail = r.bytes.get(min as usize..).unwrap_or(&[]);
        // cap_offset and pad lie past argsz: their bytes are shown, not decoded.
        let mut f: Fields = info_fields(r).into_iter().filter(|(k, _)| !matches!(*k, "cap_offset" | "pad")).collect();
        f.push(("nothing written past argsz", Val::Bool(tail.iter().all(|b| *b == SENTINEL))));
        f
    });
    t.step("VFIO_DEVICE_GET_INFO argsz=15", d.get_info(min - 1), |r, _| info_fields(r));
}

pub(crate) fn expect_get_info(e: &mut Expect) {
    let s = "VFIO_DEVICE_GET_INFO";
    e.bits(s, "flags", VFIO_DEVICE_FLAGS_PCI.into());
    e.num(s, "num_regions", VFIO_PCI_NUM_REGIONS.into());
    e.num(s, "num_irqs", VFIO_PCI_NUM_IRQS.into());
    e.at_least(s, "argsz", argsz::<VfioDeviceInfo>().into());
    e.num(s, "pad", 0);
    e.val("VFIO_DEVICE_GET_INFO argsz=16", "nothing written past argsz", &Val::Bool(true));
    e.num("VFIO_DEVICE_GET_INFO argsz=16", "num_irqs", VFIO_PCI_NUM_IRQS.into());
    e.err("VFIO_DEVICE_GET_INFO argsz=15", Errno::EINVAL);
}

pub(crate) fn expect_bound(e: &mut Expect) {
    e.ok("write driver_override");
    e.ok("write drivers_probe");
    expect_nodes(e);
}

fn expect_nodes(e: &mut Expect) {
    e.val("driver link", "driver", &Val::Norm("driver under test".into()));
    e.val("group node", "char device", &Val::Bool(true));
    e.val("sysfs vfio-dev entry", "entry", &Val::Norm("vfio<N>".into()));
    e.val("sysfs class link", "resolves to the device", &Val::Bool(true));
    e.val("cdev node", "char device", &Val::Bool(true));
    e.val("cdev node", "dev matches sysfs", &Val::Bool(true));
}

pub(crate) fn expect_gone(e: &mut Expect, when: &str, group_too: bool) {
    e.err(&format!("driver link {when}"), Errno::ENOENT);
    e.err(&format!("sysfs vfio-dev entry {when}"), Errno::ENOENT);
    e.err(&format!("cdev node {when}"), Errno::ENOENT);
    if group_too {
        e.err(&format!("group node {when}"), Errno::ENOENT);
    }
}

fn expect_unbound(e: &mut Expect) {
    e.ok("unbind");
    expect_gone(e, "after unbind", true);
    e.ok("clear driver_override");
}

// ------------------------------------------------------------ scenarios

pub const MODULE_LOAD_UNLOAD_RULE: &str =
    "insmod registers the PCI driver and the module and binds nothing without ids=; a second insmod fails with EEXIST; rmmod removes both";

/// Rust only: insmod registers the PCI driver and the module, binds
/// nothing by itself, refuses a second insmod; rmmod removes both.
pub fn module_load_unload(driver: &Driver) -> Transcript {
    let module_dir = Path::new("/sys/module").join(RUST_MODULE);
    let driver_dir = sysfs::driver_dir(RUST_NAME);
    scenario(|t| {
        t.step("module loaded before the test", sysfs::exists(&module_dir), none);
        t.need("insmod", driver.load(""), none)?;
        t.step("driver directory", sysfs::exists(&driver_dir), none);
        t.step("module directory", sysfs::exists(&module_dir), none);
        let bound = sysfs::bound_devices(RUST_NAME);
        t.record("functions bound by insmod without ids=", Outcome::Ok(vec![("count", Val::Num(bound.len() as u64))]));
        t.step("insmod again", driver.load(""), none);
        t.need("rmmod", driver::rmmod(RUST_MODULE), none)?;
        record_gone(t, "driver directory after rmmod", &driver_dir);
        record_gone(t, "module directory after rmmod", &module_dir);
        t.step("rmmod again", driver::rmmod(RUST_MODULE), none);
        Ok(())
    })
}

pub fn expect_module_load_unload(_: &Driver, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.err("module loaded before the test", Errno::ENOENT);
    e.ok("insmod");
    e.ok("driver directory");
    e.ok("module directory");
    e.num("functions bound by insmod without ids=", "count", 0);
    e.err("insmod again", Errno::EEXIST);
    e.ok("rmmod");
    e.err("driver directory after rmmod", Errno::ENOENT);
    e.err("module directory after rmmod", Errno::ENOENT);
    e.err("rmmod again", Errno::ENOENT);
    e.finish()
}

pub fn bind_driver_override(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let b = bind_by_override(t, driver, bdf)?;
        unbind_and_check(t, bdf, &b, true);
        Ok(())
    })
}

fn expect_bind_driver_override(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bound(&mut e);
    expect_unbound(&mut e);
    e.finish()
}

pub fn bind_new_id(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let id = t.need("read vendor and device", PciId::of(bdf), |id, _| vec![("id", Val::text(id.ids_param()))])?;
        t.need("write new_id", sysfs::new_id(driver.name, &id), none)?;
        let b = require_bound(t, driver, bdf)?;
        t.step("write remove_id", sysfs::remove_id(driver.name, &id), none);
        t.step("driver link after remove_id", sysfs::current_driver(bdf), |d, _| {
            vec![("driver", driver_val(driver, d))]
        });
        // new_id also bound the function's unbound siblings, which may share
        // its group: only the function's own nodes must go.
        unbind_and_check(t, bdf, &b, false);
        Ok(())
    })
}

fn expect_bind_new_id(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.ok("write new_id");
    expect_nodes(&mut e);
    e.ok("write remove_id");
    e.val("driver link after remove_id", "driver", &Val::Norm("driver under test".into()));
    e.ok("unbind");
    expect_gone(&mut e, "after unbind", false);
    e.finish()
}

pub fn bind_ids_param(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let id = t.need("read vendor and device", PciId::of(bdf), |id, _| vec![("id", Val::text(id.ids_param()))])?;
        let step = "load with ids=vendor:device";
        if driver.is_reference() {
            // vfio-pci is resident; its ids= is pci_add_dynid(), which is
            // exactly what new_id does.
            match sysfs::new_id(driver.name, &id) {
                Ok(()) => t.record(step, Outcome::Skipped("vfio-pci is resident; ids= emulated with new_id".into())),
                Err(e) => t.record(step, e.into()),
            };
            if !t.find(step).is_some_and(|o| matches!(o, Outcome::Skipped(_))) {
                return Err(Abort);
            }
        } else {
            t.need(step, driver.load(&format!("ids={}", id.ids_param())), none)?;
        }
        let b = require_bound(t, driver, bdf)?;
        let step = "unload driver";
        if driver.is_reference() {
            // Unloading drops the dynamic ids and unbinds every device.
            match sysfs::remove_id(driver.name, &id).and_then(|()| driver.unload()) {
                Ok(()) => t.record(
                    step,
                    Outcome::Skipped("vfio-pci is resident; unload emulated with remove_id + unbind".into()),
                ),
                Err(e) => t.record(step, e.into()),
            };
        } else {
            t.step(step, driver.unload(), none);
        }
        record_all_gone(t, bdf, &b, "after unload", true);
        Ok(())
    })
}

fn expect_bind_ids_param(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.ok_or_skipped("load with ids=vendor:device");
    expect_nodes(&mut e);
    e.ok_or_skipped("unload driver");
    expect_gone(&mut e, "after unload", true);
    e.finish()
}

pub fn unload_with_bound_device(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let b = bind_by_override(t, driver, bdf)?;
        let resident = "vfio-pci is resident";
        if driver.is_reference() {
            // driver_unregister() unbinds every bound device: do that.
            match driver.unload() {
                Ok(()) => t.record(
                    "unload driver",
                    Outcome::Skipped(format!("{resident}; unload emulated by unbinding its devices")),
                ),
                Err(e) => t.record("unload driver", e.into()),
            };
            t.record("driver directory after unload", Outcome::Skipped(resident.into()));
            t.record("module directory after unload", Outcome::Skipped(resident.into()));
        } else {
            t.step("unload driver", driver.unload(), none);
            record_gone(t, "driver directory after unload", &sysfs::driver_dir(driver.name));
            record_gone(t, "module directory after unload", &Path::new("/sys/module").join(RUST_MODULE));
        }
        record_all_gone(t, bdf, &b, "after unload", true);
        t.step("clear driver_override", sysfs::clear_driver_override(bdf), none);
        Ok(())
    })
}

fn expect_unload_with_bound_device(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bound(&mut e);
    e.ok_or_skipped("unload driver");
    e.err_or_skipped("driver directory after unload", Errno::ENOENT);
    e.err_or_skipped("module directory after unload", Errno::ENOENT);
    expect_gone(&mut e, "after unload", true);
    e.finish()
}

pub fn group_path_get_info(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let b = bind_by_override(t, driver, bdf)?;
        {
            let c = t.need("open /dev/vfio/vfio", Container::open(), none)?;
            t.step("VFIO_GET_API_VERSION", c.api_version(), |v, _| vec![("ret", Val::Num(*v as u64))]);
            t.step("VFIO_CHECK_EXTENSION(VFIO_TYPE1v2_IOMMU)", c.check_extension(VFIO_TYPE1v2_IOMMU), |v, _| {
                vec![("ret", Val::Num(*v as u64))]
            });
            let g = t.need("open group", Group::open(&b.group), none)?;
            let st = argsz::<VfioGroupStatus>();
            t.step("VFIO_GROUP_GET_STATUS", g.status(st), |s, _| vec![("flags", Val::Hex(s.flags.into()))]);
            t.need("VFIO_GROUP_SET_CONTAINER", g.set_container(&c), none)?;
            t.step("VFIO_GROUP_GET_STATUS after SET_CONTAINER", g.status(st), |s, _| {
                vec![("flags", Val::Hex(s.flags.into()))]
            });
            t.need("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)", c.set_iommu(VFIO_TYPE1v2_IOMMU), |v, _| {
                vec![("ret", Val::Num(*v as u64))]
            })?;
            t.step("VFIO_GROUP_GET_DEVICE_FD(a device not in the group)", g.get_device_fd("0000:ff:1f.7"), none);
            let d = t.need("VFIO_GROUP_GET_DEVICE_FD", g.get_device_fd(bdf), none)?;
            record_get_info(t, &d);
        }
        unbind_and_check(t, bdf, &b, true);
        Ok(())
    })
}

fn expect_group_path_get_info(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bound(&mut e);
    e.ok("open /dev/vfio/vfio");
    e.num("VFIO_GET_API_VERSION", "ret", VFIO_API_VERSION as u64);
    e.num("VFIO_CHECK_EXTENSION(VFIO_TYPE1v2_IOMMU)", "ret", 1);
    e.ok("open group");
    e.num("VFIO_GROUP_GET_STATUS", "flags", VFIO_GROUP_FLAGS_VIABLE.into());
    e.ok("VFIO_GROUP_SET_CONTAINER");
    e.num(
        "VFIO_GROUP_GET_STATUS after SET_CONTAINER",
        "flags",
        (VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET).into(),
    );
    e.num("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)", "ret", 0);
    e.err("VFIO_GROUP_GET_DEVICE_FD(a device not in the group)", Errno::ENODEV);
    e.ok("VFIO_GROUP_GET_DEVICE_FD");
    expect_get_info(&mut e);
    expect_unbound(&mut e);
    e.finish()
}

pub fn cdev_path_get_info(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let b = bind_by_override(t, driver, bdf)?;
        {
            let d = t.need("open cdev", Device::open_cdev(&b.cdev), none)?;
            t.step(
                "VFIO_DEVICE_GET_INFO before VFIO_DEVICE_BIND_IOMMUFD",
                d.get_info(argsz::<VfioDeviceInfo>()),
                |r, _| info_fields(r),
            );
            let ictx = t.need("open /dev/iommu", Iommufd::open(), none)?;
            t.need("VFIO_DEVICE_BIND_IOMMUFD", d.bind_iommufd(&ictx), |id, t| {
                vec![("out_devid", t.norm_id("ictx1", (*id).into()))]
            })?;
            let ioas = t.need("IOMMU_IOAS_ALLOC", ictx.ioas_alloc(), |id, t| {
                vec![("out_ioas_id", t.norm_id("ictx1", (*id).into()))]
            })?;
            t.need("VFIO_DEVICE_ATTACH_IOMMUFD_PT(ioas)", d.attach_pt(ioas), |id, t| {
                vec![("pt_id", t.norm_id("ictx1", (*id).into()))]
            })?;
            record_get_info(t, &d);
            t.step("IOMMU_DESTROY(ioas) while attached", ictx.destroy(ioas), none);
            t.step("VFIO_DEVICE_DETACH_IOMMUFD_PT", d.detach_pt(), none);
            t.step("IOMMU_DESTROY(ioas) after detach", ictx.destroy(ioas), none);
        }
        unbind_and_check(t, bdf, &b, true);
        Ok(())
    })
}

fn expect_cdev_path_get_info(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bound(&mut e);
    e.ok("open cdev");
    e.err("VFIO_DEVICE_GET_INFO before VFIO_DEVICE_BIND_IOMMUFD", Errno::EINVAL);
    e.ok("open /dev/iommu");
    e.ok("VFIO_DEVICE_BIND_IOMMUFD");
    e.ok("IOMMU_IOAS_ALLOC");
    e.ok("VFIO_DEVICE_ATTACH_IOMMUFD_PT(ioas)");
    expect_get_info(&mut e);
    e.err("IOMMU_DESTROY(ioas) while attached", Errno::EBUSY);
    e.ok("VFIO_DEVICE_DETACH_IOMMUFD_PT");
    e.ok("IOMMU_DESTROY(ioas) after detach");
    expect_unbound(&mut e);
    e.finish()
}

pub fn cdev_bind_twice(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let b = bind_by_override(t, driver, bdf)?;
        {
            let d1 = t.need("open cdev", Device::open_cdev(&b.cdev), none)?;
            let ictx1 = t.need("open /dev/iommu", Iommufd::open(), none)?;
            t.need("VFIO_DEVICE_BIND_IOMMUFD", d1.bind_iommufd(&ictx1), |id, t| {
                vec![("out_devid", t.norm_id("ictx1", (*id).into()))]
            })?;
            t.step("VFIO_DEVICE_BIND_IOMMUFD again on the same fd", d1.bind_iommufd(&ictx1), |id, t| {
                vec![("out_devid", t.norm_id("ictx1", (*id).into()))]
            });
            let d2 = t.need("open cdev a second time", Device::open_cdev(&b.cdev), none)?;
            let ictx2 = t.need("open a second /dev/iommu", Iommufd::open(), none)?;
            t.step("VFIO_DEVICE_BIND_IOMMUFD on the second fd", d2.bind_iommufd(&ictx2), |id, t| {
                vec![("out_devid", t.norm_id("ictx2", (*id).into()))]
            });
            t.step("VFIO_DEVICE_GET_INFO on the second fd", d2.get_info(argsz::<VfioDeviceInfo>()), |r, _| {
                info_fields(r)
            });
            t.step("VFIO_DEVICE_GET_INFO on the first fd", d1.get_info(argsz::<VfioDeviceInfo>()), |r, _| {
                info_fields(r)
            });
            drop(d1);
            t.record("close the first fd", Outcome::Ok(Vec::new()));
            t.step(
                "VFIO_DEVICE_BIND_IOMMUFD on the second fd after the first is closed",
                d2.bind_iommufd(&ictx2),
                |id, t| vec![("out_devid", t.norm_id("ictx2", (*id).into()))],
            );
        }
        unbind_and_check(t, bdf, &b, true);
        Ok(())
    })
}

fn expect_cdev_bind_twice(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bound(&mut e);
    e.ok("VFIO_DEVICE_BIND_IOMMUFD");
    e.err("VFIO_DEVICE_BIND_IOMMUFD again on the same fd", Errno::EINVAL);
    e.ok("open cdev a second time");
    e.err("VFIO_DEVICE_BIND_IOMMUFD on the second fd", Errno::EINVAL);
    e.err("VFIO_DEVICE_GET_INFO on the second fd", Errno::EINVAL);
    e.bits("VFIO_DEVICE_GET_INFO on the first fd", "flags", VFIO_DEVICE_FLAGS_PCI.into());
    e.ok("VFIO_DEVICE_BIND_IOMMUFD on the second fd after the first is closed");
    expect_unbound(&mut e);
    e.finish()
}

pub fn unbind_while_open_waits(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let b = bind_by_override(t, driver, bdf)?;
        let d = t.need("open cdev", Device::open_cdev(&b.cdev), none)?;
        let ictx = t.need("open /dev/iommu", Iommufd::open(), none)?;
        t.need("VFIO_DEVICE_BIND_IOMMUFD", d.bind_iommufd(&ictx), |id, t| {
            vec![("out_devid", t.norm_id("ictx", (*id).into()))]
        })?;
        let target = bdf.to_string();
        waits_for_close(
            t,
            "unbind",
            move || sysfs::unbind(&target),
            |t| {
                t.step("driver link while the unbind waits", sysfs::current_driver(bdf), |name, _| {
                    vec![("driver", driver_val(driver, name))]
                });
                record_nodes_while(t, &b, "while the unbind waits");
            },
            |t| {
                drop(d);
                drop(ictx);
                t.record("close the device and the iommufd", Outcome::Ok(Vec::new()));
            },
        );
        record_all_gone(t, bdf, &b, "after unbind", true);
        t.step("clear driver_override", sysfs::clear_driver_override(bdf), none);
        Ok(())
    })
}

/// Start `action` (named `what`: an unbind, a removal) while user space holds a device open
/// that it waits for: records whether it is still running 1.5 s after it started, lets
/// `observe` record the state meanwhile, lets `release` close what is held, and records how
/// the action returned.
pub(crate) fn waits_for_close(
    t: &mut Transcript,
    what: &str,
    action: impl FnOnce() -> Result<(), Fail> + Send + 'static,
    observe: impl FnOnce(&mut Transcript),
    release: impl FnOnce(&mut Transcript),
) {
    let worker = std::thread::spawn(action);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    t.record(
        format!("{what} 1.5 s after it was started, device still open"),
        Outcome::Ok(vec![("finished", Val::Bool(worker.is_finished()))]),
    );
    observe(t);
    release(t);
    let done = format!("{what} returns once the device is closed");
    match worker.join() {
        Ok(result) => {
            t.step(&done, result, none);
        }
        Err(_) => {
            t.record(done, Outcome::Broken("the thread running it panicked".into()));
        }
    }
}

/// Whether the cdev and group nodes still exist at some point of a scenario.
fn record_nodes_while(t: &mut Transcript, b: &Bound, when: &str) {
    for (what, path) in [("cdev node", vfio::cdev_path(&b.cdev)), ("group node", vfio::group_path(&b.group))] {
        let present = Path::new(&path).exists();
        t.record(format!("{what} {when}"), Outcome::Ok(vec![("present", Val::Bool(present))]));
    }
}

fn expect_unbind_while_open_waits(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bound(&mut e);
    e.ok("VFIO_DEVICE_BIND_IOMMUFD");
    e.val("unbind 1.5 s after it was started, device still open", "finished", &Val::Bool(false));
    // The driver core removes the link before it calls the driver's remove, which waits.
    e.err("driver link while the unbind waits", Errno::ENOENT);
    e.ok("unbind returns once the device is closed");
    expect_gone(&mut e, "after unbind", true);
    e.ok("clear driver_override");
    e.finish()
}

pub fn group_open_blocks_cdev(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let b = bind_by_override(t, driver, bdf)?;
        {
            let c = t.need("open /dev/vfio/vfio", Container::open(), none)?;
            let g = t.need("open group", Group::open(&b.group), none)?;
            t.need("VFIO_GROUP_SET_CONTAINER", g.set_container(&c), none)?;
            t.need("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)", c.set_iommu(VFIO_TYPE1v2_IOMMU), none)?;
            let gd = t.need("VFIO_GROUP_GET_DEVICE_FD", g.get_device_fd(bdf), none)?;
            let d = t.need("open cdev while the group's device fd is open", Device::open_cdev(&b.cdev), none)?;
            let ictx = t.need("open /dev/iommu", Iommufd::open(), none)?;
            let bind = |t: &mut Transcript, step: &str| {
                t.step(step, d.bind_iommufd(&ictx), |id, t| vec![("out_devid", t.norm_id("ictx1", (*id).into()))]);
            };
            bind(t, "VFIO_DEVICE_BIND_IOMMUFD while the group's device fd is open");
            drop(gd);
            t.record("close the group's device fd", Outcome::Ok(Vec::new()));
            bind(t, "VFIO_DEVICE_BIND_IOMMUFD while the group is open");
            drop(g);
            drop(c);
            t.record("close the group and the container", Outcome::Ok(Vec::new()));
            bind(t, "VFIO_DEVICE_BIND_IOMMUFD after the group is closed");
        }
        unbind_and_check(t, bdf, &b, true);
        Ok(())
    })
}

fn expect_group_open_blocks_cdev(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bound(&mut e);
    e.ok("VFIO_GROUP_GET_DEVICE_FD");
    e.ok("open cdev while the group's device fd is open");
    e.err("VFIO_DEVICE_BIND_IOMMUFD while the group's device fd is open", Errno::EBUSY);
    e.err("VFIO_DEVICE_BIND_IOMMUFD while the group is open", Errno::EBUSY);
    e.ok("VFIO_DEVICE_BIND_IOMMUFD after the group is closed");
    expect_unbound(&mut e);
    e.finish()
}

pub fn cdev_open_blocks_group(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let b = bind_by_override(t, driver, bdf)?;
        {
            let d = t.need("open cdev", Device::open_cdev(&b.cdev), none)?;
            // Opened and closed at once: only the outcome matters.
            t.step("open group while the cdev is open but not bound", Group::open(&b.group), none);
            let ictx = t.need("open /dev/iommu", Iommufd::open(), none)?;
            t.need("VFIO_DEVICE_BIND_IOMMUFD", d.bind_iommufd(&ictx), |id, t| {
                vec![("out_devid", t.norm_id("ictx1", (*id).into()))]
            })?;
            t.step("open group while the cdev is bound", Group::open(&b.group), none);
            drop(d);
            t.record("close the cdev", Outcome::Ok(Vec::new()));
            let g = t.need("open group after the cdev is closed", Group::open(&b.group), none)?;
            let c = t.need("open /dev/vfio/vfio", Container::open(), none)?;
            t.need("VFIO_GROUP_SET_CONTAINER", g.set_container(&c), none)?;
            t.need("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)", c.set_iommu(VFIO_TYPE1v2_IOMMU), none)?;
            t.step("VFIO_GROUP_GET_DEVICE_FD", g.get_device_fd(bdf), none);
        }
        unbind_and_check(t, bdf, &b, true);
        Ok(())
    })
}

fn expect_cdev_open_blocks_group(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    expect_bound(&mut e);
    e.ok("open group while the cdev is open but not bound");
    e.ok("VFIO_DEVICE_BIND_IOMMUFD");
    e.err("open group while the cdev is bound", Errno::EBUSY);
    e.ok("open group after the cdev is closed");
    e.ok("VFIO_GROUP_SET_CONTAINER");
    e.ok("VFIO_GROUP_GET_DEVICE_FD");
    expect_unbound(&mut e);
    e.finish()
}
