//! Benchmark results: parsing the `BENCH <name> median_ns=<n> median_ticks=<t>
//! iterations=<k>` lines benchmark PDs (and the Linux guest's benchmark program) print,
//! and printing them as a table. The VM benchmarks are in [`vm`], the idle guest's
//! kernel work in [`idle`].

pub mod idle;
pub mod vm;

use std::fmt::Write as _;

/// One benchmark's figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchResult {
    /// What was measured.
    pub name: String,
    /// Median time of one iteration, nanoseconds.
    pub median_ns: u64,
    /// Median time of one iteration, counter ticks.
    pub median_ticks: u64,
    /// Number of iterations measured.
    pub iterations: u64,
    /// Kernel work per iteration, when the benchmark read the kernel's counters.
    pub per_op: Option<PerOp>,
}

/// Kernel events per benchmark iteration, in hundredths (`switches_per_op=2.01`
/// is 201), from the kernel's event counters read before and after the timed loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerOp {
    /// Context switches per iteration (all threads), ×100.
    pub switches_x100: u64,
    /// Kernel entries per iteration (all threads), ×100.
    pub entries_x100: u64,
}

/// Parses a decimal with at most two fraction digits ("2", "2.5", "2.05") into
/// hundredths.
fn hundredths(value: &str) -> Option<u64> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac = format!("{frac:0<2}").parse::<u64>().ok()?;
    int.parse::<u64>().ok()?.checked_mul(100)?.checked_add(frac)
}

/// Formats hundredths as a decimal with two fraction digits.
fn show_hundredths(v: u64) -> String {
    format!("{}.{:02}", v / 100, v % 100)
}

/// The word that marks a benchmark line (at the start of the line or after a PD's
/// prefix).
pub const BENCH_MARKER: &str = "BENCH";

/// Parses one line's text from `BENCH ` on.
fn parse_line(text: &str) -> Result<BenchResult, String> {
    let mut words = text.split_whitespace();
    words.next(); // "BENCH"
    let name = words.next().ok_or("no benchmark name")?.to_string();
    let (mut ns, mut ticks, mut iters) = (None, None, None);
    let (mut switches, mut entries) = (None, None);
    for w in words {
        let (key, value) = w.split_once('=').ok_or_else(|| format!("'{w}' is not key=value"))?;
        let decimal = match key {
            "switches_per_op" => Some(&mut switches),
            "entries_per_op" => Some(&mut entries),
            _ => None,
        };
        if let Some(slot) = decimal {
            *slot =
                Some(hundredths(value).ok_or_else(|| format!("{key}={value} is not a decimal with up to 2 places"))?);
            continue;
        }
        let slot = match key {
            "median_ns" => &mut ns,
            "median_ticks" => &mut ticks,
            "iterations" => &mut iters,
            // Later fields (e.g. min/max) are allowed and ignored here.
            _ => continue,
        };
        *slot = Some(
            value
                .parse::<u64>()
                .map_err(|_| format!("{key}={value} is not a whole number"))?,
        );
    }
    let need = |v: Option<u64>, key: &str| v.ok_or_else(|| format!("no {key}="));
    Ok(BenchResult {
        name,
        median_ns: need(ns, "median_ns")?,
        median_ticks: need(ticks, "median_ticks")?,
        iterations: need(iters, "iterations")?,
        per_op: match (switches, entries) {
            (Some(s), Some(e)) => Some(PerOp {
                switches_x100: s,
                entries_x100: e,
            }),
            (None, None) => None,
            _ => return Err("switches_per_op= and entries_per_op= come together".into()),
        },
    })
}

/// All `BENCH` lines in `output`, in order; a malformed one is an error naming it.
pub fn parse(output: &str) -> Result<Vec<BenchResult>, String> {
    let mut results = Vec::new();
    for line in output.lines() {
        // Only the whole word "BENCH": at the start or after a non-alphanumeric
        // character, and followed by white space or the end of the line.
        let word = line.match_indices(BENCH_MARKER).map(|(i, _)| i).find(|&i| {
            !line[..i].chars().next_back().is_some_and(char::is_alphanumeric)
                && line[i + BENCH_MARKER.len()..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace)
        });
        let Some(i) = word else { continue };
        results.push(parse_line(&line[i..]).map_err(|e| format!("bad benchmark line ({e}): {line}"))?);
    }
    Ok(results)
}

/// The results as an aligned text table (with kernel work per iteration when any
/// result has it).
pub fn table(results: &[BenchResult]) -> String {
    let with_per_op = results.iter().any(|r| r.per_op.is_some());
    let mut headers = vec!["benchmark", "median ns", "median ticks", "iterations"];
    if with_per_op {
        headers.extend(["switches/op", "entries/op"]);
    }
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let mut row = vec![
                r.name.clone(),
                r.median_ns.to_string(),
                r.median_ticks.to_string(),
                r.iterations.to_string(),
            ];
            if with_per_op {
                let (s, e) = match r.per_op {
                    Some(p) => (show_hundredths(p.switches_x100), show_hundredths(p.entries_x100)),
                    None => ("-".into(), "-".into()),
                };
                row.extend([s, e]);
            }
            row
        })
        .collect();
    let mut width: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&width).enumerate() {
            if i == 0 {
                let _ = write!(text, "{cell:<w$}");
            } else {
                let _ = write!(text, "  {cell:>w$}");
            }
        }
        let _ = writeln!(out, "{text}");
    };
    line(&headers);
    let rule: Vec<String> = width.iter().map(|&w| "-".repeat(w)).collect();
    line(&rule.iter().map(String::as_str).collect::<Vec<_>>());
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_lines() {
        let out = "vcpos|INFO: boot\n\
                   bench: BENCH ppc_roundtrip median_ns=1520 median_ticks=95 iterations=1000\n\
                   BENCH notify median_ns=800 median_ticks=50 iterations=1000 min_ns=700\n\
                   NOBENCH x\nTEST PASS: bench\n";
        let r = parse(out).unwrap();
        assert_eq!(
            r,
            vec![
                BenchResult {
                    name: "ppc_roundtrip".into(),
                    median_ns: 1520,
                    median_ticks: 95,
                    iterations: 1000,
                    per_op: None
                },
                BenchResult {
                    name: "notify".into(),
                    median_ns: 800,
                    median_ticks: 50,
                    iterations: 1000,
                    per_op: None
                },
            ]
        );
        let t = table(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "benchmark      median ns  median ticks  iterations");
        assert_eq!(lines[2], "ppc_roundtrip       1520            95        1000");
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn parses_and_shows_kernel_work_per_op() {
        let out = "BENCH ppc_roundtrip median_ns=1520 median_ticks=95 iterations=1000 switches_per_op=2.00 entries_per_op=2.5\n\
                   BENCH other median_ns=1 median_ticks=1 iterations=1\n";
        let r = parse(out).unwrap();
        assert_eq!(
            r[0].per_op,
            Some(PerOp {
                switches_x100: 200,
                entries_x100: 250
            })
        );
        assert_eq!(r[1].per_op, None);
        let t = table(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "benchmark      median ns  median ticks  iterations  switches/op  entries/op"
        );
        assert_eq!(
            lines[2],
            "ppc_roundtrip       1520            95        1000         2.00        2.50"
        );
        assert_eq!(
            lines[3],
            "other                  1             1           1            -           -"
        );
        for (bad, why) in [
            (
                "BENCH x median_ns=1 median_ticks=1 iterations=1 switches_per_op=2.001 entries_per_op=1",
                "up to 2 places",
            ),
            (
                "BENCH x median_ns=1 median_ticks=1 iterations=1 switches_per_op=2",
                "come together",
            ),
            (
                "BENCH x median_ns=1 median_ticks=1 iterations=1 switches_per_op=a entries_per_op=1",
                "switches_per_op=a",
            ),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn malformed_lines_are_errors() {
        for (line, why) in [
            ("BENCH x median_ns=1 median_ticks=2", "no iterations="),
            (
                "BENCH x median_ns=abc median_ticks=2 iterations=3",
                "median_ns=abc is not a whole number",
            ),
            ("BENCH", "no benchmark name"),
            ("BENCH x median_ns", "is not key=value"),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.contains(why) && e.contains(line), "{line}: {e}");
        }
        assert_eq!(parse("no figures here\n").unwrap(), vec![]);
    }
}
