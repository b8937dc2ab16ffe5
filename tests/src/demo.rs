//! `--demo BDF`: open a function that is already bound to a VFIO driver
//! through its cdev and iommufd, then through its group and a legacy
//! container, and narrate every step in plain lines.  Used by
//! harness/demo.sh; the exit status is 0 iff every step succeeded.

use crate::sys::{Errno, Fail};
use crate::sysfs;
use crate::uapi::*;
use crate::vfio::{self, Container, Device, Group, HotResetInfoCall, Iommufd};
use std::fmt::Display;

/// Prints each step as it completes and remembers whether one failed.
struct Narrator {
    failed: bool,
}

impl Narrator {
    /// Print `what ... ok: <detail>` or `what ... FAILED: <error>`; returns
    /// the value on success.
    fn step<T, E: Into<Fail>>(&mut self, what: &str, r: Result<T, E>, detail: impl FnOnce(&T) -> String) -> Option<T> {
        match r {
            Ok(v) => {
                let d = detail(&v);
                if d.is_empty() {
                    println!("  {what} ... ok");
                } else {
                    println!("  {what} ... ok: {d}");
                }
                Some(v)
            }
            Err(e) => {
                println!("  {what} ... FAILED: {}", e.into());
                self.failed = true;
                None
            }
        }
    }
}

fn nothing<T>(_: &T) -> String {
    String::new()
}

fn flag_names(flags: u32, names: &[(u32, &str)]) -> String {
    let set: Vec<&str> = names.iter().filter(|(bit, _)| flags & bit != 0).map(|(_, n)| *n).collect();
    format!("{flags:#x} ({})", if set.is_empty() { "none".to_string() } else { set.join(" ") })
}

fn device_info(d: &Device) -> Result<String, Fail> {
    let r = d.get_info(argsz::<VfioDeviceInfo>())?;
    let flags = flag_names(
        r.info.flags,
        &[(VFIO_DEVICE_FLAGS_RESET, "RESET"), (VFIO_DEVICE_FLAGS_PCI, "PCI"), (VFIO_DEVICE_FLAGS_CAPS, "CAPS")],
    );
    Ok(format!("flags {flags}, {} regions, {} irqs", r.info.num_regions, r.info.num_irqs))
}

/// GET_PCI_HOT_RESET_INFO: ask for the count, then for the entries.
fn hot_reset_info(d: &Device, cdev: bool) -> Result<String, Fail> {
    let probe = d.hot_reset_info(VFIO_PCI_HOT_RESET_INFO_MINSZ)?;
    let count = match probe.result {
        Ok(()) => 0,
        Err(Errno::ENOSPC) => probe.header().count,
        Err(e) => return Err(Fail::Os(e)),
    };
    let call: HotResetInfoCall = d.hot_reset_info(VFIO_PCI_HOT_RESET_INFO_MINSZ + 8 * count)?;
    call.result?;
    let h = call.header();
    let flags = flag_names(
        h.flags,
        &[(VFIO_PCI_HOT_RESET_FLAG_DEV_ID, "DEV_ID"), (VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED, "DEV_ID_OWNED")],
    );
    let entries: Vec<String> = call
        .devices()
        .iter()
        .map(|e| {
            let f = sysfs::format_bdf(e.segment, e.bus, e.devfn);
            let id = match (cdev, e.id) {
                (false, g) => format!("group {g}"),
                (true, VFIO_PCI_DEVID_OWNED) => "dev_id OWNED".into(),
                (true, VFIO_PCI_DEVID_NOT_OWNED) => "dev_id NOT_OWNED".into(),
                (true, id) => format!("dev_id {id}"),
            };
            format!("{f} {id}")
        })
        .collect();
    Ok(format!("flags {flags}, {} affected: {}", h.count, entries.join(", ")))
}

fn show<T: Display>(prefix: &'static str) -> impl FnOnce(&T) -> String {
    move |v| format!("{prefix} {v}")
}

fn cdev_path(n: &mut Narrator, cdev: &str) {
    println!("through the cdev and iommufd:");
    let path = vfio::cdev_path(cdev);
    let Some(d) = n.step(&format!("open {path}"), Device::open_cdev(cdev), nothing) else { return };
    let Some(ictx) = n.step("open /dev/iommu", Iommufd::open(), nothing) else { return };
    if n.step("VFIO_DEVICE_BIND_IOMMUFD", d.bind_iommufd(&ictx), show("dev_id")).is_none() {
        return;
    }
    let Some(ioas) = n.step("IOMMU_IOAS_ALLOC", ictx.ioas_alloc(), show("ioas")) else { return };
    if n.step("VFIO_DEVICE_ATTACH_IOMMUFD_PT(ioas)", d.attach_pt(ioas), show("pt_id")).is_none() {
        return;
    }
    n.step("VFIO_DEVICE_GET_INFO", device_info(&d), String::clone);
    n.step("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", hot_reset_info(&d, true), String::clone);
    n.step("VFIO_DEVICE_PCI_HOT_RESET (zero-length fd array)", d.hot_reset_groups(&[]), nothing);
    drop(d);
    drop(ictx);
    println!("  close the cdev and the iommufd ... ok");
}

fn group_path(n: &mut Narrator, bdf: &str, group: &str) {
    println!("through the group and a container:");
    let Some(c) = n.step("open /dev/vfio/vfio", Container::open(), nothing) else { return };
    let path = vfio::group_path(group);
    let Some(g) = n.step(&format!("open {path}"), Group::open(group), nothing) else { return };
    if n.step("VFIO_GROUP_SET_CONTAINER", g.set_container(&c), nothing).is_none() {
        return;
    }
    if n.step("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)", c.set_iommu(VFIO_TYPE1v2_IOMMU), nothing).is_none() {
        return;
    }
    let Some(d) = n.step(&format!("VFIO_GROUP_GET_DEVICE_FD({bdf})"), g.get_device_fd(bdf), nothing) else {
        return;
    };
    n.step("VFIO_DEVICE_GET_INFO", device_info(&d), String::clone);
    n.step("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", hot_reset_info(&d, false), String::clone);
    n.step(&format!("VFIO_DEVICE_PCI_HOT_RESET (group fd of {path})"), d.hot_reset_groups(&[g.raw_fd()]), nothing);
    drop(d);
    drop(g);
    drop(c);
    println!("  close the device, the group and the container ... ok");
}

/// Run the demo on `bdf`; returns the exit status.
pub fn run(bdf: &str) -> i32 {
    let mut n = Narrator { failed: false };
    let driver = sysfs::current_driver(bdf).map_err(|e| match e {
        Fail::Os(Errno::ENOENT) => Fail::other("not bound to any driver: bind it to a VFIO PCI driver first"),
        e => e,
    });
    let found = driver.and_then(|d| {
        let group = sysfs::iommu_group(bdf)?;
        match &sysfs::vfio_dev_entries(bdf)?[..] {
            [one] => Ok((d, group, one.clone())),
            v => Err(Fail::other(format!("expected one vfioN under {bdf}/vfio-dev, found {v:?}"))),
        }
    });
    let Some((_, group, cdev)) =
        n.step(&format!("find {bdf}"), found, |(d, g, c)| format!("driver {d}, IOMMU group {g}, cdev {c}"))
    else {
        return 1;
    };
    cdev_path(&mut n, &cdev);
    group_path(&mut n, bdf, &group);
    if n.failed {
        println!("demo: some steps FAILED");
        1
    } else {
        println!("demo: every step succeeded");
        0
    }
}
