//! Benchmark results: parsing the `BENCH <name> median_ns=<n> median_ticks=<t>
//! iterations=<k>` lines benchmark PDs (and the Linux guest's benchmark program) print,
//! and printing them as a table. The VM benchmarks are in [`vm`].

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
    for w in words {
        let (key, value) = w.split_once('=').ok_or_else(|| format!("'{w}' is not key=value"))?;
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

/// The results as an aligned text table.
pub fn table(results: &[BenchResult]) -> String {
    let headers = ["benchmark", "median ns", "median ticks", "iterations"];
    let rows: Vec<[String; 4]> = results
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.median_ns.to_string(),
                r.median_ticks.to_string(),
                r.iterations.to_string(),
            ]
        })
        .collect();
    let mut width = headers.map(str::len);
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 4]| {
        let _ = writeln!(
            out,
            "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3]
        );
    };
    line(headers);
    let rule = width.map(|w| "-".repeat(w));
    line([&rule[0], &rule[1], &rule[2], &rule[3]]);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3]]);
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
                    iterations: 1000
                },
                BenchResult {
                    name: "notify".into(),
                    median_ns: 800,
                    median_ticks: 50,
                    iterations: 1000
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
