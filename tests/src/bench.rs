//! The benchmark (`--bench`), not a test: in one boot, the median latency of
//! VFIO_DEVICE_GET_PCI_HOT_RESET_INFO and VFIO_DEVICE_PCI_HOT_RESET through
//! the C vfio-pci and through vfio-pci-rs on the same functions, and of the
//! slot or bus reset alone (through sysfs, bypassing VFIO), for every reset
//! set size the topologies offer.  Prints a Markdown table; the ratio column
//! is Rust / C, and "overhead" is the hot reset minus the bare reset.
//!
//! Drivers alternate (C, Rust, C, Rust) so drift in the emulated machine
//! hits both alike.  Each run binds every function of the set to the driver,
//! opens the first one through its cdev in one iommufd (the others share its
//! group or set and count as owned) and issues the zero-length hot reset.
//!
//! A second table (module `ops`, rows in `table`) gives the cost of every
//! device ioctl and file operation, both drivers alternating in rounds,
//! with the ratio and the spread of the per-round ratios.

mod device_init;
mod huge_fault;
mod msix;
mod ops;
mod profile;
mod reset_trace;
mod table;

pub(crate) use device_init::init_times;
pub(crate) use reset_trace::self_check as reset_trace_self_check;

use crate::driver::{self, REFERENCE_NAME, RUST_MODULE, RUST_NAME};
use crate::sys::Fail;
use crate::sysfs;
use crate::vfio::{Device, Iommufd};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// The topologies measured, in order: name, human description.
const CASES: &[(&str, &str)] = &[
    ("slot", "slot reset (pciehp)"),
    ("multifunction", "bus reset"),
    ("quad", "bus reset"),
    ("oct", "bus reset"),
    ("bus16", "bus reset"),
    ("bus32", "bus reset"),
];
/// The largest set measured on a kernel with lockdep: a hot reset holds two locks per function
/// (its memory lock, the device lock of the bus reset) on both drivers, and lockdep's limit of
/// 48 held locks (MAX_LOCK_DEPTH) stops at the 32-function set: "BUG: MAX_LOCK_DEPTH too low!",
/// seen first under vfio-pci.
const MAX_FUNCTIONS_UNDER_LOCKDEP: usize = 16;
const ROUNDS: usize = 4;
const INFO_CALLS: usize = 500;
const RESET_CALLS: usize = 10;

/// Medians of one driver on one set.
#[derive(Default, Clone)]
struct Sample {
    info: Vec<Duration>,
    /// The hot resets with every function held awake (runtime PM forbidden).
    reset: Vec<Duration>,
    /// Each of those minus the time `pci_reset_bus()` took in it, timed in the kernel (on
    /// kernels with the function graph tracer, [`reset_trace`]).
    beyond: Vec<Duration>,
    /// The hot resets with the unopened functions runtime-suspended first (each woken by the
    /// reset: D3hot to D0, 10 ms).
    woken: Vec<Duration>,
    /// How many functions were runtime-suspended before each of those.
    asleep: Vec<usize>,
    /// The close of the set's only open device: the last close of the set, which resets it if a
    /// function could not be reset alone (the dirty set).
    close: Vec<Duration>,
}

/// Runs the benchmark; with `filter` (comma-separated substrings of row names), only the
/// per-operation rows it matches (and the reset-set table if "reset set" matches).
pub fn run(topology: &Path, ko: Option<&Path>, filter: Option<&str>) -> i32 {
    match bench(topology, ko, filter) {
        Ok(()) => {
            profile::print_windows_and_symbols();
            0
        }
        Err(e) => {
            println!("benchmark failed: {e}");
            1
        }
    }
}

fn bench(topology: &Path, ko: Option<&Path>, filter: Option<&str>) -> Result<(), Fail> {
    let text =
        std::fs::read_to_string(topology).map_err(|e| Fail::other(format!("reading {}: {e}", topology.display())))?;
    let topologies = sysfs::parse_topology(&text).map_err(Fail::other)?;
    let ko = ko.ok_or_else(|| Fail::other("VFIO_PCI_RS_KO is not set"))?;
    if !driver::module_loaded(RUST_MODULE) {
        driver::insmod(ko, "")?;
    }
    let devices = Path::new("/sys/bus/pci/devices");
    // VFIO_PCI_RS_BENCH_ONLY=huge_fault: only the huge-mapping rows (bench/huge_fault.rs).
    if std::env::var_os("VFIO_PCI_RS_BENCH_ONLY").is_some_and(|v| v == "huge_fault") {
        return huge_fault::function(&topologies, devices)?.map_or(Ok(()), |bdf| huge_fault::bench(&bdf));
    }
    if table::Filter::new(filter).matches("reset set") {
        reset_sets(&topologies, devices)?;
    }

    let first = |name: &str| -> Result<Option<String>, Fail> {
        match topologies.iter().find(|t| t.name == name) {
            Some(t) => Ok(sysfs::functions_below(devices, &t.port)?.into_iter().next()),
            None => Ok(None),
        }
    };
    match first(OPS_TOPOLOGY)? {
        Some(e1000e) => {
            let f = ops::Functions { e1000e, vectors: first(VECTORS_TOPOLOGY)?, pf: first(PF_TOPOLOGY)? };
            let order = [(table::C, REFERENCE_NAME), (table::RUST, RUST_NAME)];
            ops::bench(&f, OPS_ROUNDS, order, table::Filter::new(filter))?;
        }
        None => println!("no function in the {OPS_TOPOLOGY:?} topology: no per-operation table"),
    }
    if table::Filter::new(filter).matches("huge fault") {
        if let Some(bdf) = huge_fault::function(&topologies, devices)? {
            println!();
            huge_fault::bench(&bdf)?;
        }
    }
    Ok(())
}

/// The reset-set table: INFO and the hot reset for every reset-set size.
fn reset_sets(topologies: &[sysfs::Topology], devices: &Path) -> Result<(), Fail> {
    println!("| reset set | functions | INFO C | INFO Rust | ratio | INFO min ratio | INFO per function C | INFO per function Rust | HOT_RESET C | HOT_RESET Rust | ratio | reset alone | overhead C | overhead Rust | last close C | last close Rust | ratio | suspended before a reset C / Rust | HOT_RESET with them suspended C | Rust | ratio | beyond pci_reset_bus C | Rust | ratio |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, scope) in CASES {
        let Some(t) = topologies.iter().find(|t| t.name == *name) else {
            continue;
        };
        let functions = sysfs::functions_below(devices, &t.port)?;
        if functions.is_empty() {
            continue;
        }
        if functions.len() > MAX_FUNCTIONS_UNDER_LOCKDEP && Path::new("/proc/lockdep").exists() {
            println!(
                "| {name} ({scope}) | {} | not measured on a kernel with lockdep: a hot reset of more than {MAX_FUNCTIONS_UNDER_LOCKDEP} functions holds more locks than lockdep can track (MAX_LOCK_DEPTH 48), on both drivers |",
                functions.len()
            );
            continue;
        }
        // The reset the hot reset does: of the bus the functions are on (below a bridge of
        // their own when the port has one), through that bus's bridge.
        let bridge = sysfs::parent_bridge(&functions[0]).unwrap_or_else(|_| t.port.clone());
        let mut c = Sample::default();
        let mut rust = Sample::default();
        let mut bare = Vec::new();
        for _ in 0..ROUNDS {
            for (drv, sample) in [(REFERENCE_NAME, &mut c), (RUST_NAME, &mut rust)] {
                measure(drv, &functions, sample)?;
            }
            bare.extend(measure_bare_reset(&bridge, &functions)?);
        }
        let (ic, ir) = (median(&c.info), median(&rust.info));
        let (rc, rr) = (median(&c.reset), median(&rust.reset));
        let b = median(&bare);
        let (oc, or) = (rc.saturating_sub(b), rr.saturating_sub(b));
        let (mc, mr) = (minimum(&c.info), minimum(&rust.info));
        let (cc, cr) = (median(&c.close), median(&rust.close));
        let n = u32::try_from(functions.len()).unwrap_or(u32::MAX);
        println!(
            "| {name} ({scope}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} |",
            functions.len(),
            us(ic),
            us(ir),
            ratio(ir, ic),
            ratio(mr, mc),
            us(ic / n),
            us(ir / n),
            ms(rc),
            ms(rr),
            ratio(rr, rc),
            ms(b),
            us(oc),
            us(or),
            ms(cc),
            ms(cr),
            ratio(cr, cc),
            mean(&c.asleep),
            mean(&rust.asleep),
            ms(median(&c.woken)),
            ms(median(&rust.woken)),
            ratio(median(&rust.woken), median(&c.woken)),
            beyond(&c.beyond),
            beyond(&rust.beyond),
            if c.beyond.is_empty() { "n/a".to_string() } else { ratio(median(&rust.beyond), median(&c.beyond)) },
        );
    }
    println!();
    println!("Medians of {INFO_CALLS} INFO calls and {RESET_CALLS} resets per driver and round, {ROUNDS} rounds, drivers alternating; \"INFO min ratio\" compares the fastest calls, the least disturbed by the emulator; reset alone = the same slot or bus reset through sysfs with the functions unbound; overhead = hot reset minus reset alone; INFO per function = INFO divided by the set's functions; last close = the close of the set's only open device: its disable, then the dirty set's slot or bus reset if a function could not be reset alone; HOT_RESET and its overhead with every function held awake (power/control \"on\"), then, with them suspended, the unopened functions left to runtime-suspend before each reset (how many were, on average), which the reset wakes first (D3hot to D0: 10 ms each); beyond pci_reset_bus = a hot reset held awake minus the time pci_reset_bus() took in it, timed by ftrace's function_graph tracer on that function alone (kernels that have it), both on the guest's instruction clock.");
    println!();
    Ok(())
}

/// The topologies whose first function the per-operation table uses: the e1000e for most
/// rows, the NVMe controller (bench-only, harness/topology.sh) for MSI-X with 32 vectors,
/// the igb PF for PCI_VF_TOKEN.
const OPS_TOPOLOGY: &str = "slot";
const VECTORS_TOPOLOGY: &str = "vectors";
const PF_TOPOLOGY: &str = "sriov";
/// Rounds of the per-operation table (the driver going first alternates).
const OPS_ROUNDS: usize = 6;

/// Binds `functions` to `drv`, opens the first through its cdev, times INFO
/// and the zero-length hot reset, then unbinds everything.
fn measure(drv: &str, functions: &[String], sample: &mut Sample) -> Result<(), Fail> {
    for bdf in functions {
        sysfs::set_driver_override(bdf, drv)?;
        sysfs::drivers_probe(bdf)?;
    }
    let result = (|| {
        let cdev = sysfs::vfio_dev_entries(&functions[0])?
            .into_iter()
            .next()
            .ok_or_else(|| Fail::other(format!("{} has no cdev under {drv}", functions[0])))?;
        let dev = Device::open_cdev(&cdev)?;
        let iommufd = Iommufd::open()?;
        dev.bind_iommufd(&iommufd).map_err(Fail::Os)?;
        let ioas = iommufd.ioas_alloc().map_err(Fail::Os)?;
        dev.attach_pt(ioas).map_err(Fail::Os)?;
        let argsz = 12 + 8 * functions.len() as u32;
        for _ in 0..5 {
            dev.hot_reset_info(argsz)?.result.map_err(Fail::Os)?;
        }
        for _ in 0..INFO_CALLS {
            let t = Instant::now();
            let call = dev.hot_reset_info(argsz)?;
            sample.info.push(t.elapsed());
            call.result.map_err(Fail::Os)?;
        }
        // Held awake (power/control "on"): the reset wakes no function, so its overhead is the
        // driver's own.
        set_runtime_pm(functions, "on")?;
        let tracer = reset_trace::ResetTracer::start();
        for _ in 0..RESET_CALLS {
            if let Some(tracer) = &tracer {
                tracer.clear();
            }
            let window =
                profile::Window::open(&format!("hot reset held awake, {} function(s)", functions.len()), drv, 1);
            let t = Instant::now();
            let r = dev.hot_reset_groups(&[]);
            let took = t.elapsed();
            drop(window);
            sample.reset.push(took);
            r.map_err(Fail::Os)?;
            if let Some(inside) = tracer.as_ref().and_then(reset_trace::ResetTracer::take) {
                sample.beyond.push(took.saturating_sub(inside));
            }
        }
        drop(tracer);
        set_runtime_pm(functions, "auto")?;
        // Left to runtime-suspend: before each reset the unopened functions are given time to
        // reach D3hot, so the reset wakes each of them first, as a VMM's hot reset of a set
        // with idle functions does. (Back to back, whether a function had suspended again
        // depended on when the PM core's work ran: a race, not a cost of either driver.)
        for _ in 0..RESET_CALLS {
            sample.asleep.push(settle(&functions[1..]));
            let t = Instant::now();
            let r = dev.hot_reset_groups(&[]);
            sample.woken.push(t.elapsed());
            r.map_err(Fail::Os)?;
        }
        let t = Instant::now();
        drop(dev);
        sample.close.push(t.elapsed());
        Ok(())
    })();
    let _ = set_runtime_pm(functions, "auto");
    for bdf in functions {
        let _ = sysfs::unbind(bdf);
        let _ = sysfs::clear_driver_override(bdf);
    }
    result
}

/// Writes `control` ("on": runtime PM forbidden, the function resumed; "auto": allowed) to
/// every function's `power/control`.
fn set_runtime_pm(functions: &[String], control: &str) -> Result<(), Fail> {
    for bdf in functions {
        sysfs::write_attr(&sysfs::device_dir(bdf).join("power/control"), control)?;
    }
    Ok(())
}

/// Waits (up to a second) until every function of `functions` is runtime-suspended; returns
/// how many are.
fn settle(functions: &[String]) -> usize {
    let suspended = || {
        functions
            .iter()
            .filter(|f| {
                fs::read_to_string(sysfs::device_dir(f).join("power/runtime_status"))
                    .is_ok_and(|s| s.trim() == "suspended")
            })
            .count()
    };
    sysfs::wait_until(Duration::from_secs(1), || suspended() == functions.len());
    suspended()
}

/// Times the slot or bus reset alone: the function's own "bus" reset method
/// for a lone function in a hotplug slot (a slot reset), else a reset of the
/// root port's secondary bus; the functions are unbound meanwhile.
fn measure_bare_reset(port: &str, functions: &[String]) -> Result<Vec<Duration>, Fail> {
    let mut times = Vec::new();
    if functions.len() == 1 {
        let dir = sysfs::device_dir(&functions[0]);
        sysfs::write_attr(&dir.join("reset_method"), "bus")?;
        for _ in 0..RESET_CALLS {
            let t = Instant::now();
            let r = sysfs::write_attr(&dir.join("reset"), "1");
            times.push(t.elapsed());
            r?;
        }
        sysfs::write_attr(&dir.join("reset_method"), "default")?;
    } else {
        let attr = sysfs::device_dir(port).join("reset_subordinate");
        for _ in 0..RESET_CALLS {
            let t = Instant::now();
            let r = sysfs::write_attr(&attr, "1");
            times.push(t.elapsed());
            r?;
        }
    }
    Ok(times)
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s.get(s.len() / 2).copied().unwrap_or_default()
}

/// The median of `v` in µs, or why there is none.
fn beyond(v: &[Duration]) -> String {
    if v.is_empty() {
        "no function graph tracer".to_string()
    } else {
        us(median(v))
    }
}

/// The mean of `v`, to two places.
fn mean(v: &[usize]) -> String {
    if v.is_empty() {
        return "n/a".to_string();
    }
    format!("{:.2}", v.iter().sum::<usize>() as f64 / v.len() as f64)
}

fn minimum(v: &[Duration]) -> Duration {
    v.iter().min().copied().unwrap_or_default()
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        "n/a".to_string()
    } else {
        format!("{:.3}", a.as_secs_f64() / b.as_secs_f64())
    }
}
