//! Defects of a feature file that loads fine but matters to every item graph built from it:
//!
//! - **zero rows** (an item without a picture is often stored as all zeros): cosine similarity
//!   0 with every item, itself included, so the item is never a kNN neighbour and has no kNN
//!   neighbours from that file (SPEC.md, Eq. 14: the one treatment of the reference and both
//!   engines);
//! - **exact duplicates** (bitwise-equal rows; real image feature files have them, e.g. one
//!   placeholder picture for many items): cosine 1 with each other, so kNN ties, broken by the
//!   smaller id.
//!
//! One pass over the rows, O(N·d): each row is hashed by its bits, no pairwise comparison.

use super::npy::FeatureMatrix;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// A row is a zero row when its norm is at most this: the item graph's rule
/// (`crane_reference::item_graph::MIN_ROW_NORM`). In practice, rows of zeros.
pub const ZERO_ROW_NORM: f64 = crane_reference::item_graph::MIN_ROW_NORM;

/// How many items a warning names before "…".
const NAMED: usize = 5;

/// The defects of one feature matrix (row i is item i).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeatureDefects {
    /// Items whose row is a zero row ([`ZERO_ROW_NORM`]), ascending.
    pub zero_rows: Vec<u32>,
    /// Groups of two or more items with bitwise-equal rows (zero rows left out: they are
    /// reported above), each ascending, ordered by their first item.
    pub duplicate_groups: Vec<Vec<u32>>,
}

/// The counts of [`FeatureDefects`], as `crane data stats` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FeatureDefectCounts {
    pub zero_rows: usize,
    /// Rows in a group of exact duplicates (all of the group's rows, the first included).
    pub duplicate_rows: usize,
    pub duplicate_groups: usize,
}

/// A row compared and hashed by the bits of its values (so `0.0` and `-0.0` differ, and the
/// test is exact, never approximate).
struct Bits<'a>(&'a [f32]);

impl Hash for Bits<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.iter().for_each(|v| v.to_bits().hash(h));
    }
}

impl PartialEq for Bits<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.0.len() == o.0.len() && self.0.iter().zip(o.0).all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl Eq for Bits<'_> {}

/// Whether a row is a zero row (norm in f64 at most [`ZERO_ROW_NORM`]).
pub fn is_zero_row(row: &[f32]) -> bool {
    row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt() <= ZERO_ROW_NORM
}

/// The zero rows and the groups of exactly duplicated rows of `f`. A matrix without columns
/// has neither (the modality is absent).
pub fn find_defects(f: &FeatureMatrix) -> FeatureDefects {
    let mut out = FeatureDefects::default();
    if f.cols == 0 {
        return out;
    }
    let mut first: HashMap<Bits, u32> = HashMap::with_capacity(f.rows);
    let mut groups: HashMap<u32, Vec<u32>> = HashMap::new();
    for i in 0..f.rows {
        let row = f.row(i);
        if is_zero_row(row) {
            out.zero_rows.push(i as u32);
            continue;
        }
        match first.entry(Bits(row)) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(i as u32);
            }
            std::collections::hash_map::Entry::Occupied(e) => {
                let head = *e.get();
                groups.entry(head).or_insert_with(|| vec![head]).push(i as u32);
            }
        }
    }
    out.duplicate_groups = groups.into_values().collect();
    out.duplicate_groups.sort_unstable();
    out
}

impl FeatureDefects {
    pub fn counts(&self) -> FeatureDefectCounts {
        FeatureDefectCounts {
            zero_rows: self.zero_rows.len(),
            duplicate_rows: self.duplicate_groups.iter().map(Vec::len).sum(),
            duplicate_groups: self.duplicate_groups.len(),
        }
    }

    /// One warning per kind of defect found, naming `file`, the count and the first items.
    pub fn warnings(&self, file: &str) -> Vec<String> {
        let mut out = Vec::new();
        if !self.zero_rows.is_empty() {
            out.push(format!(
                "{file}: {} all-zero row(s) (items {}): cosine similarity 0 with every item, never a kNN \
                 neighbour, and no kNN neighbours from this file",
                self.zero_rows.len(),
                name_items(&self.zero_rows)
            ));
        }
        if let Some(g) = self.duplicate_groups.first() {
            let c = self.counts();
            out.push(format!(
                "{file}: {} row(s) in {} group(s) of exact duplicates (e.g. items {}): cosine similarity 1 \
                 within a group, kNN ties broken by the smaller id",
                c.duplicate_rows,
                c.duplicate_groups,
                name_items(g)
            ));
        }
        out
    }
}

/// `3, 7, 9` or `3, 7, 9, 12, 15, …` (the first [`NAMED`]).
fn name_items(items: &[u32]) -> String {
    let mut s: Vec<String> = items.iter().take(NAMED).map(u32::to_string).collect();
    if items.len() > NAMED {
        s.push("…".into());
    }
    s.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mat(rows: &[&[f32]]) -> FeatureMatrix {
        FeatureMatrix {
            rows: rows.len(),
            cols: rows[0].len(),
            data: rows.iter().flat_map(|r| r.iter().copied()).collect(),
        }
    }

    #[test]
    fn finds_zero_rows_and_duplicate_groups() {
        let f = mat(&[
            &[1.0, 2.0],  // 0
            &[0.0, 0.0],  // 1 zero
            &[3.0, 4.0],  // 2
            &[1.0, 2.0],  // 3 = 0
            &[-0.0, 0.0], // 4 zero (negative zero too)
            &[3.0, 4.0],  // 5 = 2
            &[1.0, 2.0],  // 6 = 0
            &[1.0, 2.5],  // 7
        ]);
        let d = find_defects(&f);
        assert_eq!(d.zero_rows, vec![1, 4]);
        assert_eq!(d.duplicate_groups, vec![vec![0, 3, 6], vec![2, 5]]);
        assert_eq!(d.counts(), FeatureDefectCounts { zero_rows: 2, duplicate_rows: 5, duplicate_groups: 2 });
        let w = d.warnings("image_feat.npy");
        assert_eq!(w.len(), 2);
        assert!(w[0].starts_with("image_feat.npy: 2 all-zero row(s) (items 1, 4): cosine similarity 0"), "{}", w[0]);
        assert!(w[1].starts_with("image_feat.npy: 5 row(s) in 2 group(s) of exact duplicates (e.g. items 0, 3, 6)"));
    }

    #[test]
    fn duplicates_are_bitwise_and_near_duplicates_are_not() {
        let eps = f32::EPSILON;
        let f = mat(&[&[1.0, 0.0], &[1.0 + eps, 0.0], &[0.0, 1.0], &[-0.0, 1.0], &[2.0, 0.0]]);
        let d = find_defects(&f);
        // 1 + ε, −0 vs +0 and a parallel row (cosine 1, not equal) are no duplicates.
        assert!(d.duplicate_groups.is_empty(), "{d:?}");
        assert!(d.zero_rows.is_empty());
        assert!(d.warnings("text_feat.npy").is_empty());
    }

    #[test]
    fn tiny_rows_follow_the_item_graph_rule_and_empty_matrices_have_no_defects() {
        let f = mat(&[&[1e-13, 0.0], &[1e-6, 0.0], &[0.5, 0.5]]);
        assert_eq!(find_defects(&f).zero_rows, vec![0]);
        let none = FeatureMatrix { rows: 3, cols: 0, data: vec![] };
        assert_eq!(find_defects(&none), FeatureDefects::default());
    }

    #[test]
    fn warnings_name_at_most_five_items() {
        let rows: Vec<Vec<f32>> = (0..9).map(|i| if i % 3 == 2 { vec![1.0, 1.0] } else { vec![0.0, 0.0] }).collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let d = find_defects(&mat(&refs));
        assert_eq!(d.zero_rows, vec![0, 1, 3, 4, 6, 7]);
        assert_eq!(d.duplicate_groups, vec![vec![2, 5, 8]]);
        let w = d.warnings("image_feat.npy");
        assert!(w[0].contains("6 all-zero row(s) (items 0, 1, 3, 4, 6, …)"), "{}", w[0]);
        assert!(w[1].contains("3 row(s) in 1 group(s) of exact duplicates (e.g. items 2, 5, 8)"), "{}", w[1]);
    }

    #[test]
    fn thousands_of_rows_in_linear_time() {
        // 20 000 rows, every tenth a copy of row 0 and every 1000th zero: found without any
        // pairwise comparison (this runs in milliseconds; a quadratic scan would not).
        let (n, d) = (20_000usize, 16usize);
        let data: Vec<f32> = (0..n)
            .flat_map(|i| {
                (0..d).map(move |c| match i {
                    _ if i % 1000 == 999 => 0.0,
                    _ if i % 10 == 0 => c as f32,
                    _ => (i * d + c) as f32,
                })
            })
            .collect();
        let f = FeatureMatrix { rows: n, cols: d, data };
        let out = find_defects(&f);
        assert_eq!(out.zero_rows.len(), 20);
        assert_eq!(out.duplicate_groups.len(), 1);
        assert_eq!(out.duplicate_groups[0].len(), 2000);
    }
}
