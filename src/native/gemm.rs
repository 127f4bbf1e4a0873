//! A bounds-checked, safe front to the `gemm` crate's single-threaded f32 kernels (the
//! kernels burn-flex runs), cut into a fixed number of blocks that run in parallel on the
//! caller's rayon pool.
//!
//! This module holds the crate's only `unsafe` code: `gemm::gemm` takes raw pointers and
//! strides, and the parallel blocks of one product (rows or columns) write disjoint parts
//! of one output through a shared pointer. [`View::new`] and [`matmul`] check, before any
//! call and with overflow-checked arithmetic, that every element the kernel can address
//! lies inside the borrowed slices, so the calls are sound for any input.
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
            let last = (rows - 1)
                .checked_mul(row_stride)
                .zip((cols - 1).checked_mul(col_stride))
                .and_then(|(r, c)| r.checked_add(c));
            assert!(
                last.is_some_and(|last| last < data.len()),
                "matrix view out of bounds"
            );
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

    /// Columns `start..start + len`.
    fn col_block(self, start: usize, len: usize) -> Self {
        assert!(start + len <= self.cols);
        let offset = (start * self.col_stride).min(self.data.len());
        View::new(
            &self.data[offset..],
            self.rows,
            len,
            self.row_stride,
            self.col_stride,
        )
    }
}

/// Blocks a large product is cut into, whatever the thread count, so the result is
/// bit-identical with 1 or N threads (the same kernel calls, only scheduled differently).
pub const BLOCKS: usize = 4;

/// Products below this many multiply-adds run as one block (thread hand-off costs more).
const PARALLEL_MACS: usize = 1 << 23;

/// The row-major output `c` of a product, shared by blocks that write disjoint parts of it.
#[derive(Clone, Copy)]
struct Output {
    ptr: *mut f32,
    /// Columns of `c` (its row stride).
    cols: usize,
}

// SAFETY: an `Output` is only handed to blocks that write disjoint elements of `c`, while
// `matmul` holds `c`'s exclusive borrow.
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

/// `c = a·b`, or `c += a·b` with `accumulate`, for a row-major `c` of `a.rows × b.cols`.
///
/// Large products are cut along the longer side of `c` into [`BLOCKS`] blocks: row
/// blocks share `b`, column blocks share `a`, so the large operand (a weight matrix next to
/// a batch) is read, and packed, once in all, not once per block.
pub fn matmul(c: &mut [f32], a: View<'_>, b: View<'_>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert_eq!(m.checked_mul(n), Some(c.len()), "output has the wrong size");
    if m == 0 || n == 0 {
        return;
    }
    let out = Output {
        ptr: c.as_mut_ptr(),
        cols: n,
    };
    // SAFETY (every `kernel` call below): the blocks tile `c`'s m × n elements without
    // overlap, `c` is exclusively borrowed for this call, and `View` bounds-checked `a`, `b`.
    if c.len().saturating_mul(k) < PARALLEL_MACS || m.max(n) < BLOCKS {
        return unsafe { kernel(out, 0, 0, a, b, accumulate) };
    }
    if m >= n {
        let block = m.div_ceil(BLOCKS);
        (0..m.div_ceil(block)).into_par_iter().for_each(|i| {
            let (start, len) = (i * block, block.min(m - i * block));
            unsafe { kernel(out, start, 0, a.row_block(start, len), b, accumulate) }
        });
    } else {
        let block = n.div_ceil(BLOCKS);
        (0..n.div_ceil(block)).into_par_iter().for_each(|j| {
            let (start, len) = (j * block, block.min(n - j * block));
            unsafe { kernel(out, 0, start, a, b.col_block(start, len), accumulate) }
        });
    }
}

/// One single-threaded kernel call writing `a·b` into the block of `out` whose top-left
/// element is `(row, col)`.
///
/// # Safety
/// The block (`a.rows × b.cols` from `(row, col)`) must lie inside `out`'s matrix, and no
/// other thread may touch its elements during the call; `a.cols == b.rows`.
unsafe fn kernel(out: Output, row: usize, col: usize, a: View<'_>, b: View<'_>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let dst = out.ptr.wrapping_add(row * out.cols + col);
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                // SAFETY: row r of the block lies inside `out` (the caller's contract).
                unsafe { std::slice::from_raw_parts_mut(dst.add(r * out.cols), n) }.fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the block is m × n at row stride `out.cols` inside `out`, exclusively ours
    // (the caller's contract); `View` guarantees every (r, c) element of `a` (m × k) and `b`
    // (k × n) lies inside its slice; nothing is written through `a` or `b`. Strides fit
    // isize (they index live slices).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            out.cols as isize,
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
        // Small (one block) and large products: row blocks (m ≥ n) and column blocks (m < n),
        // with a ragged last block.
        for (m, k, n) in [
            (3, 5, 2),
            (130, 97, 101),
            (7, 300, 600),
            (1001, 90, 100),
            (33, 900, 1001),
        ] {
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
        // Column blocks (m < n) and row blocks (m ≥ n).
        for (m, k, n) in [(128, 784, 300), (784, 128, 300)] {
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
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_past_its_slice_is_refused() {
        View::rows(&[0.0; 5], 2, 3);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_whose_extent_overflows_is_refused() {
        // (rows − 1)·row_stride + (cols − 1) wraps to 0 in unchecked arithmetic.
        View::new(&[0.0; 4], 2, 2, usize::MAX, 1);
    }
}
