//! The device-init row of the device-access benchmark: the kernel's VFIO
//! selftest vfio_pci_device_init_perf_test (built by scripts/clients.sh into
//! /opt/vfio-selftests, see clients.rs) run on the benchmark's function.
//!
//! The program has one test per IOMMU mode ([`MODES`]).  Each times one
//! `vfio_pci_device_init()` with CLOCK_MONOTONIC: open the group and set its
//! container (or open the cdev, bind it to the iommufd and attach the IOAS)
//! — the driver's open, with the function's reset, happens here — then
//! GET_INFO, the config and six BAR region infos, an mmap of every
//! mmap-able BAR, the MSI and MSI-X IRQ infos.  It prints the time as
//! "Avg init time (per device): S.NNNNNNNNNs" (with one device the average,
//! minimum, maximum and wall time are the same number).
//!
//! Most of that time is sleeping: the power-state delays of enabling and of
//! the reset at open.  The guest's sleeps end on timer ticks (4 ms: HZ=250,
//! no high-resolution timers), so a run's time also depends on where within
//! a tick its first sleep starts, by up to a tick, and under `-icount` that
//! phase is fixed by the instructions run before it: a few hundred
//! instructions more can cost a whole tick in one mode and nothing in
//! another, and the program's tests would each start at the phase the
//! previous test's cleanup (a reset too) left.  So each mode runs in a
//! process of its own (`-v MODE`), started after a busy wait whose length
//! the golden-ratio sequence spreads over [`WINDOW`], the same lengths for
//! both drivers: the phases are spread evenly, and the median follows the
//! work each driver does rather than where it falls within a tick.

use crate::clients::{expect_selftest, run_selftest};
use crate::sys::Fail;
use std::path::Path;
use std::time::{Duration, Instant};

/// The selftest program.
pub(crate) const TEST: &str = "vfio_pci_device_init_perf_test";
/// Its tests' variants, one per IOMMU mode (FIXTURE_VARIANT_ADD_ALL_IOMMU_MODES
/// in the selftests' lib/include/libvfio/iommu.h).
pub(super) const MODES: [&str; 5] =
    ["vfio_type1_iommu", "vfio_type1v2_iommu", "iommufd_compat_type1", "iommufd_compat_type1v2", "iommufd"];
/// Runs of every mode per call of [`measure`].
pub(super) const PASSES: usize = 2;
/// The busy waits before the runs are spread over this much guest time: a
/// whole number of ticks at HZ = 100, 250 or 1000.
const WINDOW: Duration = Duration::from_millis(20);
/// Where a run's output goes (the latest run's only).
const LOG: &str = "/tmp/bench-device-init.log";
/// The line holding a test's time.
const TIME_LINE: &str = "Avg init time (per device):";

/// Runs every mode [`PASSES`] times on `bdf`, which is bound to a VFIO
/// driver and not open, as the `round`-th call for its driver (which picks
/// the busy waits): the init times, by mode in [`MODES`] order.  A failing
/// test, or one without its time, fails the call.
pub(super) fn measure(bdf: &str, round: usize) -> Result<[Vec<Duration>; MODES.len()], Fail> {
    let mut times: [Vec<Duration>; MODES.len()] = Default::default();
    for pass in 0..PASSES {
        for (m, mode) in MODES.iter().enumerate() {
            spin(offset((round * PASSES + pass) * MODES.len() + m));
            let run = run_selftest(TEST, &["-v", mode], None, bdf, Path::new(LOG)).map_err(Fail::other)?;
            let failures = expect_selftest(&run);
            if !failures.is_empty() {
                return Err(Fail::other(format!("{TEST} -v {mode}: {} (output in {LOG})", failures.join("; "))));
            }
            match init_times(&run.output)[..] {
                [(_, time)] => times[m].push(time),
                ref found => {
                    let n = found.len();
                    return Err(Fail::other(format!("{TEST} -v {mode}: {n} init times, not 1 (output in {LOG})")));
                }
            }
        }
    }
    Ok(times)
}

/// The `k`-th busy wait: the fractional part of `(k + 1)` times the golden
/// ratio, of [`WINDOW`].
fn offset(k: usize) -> Duration {
    const GOLDEN: f64 = 0.618_033_988_749_894_9;
    WINDOW.mul_f64(((k + 1) as f64 * GOLDEN).fract())
}

/// Runs for `d` without sleeping, so that guest time advances by `d` of
/// executed instructions (an idle guest would skip to its next timer).
fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// The init time each test of the program's output printed: the time line
/// between the test's `#  RUN NAME ...` line and its result, with NAME.
pub(crate) fn init_times(output: &str) -> Vec<(String, Duration)> {
    let mut test = String::new();
    let mut times = Vec::new();
    for line in output.lines() {
        if let Some(name) = line.strip_prefix('#').and_then(|l| l.trim_start().strip_prefix("RUN ")) {
            test = name.trim().trim_end_matches("...").trim_end().to_string();
        } else if let Some(time) = line.strip_prefix(TIME_LINE).and_then(|t| seconds(t.trim())) {
            times.push((test.clone(), time));
        }
    }
    times
}

/// "S.NNNNNNNNNs" (printf's "%lu.%09lus") as a duration.
fn seconds(text: &str) -> Option<Duration> {
    let (s, ns) = text.strip_suffix('s')?.split_once('.')?;
    if ns.len() != 9 {
        return None;
    }
    Some(Duration::new(s.parse().ok()?, ns.parse().ok()?))
}
