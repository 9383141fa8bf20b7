//! Name tables of a system (memory regions and PDs by name), how names are shown in
//! messages, and the nearest defined name for a reference to an unknown one; used by the cross-element rules ([`super::check`], [`super::memory`],
//! [`super::ids`]).

use std::collections::HashMap;

/// Name → index tables (first definition wins when a name is duplicated).
pub struct Names<'r> {
    /// Memory region names → index in [`super::ast::RawSystem::mrs`].
    pub mrs: HashMap<&'r str, usize>,
    /// PD names → index in [`super::ast::RawSystem::pds`].
    pub pds: HashMap<&'r str, usize>,
}

impl Names<'_> {
    /// The memory region a reference names, if it exists.
    pub fn mr(&self, name: Option<&String>) -> Option<usize> {
        name.and_then(|n| self.mrs.get(n.as_str()).copied())
    }

    /// The PD a reference names, if it exists.
    pub fn pd(&self, name: Option<&String>) -> Option<usize> {
        name.and_then(|n| self.pds.get(n.as_str()).copied())
    }
}

/// A name for messages; a missing name (already reported) shows as `?`.
pub fn shown(name: &Option<String>) -> &str {
    name.as_deref().unwrap_or("?")
}

/// ` (did you mean '<name>'?)` for the defined name nearest to `unknown` (see
/// [`nearest`]), or nothing if none is near.
pub fn did_you_mean<'a>(unknown: &str, defined: impl IntoIterator<Item = &'a str>) -> String {
    nearest(unknown, defined).map_or_else(String::new, |n| format!(" (did you mean '{n}'?)"))
}

/// The defined name `unknown` most likely meant, as rustc picks one: a name equal to it
/// but for letter case, else the one at the smallest edit distance if that is at most a
/// third of the longer of `unknown`'s length and 3 (ties: the alphabetically first).
pub fn nearest<'a>(unknown: &str, defined: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let defined: Vec<&str> = defined.into_iter().filter(|d| *d != unknown).collect();
    let mut same_case: Vec<&str> = defined
        .iter()
        .copied()
        .filter(|d| d.eq_ignore_ascii_case(unknown))
        .collect();
    same_case.sort_unstable();
    if let Some(d) = same_case.first() {
        return Some(d);
    }
    let max = unknown.chars().count().max(3) / 3;
    defined
        .into_iter()
        .map(|d| (edit_distance(unknown, d), d))
        .filter(|&(dist, _)| dist <= max)
        .min()
        .map(|(_, d)| d)
}

/// The edit distance of `a` and `b` as rustc counts it (optimal string alignment):
/// insertions, deletions and substitutions of characters, and swaps of two adjacent
/// ones, each one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: distance of a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("buf", "buf"), 0);
        assert_eq!(edit_distance("bfu", "buf"), 1, "a swap is one edit");
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("abc", "ca"), 3);
        assert_eq!(edit_distance("buff", "buf"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("é", "e"), 1);
    }

    #[test]
    fn only_a_near_name_is_suggested() {
        let defined = ["buf", "shared_ring", "uart", "Clock"];
        assert_eq!(nearest("buff", defined), Some("buf"));
        assert_eq!(nearest("bfu", defined), Some("buf"));
        assert_eq!(nearest("bu", defined), Some("buf"));
        assert_eq!(nearest("shared_rnig", defined), Some("shared_ring"));
        assert_eq!(nearest("clock", defined), Some("Clock"), "letter case only");
        assert_eq!(nearest("xyz", defined), None);
        assert_eq!(
            nearest("ram", defined),
            None,
            "'uart' is 2 edits from 'ram', too far for 3 letters"
        );
        assert_eq!(nearest("ringshared", defined), None);
        assert_eq!(nearest("a", ["b", "c"]), Some("b"), "ties: the first in order");
        assert_eq!(nearest("buf", ["buf"]), None, "the name itself is no suggestion");
        assert_eq!(did_you_mean("uar", defined), " (did you mean 'uart'?)");
        assert_eq!(did_you_mean("zzzz", defined), "");
    }
}
