//! vfio-pci-rs-tests: the user-space test suite of vfio-pci-rs.
//!
//! Every scenario runs twice on the same PCI function in the same boot: once
//! bound to the C vfio-pci (the reference) and once bound to vfio-pci-rs.
//! Each run is checked against the rule it exercises, and the vfio-pci-rs
//! transcript must match the vfio-pci one step by step.  Results are KTAP on
//! stdout, ending with a plain `P passed, F failed` line; the exit status is
//! 0 iff nothing failed.
//!
//! Usage: vfio-pci-rs-tests [--filter SUBSTR] [--shard K/N] [--timeout SECS] [--list] [--verbose]
//!        vfio-pci-rs-tests --noiommu [--filter SUBSTR]   (the noiommu guest: its cases only)
//!        vfio-pci-rs-tests --aer [--filter SUBSTR]       (the AER guest: its cases only)
//!        vfio-pci-rs-tests --framebuffer DRIVER   (a framebuffer guest: its case, one driver)
//!        vfio-pci-rs-tests --self-check [--filter SUBSTR]
//!        vfio-pci-rs-tests --demo BDF   (open a bound function both ways, step by step)
//!        vfio-pci-rs-tests --bench      (hot-reset latency, vfio-pci-rs against vfio-pci)
//!        vfio-pci-rs-tests --stress-worker SEED HOTRESET BDF...   (the stress cases' second
//!                                       process, started by the test program itself)
//! Environment: VFIO_PCI_RS_KO (the module file to insmod),
//! VFIO_PCI_RS_TOPOLOGY (default /etc/vfio-pci-rs/topology).

#![deny(unsafe_op_in_unsafe_fn)]

mod aer;
mod bench;
mod clients;
mod config_space;
mod d3_reset;
mod demo;
mod dma_buf;
mod driver;
mod fault_inject;
mod features;
mod framebuffer;
mod fuzz;
mod harness;
mod huge_map;
mod info_caps;
mod interrupts;
mod ioeventfd;
mod irqbypass;
mod ktap;
mod kunit;
mod noiommu;
mod observability;
mod params;
mod power;
mod regions;
mod reset;
mod rom_decode;
mod scenarios;
mod selfcheck;
mod sriov;
mod stress;
mod sys;
mod sysfs;
mod transcript;
mod uapi;
mod vfio;
mod vga;
mod vmm_client;

use driver::{Driver, World, REFERENCE_NAME, RUST_NAME};
use harness::Case;
use ktap::CaseResult;
use scenarios::{Ctx, Scenario, Site};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;
use sysfs::PciId;
use transcript::{compare, errno_steps, loose_differences, Outcome, Transcript};

/// Command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub filter: Option<String>,
    /// `--shard K/N`: run only the K-th of N interleaved shares of the (filtered) cases, so
    /// N guests can run the suite in parallel (scripts/guest.sh).
    pub shard: Option<harness::Shard>,
    pub self_check: bool,
    pub list: bool,
    /// Show every transcript, not only those of failing runs.
    pub verbose: bool,
    pub timeout: Duration,
    /// `--demo BDF`: open the (already bound) function through its cdev
    /// and through its group and narrate every step.
    pub demo: Option<String>,
    /// `--bench`: the benchmark instead of the tests.
    pub bench: bool,
    /// `--noiommu`: the guest has no IOMMU and VFIO's no-IOMMU mode on (scripts/guest.sh's
    /// noiommu guest): run the noiommu cases (noiommu.rs), and only them.
    pub noiommu: bool,
    /// `--aer`: the AER guest (scripts/guest.sh): run the AER cases (aer.rs), and only them.
    /// They have a boot of their own: AER recovery resuming a runtime-suspended function
    /// (pci_bus_sem, then the function's memory lock) and a function leaving D3hot under its
    /// memory lock (whose ASPM update takes pci_bus_sem) form a lock cycle lockdep reports
    /// for vfio-pci and would for this driver, whatever the order of the scenarios.
    pub aer: bool,
    /// `--framebuffer DRIVER`: a framebuffer guest (scripts/guest.sh): the boot-framebuffer
    /// case (framebuffer.rs) for DRIVER (vfio-pci or vfio-pci-rs) only, since the removal it
    /// checks happens once per boot; `Some(true)` for vfio-pci-rs.
    pub framebuffer: Option<bool>,
}

pub fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        filter: None,
        shard: None,
        self_check: false,
        list: false,
        verbose: false,
        timeout: harness::DEFAULT_CASE_TIMEOUT,
        demo: None,
        bench: false,
        noiommu: false,
        aer: false,
        framebuffer: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--filter" => a.filter = Some(args.next().ok_or("--filter needs a substring")?),
            "--shard" => {
                let v = args.next().ok_or("--shard needs K/N")?;
                a.shard =
                    Some(harness::Shard::parse(&v).ok_or_else(|| format!("--shard: {v:?} is not K/N with K < N"))?);
            }
            "--timeout" => {
                let v = args.next().ok_or("--timeout needs a number of seconds")?;
                let s: u64 = v.parse().map_err(|_| format!("--timeout: {v:?} is not a number of seconds"))?;
                a.timeout = Duration::from_secs(s.max(1));
            }
            "--self-check" => a.self_check = true,
            "--bench" => a.bench = true,
            "--noiommu" => a.noiommu = true,
            "--aer" => a.aer = true,
            "--framebuffer" => {
                let v = args.next().ok_or("--framebuffer needs a driver")?;
                a.framebuffer = Some(match v.as_str() {
                    REFERENCE_NAME => false,
                    RUST_NAME => true,
                    _ => return Err(format!("--framebuffer: {v:?} is neither {REFERENCE_NAME} nor {RUST_NAME}")),
                });
            }
            "--demo" => a.demo = Some(args.next().ok_or("--demo needs a PCI address")?),
            "--list" => a.list = true,
            "--verbose" | "-v" => a.verbose = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

const USAGE: &str =
    "usage: vfio-pci-rs-tests [--filter SUBSTR] [--shard K/N] [--timeout SECS] [--list] [--verbose] [--self-check] [--noiommu] [--aer] [--framebuffer DRIVER] | --demo BDF | --bench";

/// Where a topology's scenarios run.
enum Target {
    /// The functions below the port.
    Ready(Site),
    /// The port or its functions are absent: `# SKIP`.
    Skip(String),
    /// Discovery itself failed: `not ok`.
    Broken(String),
}

struct Topo {
    name: String,
    target: Target,
}

/// Everything the cases share, and the transcripts run so far.
struct Suite {
    world: World,
    reference: Driver,
    rust: Driver,
    scenarios: Vec<Scenario>,
    topos: Vec<Topo>,
    topology_error: Option<String>,
    verbose: bool,
    cache: RefCell<HashMap<(usize, usize, bool), Rc<Transcript>>>,
    /// The real clients' runs so far (clients.rs).
    client_runs: clients::Runs,
    /// The module's KUnit results, read from the log of its first load (kunit.rs).
    kunit: Vec<(String, CaseResult)>,
    /// The noiommu guest: only the noiommu scenarios, on their topologies.
    noiommu: bool,
    /// The AER guest: only the AER scenarios (see [`Args::aer`]).
    aer: bool,
    /// A framebuffer guest: only the boot-framebuffer scenario, for one driver (see
    /// [`Args::framebuffer`]).
    framebuffer: Option<bool>,
}

impl Suite {
    fn discover(verbose: bool, noiommu: bool, aer: bool, framebuffer: Option<bool>) -> Suite {
        let ko = std::env::var_os("VFIO_PCI_RS_KO").map(PathBuf::from);
        let topo_path = std::env::var_os("VFIO_PCI_RS_TOPOLOGY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(sysfs::DEFAULT_TOPOLOGY));
        let (topologies, topology_error) = match std::fs::read_to_string(&topo_path) {
            Ok(text) => match sysfs::parse_topology(&text) {
                Ok(t) => (t, None),
                Err(e) => (Vec::new(), Some(format!("{}: {e}", topo_path.display()))),
            },
            Err(e) => (Vec::new(), Some(format!("{}: {e}", topo_path.display()))),
        };
        let devices = Path::new(sysfs::PCI_DEVICES);
        let mut functions: Vec<String> = Vec::new();
        let mut topos = Vec::new();
        for t in topologies {
            let target = if sysfs::exists(&devices.join(&t.port)).is_err() {
                Target::Skip(format!("port {} is not present", t.port))
            } else {
                let listed = sysfs::is_bridge(devices, &t.port)
                    .and_then(|bridge| sysfs::functions_below(devices, &t.port).map(|f| (bridge, f)));
                match listed {
                    Ok((_, f)) if f.is_empty() => Target::Skip(format!("no PCI function below {}", t.port)),
                    // Without an IOMMU a function has a group only while a VFIO driver has it.
                    Ok((bridge, f)) if noiommu => {
                        functions.extend(f.iter().cloned());
                        Target::Ready(Site { groups: vec![String::new(); f.len()], functions: f, hot_reset: bridge })
                    }
                    Ok((bridge, f)) => {
                        functions.extend(f.iter().cloned());
                        let groups: Result<Vec<String>, _> = f.iter().map(|b| sysfs::iommu_group(b)).collect();
                        match groups {
                            Ok(groups) => Target::Ready(Site { functions: f, groups, hot_reset: bridge }),
                            Err(e) => Target::Broken(format!("the IOMMU groups of {f:?}: {e}")),
                        }
                    }
                    Err(e) => Target::Broken(format!("listing the functions below {}: {e}", t.port)),
                }
            };
            topos.push(Topo { name: t.name, target });
        }
        let mut ids: Vec<PciId> = Vec::new();
        for f in &functions {
            if let Ok(id) = PciId::of(f) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        if noiommu {
            topos.retain(|t| noiommu::TOPOLOGIES.contains(&t.name.as_str()));
        }
        let preexisting = sysfs::bound_devices(REFERENCE_NAME);
        let preloaded = driver::native_modules_loaded();
        Suite {
            world: World { functions, ids, preexisting: preexisting.clone(), preloaded },
            reference: Driver::reference(preexisting),
            rust: Driver::rust(ko),
            scenarios: if noiommu {
                noiommu::scenarios()
            } else if aer {
                aer::scenarios()
            } else if framebuffer.is_some() {
                framebuffer::scenarios()
            } else {
                scenarios::all()
            },
            topos,
            topology_error,
            verbose,
            cache: RefCell::new(HashMap::new()),
            client_runs: clients::Runs::default(),
            kunit: Vec::new(),
            noiommu,
            aer,
            framebuffer,
        }
    }

    /// A framebuffer guest's one driver run, its transcript printed for the harness's
    /// comparison of the two boots.
    fn framebuffer_run(&self, ti: usize, si: usize, rust: bool, site: &Site) -> CaseResult {
        let result = self.expectations(ti, si, rust, site);
        framebuffer::print_transcript(&self.transcript(ti, si, rust, site));
        result
    }

    fn driver(&self, rust: bool) -> &Driver {
        if rust {
            &self.rust
        } else {
            &self.reference
        }
    }

    fn ctx<'a>(&'a self, rust: bool, site: &'a Site) -> Ctx<'a> {
        Ctx { driver: self.driver(rust), other: self.driver(!rust), site }
    }

    /// Run scenario `si` on topology `ti` against one driver, bracketed by
    /// restoring the resting state; cached so the comparison line reuses it.
    fn transcript(&self, ti: usize, si: usize, rust: bool, site: &Site) -> Rc<Transcript> {
        if let Some(t) = self.cache.borrow().get(&(ti, si, rust)) {
            return Rc::clone(t);
        }
        let s = &self.scenarios[si];
        let driver = self.driver(rust);
        let ctx = self.ctx(rust, site);
        let mut t = Transcript::new();
        let mut guard = RestoreOnUnwind(&self.world, true);
        let before = self.world.restore();
        if !before.is_empty() {
            t.notes.push(format!("the resting state was not restored before the run: {}", before.join("; ")));
        }
        let loaded = s.loads_module
            || t.record("load driver", driver.load("").map_or_else(Outcome::from, |()| Outcome::Ok(Vec::new())));
        if loaded {
            t.append((s.run)(&ctx));
        }
        guard.1 = false;
        let after = self.world.restore();
        if !after.is_empty() {
            t.notes.push(format!("cleanup after the run: {}", after.join("; ")));
        }
        let t = Rc::new(t);
        self.cache.borrow_mut().insert((ti, si, rust), Rc::clone(&t));
        t
    }

    /// The KTAP result of one driver's run: its own expectations.
    fn expectations(&self, ti: usize, si: usize, rust: bool, site: &Site) -> CaseResult {
        let t = self.transcript(ti, si, rust, site);
        let ctx = self.ctx(rust, site);
        let s = &self.scenarios[si];
        judge(ctx.driver, ctx.bdf(), s.rule, &t, (s.expect)(&ctx, &t), self.verbose)
    }

    /// The KTAP result of comparing the two drivers' transcripts.
    fn comparison(&self, ti: usize, si: usize, site: &Site) -> CaseResult {
        let c = self.transcript(ti, si, false, site);
        let r = self.transcript(ti, si, true, site);
        let cmp = compare(&c, &r, REFERENCE_NAME, RUST_NAME);
        // Every step that answered with an errno, for the errno table (scripts/guest.sh
        // collects these lines into the run's errno-steps.tsv; they are not shown).
        for e in errno_steps(&c, &r) {
            let case = format!("{}/{}", self.topos[ti].name, self.scenarios[si].name);
            println!("HARNESS: errno {case}\t{}\t{}\t{}", e.step, e.reference, e.candidate);
        }
        let mut notes: Vec<String> = cmp.uncompared.iter().map(|u| format!("not compared: {u}")).collect();
        if !c.info.is_empty() || !r.info.is_empty() {
            notes.push("not compared: the runs' timing-dependent diagnostics (outcome counts)".into());
        }
        // Timing decides which errnos a race meets: a difference is shown, not a failure
        // (each run's own rule already failed it for an errno outside the allowed set).
        for d in loose_differences(&c, &r, REFERENCE_NAME, RUST_NAME) {
            notes.push(format!("loosely compared, differs (not a failure): {d}"));
        }
        match cmp.difference {
            None => CaseResult::pass().with_notes(notes),
            Some(d) => CaseResult::fail(vec![format!("first difference: {d}")]).with_notes(notes),
        }
    }

    fn module_load_unload(&self) -> CaseResult {
        let mut t = Transcript::new();
        let mut guard = RestoreOnUnwind(&self.world, true);
        let before = self.world.restore();
        if !before.is_empty() {
            t.notes.push(format!("the resting state was not restored before the run: {}", before.join("; ")));
        }
        t.append(scenarios::module_load_unload(&self.rust));
        guard.1 = false;
        let after = self.world.restore();
        if !after.is_empty() {
            t.notes.push(format!("cleanup after the run: {}", after.join("; ")));
        }
        let failures = scenarios::expect_module_load_unload(&self.rust, &t);
        judge(&self.rust, "no function", scenarios::MODULE_LOAD_UNLOAD_RULE, &t, failures, self.verbose)
    }

    /// The cases, in KTAP order.
    fn cases(&self) -> Vec<Case<'_>> {
        let mut cases: Vec<Case<'_>> =
            self.kunit.iter().map(|(name, result)| Case::new(name.clone(), move || result.clone())).collect();
        if !self.noiommu && !self.aer && self.framebuffer.is_none() {
            cases.push(Case::new("module_load_unload", || self.module_load_unload()));
        }
        if let Some(e) = &self.topology_error {
            let e = e.clone();
            cases.push(Case::new("topology file", move || CaseResult::fail(vec![e.clone()])));
        }
        for (ti, topo) in self.topos.iter().enumerate() {
            for (si, s) in self.scenarios.iter().enumerate() {
                if !vga::pairs(&topo.name, s.name) {
                    continue;
                }
                let base = format!("{}/{}", topo.name, s.name);
                let names = [
                    format!("{base}: {REFERENCE_NAME}"),
                    format!("{base}: {RUST_NAME}"),
                    format!("{base}: {RUST_NAME} transcript matches {REFERENCE_NAME}"),
                ];
                for (k, name) in names.into_iter().enumerate() {
                    // A framebuffer guest runs one driver; the harness compares the boots.
                    if let Some(rust) = self.framebuffer {
                        if k != usize::from(rust) {
                            continue;
                        }
                    }
                    let case = match &topo.target {
                        Target::Skip(why) => {
                            let why = why.clone();
                            Case::new(name, move || CaseResult::skip(why.clone()))
                        }
                        Target::Broken(why) => {
                            let why = why.clone();
                            Case::new(name, move || CaseResult::fail(vec![why.clone()]))
                        }
                        Target::Ready(site) => match (s.applies)(site) {
                            Err(why) => Case::new(name, move || CaseResult::skip(why.clone())),
                            Ok(()) => match k {
                                _ if self.framebuffer.is_some() => {
                                    Case::new(name, move || self.framebuffer_run(ti, si, k == 1, site))
                                }
                                0 => Case::new(name, move || self.expectations(ti, si, false, site)),
                                1 => Case::new(name, move || self.expectations(ti, si, true, site)),
                                _ => Case::new(name, move || self.comparison(ti, si, site)),
                            },
                        },
                    };
                    cases.push(case);
                }
            }
        }
        if self.noiommu || self.aer || self.framebuffer.is_some() {
            return cases;
        }
        let env =
            clients::Env { world: &self.world, reference: &self.reference, rust: &self.rust, runs: &self.client_runs };
        cases.extend(clients::cases(env, |name| match self.topos.iter().find(|t| t.name == name) {
            None => clients::Place::Skip(format!("topology {name} is not in the topology file")),
            Some(t) => match &t.target {
                Target::Ready(site) => clients::Place::Ready(site),
                Target::Skip(why) => clients::Place::Skip(why.clone()),
                Target::Broken(why) => clients::Place::Broken(why.clone()),
            },
        }));
        cases
    }
}

/// Restores the resting state when a run unwinds (a panic, i.e. a bug in
/// this program) before it could restore it itself; disarmed otherwise.
/// The scenario's fds are closed by then: they live in inner frames.
struct RestoreOnUnwind<'a>(&'a World, bool);

impl Drop for RestoreOnUnwind<'_> {
    fn drop(&mut self) {
        if self.1 {
            let _ = self.0.restore();
        }
    }
}

/// A driver run passes when its expectations hold and its notes are empty;
/// a failing one (or any, with --verbose) shows the whole transcript.
fn judge(
    driver: &Driver,
    bdf: &str,
    rule: &str,
    t: &Transcript,
    mut failures: Vec<String>,
    verbose: bool,
) -> CaseResult {
    failures.extend(t.notes.iter().cloned());
    if failures.is_empty() {
        let shown = if verbose { transcript_lines(driver, bdf, t) } else { Vec::new() };
        return CaseResult::pass().with_notes(t.info.iter().cloned()).with_notes(shown);
    }
    failures.insert(0, format!("rule: {rule}"));
    failures.extend(t.info.iter().cloned());
    failures.extend(transcript_lines(driver, bdf, t));
    CaseResult::fail(failures)
}

fn transcript_lines(driver: &Driver, bdf: &str, t: &Transcript) -> Vec<String> {
    let mut lines = vec![format!("transcript ({} on {bdf}):", driver.name)];
    lines.extend(t.render());
    lines
}

fn main() {
    // The second process of the stress cases (stress.rs), started by the test program itself.
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some(stress::WORKER_ARG) {
        std::process::exit(stress::worker_main(&argv[1..]));
    }
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("vfio-pci-rs-tests: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Some(bdf) = &args.demo {
        std::process::exit(demo::run(bdf));
    }
    if args.bench {
        let topology = std::env::var_os("VFIO_PCI_RS_TOPOLOGY")
            .map_or_else(|| PathBuf::from("/etc/vfio-pci-rs/topology"), PathBuf::from);
        let ko = std::env::var_os("VFIO_PCI_RS_KO").map(PathBuf::from);
        std::process::exit(bench::run(&topology, ko.as_deref(), args.filter.as_deref()));
    }
    if args.self_check {
        let cases = harness::filter(selfcheck::cases(), args.filter.as_deref());
        std::process::exit(harness::run_all(&cases, args.timeout));
    }
    let mut suite = Suite::discover(args.verbose, args.noiommu, args.aer, args.framebuffer);
    if args.list {
        // Known only once the module has been loaded: listing does not load it.
        println!("kunit/{}*/... (the module's KUnit cases, read from the log of its first load)", kunit::PREFIX);
        for c in &harness::filter(suite.cases(), args.filter.as_deref()) {
            println!("{}", c.name);
        }
        return;
    }
    // The first load of the module, before any case: its KUnit suites run and are read back
    // (in the normal guests: the noiommu and AER guests run only their own cases).
    if !args.noiommu && !args.aer && args.framebuffer.is_none() {
        suite.kunit = kunit::collect(&suite.rust);
    }
    let cases = harness::shard(harness::filter(suite.cases(), args.filter.as_deref()), args.shard);
    std::process::exit(harness::run_all(&cases, args.timeout));
}
