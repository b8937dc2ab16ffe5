//! Markers for the instruction profile (`scripts/profile.sh`): with
//! `VFIO_PCI_RS_BENCH_PROFILE` set (on the guest's kernel command line), every
//! timed batch of samples is opened by a `getppid()` and closed by a
//! `getpid()`, whose kernel entries the QEMU plugin `harness/insn-profile.c`
//! watches for.  At the end the benchmark lists the batches, so the plugin's
//! N-th section is the N-th listed batch (listed then, not as they run, so
//! that no console output is in a window), and the module symbols the
//! profile maps addresses to.  Without the variable nothing changes.

use std::sync::{Mutex, OnceLock};

/// The batches measured so far: driver, samples, row.
static WINDOWS: Mutex<Vec<(String, usize, String)>> = Mutex::new(Vec::new());

/// Whether the profile's markers are on.
fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os("VFIO_PCI_RS_BENCH_PROFILE").is_some())
}

/// The system call whose kernel entry opens the plugin's window.
fn open_mark() {
    std::hint::black_box(std::os::unix::process::parent_id());
}

/// The system call whose kernel entry closes it.
fn close_mark() {
    std::hint::black_box(std::process::id());
}

/// An open window of the profile: marked when opened and when dropped.
pub(super) struct Window(bool);

impl Window {
    /// Opens the window for `samples` samples of row `row` on driver `drv`.
    pub(super) fn open(row: &str, drv: &str, samples: usize) -> Window {
        if !enabled() {
            return Window(false);
        }
        if let Ok(mut windows) = WINDOWS.lock() {
            windows.push((drv.to_string(), samples, row.to_string()));
        }
        open_mark();
        Window(true)
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        if self.0 {
            close_mark();
        }
    }
}

/// Lists the batches measured and prints the symbols (`/proc/kallsyms`) of the VFIO modules
/// (and iommufd's and irqbypass's, when modules), if the profile is on.
pub(super) fn print_windows_and_symbols() {
    if !enabled() {
        return;
    }
    if let Ok(windows) = WINDOWS.lock() {
        for (seq, (drv, samples, row)) in windows.iter().enumerate() {
            println!("# profile window {}\t{drv}\t{samples}\t{row}", seq + 1);
        }
    }
    let Ok(text) = std::fs::read_to_string("/proc/kallsyms") else {
        println!("# profile: /proc/kallsyms unreadable");
        return;
    };
    let wanted = ["\t[vfio", "\t[iommufd", "\t[irqbypass"];
    for line in text.lines().filter(|l| wanted.iter().any(|w| l.contains(w))) {
        println!("# ksym {line}");
    }
}
