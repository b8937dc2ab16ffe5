//! The module's KUnit suites, counted as cases of this suite.
//!
//! `#[kunit_tests(NAME)]` modules of vfio-pci-rs run inside the kernel when the module is
//! loaded (CONFIG_KUNIT=y) and print KTAP to the kernel log. Before the first case, the
//! harness loads the module once, reads what that load printed through `/dev/kmsg`, and
//! unloads it again; then it sets KUnit's `filter_glob` so that the later loads of the module
//! (hundreds, in a full run) do not run the suites again. Every suite whose name starts with [`PREFIX`] becomes cases
//! `kunit/SUITE/CASE` with KUnit's verdict (`ok`, `not ok`, `# SKIP`) and the assertion
//! messages as diagnostics.
//!
//! Which suites to expect is read from the module file itself: the ELF section
//! `.kunit_test_suites` holds one pointer per suite, relocated against the `kunit_suite`
//! whose first field is the name. A suite the file has but the log does not show (not run,
//! crashed before its result line, KUnit disabled), a suite whose plan and results disagree,
//! a suite KUnit reports failed although no case did (its init failed), and a module with no
//! suite at all are failed cases too. A crash inside a test case is `not ok` from KUnit itself
//! (its try-catch thread died), and the splat in the console log fails the run besides.

use crate::driver::{self, Driver, Kind, RUST_MODULE};
use crate::ktap::{CaseResult, Verdict};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

/// The suites of this module: their names start with this.
pub const PREFIX: &str = "vfio_pci_rs";

/// KUnit's suite filter, writable at run time: set after the first load to a glob no suite
/// name matches (`-` is not in identifiers), so later loads of the module run no KUnit test.
const FILTER_GLOB: &str = "/sys/module/kunit/parameters/filter_glob";
const RAN_ONCE: &str = "ran-once-at-the-first-load";

/// O_NONBLOCK (x86-64).
const O_NONBLOCK: i32 = 0o4000;

/// One KUnit test case as the log reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KunitCase {
    pub name: String,
    pub verdict: Verdict,
    /// The `# ...` lines KUnit printed before its result (assertion messages).
    pub diagnostics: Vec<String>,
}

/// One KUnit suite as the log reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KunitSuite {
    pub name: String,
    /// The suite's `1..N`.
    pub planned: Option<usize>,
    pub cases: Vec<KunitCase>,
    /// The suite's own result line (`ok N NAME` at the top level); None if it never came.
    pub result: Option<Verdict>,
}

/// Parses the kernel log lines one module load printed into the KTAP suites whose name starts
/// with `prefix`. Lines of other origin may be interleaved; they are ignored.
pub fn parse_log<S: AsRef<str>>(lines: &[S], prefix: &str) -> Vec<KunitSuite> {
    let mut suites: Vec<KunitSuite> = Vec::new();
    // The suite being read, and the diagnostics since its last case result.
    let mut current: Option<(KunitSuite, Vec<String>)> = None;
    for line in lines {
        let line = line.as_ref();
        let indent = line.len() - line.trim_start_matches(' ').len();
        let text = line.trim();
        if indent == 4 && text.starts_with("# Subtest: ") {
            if let Some((s, _)) = current.take() {
                suites.push(s);
            }
            let name = text["# Subtest: ".len()..].trim().to_string();
            if name.starts_with(prefix) {
                current = Some((KunitSuite { name, planned: None, cases: Vec::new(), result: None }, Vec::new()));
            }
            continue;
        }
        let Some((suite, diags)) = current.as_mut() else { continue };
        if indent == 0 {
            // The suite's own result line ends it; its stats line ("# NAME: pass:...") and
            // unrelated messages are skipped.
            if let Some((verdict, name)) = result_line(text) {
                if name == suite.name {
                    suite.result = Some(verdict);
                    if let Some((s, _)) = current.take() {
                        suites.push(s);
                    }
                }
            }
            continue;
        }
        if indent != 4 {
            // Deeper levels (parameterised cases) and kernel messages of other origin with
            // odd indentation: kept as diagnostics of the next case.
            if text.starts_with('#') || text.starts_with("ok ") || text.starts_with("not ok ") {
                diags.push(text.to_string());
            }
            continue;
        }
        if let Some(n) = text.strip_prefix("1..") {
            suite.planned = n.trim().parse().ok();
        } else if let Some(d) = text.strip_prefix('#') {
            let d = d.trim_start();
            if !is_attribute(d) {
                diags.push(d.to_string());
            }
        } else if let Some((verdict, name)) = result_line(text) {
            suite.cases.push(KunitCase { name, verdict, diagnostics: std::mem::take(diags) });
        } else if !text.is_empty() && text != "KTAP version 1" {
            // The rest of an assertion message ("Expected ... to be true, but is false").
            diags.push(text.to_string());
        }
    }
    if let Some((s, _)) = current.take() {
        suites.push(s);
    }
    suites
}

/// KUnit's attribute lines (`# speed: normal`, `# CASE.speed: normal`, `# module: NAME`): not
/// diagnostics.
fn is_attribute(d: &str) -> bool {
    let Some((key, _)) = d.split_once(": ") else { return false };
    let attr = key.rsplit_once('.').map_or(key, |(_, a)| a);
    matches!(attr, "speed" | "module" | "is_init") && !key.contains(' ')
}

/// `ok N NAME`, `not ok N NAME`, `ok N NAME # SKIP reason`.
fn result_line(text: &str) -> Option<(Verdict, String)> {
    let (ok, rest) = if let Some(r) = text.strip_prefix("not ok ") {
        (false, r)
    } else if let Some(r) = text.strip_prefix("ok ") {
        (true, r)
    } else {
        return None;
    };
    let (num, rest) = rest.split_once(' ')?;
    num.parse::<usize>().ok()?;
    let (name, directive) = match rest.split_once(" # ") {
        Some((n, d)) => (n.trim(), Some(d.trim())),
        None => (rest.trim(), None),
    };
    let verdict = match directive {
        Some(d) if d.len() >= 4 && d[..4].eq_ignore_ascii_case("skip") => Verdict::Skip(d[4..].trim().to_string()),
        _ if ok => Verdict::Pass,
        _ => Verdict::Fail,
    };
    Some((verdict, name.to_string()))
}

/// The names of the KUnit suites a module file carries: the targets of the relocations of its
/// `.kunit_test_suites` section (one `struct kunit_suite *` per suite), read as the NUL-ended
/// name at the start of each `struct kunit_suite`. ELF64 little-endian relocatable objects only.
pub fn suites_in_module(image: &[u8]) -> Result<Vec<String>, String> {
    let u16_at = |o: usize| image.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| image.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |o: usize| image.get(o..o + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let bad = |what: &str| format!("not a module file this parser reads: {what}");
    if image.get(..4) != Some(b"\x7fELF") || image.get(4) != Some(&2) || image.get(5) != Some(&1) {
        return Err(bad("not ELF64 little-endian"));
    }
    let shoff = u64_at(0x28).ok_or_else(|| bad("truncated header"))? as usize;
    let shentsize = u16_at(0x3a).ok_or_else(|| bad("truncated header"))? as usize;
    let shnum = u16_at(0x3c).ok_or_else(|| bad("truncated header"))? as usize;
    let shstrndx = u16_at(0x3e).ok_or_else(|| bad("truncated header"))? as usize;
    if shentsize < 0x40 {
        return Err(bad("section header size"));
    }
    struct Sh {
        name: u32,
        kind: u32,
        offset: usize,
        size: usize,
        link: usize,
        info: usize,
        entsize: usize,
    }
    let mut sections = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        let field = |o: usize| u64_at(h + o).map(|v| v as usize).ok_or_else(|| bad("truncated section header"));
        sections.push(Sh {
            name: u32_at(h).ok_or_else(|| bad("truncated section header"))?,
            kind: u32_at(h + 4).ok_or_else(|| bad("truncated section header"))?,
            offset: field(0x18)?,
            size: field(0x20)?,
            link: u32_at(h + 0x28).ok_or_else(|| bad("truncated section header"))? as usize,
            info: u32_at(h + 0x2c).ok_or_else(|| bad("truncated section header"))? as usize,
            entsize: field(0x38)?,
        });
    }
    let cstr_at = |o: usize| -> Option<String> {
        let tail = image.get(o..)?;
        let end = tail.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&tail[..end]).into_owned())
    };
    let strtab = sections.get(shstrndx).ok_or_else(|| bad("section name table index"))?.offset;
    let name_of = |s: &Sh| cstr_at(strtab + s.name as usize).unwrap_or_default();
    let Some(target) = sections.iter().position(|s| name_of(s) == ".kunit_test_suites") else {
        return Ok(Vec::new());
    };
    let pointers = sections[target].size / 8;
    const SHT_RELA: u32 = 4;
    let rela = sections
        .iter()
        .find(|s| s.kind == SHT_RELA && s.info == target)
        .ok_or_else(|| bad("no relocations for .kunit_test_suites"))?;
    let symtab = sections.get(rela.link).ok_or_else(|| bad("relocation symbol table index"))?;
    if rela.entsize != 24 || symtab.entsize != 24 {
        return Err(bad("relocation or symbol entry size"));
    }
    let mut names = Vec::new();
    for r in 0..rela.size / 24 {
        let e = rela.offset + r * 24;
        let info = u64_at(e + 8).ok_or_else(|| bad("truncated relocation"))?;
        let addend = u64_at(e + 16).ok_or_else(|| bad("truncated relocation"))?;
        let sym = symtab.offset + (info >> 32) as usize * 24;
        let shndx = u16_at(sym + 6).ok_or_else(|| bad("truncated symbol"))? as usize;
        let value = u64_at(sym + 8).ok_or_else(|| bad("truncated symbol"))?;
        let home = sections.get(shndx).ok_or_else(|| bad("symbol section index"))?;
        let at = home.offset + value.wrapping_add(addend) as usize;
        names.push(cstr_at(at).ok_or_else(|| bad("suite name outside the file"))?);
    }
    if names.len() != pointers {
        return Err(format!(".kunit_test_suites holds {pointers} pointers but {} relocations", names.len()));
    }
    Ok(names)
}

/// Splits the records read from `/dev/kmsg` (`prio,seq,time,flags;text`, then ` KEY=value`
/// lines) into the text lines they hold, undoing the `\xNN` escapes; the later lines of a
/// record get its first line's indentation.
pub fn kmsg_lines(records: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    for rec in records {
        let Some(first) = rec.lines().next() else { continue };
        let Some((_, text)) = first.split_once(';') else { continue };
        // A message of several lines (an assertion whose expression spans lines) is one record:
        // its later lines belong at its first line's level, whatever their own indentation.
        let text = unescape(text);
        let mut parts = text.split('\n');
        let first = parts.next().unwrap_or_default();
        let indent = &first[..first.len() - first.trim_start_matches(' ').len()];
        lines.push(first.to_string());
        lines.extend(parts.map(|p| format!("{indent}{}", p.trim_start_matches(' '))));
    }
    lines
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            if let Some(v) = s.get(i + 2..i + 4).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads every record `/dev/kmsg` has after its current end, once `action` ran.
pub fn log_of<T>(action: impl FnOnce() -> T) -> Result<(T, Vec<String>), String> {
    let mut kmsg: File = OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open("/dev/kmsg")
        .map_err(|e| format!("open /dev/kmsg: {e}"))?;
    kmsg.seek(SeekFrom::End(0)).map_err(|e| format!("seek to the end of /dev/kmsg: {e}"))?;
    let out = action();
    let mut records = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match kmsg.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => records.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            // EPIPE: records were overwritten before we read them; the next read goes on.
            Err(e) if e.raw_os_error() == Some(32) => records.push("0,0,0,-;(kernel log records lost)".into()),
            Err(e) => return Err(format!("read /dev/kmsg: {e}")),
        }
    }
    Ok((out, records))
}

/// Loads the module once (no parameters), collects its KUnit results and unloads it; returns
/// the cases to report, in order.
pub fn collect(rust: &Driver) -> Vec<(String, CaseResult)> {
    let Kind::Module(Some(ko)) = &rust.kind else {
        return vec![("kunit".into(), CaseResult::fail(vec!["VFIO_PCI_RS_KO is not set".into()]))];
    };
    let mut pre = Vec::new();
    if driver::module_loaded(RUST_MODULE) {
        pre.push(format!("{RUST_MODULE} was loaded before the KUnit run: unloaded it first"));
        if let Err(e) = driver::rmmod(RUST_MODULE) {
            return vec![("kunit".into(), CaseResult::fail(vec![format!("rmmod {RUST_MODULE}: {e}")]))];
        }
    }
    let expected = match std::fs::read(ko).map_err(|e| format!("reading {}: {e}", ko.display())) {
        Ok(image) => suites_in_module(&image).map_err(|e| format!("{}: {e}", ko.display())),
        Err(e) => Err(e),
    };
    let (loaded, records) = match log_of(|| rust.load("")) {
        Ok(r) => r,
        Err(e) => return vec![("kunit".into(), CaseResult::fail(vec![e]))],
    };
    let unloaded = if loaded.is_ok() { driver::rmmod(RUST_MODULE).map_err(|e| e.to_string()) } else { Ok(()) };
    // The suites ran; the hundreds of loads that follow need not run them again.
    let quiet = std::fs::write(FILTER_GLOB, RAN_ONCE);
    let lines = kmsg_lines(&records);
    let mut cases = judge(expected, &lines, PREFIX);
    let mut setup = pre;
    if let Err(e) = loaded {
        setup.push(format!("insmod {}: {e}", ko.display()));
    }
    if let Err(e) = unloaded {
        setup.push(format!("rmmod {RUST_MODULE} after the KUnit run: {e}"));
    }
    if !setup.is_empty() {
        cases.insert(0, ("kunit: load and unload the module".into(), CaseResult::fail(setup)));
    }
    if let (Err(e), Some((_, last))) = (quiet, cases.last_mut()) {
        last.diagnostics.push(format!("writing {FILTER_GLOB}: {e} (KUnit will run at every load)"));
    }
    cases
}

/// Turns the expected suites and the log of one load into cases.
pub fn judge<S: AsRef<str>>(
    expected: Result<Vec<String>, String>,
    lines: &[S],
    prefix: &str,
) -> Vec<(String, CaseResult)> {
    let mut cases = Vec::new();
    let found = parse_log(lines, prefix);
    let expected = match expected {
        Ok(e) => e,
        Err(e) => {
            cases.push(("kunit: the module's suites".into(), CaseResult::fail(vec![e])));
            Vec::new()
        }
    };
    for name in &expected {
        if !name.starts_with(prefix) {
            cases.push((
                format!("kunit/{name}"),
                CaseResult::fail(vec![format!(
                    "the module has KUnit suite {name:?}, whose name does not start with {prefix:?}: rename it"
                )]),
            ));
        }
    }
    let ours: Vec<&String> = expected.iter().filter(|n| n.starts_with(prefix)).collect();
    if ours.is_empty() && cases.is_empty() {
        cases.push((
            "kunit: the module has KUnit suites".into(),
            CaseResult::fail(vec![format!(
                "no suite in the module's .kunit_test_suites section (is CONFIG_KUNIT=y in the test kernel?)"
            )]),
        ));
    }
    for name in &ours {
        if !found.iter().any(|s| &&s.name == name) {
            let mut why = vec![format!("the module has KUnit suite {name}, but loading it printed no such suite")];
            if lines.iter().any(|l| l.as_ref().contains("kunit: disabled")) {
                why.push("the kernel log says \"kunit: disabled\"".into());
            }
            cases.push((format!("kunit/{name}"), CaseResult::fail(why)));
        }
    }
    for s in &found {
        for c in &s.cases {
            let result = CaseResult { verdict: c.verdict.clone(), diagnostics: c.diagnostics.clone() };
            cases.push((format!("kunit/{}/{}", s.name, c.name), result));
        }
        let mut problems = Vec::new();
        if !expected.is_empty() && !ours.contains(&&s.name) {
            problems.push(format!("the log shows suite {}, which the module file does not list", s.name));
        }
        match s.planned {
            Some(n) if n == s.cases.len() => {}
            Some(n) => {
                problems.push(format!("{n} cases planned, {} reported (a case crashed or hung?)", s.cases.len()))
            }
            None => problems.push("no plan line".into()),
        }
        match &s.result {
            None => problems.push("no result line for the suite (it crashed or hung?)".into()),
            Some(Verdict::Fail) if !s.cases.iter().any(|c| c.verdict == Verdict::Fail) => {
                problems.push("KUnit reports the suite failed though no case did (its init failed?)".into())
            }
            Some(_) => {}
        }
        if !problems.is_empty() {
            cases.push((format!("kunit/{}: the suite ran to its end", s.name), CaseResult::fail(problems)));
        }
    }
    cases
}
