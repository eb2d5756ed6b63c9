//! Item feature matrices in `.npy` files (`image_feat.npy` `[N, 4096]`, `text_feat.npy`
//! `[N, 384]`): float32 or float64, C or Fortran order, any endianness; stored as f32.

use crate::error::{CraneError, Result};
use crate::io::write_atomic;
use npyz::WriterBuilder;
use std::path::Path;

/// A dense row-major `[rows, cols]` f32 matrix: row i is item i's feature vector.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMatrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl FeatureMatrix {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// Parses `.npy` bytes; `path` only names the file in errors. Refuses anything that is not a
/// 2-D float32/float64 array, and NaN or infinite entries (naming row and column).
pub fn parse_features(bytes: &[u8], path: &Path) -> Result<FeatureMatrix> {
    check_header(bytes).map_err(|why| CraneError::file(path, format!("corrupt npy header: {why}")))?;
    let npy = npyz::NpyFile::new(bytes).map_err(|e| CraneError::file(path, format!("corrupt npy header: {e}")))?;
    let shape = npy.shape().to_vec();
    if shape.len() != 2 {
        return Err(CraneError::file(path, format!("expected a 2-D array [items, dim], found shape {shape:?}")));
    }
    let (rows, cols) = (shape[0] as usize, shape[1] as usize);
    let fortran = npy.order() == npyz::Order::Fortran;
    let dtype = npy.dtype();
    let descr = match &dtype {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => format!("{other:?}"),
    };
    let kind = match &dtype {
        npyz::DType::Plain(ts) if ts.type_char() == npyz::TypeChar::Float && ts.size_field() == 4 => 4,
        npyz::DType::Plain(ts) if ts.type_char() == npyz::TypeChar::Float && ts.size_field() == 8 => 8,
        _ => return Err(CraneError::file(path, format!("wrong dtype `{descr}`: expected float32 or float64"))),
    };
    let expected = rows.checked_mul(cols).ok_or_else(|| CraneError::file(path, "shape overflows"))?;
    let truncated =
        |e: std::io::Error| CraneError::file(path, format!("cannot read {rows} x {cols} values ({descr}): {e}"));
    let flat: Vec<f32> = if kind == 4 {
        npy.into_vec::<f32>().map_err(truncated)?
    } else {
        npy.into_vec::<f64>().map_err(truncated)?.into_iter().map(|v| v as f32).collect()
    };
    if flat.len() != expected {
        return Err(CraneError::file(
            path,
            format!("holds {} values, shape {rows} x {cols} needs {expected}", flat.len()),
        ));
    }
    let data = if fortran {
        let mut d = vec![0.0f32; expected];
        for c in 0..cols {
            for r in 0..rows {
                d[r * cols + c] = flat[c * rows + r];
            }
        }
        d
    } else {
        flat
    };
    if let Some(k) = data.iter().position(|v| !v.is_finite()) {
        return Err(CraneError::file(
            path,
            format!(
                "non-finite value {} at row {}, column {} (NaN or infinite features are refused)",
                data[k],
                k / cols,
                k % cols
            ),
        ));
    }
    Ok(FeatureMatrix { rows, cols, data })
}

/// Cheap structural checks before npyz parses the header dict. A plain float array's header is
/// a short dict of quoted strings, a bool and one shape tuple; anything else (nested lists,
/// which npyz's literal parser takes super-linear time on, as fuzzing found) is refused here.
fn check_header(bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("missing the \\x93NUMPY magic".into());
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("unsupported format version {v}")),
    };
    let header = bytes.get(start..start + len).ok_or("header longer than the file")?;
    if len > 4096 {
        return Err(format!("header of {len} bytes (a 2-D float array needs under 200)"));
    }
    if !header.iter().all(|&b| b == b'\n' || (0x20..0x7f).contains(&b)) {
        return Err("non-ASCII bytes in the header".into());
    }
    let count = |c: u8| header.iter().filter(|&&b| b == c).count();
    if count(b'[') > 0 || count(b'(') != 1 || count(b')') != 1 || count(b'{') != 1 {
        return Err("not a plain array header (structured dtypes and nested values are not feature matrices)".into());
    }
    // npyz multiplies the shape's dimensions unchecked (a panic with overflow checks, a wrap
    // without), as fuzzing found: the element count must fit before npyz sees the header.
    let text = std::str::from_utf8(header).map_err(|_| "non-ASCII bytes in the header")?;
    let (open, close) = (text.find('(').unwrap_or(0), text.find(')').unwrap_or(0));
    if close < open {
        return Err("malformed shape".into());
    }
    let dims: Vec<u64> = text[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| "the shape is not a tuple of non-negative integers")?;
    dims.iter()
        .try_fold(8u64, |acc, &d| acc.checked_mul(d))
        .filter(|&bytes| bytes <= isize::MAX as u64)
        .ok_or_else(|| format!("shape {dims:?} has more elements than memory can hold"))?;
    Ok(())
}

/// Reads a feature file.
pub fn read_features(path: &Path) -> Result<FeatureMatrix> {
    let bytes = std::fs::read(path).map_err(|e| CraneError::io(path, "read", e))?;
    parse_features(&bytes, path)
}

/// Writes a float32 C-order `.npy` atomically.
pub fn write_features(path: &Path, m: &FeatureMatrix) -> Result<()> {
    write_atomic(path, |w| {
        let mut writer =
            npyz::WriteOptions::new().default_dtype().shape(&[m.rows as u64, m.cols as u64]).writer(w).begin_nd()?;
        writer.extend(m.data.iter().copied())?;
        writer.finish()
    })
}

/// Serialises to `.npy` bytes in memory (tests and fuzz seeds).
pub fn features_to_bytes(m: &FeatureMatrix) -> Vec<u8> {
    let mut buf = Vec::new();
    {
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[m.rows as u64, m.cols as u64])
            .writer(&mut buf)
            .begin_nd()
            .expect("in-memory npy header");
        writer.extend(m.data.iter().copied()).expect("in-memory npy body");
        writer.finish().expect("in-memory npy finish");
    }
    buf
}
