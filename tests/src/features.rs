//! Scenarios for VFIO_DEVICE_FEATURE as VMMs probe it (low power entry and
//! exit, the PF's VF token, features no PCI driver offers) and for the VF
//! token options in the device name given to VFIO_GROUP_GET_DEVICE_FD.

use crate::regions::{single_known_function, with_group_device};
use crate::scenarios::{bind_by_override, none, scenario, unbind_and_check, Ctx, Scenario};
use crate::sys::{ioctl_ptr, new_eventfd, Errno, Fail, Mmio};
use crate::sysfs;
use crate::transcript::{Expect, Transcript, Val};
use crate::uapi::*;
use crate::vfio::{Container, Device, Group};
use std::os::fd::AsRawFd;
use std::os::raw::c_void;
use std::os::unix::fs::FileExt;

const FEATURE_GET: u32 = 1 << 16;
pub(crate) const FEATURE_SET: u32 = 1 << 17;
const FEATURE_PROBE: u32 = 1 << 18;
pub(crate) const PCI_VF_TOKEN: u32 = 0;
const MIGRATION: u32 = 1;
const LOW_POWER_ENTRY: u32 = 3;
const LOW_POWER_ENTRY_WITH_WAKEUP: u32 = 4;
const LOW_POWER_EXIT: u32 = 5;
const DMA_LOGGING_START: u32 = 6;
const DMA_BUF: u32 = 11;
const TOKEN: [u8; 16] = *b"vfio-pci-rs-tok!";
const TOKEN_TEXT: &str = "7666696f-2d70-6369-2d72-732d746f6b21";

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "device_feature",
            rule: "VFIO_DEVICE_FEATURE: PROBE answers per feature as vfio-pci; LOW_POWER_ENTRY twice is EINVAL, EXIT always succeeds, the wakeup variant needs an eventfd; PCI_VF_TOKEN is SET-only and only on an SR-IOV PF (ENOTTY elsewhere); migration and dirty tracking are ENOTTY, DMA-buf is GET-only",
            loads_module: false,
            applies: single_known_function,
            run: device_feature,
            expect: expect_device_feature,
        },
        Scenario {
            name: "vf_token_device_name",
            rule: "VFIO_GROUP_GET_DEVICE_FD: the device name may be followed by ' vf_token=<uuid>', which a PF accepts (it becomes its token) and any other function refuses with EINVAL; a malformed token, an unknown or repeated option is EINVAL; a name that only starts like the device's is no match (ENODEV)",
            loads_module: false,
            applies: single_known_function,
            run: vf_token_device_name,
            expect: expect_vf_token_device_name,
        },
    ]
}

/// VFIO_DEVICE_FEATURE with `flags` and `data` (argsz = 8 + data.len()).
pub(crate) fn feature(d: &Device, flags: u32, data: &[u8]) -> Result<i32, Fail> {
    let mut buf = vec![0u8; (8 + data.len()).div_ceil(8) * 8];
    buf[0..4].copy_from_slice(&((8 + data.len()) as u32).to_ne_bytes());
    buf[4..8].copy_from_slice(&flags.to_ne_bytes());
    buf[8..8 + data.len()].copy_from_slice(data);
    // SAFETY: the kernel reads the 8-byte header and at most argsz - 8 bytes
    // of data, and writes at most argsz bytes; the buffer covers argsz and
    // lives across the call.
    Ok(unsafe { ioctl_ptr(d, VFIO_DEVICE_FEATURE, buf.as_mut_ptr().cast::<c_void>()) }?)
}

fn ret(v: &i32, _: &mut Transcript) -> Vec<(&'static str, Val)> {
    vec![("ret", Val::Num(*v as u64))]
}

fn device_feature(c: &Ctx) -> Transcript {
    with_group_device(c, |t, d| {
        for (name, index) in [
            ("PCI_VF_TOKEN", PCI_VF_TOKEN),
            ("MIGRATION", MIGRATION),
            ("LOW_POWER_ENTRY", LOW_POWER_ENTRY),
            ("LOW_POWER_ENTRY_WITH_WAKEUP", LOW_POWER_ENTRY_WITH_WAKEUP),
            ("LOW_POWER_EXIT", LOW_POWER_EXIT),
            ("DMA_LOGGING_START", DMA_LOGGING_START),
            ("feature 100", 100),
        ] {
            t.step(&format!("PROBE|SET {name}"), feature(d, index | FEATURE_PROBE | FEATURE_SET, &[]), ret);
            t.step(&format!("PROBE|GET {name}"), feature(d, index | FEATURE_PROBE | FEATURE_GET, &[]), ret);
        }
        t.step("PROBE|SET DMA_BUF", feature(d, DMA_BUF | FEATURE_PROBE | FEATURE_SET, &[]), ret);
        t.step("PROBE|GET DMA_BUF", feature(d, DMA_BUF | FEATURE_PROBE | FEATURE_GET, &[]), ret);
        t.step("LOW_POWER_ENTRY without GET or SET", feature(d, LOW_POWER_ENTRY, &[]), ret);
        t.step("LOW_POWER_ENTRY", feature(d, LOW_POWER_ENTRY | FEATURE_SET, &[]), ret);
        t.step("LOW_POWER_ENTRY again", feature(d, LOW_POWER_ENTRY | FEATURE_SET, &[]), ret);
        let status = d.file().read_at(&mut [0u8; 4], 0x8).map_err(Fail::from);
        t.step("read BAR0 while in low power", status, |n, _| vec![("count", Val::Num(*n as u64))]);
        t.step("LOW_POWER_EXIT", feature(d, LOW_POWER_EXIT | FEATURE_SET, &[]), ret);
        t.step("LOW_POWER_EXIT again", feature(d, LOW_POWER_EXIT | FEATURE_SET, &[]), ret);
        let map = Mmio::map_at(d, 0, 4096, true).map_err(Fail::Os);
        if let Some(map) = t.step("mmap BAR0 after the exit", map, none) {
            let v = map.read32(0x8).ok_or_else(|| Fail::other("outside the mapping"));
            t.step("read STATUS through the mapping", v.map(|_| ()), none);
        }
        let mut wake = (-1i32).to_ne_bytes().to_vec();
        wake.extend_from_slice(&[0; 4]);
        t.step("LOW_POWER_ENTRY_WITH_WAKEUP fd -1", feature(d, LOW_POWER_ENTRY_WITH_WAKEUP | FEATURE_SET, &wake), ret);
        t.step(
            "LOW_POWER_ENTRY_WITH_WAKEUP short",
            feature(d, LOW_POWER_ENTRY_WITH_WAKEUP | FEATURE_SET, &wake[..4]),
            ret,
        );
        let null = std::fs::File::open("/dev/null").map_err(Fail::from);
        if let Some(null) = t.step("open /dev/null", null, none) {
            let mut data = null.as_raw_fd().to_ne_bytes().to_vec();
            data.extend_from_slice(&[0; 4]);
            t.step(
                "LOW_POWER_ENTRY_WITH_WAKEUP not an eventfd",
                feature(d, LOW_POWER_ENTRY_WITH_WAKEUP | FEATURE_SET, &data),
                ret,
            );
        }
        if let Some(efd) = t.step("eventfd", new_eventfd().map_err(Fail::Os), none) {
            let mut data = efd.as_raw_fd().to_ne_bytes().to_vec();
            data.extend_from_slice(&[0; 4]);
            t.step("LOW_POWER_ENTRY_WITH_WAKEUP", feature(d, LOW_POWER_ENTRY_WITH_WAKEUP | FEATURE_SET, &data), ret);
            t.step("LOW_POWER_EXIT after the wakeup entry", feature(d, LOW_POWER_EXIT | FEATURE_SET, &[]), ret);
        }
        t.step("PCI_VF_TOKEN GET", feature(d, PCI_VF_TOKEN | FEATURE_GET, &TOKEN), ret);
        t.step("PCI_VF_TOKEN SET short", feature(d, PCI_VF_TOKEN | FEATURE_SET, &TOKEN[..8]), ret);
        t.step("PCI_VF_TOKEN SET", feature(d, PCI_VF_TOKEN | FEATURE_SET, &TOKEN), ret);
        t.step("MIGRATION GET", feature(d, MIGRATION | FEATURE_GET, &[0; 8]), ret);
        t.step("LOW_POWER_ENTRY, then close (exits)", feature(d, LOW_POWER_ENTRY | FEATURE_SET, &[]), ret);
        Ok(())
    })
}

fn expect_device_feature(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.num("PROBE|SET LOW_POWER_ENTRY", "ret", 0);
    e.err("PROBE|GET LOW_POWER_ENTRY", Errno::EINVAL);
    e.err("PROBE|SET MIGRATION", Errno::ENOTTY);
    // DMA_BUF is GET-only (tests/src/dma_buf.rs has the rest).
    e.err("PROBE|SET DMA_BUF", Errno::EINVAL);
    e.num("PROBE|GET DMA_BUF", "ret", 0);
    e.err("PROBE|SET feature 100", Errno::ENOTTY);
    e.err("LOW_POWER_ENTRY without GET or SET", Errno::EINVAL);
    e.num("LOW_POWER_ENTRY", "ret", 0);
    e.err("LOW_POWER_ENTRY again", Errno::EINVAL);
    e.num("LOW_POWER_EXIT", "ret", 0);
    e.num("LOW_POWER_EXIT again", "ret", 0);
    e.ok("read STATUS through the mapping");
    e.err("LOW_POWER_ENTRY_WITH_WAKEUP fd -1", Errno::EINVAL);
    e.err("LOW_POWER_ENTRY_WITH_WAKEUP short", Errno::EINVAL);
    e.err("LOW_POWER_ENTRY_WITH_WAKEUP not an eventfd", Errno::EINVAL);
    e.num("LOW_POWER_ENTRY_WITH_WAKEUP", "ret", 0);
    if sysfs::is_pf(c.bdf()) {
        e.err("PCI_VF_TOKEN GET", Errno::EINVAL);
        e.err("PCI_VF_TOKEN SET short", Errno::EINVAL);
        e.num("PCI_VF_TOKEN SET", "ret", 0);
    } else {
        e.err("PCI_VF_TOKEN SET", Errno::ENOTTY);
    }
    e.err("MIGRATION GET", Errno::ENOTTY);
    e.finish()
}

fn vf_token_device_name(c: &Ctx) -> Transcript {
    let (driver, bdf) = (c.driver, c.bdf());
    scenario(|t| {
        let b = bind_by_override(t, driver, bdf)?;
        let _ = (|| {
            let container = t.need("open /dev/vfio/vfio", Container::open(), none)?;
            let group = t.need("open group", Group::open(&b.group), none)?;
            t.need("VFIO_GROUP_SET_CONTAINER", group.set_container(&container), none)?;
            t.need("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)", container.set_iommu(VFIO_TYPE1v2_IOMMU), none)?;
            let bad_uuid = "7666696f-2d70-6369-2d72-732d746f6bZZ";
            for (step, name) in [
                ("name with a token", format!("{bdf} vf_token={TOKEN_TEXT}")),
                ("name with a token and spaces", format!("{bdf}   vf_token={TOKEN_TEXT}  ")),
                ("name with a malformed token", format!("{bdf} vf_token={bad_uuid}")),
                ("name with a short token", format!("{bdf} vf_token=1234")),
                ("name with two tokens", format!("{bdf} vf_token={TOKEN_TEXT} vf_token={TOKEN_TEXT}")),
                ("name with an unknown option", format!("{bdf} colour=blue")),
                ("name followed by a non-space", format!("{bdf}x")),
                ("name followed by a space", format!("{bdf} ")),
            ] {
                // Each successful open is closed before the next one.
                t.step(step, group.get_device_fd(&name).map(drop), none);
            }
            Ok::<(), crate::transcript::Abort>(())
        })();
        unbind_and_check(t, bdf, &b, true);
        Ok(())
    })
}

fn expect_vf_token_device_name(c: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    if sysfs::is_pf(c.bdf()) {
        e.ok("name with a token");
        e.ok("name with a token and spaces");
    } else {
        e.err("name with a token", Errno::EINVAL);
    }
    e.err("name with a malformed token", Errno::EINVAL);
    e.err("name with a short token", Errno::EINVAL);
    e.err("name with two tokens", Errno::EINVAL);
    e.err("name with an unknown option", Errno::EINVAL);
    e.err("name followed by a non-space", Errno::ENODEV);
    e.ok("name followed by a space");
    e.finish()
}
