//! 2-D convolution geometry and its im2col index map.
//!
//! A convolution layer stores its weights `[c_out, c_in, k_h, k_w]` like PyTorch; its input
//! and output are flat CHW vectors (channel, row, column), so a dense layer can follow a
//! convolution with no reshape (PyTorch's `flatten`). With the im2col map `X[p, t]` (the input
//! entry under kernel tap `t = (c_in, i, j)` at output position `p`, zero in the padding) the
//! layer is the matrix product `Z[o, p] = Σ_t W[o, t] · X[p, t] (+ b[o])`, so every host-side
//! computation over dense layers (reference forward, SynFlow, exact Hessian products) carries
//! over to convolutions through [`Im2col::gather`] and [`Im2col::scatter_add`].

use crate::LayerShape;
use serde::{Deserialize, Serialize};

/// Where a convolution layer sits: its input's spatial size, its stride and its symmetric
/// zero padding (the weight shape gives the channels and kernel size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Conv2d {
    pub in_h: usize,
    pub in_w: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    /// Output rows and columns for a `k_h × k_w` kernel: `⌊(n + 2p − k)/s⌋ + 1`, or `None`
    /// when the kernel does not fit or the stride is 0.
    pub fn out_hw(&self, k_h: usize, k_w: usize) -> Option<(usize, usize)> {
        let out = |n: usize, k: usize| {
            let padded = n + 2 * self.padding;
            (self.stride > 0 && k > 0 && padded >= k).then(|| (padded - k) / self.stride + 1)
        };
        Some((out(self.in_h, k_h)?, out(self.in_w, k_w)?))
    }
}

/// The im2col map of one convolution layer: for output position `p` (row-major over the
/// output's rows and columns) and tap `t` (row-major over `[c_in, k_h, k_w]`, the layout of a
/// weight row), the flat CHW input index it reads, or none in the padding.
#[derive(Debug, Clone, PartialEq)]
pub struct Im2col {
    positions: usize,
    taps: usize,
    /// `positions × taps` input indices; `u32::MAX` marks padding.
    index: Vec<u32>,
}

const PAD: u32 = u32::MAX;

impl Im2col {
    /// The map of a layer with weight `shape` (`[c_out, c_in, k_h, k_w]`) and geometry `conv`.
    ///
    /// # Panics
    /// If the shape is not 4-D or the kernel does not fit (a network is validated before).
    pub fn new(shape: &LayerShape, conv: &Conv2d) -> Self {
        let [_, c_in, k_h, k_w] = shape.dims[..] else {
            panic!("a convolution weight is [c_out, c_in, k_h, k_w], got {shape}");
        };
        let (out_h, out_w) = conv.out_hw(k_h, k_w).expect("validated geometry");
        let taps = c_in * k_h * k_w;
        let mut index = Vec::with_capacity(out_h * out_w * taps);
        for oy in 0..out_h {
            for ox in 0..out_w {
                for c in 0..c_in {
                    for i in 0..k_h {
                        for j in 0..k_w {
                            // Padded coordinates; the input starts at `padding`.
                            let (y, x) = (oy * conv.stride + i, ox * conv.stride + j);
                            let inside = y >= conv.padding
                                && x >= conv.padding
                                && y - conv.padding < conv.in_h
                                && x - conv.padding < conv.in_w;
                            index.push(if inside {
                                let at = (c * conv.in_h + y - conv.padding) * conv.in_w + x
                                    - conv.padding;
                                u32::try_from(at).expect("layer inputs fit in u32")
                            } else {
                                PAD
                            });
                        }
                    }
                }
            }
        }
        Im2col {
            positions: out_h * out_w,
            taps,
            index,
        }
    }

    /// Output positions per channel (`out_h · out_w`).
    pub fn positions(&self) -> usize {
        self.positions
    }

    /// Taps per output (`c_in · k_h · k_w`, the weight row length).
    pub fn taps(&self) -> usize {
        self.taps
    }

    /// The input index read at position `p`, tap `t` (none in the padding).
    pub fn input_at(&self, p: usize, t: usize) -> Option<usize> {
        let i = self.index[p * self.taps + t];
        (i != PAD).then_some(i as usize)
    }

    /// `cols[p, t] = x[input_at(p, t)]` (0 in the padding) for one example's CHW input `x`;
    /// `cols` is `positions × taps`.
    pub fn gather<T: Copy + Default>(&self, x: &[T], cols: &mut [T]) {
        for (c, &i) in cols.iter_mut().zip(&self.index) {
            *c = if i == PAD {
                T::default()
            } else {
                x[i as usize]
            };
        }
    }

    /// The adjoint of [`Im2col::gather`]: `dx[input_at(p, t)] += dcols[p, t]`.
    pub fn scatter_add<T: Copy + std::ops::AddAssign>(&self, dcols: &[T], dx: &mut [T]) {
        for (&d, &i) in dcols.iter().zip(&self.index) {
            if i != PAD {
                dx[i as usize] += d;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_follows_the_pytorch_formula() {
        let c = Conv2d {
            in_h: 8,
            in_w: 8,
            stride: 2,
            padding: 1,
        };
        assert_eq!(c.out_hw(3, 3), Some((4, 4)));
        assert_eq!(Conv2d { stride: 1, ..c }.out_hw(3, 3), Some((8, 8)));
        assert_eq!(Conv2d { padding: 0, ..c }.out_hw(3, 3), Some((3, 3)));
        assert_eq!(Conv2d { padding: 0, ..c }.out_hw(9, 3), None);
        assert_eq!(Conv2d { stride: 0, ..c }.out_hw(3, 3), None);
    }

    #[test]
    fn gather_reads_the_window_with_zero_padding() {
        // One channel, 3×3 input 1..9, 2×2 kernel, stride 1, padding 1 → 4×4 outputs.
        let shape = LayerShape {
            dims: vec![1, 1, 2, 2],
        };
        let conv = Conv2d {
            in_h: 3,
            in_w: 3,
            stride: 1,
            padding: 1,
        };
        let map = Im2col::new(&shape, &conv);
        assert_eq!((map.positions(), map.taps()), (16, 4));
        let x: Vec<f64> = (1..=9).map(f64::from).collect();
        let mut cols = vec![f64::NAN; 16 * 4];
        map.gather(&x, &mut cols);
        // Position (0, 0) covers padded rows −1..0 and columns −1..0: only x[0, 0] = 1.
        assert_eq!(&cols[0..4], &[0.0, 0.0, 0.0, 1.0]);
        // Position (1, 1) covers input rows 0..1, columns 0..1.
        assert_eq!(&cols[5 * 4..6 * 4], &[1.0, 2.0, 4.0, 5.0]);
        // Position (3, 3): input (2, 2) and padding.
        assert_eq!(&cols[15 * 4..16 * 4], &[9.0, 0.0, 0.0, 0.0]);
        assert_eq!(map.input_at(0, 0), None);
        assert_eq!(map.input_at(5, 3), Some(4));
    }

    #[test]
    fn scatter_add_is_the_adjoint_of_gather() {
        // ⟨gather(x), y⟩ = ⟨x, scatter_add(y)⟩ for a 2-channel strided map.
        let shape = LayerShape {
            dims: vec![3, 2, 3, 3],
        };
        let conv = Conv2d {
            in_h: 5,
            in_w: 4,
            stride: 2,
            padding: 1,
        };
        let map = Im2col::new(&shape, &conv);
        let x: Vec<f64> = (0..40).map(|i| (i as f64 * 0.37).sin()).collect();
        let y: Vec<f64> = (0..map.positions() * map.taps())
            .map(|i| (i as f64 * 0.11).cos())
            .collect();
        let mut cols = vec![0.0; y.len()];
        map.gather(&x, &mut cols);
        let mut back = vec![0.0; x.len()];
        map.scatter_add(&y, &mut back);
        let lhs: f64 = cols.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-12, "{lhs} vs {rhs}");
    }
}
