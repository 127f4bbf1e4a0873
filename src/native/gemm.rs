//! A bounds-checked, safe front to the `gemm` crate's single-threaded f32 kernels (the
//! kernels burn-flex runs), cut into a fixed number of row blocks that run in parallel on
//! the caller's rayon pool.
//!
//! This is the crate's only `unsafe` block: `gemm::gemm` takes raw pointers and strides.
//! [`View::new`] and [`matmul`] check, before the call, that every element the kernel can
//! address lies inside the borrowed slices, so the call is sound for any input.
#![allow(unsafe_code)]

use rayon::prelude::*;

/// A read-only `rows × cols` matrix inside `data`: element `(r, c)` is
/// `data[r·row_stride + c·col_stride]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    /// Panics when an element of the view would lie outside `data`.
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * row_stride + (cols - 1) * col_stride;
            assert!(last < data.len(), "matrix view out of bounds");
        }
        View {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// Row-major `rows × cols`.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View::new(data, rows, cols, cols, 1)
    }

    /// The transpose of the row-major `rows × cols` matrix in `data` (`cols × rows`).
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View::new(data, cols, rows, 1, cols)
    }

    /// Rows `start..start + len`.
    fn row_block(self, start: usize, len: usize) -> Self {
        assert!(start + len <= self.rows);
        let offset = (start * self.row_stride).min(self.data.len());
        View::new(
            &self.data[offset..],
            len,
            self.cols,
            self.row_stride,
            self.col_stride,
        )
    }
}

/// Row blocks a large product is cut into, whatever the thread count, so the result is
/// bit-identical with 1 or N threads (the same kernel calls, only scheduled differently).
pub const ROW_BLOCKS: usize = 4;

/// Products below this many multiply-adds run as one block (thread hand-off costs more).
const PARALLEL_MACS: usize = 1 << 23;

/// `c = a·b`, or `c += a·b` with `accumulate`, for a row-major `c` of `a.rows × b.cols`.
pub fn matmul(c: &mut [f32], a: View<'_>, b: View<'_>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert_eq!(c.len(), m * n, "output has the wrong size");
    if m == 0 || n == 0 {
        return;
    }
    if m * n * k < PARALLEL_MACS || m < ROW_BLOCKS {
        return kernel(c, a, b, accumulate);
    }
    let block = m.div_ceil(ROW_BLOCKS);
    c.par_chunks_mut(block * n)
        .enumerate()
        .for_each(|(i, c)| kernel(c, a.row_block(i * block, c.len() / n), b, accumulate));
}

/// One single-threaded kernel call; shapes and bounds were checked by the callers.
fn kernel(c: &mut [f32], a: View<'_>, b: View<'_>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    debug_assert_eq!(c.len(), m * n);
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    // SAFETY: `c` is exclusively borrowed with exactly m·n elements at row stride n; `View`
    // guarantees every (r, c) element of `a` (m × k) and `b` (k × n) lies inside its slice;
    // no element is written through `a` or `b`. Strides fit isize (they index live slices).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: View<'_>, b: View<'_>) -> Vec<f32> {
        let mut c = vec![0.0f32; a.rows * b.cols];
        for r in 0..a.rows {
            for j in 0..b.cols {
                c[r * b.cols + j] = (0..a.cols)
                    .map(|i| {
                        a.data[r * a.row_stride + i * a.col_stride] as f64
                            * b.data[i * b.row_stride + j * b.col_stride] as f64
                    })
                    .sum::<f64>() as f32;
            }
        }
        c
    }

    fn filled(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + salt * 104_729) % 1000) as f32 - 500.0) / 250.0)
            .collect()
    }

    #[test]
    fn products_match_a_naive_loop_for_every_layout_and_block_count() {
        // Small (one block) and large (ROW_BLOCKS blocks, ragged last block) products.
        for (m, k, n) in [(3, 5, 2), (130, 97, 101), (7, 300, 600)] {
            let a_data = filled(m * k, 1);
            let b_data = filled(k * n, 2);
            for (a, b) in [
                (View::rows(&a_data, m, k), View::rows(&b_data, k, n)),
                (
                    View::transposed(&a_data, k, m),
                    View::transposed(&b_data, n, k),
                ),
            ] {
                let want = naive(a, b);
                let mut got = vec![1.0f32; m * n];
                matmul(&mut got, a, b, false);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-3 * w.abs().max(1.0), "{m}x{k}x{n}");
                }
                // Accumulating adds the product to what is there.
                let mut acc = vec![1.0f32; m * n];
                matmul(&mut acc, a, b, true);
                for (g, w) in acc.iter().zip(&got) {
                    assert!((g - (w + 1.0)).abs() <= 1e-3 * w.abs().max(1.0));
                }
            }
        }
    }

    #[test]
    fn results_are_bit_identical_for_any_thread_count() {
        let (m, k, n) = (128, 784, 300);
        let (a_data, b_data) = (filled(m * k, 3), filled(k * n, 4));
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = vec![0.0f32; m * n];
            pool.install(|| {
                matmul(
                    &mut c,
                    View::rows(&a_data, m, k),
                    View::rows(&b_data, k, n),
                    false,
                )
            });
            c
        };
        let one = run(1);
        for threads in [2, 3] {
            assert!(
                run(threads)
                    .iter()
                    .zip(&one)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
        }
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_past_its_slice_is_refused() {
        View::rows(&[0.0; 5], 2, 3);
    }
}
