//! Scenarios for SR-IOV on a PF bound to the driver under test: creating
//! and removing VFs through sysfs (`sriov_numvfs`, the driver's
//! sriov_configure, gated by its `enable_sriov` parameter), the VFs steered
//! to the PF's driver, the VF token both open paths check (the PF's token
//! for its VFs, the PF's own rules while VFs use it), VFs whose PF belongs
//! to the other VFIO driver, and unbinding a PF with VFs.
//!
//! They run on the "sriov" topology (igb: up to 7 VFs, each in its own
//! IOMMU group, reset by FLR).  Every scenario leaves the PF without VFs,
//! unbound and `enable_sriov` off; the harness's restore does the same after
//! a failure.

use crate::driver::Driver;
use crate::features::{feature, FEATURE_SET, PCI_VF_TOKEN};
use crate::interrupts::{config_read16, config_write16, find_cap};
use crate::scenarios::{
    bind_by_override, driver_val, none, scenario, unbind_and_check, waits_for_close, Bound, Ctx, Scenario, Site,
};
use crate::sys::{Errno, Fail};
use crate::sysfs;
use crate::transcript::{Abort, Expect, Outcome, Transcript, Val};
use crate::uapi::VFIO_TYPE1v2_IOMMU;
use crate::vfio::{Container, Device, Group, Iommufd};

/// Two VF tokens, as raw UUIDs.
const TOKEN_A: [u8; 16] = *b"vfio-pci-rs-tokA";
const TOKEN_B: [u8; 16] = *b"vfio-pci-rs-tokB";
const CAP_ID_PM: u8 = 0x01;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "sriov_numvfs",
            rule: "sriov_numvfs on a PF bound to the driver: ENOENT while enable_sriov is off, in either direction; with it on, N VFs appear with driver_override naming the PF's driver and bound to it; another non-zero count is EBUSY; the PF stays in D0 while it has VFs; 0 removes them",
            loads_module: false,
            applies: sriov_pf,
            run: sriov_numvfs,
            expect: expect_sriov_numvfs,
        },
        Scenario {
            name: "sriov_vf_token_group",
            rule: "VFIO_GROUP_GET_DEVICE_FD of a VF of the driver's PF needs ' vf_token=<the PF's token>' (EACCES without it or with another); while the VF is open the PF needs its current token too (EACCES), and PCI_VF_TOKEN may still change it; once no VF is open, a token given with the PF becomes its token",
            loads_module: false,
            applies: sriov_pf,
            run: sriov_vf_token_group,
            expect: expect_sriov_vf_token_group,
        },
        Scenario {
            name: "sriov_vf_token_cdev",
            rule: "VFIO_DEVICE_BIND_IOMMUFD of a VF of the driver's PF needs VFIO_DEVICE_BIND_FLAG_TOKEN with the PF's token (EACCES without it or with another); while the VF is bound the PF needs its current token (EACCES); once no VF is open, a token bound with the PF becomes its token",
            loads_module: false,
            applies: sriov_pf,
            run: sriov_vf_token_cdev,
            expect: expect_sriov_vf_token_cdev,
        },
        Scenario {
            name: "sriov_vf_of_foreign_pf",
            rule: "a VF bound to the driver whose PF is bound to the other VFIO driver opens without a token, and refuses one with EINVAL, on both open paths; the PF's own token plays no part",
            loads_module: false,
            applies: sriov_pf,
            run: sriov_vf_of_foreign_pf,
            expect: expect_sriov_vf_of_foreign_pf,
        },
        Scenario {
            name: "sriov_remove_pf_with_vfs",
            rule: "removing a PF with VFs (sysfs remove, as hot-unplug does) removes its VFs first, waiting until an open VF is closed; a rescan brings the PF back unbound and without VFs",
            loads_module: false,
            applies: sriov_pf,
            run: sriov_remove_pf_with_vfs,
            expect: expect_sriov_remove_pf_with_vfs,
        },
    ]
}

/// The scenarios need a single SR-IOV PF.
fn sriov_pf(site: &Site) -> Result<(), String> {
    match &site.functions[..] {
        [pf] if sysfs::is_pf(pf) => Ok(()),
        _ => Err("SR-IOV scenarios run on a single SR-IOV physical function".into()),
    }
}

/// The text form of a raw UUID, as `vf_token=` takes it.
fn uuid_text(u: &[u8; 16]) -> String {
    let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// A device name with a VF token option.
fn with_token(bdf: &str, token: &[u8; 16]) -> String {
    format!("{bdf} vf_token={}", uuid_text(token))
}

fn count(n: &u32, _: &mut Transcript) -> Vec<(&'static str, Val)> {
    vec![("count", Val::Num((*n).into()))]
}

/// Set the driver's enable_sriov.
fn set_param(t: &mut Transcript, driver: &Driver, on: bool, when: &str) -> Result<(), Abort> {
    t.need(&format!("enable_sriov={} {when}", u8::from(on)), driver.set_enable_sriov(on), none)
}

/// Write sriov_numvfs.
fn write_numvfs(t: &mut Transcript, step: &str, pf: &str, n: u32) -> bool {
    t.step(step, sysfs::set_sriov_numvfs(pf, n), none).is_some()
}

/// The checks of a VF the PF's driver created: its driver_override, its
/// driver (waited for), its group and its cdev.  Step names carry `label`.
fn require_vf(t: &mut Transcript, driver: &Driver, label: &str, vf: &str) -> Result<Bound, Abort> {
    sysfs::wait_until(sysfs::SETTLE, || sysfs::current_driver(vf).is_ok());
    t.step(&format!("{label} driver_override"), sysfs::driver_override(vf), |o, _| {
        vec![("override", o.as_deref().map_or(Val::text("(null)"), |d| driver_val(driver, d)))]
    });
    let name = t.need(&format!("{label} driver link"), sysfs::current_driver(vf), |d, _| {
        vec![("driver", driver_val(driver, d))]
    })?;
    if name != driver.name {
        return Err(Abort);
    }
    vf_nodes(t, label, vf)
}

/// The group and cdev of a VF bound to a VFIO driver.
fn vf_nodes(t: &mut Transcript, label: &str, vf: &str) -> Result<Bound, Abort> {
    let group = t.need(&format!("{label} iommu_group"), sysfs::iommu_group(vf), none)?;
    sysfs::wait_path(&sysfs::device_dir(vf).join("vfio-dev"), true);
    let cdev = t.need(&format!("{label} vfio-dev entry"), sysfs::vfio_dev_entries(vf), |v, _| {
        vec![("entries", Val::Num(v.len() as u64))]
    })?;
    let cdev = cdev.into_iter().next().ok_or(Abort)?;
    Ok(Bound { group, cdev })
}

/// Bind the PF, turn enable_sriov on and create `n` VFs bound to the same
/// driver; returns the PF's bind and the VFs.  The caller tears down with
/// `remove_vfs`.
fn pf_with_vfs(t: &mut Transcript, driver: &Driver, pf: &str, n: u32) -> Result<(Bound, Vec<(String, Bound)>), Abort> {
    let b = bind_by_override(t, driver, pf)?;
    set_param(t, driver, true, "before creating VFs")?;
    t.need(&format!("write sriov_numvfs {n}"), sysfs::set_sriov_numvfs(pf, n), none)?;
    let vfs = sysfs::virtfns(pf);
    t.need(
        "VFs listed",
        if vfs.len() == n as usize { Ok(vfs.len()) } else { Err(Fail::other(format!("{vfs:?}"))) },
        |n, _| vec![("count", Val::Num(*n as u64))],
    )?;
    let mut bound = Vec::new();
    for (i, vf) in vfs.into_iter().enumerate() {
        let b = require_vf(t, driver, &format!("VF {i}"), &vf)?;
        bound.push((vf, b));
    }
    Ok((b, bound))
}

/// Remove the VFs, turn enable_sriov off, unbind the PF.
fn remove_vfs(t: &mut Transcript, driver: &Driver, pf: &str, b: &Bound) {
    write_numvfs(t, "write sriov_numvfs 0", pf, 0);
    t.step("enable_sriov=0 at the end", driver.set_enable_sriov(false), none);
    unbind_and_check(t, pf, b, true);
}

// ------------------------------------------------------------ sriov_numvfs

fn sriov_numvfs(c: &Ctx) -> Transcript {
    let (driver, pf) = (c.driver, c.bdf());
    scenario(|t| {
        let b = bind_by_override(t, driver, pf)?;
        let total = t.need("sriov_totalvfs", sysfs::sriov_count(pf, "sriov_totalvfs"), count)?;
        set_param(t, driver, false, "at first")?;
        write_numvfs(t, "write sriov_numvfs 1 with enable_sriov off", pf, 1);
        t.step("sriov_numvfs", sysfs::sriov_count(pf, "sriov_numvfs"), count);
        set_param(t, driver, true, "to create VFs")?;
        write_numvfs(t, "write sriov_numvfs sriov_totalvfs + 1", pf, total + 1);
        if write_numvfs(t, "write sriov_numvfs 2", pf, 2) {
            t.step("sriov_numvfs with VFs", sysfs::sriov_count(pf, "sriov_numvfs"), count);
            let vfs = sysfs::virtfns(pf);
            t.record("VFs", Outcome::Ok(vec![("functions", Val::text(vfs.join(" ")))]));
            let pf_group = sysfs::iommu_group(pf).ok();
            for (i, vf) in vfs.iter().enumerate() {
                if let Ok(vb) = require_vf(t, driver, &format!("VF {i}"), vf) {
                    t.record(
                        format!("VF {i} group is not the PF's"),
                        Outcome::Ok(vec![("separate", Val::Bool(pf_group.as_deref() != Some(vb.group.as_str())))]),
                    );
                }
            }
            write_numvfs(t, "write sriov_numvfs 3 while 2 are enabled", pf, 3);
            write_numvfs(t, "write sriov_numvfs 2 again", pf, 2);
            pf_power_with_vfs(t, &b, pf);
            set_param(t, driver, false, "to disable")?;
            write_numvfs(t, "write sriov_numvfs 0 with enable_sriov off", pf, 0);
            t.step("sriov_numvfs after the refused disable", sysfs::sriov_count(pf, "sriov_numvfs"), count);
            set_param(t, driver, true, "to disable")?;
            write_numvfs(t, "write sriov_numvfs 0 with enable_sriov on", pf, 0);
            t.step("sriov_numvfs after disable", sysfs::sriov_count(pf, "sriov_numvfs"), count);
            let gone = vfs.iter().all(|vf| sysfs::wait_path(&sysfs::device_dir(vf), false));
            t.record("VFs removed", Outcome::Ok(vec![("gone", Val::Bool(gone))]));
            pf_power_without_vfs(t, &b, pf);
        }
        remove_vfs(t, driver, pf, &b);
        Ok(())
    })
}

/// With VFs enabled, the PF opened through its group: a PMCSR write asking
/// for D3hot leaves the function in D0.
fn pf_power_with_vfs(t: &mut Transcript, b: &Bound, pf: &str) {
    pf_power(t, b, pf, "with VFs");
}

/// The same without VFs: the function goes to D3hot (and back).
fn pf_power_without_vfs(t: &mut Transcript, b: &Bound, pf: &str) {
    pf_power(t, b, pf, "without VFs");
}

fn pf_power(t: &mut Transcript, b: &Bound, pf: &str, when: &str) {
    let _ = (|| {
        let pm = t.need(&format!("PM capability ({when})"), find_cap(pf, CAP_ID_PM), |_, _| Vec::new())?;
        let container = t.need(&format!("open /dev/vfio/vfio ({when})"), Container::open(), none)?;
        let group = t.need(&format!("open PF group ({when})"), Group::open(&b.group), none)?;
        t.need(&format!("PF VFIO_GROUP_SET_CONTAINER ({when})"), group.set_container(&container), none)?;
        t.need(&format!("VFIO_SET_IOMMU ({when})"), container.set_iommu(VFIO_TYPE1v2_IOMMU), none)?;
        let d = t.need(&format!("open PF ({when})"), group.get_device_fd(pf), none)?;
        let pmcsr = t.need(&format!("PMCSR ({when})"), config_read16(&d, pm + 4), |v, _| {
            vec![("value", Val::Hex((*v).into()))]
        })?;
        t.step(&format!("write PMCSR D3hot ({when})"), config_write16(&d, pm + 4, (pmcsr & !3) | 3), none);
        t.step(&format!("power_state after D3hot was asked for ({when})"), sysfs::power_state(pf), |s, _| {
            vec![("state", Val::text(s.as_str()))]
        });
        t.step(&format!("write PMCSR D0 ({when})"), config_write16(&d, pm + 4, pmcsr & !3), none);
        t.step(&format!("power_state after D0 ({when})"), sysfs::power_state(pf), |s, _| {
            vec![("state", Val::text(s.as_str()))]
        });
        Ok::<(), Abort>(())
    })();
}

fn expect_sriov_numvfs(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.ok("write driver_override");
    e.err("write sriov_numvfs 1 with enable_sriov off", Errno::ENOENT);
    e.num("sriov_numvfs", "count", 0);
    e.err("write sriov_numvfs sriov_totalvfs + 1", Errno::ERANGE);
    e.ok("write sriov_numvfs 2");
    e.num("sriov_numvfs with VFs", "count", 2);
    for i in 0..2 {
        e.val(&format!("VF {i} driver_override"), "override", &Val::Norm("driver under test".into()));
        e.val(&format!("VF {i} driver link"), "driver", &Val::Norm("driver under test".into()));
        e.num(&format!("VF {i} vfio-dev entry"), "entries", 1);
        e.val(&format!("VF {i} group is not the PF's"), "separate", &Val::Bool(true));
    }
    e.err("write sriov_numvfs 3 while 2 are enabled", Errno::EBUSY);
    e.ok("write sriov_numvfs 2 again");
    e.val("power_state after D3hot was asked for (with VFs)", "state", &Val::text("D0"));
    e.val("power_state after D0 (with VFs)", "state", &Val::text("D0"));
    e.err("write sriov_numvfs 0 with enable_sriov off", Errno::ENOENT);
    e.num("sriov_numvfs after the refused disable", "count", 2);
    e.ok("write sriov_numvfs 0 with enable_sriov on");
    e.num("sriov_numvfs after disable", "count", 0);
    e.val("VFs removed", "gone", &Val::Bool(true));
    e.val("power_state after D3hot was asked for (without VFs)", "state", &Val::text("D3hot"));
    e.val("power_state after D0 (without VFs)", "state", &Val::text("D0"));
    e.ok("unbind");
    e.finish()
}

// ------------------------------------------------------- VF token matrix

/// A token offered, by name.
#[derive(Clone, Copy)]
enum Tok {
    None,
    A,
    B,
    /// Not a UUID (group path only: the cdev path takes raw bytes).
    Malformed,
}

impl Tok {
    fn bytes(self) -> Option<&'static [u8; 16]> {
        match self {
            Tok::A => Some(&TOKEN_A),
            Tok::B => Some(&TOKEN_B),
            Tok::None | Tok::Malformed => None,
        }
    }

    /// `bdf` as VFIO_GROUP_GET_DEVICE_FD takes it with this token.
    fn device_name(self, bdf: &str) -> String {
        match (self, self.bytes()) {
            (_, Some(uuid)) => with_token(bdf, uuid),
            (Tok::Malformed, None) => format!("{bdf} vf_token=not-a-uuid-not-a-uuid-not-a-uuid-xx"),
            _ => bdf.to_string(),
        }
    }
}

/// One step of a token matrix.
enum Act {
    /// Open the PF (group: a new device fd; cdev: open and bind), keeping it open if it works.
    OpenPf(Tok),
    /// The same for the VF.
    OpenVf(Tok),
    /// Open the VF and close it at once if it works.
    TryVf(Tok),
    /// Open the PF and close it at once if it works.
    TryPf(Tok),
    /// VFIO_DEVICE_FEATURE PCI_VF_TOKEN SET on the PF opened first.
    SetPfToken(Tok),
    /// Close every open fd of the VF (its token users drop to 0).
    CloseVf,
    /// Close every open fd of the PF.
    ClosePf,
}

/// A step, what it does and what the uAPI promises: success, or this errno.
type Row = (&'static str, Act, Option<Errno>);

const EACCES: Option<Errno> = Some(Errno::EACCES);

/// The group path: a device may have several fds, each GET_DEVICE_FD checks the token.
const GROUP_MATRIX: &[Row] = &[
    ("open PF without a token", Act::OpenPf(Tok::None), None),
    ("PF PCI_VF_TOKEN SET A", Act::SetPfToken(Tok::A), None),
    ("open VF without a token", Act::TryVf(Tok::None), EACCES),
    ("open VF with token B", Act::TryVf(Tok::B), EACCES),
    ("open VF with a malformed token", Act::TryVf(Tok::Malformed), Some(Errno::EINVAL)),
    ("open VF with token A", Act::OpenVf(Tok::A), None),
    ("open PF again without a token while the VF is open", Act::TryPf(Tok::None), EACCES),
    ("open PF again with token B while the VF is open", Act::TryPf(Tok::B), EACCES),
    ("open PF again with token A while the VF is open", Act::TryPf(Tok::A), None),
    ("PF PCI_VF_TOKEN SET B while the VF is open", Act::SetPfToken(Tok::B), None),
    ("open VF again with token A", Act::TryVf(Tok::A), EACCES),
    ("open VF again with token B", Act::TryVf(Tok::B), None),
    ("close the VF", Act::CloseVf, None),
    ("open PF again with token A once the VF is closed", Act::TryPf(Tok::A), None),
    ("open VF with token B after the PF set A", Act::TryVf(Tok::B), EACCES),
    ("open VF with token A after the PF set A", Act::TryVf(Tok::A), None),
    ("close the PF", Act::ClosePf, None),
    ("open VF with token A with the PF closed", Act::TryVf(Tok::A), None),
];

/// The cdev path: a bound device cannot be bound again, so the PF is closed to be reopened.
const CDEV_MATRIX: &[Row] = &[
    ("bind PF with token A", Act::OpenPf(Tok::A), None),
    ("bind VF without a token", Act::TryVf(Tok::None), EACCES),
    ("bind VF with token B", Act::TryVf(Tok::B), EACCES),
    ("bind VF with token A", Act::OpenVf(Tok::A), None),
    ("close the PF", Act::ClosePf, None),
    ("bind PF without a token while the VF is bound", Act::TryPf(Tok::None), EACCES),
    ("bind PF with token B while the VF is bound", Act::TryPf(Tok::B), EACCES),
    ("bind PF with token A while the VF is bound", Act::OpenPf(Tok::A), None),
    ("PF PCI_VF_TOKEN SET B while the VF is bound", Act::SetPfToken(Tok::B), None),
    ("close the VF", Act::CloseVf, None),
    ("bind VF with token A after the PF set B", Act::TryVf(Tok::A), EACCES),
    ("bind VF with token B after the PF set B", Act::TryVf(Tok::B), None),
    ("close the PF again", Act::ClosePf, None),
    ("bind PF with token A once no VF is open", Act::TryPf(Tok::A), None),
    ("bind VF with token B after the PF took A", Act::TryVf(Tok::B), EACCES),
    ("bind VF with token A after the PF took A", Act::TryVf(Tok::A), None),
];

/// The open devices of a matrix run, PF's and VF's, closed when dropped.
struct Open<D> {
    pf: Vec<D>,
    vf: Vec<D>,
}

/// Runs `matrix`: `open(t, step, pf, token)` opens the PF (`pf`) or the VF, `device`
/// gives the device of an open handle for the feature ioctl.
fn run_matrix<D>(
    t: &mut Transcript,
    matrix: &[Row],
    mut open: impl FnMut(&mut Transcript, &str, bool, Tok) -> Option<D>,
    device: impl Fn(&D) -> &Device,
) {
    let mut held = Open::<D> { pf: Vec::new(), vf: Vec::new() };
    for (step, act, _) in matrix {
        match *act {
            Act::OpenPf(tok) => held.pf.extend(open(t, step, true, tok)),
            Act::OpenVf(tok) => held.vf.extend(open(t, step, false, tok)),
            Act::TryPf(tok) => drop(open(t, step, true, tok)),
            Act::TryVf(tok) => drop(open(t, step, false, tok)),
            Act::SetPfToken(tok) => {
                let set = match (held.pf.first(), tok.bytes()) {
                    (Some(d), Some(uuid)) => feature(device(d), PCI_VF_TOKEN | FEATURE_SET, uuid),
                    _ => Err(Fail::other("no PF open, or no token to set")),
                };
                t.step(step, set, none);
            }
            Act::CloseVf => {
                held.vf.clear();
                t.record(*step, Outcome::Ok(Vec::new()));
            }
            Act::ClosePf => {
                held.pf.clear();
                t.record(*step, Outcome::Ok(Vec::new()));
            }
        }
    }
}

/// A matrix run as documented: every row's promise, then the VFs gone and the PF unbound.
fn expect_matrix(t: &Transcript, matrix: &[Row]) -> Vec<String> {
    let mut e = Expect::new(t);
    for (step, _, want) in matrix {
        match want {
            None => {
                e.ok(step);
            }
            Some(errno) => e.err(step, *errno),
        }
    }
    e.ok("write sriov_numvfs 0");
    e.ok("unbind");
    e.finish()
}

fn sriov_vf_token_group(c: &Ctx) -> Transcript {
    let (driver, pf) = (c.driver, c.bdf());
    scenario(|t| {
        let (b, vfs) = pf_with_vfs(t, driver, pf, 1)?;
        let _ = (|| {
            let (vf, vb) = vfs.first().ok_or(Abort)?;
            let container = t.need("open /dev/vfio/vfio", Container::open(), none)?;
            let pf_group = t.need("open PF group", Group::open(&b.group), none)?;
            t.need("PF VFIO_GROUP_SET_CONTAINER", pf_group.set_container(&container), none)?;
            t.need("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)", container.set_iommu(VFIO_TYPE1v2_IOMMU), none)?;
            let vf_group = t.need("open VF group", Group::open(&vb.group), none)?;
            t.need("VF VFIO_GROUP_SET_CONTAINER", vf_group.set_container(&container), none)?;
            let open = |t: &mut Transcript, step: &str, is_pf: bool, tok: Tok| {
                let (group, bdf) = if is_pf { (&pf_group, pf) } else { (&vf_group, vf.as_str()) };
                t.step(step, group.get_device_fd(&tok.device_name(bdf)), none)
            };
            run_matrix(t, GROUP_MATRIX, open, |d| d);
            Ok::<(), Abort>(())
        })();
        remove_vfs(t, driver, pf, &b);
        Ok(())
    })
}

fn expect_sriov_vf_token_group(_: &Ctx, t: &Transcript) -> Vec<String> {
    expect_matrix(t, GROUP_MATRIX)
}

/// Open `cdev` and bind it to a fresh iommufd with `token`; the device and
/// its iommufd stay open as long as the returned pair lives.
fn bind_cdev(t: &mut Transcript, step: &str, cdev: &str, token: Option<&[u8; 16]>) -> Option<(Device, Iommufd)> {
    let opened = Device::open_cdev(cdev).and_then(|d| Iommufd::open().map(|i| (d, i)));
    let bound = opened.and_then(|(d, i)| d.bind_iommufd_token(&i, token).map_err(Fail::Os).map(|_| (d, i)));
    t.step(step, bound, none)
}

fn sriov_vf_token_cdev(c: &Ctx) -> Transcript {
    let (driver, pf) = (c.driver, c.bdf());
    scenario(|t| {
        let (b, vfs) = pf_with_vfs(t, driver, pf, 1)?;
        if let Some((_, vb)) = vfs.first() {
            let open = |t: &mut Transcript, step: &str, is_pf: bool, tok: Tok| {
                bind_cdev(t, step, if is_pf { &b.cdev } else { &vb.cdev }, tok.bytes())
            };
            run_matrix(t, CDEV_MATRIX, open, |(d, _)| d);
        }
        remove_vfs(t, driver, pf, &b);
        Ok(())
    })
}

fn expect_sriov_vf_token_cdev(_: &Ctx, t: &Transcript) -> Vec<String> {
    expect_matrix(t, CDEV_MATRIX)
}

// ------------------------------------------------- VF of the other's PF

fn sriov_vf_of_foreign_pf(c: &Ctx) -> Transcript {
    let (driver, other, pf) = (c.driver, c.other, c.bdf());
    scenario(|t| {
        // The other driver may be vfio-pci-rs, loaded here on purpose.
        t.need("load the other driver", other.load(""), none)?;
        let (b, vfs) = pf_with_vfs(t, other, pf, 1)?;
        let _ = (|| {
            let (vf, _) = vfs.first().ok_or(Abort)?;
            t.need("VF: write driver_override", sysfs::set_driver_override(vf, driver.name), none)?;
            t.need("VF: unbind from the PF's driver", sysfs::unbind(vf), none)?;
            t.need("VF: write drivers_probe", sysfs::drivers_probe(vf), none)?;
            sysfs::wait_until(sysfs::SETTLE, || sysfs::current_driver(vf).is_ok_and(|d| d == driver.name));
            let name =
                t.need("VF driver link", sysfs::current_driver(vf), |d, _| vec![("driver", driver_val(driver, d))])?;
            if name != driver.name {
                return Err(Abort);
            }
            let vb = vf_nodes(t, "VF", vf)?;
            {
                let container = t.need("open /dev/vfio/vfio", Container::open(), none)?;
                let g = t.need("open VF group", Group::open(&vb.group), none)?;
                t.need("VF VFIO_GROUP_SET_CONTAINER", g.set_container(&container), none)?;
                t.need("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)", container.set_iommu(VFIO_TYPE1v2_IOMMU), none)?;
                t.step("open VF with a token", g.get_device_fd(&with_token(vf, &TOKEN_A)), none);
                t.step("open VF without a token", g.get_device_fd(vf), none);
            }
            bind_cdev(t, "bind VF with a token", &vb.cdev, Some(&TOKEN_A));
            bind_cdev(t, "bind VF without a token", &vb.cdev, None);
            t.step("VF: unbind", sysfs::unbind(vf), none);
            Ok::<(), Abort>(())
        })();
        remove_vfs(t, other, pf, &b);
        Ok(())
    })
}

fn expect_sriov_vf_of_foreign_pf(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    // Recorded relative to the PF's driver: the other one.
    e.val("VF 0 driver_override", "override", &Val::Norm("driver under test".into()));
    e.val("VF driver link", "driver", &Val::Norm("driver under test".into()));
    e.err("open VF with a token", Errno::EINVAL);
    e.ok("open VF without a token");
    e.err("bind VF with a token", Errno::EINVAL);
    e.ok("bind VF without a token");
    e.ok("VF: unbind");
    e.ok("write sriov_numvfs 0");
    e.ok("unbind");
    e.finish()
}

// ------------------------------------------- removing a PF with VFs

/// Where the PF's bus can be rescanned.
fn bus_rescan_path(pf: &str) -> std::path::PathBuf {
    std::path::Path::new("/sys/class/pci_bus").join(&pf[..7]).join("rescan")
}

fn sriov_remove_pf_with_vfs(c: &Ctx) -> Transcript {
    let (driver, pf) = (c.driver, c.bdf());
    scenario(|t| {
        let (b, vfs) = pf_with_vfs(t, driver, pf, 2)?;
        // The PF's token is random until set: set it through a PF open.
        drop(bind_cdev(t, "bind PF with token A", &b.cdev, Some(&TOKEN_A)));
        let opened = vfs.first().and_then(|(_, vb)| bind_cdev(t, "bind VF 0 with token A", &vb.cdev, Some(&TOKEN_A)));
        let Some(vf_dev) = opened else {
            remove_vfs(t, driver, pf, &b);
            return Err(Abort);
        };
        // Removal disables SR-IOV whatever enable_sriov says.
        t.step("enable_sriov=0 before the removal", driver.set_enable_sriov(false), none);
        let remove = sysfs::device_dir(pf).join("remove");
        waits_for_close(
            t,
            "remove PF",
            move || sysfs::write_attr(&remove, "1"),
            |t| {
                for (i, (vf, _)) in vfs.iter().enumerate() {
                    let present = sysfs::device_dir(vf).exists();
                    t.record(
                        format!("VF {i} present while the removal waits"),
                        Outcome::Ok(vec![("present", Val::Bool(present))]),
                    );
                }
            },
            |t| {
                drop(vf_dev);
                t.record("close VF 0", Outcome::Ok(Vec::new()));
            },
        );
        for (i, (vf, _)) in vfs.iter().enumerate() {
            let gone = sysfs::wait_path(&sysfs::device_dir(vf), false);
            t.record(format!("VF {i} removed"), Outcome::Ok(vec![("gone", Val::Bool(gone))]));
        }
        let gone = sysfs::wait_path(&sysfs::device_dir(pf), false);
        t.record("PF removed", Outcome::Ok(vec![("gone", Val::Bool(gone))]));
        t.need("rescan the PF's bus", sysfs::write_attr(&bus_rescan_path(pf), "1"), none)?;
        let back = sysfs::wait_path(&sysfs::device_dir(pf), true);
        t.record("PF back after the rescan", Outcome::Ok(vec![("present", Val::Bool(back))]));
        t.step("PF driver link after the rescan", sysfs::current_driver(pf), none);
        t.step("PF driver_override after the rescan", sysfs::driver_override(pf), |o, _| {
            vec![("set", Val::Bool(o.is_some()))]
        });
        t.step("sriov_numvfs after the rescan", sysfs::sriov_count(pf, "sriov_numvfs"), count);
        Ok(())
    })
}

fn expect_sriov_remove_pf_with_vfs(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    e.ok("bind PF with token A");
    e.ok("bind VF 0 with token A");
    e.val("remove PF 1.5 s after it was started, device still open", "finished", &Val::Bool(false));
    e.val("VF 0 present while the removal waits", "present", &Val::Bool(true));
    e.ok("remove PF returns once the device is closed");
    e.val("VF 0 removed", "gone", &Val::Bool(true));
    e.val("VF 1 removed", "gone", &Val::Bool(true));
    e.val("PF removed", "gone", &Val::Bool(true));
    e.val("PF back after the rescan", "present", &Val::Bool(true));
    e.err("PF driver link after the rescan", Errno::ENOENT);
    e.val("PF driver_override after the rescan", "set", &Val::Bool(false));
    e.num("sriov_numvfs after the rescan", "count", 0);
    e.finish()
}
