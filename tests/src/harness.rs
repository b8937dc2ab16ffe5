//! The test registry and runner: a list of named cases whose length is
//! known before the first one runs, each run under `catch_unwind` (a panic
//! is a programming error, reported as `not ok`, not the end of the run),
//! and a watchdog that turns a hung case into `not ok` lines for it and
//! every case after it, so the KTAP stream stays complete.

use crate::ktap::{CaseResult, Ktap};
use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::process;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// One KTAP line to produce.
pub struct Case<'a> {
    pub name: String,
    pub run: Box<dyn Fn() -> CaseResult + 'a>,
}

impl<'a> Case<'a> {
    pub fn new(name: impl Into<String>, run: impl Fn() -> CaseResult + 'a) -> Case<'a> {
        Case { name: name.into(), run: Box::new(run) }
    }
}

/// Keep only the cases whose name contains `filter`.
pub fn filter<'a>(cases: Vec<Case<'a>>, filter: Option<&str>) -> Vec<Case<'a>> {
    match filter {
        None => cases,
        Some(f) => cases.into_iter().filter(|c| matches_filter(&c.name, f)).collect(),
    }
}

/// Whether a case name matches a filter: one substring, or several separated by commas (no
/// case name has a comma), any of which may match.
pub fn matches_filter(name: &str, filter: &str) -> bool {
    filter.split(',').any(|part| !part.is_empty() && name.contains(part))
}

/// One of N interleaved shares of a case list: `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// `K/N` with `K < N`.
    pub fn parse(s: &str) -> Option<Shard> {
        let (k, n) = s.split_once('/')?;
        let (index, count) = (k.parse().ok()?, n.parse().ok()?);
        (index < count).then_some(Shard { index, count })
    }
}

/// The scenario a case belongs to: its name up to the last `": "` (the runs of one scenario on
/// each driver and their comparison share it, and the comparison reuses the runs).
fn scenario(name: &str) -> &str {
    name.rsplit_once(": ").map_or(name, |(scenario, _)| scenario)
}

/// Keep the cases of one shard: the scenarios, in the order they first appear, are dealt out
/// to the shards in turn, so that a scenario's runs and comparison stay together (the
/// comparison reuses the runs) and each group of scenarios, which tend to cost alike, is
/// spread over all shards.
pub fn shard<'a>(cases: Vec<Case<'a>>, shard: Option<Shard>) -> Vec<Case<'a>> {
    let Some(Shard { index, count }) = shard else { return cases };
    let mut ordinal: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    cases
        .into_iter()
        .filter(|c| {
            let next = ordinal.len();
            let n = *ordinal.entry(scenario(&c.name).to_string()).or_insert(next);
            n % count == index
        })
        .collect()
}

/// Run one case, turning a panic into a failure.
pub fn run_case(case: &Case) -> CaseResult {
    match panic::catch_unwind(AssertUnwindSafe(|| (case.run)())) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            CaseResult::fail(vec![format!("panicked (a bug in the test program): {msg}")])
        }
    }
}

struct State<W: Write> {
    ktap: Ktap<W>,
    /// The case running now and since when.
    current: Option<(usize, Instant)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The per-case timeout the test program allows by default; a run given a longer one
/// (`--timeout`, the kasan kernel's 1200 s) is on a kernel that much slower.
pub const DEFAULT_CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// How many times slower than the test kernel this run's kernel is taken to be: the case
/// timeout over the default one, at least 1 (set by [`run_all`]). Deadlines inside a case
/// (a client's run, QEMU's) scale by it, so they stay under the case's own.
static SLOWDOWN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Scales `deadline` by the run's slowdown ([`SLOWDOWN`]).
pub fn scaled(deadline: Duration) -> Duration {
    deadline * SLOWDOWN.load(std::sync::atomic::Ordering::Relaxed)
}

/// The slowdown a case timeout of `timeout` means: whole multiples of the default, at least 1.
pub fn slowdown_of(timeout: Duration) -> u32 {
    u32::try_from(timeout.as_secs() / DEFAULT_CASE_TIMEOUT.as_secs()).unwrap_or(u32::MAX).max(1)
}

/// Run every case and report it to stdout; returns the process exit code
/// (0 iff nothing failed).  A case running longer than `timeout` is
/// reported failed, the remaining ones as not run, and the process exits.
pub fn run_all(cases: &[Case], timeout: Duration) -> i32 {
    SLOWDOWN.store(slowdown_of(timeout), std::sync::atomic::Ordering::Relaxed);
    let names: Vec<String> = cases.iter().map(|c| c.name.clone()).collect();
    let ktap = match Ktap::start(io::stdout(), cases.len()) {
        Ok(k) => k,
        Err(_) => return 2,
    };
    let state = Arc::new(Mutex::new(State { ktap, current: None }));
    {
        let state = Arc::clone(&state);
        thread::spawn(move || watchdog(state, names, timeout));
    }
    // scripts/guest.sh collects how long each case took (lines it does not show) to see where
    // a run's time goes and how evenly its shards share it.
    let times = std::env::var_os("VFIO_PCI_RS_CASE_TIMES").is_some();
    for (i, case) in cases.iter().enumerate() {
        let t0 = Instant::now();
        lock(&state).current = Some((i, t0));
        let result = run_case(case);
        let mut st = lock(&state);
        st.current = None;
        // stdout gone: nothing sensible left to do but carry on.
        let _ = st.ktap.report(&case.name, &result);
        if times {
            let _ = st.ktap.raw_line(&format!("HARNESS: time {} {}", t0.elapsed().as_millis(), case.name));
        }
    }
    let mut st = lock(&state);
    match st.ktap.finish() {
        Ok(true) => 0,
        _ => 1,
    }
}

fn watchdog<W: Write>(state: Arc<Mutex<State<W>>>, names: Vec<String>, timeout: Duration) {
    loop {
        thread::sleep(Duration::from_millis(250));
        let mut st = lock(&state);
        let Some((i, since)) = st.current else { continue };
        if since.elapsed() < timeout {
            continue;
        }
        let hung = CaseResult::fail(vec![format!(
            "no result after {}s: the case is stuck (a device fd left open across an unbind, or a driver that does not return); giving up on the run",
            timeout.as_secs()
        )]);
        let _ = st.ktap.report(&names[i], &hung);
        let not_run = CaseResult::fail(vec!["not run: an earlier case hung".into()]);
        for name in &names[i + 1..] {
            let _ = st.ktap.report(name, &not_run);
        }
        let _ = st.ktap.finish();
        process::exit(1);
    }
}
