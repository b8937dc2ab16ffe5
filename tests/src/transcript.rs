//! Transcripts: what a scenario observed, step by step, in a form that two
//! drivers can be compared on.
//!
//! A step's outcome is what user space can see: the values a call returned
//! (whole structures, not a verdict about them) or the errno it failed with.
//! Values that legitimately differ between drivers or runs are normalised
//! when recorded, never dropped: iommufd object ids become `ictx1#2` (the
//! second distinct id seen in that iommufd), the cdev index becomes
//! `vfio<N>` once its consistency has been checked, and the driver's own name
//! becomes `<driver under test>`.

use crate::sys::{Errno, Fail};
use std::fmt;

/// One observed value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Num(u64),
    Hex(u64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
    /// A value normalised at recording time (see the module comment).
    Norm(String),
    /// A set of names (sorted, each once) compared by inclusion, not equality: the candidate's
    /// set agrees with the reference's when each of its names is also in the reference's (the
    /// fault-injection cases: every errno vfio-pci-rs answers an injected failure with must be
    /// one vfio-pci answers too; `compare`).
    Among(Vec<String>),
}

impl Val {
    pub fn text(s: impl Into<String>) -> Val {
        Val::Text(s.into())
    }

    /// The number, for `Num` and `Hex`.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Val::Num(n) | Val::Hex(n) => Some(*n),
            _ => None,
        }
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Num(n) => write!(f, "{n}"),
            Val::Hex(n) => write!(f, "{n:#x}"),
            Val::Bool(b) => f.write_str(if *b { "yes" } else { "no" }),
            Val::Text(s) => write!(f, "{s:?}"),
            Val::Bytes(b) => {
                for (i, chunk) in b.chunks(4).enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    for byte in chunk {
                        write!(f, "{byte:02x}")?;
                    }
                }
                Ok(())
            }
            Val::Norm(s) => write!(f, "<{s}>"),
            Val::Among(names) => write!(f, "{{{}}}", names.join(", ")),
        }
    }
}

/// The fields of a successful step, in the order they were recorded.
pub type Fields = Vec<(&'static str, Val)>;

/// The observable result of one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok(Fields),
    Err(Errno),
    /// The step does not apply to this driver; it matches anything.
    Skipped(String),
    /// The test program could not make sense of what it saw (not an errno).
    Broken(String),
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }

    pub fn field(&self, key: &str) -> Option<&Val> {
        match self {
            Outcome::Ok(fields) => fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl From<Fail> for Outcome {
    fn from(f: Fail) -> Outcome {
        match f {
            Fail::Os(e) => Outcome::Err(e),
            Fail::Other(s) => Outcome::Broken(s),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok(fields) if fields.is_empty() => f.write_str("ok"),
            Outcome::Ok(fields) => {
                f.write_str("ok {")?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{k}={v}")?;
                }
                f.write_str("}")
            }
            Outcome::Err(e) => write!(f, "error {e}"),
            Outcome::Skipped(why) => write!(f, "skipped ({why})"),
            Outcome::Broken(why) => write!(f, "broken: {why}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    pub outcome: Outcome,
}

/// The scenario stopped because a step it depends on did not succeed; the
/// transcript ends with that step.
#[derive(Debug)]
pub struct Abort;

/// The ordered record of one scenario run against one driver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    pub steps: Vec<Step>,
    /// Problems outside the compared steps (cleanup that failed, a world
    /// that was not clean before the run).  Any note fails the run.
    pub notes: Vec<String>,
    /// Diagnostics that are neither compared nor a failure (counts of
    /// timing-dependent outcomes); always shown.
    pub info: Vec<String>,
    /// Sets compared loosely between the drivers (the outcomes each operation of a stress
    /// case saw, tests/src/stress.rs): a difference is reported with the comparison, not a
    /// failure; (name, the set's members, sorted).
    pub loose: Vec<(String, Vec<String>)>,
    /// Raw ids seen so far, per id space, for normalisation.
    ids: Vec<(String, u64)>,
}

impl Transcript {
    pub fn new() -> Transcript {
        Transcript::default()
    }

    /// Append a step.  Step names are unique within a transcript; reusing
    /// one is a programming error in the scenario.
    pub fn record(&mut self, name: impl Into<String>, outcome: Outcome) -> bool {
        let name = name.into();
        assert!(self.find(&name).is_none(), "step name {name:?} used twice in one scenario");
        let ok = outcome.is_ok();
        self.steps.push(Step { name, outcome });
        ok
    }

    /// Record the result of a fallible call; on success `render` turns the
    /// value into the step's fields.  Returns the value on success.
    pub fn step<T, E: Into<Fail>>(
        &mut self,
        name: &str,
        result: Result<T, E>,
        render: impl FnOnce(&T, &mut Transcript) -> Fields,
    ) -> Option<T> {
        match result {
            Ok(v) => {
                let fields = render(&v, self);
                self.record(name, Outcome::Ok(fields));
                Some(v)
            }
            Err(e) => {
                self.record(name, Outcome::from(e.into()));
                None
            }
        }
    }

    /// Like `step`, for a step the rest of the scenario depends on.
    pub fn need<T, E: Into<Fail>>(
        &mut self,
        name: &str,
        result: Result<T, E>,
        render: impl FnOnce(&T, &mut Transcript) -> Fields,
    ) -> Result<T, Abort> {
        self.step(name, result, render).ok_or(Abort)
    }

    /// Append all steps and notes of `other` (its ids were normalised in its
    /// own spaces).
    pub fn append(&mut self, other: Transcript) {
        for s in other.steps {
            self.record(s.name, s.outcome);
        }
        self.notes.extend(other.notes);
        self.info.extend(other.info);
        self.loose.extend(other.loose);
    }

    /// Normalise `raw` within id space `space` ("ictx1"): the first distinct
    /// id seen becomes `ictx1#1`, the next `ictx1#2`, and a repeat keeps its
    /// label, so equalities between ids survive normalisation.
    pub fn norm_id(&mut self, space: &str, raw: u64) -> Val {
        let seen: Vec<u64> = self.ids.iter().filter(|(s, _)| s == space).map(|(_, r)| *r).collect();
        let ordinal = match seen.iter().position(|r| *r == raw) {
            Some(i) => i + 1,
            None => {
                self.ids.push((space.to_string(), raw));
                seen.len() + 1
            }
        };
        Val::Norm(format!("{space}#{ordinal}"))
    }

    pub fn find(&self, name: &str) -> Option<&Outcome> {
        self.steps.iter().find(|s| s.name == name).map(|s| &s.outcome)
    }

    /// One line per step, for diagnostics.
    pub fn render(&self) -> Vec<String> {
        let mut lines: Vec<String> =
            self.steps.iter().enumerate().map(|(i, s)| format!("  {:2}. {}: {}", i + 1, s.name, s.outcome)).collect();
        lines.extend(self.notes.iter().map(|n| format!("  note: {n}")));
        lines
    }
}

/// The verdict of comparing a candidate transcript with the reference.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// The first difference, explained; None when the transcripts agree.
    pub difference: Option<String>,
    /// Steps that were not compared because one side skipped them.
    pub uncompared: Vec<String>,
}

/// Whether a candidate's outcome agrees with the reference's: they are equal, except that an
/// [`Val::Among`] field agrees when every name of the candidate's set is in the reference's.
pub fn agree(reference: &Outcome, candidate: &Outcome) -> bool {
    match (reference, candidate) {
        (Outcome::Ok(r), Outcome::Ok(c)) => {
            r.len() == c.len()
                && r.iter().zip(c).all(|((rk, rv), (ck, cv))| {
                    rk == ck
                        && match (rv, cv) {
                            (Val::Among(rs), Val::Among(cs)) => cs.iter().all(|n| rs.contains(n)),
                            _ => rv == cv,
                        }
                })
        }
        _ => reference == candidate,
    }
}

/// Compare step by step: same step names in the same order, outcomes that [`agree`].
/// A `Skipped` outcome on either side matches anything (and is listed).
pub fn compare(reference: &Transcript, candidate: &Transcript, ref_name: &str, cand_name: &str) -> Comparison {
    let mut cmp = Comparison::default();
    let n = reference.steps.len().max(candidate.steps.len());
    for i in 0..n {
        let no = i + 1;
        match (reference.steps.get(i), candidate.steps.get(i)) {
            (Some(r), Some(c)) => {
                if r.name != c.name {
                    cmp.difference = Some(format!(
                        "step {no}: {ref_name} did '{}' ({}), {cand_name} did '{}' ({})",
                        r.name, r.outcome, c.name, c.outcome
                    ));
                    return cmp;
                }
                match (&r.outcome, &c.outcome) {
                    (Outcome::Skipped(why), _) => {
                        cmp.uncompared.push(format!("step {no} '{}': skipped for {ref_name} ({why})", r.name))
                    }
                    (_, Outcome::Skipped(why)) => {
                        cmp.uncompared.push(format!("step {no} '{}': skipped for {cand_name} ({why})", r.name))
                    }
                    (a, b) if agree(a, b) => {}
                    (a, b) => {
                        cmp.difference =
                            Some(format!("step {no} '{}': {ref_name} gave {a}, {cand_name} gave {b}", r.name));
                        return cmp;
                    }
                }
            }
            (Some(r), None) => {
                cmp.difference = Some(format!(
                    "{cand_name} stopped after step {}; {ref_name} went on to step {no} '{}': {}",
                    i, r.name, r.outcome
                ));
                return cmp;
            }
            (None, Some(c)) => {
                cmp.difference = Some(format!(
                    "{ref_name} stopped after step {}; {cand_name} went on to step {no} '{}': {}",
                    i, c.name, c.outcome
                ));
                return cmp;
            }
            (None, None) => unreachable!("i < max(len)"),
        }
    }
    cmp
}

/// The loosely compared sets ([`Transcript::loose`]) that differ between two runs, one
/// sentence each: the names only one side has, and the members only one side saw.
pub fn loose_differences(
    reference: &Transcript,
    candidate: &Transcript,
    ref_name: &str,
    cand_name: &str,
) -> Vec<String> {
    let mut names: Vec<&str> = reference.loose.iter().chain(&candidate.loose).map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let get = |t: &'_ Transcript, n: &str| -> Vec<String> {
        t.loose.iter().filter(|(k, _)| k == n).flat_map(|(_, v)| v.iter().cloned()).collect()
    };
    let mut out = Vec::new();
    for n in names {
        let (r, c) = (get(reference, n), get(candidate, n));
        let only_r: Vec<&String> = r.iter().filter(|x| !c.contains(x)).collect();
        let only_c: Vec<&String> = c.iter().filter(|x| !r.contains(x)).collect();
        if only_r.is_empty() && only_c.is_empty() {
            continue;
        }
        let list = |v: &[&String]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        let mut parts = Vec::new();
        if !only_r.is_empty() {
            parts.push(format!("only {ref_name} saw {{{}}}", list(&only_r)));
        }
        if !only_c.is_empty() {
            parts.push(format!("only {cand_name} saw {{{}}}", list(&only_c)));
        }
        out.push(format!("{n}: {}", parts.join("; ")));
    }
    out
}

/// A step that ended in an errno on either driver: a row of the errno table
/// (Documentation/errno-table.rst, built from a run by scripts/errno-table.py).
#[derive(Debug, PartialEq, Eq)]
pub struct ErrnoStep<'a> {
    pub step: &'a str,
    pub reference: &'a Outcome,
    pub candidate: &'a Outcome,
}

/// The steps, in order, that both transcripts took at the same position and that failed
/// with an errno on at least one side (up to the transcripts' first divergence in names).
pub fn errno_steps<'a>(reference: &'a Transcript, candidate: &'a Transcript) -> Vec<ErrnoStep<'a>> {
    reference
        .steps
        .iter()
        .zip(&candidate.steps)
        .take_while(|(r, c)| r.name == c.name)
        .filter(|(r, c)| matches!(r.outcome, Outcome::Err(_)) || matches!(c.outcome, Outcome::Err(_)))
        .map(|(r, c)| ErrnoStep { step: &r.name, reference: &r.outcome, candidate: &c.outcome })
        .collect()
}

/// Checks a transcript against a scenario's documented expectations and
/// collects every violation as a sentence.
pub struct Expect<'a> {
    t: &'a Transcript,
    failures: Vec<String>,
    missing: Vec<String>,
}

impl<'a> Expect<'a> {
    pub fn new(t: &'a Transcript) -> Expect<'a> {
        Expect { t, failures: Vec::new(), missing: Vec::new() }
    }

    fn get(&mut self, step: &str) -> Option<&'a Outcome> {
        let o = self.t.find(step);
        if o.is_none() && !self.missing.iter().any(|m| m == step) {
            self.missing.push(step.to_string());
        }
        o
    }

    fn fail(&mut self, msg: String) {
        self.failures.push(msg);
    }

    /// The step succeeded.
    pub fn ok(&mut self, step: &str) -> bool {
        match self.get(step) {
            Some(Outcome::Ok(_)) => true,
            Some(o) => {
                self.fail(format!("'{step}': expected success, got {o}"));
                false
            }
            None => false,
        }
    }

    /// The step succeeded, or does not apply to this driver.
    pub fn ok_or_skipped(&mut self, step: &str) {
        match self.get(step) {
            Some(Outcome::Ok(_)) | Some(Outcome::Skipped(_)) | None => {}
            Some(o) => self.fail(format!("'{step}': expected success, got {o}")),
        }
    }

    /// The step failed with exactly `errno`.
    pub fn err(&mut self, step: &str, errno: Errno) {
        match self.get(step) {
            Some(Outcome::Err(e)) if *e == errno => {}
            Some(o) => self.fail(format!("'{step}': expected error {errno}, got {o}")),
            None => {}
        }
    }

    /// The step failed with some errno (which one is left to the comparison).
    pub fn fails(&mut self, step: &str) {
        match self.get(step) {
            Some(Outcome::Err(_)) => {}
            Some(o) => self.fail(format!("'{step}': expected an error, got {o}")),
            None => {}
        }
    }

    /// The step failed with `errno`, or does not apply to this driver.
    pub fn err_or_skipped(&mut self, step: &str, errno: Errno) {
        match self.get(step) {
            Some(Outcome::Skipped(_)) => {}
            _ => self.err(step, errno),
        }
    }

    /// Field `key` of a successful step equals `want`.
    pub fn val(&mut self, step: &str, key: &str, want: &Val) {
        if let Some(got) = self.field(step, key) {
            if got != want {
                self.fail(format!("'{step}': expected {key}={want}, got {key}={got}"));
            }
        }
    }

    /// Numeric field `key` equals `want`.
    pub fn num(&mut self, step: &str, key: &str, want: u64) {
        if let Some(got) = self.field(step, key) {
            if got.as_u64() != Some(want) {
                self.fail(format!("'{step}': expected {key}={want}, got {key}={got}"));
            }
        }
    }

    /// Numeric field `key` is at least `min`.
    pub fn at_least(&mut self, step: &str, key: &str, min: u64) {
        if let Some(got) = self.field(step, key) {
            if got.as_u64().is_none_or(|n| n < min) {
                self.fail(format!("'{step}': expected {key} >= {min}, got {key}={got}"));
            }
        }
    }

    /// Numeric field `key` has every bit of `mask` set.
    pub fn bits(&mut self, step: &str, key: &str, mask: u64) {
        if let Some(got) = self.field(step, key) {
            if got.as_u64().is_none_or(|n| n & mask != mask) {
                self.fail(format!("'{step}': expected {key} to contain {mask:#x}, got {key}={got}"));
            }
        }
    }

    fn field(&mut self, step: &str, key: &str) -> Option<&'a Val> {
        match self.get(step)? {
            o @ Outcome::Ok(_) => {
                let v = o.field(key);
                if v.is_none() {
                    self.fail(format!("'{step}': no field {key} in {o}"));
                }
                v
            }
            o => {
                self.fail(format!("'{step}': expected success with {key}, got {o}"));
                None
            }
        }
    }

    /// Every violation, the unreached steps last.
    pub fn finish(mut self) -> Vec<String> {
        if !self.missing.is_empty() {
            let last = self.t.steps.last().map(|s| format!("'{}' ({})", s.name, s.outcome));
            self.failures.push(format!(
                "not reached: {} (the scenario stopped after {})",
                self.missing.join(", "),
                last.unwrap_or_else(|| "no step at all".into())
            ));
        }
        self.failures
    }
}
