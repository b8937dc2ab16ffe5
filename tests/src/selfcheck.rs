//! `--self-check`: the pure logic of the suite, exercised on the host (no
//! VFIO, no root needed): ioctl numbers and layouts, topology parsing and
//! discovery on a fake sysfs tree, id formatting, transcript comparison and
//! normalisation, expectation checks, KTAP counting, argument parsing, and
//! whether the binary came out static.  Reported as KTAP like the real run.

use crate::harness::{self, Case};
use crate::ktap::{CaseResult, Ktap, Verdict};
use crate::scenarios::Site;
use crate::sys::{dev_major, dev_minor, Errno};
use crate::sysfs::{self, PciId, Topology};
use crate::transcript::{compare, errno_steps, Expect, Outcome, Transcript, Val};
use crate::uapi::*;
use crate::vfio::{HotResetInfoCall, InfoReply};
use std::fs;
use std::mem::{offset_of, size_of};
use std::panic;
use std::path::Path;
use std::time::Duration;

/// Collects mismatches instead of stopping at the first.
#[derive(Default)]
struct Check(Vec<String>);

impl Check {
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.0.push(format!("{what}: expected {want:?}, got {got:?}"));
        }
    }

    fn that(&mut self, what: &str, cond: bool) {
        if !cond {
            self.0.push(format!("{what}: does not hold"));
        }
    }

    fn done(self) -> CaseResult {
        CaseResult::from_failures(self.0)
    }
}

pub fn cases() -> Vec<Case<'static>> {
    vec![
        Case::new("uapi: ioctl numbers are _IO(';', nr)", ioctl_numbers),
        Case::new("uapi: structure layouts match the headers", layouts),
        Case::new("uapi: GET_INFO replies decode field by field", info_decode),
        Case::new("uapi: hot reset info replies decode entry by entry", hot_reset_decode),
        Case::new("reset: expected dev_ids follow bindings and groups", cdev_expectations),
        Case::new("sys: errno names", errno_names),
        Case::new("fuzz: the generator and the operation draws", || {
            CaseResult::from_failures(crate::fuzz::self_check())
        }),
        Case::new("stress: the worker process's counts and the allowed errnos", || {
            CaseResult::from_failures(crate::stress::self_check())
        }),
        Case::new("bench: function_graph lines give pci_reset_bus's time", || {
            CaseResult::from_failures(crate::bench::reset_trace_self_check())
        }),
        Case::new("harness: a longer case timeout scales the deadlines inside cases", || {
            let mut c = Check::default();
            for (secs, want) in [(120, 1), (1200, 10), (60, 1), (239, 1), (240, 2)] {
                c.eq(&format!("slowdown of {secs} s"), harness::slowdown_of(Duration::from_secs(secs)), want);
            }
            c.done()
        }),
        Case::new("sys: dev_t major and minor", dev_numbers),
        Case::new("topology: the file format", topology_parse),
        Case::new("topology: functions below a port, through switch bridges", topology_walk),
        Case::new("sysfs: ids= and new_id formatting", id_formatting),
        Case::new("sysfs: attribute parsing", attribute_parsing),
        Case::new("transcript: identical transcripts match", cmp_identical),
        Case::new("transcript: the first differing outcome is reported", cmp_outcome),
        Case::new("transcript: skipped steps match anything and are listed", cmp_skipped),
        Case::new("transcript: a transcript that stops early differs", cmp_length),
        Case::new("transcript: different step names differ", cmp_names),
        Case::new("transcript: a set of names agrees when it is among the reference's", cmp_among),
        Case::new("transcript: the errno table's steps", errno_table_steps),
        Case::new("transcript: ids are normalised, their equalities kept", cmp_ids),
        Case::new("transcript: rendering of values and outcomes", rendering),
        Case::new("expect: rules are checked and violations explained", expectations),
        Case::new("ktap: plan, results, diagnostics and the summary line", ktap_counting),
        Case::new("harness: a panicking case is a failure, not the end", harness_panic),
        Case::new("harness: --filter keeps matching cases only", harness_filter),
        Case::new("cli: argument parsing", cli),
        Case::new("build: the binary is statically linked", static_binary),
        Case::new("clients: kselftest TAP output parses test by test", clients_tap),
        Case::new(
            "clients: a selftest passes on vfio-pci-rs iff it passed on vfio-pci, skips alike",
            clients_selftest_rule,
        ),
        Case::new("clients: QEMU hot-reset traces are found, normalised and compared", clients_qemu_rule),
        Case::new("clients: the monitor's echo is shown as the command", clients_echo),
        Case::new(
            "clients: the vfio-ioctls client's observations are compared line by line",
            crate::vmm_client::check_compare,
        ),
        Case::new("bench: the device-init selftest's times are read test by test", bench_init_times),
        Case::new("kunit: KTAP suites of the module are read case by case from the log", kunit_log),
        Case::new("kunit: missing, unplanned, crashed and misnamed suites fail", kunit_judge),
        Case::new("kunit: /dev/kmsg records are split and unescaped", kunit_kmsg),
        Case::new("kunit: the module file's suites are read from .kunit_test_suites", kunit_elf),
        Case::new("aer: extended capabilities are walked, log lines of the function kept", crate::aer::check_helpers),
    ]
}

fn ioctl_numbers() -> CaseResult {
    let mut c = Check::default();
    for (name, got, want) in [
        ("VFIO_GET_API_VERSION", VFIO_GET_API_VERSION, 0x3b64),
        ("VFIO_CHECK_EXTENSION", VFIO_CHECK_EXTENSION, 0x3b65),
        ("VFIO_SET_IOMMU", VFIO_SET_IOMMU, 0x3b66),
        ("VFIO_GROUP_GET_STATUS", VFIO_GROUP_GET_STATUS, 0x3b67),
        ("VFIO_GROUP_SET_CONTAINER", VFIO_GROUP_SET_CONTAINER, 0x3b68),
        ("VFIO_GROUP_UNSET_CONTAINER", VFIO_GROUP_UNSET_CONTAINER, 0x3b69),
        ("VFIO_GROUP_GET_DEVICE_FD", VFIO_GROUP_GET_DEVICE_FD, 0x3b6a),
        ("VFIO_DEVICE_GET_INFO", VFIO_DEVICE_GET_INFO, 0x3b6b),
        ("VFIO_DEVICE_BIND_IOMMUFD", VFIO_DEVICE_BIND_IOMMUFD, 0x3b76),
        ("VFIO_DEVICE_ATTACH_IOMMUFD_PT", VFIO_DEVICE_ATTACH_IOMMUFD_PT, 0x3b77),
        ("VFIO_DEVICE_DETACH_IOMMUFD_PT", VFIO_DEVICE_DETACH_IOMMUFD_PT, 0x3b78),
        ("VFIO_DEVICE_RESET", VFIO_DEVICE_RESET, 0x3b6f),
        ("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, 0x3b70),
        ("VFIO_DEVICE_PCI_HOT_RESET", VFIO_DEVICE_PCI_HOT_RESET, 0x3b71),
        ("IOMMU_DESTROY", IOMMU_DESTROY, 0x3b80),
        ("IOMMU_IOAS_ALLOC", IOMMU_IOAS_ALLOC, 0x3b81),
    ] {
        c.eq(name, got, want);
    }
    c.eq("VFIO_TYPE1_IOMMU", VFIO_TYPE1_IOMMU, 1);
    c.eq("VFIO_TYPE1v2_IOMMU", VFIO_TYPE1v2_IOMMU, 3);
    c.done()
}

fn layouts() -> CaseResult {
    let mut c = Check::default();
    c.eq("sizeof(vfio_group_status)", size_of::<VfioGroupStatus>(), 8);
    c.eq("sizeof(vfio_device_info)", size_of::<VfioDeviceInfo>(), 24);
    c.eq("offsetof(vfio_device_info, cap_offset)", offset_of!(VfioDeviceInfo, cap_offset), 16);
    c.eq("GET_INFO minsz", VFIO_DEVICE_INFO_MINSZ, 16);
    c.eq("sizeof(vfio_info_cap_header)", size_of::<VfioInfoCapHeader>(), 8);
    c.eq("sizeof(vfio_device_bind_iommufd)", size_of::<VfioDeviceBindIommufd>(), 24);
    c.eq("offsetof(vfio_device_bind_iommufd, out_devid)", offset_of!(VfioDeviceBindIommufd, out_devid), 12);
    c.eq("sizeof(vfio_device_attach_iommufd_pt)", size_of::<VfioDeviceAttachIommufdPt>(), 16);
    c.eq("sizeof(vfio_device_detach_iommufd_pt)", size_of::<VfioDeviceDetachIommufdPt>(), 12);
    c.eq("sizeof(iommu_ioas_alloc)", size_of::<IommuIoasAlloc>(), 12);
    c.eq("sizeof(iommu_destroy)", size_of::<IommuDestroy>(), 8);
    c.eq("sizeof(vfio_pci_hot_reset_info)", size_of::<VfioPciHotResetInfo>(), 12);
    c.eq("sizeof(vfio_pci_dependent_device)", size_of::<VfioPciDependentDevice>(), 8);
    c.eq("offsetof(vfio_pci_dependent_device, segment)", offset_of!(VfioPciDependentDevice, segment), 4);
    c.eq("offsetof(vfio_pci_dependent_device, bus)", offset_of!(VfioPciDependentDevice, bus), 6);
    c.eq("sizeof(vfio_pci_hot_reset)", size_of::<VfioPciHotReset>(), 12);
    c.eq("VFIO_PCI_DEVID_NOT_OWNED", VFIO_PCI_DEVID_NOT_OWNED, u32::MAX);
    c.eq("hot reset flags", (VFIO_PCI_HOT_RESET_FLAG_DEV_ID, VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED), (1, 2));
    c.eq("VFIO_DEVICE_FLAGS_RESET", VFIO_DEVICE_FLAGS_RESET, 1);
    c.eq("argsz::<VfioDeviceInfo>()", argsz::<VfioDeviceInfo>(), 24);
    c.done()
}

fn info_decode() -> CaseResult {
    let mut c = Check::default();
    let words: [u32; 6] = [24, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET, 9, 5, 0, 0];
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let info = InfoReply::decode(&bytes);
    c.eq("decoded", info, VfioDeviceInfo { argsz: 24, flags: 3, num_regions: 9, num_irqs: 5, cap_offset: 0, pad: 0 });
    let short = InfoReply::decode(&bytes[..16]);
    c.eq("decoded from 16 bytes", short.cap_offset, 0);
    c.eq("caps flag bit", VFIO_DEVICE_FLAGS_CAPS, 0x80);
    c.done()
}

fn hot_reset_decode() -> CaseResult {
    let mut c = Check::default();
    let mut bytes: Vec<u8> = [20u32, 3, 2].iter().flat_map(|w| w.to_ne_bytes()).collect();
    bytes.extend(7u32.to_ne_bytes());
    bytes.extend([0, 0, 2, 0]);
    bytes.extend([0xa5; 4]);
    let call = HotResetInfoCall { result: Ok(()), bytes };
    c.eq("header", call.header(), VfioPciHotResetInfo { argsz: 20, flags: 3, count: 2 });
    c.eq(
        "entries the buffer holds",
        call.devices(),
        vec![VfioPciDependentDevice { id: 7, segment: 0, bus: 2, devfn: 0 }],
    );
    c.done()
}

fn cdev_expectations() -> CaseResult {
    let mut c = Check::default();
    let site = |groups: [&str; 2]| Site {
        functions: vec!["0000:02:00.0".into(), "0000:02:00.1".into()],
        groups: groups.iter().map(|g| g.to_string()).collect(),
        hot_reset: true,
    };
    let a = Some(Val::Norm("ictx1#1".into()));
    let norm = |s: &str| Val::Norm(s.into());
    let (one, two) = (site(["9", "9"]), site(["13", "14"]));
    c.eq(
        "one group: the unopened sibling is OWNED",
        crate::reset::cdev_expectation(&one, &[a.clone()], &[]),
        (vec![norm("ictx1#1"), norm("OWNED")], 3),
    );
    c.eq(
        "two groups: the unopened sibling is NOT_OWNED",
        crate::reset::cdev_expectation(&two, &[a.clone()], &[]),
        (vec![norm("ictx1#1"), norm("NOT_OWNED")], 1),
    );
    c.eq(
        "a foreign sibling is NOT_OWNED even in the caller's group",
        crate::reset::cdev_expectation(&one, &[a.clone()], &[false, true]),
        (vec![norm("ictx1#1"), norm("NOT_OWNED")], 1),
    );
    c.eq(
        "both bound",
        crate::reset::cdev_expectation(&two, &[a, Some(norm("ictx1#2"))], &[]),
        (vec![norm("ictx1#1"), norm("ictx1#2")], 3),
    );
    c.done()
}

fn errno_names() -> CaseResult {
    let mut c = Check::default();
    c.eq("EBUSY", Errno(16).to_string(), "EBUSY (16)".to_string());
    c.eq("EINVAL", Errno::EINVAL.to_string(), "EINVAL (22)".to_string());
    c.eq("ENOTTY", Errno(25).name(), Some("ENOTTY"));
    c.eq("ENOTSUPP (kernel-internal)", Errno(524).name(), Some("ENOTSUPP"));
    c.eq("unknown", Errno(4095).to_string(), "errno 4095".to_string());
    let e = std::io::Error::from_raw_os_error(2);
    c.eq("io::Error -> Fail", crate::sys::Fail::from(e).errno(), Some(Errno::ENOENT));
    c.done()
}

/// glibc's makedev, to check the decoding against.
fn makedev(major: u32, minor: u32) -> u64 {
    let (ma, mi) = (major as u64, minor as u64);
    ((ma & 0xffff_f000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff)
}

fn dev_numbers() -> CaseResult {
    let mut c = Check::default();
    for (ma, mi) in [(1, 3), (511, 0), (240, 255), (4095, 256), (4096, 1 << 19), (0xfffff, 0xfffff)] {
        let d = makedev(ma, mi);
        c.eq(&format!("major of {ma}:{mi}"), dev_major(d), ma);
        c.eq(&format!("minor of {ma}:{mi}"), dev_minor(d), mi);
    }
    // And a real node: /dev/null is 1:3 everywhere.
    if let Ok(n) = sysfs::stat_node(Path::new("/dev/null")) {
        c.eq("/dev/null", (n.is_char, n.major, n.minor), (true, 1, 3));
    }
    c.done()
}

fn topology_parse() -> CaseResult {
    let mut c = Check::default();
    let text = "# name port\nslot 0000:00:02.0\n\n  multifunction\t0000:00:03.0  # two functions\nswitch 0000:00:04.0\nsriov 0000:00:05.0\n";
    let want = vec![
        Topology { name: "slot".into(), port: "0000:00:02.0".into() },
        Topology { name: "multifunction".into(), port: "0000:00:03.0".into() },
        Topology { name: "switch".into(), port: "0000:00:04.0".into() },
        Topology { name: "sriov".into(), port: "0000:00:05.0".into() },
    ];
    c.eq("four topologies", sysfs::parse_topology(text), Ok(want));
    c.eq("empty file", sysfs::parse_topology("# nothing\n\n"), Ok(vec![]));
    c.that("a missing port is an error", sysfs::parse_topology("slot\n").is_err());
    c.that("three words are an error", sysfs::parse_topology("slot 0000:00:02.0 extra\n").is_err());
    c.that("a bad address is an error", sysfs::parse_topology("slot 00:02.0\n").is_err());
    c.that("a duplicate name is an error", sysfs::parse_topology("a 0000:00:02.0\na 0000:00:03.0\n").is_err());
    match sysfs::parse_topology("ok 0000:00:02.0\nbad line here\n") {
        Err(e) => c.that(&format!("the error names the line ({e})"), e.starts_with("line 2:")),
        Ok(v) => c.0.push(format!("a bad line parsed as {v:?}")),
    }
    c.done()
}

/// Build a fake /sys/bus/pci/devices: a slot, a two-function device and a
/// switch (upstream port, two downstream ports, one endpoint), plus the
/// non-device entries real sysfs has.
fn fake_sysfs(root: &Path) -> std::io::Result<()> {
    let dev = |path: &str, class: &str| -> std::io::Result<()> {
        let d = root.join(path);
        fs::create_dir_all(d.join("power"))?;
        fs::write(d.join("class"), format!("{class}\n"))?;
        fs::write(d.join("vendor"), "0x8086\n")?;
        fs::write(d.join("device"), "0x10d3\n")
    };
    dev("0000:00:02.0", "0x060400")?;
    dev("0000:00:02.0/0000:01:00.0", "0x020000")?;
    dev("0000:00:03.0", "0x060400")?;
    dev("0000:00:03.0/0000:02:00.1", "0x020000")?;
    dev("0000:00:03.0/0000:02:00.0", "0x020000")?;
    dev("0000:00:04.0", "0x060400")?;
    dev("0000:00:04.0/0000:03:00.0", "0x060400")?;
    dev("0000:00:04.0/0000:03:00.0/0000:04:00.0", "0x060400")?;
    dev("0000:00:04.0/0000:03:00.0/0000:04:01.0", "0x060400")?;
    dev("0000:00:04.0/0000:03:00.0/0000:04:00.0/0000:05:00.0", "0x020000")?;
    dev("0000:00:05.0", "0x060400")?;
    dev("0000:00:07.0", "0x020000")?;
    fs::create_dir_all(root.join("0000:00:04.0/msi_irqs"))?;
    fs::create_dir_all(root.join("0000:00:04.0/pci_bus/0000:03"))
}

fn topology_walk() -> CaseResult {
    let mut c = Check::default();
    let root = std::env::temp_dir().join(format!("vfio-pci-rs-selfcheck-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    if let Err(e) = fake_sysfs(&root) {
        return CaseResult::fail(vec![format!("building the fake tree in {}: {e}", root.display())]);
    }
    let below = |port: &str| sysfs::functions_below(&root, port).map_err(|e| e.to_string());
    c.eq("slot", below("0000:00:02.0"), Ok(vec!["0000:01:00.0".to_string()]));
    c.eq(
        "multifunction, sorted",
        below("0000:00:03.0"),
        Ok(vec!["0000:02:00.0".to_string(), "0000:02:00.1".to_string()]),
    );
    c.eq("switch: bridges descended, not listed", below("0000:00:04.0"), Ok(vec!["0000:05:00.0".to_string()]));
    c.eq("empty port", below("0000:00:05.0"), Ok(vec![]));
    c.eq("an endpoint as port is its own function", below("0000:00:07.0"), Ok(vec!["0000:00:07.0".to_string()]));
    c.eq("is_bridge", sysfs::is_bridge(&root, "0000:00:07.0").map_err(|e| e.to_string()), Ok(false));
    c.that("a missing port is an error", below("0000:00:06.0").is_err());
    let _ = fs::remove_dir_all(&root);
    c.done()
}

fn id_formatting() -> CaseResult {
    let mut c = Check::default();
    let e1000e = PciId::new(0x8086, 0x10d3);
    c.eq("ids=", e1000e.ids_param(), "8086:10d3".to_string());
    c.eq("new_id", e1000e.new_id_line(), "8086 10d3".to_string());
    let sub = PciId { subsystem: Some((0x8086, 0xa01f)), ..e1000e };
    c.eq("ids= with subsystem", sub.ids_param(), "8086:10d3:8086:a01f".to_string());
    c.eq("new_id with subsystem", sub.new_id_line(), "8086 10d3 8086 a01f".to_string());
    let class = PciId { class: Some((0x020000, 0xffff00)), ..e1000e };
    c.eq("ids= with class only", class.ids_param(), "8086:10d3:ffffffff:ffffffff:20000:ffff00".to_string());
    c.eq("new_id with class only", class.new_id_line(), "8086 10d3 ffffffff ffffffff 20000 ffff00".to_string());
    let igb = PciId::new(0x8086, 0x10c9);
    c.eq("ids= list", PciId::ids_param_list(&[e1000e, igb]), "8086:10d3,8086:10c9".to_string());
    c.eq("leading zeros", PciId::new(0x1af4, 0x0042).ids_param(), "1af4:0042".to_string());
    c.done()
}

fn attribute_parsing() -> CaseResult {
    let mut c = Check::default();
    c.eq("vendor", sysfs::parse_hex("0x8086\n"), Ok(0x8086));
    c.eq("class", sysfs::parse_hex("0x060400\n"), Ok(0x060400));
    c.that("garbage", sysfs::parse_hex("zz\n").is_err());
    c.eq("driver_override unset", sysfs::parse_driver_override("(null)\n"), None);
    c.eq("driver_override set", sysfs::parse_driver_override("vfio-pci-rs\n"), Some("vfio-pci-rs".to_string()));
    c.eq("dev", sysfs::parse_dev("240:3\n"), Some((240, 3)));
    c.eq("bad dev", sysfs::parse_dev("240\n"), None);
    c.eq("kernel release", sysfs::parse_kernel_release("7.3.4\n"), Some((7, 3)));
    c.eq("kernel release -rc", sysfs::parse_kernel_release("7.2.12-rc1"), Some((7, 2)));
    c.eq("kernel release garbage", sysfs::parse_kernel_release("x"), None);
    c.that("bdf", sysfs::is_bdf("0000:01:00.0"));
    c.that("bdf hex", sysfs::is_bdf("0000:0a:1f.7"));
    c.that("not bdf: upper case", !sysfs::is_bdf("0000:0A:00.0"));
    c.that("not bdf: function 8", !sysfs::is_bdf("0000:01:00.8"));
    c.that("not bdf: short", !sysfs::is_bdf("01:00.0"));
    c.that("not bdf: word", !sysfs::is_bdf("power"));
    c.eq("cdev index", sysfs::cdev_index("vfio12"), Some(12));
    c.eq("cdev without index", sysfs::cdev_index("vfio"), None);
    c.eq("not a cdev", sysfs::cdev_index("vfiox"), None);
    c.eq("parse_bdf", sysfs::parse_bdf("0000:07:00.1"), Some((0, 7, 1)));
    c.eq("parse_bdf devfn", sysfs::parse_bdf("0001:1f:1f.7"), Some((1, 0x1f, 0xff)));
    c.eq("parse_bdf rejects", sysfs::parse_bdf("0000:07:00"), None);
    c.eq("format_bdf", sysfs::format_bdf(0, 2, 1), "0000:02:00.1".to_string());
    c.eq("format_bdf round trip", sysfs::parse_bdf(&sysfs::format_bdf(1, 0x1f, 0xff)), Some((1, 0x1f, 0xff)));
    c.done()
}

/// A transcript shaped like a cdev-path run, with raw iommufd ids.
fn cdev_like(devid: u64, ioas: u64, pt: u64, info_flags: u64) -> Transcript {
    let mut t = Transcript::new();
    t.record("open cdev", Outcome::Ok(vec![]));
    t.record("VFIO_DEVICE_GET_INFO before VFIO_DEVICE_BIND_IOMMUFD", Outcome::Err(Errno::EINVAL));
    let v = t.norm_id("ictx1", devid);
    t.record("VFIO_DEVICE_BIND_IOMMUFD", Outcome::Ok(vec![("out_devid", v)]));
    let v = t.norm_id("ictx1", ioas);
    t.record("IOMMU_IOAS_ALLOC", Outcome::Ok(vec![("out_ioas_id", v)]));
    let v = t.norm_id("ictx1", pt);
    t.record("VFIO_DEVICE_ATTACH_IOMMUFD_PT(ioas)", Outcome::Ok(vec![("pt_id", v)]));
    t.record(
        "VFIO_DEVICE_GET_INFO",
        Outcome::Ok(vec![
            ("argsz", Val::Num(24)),
            ("flags", Val::Hex(info_flags)),
            ("num_regions", Val::Num(9)),
            ("num_irqs", Val::Num(5)),
        ]),
    );
    t
}

fn cmp_identical() -> CaseResult {
    let a = cdev_like(1, 2, 3, 3);
    let b = cdev_like(1, 2, 3, 3);
    let cmp = compare(&a, &b, "vfio-pci", "vfio-pci-rs");
    let mut c = Check::default();
    c.eq("difference", cmp.difference, None);
    c.eq("uncompared", cmp.uncompared.len(), 0);
    c.done()
}

fn cmp_outcome() -> CaseResult {
    let mut c = Check::default();
    let a = cdev_like(1, 2, 3, 3);
    let mut b = cdev_like(1, 2, 3, 3);
    b.steps[1].outcome = Outcome::Err(Errno(25));
    b.steps[5].outcome = Outcome::Err(Errno::EIO);
    let d = compare(&a, &b, "vfio-pci", "vfio-pci-rs").difference;
    c.eq(
        "first difference",
        d.as_deref(),
        Some("step 2 'VFIO_DEVICE_GET_INFO before VFIO_DEVICE_BIND_IOMMUFD': vfio-pci gave error EINVAL (22), vfio-pci-rs gave error ENOTTY (25)"),
    );
    let b = cdev_like(1, 2, 3, 2);
    let d = compare(&a, &b, "vfio-pci", "vfio-pci-rs").difference.unwrap_or_default();
    c.that(
        &format!("a field difference is shown whole ({d})"),
        d.starts_with("step 6 'VFIO_DEVICE_GET_INFO'") && d.contains("flags=0x3") && d.contains("flags=0x2"),
    );
    c.done()
}

fn cmp_among() -> CaseResult {
    let mut c = Check::default();
    let walk = |names: &[&str], ended: bool| {
        let mut t = Transcript::new();
        let set = Val::Among(names.iter().map(|n| n.to_string()).collect());
        t.record("open: injected failures", Outcome::Ok(vec![("errnos", set), ("walk ended", Val::Bool(ended))]));
        t
    };
    let differs = |a: &Transcript, b: &Transcript| compare(a, b, "vfio-pci", "vfio-pci-rs").difference;
    c.eq("equal sets agree", differs(&walk(&["EBUSY"], true), &walk(&["EBUSY"], true)), None);
    c.eq("a smaller set agrees", differs(&walk(&["EBUSY", "EINVAL"], true), &walk(&["EINVAL"], true)), None);
    c.eq("the empty set agrees", differs(&walk(&["EBUSY"], true), &walk(&[], true)), None);
    c.eq(
        "a name the reference lacks differs",
        differs(&walk(&["EBUSY"], true), &walk(&["EBUSY", "EIO"], true)).as_deref(),
        Some("step 1 'open: injected failures': vfio-pci gave ok {errnos={EBUSY}, walk ended=yes}, vfio-pci-rs gave ok {errnos={EBUSY, EIO}, walk ended=yes}"),
    );
    c.that("the other fields are still compared", differs(&walk(&[], true), &walk(&[], false)).is_some());
    c.done()
}

fn cmp_skipped() -> CaseResult {
    let mut c = Check::default();
    let mut a = Transcript::new();
    a.record("load with ids=vendor:device", Outcome::Skipped("resident".into()));
    a.record("driver link", Outcome::Ok(vec![("driver", Val::Norm("driver under test".into()))]));
    let mut b = Transcript::new();
    b.record("load with ids=vendor:device", Outcome::Ok(vec![]));
    b.record("driver link", Outcome::Ok(vec![("driver", Val::Norm("driver under test".into()))]));
    let cmp = compare(&a, &b, "vfio-pci", "vfio-pci-rs");
    c.eq("difference", cmp.difference, None);
    c.eq(
        "uncompared",
        cmp.uncompared,
        vec!["step 1 'load with ids=vendor:device': skipped for vfio-pci (resident)".to_string()],
    );
    let mut b2 = b.clone();
    b2.steps[0].outcome = Outcome::Err(Errno::ENODEV);
    c.eq("skipped matches an error too", compare(&a, &b2, "r", "c").difference, None);
    c.done()
}

fn cmp_length() -> CaseResult {
    let mut c = Check::default();
    let a = cdev_like(1, 2, 3, 3);
    let mut b = a.clone();
    b.steps.truncate(3);
    let d = compare(&a, &b, "vfio-pci", "vfio-pci-rs").difference;
    c.eq(
        "shorter candidate",
        d.as_deref(),
        Some("vfio-pci-rs stopped after step 3; vfio-pci went on to step 4 'IOMMU_IOAS_ALLOC': ok {out_ioas_id=<ictx1#2>}"),
    );
    let d = compare(&b, &a, "vfio-pci", "vfio-pci-rs").difference.unwrap_or_default();
    c.that(
        &format!("shorter reference ({d})"),
        d.starts_with("vfio-pci stopped after step 3; vfio-pci-rs went on to step 4"),
    );
    c.done()
}

fn errno_table_steps() -> CaseResult {
    let mut a = Transcript::new();
    a.record("open", Outcome::Ok(vec![]));
    a.record("bad argsz", Outcome::Err(Errno::EINVAL));
    a.record("read", Outcome::Ok(vec![]));
    a.record("only C fails", Outcome::Err(Errno::EBUSY));
    a.record("diverged", Outcome::Err(Errno::EPERM));
    let mut b = Transcript::new();
    b.record("open", Outcome::Ok(vec![]));
    b.record("bad argsz", Outcome::Err(Errno::EINVAL));
    b.record("read", Outcome::Ok(vec![]));
    b.record("only C fails", Outcome::Ok(vec![]));
    b.record("another step", Outcome::Err(Errno::EPERM));
    let rows: Vec<_> =
        errno_steps(&a, &b).iter().map(|e| format!("{} | {} | {}", e.step, e.reference, e.candidate)).collect();
    let mut c = Check::default();
    c.eq(
        "errno steps up to the first divergence",
        rows,
        vec![
            "bad argsz | error EINVAL (22) | error EINVAL (22)".to_string(),
            "only C fails | error EBUSY (16) | ok".to_string(),
        ],
    );
    c.done()
}

fn cmp_names() -> CaseResult {
    let mut a = Transcript::new();
    a.record("open group", Outcome::Ok(vec![]));
    let mut b = Transcript::new();
    b.record("open cdev", Outcome::Ok(vec![]));
    let d = compare(&a, &b, "vfio-pci", "vfio-pci-rs").difference;
    let mut c = Check::default();
    c.eq("names", d.as_deref(), Some("step 1: vfio-pci did 'open group' (ok), vfio-pci-rs did 'open cdev' (ok)"));
    c.done()
}

fn cmp_ids() -> CaseResult {
    let mut c = Check::default();
    let a = cdev_like(1, 2, 3, 3);
    let b = cdev_like(7, 9, 12, 3);
    c.eq("other raw ids, same structure", compare(&a, &b, "r", "c").difference, None);
    let same_pt = cdev_like(1, 2, 2, 3);
    let d = compare(&a, &same_pt, "r", "c").difference.unwrap_or_default();
    c.that(
        &format!("pt_id == ioas id is a different structure ({d})"),
        d.contains("pt_id=<ictx1#3>") && d.contains("pt_id=<ictx1#2>"),
    );
    let mut t = Transcript::new();
    c.eq("first id", t.norm_id("ictx1", 40), Val::Norm("ictx1#1".into()));
    c.eq("another space", t.norm_id("ictx2", 40), Val::Norm("ictx2#1".into()));
    c.eq("second id", t.norm_id("ictx1", 41), Val::Norm("ictx1#2".into()));
    c.eq("repeat keeps its label", t.norm_id("ictx1", 40), Val::Norm("ictx1#1".into()));
    c.done()
}

fn rendering() -> CaseResult {
    let mut c = Check::default();
    c.eq("bytes", Val::Bytes(vec![0x18, 0, 0, 0, 3, 0xa5]).to_string(), "18000000 03a5".to_string());
    c.eq("hex", Val::Hex(0x3).to_string(), "0x3".to_string());
    c.eq("text", Val::text("vfio-pci").to_string(), "\"vfio-pci\"".to_string());
    c.eq("norm", Val::Norm("vfio<N>".into()).to_string(), "<vfio<N>>".to_string());
    c.eq("err", Outcome::Err(Errno::EBUSY).to_string(), "error EBUSY (16)".to_string());
    c.eq(
        "ok",
        Outcome::Ok(vec![("flags", Val::Hex(1)), ("ok", Val::Bool(true))]).to_string(),
        "ok {flags=0x1, ok=yes}".to_string(),
    );
    c.eq("skipped", Outcome::Skipped("resident".into()).to_string(), "skipped (resident)".to_string());
    let t = cdev_like(1, 2, 3, 3);
    let lines = t.render();
    c.eq(
        "render line",
        lines.get(2).map(String::as_str),
        Some("   3. VFIO_DEVICE_BIND_IOMMUFD: ok {out_devid=<ictx1#1>}"),
    );
    c.done()
}

fn expectations() -> CaseResult {
    let mut c = Check::default();
    let t = cdev_like(1, 2, 3, 3);
    let mut e = Expect::new(&t);
    e.ok("open cdev");
    e.err("VFIO_DEVICE_GET_INFO before VFIO_DEVICE_BIND_IOMMUFD", Errno::EINVAL);
    e.bits("VFIO_DEVICE_GET_INFO", "flags", VFIO_DEVICE_FLAGS_PCI.into());
    e.num("VFIO_DEVICE_GET_INFO", "num_regions", 9);
    e.at_least("VFIO_DEVICE_GET_INFO", "argsz", 24);
    c.eq("a conforming transcript", e.finish(), Vec::<String>::new());

    let t = cdev_like(1, 2, 3, 1);
    let mut e = Expect::new(&t);
    e.bits("VFIO_DEVICE_GET_INFO", "flags", VFIO_DEVICE_FLAGS_PCI.into());
    e.err("open cdev", Errno::EBUSY);
    e.fails("IOMMU_IOAS_ALLOC");
    e.num("VFIO_DEVICE_GET_INFO", "num_irqs", 4);
    e.ok("VFIO_DEVICE_DETACH_IOMMUFD_PT");
    e.ok("IOMMU_DESTROY(ioas) after detach");
    e.val("VFIO_DEVICE_GET_INFO", "no such field", &Val::Num(0));
    let got = e.finish();
    let want = vec![
        "'VFIO_DEVICE_GET_INFO': expected flags to contain 0x2, got flags=0x1".to_string(),
        "'open cdev': expected error EBUSY (16), got ok".to_string(),
        "'IOMMU_IOAS_ALLOC': expected an error, got ok {out_ioas_id=<ictx1#2>}".to_string(),
        "'VFIO_DEVICE_GET_INFO': expected num_irqs=4, got num_irqs=5".to_string(),
        "'VFIO_DEVICE_GET_INFO': no field no such field in ok {argsz=24, flags=0x1, num_regions=9, num_irqs=5}".to_string(),
        "not reached: VFIO_DEVICE_DETACH_IOMMUFD_PT, IOMMU_DESTROY(ioas) after detach (the scenario stopped after 'VFIO_DEVICE_GET_INFO' (ok {argsz=24, flags=0x1, num_regions=9, num_irqs=5}))".to_string(),
    ];
    c.eq("violations", got, want);

    let mut t = Transcript::new();
    t.record("unload driver", Outcome::Skipped("resident".into()));
    let mut e = Expect::new(&t);
    e.ok_or_skipped("unload driver");
    e.err_or_skipped("unload driver", Errno::ENOENT);
    c.eq("skipped steps satisfy *_or_skipped", e.finish(), Vec::<String>::new());
    c.done()
}

fn ktap_counting() -> CaseResult {
    let mut c = Check::default();
    let run = || -> std::io::Result<(String, bool, (usize, usize))> {
        let mut k = Ktap::start(Vec::new(), 4)?;
        k.report("a", &CaseResult::pass())?;
        k.report("b # not a directive", &CaseResult::fail(vec!["expected X\nand Y".into(), "got Z".into()]))?;
        k.report("c", &CaseResult::skip("port 0000:00:05.0 is not present"))?;
        k.report("d", &CaseResult::pass().with_notes(vec!["a note".into()]))?;
        let ok = k.finish()?;
        let counts = k.counts();
        Ok((String::from_utf8_lossy(&k.into_inner()).into_owned(), ok, counts))
    };
    match run() {
        Ok((out, ok, counts)) => {
            let want = "KTAP version 1\n1..4\nok 1 a\n# expected X\n# and Y\n# got Z\nnot ok 2 b _ not a directive\nok 3 c # SKIP port 0000:00:05.0 is not present\n# a note\nok 4 d\n3 passed, 1 failed\n";
            c.eq("output", out.as_str(), want);
            c.eq("run passed", ok, false);
            c.eq("counts", counts, (3, 1));
            c.that("the summary is the last line", out.lines().last() == Some("3 passed, 1 failed"));
        }
        Err(e) => c.0.push(format!("writing to a Vec failed: {e}")),
    }
    let all_pass = || -> std::io::Result<bool> {
        let mut k = Ktap::start(Vec::new(), 1)?;
        k.report("a", &CaseResult::pass())?;
        k.finish()
    };
    c.eq("all passed", all_pass().ok(), Some(true));
    let short = || -> std::io::Result<(bool, usize)> {
        let mut k = Ktap::start(Vec::new(), 2)?;
        k.report("a", &CaseResult::pass())?;
        Ok((k.finish()?, k.reported()))
    };
    c.eq("fewer results than planned fails", short().ok(), Some((false, 1)));
    c.done()
}

fn harness_panic() -> CaseResult {
    let mut c = Check::default();
    let case = Case::new("boom", || -> CaseResult { panic!("deliberate") });
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let r = harness::run_case(&case);
    panic::set_hook(hook);
    c.eq("verdict", r.verdict, Verdict::Fail);
    c.eq("diagnostic", r.diagnostics, vec!["panicked (a bug in the test program): deliberate".to_string()]);
    let fine = Case::new("fine", CaseResult::pass);
    c.eq("a normal case", harness::run_case(&fine).verdict, Verdict::Pass);
    c.done()
}

fn harness_filter() -> CaseResult {
    let mk = || {
        vec![
            Case::new("slot/cdev_bind_twice: vfio-pci", CaseResult::pass),
            Case::new("slot/cdev_bind_twice: vfio-pci-rs", CaseResult::pass),
            Case::new("switch/cdev_bind_twice: vfio-pci", CaseResult::pass),
            Case::new("module_load_unload", CaseResult::pass),
        ]
    };
    let names = |v: Vec<Case>| v.into_iter().map(|c| c.name).collect::<Vec<_>>();
    let mut c = Check::default();
    c.eq("no filter", names(harness::filter(mk(), None)).len(), 4);
    c.eq(
        "slot/",
        names(harness::filter(mk(), Some("slot/"))),
        vec!["slot/cdev_bind_twice: vfio-pci".to_string(), "slot/cdev_bind_twice: vfio-pci-rs".to_string()],
    );
    c.eq("vfio-pci-rs", names(harness::filter(mk(), Some("vfio-pci-rs"))).len(), 1);
    c.eq("nothing", names(harness::filter(mk(), Some("nope"))).len(), 0);
    c.eq("either of two", names(harness::filter(mk(), Some("switch/,module_"))).len(), 2);
    c.eq("empty parts match nothing", names(harness::filter(mk(), Some(",,"))).len(), 0);
    let shard = |k, n| names(harness::shard(mk(), Some(harness::Shard { index: k, count: n })));
    // A scenario's cases stay together: the two slot/cdev_bind_twice runs are one scenario.
    let all = names(mk());
    c.eq("shard 0/2", shard(0, 2), vec![all[0].clone(), all[1].clone(), all[3].clone()]);
    c.eq("shard 1/2", shard(1, 2), vec![all[2].clone()]);
    c.eq("shard 2/3", shard(2, 3), vec![all[3].clone()]);
    c.eq("shards cover all", shard(0, 3).len() + shard(1, 3).len() + shard(2, 3).len(), 4);
    c.eq("no shard", names(harness::shard(mk(), None)).len(), 4);
    c.done()
}

fn cli() -> CaseResult {
    let parse = |v: &[&str]| crate::parse_args(v.iter().map(|s| s.to_string()));
    let mut c = Check::default();
    match parse(&[]) {
        Ok(a) => {
            c.eq("default filter", a.filter, None);
            c.eq("default timeout", a.timeout, Duration::from_secs(120));
            c.eq("default self-check", a.self_check, false);
        }
        Err(e) => c.0.push(format!("no arguments: {e}")),
    }
    match parse(&["--filter", "slot/", "--timeout", "30"]) {
        Ok(a) => {
            c.eq("filter", a.filter.as_deref(), Some("slot/"));
            c.eq("timeout", a.timeout, Duration::from_secs(30));
        }
        Err(e) => c.0.push(format!("--filter slot/ --timeout 30: {e}")),
    }
    c.eq("self-check", parse(&["--self-check"]).map(|a| a.self_check), Ok(true));
    c.eq("verbose", parse(&["--verbose"]).map(|a| a.verbose), Ok(true));
    c.eq("list", parse(&["--list"]).map(|a| a.list), Ok(true));
    c.eq("noiommu", parse(&["--noiommu"]).map(|a| a.noiommu), Ok(true));
    c.eq("default noiommu", parse(&[]).map(|a| a.noiommu), Ok(false));
    c.eq("demo", parse(&["--demo", "0000:01:00.0"]).map(|a| a.demo), Ok(Some("0000:01:00.0".to_string())));
    c.that("--demo without a value", parse(&["--demo"]).is_err());
    c.that("--filter without a value", parse(&["--filter"]).is_err());
    c.that("--timeout with junk", parse(&["--timeout", "soon"]).is_err());
    c.that("unknown flag", parse(&["--frobnicate"]).is_err());
    c.eq("shard", parse(&["--shard", "1/2"]).map(|a| a.shard), Ok(Some(harness::Shard { index: 1, count: 2 })));
    c.that("--shard 2/2", parse(&["--shard", "2/2"]).is_err());
    c.that("--shard junk", parse(&["--shard", "a/b"]).is_err());
    c.that("--shard without a value", parse(&["--shard"]).is_err());
    c.done()
}

/// PT_INTERP in the running binary's program headers means it needs a
/// dynamic loader, which the busybox guest does not have.
fn static_binary() -> CaseResult {
    let elf = match fs::read("/proc/self/exe") {
        Ok(b) => b,
        Err(e) => return CaseResult::fail(vec![format!("reading /proc/self/exe: {e}")]),
    };
    match elf_interpreter(&elf) {
        Ok(None) => CaseResult::pass(),
        Ok(Some(interp)) => CaseResult::fail(vec![format!(
            "dynamically linked (interpreter {interp}); build with RUSTFLAGS=-Ctarget-feature=+crt-static \
             (tests/.cargo/config.toml only applies when cargo starts inside tests/)"
        )]),
        Err(e) => CaseResult::fail(vec![format!("/proc/self/exe: {e}")]),
    }
}

/// The PT_INTERP path of a little-endian ELF64 image, if it has one.
fn elf_interpreter(elf: &[u8]) -> Result<Option<String>, String> {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| elf.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |o: usize| {
        elf.get(o..o + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    if elf.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err("not a little-endian ELF64 file".into());
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return Err("truncated ELF header".into());
    };
    for i in 0..phnum as usize {
        let ph = phoff as usize + i * phentsize as usize;
        const PT_INTERP: u32 = 3;
        if u32_at(ph) == Some(PT_INTERP) {
            let (Some(off), Some(size)) = (u64_at(ph + 8), u64_at(ph + 32)) else {
                return Err("truncated program header".into());
            };
            let raw = elf.get(off as usize..(off + size) as usize).ok_or("PT_INTERP out of bounds")?;
            return Ok(Some(String::from_utf8_lossy(raw).trim_end_matches('\0').to_string()));
        }
    }
    Ok(None)
}

fn clients_tap() -> CaseResult {
    use crate::clients::{parse_tap, TestVerdict};
    let mut c = Check::default();
    let out = "TAP version 13\n1..4\n# Starting 4 tests from 2 test cases.\n#  RUN  a.b ...\n\
               ok 1 a.b\nnot ok 2 a.c\nok 3 a.d # SKIP mmap() failed: Invalid argument (22)\n\
               ok 4 x.y.z # skip lower case\n# ok 9 not.a.result\nnot ok nonumber\n# Totals: pass:1\n";
    let (plan, results) = parse_tap(out);
    c.eq("plan", plan, Some(4));
    c.eq(
        "results",
        results,
        vec![
            ("a.b".to_string(), TestVerdict::Pass),
            ("a.c".to_string(), TestVerdict::Fail),
            ("a.d".to_string(), TestVerdict::Skip),
            ("x.y.z".to_string(), TestVerdict::Skip),
        ],
    );
    c.eq("no output", parse_tap(""), (None, vec![]));
    c.done()
}

fn bench_init_times() -> CaseResult {
    use crate::bench::init_times;
    let mut c = Check::default();
    let out = "Testing parallel initialization of 1 devices:\n    0000:01:00.0\nTAP version 13\n1..3\n\
               #  RUN           perf.vfio_type1_iommu.init ...\nWall time: 0.112345678s\n\
               Min init time (per device): 0.112345678s\nMax init time (per device): 0.112345678s\n\
               Avg init time (per device): 0.112345678s\n#            OK  perf.vfio_type1_iommu.init\n\
               ok 1 perf.vfio_type1_iommu.init\n#  RUN           perf.iommufd.init ...\n\
               Avg init time (per device): 1.000000042s\nok 2 perf.iommufd.init\n\
               #  RUN           perf.broken.init ...\nAvg init time (per device): 0.5s\nnot ok 3 perf.broken.init\n";
    c.eq(
        "times",
        init_times(out),
        vec![
            ("perf.vfio_type1_iommu.init".to_string(), Duration::from_nanos(112_345_678)),
            ("perf.iommufd.init".to_string(), Duration::from_nanos(1_000_000_042)),
        ],
    );
    c.eq("no output", init_times(""), vec![]);
    c.done()
}

fn selftest_run(exit: i32, results: &[(&str, crate::clients::TestVerdict)]) -> crate::clients::SelftestRun {
    crate::clients::SelftestRun {
        exit: crate::clients::Exit::Code(exit),
        elapsed: Duration::from_secs(1),
        planned: Some(results.len()),
        results: results.iter().map(|(n, v)| (n.to_string(), v.clone())).collect(),
        output: String::new(),
    }
}

fn clients_selftest_rule() -> CaseResult {
    use crate::clients::{compare_selftest, expect_selftest, Exit, TestVerdict::*};
    let mut c = Check::default();
    let reference = selftest_run(0, &[("t.pass", Pass), ("t.skip", Skip)]);
    c.eq("the reference passes", expect_selftest(&reference), Vec::<String>::new());
    c.eq(
        "identical runs match",
        compare_selftest(&reference, &selftest_run(0, &[("t.pass", Pass), ("t.skip", Skip)])),
        vec![],
    );
    c.eq(
        "a test that passed there fails here",
        compare_selftest(&reference, &selftest_run(1, &[("t.pass", Fail), ("t.skip", Skip)])).len(),
        1,
    );
    c.eq(
        "a skip that passes here",
        compare_selftest(&reference, &selftest_run(0, &[("t.pass", Pass), ("t.skip", Pass)])).len(),
        1,
    );
    c.eq(
        "a pass that skips here",
        compare_selftest(&reference, &selftest_run(0, &[("t.pass", Skip), ("t.skip", Skip)])).len(),
        1,
    );
    c.eq("a test that did not run here", compare_selftest(&reference, &selftest_run(1, &[("t.skip", Skip)])).len(), 1);
    let failing = selftest_run(1, &[("t.pass", Pass), ("t.fail", Fail)]);
    c.that("a failed test fails the reference", !expect_selftest(&failing).is_empty());
    c.eq(
        "a test that failed there is not required here",
        compare_selftest(&failing, &selftest_run(1, &[("t.pass", Pass), ("t.fail", Fail)])),
        vec![],
    );
    let mut killed = selftest_run(0, &[("t.pass", Pass), ("t.skip", Skip)]);
    killed.exit = Exit::Killed;
    c.that("a killed program fails the reference", !expect_selftest(&killed).is_empty());
    c.that("a killed program fails the comparison", !compare_selftest(&reference, &killed).is_empty());
    let mut short = selftest_run(0, &[("t.pass", Pass)]);
    short.planned = Some(2);
    c.that("fewer results than planned fail the reference", !expect_selftest(&short).is_empty());
    c.done()
}

fn clients_qemu_rule() -> CaseResult {
    use crate::clients::{compare_qemu, expect_qemu, hot_reset_trace, Exit, QemuRun};
    let mut c = Check::default();
    let log = "QEMU 10.0.13 monitor - type 'help' for more information\n\
               vfio_pci_hot_reset  (0000:01:00.0) one\n\
               vfio_pci_hot_reset_dep_devices \t0000:01:00.0 group 10\n\
               (qemu) 123@1700000000.000001:vfio_pci_hot_reset_result 0000:01:00.0 hot reset: Success\n";
    c.eq(
        "trace lines",
        hot_reset_trace(log),
        vec![
            "vfio_pci_hot_reset (0000:01:00.0) one".to_string(),
            "vfio_pci_hot_reset_dep_devices 0000:01:00.0 group 10".to_string(),
            "vfio_pci_hot_reset_result 0000:01:00.0 hot reset: Success".to_string(),
        ],
    );
    let run = |realized: bool, result: &str, exit: i32| QemuRun {
        exit: Exit::Code(exit),
        elapsed: Duration::from_secs(10),
        realized,
        startup_trace: if realized { vec![format!("vfio_pci_hot_reset_result x hot reset: {result}")] } else { vec![] },
        reset_trace: if realized { vec![format!("vfio_pci_hot_reset_result x hot reset: {result}")] } else { vec![] },
        reset_sent: realized,
        vga_trace: vec![],
        mode: crate::clients::QemuMode::Group,
        output: String::new(),
    };
    let good = run(true, "Success", 0);
    c.eq("a successful run passes", expect_qemu(&good), Vec::<String>::new());
    c.eq("identical runs match", compare_qemu(&good, &run(true, "Success", 0)), vec![]);
    c.that("a failed hot reset fails the reference", !expect_qemu(&run(true, "Invalid argument", 0)).is_empty());
    c.that("a device not realized fails the reference", !expect_qemu(&run(false, "", 1)).is_empty());
    c.that("not realized differs", !compare_qemu(&good, &run(false, "", 1)).is_empty());
    c.that(
        "another hot-reset result differs",
        !compare_qemu(&good, &run(true, "Device or resource busy", 0)).is_empty(),
    );
    let mut killed = run(true, "Success", 0);
    killed.exit = Exit::Killed;
    c.that("a killed QEMU differs", !compare_qemu(&good, &killed).is_empty());
    // x-vga=on: VFIO_DEVICE_RESET at each reset, the monitor's three reads of the legacy ranges.
    let vga = |data: &str| QemuRun {
        startup_trace: vec!["vfio_pci_reset (0000:0a:00.0)".into(), "vfio_pci_reset_flr 0000:0a:00.0".into()],
        reset_trace: vec!["vfio_pci_reset (0000:0a:00.0)".into(), "vfio_pci_reset_flr 0000:0a:00.0".into()],
        vga_trace: ["(0x3cc, 1) = 0x67", "(0xa0000, 4) = 0x0", &format!("(0xa0004, 4) = {data}")]
            .iter()
            .map(|t| format!("vfio_vga_read {t}"))
            .collect(),
        mode: crate::clients::QemuMode::GroupVga,
        ..run(true, "", 0)
    };
    c.eq("an x-vga run passes", expect_qemu(&vga("0x0")), Vec::<String>::new());
    c.eq("identical x-vga runs match", compare_qemu(&vga("0x0"), &vga("0x0")), vec![]);
    c.that("other legacy bytes differ", !compare_qemu(&vga("0x0"), &vga("0x1")).is_empty());
    let mut no_reads = vga("0x0");
    no_reads.vga_trace.truncate(1);
    c.that("a missing legacy read fails the reference", !expect_qemu(&no_reads).is_empty());
    let mut hot = vga("0x0");
    hot.reset_trace = vec!["vfio_pci_hot_reset_result x hot reset: Success".into()];
    c.that("a hot reset instead of VFIO_DEVICE_RESET fails the reference", !expect_qemu(&hot).is_empty());
    c.done()
}

fn clients_echo() -> CaseResult {
    use crate::clients::undo_echo;
    let mut c = Check::default();
    c.eq("quit", undo_echo("(qemu) qququiquit"), "(qemu) quit".to_string());
    c.eq("one letter", undo_echo("(qemu) q"), "(qemu) q".to_string());
    c.eq("not an echo", undo_echo("(qemu) vfio_pci_hot_reset x"), "(qemu) vfio_pci_hot_reset x".to_string());
    c.eq("no prompt", undo_echo("plain line"), "plain line".to_string());
    c.eq("bare prompt", undo_echo("(qemu) "), "(qemu) ".to_string());
    c.done()
}

/// What one module load prints: our suite (a pass, a failure with its assertion, a skip), a
/// foreign suite, and an unrelated message in between.
const KUNIT_LOG: &[&str] = &[
    "KTAP version 1",
    "1..2",
    "    KTAP version 1",
    "    # Subtest: vfio_pci_rs_ids",
    "    # module: vfio_pci_rs",
    "    # speed: normal",
    "    1..3",
    "    # two_fields.speed: normal",
    "    ok 1 two_fields",
    "vfio_pci_rs: some unrelated message",
    "    # refuses: ASSERTION FAILED at src/ids.rs:200",
    "    Expected DynamicId::parse(entry) == None to be true, but is false",
    "    not ok 2 refuses",
    "    ok 3 wide # SKIP not on this kernel",
    "# vfio_pci_rs_ids: pass:1 fail:1 skip:1 total:3",
    "# Totals: pass:1 fail:1 skip:1 total:3",
    "not ok 1 vfio_pci_rs_ids",
    "    KTAP version 1",
    "    # Subtest: other_suite",
    "    1..1",
    "    ok 1 x",
    "ok 2 other_suite",
];

fn kunit_log() -> CaseResult {
    use crate::kunit::{parse_log, KunitCase, KunitSuite};
    let mut c = Check::default();
    let got = parse_log(KUNIT_LOG, "vfio_pci_rs");
    let want = vec![KunitSuite {
        name: "vfio_pci_rs_ids".into(),
        planned: Some(3),
        cases: vec![
            KunitCase { name: "two_fields".into(), verdict: Verdict::Pass, diagnostics: vec![] },
            KunitCase {
                name: "refuses".into(),
                verdict: Verdict::Fail,
                diagnostics: vec![
                    "refuses: ASSERTION FAILED at src/ids.rs:200".into(),
                    "Expected DynamicId::parse(entry) == None to be true, but is false".into(),
                ],
            },
            KunitCase { name: "wide".into(), verdict: Verdict::Skip("not on this kernel".into()), diagnostics: vec![] },
        ],
        result: Some(Verdict::Fail),
    }];
    c.eq("suites", got, want);
    // A suite cut short: no more cases, no result line.
    let short = parse_log(&KUNIT_LOG[..10], "vfio_pci_rs");
    c.eq("cut short: one suite", short.len(), 1);
    c.eq("cut short: its cases", short.first().map(|s| s.cases.len()), Some(1));
    c.eq("cut short: no result", short.first().map(|s| s.result.clone()), Some(None));
    c.eq("other prefix", parse_log(KUNIT_LOG, "other").len(), 1);
    c.done()
}

fn kunit_judge() -> CaseResult {
    use crate::kunit::judge;
    let mut c = Check::default();
    let names = |v: &[(String, CaseResult)]| v.iter().map(|(n, r)| (n.clone(), r.verdict.clone())).collect::<Vec<_>>();
    let all = judge(Ok(vec!["vfio_pci_rs_ids".into()]), KUNIT_LOG, "vfio_pci_rs");
    c.eq(
        "cases of a complete log",
        names(&all),
        vec![
            ("kunit/vfio_pci_rs_ids/two_fields".into(), Verdict::Pass),
            ("kunit/vfio_pci_rs_ids/refuses".into(), Verdict::Fail),
            ("kunit/vfio_pci_rs_ids/wide".into(), Verdict::Skip("not on this kernel".into())),
        ],
    );
    // Expected but absent; a second suite the log lacks.
    let missing = judge(Ok(vec!["vfio_pci_rs_ids".into(), "vfio_pci_rs_vf_token".into()]), KUNIT_LOG, "vfio_pci_rs");
    c.that(
        "a missing suite fails",
        missing.iter().any(|(n, r)| n == "kunit/vfio_pci_rs_vf_token" && r.verdict == Verdict::Fail),
    );
    // Cut short: the case that ran counts, the suite's end fails.
    let short = judge(Ok(vec!["vfio_pci_rs_ids".into()]), &KUNIT_LOG[..10], "vfio_pci_rs");
    c.eq(
        "cut short",
        names(&short),
        vec![
            ("kunit/vfio_pci_rs_ids/two_fields".into(), Verdict::Pass),
            ("kunit/vfio_pci_rs_ids: the suite ran to its end".into(), Verdict::Fail),
        ],
    );
    // The suite failed with every case passing (suite init).
    let init = ["    # Subtest: vfio_pci_rs_a", "    1..1", "    ok 1 x", "not ok 1 vfio_pci_rs_a"];
    c.eq(
        "suite init failure",
        names(&judge(Ok(vec!["vfio_pci_rs_a".into()]), &init, "vfio_pci_rs")),
        vec![
            ("kunit/vfio_pci_rs_a/x".into(), Verdict::Pass),
            ("kunit/vfio_pci_rs_a: the suite ran to its end".into(), Verdict::Fail),
        ],
    );
    // No suite in the module; a misnamed one; an unreadable module file.
    let none: [&str; 0] = [];
    c.eq(
        "no suite",
        names(&judge(Ok(vec![]), &none, "vfio_pci_rs")),
        vec![("kunit: the module has KUnit suites".into(), Verdict::Fail)],
    );
    c.eq(
        "misnamed",
        names(&judge(Ok(vec!["ids".into()]), &none, "vfio_pci_rs")),
        vec![("kunit/ids".into(), Verdict::Fail)],
    );
    c.eq(
        "unreadable",
        names(&judge(Err("x".into()), &none, "vfio_pci_rs")),
        vec![("kunit: the module's suites".into(), Verdict::Fail)],
    );
    c.done()
}

fn kunit_kmsg() -> CaseResult {
    let mut c = Check::default();
    let records = vec![
        "6,1021,5000,-;    ok 1 two_fields\n".to_string(),
        "3,1022,5001,-;    # a: ASSERTION FAILED at x.rs:1\\x0a    Expected a \\x5c b\\x0a== c to be true\n SUBSYSTEM=x\n".to_string(),
        "no separator".to_string(),
    ];
    c.eq(
        "lines",
        crate::kunit::kmsg_lines(&records),
        vec![
            "    ok 1 two_fields".to_string(),
            "    # a: ASSERTION FAILED at x.rs:1".into(),
            "    Expected a \\ b".into(),
            "    == c to be true".into(),
        ],
    );
    c.done()
}

/// Reads the real module file when $VFIO_PCI_RS_KO names one (lint.sh sets it), else skips.
fn kunit_elf() -> CaseResult {
    let mut c = Check::default();
    c.that("not ELF is refused", crate::kunit::suites_in_module(b"hello").is_err());
    c.that("a truncated header is refused", crate::kunit::suites_in_module(b"\x7fELF\x02\x01\x01").is_err());
    let Some(ko) = std::env::var_os("VFIO_PCI_RS_KO") else {
        return if c.0.is_empty() { CaseResult::skip("VFIO_PCI_RS_KO is not set") } else { c.done() };
    };
    match fs::read(&ko) {
        Err(e) => c.0.push(format!("reading {ko:?}: {e}")),
        Ok(image) => match crate::kunit::suites_in_module(&image) {
            Err(e) => c.0.push(e),
            Ok(names) => {
                c.that("the module has the ids suite", names.iter().any(|n| n == "vfio_pci_rs_ids"));
                c.that("every suite is named vfio_pci_rs*", names.iter().all(|n| n.starts_with(crate::kunit::PREFIX)));
                return c.done().with_notes(vec![format!("suites: {}", names.join(", "))]);
            }
        },
    }
    c.done()
}
