//! Real clients: programs written by others against the VFIO uAPI, run on
//! one function bound to the C vfio-pci (the reference) and then on the same
//! function bound to vfio-pci-rs, in the same boot.
//!
//! - The kernel tree's VFIO selftests (tools/testing/selftests/vfio, built by
//!   scripts/clients.sh into /opt/vfio-selftests): kselftest-harness programs
//!   that print one TAP line per test.  The reference case passes when every
//!   test passes or skips; the vfio-pci-rs case passes when every test that
//!   passed on vfio-pci passes on vfio-pci-rs and the skips are the same.
//!   vfio_pci_sriov_uapi_test creates a VF on the igb PF (the driver's
//!   `enable_sriov` is on for its run) and opens PF and VF with matching and
//!   mismatching VF tokens; the suite's copy of it takes the driver its VF
//!   must be bound to from VFIO_SELFTESTS_VF_DRIVER, not a literal "vfio-pci".
//! - QEMU itself (the toolchain root's, shared read-only over 9p with the tag
//!   `toolusr` and run in a chroot), with `-device vfio-pci,host=BDF`, in the
//!   legacy group mode and in the iommufd (cdev) mode.  The machine is
//!   created stopped (`-S`: no guest code runs, so the run is deterministic),
//!   which still realizes the device and resets the machine once; then the
//!   monitor asks for a `system_reset` and `quit`.  On a function without FLR
//!   each machine reset takes QEMU's PCI hot-reset path, traced with
//!   `-trace vfio_pci_hot_reset*`.  The reference passes when the device is
//!   realized, every hot reset (at start-up and at system_reset) reports
//!   `Success` and QEMU exits 0; vfio-pci-rs passes when its run looks the
//!   same: realized, the same hot-reset trace lines, the same exit status.
//!   On the VGA function QEMU also runs with `x-vga=on`, which needs the VGA region (its info
//!   checked at realize, the legacy ranges mapped into the machine's VGA space): there the
//!   monitor reads port 0x3cc and 8 bytes at 0xa0000 (`i`, `xp`), traced as vfio_vga_read,
//!   whose offsets and values must be the same on both drivers, and each reset is a
//!   VFIO_DEVICE_RESET (the function has no FLR and no PM reset, so QEMU makes no hot reset).
//!
//! - rust-vmm's vfio-ioctls, the library cloud-hypervisor uses, in a program
//!   of the suite's (vmm_client.rs), through the IOMMUFD/cdev path and the
//!   legacy container path; vfio-pci-rs passes when every step has the
//!   verdict and the observations it has on vfio-pci.
//!
//! Every run has a deadline; a client still running then is killed and the
//! case reported not ok, with the tail of the client's output.

use crate::driver::{Driver, World, REFERENCE_NAME, RUST_NAME};
use crate::harness::{self, Case};
use crate::ktap::CaseResult;
use crate::scenarios::Site;
use crate::sysfs;
use crate::vmm_client::{self, VmmMode};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

/// Where the initramfs holds the selftests.
pub const SELFTESTS_DIR: &str = "/opt/vfio-selftests";
/// The 9p mount tag of the toolchain root's /usr (scripts/guest.sh).
const TOOLCHAIN_TAG: &str = "toolusr";
/// The chroot QEMU runs in: the shared /usr plus /proc, /sys, /dev and /tmp.
const QEMU_ROOT: &str = "/run/vfio-clients/root";
const QEMU_BIN: &str = "/usr/bin/qemu-system-x86_64";
/// Client output files.
const LOG_DIR: &str = "/tmp/vfio-clients";

/// Deadlines.  Both stay under the harness's per-case watchdog (120 s by
/// default), so a hung client is killed and reported here rather than taking
/// the whole run down.  Measured under TCG: a selftest takes 1-3 s, a QEMU
/// run about 20-35 s (QEMU itself runs emulated inside the emulated guest).
/// On a slower kernel (a longer case timeout: the kasan kernel's) they scale
/// with it ([`harness::scaled`]): there `vfio_dma_mapping_test` took 54.5 s
/// under vfio-pci and was killed at 60 s under vfio-pci-rs, 25 of its 30
/// tests done, and QEMU's runs took 80-90 s.
const SELFTEST_DEADLINE: Duration = Duration::from_secs(60);
const QEMU_DEADLINE: Duration = Duration::from_secs(100);
/// QEMU's output has settled when it has not grown for this long.
const QEMU_QUIET: Duration = Duration::from_secs(2);
/// How long QEMU may take to start tracing a hot reset after system_reset.
const QEMU_REACT: Duration = Duration::from_secs(20);
/// Lines of a client's output shown when its case fails.
const TAIL_LINES: usize = 40;

/// One client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    /// A selftest program of /opt/vfio-selftests.
    Selftest(&'static str),
    /// QEMU with the function as `-device vfio-pci`.
    Qemu(QemuMode),
    /// The vfio-ioctls client on every function of the site.
    VfioIoctls(VmmMode),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QemuMode {
    /// The group/container model: `-device vfio-pci,host=BDF`.
    Group,
    /// The cdev model: `-object iommufd` and `iommufd=` on the device.
    Iommufd,
    /// The group model with the legacy VGA ranges: `-device vfio-pci,host=BDF,x-vga=on`.
    GroupVga,
}

impl Client {
    /// Whether the client creates VFs on the function: the driver's
    /// `enable_sriov` is turned on for its run.
    fn creates_vfs(&self) -> bool {
        matches!(self, Client::Selftest("vfio_pci_sriov_uapi_test"))
    }

    pub fn name(&self) -> String {
        match self {
            Client::Selftest(t) => t.to_string(),
            Client::Qemu(QemuMode::Group) => "qemu-group".into(),
            Client::Qemu(QemuMode::Iommufd) => "qemu-iommufd".into(),
            Client::Qemu(QemuMode::GroupVga) => "qemu-group-x-vga".into(),
            Client::VfioIoctls(m) => m.name(),
        }
    }
}

/// Which clients run on which topology's first function.
pub const PLAN: &[(&str, Client)] = &[
    ("slot", Client::Selftest("vfio_pci_device_test")),
    ("slot", Client::Selftest("vfio_dma_mapping_test")),
    ("slot", Client::Selftest("vfio_dma_mapping_mmio_test")),
    ("slot", Client::Selftest("vfio_iommufd_setup_test")),
    ("slot", Client::Selftest("vfio_pci_device_init_perf_test")),
    ("slot", Client::Qemu(QemuMode::Group)),
    ("slot", Client::Qemu(QemuMode::Iommufd)),
    ("slot", Client::VfioIoctls(VmmMode::Cdev)),
    ("slot", Client::VfioIoctls(VmmMode::Group)),
    ("sriov", Client::Selftest("vfio_pci_device_test")),
    ("sriov", Client::Selftest("vfio_pci_sriov_uapi_test")),
    ("multifunction", Client::Qemu(QemuMode::Group)),
    ("multifunction", Client::Qemu(QemuMode::Iommufd)),
    ("multifunction", Client::VfioIoctls(VmmMode::Cdev)),
    ("multifunction", Client::VfioIoctls(VmmMode::Group)),
    // Two IOMMU groups under one bus reset: one iommufd owns both (cdev), or
    // one container holds both groups.
    ("multigroup", Client::VfioIoctls(VmmMode::Cdev)),
    ("multigroup", Client::VfioIoctls(VmmMode::Group)),
    ("vga", Client::Qemu(QemuMode::GroupVga)),
];

/// Where one plan entry runs, as the suite discovered it.
pub enum Place<'a> {
    Ready(&'a Site),
    Skip(String),
    Broken(String),
}

/// What the cases share: the drivers, the resting state, and the runs so
/// far (the vfio-pci-rs case compares against the reference's run).
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub world: &'a World,
    pub reference: &'a Driver,
    pub rust: &'a Driver,
    pub runs: &'a Runs,
}

/// The cache of runs, keyed by (topology, client, rust).
#[derive(Default)]
pub struct Runs(RefCell<HashMap<(String, Client, bool), Rc<Run>>>);

/// One client run on one driver.
#[derive(Debug)]
pub struct Run {
    pub driver: &'static str,
    pub bdf: String,
    /// Binding the function and starting the client; Err: it never ran.
    pub outcome: Result<Outcome, String>,
    /// Problems restoring the resting state around the run.
    pub notes: Vec<String>,
}

#[derive(Debug)]
pub enum Outcome {
    Selftest(SelftestRun),
    Qemu(QemuRun),
}

/// How a process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// Still running at the deadline: killed.
    Killed,
}

impl Exit {
    fn of(status: ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(s)) => Exit::Signal(s),
            (None, None) => Exit::Code(-1),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
            Exit::Killed => write!(f, "still running at the deadline, killed"),
        }
    }
}

// ------------------------------------------------------------- selftests

/// A kselftest result line's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TestVerdict {
    Pass,
    Fail,
    Skip,
}

impl TestVerdict {
    fn word(&self) -> &'static str {
        match self {
            TestVerdict::Pass => "pass",
            TestVerdict::Fail => "FAIL",
            TestVerdict::Skip => "skip",
        }
    }
}

#[derive(Debug)]
pub struct SelftestRun {
    pub exit: Exit,
    pub elapsed: Duration,
    /// The plan (`1..N`), if printed.
    pub planned: Option<usize>,
    /// Every `ok`/`not ok` line, in order: (test name, verdict).
    pub results: Vec<(String, TestVerdict)>,
    pub output: String,
}

impl SelftestRun {
    fn count(&self, v: TestVerdict) -> usize {
        self.results.iter().filter(|(_, r)| *r == v).count()
    }

    fn verdict_of(&self, name: &str) -> Option<&TestVerdict> {
        self.results.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    fn summary(&self) -> String {
        format!(
            "pass {} fail {} skip {} of {} planned, {}, {:.1} s",
            self.count(TestVerdict::Pass),
            self.count(TestVerdict::Fail),
            self.count(TestVerdict::Skip),
            self.planned.map_or_else(|| "?".to_string(), |n| n.to_string()),
            self.exit,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Parse kselftest TAP output: the plan and every top-level result line
/// (`ok N name`, `not ok N name`, either with an optional `# SKIP ...`).
pub fn parse_tap(output: &str) -> (Option<usize>, Vec<(String, TestVerdict)>) {
    let mut planned = None;
    let mut results = Vec::new();
    for line in output.lines() {
        if let Some(n) = line.strip_prefix("1..") {
            if let Ok(n) = n.trim().parse() {
                planned = Some(n);
            }
            continue;
        }
        let (ok, rest) = if let Some(r) = line.strip_prefix("ok ") {
            (true, r)
        } else if let Some(r) = line.strip_prefix("not ok ") {
            (false, r)
        } else {
            continue;
        };
        // "N name [# DIRECTIVE ...]"
        let mut words = rest.splitn(2, ' ');
        if words.next().and_then(|n| n.parse::<u64>().ok()).is_none() {
            continue;
        }
        let tail = words.next().unwrap_or("");
        let (name, directive) = match tail.find(" # ") {
            Some(i) => (&tail[..i], tail[i + 3..].trim()),
            None => (tail, ""),
        };
        let skip = directive.len() >= 4 && directive[..4].eq_ignore_ascii_case("skip");
        let verdict = match (ok, skip) {
            (_, true) => TestVerdict::Skip,
            (true, false) => TestVerdict::Pass,
            (false, false) => TestVerdict::Fail,
        };
        results.push((name.trim().to_string(), verdict));
    }
    (planned, results)
}

/// The environment variable the suite's copy of vfio_pci_sriov_uapi_test
/// reads for the driver its VF must be bound to (scripts/clients.sh).
const VF_DRIVER_ENV: &str = "VFIO_SELFTESTS_VF_DRIVER";

/// Runs selftest `test` with `args` and then `bdf` as its arguments, its
/// output to `log`, until it exits or its deadline; `vf_driver` is the
/// driver the SR-IOV test expects its VFs on.
pub(crate) fn run_selftest(
    test: &str,
    args: &[&str],
    vf_driver: Option<&str>,
    bdf: &str,
    log: &Path,
) -> Result<SelftestRun, String> {
    let bin = Path::new(SELFTESTS_DIR).join(test);
    sysfs::exists(&bin).map_err(|e| format!("{}: {e} (did scripts/clients.sh build it?)", bin.display()))?;
    let out = File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
    let t0 = Instant::now();
    let mut child = Command::new(&bin)
        .args(args)
        .arg(bdf)
        .envs(vf_driver.map(|d| (VF_DRIVER_ENV, d)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let exit = wait_deadline(&mut child, t0 + harness::scaled(SELFTEST_DEADLINE));
    let elapsed = t0.elapsed();
    let output = read_log(log);
    let (planned, results) = parse_tap(&output);
    Ok(SelftestRun { exit, elapsed, planned, results, output })
}

/// The reference's own rule: the program ran to its end, printed its plan
/// and a result for every planned test, and no test failed.
pub(crate) fn expect_selftest(r: &SelftestRun) -> Vec<String> {
    let mut f = Vec::new();
    if r.exit != Exit::Code(0) {
        f.push(format!("the program did not succeed: {}", r.exit));
    }
    match r.planned {
        None => f.push("no TAP plan (1..N) in the output".into()),
        Some(n) if n != r.results.len() => f.push(format!("planned {n} tests, {} results", r.results.len())),
        Some(_) => {}
    }
    if r.results.is_empty() {
        f.push("no test results in the output".into());
    }
    for (name, v) in &r.results {
        if *v == TestVerdict::Fail {
            f.push(format!("{name}: failed"));
        }
    }
    f
}

/// vfio-pci-rs against the reference: every test that passed there passes
/// here, and a test skips here iff it skipped there.
pub(crate) fn compare_selftest(c: &SelftestRun, r: &SelftestRun) -> Vec<String> {
    let mut f = Vec::new();
    if r.exit == Exit::Killed {
        f.push(format!("{RUST_NAME}: {}", r.exit));
    }
    for (name, cv) in &c.results {
        let rv = r.verdict_of(name);
        let bad = match cv {
            TestVerdict::Pass => rv != Some(&TestVerdict::Pass),
            TestVerdict::Skip => rv != Some(&TestVerdict::Skip),
            TestVerdict::Fail => false,
        };
        if bad {
            f.push(format!(
                "{name}: {} on {REFERENCE_NAME}, {} on {RUST_NAME}",
                cv.word(),
                rv.map_or("not run", |v| v.word())
            ));
        }
    }
    for (name, v) in &r.results {
        // (A test that passed on the reference was reported above.)
        let there = c.verdict_of(name);
        if *v == TestVerdict::Skip && matches!(there, None | Some(TestVerdict::Fail)) {
            f.push(format!("{name}: skipped on {RUST_NAME} only"));
        }
    }
    f
}

/// The two runs side by side: one line per test.
fn selftest_table(c: &SelftestRun, r: &SelftestRun, all: bool) -> Vec<String> {
    let mut names: Vec<&str> = c.results.iter().map(|(n, _)| n.as_str()).collect();
    for (n, _) in &r.results {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    let mut lines = vec![format!("{REFERENCE_NAME}: {}", c.summary()), format!("{RUST_NAME}: {}", r.summary())];
    let mut shown = 0;
    for n in &names {
        let cv = c.verdict_of(n).map_or("-", |v| v.word());
        let rv = r.verdict_of(n).map_or("-", |v| v.word());
        if all || cv != rv {
            lines.push(format!("  {cv:>4} | {rv:>4}  {n}"));
            shown += 1;
        }
    }
    if shown > 0 {
        lines.insert(2, format!("  {:>4} | {:>4}  test", "C", "Rust"));
    }
    lines
}

// ------------------------------------------------------------------ QEMU

#[derive(Debug)]
pub struct QemuRun {
    pub exit: Exit,
    pub elapsed: Duration,
    /// QEMU reached its monitor prompt with the device created.
    pub realized: bool,
    /// The vfio_pci_hot_reset* trace lines before the system_reset, and
    /// those after it (whitespace collapsed).
    pub startup_trace: Vec<String>,
    pub reset_trace: Vec<String>,
    /// system_reset was sent (QEMU was still running then).
    pub reset_sent: bool,
    /// With `x-vga=on`: the vfio_vga_read trace lines of the monitor's reads of the legacy
    /// ranges (port 0x3cc, memory 0xa0000), whitespace collapsed; empty otherwise.
    pub vga_trace: Vec<String>,
    /// The mode QEMU ran in.
    pub mode: QemuMode,
    pub output: String,
}

impl QemuRun {
    fn results(trace: &[String]) -> Vec<&str> {
        trace.iter().filter_map(|l| l.split_once("hot reset: ").map(|(_, r)| r)).collect()
    }

    fn summary(&self) -> String {
        format!(
            "realized {}, start-up hot resets {:?}, system_reset hot resets {:?}, {}, {:.1} s",
            if self.realized { "yes" } else { "no" },
            QemuRun::results(&self.startup_trace),
            QemuRun::results(&self.reset_trace),
            self.exit,
            self.elapsed.as_secs_f64()
        )
    }
}

/// The reset trace lines of `text` (a QEMU log: vfio_pci_hot_reset*, and
/// vfio_pci_reset* where traced), normalized: from the trace point's name on (a log-backend prefix `PID@TIME:` and a monitor prompt on
/// the same line are dropped), whitespace collapsed.
pub fn hot_reset_trace(text: &str) -> Vec<String> {
    trace_of(text, &["vfio_pci_hot_reset", "vfio_pci_reset"])
}

/// The lines of `text` (a QEMU log) of the trace points whose names start with one of `names`,
/// normalized as [`hot_reset_trace`] says.
pub fn trace_of(text: &str, names: &[&str]) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            names
                .iter()
                .filter_map(|n| l.find(n))
                .min()
                .map(|i| l[i..].split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect()
}

/// The monitor commands of an `x-vga=on` run, before its system_reset. QEMU maps the VGA ranges
/// of a device only while its command register enables I/O and memory, which with `-S` no
/// firmware has done: so the device (at 00:02.0) gets its BARs placed high (BAR0 0xe0000000,
/// BAR2 0xe1000000, away from the legacy memory) and I/O and memory enabled through the
/// configuration ports 0xcf8/0xcfc; then QEMU reads the legacy I/O port 0x3cc (the VGA's
/// miscellaneous output register) and 8 bytes of the legacy memory at 0xa0000, each through
/// the VGA region of the device file (vfio_vga_read).
const VGA_MONITOR_COMMANDS: [&str; 8] = [
    "o /w 0xcf8 0x80001010",
    "o /w 0xcfc 0xe0000000",
    "o /w 0xcf8 0x80001018",
    "o /w 0xcfc 0xe1000000",
    "o /w 0xcf8 0x80001004",
    "o /h 0xcfc 0x0003",
    "i /b 0x3cc",
    "xp /8xb 0xa0000",
];

/// Mount what QEMU's chroot needs, once: the toolchain root's /usr over 9p
/// (read-only), the merged-/usr links, /proc, /sys, /dev and a /tmp.
fn prepare_qemu_root() -> Result<(), String> {
    let root = Path::new(QEMU_ROOT);
    if root.join("usr/bin/qemu-system-x86_64").exists() {
        return Ok(());
    }
    for d in ["usr", "proc", "sys", "dev", "tmp"] {
        fs::create_dir_all(root.join(d)).map_err(|e| format!("mkdir {}/{d}: {e}", root.display()))?;
    }
    for l in ["bin", "sbin", "lib", "lib64"] {
        let link = root.join(l);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("usr/{l}"), &link)
                .map_err(|e| format!("symlink {}: {e}", link.display()))?;
        }
    }
    let mounts: [&[&str]; 5] = [
        &["-t", "9p", "-o", "trans=virtio,version=9p2000.L,ro", TOOLCHAIN_TAG, "usr"],
        &["-t", "proc", "proc", "proc"],
        &["-t", "sysfs", "sysfs", "sys"],
        &["--bind", "/dev", "dev"],
        &["-t", "tmpfs", "tmpfs", "tmp"],
    ];
    for m in mounts {
        let (target, args) = m.split_last().ok_or("empty mount")?;
        let out = Command::new("mount")
            .args(args)
            .arg(root.join(target))
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount {} on {}/{target}: {} (is the toolchain root shared with mount tag {TOOLCHAIN_TAG}?)",
                args.join(" "),
                root.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    if !root.join("usr/bin/qemu-system-x86_64").exists() {
        return Err(format!("{QEMU_BIN} is not in the shared toolchain root"));
    }
    Ok(())
}

/// A running QEMU whose stdout and stderr go to one log file.
struct Qemu {
    child: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
    deadline: Instant,
}

enum Waited {
    Seen,
    Exited(Exit),
    Deadline,
}

impl Qemu {
    /// Poll the log until `cond` holds on it, QEMU exits or `until` passes.
    fn wait_for(&mut self, until: Instant, cond: impl Fn(&str) -> bool) -> Waited {
        loop {
            if cond(&read_log(&self.log)) {
                return Waited::Seen;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Waited::Exited(Exit::of(status));
            }
            if Instant::now() >= until.min(self.deadline) {
                return Waited::Deadline;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until the log has not grown for QEMU_QUIET (or QEMU exits, or
    /// the deadline).
    fn settle(&mut self) {
        let mut len = read_log(&self.log).len();
        loop {
            let until = Instant::now() + QEMU_QUIET;
            match self.wait_for(until, |t| t.len() != len) {
                Waited::Seen => len = read_log(&self.log).len(),
                Waited::Exited(_) | Waited::Deadline => return,
            }
        }
    }

    fn send(&mut self, command: &str) -> bool {
        match self.stdin.as_mut() {
            Some(s) => s.write_all(format!("{command}\n").as_bytes()).and_then(|()| s.flush()).is_ok(),
            None => false,
        }
    }

    /// Wait for the exit until the deadline; kill QEMU after it.
    fn finish(mut self) -> Exit {
        drop(self.stdin.take());
        wait_deadline(&mut self.child, self.deadline)
    }
}

const PROMPT: &str = "(qemu)";

fn run_qemu(mode: QemuMode, bdf: &str, log: &Path) -> Result<QemuRun, String> {
    prepare_qemu_root()?;
    let out = File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
    let mut cmd = Command::new("chroot");
    cmd.arg(QEMU_ROOT).arg(QEMU_BIN);
    cmd.args(["-accel", "tcg", "-M", "q35", "-m", "128", "-S", "-nodefaults", "-display", "none"]);
    cmd.args(["-serial", "none", "-monitor", "stdio", "-trace", "vfio_pci_hot_reset*"]);
    match mode {
        QemuMode::Group => {
            cmd.args(["-device", &format!("vfio-pci,host={bdf}")]);
        }
        QemuMode::Iommufd => {
            cmd.args(["-object", "iommufd,id=ifd0", "-device", &format!("vfio-pci,host={bdf},iommufd=ifd0")]);
        }
        QemuMode::GroupVga => {
            // The function has neither FLR nor PM reset: QEMU resets it with
            // VFIO_DEVICE_RESET (vfio_pci_reset_flr), not with a hot reset.
            cmd.args(["-trace", "vfio_pci_reset*", "-trace", "vfio_vga_read"]);
            cmd.args(["-device", &format!("vfio-pci,host={bdf},x-vga=on,addr=02.0")]);
        }
    }
    let t0 = Instant::now();
    let mut child = cmd
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("starting QEMU: {e}"))?;
    let stdin = child.stdin.take();
    let mut q = Qemu { child, stdin, log: log.to_path_buf(), deadline: t0 + harness::scaled(QEMU_DEADLINE) };

    // Start-up: the monitor prompt (the machine is created and reset by then),
    // then the output settles (a start-up hot reset may still be printing).
    // After system_reset: the first new trace line, then the output settles.
    // A reset that prints nothing (or a result-less attempt) costs QEMU_REACT.
    let mut realized = false;
    let mut reset_sent = false;
    let mut early_exit = None;
    let mut startup_len = 0;
    match q.wait_for(q.deadline, |t| t.contains(PROMPT)) {
        Waited::Seen => {
            realized = true;
            q.settle();
            startup_len = hot_reset_trace(&read_log(&q.log)).len();
            if mode == QemuMode::GroupVga {
                for c in VGA_MONITOR_COMMANDS {
                    q.send(c);
                }
                let _ = q.wait_for(Instant::now() + harness::scaled(QEMU_REACT), |t| {
                    trace_of(t, &["vfio_vga_read"]).len() >= 3
                });
                q.settle();
            }
            reset_sent = q.send("system_reset");
            if reset_sent {
                let _ = q
                    .wait_for(Instant::now() + harness::scaled(QEMU_REACT), |t| hot_reset_trace(t).len() > startup_len);
                q.settle();
            }
            q.send("quit");
        }
        Waited::Exited(e) => early_exit = Some(e),
        Waited::Deadline => {}
    }
    let exit = match early_exit {
        Some(e) => e,
        None => q.finish(),
    };
    let elapsed = t0.elapsed();
    let output = read_log(log);
    let trace = hot_reset_trace(&output);
    let split = startup_len.min(trace.len());
    Ok(QemuRun {
        exit,
        elapsed,
        realized,
        startup_trace: trace[..split].to_vec(),
        reset_trace: trace[split..].to_vec(),
        reset_sent,
        vga_trace: trace_of(&output, &["vfio_vga_read"]),
        mode,
        output,
    })
}

pub(crate) fn expect_qemu(r: &QemuRun) -> Vec<String> {
    let mut f = Vec::new();
    if !r.realized {
        f.push("QEMU never reached its monitor: the device was not realized".into());
    } else if !r.reset_sent {
        f.push("the monitor did not take system_reset (QEMU's stdin closed)".into());
    }
    for (when, trace) in [("at start-up", &r.startup_trace), ("at system_reset", &r.reset_trace)] {
        let results = QemuRun::results(trace);
        if r.mode == QemuMode::GroupVga {
            // No FLR, no PM reset: VFIO_DEVICE_RESET, never a hot reset.
            if !trace.iter().any(|l| l.starts_with("vfio_pci_reset_flr")) || !results.is_empty() {
                f.push(format!("{when}: not one VFIO_DEVICE_RESET and no hot reset: {trace:?}"));
            }
            continue;
        }
        if results.is_empty() {
            f.push(format!("no hot reset {when}"));
        }
        for res in results {
            if res != "Success" {
                f.push(format!("hot reset {when}: {res}"));
            }
        }
    }
    if r.mode == QemuMode::GroupVga {
        // 1 byte at 0x3cc, then the 8 bytes at 0xa0000 (in accesses of up to 4 bytes).
        let offsets: Vec<&str> = r.vga_trace.iter().filter_map(|l| l.split_whitespace().nth(1)).collect();
        let legacy_memory = offsets.len() >= 2 && offsets[1..].iter().all(|o| o.starts_with("(0xa000"));
        if offsets.first() != Some(&"(0x3cc,") || !legacy_memory || r.output.contains("failed:") {
            f.push(format!("the monitor's reads of the legacy ranges through the VGA region: {:?}", r.vga_trace));
        }
    }
    if r.exit != Exit::Code(0) {
        f.push(format!("QEMU: {}", r.exit));
    }
    f
}

pub(crate) fn compare_qemu(c: &QemuRun, r: &QemuRun) -> Vec<String> {
    let mut f = Vec::new();
    if c.realized != r.realized {
        f.push(format!("realized: {} on {REFERENCE_NAME}, {} on {RUST_NAME}", c.realized, r.realized));
    }
    for (when, ct, rt) in
        [("start-up", &c.startup_trace, &r.startup_trace), ("system_reset", &c.reset_trace, &r.reset_trace)]
    {
        if ct != rt {
            f.push(format!("{when} hot-reset trace differs:"));
            f.extend(ct.iter().map(|l| format!("  {REFERENCE_NAME}: {l}")));
            f.extend(rt.iter().map(|l| format!("  {RUST_NAME}: {l}")));
        }
    }
    if c.vga_trace != r.vga_trace {
        f.push("the reads of the legacy VGA ranges differ:".into());
        f.extend(c.vga_trace.iter().map(|l| format!("  {REFERENCE_NAME}: {l}")));
        f.extend(r.vga_trace.iter().map(|l| format!("  {RUST_NAME}: {l}")));
    }
    if c.exit != r.exit {
        f.push(format!("QEMU: {} on {REFERENCE_NAME}, {} on {RUST_NAME}", c.exit, r.exit));
    }
    f
}

// ----------------------------------------------------------------- runs

/// Wait for `child` until `deadline`, then kill it.
pub(crate) fn wait_deadline(child: &mut Child, deadline: Instant) -> Exit {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Exit::of(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Exit::Killed;
            }
        }
    }
}

/// A log file's text (lossy); empty when it cannot be read.
pub(crate) fn read_log(path: &Path) -> String {
    fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// The last `n` lines of `text`, terminal escape sequences and the
/// monitor's line-editing noise removed.
fn tail(text: &str, n: usize) -> Vec<String> {
    let clean: Vec<String> = text
        .lines()
        .map(|l| {
            let mut s = String::new();
            let mut chars = l.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '\u{1b}' {
                    // CSI: ESC [ params final-byte
                    if chars.peek() == Some(&'[') {
                        chars.next();
                        for c in chars.by_ref() {
                            if c.is_ascii_alphabetic() {
                                break;
                            }
                        }
                    }
                } else if !c.is_control() || c == '\t' {
                    s.push(c);
                }
            }
            undo_echo(&s)
        })
        .collect();
    let start = clean.len().saturating_sub(n);
    clean[start..].to_vec()
}

/// The monitor echoes a typed command by redrawing the line after each
/// character: with the escapes gone, "(qemu) quit" reads "(qemu) qququiquit".
/// Such a line (its text after the prompt is the concatenation of the
/// command's prefixes) is shown as the command.
pub(crate) fn undo_echo(line: &str) -> String {
    let Some(rest) = line.strip_prefix("(qemu) ") else {
        return line.to_string();
    };
    let chars: Vec<char> = rest.chars().collect();
    // n characters typed leave 1 + 2 + ... + n characters.
    let mut n = 0;
    while n * (n + 1) / 2 < chars.len() {
        n += 1;
    }
    if n == 0 || n * (n + 1) / 2 != chars.len() {
        return line.to_string();
    }
    let command = &chars[chars.len() - n..];
    let mut at = 0;
    for k in 1..=n {
        if chars[at..at + k] != command[..k] {
            return line.to_string();
        }
        at += k;
    }
    format!("(qemu) {}", command.iter().collect::<String>())
}

/// Bind every function of `site` to `driver` through driver_override (a hot
/// reset needs every function it reaches bound to a VFIO driver), run
/// `client` on the first one, restore the resting state.
fn run_on(env: &Env, driver: &Driver, site: &Site, topo: &str, client: Client) -> Run {
    let bdf = site.functions[0].as_str();
    let mut notes = Vec::new();
    let before = env.world.restore();
    if !before.is_empty() {
        notes.push(format!("the resting state was not restored before the run: {}", before.join("; ")));
    }
    let outcome = (|| {
        driver.load("").map_err(|e| format!("load {}: {e}", driver.name))?;
        if client.creates_vfs() {
            driver.set_enable_sriov(true).map_err(|e| format!("enable_sriov=1 for {}: {e}", driver.name))?;
        }
        for f in &site.functions {
            sysfs::set_driver_override(f, driver.name).map_err(|e| format!("write driver_override of {f}: {e}"))?;
            sysfs::drivers_probe(f).map_err(|e| format!("write drivers_probe {f}: {e}"))?;
            let bound = sysfs::wait_until(sysfs::SETTLE, || sysfs::current_driver(f).is_ok_and(|d| d == driver.name));
            if !bound {
                let now = sysfs::current_driver(f).unwrap_or_else(|_| "no driver".into());
                return Err(format!("{f} did not bind to {} (bound to: {now})", driver.name));
            }
        }
        fs::create_dir_all(LOG_DIR).map_err(|e| format!("mkdir {LOG_DIR}: {e}"))?;
        let log = Path::new(LOG_DIR).join(format!("{topo}-{}-{}.log", client.name(), driver.name));
        match client {
            Client::Selftest(t) => run_selftest(t, &[], Some(driver.name), bdf, &log).map(Outcome::Selftest),
            Client::Qemu(m) => run_qemu(m, bdf, &log).map(Outcome::Qemu),
            Client::VfioIoctls(m) => vmm_client::run(m, &site.functions, &log).map(Outcome::Selftest),
        }
    })();
    let after = env.world.restore();
    if !after.is_empty() {
        notes.push(format!("cleanup after the run: {}", after.join("; ")));
    }
    Run { driver: driver.name, bdf: bdf.to_string(), outcome, notes }
}

fn run_cached(env: &Env, site: &Site, topo: &str, client: Client, rust: bool) -> Rc<Run> {
    let key = (topo.to_string(), client, rust);
    if let Some(r) = env.runs.0.borrow().get(&key) {
        return Rc::clone(r);
    }
    let driver = if rust { env.rust } else { env.reference };
    let run = Rc::new(run_on(env, driver, site, topo, client));
    env.runs.0.borrow_mut().insert(key, Rc::clone(&run));
    run
}

fn output_tail(run: &Run) -> Vec<String> {
    let text = match &run.outcome {
        Ok(Outcome::Selftest(s)) => &s.output,
        Ok(Outcome::Qemu(q)) => &q.output,
        Err(_) => return Vec::new(),
    };
    let mut lines = vec![format!("output of the client on {} ({}), last {TAIL_LINES} lines:", run.driver, run.bdf)];
    lines.extend(tail(text, TAIL_LINES).into_iter().map(|l| format!("  {l}")));
    lines
}

/// The reference's case: the client works on vfio-pci.
fn reference_case(env: &Env, site: &Site, topo: &str, client: Client) -> CaseResult {
    let c = run_cached(env, site, topo, client, false);
    let (mut failures, summary) = match &c.outcome {
        Err(e) => (vec![e.clone()], None),
        Ok(Outcome::Selftest(s)) => (expect_selftest(s), Some(s.summary())),
        Ok(Outcome::Qemu(q)) => (expect_qemu(q), Some(q.summary())),
    };
    failures.extend(c.notes.iter().cloned());
    let summary = summary.map(|s| format!("{REFERENCE_NAME} on {}: {s}", c.bdf));
    if failures.is_empty() {
        return CaseResult::pass().with_notes(summary);
    }
    failures.extend(summary);
    failures.extend(output_tail(&c));
    CaseResult::fail(failures)
}

/// vfio-pci-rs's case: the client sees what it sees on vfio-pci.
fn rust_case(env: &Env, site: &Site, topo: &str, client: Client) -> CaseResult {
    let c = run_cached(env, site, topo, client, false);
    let r = run_cached(env, site, topo, client, true);
    let mut failures = Vec::new();
    let mut side_by_side = Vec::new();
    match (&c.outcome, &r.outcome) {
        (Err(e), _) => failures.push(format!("nothing to compare against: the {REFERENCE_NAME} run failed: {e}")),
        (_, Err(e)) => failures.push(e.clone()),
        (Ok(Outcome::Selftest(cs)), Ok(Outcome::Selftest(rs))) => {
            if cs.results.is_empty() {
                failures.push(format!("nothing to compare against: no test results on {REFERENCE_NAME}"));
            }
            failures.extend(compare_selftest(cs, rs));
            if let Client::VfioIoctls(_) = client {
                failures.extend(vmm_client::compare_details(cs, rs));
            }
            side_by_side = selftest_table(cs, rs, !failures.is_empty());
        }
        (Ok(Outcome::Qemu(cq)), Ok(Outcome::Qemu(rq))) => {
            if !expect_qemu(cq).is_empty() {
                failures.push(format!("nothing to compare against: QEMU did not succeed on {REFERENCE_NAME}"));
            }
            failures.extend(compare_qemu(cq, rq));
            side_by_side =
                vec![format!("{REFERENCE_NAME}: {}", cq.summary()), format!("{RUST_NAME}: {}", rq.summary())];
        }
        _ => failures.push("the two runs are of different clients (a bug in the test program)".into()),
    }
    failures.extend(r.notes.iter().cloned());
    if failures.is_empty() {
        return CaseResult::pass().with_notes(side_by_side);
    }
    failures.extend(side_by_side);
    failures.extend(output_tail(&r));
    CaseResult::fail(failures)
}

/// The cases: two per plan entry (the reference, then vfio-pci-rs against
/// it).  `place` says where a topology's entries run.
pub fn cases<'a>(env: Env<'a>, place: impl Fn(&str) -> Place<'a>) -> Vec<Case<'a>> {
    let mut cases = Vec::new();
    for &(topo, client) in PLAN {
        let base = format!("clients/{topo}/{}", client.name());
        let names = [format!("{base}: {REFERENCE_NAME}"), format!("{base}: {RUST_NAME} matches {REFERENCE_NAME}")];
        for (k, name) in names.into_iter().enumerate() {
            let case = match place(topo) {
                Place::Skip(why) => Case::new(name, move || CaseResult::skip(why.clone())),
                Place::Broken(why) => Case::new(name, move || CaseResult::fail(vec![why.clone()])),
                Place::Ready(site) if k == 0 => Case::new(name, move || reference_case(&env, site, topo, client)),
                Place::Ready(site) => Case::new(name, move || rust_case(&env, site, topo, client)),
            };
            cases.push(case);
        }
    }
    cases
}
