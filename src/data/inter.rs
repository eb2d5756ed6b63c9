//! The MMRec `.inter` format: tab-separated, header `userID itemID rating timestamp x_label`.
//!
//! `userID` and `itemID` are required; `rating` and `timestamp` are optional and ignored once
//! validated (every row is one implicit interaction); `x_label` (0 train, 1 validation, 2 test)
//! is optional: without it the split is drawn from a seed.

use crate::error::{CraneError, Result};
use std::path::Path;

/// The canonical header, quoted in error messages.
pub const HEADER: &str = "userID\titemID\trating\ttimestamp\tx_label";

/// One parsed row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterRow {
    pub user: u64,
    pub item: u64,
    /// 0 train, 1 validation, 2 test; `None` when the file has no `x_label` column.
    pub label: Option<u8>,
    /// 1-based line number in the file.
    pub line: usize,
}

/// The rows of an `.inter` file and whether it carried `x_label`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterFile {
    pub rows: Vec<InterRow>,
    pub has_labels: bool,
}

#[derive(Clone, Copy)]
enum Column {
    User,
    Item,
    Rating,
    Timestamp,
    Label,
}

/// Parses the text of an `.inter` file; `path` only names the file in errors.
pub fn parse_inter(text: &str, path: &Path) -> Result<InterFile> {
    let mut lines = text.lines().enumerate();
    let (_, header) =
        lines.next().ok_or_else(|| CraneError::line(path, 1, format!("empty file, expected the header `{HEADER}`")))?;
    let header = header.strip_prefix('\u{feff}').unwrap_or(header).trim_end_matches('\r');
    let mut cols = Vec::new();
    for name in header.split('\t') {
        // MMRec headers may carry a type suffix such as `userID:token`.
        let base = name.split(':').next().unwrap_or(name);
        cols.push(match base {
            "userID" | "user_id" => Column::User,
            "itemID" | "item_id" => Column::Item,
            "rating" => Column::Rating,
            "timestamp" => Column::Timestamp,
            "x_label" => Column::Label,
            other => {
                return Err(CraneError::line(
                    path,
                    1,
                    format!("wrong header: unknown column `{other}`, expected tab-separated `{HEADER}`"),
                ))
            }
        });
    }
    let count = |c: fn(&Column) -> bool| cols.iter().filter(|x| c(x)).count();
    if count(|c| matches!(c, Column::User)) != 1 || count(|c| matches!(c, Column::Item)) != 1 {
        return Err(CraneError::line(path, 1, format!("wrong header `{header}`: expected tab-separated `{HEADER}`")));
    }
    let has_labels = count(|c| matches!(c, Column::Label)) == 1;
    let mut rows = Vec::new();
    for (idx, raw) in lines {
        let line = idx + 1;
        let raw = raw.trim_end_matches('\r');
        if raw.is_empty() {
            continue;
        }
        let fields: Vec<&str> = raw.split('\t').collect();
        if fields.len() != cols.len() {
            return Err(CraneError::line(
                path,
                line,
                format!("wrong field count: {} fields, the header has {}", fields.len(), cols.len()),
            ));
        }
        let (mut user, mut item, mut label) = (0, 0, None);
        for (col, field) in cols.iter().zip(&fields) {
            match col {
                Column::User => user = parse_id(field, "userID", path, line)?,
                Column::Item => item = parse_id(field, "itemID", path, line)?,
                Column::Rating | Column::Timestamp => {
                    let name = if matches!(col, Column::Rating) { "rating" } else { "timestamp" };
                    match field.trim().parse::<f64>() {
                        Ok(v) if v.is_finite() => {}
                        _ => {
                            return Err(CraneError::line(
                                path,
                                line,
                                format!("{name} `{field}` is not a finite number"),
                            ))
                        }
                    }
                }
                Column::Label => {
                    label = Some(match field.trim() {
                        "0" => 0,
                        "1" => 1,
                        "2" => 2,
                        _ => {
                            return Err(CraneError::line(
                                path,
                                line,
                                format!("x_label `{field}` is not 0 (train), 1 (validation) or 2 (test)"),
                            ))
                        }
                    })
                }
            }
        }
        rows.push(InterRow { user, item, label, line });
    }
    Ok(InterFile { rows, has_labels })
}

fn parse_id(field: &str, name: &str, path: &Path, line: usize) -> Result<u64> {
    let f = field.trim();
    match f.parse::<u64>() {
        Ok(v) if v < u32::MAX as u64 => Ok(v),
        Ok(v) => Err(CraneError::line(path, line, format!("{name} {v} is too large (ids must be below {})", u32::MAX))),
        Err(_) if f.starts_with('-') && f[1..].parse::<u64>().is_ok() => {
            Err(CraneError::line(path, line, format!("{name} `{field}` is negative, expected a non-negative integer")))
        }
        Err(_) => Err(CraneError::line(path, line, format!("{name} `{field}` is not a non-negative integer"))),
    }
}

/// Writes rows as an `.inter` file text with the canonical header (rating 1, timestamp 0).
pub fn format_inter(rows: &[(u64, u64, u8)]) -> String {
    let mut s = String::with_capacity(rows.len() * 16 + 64);
    s.push_str(HEADER);
    s.push('\n');
    for &(u, i, l) in rows {
        s.push_str(&format!("{u}\t{i}\t1\t0\t{l}\n"));
    }
    s
}
