//! The third real client: rust-vmm's vfio-ioctls, the library
//! cloud-hypervisor drives VFIO devices with, in a program of its own
//! (src/bin/vfio_ioctls_client.rs, installed next to this one).
//!
//! It is a second binary rather than a module of this one for the reasons
//! the other clients are processes: whatever the crate does with its file
//! descriptors (its `Drop`s unwrap, and a device fd left open across an
//! unbind hangs the unbind), they are all closed when the process exits,
//! before the suite restores the resting state; and a crash or a hang is
//! the client's (killed at its deadline, reported here), not the suite's.
//!
//! It prints TAP, so a run is a [`SelftestRun`]: the reference passes when
//! every step passes, and vfio-pci-rs when its steps have the same verdicts
//! and every `# ` line (what each step saw: flags, sizes, offsets, register
//! values, eventfd counts, errnos, the reset set) is the same as on vfio-pci.

use crate::clients::{parse_tap, read_log, wait_deadline, Exit, SelftestRun};
use crate::driver::{REFERENCE_NAME, RUST_NAME};
use crate::ktap::CaseResult;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The client's file name, next to this program's.
pub const BIN_NAME: &str = "vfio-ioctls-client";
/// A run takes well under a second; the deadline is for a hang.
const DEADLINE: Duration = Duration::from_secs(60);

/// How the client opens the functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VmmMode {
    /// `VfioIommufd`: IOMMUFD and the device cdevs (the `vfio_cdev` feature).
    Cdev,
    /// `VfioContainer`: the legacy container and groups.
    Group,
}

impl VmmMode {
    fn arg(self) -> &'static str {
        match self {
            VmmMode::Cdev => "cdev",
            VmmMode::Group => "group",
        }
    }

    pub fn name(self) -> String {
        format!("vfio-ioctls-{}", self.arg())
    }
}

/// Where the client is: next to this program.
fn bin() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("the test program's own path: {e}"))?;
    Ok(me.with_file_name(BIN_NAME))
}

/// Run the client on `functions` (the first is the one it exercises; it
/// opens them all, so that a hot reset of their set is allowed), its
/// output to `log`.
pub fn run(mode: VmmMode, functions: &[String], log: &Path) -> Result<SelftestRun, String> {
    let bin = bin()?;
    if !bin.exists() {
        return Err(format!("{}: missing (scripts/guest.sh copies it next to the test program)", bin.display()));
    }
    let out = File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
    let t0 = Instant::now();
    let mut child = Command::new(&bin)
        .arg(mode.arg())
        .args(functions)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let exit = wait_deadline(&mut child, t0 + DEADLINE);
    let elapsed = t0.elapsed();
    let output = read_log(log);
    let (planned, results) = parse_tap(&output);
    Ok(SelftestRun { exit, elapsed, planned, results, output })
}

/// The `# ` lines of a run: what its steps saw.
fn details(r: &SelftestRun) -> Vec<&str> {
    r.output.lines().filter(|l| l.starts_with("# ")).collect()
}

/// vfio-pci-rs against the reference, beyond the verdicts: the same
/// observations, line by line (the first difference is shown).
pub fn compare_details(c: &SelftestRun, r: &SelftestRun) -> Vec<String> {
    let (cd, rd) = (details(c), details(r));
    for i in 0..cd.len().max(rd.len()) {
        let (cl, rl) = (cd.get(i), rd.get(i));
        if cl != rl {
            return vec![
                format!("observation {} differs:", i + 1),
                format!("  {REFERENCE_NAME}: {}", cl.copied().unwrap_or("(none)")),
                format!("  {RUST_NAME}: {}", rl.copied().unwrap_or("(none)")),
            ];
        }
    }
    Vec::new()
}

/// `--self-check`: the observations are compared line by line.
pub fn check_compare() -> CaseResult {
    fn run_of(output: &str) -> SelftestRun {
        let (planned, results) = parse_tap(output);
        SelftestRun { exit: Exit::Code(0), elapsed: Duration::ZERO, planned, results, output: output.into() }
    }
    let mut f = Vec::new();
    let c = run_of("# open: ok\nok 1 open\n# irqs: irq 2: count 5\nok 2 irqs\n1..2\n");
    if !compare_details(&c, &run_of(&c.output)).is_empty() {
        f.push("identical outputs differ".to_string());
    }
    let r = run_of("# open: ok\nok 1 open\n# irqs: irq 2: count 4\nok 2 irqs\n1..2\n");
    let d = compare_details(&c, &r);
    if d.first().map(String::as_str) != Some("observation 2 differs:") {
        f.push(format!("a different value: {d:?}"));
    }
    let short = run_of("# open: ok\nok 1 open\n1..1\n");
    if !compare_details(&c, &short).get(2).is_some_and(|l| l.ends_with("(none)")) {
        f.push("a missing observation is not reported".to_string());
    }
    if c.planned != Some(2) || c.results.len() != 2 {
        f.push(format!("the client's TAP: plan {:?}, {} results", c.planned, c.results.len()));
    }
    CaseResult::from_failures(f)
}
