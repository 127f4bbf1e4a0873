//! Sparse kernels of a masked layer: only the kept weights are stored and touched, so a
//! step costs `O(B·nnz)` instead of `O(B·in·out)`. The native step uses them for layers at
//! or below [`SPARSE_MAX_DENSITY`] (the crossover measured in docs/performance.md).
//!
//! The weight matrix is `[in, out]` (`z = a·W`), its kept entries stored by input row
//! (CSR) with a per-output index (CSC order) beside it. The kernels work on feature-major
//! (transposed, `[features, B]`) activations, so every kept weight costs one contiguous,
//! vectorised pass over the batch: `zᵀ_j += w_ij·aᵀ_i` (forward), `∂w_ij = aᵀ_i·gᵀ_j`,
//! `giᵀ_i += w_ij·gᵀ_j`. Each output element is computed by one fixed loop whatever the
//! thread count (bit-identical with 1 or N threads); the results differ from the dense
//! GEMM's in the last bits (another summation order).

use rayon::prelude::*;

/// Layers whose density is at most this use the sparse kernels (`--kernel auto`).
pub const SPARSE_MAX_DENSITY: f64 = 0.05;

/// The kept weights of one `[in, out]` layer.
pub struct Csr {
    pub fan_in: usize,
    pub fan_out: usize,
    /// Entries of input row `i` are `row_start[i]..row_start[i + 1]`.
    row_start: Vec<usize>,
    /// Output index `j` of each entry.
    cols: Vec<usize>,
    /// Entries into output `j`: `by_col[col_start[j]..col_start[j + 1]]` (entry indices).
    col_start: Vec<usize>,
    by_col: Vec<usize>,
    /// Input index `i` of each entry.
    rows: Vec<usize>,
    pub vals: Vec<f32>,
}

/// Feature-major copies of the activations a sparse layer reads and writes.
pub struct SparseScratch {
    input_t: Vec<f32>,
    output_t: Vec<f32>,
}

impl SparseScratch {
    /// Room for `batch` rows of `widest` features.
    pub fn new(batch: usize, widest: usize) -> Self {
        SparseScratch {
            input_t: vec![0.0; batch * widest],
            output_t: vec![0.0; batch * widest],
        }
    }
}

impl Csr {
    /// The entries of the row-major `[in, out]` matrix `w` where `keep` is set.
    pub fn from_dense(w: &[f32], keep: &[bool], fan_in: usize, fan_out: usize) -> Csr {
        let mut row_start = Vec::with_capacity(fan_in + 1);
        let (mut cols, mut rows, mut vals) = (Vec::new(), Vec::new(), Vec::new());
        row_start.push(0);
        for i in 0..fan_in {
            for j in 0..fan_out {
                if keep[i * fan_out + j] {
                    cols.push(j);
                    rows.push(i);
                    vals.push(w[i * fan_out + j]);
                }
            }
            row_start.push(cols.len());
        }
        let mut col_start = vec![0usize; fan_out + 1];
        for &j in &cols {
            col_start[j + 1] += 1;
        }
        for j in 0..fan_out {
            col_start[j + 1] += col_start[j];
        }
        let mut fill = col_start.clone();
        let mut by_col = vec![0usize; cols.len()];
        for (p, &j) in cols.iter().enumerate() {
            by_col[fill[j]] = p;
            fill[j] += 1;
        }
        Csr {
            fan_in,
            fan_out,
            row_start,
            cols,
            col_start,
            by_col,
            rows,
            vals,
        }
    }

    /// The row-major `[in, out]` matrix (zeros outside the kept entries).
    pub fn to_dense(&self) -> Vec<f32> {
        let mut w = vec![0.0; self.fan_in * self.fan_out];
        for (p, (&i, &j)) in self.rows.iter().zip(&self.cols).enumerate() {
            w[i * self.fan_out + j] = self.vals[p];
        }
        w
    }

    /// `z = a·W` for `a` `[B, in]`, `z` `[B, out]`.
    pub fn forward(&self, a: &[f32], z: &mut [f32], bsz: usize, s: &mut SparseScratch) {
        let a_t = &mut s.input_t[..bsz * self.fan_in];
        transpose(a, bsz, self.fan_in, a_t);
        let z_t = &mut s.output_t[..bsz * self.fan_out];
        z_t.par_chunks_mut(bsz).enumerate().for_each(|(j, z)| {
            z.fill(0.0);
            for &p in &self.by_col[self.col_start[j]..self.col_start[j + 1]] {
                axpy(z, self.vals[p], &a_t[self.rows[p] * bsz..][..bsz]);
            }
        });
        transpose(z_t, self.fan_out, bsz, z);
    }

    /// `grads = ∂L/∂w` on the kept entries and, with `gi`, the input gradient `gi = g·Wᵀ`,
    /// from the layer input `a` `[B, in]` and output gradient `g` `[B, out]`.
    pub fn backward(
        &self,
        a: &[f32],
        g: &[f32],
        grads: &mut [f32],
        gi: Option<&mut [f32]>,
        bsz: usize,
        s: &mut SparseScratch,
    ) {
        let a_t = &mut s.input_t[..bsz * self.fan_in];
        transpose(a, bsz, self.fan_in, a_t);
        let g_t = &mut s.output_t[..bsz * self.fan_out];
        transpose(g, bsz, self.fan_out, g_t);
        let (rows, cols) = (&self.rows, &self.cols);
        grads
            .par_chunks_mut(1024)
            .enumerate()
            .for_each(|(chunk, grads)| {
                for (k, out) in grads.iter_mut().enumerate() {
                    let p = chunk * 1024 + k;
                    let x = &a_t[rows[p] * bsz..][..bsz];
                    let y = &g_t[cols[p] * bsz..][..bsz];
                    *out = x.iter().zip(y).map(|(x, y)| x * y).sum();
                }
            });
        if let Some(gi) = gi {
            // a_t is no longer needed: reuse it for giᵀ.
            a_t.par_chunks_mut(bsz).enumerate().for_each(|(i, out)| {
                out.fill(0.0);
                for p in self.row_start[i]..self.row_start[i + 1] {
                    axpy(out, self.vals[p], &g_t[self.cols[p] * bsz..][..bsz]);
                }
            });
            transpose(a_t, self.fan_in, bsz, gi);
        }
    }
}

/// `y += w·x`.
fn axpy(y: &mut [f32], w: f32, x: &[f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += w * x);
}

/// Row-major `[rows, cols]` `m` transposed into `out` `[cols, rows]`, in cache-sized tiles.
fn transpose(m: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    const TILE: usize = 32;
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = m[r * cols + c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_products_equal_dense_ones_on_the_kept_entries() {
        // 3 inputs × 4 outputs, 5 kept; batch of 2.
        let keep = [
            true, false, false, true, //
            false, true, false, false, //
            true, false, true, false,
        ];
        let w: Vec<f32> = (0..12).map(|v| v as f32 - 5.0).collect();
        let csr = Csr::from_dense(&w, &keep, 3, 4);
        let masked: Vec<f32> = w
            .iter()
            .zip(&keep)
            .map(|(&w, &k)| if k { w } else { 0.0 })
            .collect();
        assert_eq!(csr.to_dense(), masked);
        let mut s = SparseScratch::new(2, 4);
        let a = [1.0, 2.0, 0.5, -1.0, 0.0, 3.0];
        let mut z = [0.0; 8];
        csr.forward(&a, &mut z, 2, &mut s);
        for b in 0..2 {
            for j in 0..4 {
                let want: f32 = (0..3).map(|i| a[b * 3 + i] * masked[i * 4 + j]).sum();
                assert_eq!(z[b * 4 + j], want);
            }
        }
        let g = [1.0, -1.0, 2.0, 0.5, 0.0, 1.0, -2.0, 1.0];
        let (mut gi, mut grads) = ([0.0; 6], [0.0; 5]);
        csr.backward(&a, &g, &mut grads, Some(&mut gi), 2, &mut s);
        for b in 0..2 {
            for i in 0..3 {
                let want: f32 = (0..4).map(|j| g[b * 4 + j] * masked[i * 4 + j]).sum();
                assert_eq!(gi[b * 3 + i], want);
            }
        }
        // Entries in row order: (0,0), (0,3), (1,1), (2,0), (2,2).
        let dw = |i: usize, j: usize| (0..2).map(|b| a[b * 3 + i] * g[b * 4 + j]).sum::<f32>();
        assert_eq!(grads, [dw(0, 0), dw(0, 3), dw(1, 1), dw(2, 0), dw(2, 2)]);
    }
}
