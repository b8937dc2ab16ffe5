//! The hot reset's cost beyond `pci_reset_bus()` (issue 13 item 5), timed inside the guest
//! kernel: ftrace's function_graph tracer, limited to `pci_reset_bus` alone (the only function
//! patched, so neither driver's code pays for tracing), records how long each call took, and
//! the overhead of a hot reset is the ioctl's time minus that.  Both are read from the guest
//! clock, which under `-icount` counts instructions; the reset's own sleeps end on timer
//! ticks, which hide the drivers' work in a comparison with a bare reset, not in this one.
//!
//! Only kernels with the function graph tracer have it (the bench kernel); elsewhere
//! [`ResetTracer::start`] gives `None` and the columns say so.

use crate::sys::mount_pseudo;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The function timed.
const FUNCTION: &str = "pci_reset_bus";

/// The tracer, set up to time [`FUNCTION`]; put back to `nop` when dropped.
pub(super) struct ResetTracer {
    dir: PathBuf,
}

impl ResetTracer {
    /// Sets the tracer up, or `None` if the kernel has no function graph tracer.
    pub(super) fn start() -> Option<Self> {
        let dir = tracefs()?;
        let available = fs::read_to_string(dir.join("available_tracers")).ok()?;
        if !available.split_whitespace().any(|t| t == "function_graph") {
            return None;
        }
        let tracer = ResetTracer { dir };
        let setup = [
            ("tracing_on", "0"),
            ("current_tracer", "nop"),
            ("set_ftrace_filter", FUNCTION),
            ("set_graph_function", FUNCTION),
            ("max_graph_depth", "1"),
            ("current_tracer", "function_graph"),
            ("trace", ""),
            ("tracing_on", "1"),
        ];
        for (file, value) in setup {
            if tracer.write(file, value).is_err() {
                println!("# bench: ftrace setup failed at {file} = {value:?}: no in-kernel reset times");
                return None;
            }
        }
        Some(tracer)
    }

    fn write(&self, file: &str, value: &str) -> std::io::Result<()> {
        fs::write(self.dir.join(file), value)
    }

    /// Clears the trace buffer.
    pub(super) fn clear(&self) {
        let _ = self.write("trace", "");
    }

    /// The time spent in [`FUNCTION`] since the last [`Self::clear`] or `take`, summed over
    /// its calls (`None` if none was recorded); clears the buffer.
    pub(super) fn take(&self) -> Option<Duration> {
        let text = fs::read_to_string(self.dir.join("trace")).ok()?;
        self.clear();
        let times: Vec<Duration> = text.lines().filter_map(call_time).collect();
        (!times.is_empty()).then(|| times.iter().sum())
    }
}

impl Drop for ResetTracer {
    fn drop(&mut self) {
        for (file, value) in [
            ("tracing_on", "0"),
            ("current_tracer", "nop"),
            ("set_graph_function", ""),
            ("set_ftrace_filter", ""),
            ("max_graph_depth", "0"),
            ("trace", ""),
        ] {
            let _ = self.write(file, value);
        }
    }
}

/// The tracefs directory: /sys/kernel/tracing, mounted there if it is not yet.
fn tracefs() -> Option<PathBuf> {
    let dir = Path::new("/sys/kernel/tracing");
    if !dir.join("available_tracers").exists() {
        mount_pseudo(c"tracefs", c"/sys/kernel/tracing").ok()?;
    }
    dir.join("available_tracers").exists().then(|| dir.to_path_buf())
}

/// The duration of one completed call of [`FUNCTION`] in a function_graph line, such as
/// ` 0) ! 111998.9 us |  pci_reset_bus();` (the mark before the time flags long calls).
fn call_time(line: &str) -> Option<Duration> {
    let (time, call) = line.split_once('|')?;
    if call.trim() != format!("{FUNCTION}();") {
        return None;
    }
    let mut words = time.split_whitespace().rev();
    if words.next()? != "us" {
        return None;
    }
    let us: f64 = words.next()?.parse().ok()?;
    Some(Duration::from_secs_f64(us / 1e6))
}

/// The parser's checks, for `--self-check`: the failures, described.
pub(crate) fn self_check() -> Vec<String> {
    let cases: [(&str, Option<u128>); 5] = [
        (" 0) ! 111998.9 us |  pci_reset_bus();", Some(111_998_900)),
        (" 0)   3.250 us    |  pci_reset_bus();", Some(3250)),
        (" 0)               |  pci_reset_bus() {", None),
        ("# CPU  DURATION                  FUNCTION CALLS", None),
        (" 0) ! 111998.9 us |  other();", None),
    ];
    cases
        .iter()
        .filter_map(|&(line, want)| {
            let got = call_time(line).map(|d| d.as_nanos());
            (got != want).then(|| format!("{line:?}: expected {want:?} ns, got {got:?}"))
        })
        .collect()
}
