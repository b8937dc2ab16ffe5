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
//! A second table (module `access`) gives the device API's costs on the
//! function of the "slot" topology: config and BAR reads, MSI-X delivery to
//! an eventfd, and the VFIO selftests' device-init time.

mod device_init;
mod huge_fault;
mod msix;

pub(crate) use device_init::init_times;

use crate::driver::{self, REFERENCE_NAME, RUST_MODULE, RUST_NAME};
use crate::sys::Fail;
use crate::sysfs;
use crate::vfio::{Device, Iommufd};
use std::path::Path;
use std::time::{Duration, Instant};

/// The topologies measured, in order: name, human description.
const CASES: &[(&str, &str)] =
    &[("slot", "slot reset (pciehp)"), ("multifunction", "bus reset"), ("quad", "bus reset")];
const ROUNDS: usize = 4;
const INFO_CALLS: usize = 500;
const RESET_CALLS: usize = 10;

/// Medians of one driver on one set.
#[derive(Default, Clone)]
struct Sample {
    info: Vec<Duration>,
    reset: Vec<Duration>,
}

pub fn run(topology: &Path, ko: Option<&Path>) -> i32 {
    match bench(topology, ko) {
        Ok(()) => 0,
        Err(e) => {
            println!("benchmark failed: {e}");
            1
        }
    }
}

fn bench(topology: &Path, ko: Option<&Path>) -> Result<(), Fail> {
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

    println!("| reset set | functions | INFO C | INFO Rust | ratio | INFO min ratio | HOT_RESET C | HOT_RESET Rust | ratio | reset alone | overhead C | overhead Rust |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, scope) in CASES {
        let Some(t) = topologies.iter().find(|t| t.name == *name) else {
            continue;
        };
        let functions = sysfs::functions_below(devices, &t.port)?;
        if functions.is_empty() {
            continue;
        }
        let mut c = Sample::default();
        let mut rust = Sample::default();
        let mut bare = Vec::new();
        for _ in 0..ROUNDS {
            for (drv, sample) in [(REFERENCE_NAME, &mut c), (RUST_NAME, &mut rust)] {
                measure(drv, &functions, sample)?;
            }
            bare.extend(measure_bare_reset(&t.port, &functions)?);
        }
        let (ic, ir) = (median(&c.info), median(&rust.info));
        let (rc, rr) = (median(&c.reset), median(&rust.reset));
        let b = median(&bare);
        let (oc, or) = (rc.saturating_sub(b), rr.saturating_sub(b));
        let (mc, mr) = (minimum(&c.info), minimum(&rust.info));
        println!(
            "| {name} ({scope}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            functions.len(),
            us(ic),
            us(ir),
            ratio(ir, ic),
            ratio(mr, mc),
            ms(rc),
            ms(rr),
            ratio(rr, rc),
            ms(b),
            us(oc),
            us(or),
        );
    }
    println!();
    println!("Medians of {INFO_CALLS} INFO calls and {RESET_CALLS} resets per driver and round, {ROUNDS} rounds, drivers alternating; \"INFO min ratio\" compares the fastest calls, the least disturbed by the emulator; reset alone = the same slot or bus reset through sysfs with the functions unbound; overhead = hot reset minus reset alone.");
    println!();
    if let Some(t) = topologies.iter().find(|t| t.name == ACCESS_TOPOLOGY) {
        let functions = sysfs::functions_below(devices, &t.port)?;
        if let Some(bdf) = functions.first() {
            access::bench(bdf)?;
        }
    }
    if let Some(bdf) = huge_fault::function(&topologies, devices)? {
        println!();
        huge_fault::bench(&bdf)?;
    }
    Ok(())
}

/// The topology whose function the device-access benchmark uses.
const ACCESS_TOPOLOGY: &str = "slot";

/// The device API's costs, both drivers on one function, alternating: config space and BAR
/// reads through the device file, BAR reads through an mmap and MSI-X delivery to an eventfd
/// (bench/msix.rs) in one open of the cdev; then, with the function closed again, the VFIO
/// selftests' device-init time (bench/device_init.rs).
mod access {
    use super::{device_init, median, ms, msix, ratio, Fail, REFERENCE_NAME, ROUNDS, RUST_NAME};
    use crate::sys::Mmio;
    use crate::sysfs;
    use crate::vfio::{Device, Iommufd};
    use std::os::unix::fs::FileExt;
    use std::time::{Duration, Instant};

    const CALLS: usize = 2000;
    const CONFIG_OFFSET: u64 = 7 << 40;
    /// e1000e/igb STATUS register.
    const STATUS: u64 = 0x8;

    /// One operation measured: its name, its unit and, per driver, the times.
    struct Op {
        name: &'static str,
        unit: fn(Duration) -> String,
        times: [Vec<Duration>; 2],
        error: Option<String>,
    }

    impl Op {
        fn new(name: &'static str, unit: fn(Duration) -> String) -> Op {
            Op { name, unit, times: Default::default(), error: None }
        }

        /// Runs `measure` for driver `k` unless the operation failed before; its first failure
        /// is reported in the table instead of the times.
        fn run(&mut self, drv: &str, k: usize, measure: impl FnOnce(&mut Vec<Duration>) -> Result<(), Fail>) {
            if self.error.is_none() {
                if let Err(e) = measure(&mut self.times[k]) {
                    self.error = Some(format!("{drv}: {e}"));
                }
            }
        }
    }

    /// The measurements besides the per-operation times: per driver, MSI-X signals beyond
    /// one per sample, and the init times of each IOMMU mode (in `device_init::MODES` order).
    #[derive(Default)]
    struct Side {
        msix_extra: [msix::Extra; 2],
        init_modes: [[Vec<Duration>; 2]; device_init::MODES.len()],
    }

    pub(super) fn bench(bdf: &str) -> Result<(), Fail> {
        let mut ops = [
            Op::new("config read (4 bytes, read(2))", ns),
            Op::new("BAR0 read (4 bytes, read(2))", ns),
            Op::new("BAR0 read (4 bytes, mmap)", ns),
            Op::new("MSI-X delivery (ICS write → eventfd read)", ns),
            Op::new("device init (vfio_pci_device_init_perf_test)", ms),
        ];
        let mut side = Side::default();
        for round in 0..ROUNDS {
            for (k, drv) in [REFERENCE_NAME, RUST_NAME].into_iter().enumerate() {
                measure(drv, bdf, k, round, &mut ops, &mut side)?;
            }
        }
        println!("| device access ({bdf}) | C | Rust | ratio |");
        println!("|---|---|---|---|");
        for op in &ops {
            if let Some(e) = &op.error {
                println!("| {} | n/a | n/a | {e} |", op.name);
                continue;
            }
            let (c, r) = (median(&op.times[0]), median(&op.times[1]));
            println!("| {} | {} | {} | {} |", op.name, (op.unit)(c), (op.unit)(r), ratio(r, c));
        }
        println!();
        println!(
            "Medians per driver of {CALLS} reads and {} MSI-X deliveries per round, in one open of the cdev (iommufd), and of {} {} runs per IOMMU mode per round, each from its own tick phase; {ROUNDS} rounds, drivers alternating.",
            msix::SAMPLES,
            device_init::PASSES,
            device_init::TEST
        );
        let [c, r] = side.msix_extra;
        println!(
            "MSI-X signals beyond one per delivery, in the delivery's read / late: C {} / {}, Rust {} / {}.",
            c.in_read, c.late, r.in_read, r.late
        );
        let modes: Vec<String> = device_init::MODES
            .iter()
            .zip(&side.init_modes)
            .map(|(mode, t)| {
                let (c, r) = (median(&t[0]), median(&t[1]));
                format!("{mode} {} / {} ({})", ms(c), ms(r), ratio(r, c))
            })
            .collect();
        println!("Device init per IOMMU mode, C / Rust: {}.", modes.join(", "));
        Ok(())
    }

    fn ns(d: Duration) -> String {
        format!("{:.0} ns", d.as_secs_f64() * 1e9)
    }

    fn time(times: &mut Vec<Duration>, mut call: impl FnMut() -> Result<(), Fail>) -> Result<(), Fail> {
        for _ in 0..10 {
            call()?;
        }
        for _ in 0..CALLS {
            let t = Instant::now();
            let r = call();
            times.push(t.elapsed());
            r?;
        }
        Ok(())
    }

    /// Binds `bdf` to `drv`, measures every operation as driver `k` in round `round`, unbinds.
    fn measure(drv: &str, bdf: &str, k: usize, round: usize, ops: &mut [Op; 5], side: &mut Side) -> Result<(), Fail> {
        sysfs::set_driver_override(bdf, drv)?;
        sysfs::drivers_probe(bdf)?;
        let [config, bar, mapped, delivery, init] = ops;
        let result = (|| {
            let cdev = sysfs::vfio_dev_entries(bdf)?
                .into_iter()
                .next()
                .ok_or_else(|| Fail::other(format!("{bdf} has no cdev under {drv}")))?;
            {
                let dev = Device::open_cdev(&cdev)?;
                let iommufd = Iommufd::open()?;
                dev.bind_iommufd(&iommufd).map_err(Fail::Os)?;
                let ioas = iommufd.ioas_alloc().map_err(Fail::Os)?;
                dev.attach_pt(ioas).map_err(Fail::Os)?;
                let mut word = [0u8; 4];
                config.run(drv, k, |t| {
                    time(t, || dev.file().read_exact_at(&mut word, CONFIG_OFFSET).map_err(Fail::from))
                });
                bar.run(drv, k, |t| time(t, || dev.file().read_exact_at(&mut word, STATUS).map_err(Fail::from)));
                match Mmio::map_at(&dev, 0, 4096, true) {
                    Ok(map) => {
                        mapped.run(drv, k, |t| {
                            time(t, || {
                                map.read32(STATUS as usize).map(drop).ok_or_else(|| Fail::other("outside the mapping"))
                            })
                        });
                        delivery.run(drv, k, |t| msix::measure(bdf, &dev, &map, t, &mut side.msix_extra[k]));
                    }
                    Err(e) => {
                        for op in [mapped, delivery] {
                            op.run(drv, k, |_| Err(Fail::other(format!("mmap: {e}"))));
                        }
                    }
                }
            }
            // Closed again: the selftest opens the function itself.
            init.run(drv, k, |t| {
                for (mode, times) in side.init_modes.iter_mut().zip(device_init::measure(bdf, round)?) {
                    t.extend(&times);
                    mode[k].extend(times);
                }
                Ok(())
            });
            Ok(())
        })();
        let _ = sysfs::unbind(bdf);
        let _ = sysfs::clear_driver_override(bdf);
        result
    }
}

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
        for _ in 0..RESET_CALLS {
            let t = Instant::now();
            let r = dev.hot_reset_groups(&[]);
            sample.reset.push(t.elapsed());
            r.map_err(Fail::Os)?;
        }
        Ok(())
    })();
    for bdf in functions {
        let _ = sysfs::unbind(bdf);
        let _ = sysfs::clear_driver_override(bdf);
    }
    result
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
