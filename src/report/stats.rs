//! Statistics of sanity-check verdicts (methods.md §3.3 and §4.2–4.4), in pure Rust.
//!
//! * Special functions: [`t_cdf`], [`t_sf`], [`t_ppf`] (Student t, via the regularized
//!   incomplete beta function), [`norm_cdf`] (via the regularized incomplete gamma function).
//! * Intervals and effect size: [`mean_ci`], [`cohen_dz`].
//! * Paired tests on the differences Δ: [`ttest_1samp`] / [`ttest_rel`] (Student t),
//!   [`wilcoxon`] (signed-rank, exact below [`WILCOXON_EXACT_MAX_N`]), [`sign_flip_test`]
//!   (exact permutation test below [`SIGN_FLIP_EXACT_MAX_N`]), [`tost`] (equivalence).
//! * Multiple comparisons: [`holm`] (Holm–Bonferroni).
//! * Verdicts: [`PairedSummary::from_pairs`] summarises the per-seed pairs of one
//!   (method, density, check) cell, [`judge_table`] turns the summaries of a whole table into
//!   [`Verdict`]s (Holm runs across the table).
//!
//! Conventions follow scipy (`scipy.stats`): p-values of one-sided tests are named by the
//! alternative (`p_less`: H1 "mean Δ < 0"), undefined quantities are `NaN`, and for the
//! sanity checks Δ_s = acc(check) − acc(orig), so "the check is worse" is the alternative
//! `less`. For metrics where lower is better (loss, MSE) the caller must orient Δ so that a
//! negative Δ means "worse" (e.g. Δ = loss(orig) − loss(check)).

use serde::Serialize;
use std::f64::consts::PI;
use ticketbench_core::Streams;

// ---------------------------------------------------------------------------------------
// Special functions
// ---------------------------------------------------------------------------------------

/// ln Γ(x) for x > 0: Lanczos approximation with g = 7 and 9 coefficients,
/// Γ(x+1) = √(2π) (x + g + ½)^{x+½} e^{−(x+g+½)} A_g(x), relative error ≲ 1e-15;
/// the reflection Γ(x)Γ(1−x) = π / sin(πx) is used for 0 < x < ½.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b).
fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// Continued fraction of the incomplete beta function (modified Lentz's method):
/// I_x(a, b) = x^a (1−x)^b / (a B(a, b)) · 1/(1+ d_1/(1+ d_2/(1+ …))) with
/// d_{2m+1} = −(a+m)(a+b+m) x / ((a+2m)(a+2m+1)), d_{2m} = m(b−m) x / ((a+2m−1)(a+2m));
/// converges quickly for x < (a+1)/(a+b+2).
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-16;
    let clamp = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / clamp(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=10_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / clamp(1.0 + aa * d);
        c = clamp(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / clamp(1.0 + aa * d);
        c = clamp(1.0 + aa / c);
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() <= EPS {
            break;
        }
    }
    h
}

/// Regularized incomplete beta function I_x(a, b) = B(x; a, b) / B(a, b), given both
/// x and y = 1 − x (so that callers can pass an accurate y when x is close to 1).
/// Uses the continued fraction directly for x < (a+1)/(a+b+2) and the symmetry
/// I_x(a, b) = 1 − I_y(b, a) otherwise.
fn beta_inc_reg(a: f64, b: f64, x: f64, y: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if y <= 0.0 {
        return 1.0;
    }
    let front = (a * x.ln() + b * y.ln() - ln_beta(a, b)).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_continued_fraction(b, a, y) / b
    }
}

/// Regularized upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a): series
/// P(a, x) = e^{−x} x^a Σ_k x^k / Γ(a+k+1) for x < a + 1 (then Q = 1 − P), else the
/// Lentz continued fraction Q(a, x) = e^{−x} x^a / Γ(a) · 1/(x+1−a− 1·(1−a)/(x+3−a− …)).
fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        let mut ap = a;
        let mut del = 1.0 / a;
        let mut sum = del;
        for _ in 0..10_000 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * 1e-17 {
                break;
            }
        }
        1.0 - front * sum
    } else {
        const TINY: f64 = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() <= 1e-16 {
                break;
            }
        }
        front * h
    }
}

/// Standard normal CDF Φ(z) = ½ erfc(−z/√2), with erfc(u) = Q(½, u²) for u ≥ 0
/// (accurate in relative terms in both tails; |error| ≲ 1e-15).
pub fn norm_cdf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    let tail = 0.5 * gamma_q(0.5, 0.5 * z * z); // P(Z > |z|)
    if z < 0.0 { tail } else { 1.0 - tail }
}

/// Upper tail P(T > t) of Student's t with `df` degrees of freedom for t ≥ 0:
/// P(T > t) = ½ I_x(ν/2, ½) with x = ν/(ν + t²), computed without overflow for huge t.
fn t_upper_tail_nonneg(t: f64, df: f64) -> f64 {
    if t.is_infinite() {
        return 0.0;
    }
    let (x, y) = if t * t <= df {
        let s = df + t * t;
        (df / s, t * t / s)
    } else {
        let r2 = df / t / t; // (√ν / t)²
        (r2 / (1.0 + r2), 1.0 / (1.0 + r2))
    };
    0.5 * beta_inc_reg(0.5 * df, 0.5, x, y)
}

/// Student t CDF F_ν(t) = P(T ≤ t) = 1 − ½ I_{ν/(ν+t²)}(ν/2, ½) for t ≥ 0 and
/// ½ I_{ν/(ν+t²)}(ν/2, ½) for t < 0 (regularized incomplete beta function, Lentz continued
/// fraction; relative error ≲ 1e-13 for ν ≤ 100, also in the far tails). `df = ∞` gives Φ.
/// `NaN` for `NaN` input or `df ≤ 0`.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if df.is_infinite() {
        return norm_cdf(t);
    }
    if t < 0.0 {
        t_upper_tail_nonneg(-t, df)
    } else {
        1.0 - t_upper_tail_nonneg(t, df)
    }
}

/// Student t survival function P(T > t) = F_ν(−t) (accurate in the upper tail).
pub fn t_sf(t: f64, df: f64) -> f64 {
    t_cdf(-t, df)
}

/// Student t density f_ν(t) = Γ((ν+1)/2) / (√(νπ) Γ(ν/2)) · (1 + t²/ν)^{−(ν+1)/2}.
fn t_pdf(t: f64, df: f64) -> f64 {
    (ln_gamma(0.5 * (df + 1.0))
        - ln_gamma(0.5 * df)
        - 0.5 * (df * PI).ln()
        - 0.5 * (df + 1.0) * (t * t / df).ln_1p())
    .exp()
}

/// Student t quantile F_ν^{−1}(p): the t ≥ 0 with P(T > t) = min(p, 1−p) is found by Newton
/// steps on the tail (derivative −f_ν(t)) safeguarded by a shrinking bisection bracket, then
/// given the sign of p − ½. Converges to ~1 ulp of the CDF inversion (relative error ≲ 1e-13
/// for ν ≤ 100). Examples (two-sided 95%): F^{−1}(0.975) = 4.303 (ν = 2), 2.776 (ν = 4),
/// 2.262 (ν = 9), 2.093 (ν = 19). `±∞` at p = 0 / 1; `NaN` outside [0, 1] or for `df ≤ 0`.
pub fn t_ppf(p: f64, df: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    if p == 0.5 {
        return 0.0;
    }
    let q = if p < 0.5 { p } else { 1.0 - p };
    let tail = |t: f64| {
        if df.is_infinite() {
            norm_cdf(-t)
        } else {
            t_upper_tail_nonneg(t, df)
        }
    };
    let pdf = |t: f64| {
        if df.is_infinite() {
            (-0.5 * t * t).exp() / (2.0 * PI).sqrt()
        } else {
            t_pdf(t, df)
        }
    };
    // Bracket: tail(lo) > q ≥ tail(hi).
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while tail(hi) > q {
        lo = hi;
        hi *= 2.0;
        if hi > 1e300 {
            break;
        }
    }
    let mut t = 0.5 * (lo + hi);
    for _ in 0..300 {
        let f = tail(t) - q; // decreasing in t
        if f == 0.0 {
            break;
        }
        if f > 0.0 {
            lo = t;
        } else {
            hi = t;
        }
        let newton = t + f / pdf(t);
        let next = if newton > lo && newton < hi && newton.is_finite() {
            newton
        } else {
            0.5 * (lo + hi)
        };
        let done =
            (next - t).abs() <= 4.0 * f64::EPSILON * t.abs() || hi - lo <= 4.0 * f64::EPSILON * hi;
        t = next;
        if done {
            break;
        }
    }
    if p < 0.5 { -t } else { t }
}

// ---------------------------------------------------------------------------------------
// Descriptive statistics
// ---------------------------------------------------------------------------------------

/// Arithmetic mean x̄ = Σ x_i / n (`NaN` for an empty slice).
fn mean_of(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

/// Sample standard deviation s = √(Σ (x_i − x̄)² / (n − 1)) (`NaN` for n < 2).
fn sd_of(values: &[f64], mean: f64) -> f64 {
    let n = values.len();
    if n < 2 {
        return f64::NAN;
    }
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
}

/// Confidence interval of the mean (methods.md §4.2): x̄ ± t_{(1+level)/2, n−1} · s/√n,
/// returned as `(mean, lo, hi)`. With 95%: t = 4.303 (n = 3), 2.776 (n = 5), 2.262 (n = 10).
/// `lo`/`hi` are `NaN` for n < 2 (and everything is `NaN` for n = 0).
pub fn mean_ci(values: &[f64], level: f64) -> (f64, f64, f64) {
    let mean = mean_of(values);
    let (lo, hi) = ci_from_moments(values.len(), mean, sd_of(values, mean), level);
    (mean, lo, hi)
}

fn ci_from_moments(n: usize, mean: f64, sd: f64, level: f64) -> (f64, f64) {
    if n < 2 || !(level > 0.0 && level < 1.0) {
        return (f64::NAN, f64::NAN);
    }
    let half = t_ppf(0.5 * (1.0 + level), (n - 1) as f64) * sd / (n as f64).sqrt();
    (mean - half, mean + half)
}

/// Effect size of paired differences, d_z = mean(Δ) / sd(Δ) (sd with n − 1; methods.md §4.3).
/// `NaN` for n < 2; ±∞ when all Δ are equal and non-zero.
pub fn cohen_dz(diffs: &[f64]) -> f64 {
    let mean = mean_of(diffs);
    mean / sd_of(diffs, mean)
}

// ---------------------------------------------------------------------------------------
// Student t-tests
// ---------------------------------------------------------------------------------------

/// Result of a one-sample (or paired) Student t-test of H0: mean = μ0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TTest {
    /// t = (x̄ − μ0) / (s/√n).
    pub t: f64,
    /// ν = n − 1.
    pub df: f64,
    /// x̄.
    pub mean: f64,
    /// Standard error s/√n.
    pub se: f64,
    /// H1: mean < μ0, p = F_ν(t).
    pub p_less: f64,
    /// H1: mean > μ0, p = 1 − F_ν(t).
    pub p_greater: f64,
    /// H1: mean ≠ μ0, p = 2 (1 − F_ν(|t|)).
    pub p_two_sided: f64,
}

fn ttest_from_moments(n: usize, mean: f64, sd: f64, popmean: f64) -> TTest {
    let df = n as f64 - 1.0;
    let se = sd / (n as f64).sqrt();
    let t = (mean - popmean) / se; // ±∞ when se = 0 and mean ≠ μ0 (as scipy)
    if n < 2 || t.is_nan() {
        return TTest {
            t,
            df,
            mean,
            se,
            p_less: f64::NAN,
            p_greater: f64::NAN,
            p_two_sided: f64::NAN,
        };
    }
    TTest {
        t,
        df,
        mean,
        se,
        p_less: t_cdf(t, df),
        p_greater: t_sf(t, df),
        p_two_sided: (2.0 * t_sf(t.abs(), df)).min(1.0),
    }
}

/// One-sample t-test of H0: mean = `popmean` (as `scipy.stats.ttest_1samp`):
/// t = (x̄ − μ0)/(s/√n), ν = n − 1, p from the Student t CDF. `NaN` p-values for n < 2 or
/// when t is undefined (all values equal to μ0).
pub fn ttest_1samp(values: &[f64], popmean: f64) -> TTest {
    let mean = mean_of(values);
    ttest_from_moments(values.len(), mean, sd_of(values, mean), popmean)
}

/// Paired t-test (as `scipy.stats.ttest_rel(a, b)`): the one-sample t-test of the
/// differences d_i = a_i − b_i against 0. For a sanity check call it as
/// `ttest_rel(checked, original)`, so `p_less` tests "the check is worse".
///
/// # Panics
/// If `a` and `b` differ in length.
pub fn ttest_rel(a: &[f64], b: &[f64]) -> TTest {
    assert_eq!(a.len(), b.len(), "ttest_rel: samples of different length");
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    ttest_1samp(&d, 0.0)
}

// ---------------------------------------------------------------------------------------
// Wilcoxon signed-rank test
// ---------------------------------------------------------------------------------------

/// Largest number of non-zero differences for which [`wilcoxon`] computes the exact null
/// distribution (scipy ≥ 1.9 uses the exact distribution up to 50 without ties); above it the
/// normal approximation is used.
pub const WILCOXON_EXACT_MAX_N: usize = 50;

/// How a [`Wilcoxon`] p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WilcoxonMethod {
    /// Exact permutation distribution of W+ over the 2^n sign patterns of the (average) ranks.
    Exact,
    /// Normal approximation with continuity and tie correction.
    Normal,
}

/// Result of the Wilcoxon signed-rank test of H0: the differences are symmetric about 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Wilcoxon {
    /// Non-zero differences (zeros are dropped, scipy's `zero_method='wilcox'`).
    pub n: usize,
    /// Dropped zero differences.
    pub zeros: usize,
    /// W+ = Σ ranks of |Δ_i| over Δ_i > 0 (average ranks for ties); scipy's statistic for
    /// one-sided alternatives.
    pub w_plus: f64,
    /// W− = n(n+1)/2 − W+.
    pub w_minus: f64,
    /// min(W+, W−): scipy's statistic for the two-sided alternative.
    pub statistic: f64,
    /// H1: Δ shifted below 0, p = P(W+ ≤ w+ | H0).
    pub p_less: f64,
    /// H1: Δ shifted above 0, p = P(W+ ≥ w+ | H0).
    pub p_greater: f64,
    /// p = min(1, 2 min(P(W+ ≤ w+), P(W+ ≥ w+))).
    pub p_two_sided: f64,
    /// Whether some |Δ_i| were tied.
    pub ties: bool,
    pub method: WilcoxonMethod,
}

/// Wilcoxon signed-rank test on the differences `diffs` (as `scipy.stats.wilcoxon(d)` with
/// `zero_method='wilcox'`): zeros are dropped, |Δ| ranked 1..n with average ranks for ties,
/// W+ = Σ_{Δ_i > 0} r_i.
///
/// * n ≤ [`WILCOXON_EXACT_MAX_N`]: exact null distribution of W+ = Σ_i ε_i r_i over the 2^n
///   equally likely sign patterns ε ∈ {0, 1}^n, by dynamic programming over the doubled
///   (integer) ranks. Without ties this is the classical exact distribution (scipy's
///   `method='exact'`); with ties it is the exact permutation distribution of the signed
///   average ranks (scipy's `method=PermutationMethod()`).
/// * n > [`WILCOXON_EXACT_MAX_N`]: z = (W+ − n(n+1)/4) / σ with
///   σ² = n(n+1)(2n+1)/24 − Σ_g (t_g³ − t_g)/48 (t_g = size of tie group g), continuity
///   correction ½/σ towards the alternative (scipy's `correction=True`), p from Φ.
///
/// With no non-zero difference all p-values are 1 (no evidence either way). Any `NaN`
/// difference makes every output `NaN`.
pub fn wilcoxon(diffs: &[f64]) -> Wilcoxon {
    let zeros = diffs.iter().filter(|d| **d == 0.0).count();
    let mut nz: Vec<f64> = diffs.iter().copied().filter(|d| *d != 0.0).collect();
    let n = nz.len();
    if diffs.iter().any(|d| d.is_nan()) {
        let nan = f64::NAN;
        return Wilcoxon {
            n,
            zeros,
            w_plus: nan,
            w_minus: nan,
            statistic: nan,
            p_less: nan,
            p_greater: nan,
            p_two_sided: nan,
            ties: false,
            method: WilcoxonMethod::Exact,
        };
    }
    nz.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Doubled average ranks: a tie group at (1-based) positions i..=j gets rank (i + j)/2.
    let mut rank2 = vec![0u64; n];
    let mut tie_term = 0.0; // Σ (t³ − t)
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && nz[j + 1].abs() == nz[i].abs() {
            j += 1;
        }
        for r in &mut rank2[i..=j] {
            *r = (i + 1 + j + 1) as u64;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let ties = tie_term > 0.0;
    let total2 = (n * (n + 1)) as u64; // 2 · n(n+1)/2
    let w_plus2: u64 = nz
        .iter()
        .zip(&rank2)
        .filter(|(d, _)| **d > 0.0)
        .map(|(_, r)| *r)
        .sum();
    let w_plus = w_plus2 as f64 / 2.0;
    let w_minus = (total2 - w_plus2) as f64 / 2.0;
    let statistic = w_plus.min(w_minus);
    if n == 0 {
        return Wilcoxon {
            n,
            zeros,
            w_plus,
            w_minus,
            statistic,
            p_less: 1.0,
            p_greater: 1.0,
            p_two_sided: 1.0,
            ties,
            method: WilcoxonMethod::Exact,
        };
    }
    let (p_less, p_greater, p_two_sided, method) = if n <= WILCOXON_EXACT_MAX_N {
        // counts[s] = number of sign patterns with doubled W+ = s (≤ 2^50: exact in u64/f64).
        let mut counts = vec![0u64; total2 as usize + 1];
        counts[0] = 1;
        let mut reach = 0usize;
        for &r in &rank2 {
            let r = r as usize;
            reach += r;
            for s in (r..=reach).rev() {
                counts[s] += counts[s - r];
            }
        }
        let all = (n as f64).exp2();
        let w = w_plus2 as usize;
        let le: u64 = counts[..=w].iter().sum();
        let ge: u64 = counts[w..].iter().sum();
        let p_less = le as f64 / all;
        let p_greater = ge as f64 / all;
        (
            p_less,
            p_greater,
            (2.0 * p_less.min(p_greater)).min(1.0),
            WilcoxonMethod::Exact,
        )
    } else {
        let nf = n as f64;
        let mean = nf * (nf + 1.0) / 4.0;
        let sigma = ((nf * (nf + 1.0) * (2.0 * nf + 1.0) - tie_term / 2.0) / 24.0).sqrt();
        let z = (w_plus - mean) / sigma;
        let corr = 0.5 / sigma;
        let p_less = norm_cdf(z + corr);
        let p_greater = norm_cdf(-(z - corr));
        // Two-sided: correct towards 0 (no correction at z = 0), as scipy's sign(z).
        let z_two = if z > 0.0 {
            z - corr
        } else if z < 0.0 {
            z + corr
        } else {
            0.0
        };
        let p_two = (2.0 * norm_cdf(-z_two.abs())).min(1.0);
        (p_less, p_greater, p_two, WilcoxonMethod::Normal)
    };
    Wilcoxon {
        n,
        zeros,
        w_plus,
        w_minus,
        statistic,
        p_less,
        p_greater,
        p_two_sided,
        ties,
        method,
    }
}

// ---------------------------------------------------------------------------------------
// Sign-flip permutation test
// ---------------------------------------------------------------------------------------

/// Largest n for which [`sign_flip_test`] enumerates all 2^n sign patterns.
pub const SIGN_FLIP_EXACT_MAX_N: usize = 20;
/// Monte Carlo resamples of [`sign_flip_test`] above [`SIGN_FLIP_EXACT_MAX_N`].
pub const SIGN_FLIP_RESAMPLES: usize = 100_000;
/// Named stream of the Monte Carlo sign patterns.
pub const SIGN_FLIP_STREAM: &str = "report/stats/sign_flip";

/// Result of the sign-flip permutation test of H0: Δ symmetric about 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SignFlip {
    pub n: usize,
    /// Observed mean Δ.
    pub mean: f64,
    /// H1: mean < 0, p = #{ε : Σ ε_i Δ_i ≤ Σ Δ_i} / 2^n.
    pub p_less: f64,
    /// H1: mean > 0, p = #{ε : Σ ε_i Δ_i ≥ Σ Δ_i} / 2^n.
    pub p_greater: f64,
    /// p = min(1, 2 min(p_less, p_greater)) (= #{|Σ ε_i Δ_i| ≥ |Σ Δ_i|} / 2^n by symmetry).
    pub p_two_sided: f64,
    /// Exact enumeration (n ≤ [`SIGN_FLIP_EXACT_MAX_N`]) or Monte Carlo.
    pub exact: bool,
    /// Sign patterns evaluated: 2^n, or the Monte Carlo resamples.
    pub patterns: usize,
}

/// S(ε) = Σ ε_i Δ_i with ε_i = −1 where `flip(i)`, always summed in index order.
fn signed_sum(diffs: &[f64], flip: impl Fn(usize) -> bool) -> f64 {
    diffs
        .iter()
        .enumerate()
        .map(|(i, d)| if flip(i) { -d } else { *d })
        .sum()
}

/// Sign-flip permutation test on mean Δ (methods.md §4.3), distribution-free. The statistic
/// S(ε) = Σ ε_i Δ_i over sign patterns ε ∈ {±1}^n is compared with the observed S = Σ Δ_i
/// (ties within 1e-12 · Σ|Δ_i| count as equal, absorbing rounding).
///
/// * n ≤ [`SIGN_FLIP_EXACT_MAX_N`]: all 2^n patterns, counted by meet in the middle (the
///   smallest one-sided p is 2^{−n}, two-sided 2^{1−n}: 0.0625 at n = 5, 0.03125 at
///   n = 6). Matches
///   `scipy.stats.permutation_test((d,), np.mean, permutation_type='samples',
///   n_resamples=np.inf)`.
/// * above: [`SIGN_FLIP_RESAMPLES`] random patterns from the ChaCha stream
///   `Streams::new(seed).stream(SIGN_FLIP_STREAM)`, p = (1 + #hits) / (1 + B)
///   (never 0; valid for a Monte Carlo test).
///
/// `NaN` p-values for an empty slice or non-finite values.
pub fn sign_flip_test(diffs: &[f64], seed: u64) -> SignFlip {
    let n = diffs.len();
    let mean = mean_of(diffs);
    if n == 0 || diffs.iter().any(|d| !d.is_finite()) {
        return SignFlip {
            n,
            mean,
            p_less: f64::NAN,
            p_greater: f64::NAN,
            p_two_sided: f64::NAN,
            exact: n <= SIGN_FLIP_EXACT_MAX_N,
            patterns: 0,
        };
    }
    let observed: f64 = diffs.iter().sum();
    let tol = 1e-12 * diffs.iter().map(|d| d.abs()).sum::<f64>();
    let (le, ge, total, exact) = if n <= SIGN_FLIP_EXACT_MAX_N {
        // Meet in the middle: every pattern is (pattern of the first half, pattern of the
        // second half); S = A + B, counted over sorted B by binary search (fl(x + y) is
        // monotone in y), so 2^n patterns cost O(2^{n/2} log 2^{n/2}).
        let half_sums = |part: &[f64]| -> Vec<f64> {
            (0u32..(1u32 << part.len()))
                .map(|mask| signed_sum(part, |i| (mask >> i) & 1 == 1))
                .collect()
        };
        let (first, second) = diffs.split_at(n / 2);
        let a = half_sums(first);
        let mut b = half_sums(second);
        b.sort_by(f64::total_cmp);
        let (mut le, mut ge) = (0usize, 0usize);
        for x in a {
            le += b.partition_point(|y| x + y <= observed + tol);
            ge += b.len() - b.partition_point(|y| x + y < observed - tol);
        }
        (le as f64, ge as f64, (1usize << n) as f64, true)
    } else {
        let mut rng = Streams::new(seed).stream(SIGN_FLIP_STREAM);
        let words = n.div_ceil(64);
        let mut bits = vec![0u64; words];
        let (mut le, mut ge) = (1usize, 1usize);
        for _ in 0..SIGN_FLIP_RESAMPLES {
            for w in &mut bits {
                *w = rand::Rng::next_u64(&mut rng);
            }
            let s = signed_sum(diffs, |i| (bits[i / 64] >> (i % 64)) & 1 == 1);
            le += usize::from(s <= observed + tol);
            ge += usize::from(s >= observed - tol);
        }
        (
            le as f64,
            ge as f64,
            (SIGN_FLIP_RESAMPLES + 1) as f64,
            false,
        )
    };
    let p_less = le / total;
    let p_greater = ge / total;
    SignFlip {
        n,
        mean,
        p_less,
        p_greater,
        p_two_sided: (2.0 * p_less.min(p_greater)).min(1.0),
        exact,
        patterns: if exact { 1 << n } else { SIGN_FLIP_RESAMPLES },
    }
}

// ---------------------------------------------------------------------------------------
// Equivalence (TOST)
// ---------------------------------------------------------------------------------------

/// Result of a TOST equivalence test of −δ < mean Δ < δ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tost {
    pub delta: f64,
    pub alpha: f64,
    /// H0: mean ≤ −δ vs H1: mean > −δ; p = 1 − F_ν((x̄ + δ)/(s/√n)).
    pub p_lower: f64,
    /// H0: mean ≥ δ vs H1: mean < δ; p = F_ν((x̄ − δ)/(s/√n)).
    pub p_upper: f64,
    /// p = max(p_lower, p_upper).
    pub p: f64,
    /// The (1 − 2α) CI of the mean (90% at α = 0.05): x̄ ± t_{1−α, ν} s/√n.
    pub ci: (f64, f64),
    /// Equivalence shown: p < α, i.e. the (1 − 2α) CI lies strictly inside (−δ, δ).
    pub equivalent: bool,
}

/// TOST equivalence test with margin δ (methods.md §4.3): two one-sided t-tests, of
/// mean Δ > −δ and of mean Δ < δ; equivalent if both reject at α, i.e. p = max(p_lower,
/// p_upper) < α, equivalently the (1 − 2α) CI lies inside (−δ, δ). Never equivalent for
/// n < 2 or δ ≤ 0.
pub fn tost(diffs: &[f64], delta: f64, alpha: f64) -> Tost {
    let mean = mean_of(diffs);
    tost_from_moments(diffs.len(), mean, sd_of(diffs, mean), delta, alpha)
}

fn tost_from_moments(n: usize, mean: f64, sd: f64, delta: f64, alpha: f64) -> Tost {
    let p_lower = ttest_from_moments(n, mean, sd, -delta).p_greater;
    let p_upper = ttest_from_moments(n, mean, sd, delta).p_less;
    let p = if p_lower.is_nan() || p_upper.is_nan() {
        f64::NAN
    } else {
        p_lower.max(p_upper)
    };
    let ci = ci_from_moments(n, mean, sd, 1.0 - 2.0 * alpha);
    Tost {
        delta,
        alpha,
        p_lower,
        p_upper,
        p,
        ci,
        equivalent: delta > 0.0 && p < alpha,
    }
}

// ---------------------------------------------------------------------------------------
// Holm–Bonferroni
// ---------------------------------------------------------------------------------------

/// Holm–Bonferroni adjusted p-values and rejections, both in the original order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Holm {
    /// p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j)) in sorted order; `NaN` for `NaN` input.
    pub adjusted: Vec<f64>,
    /// H_(i) rejected while p_(i) ≤ α/(m − i + 1), stopping at the first failure.
    pub rejected: Vec<bool>,
}

/// Holm–Bonferroni step-down procedure (methods.md §4.4) over the family `p_values`
/// (m = `p_values.len()`): sort ascending p_(1) ≤ … ≤ p_(m); reject H_(i) while
/// p_(i) ≤ α/(m − i + 1); adjusted p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j)).
/// `NaN` p-values count in m, sort last, are never rejected and get a `NaN` adjusted value.
pub fn holm(p_values: &[f64], alpha: f64) -> Holm {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    let key = |p: f64| if p.is_nan() { f64::INFINITY } else { p };
    order.sort_by(|&a, &b| key(p_values[a]).total_cmp(&key(p_values[b])));
    let mut adjusted = vec![f64::NAN; m];
    let mut rejected = vec![false; m];
    let mut running = 0.0_f64;
    let mut still_rejecting = true;
    for (rank, &idx) in order.iter().enumerate() {
        let p = p_values[idx];
        if p.is_nan() {
            still_rejecting = false;
            continue;
        }
        let factor = (m - rank) as f64;
        running = running.max((factor * p).min(1.0));
        adjusted[idx] = running;
        still_rejecting = still_rejecting && p <= alpha / factor;
        rejected[idx] = still_rejecting;
    }
    Holm { adjusted, rejected }
}

// ---------------------------------------------------------------------------------------
// Per-cell summaries and verdicts (methods.md §3.3)
// ---------------------------------------------------------------------------------------

/// Fewer seeds than this are never judged ([`Verdict::InsufficientSeeds`]).
pub const MIN_SEEDS_FOR_VERDICT: usize = 5;

/// Summary of one (method, density, check) cell from its per-seed pairs (original, checked);
/// Δ_s = checked_s − original_s, so negative Δ = the check made the ticket worse.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedSummary {
    /// Seeds (pairs).
    pub n: usize,
    pub mean_original: f64,
    pub mean_checked: f64,
    /// mean Δ.
    pub mean: f64,
    /// Sample sd of Δ (n − 1).
    pub sd: f64,
    /// 95% CI of mean Δ: mean ± t_{0.975, n−1} sd/√n.
    pub ci95: (f64, f64),
    /// d_z = mean Δ / sd Δ.
    pub d_z: f64,
    /// Paired t statistic, mean Δ / (sd/√n).
    pub t: f64,
    /// One-sided paired t-test, H1: mean Δ < 0 ("check worse than original").
    pub p_worse: f64,
    /// Two-sided paired t-test.
    pub p_two_sided: f64,
    /// Wilcoxon signed-rank test, H1: Δ shifted below 0.
    pub wilcoxon_p_worse: f64,
    /// Wilcoxon signed-rank test, two-sided.
    pub wilcoxon_p_two_sided: f64,
    /// Sign-flip permutation test, H1: mean Δ < 0 (exact for n ≤ 20, else Monte Carlo with
    /// seed 0).
    pub sign_flip_p_worse: f64,
    /// Equivalence margin used for `tost_p`.
    pub delta: f64,
    /// TOST p = max(p_lower, p_upper) for −δ < mean Δ < δ.
    pub tost_p: f64,
}

impl PairedSummary {
    /// Summarises per-seed pairs `(original, checked)` with TOST margin `delta`.
    pub fn from_pairs(pairs: &[(f64, f64)], delta: f64) -> PairedSummary {
        let diffs: Vec<f64> = pairs.iter().map(|(o, c)| c - o).collect();
        let n = diffs.len();
        let mean = mean_of(&diffs);
        let sd = sd_of(&diffs, mean);
        let t = ttest_from_moments(n, mean, sd, 0.0);
        let w = wilcoxon(&diffs);
        let originals: Vec<f64> = pairs.iter().map(|p| p.0).collect();
        let checked: Vec<f64> = pairs.iter().map(|p| p.1).collect();
        PairedSummary {
            n,
            mean_original: mean_of(&originals),
            mean_checked: mean_of(&checked),
            mean,
            sd,
            ci95: ci_from_moments(n, mean, sd, 0.95),
            d_z: mean / sd,
            t: t.t,
            p_worse: t.p_less,
            p_two_sided: t.p_two_sided,
            wilcoxon_p_worse: if n == 0 { f64::NAN } else { w.p_less },
            wilcoxon_p_two_sided: if n == 0 { f64::NAN } else { w.p_two_sided },
            sign_flip_p_worse: sign_flip_test(&diffs, 0).p_less,
            delta,
            tost_p: tost_from_moments(n, mean, sd, delta, 0.05).p,
        }
    }
}

/// Verdict of one sanity check in one cell (methods.md §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Uses weight-level information ("passes"): the one-sided paired t-test of mean Δ < 0
    /// is significant after Holm correction across the table **and** mean Δ ≤ −δ.
    Sensitive,
    /// Learns only ratios / ignores the data ("fails"): TOST shows −δ < mean Δ < δ at α.
    Insensitive,
    /// Neither: report the CI; never call it a pass or a fail.
    Inconclusive,
    /// Fewer than [`MIN_SEEDS_FOR_VERDICT`] seeds: not judged.
    InsufficientSeeds,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Sensitive => "sensitive",
            Verdict::Insensitive => "insensitive",
            Verdict::Inconclusive => "inconclusive",
            Verdict::InsufficientSeeds => "insufficient seeds",
        }
    }
}

/// The verdict of one cell with the numbers behind it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Judgement {
    pub verdict: Verdict,
    /// Holm-adjusted one-sided t-test p (H1: mean Δ < 0); `None` if not judged.
    pub p_worse_holm: Option<f64>,
    /// TOST p at the table's δ; `None` if not judged.
    pub tost_p: Option<f64>,
}

/// Verdicts for all cells of one report family (methods.md §3.3, §4.4), in input order.
///
/// Cells with n < [`MIN_SEEDS_FOR_VERDICT`] are [`Verdict::InsufficientSeeds`] and stay out of
/// the family. For the m judged cells, Holm–Bonferroni at `alpha` runs over their one-sided
/// paired t-test p-values (`p_worse`; an undefined p, e.g. all Δ = 0, counts as 1). Then
/// * `Sensitive` ⇔ Holm rejects H0 (mean Δ ≥ 0) **and** mean Δ ≤ −δ;
/// * `Insensitive` ⇔ TOST with margin `delta` at `alpha` (recomputed here from n, mean, sd,
///   so the summaries' own δ does not matter) shows −δ < mean Δ < δ;
/// * `Inconclusive` otherwise.
///
/// The two positive verdicts are exclusive: Sensitive needs mean Δ ≤ −δ, Insensitive a CI
/// (hence mean) above −δ.
pub fn judge_table(summaries: &[PairedSummary], delta: f64, alpha: f64) -> Vec<Judgement> {
    let judged: Vec<usize> = (0..summaries.len())
        .filter(|&i| summaries[i].n >= MIN_SEEDS_FOR_VERDICT)
        .collect();
    let p: Vec<f64> = judged
        .iter()
        .map(|&i| {
            let p = summaries[i].p_worse;
            if p.is_nan() { 1.0 } else { p }
        })
        .collect();
    let h = holm(&p, alpha);
    let mut out = vec![
        Judgement {
            verdict: Verdict::InsufficientSeeds,
            p_worse_holm: None,
            tost_p: None,
        };
        summaries.len()
    ];
    for (k, &i) in judged.iter().enumerate() {
        let s = &summaries[i];
        let eq = tost_from_moments(s.n, s.mean, s.sd, delta, alpha);
        let verdict = if h.rejected[k] && s.mean <= -delta {
            Verdict::Sensitive
        } else if eq.equivalent {
            Verdict::Insensitive
        } else {
            Verdict::Inconclusive
        };
        out[i] = Judgement {
            verdict,
            p_worse_holm: Some(h.adjusted[k]),
            tost_p: Some(eq.p),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketbench_core::sample_standard_normal;

    /// |got − want| ≤ rel · |want| (or ≤ rel when want = 0).
    fn close(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= rel * want.abs().max(f64::MIN_POSITIVE)
            || (want == 0.0 && got.abs() <= rel)
    }

    macro_rules! assert_close {
        ($got:expr, $want:expr, $rel:expr) => {{
            let (g, w): (f64, f64) = ($got, $want);
            assert!(
                close(g, w, $rel),
                "{} = {g:e}, want {w:e} (rel err {:.2e})",
                stringify!($got),
                ((g - w) / w).abs()
            );
        }};
    }

    // Reference values below: scipy 1.17.1 (numpy 2.4.6), Python 3.11.

    /// (df, t, scipy.stats.t.cdf(t, df)).
    const T_CDF: [(f64, f64, f64); 20] = [
        (2.0, -3.5, 0.036413675027234665),
        (2.0, -1.2, 0.17650168038968475),
        (2.0, 0.3, 0.6037571695799112),
        (2.0, 2.0, 0.908248290463863),
        (2.0, 5.0, 0.9811252243246882),
        (4.0, -3.5, 0.012448081730111374),
        (4.0, -1.2, 0.14817569665617666),
        (4.0, 0.3, 0.6104392858612702),
        (4.0, 2.0, 0.9419417382415922),
        (4.0, 5.0, 0.9962547830593628),
        (9.0, -3.5, 0.0033617578815294796),
        (9.0, -1.2, 0.13038659869523075),
        (9.0, 0.3, 0.6145046481292376),
        (9.0, 2.0, 0.9617235881146495),
        (9.0, 5.0, 0.9996305160450983),
        (30.0, -3.5, 0.0007384037188221266),
        (30.0, -1.2, 0.11976517544483119),
        (30.0, 0.3, 0.6168769473578236),
        (30.0, 2.0, 0.9726874775185085),
        (30.0, 5.0, 0.9999883516572665),
    ];

    /// (df, t, scipy.stats.t.sf(t, df)): far upper tails.
    const T_SF: [(f64, f64, f64); 5] = [
        (2.0, 100.0, 4.999250124978129e-05),
        (4.0, 40.0, 1.1670081613006339e-06),
        (9.0, 12.0, 3.8499431114928265e-07),
        (30.0, 8.0, 3.1329112378503795e-09),
        (1.0, 1000000.0, 3.1830988618368455e-07),
    ];

    /// (df, p, scipy.stats.t.ppf(p, df)).
    const T_PPF: [(f64, f64, f64); 30] = [
        (2.0, 0.001, -22.327124770119873),
        (2.0, 0.05, -2.9199855803537256),
        (2.0, 0.9, 1.8856180831641272),
        (2.0, 0.95, 2.9199855803537242),
        (2.0, 0.975, 4.302652729749462),
        (2.0, 0.995, 9.924843200918287),
        (4.0, 0.001, -7.1731822197823085),
        (4.0, 0.05, -2.131846786326651),
        (4.0, 0.9, 1.533206274058944),
        (4.0, 0.95, 2.1318467863266495),
        (4.0, 0.975, 2.7764451051977934),
        (4.0, 0.995, 4.604094871349992),
        (9.0, 0.001, -4.296805662729919),
        (9.0, 0.05, -1.8331129326562376),
        (9.0, 0.9, 1.3830287383966329),
        (9.0, 0.95, 1.833112932656237),
        (9.0, 0.975, 2.262157162798205),
        (9.0, 0.995, 3.249835541592126),
        (19.0, 0.001, -3.579400148954716),
        (19.0, 0.05, -1.7291328115213687),
        (19.0, 0.9, 1.3277282090267986),
        (19.0, 0.95, 1.7291328115213682),
        (19.0, 0.975, 2.0930240544083087),
        (19.0, 0.995, 2.8609346064649794),
        (30.0, 0.001, -3.385184866829305),
        (30.0, 0.05, -1.6972608865939574),
        (30.0, 0.9, 1.3104150253913955),
        (30.0, 0.95, 1.697260886593957),
        (30.0, 0.975, 2.0422724563012378),
        (30.0, 0.995, 2.7499956535672254),
    ];

    #[test]
    fn t_distribution_matches_scipy() {
        for (df, t, want) in T_CDF {
            assert_close!(t_cdf(t, df), want, 1e-12);
            assert_close!(t_sf(-t, df), want, 1e-12);
        }
        for (df, t, want) in T_SF {
            assert_close!(t_sf(t, df), want, 1e-11);
        }
        for (df, p, want) in T_PPF {
            assert_close!(t_ppf(p, df), want, 1e-11);
            assert_close!(t_cdf(t_ppf(p, df), df), p, 1e-12);
        }
        assert_eq!(t_ppf(0.5, 7.0), 0.0);
        assert_eq!(t_ppf(1.0, 7.0), f64::INFINITY);
        assert!(t_ppf(1.5, 7.0).is_nan() && t_cdf(1.0, 0.0).is_nan());
        assert_eq!(t_cdf(f64::INFINITY, 3.0), 1.0);
        assert_eq!(t_cdf(f64::NEG_INFINITY, 3.0), 0.0);
        // ν = 1 is Cauchy: F(t) = ½ + atan(t)/π.
        for t in [-30.0, -2.0, -0.1, 0.4, 3.0] {
            assert_close!(t_cdf(t, 1.0), 0.5 + f64::atan(t) / PI, 1e-13);
        }
        // The t values quoted in methods.md §4.2.
        for (n, t) in [(3, 4.303), (5, 2.776), (10, 2.262), (20, 2.093)] {
            assert!((t_ppf(0.975, (n - 1) as f64) - t).abs() < 5e-4, "n = {n}");
        }
    }

    #[test]
    fn normal_cdf_matches_scipy() {
        // (z, scipy.stats.norm.cdf(z)).
        for (z, want) in [
            (-8.0, 6.22096057427174e-16),
            (-3.0, 0.0013498980316300933),
            (-1.5, 0.06680720126885807),
            (0.0, 0.5),
            (0.7, 0.758036347776927),
            (2.5, 0.9937903346742238),
        ] {
            assert_close!(norm_cdf(z), want, 1e-13);
        }
        assert_close!(t_ppf(0.975, f64::INFINITY), 1.959963984540054, 1e-12);
    }

    const ORIG: [f64; 10] = [91.2, 90.8, 91.5, 90.9, 91.1, 91.4, 90.7, 91.0, 91.3, 90.6];
    const CHECKED: [f64; 10] = [89.9, 90.1, 90.2, 89.6, 90.5, 89.8, 90.0, 89.7, 90.4, 89.5];
    const X: [f64; 8] = [0.3, -0.8, 0.1, -0.4, -1.1, 0.5, -0.2, -0.6];

    #[test]
    fn t_tests_match_scipy() {
        // scipy.stats.ttest_rel(CHECKED, ORIG, alternative=...), df = 9.
        let r = ttest_rel(&CHECKED, &ORIG);
        assert_eq!(r.df, 9.0);
        assert_close!(r.t, -10.164784043238095, 1e-10);
        assert_close!(r.p_two_sided, 3.1225934456460526e-06, 1e-9);
        assert_close!(r.p_less, 1.5612967228230263e-06, 1e-9);
        assert_close!(r.p_greater, 0.9999984387032772, 1e-12);
        // scipy.stats.ttest_1samp(X, popmean, alternative=...), df = 7.
        let r = ttest_1samp(&X, 0.0);
        assert_close!(r.t, -1.4018549196608265, 1e-12);
        assert_close!(r.p_two_sided, 0.2037095834893214, 1e-12);
        assert_close!(r.p_less, 0.1018547917446607, 1e-12);
        assert_close!(r.p_greater, 0.8981452082553393, 1e-12);
        let r = ttest_1samp(&X, -0.5);
        assert_close!(r.t, 1.1469722069952215, 1e-12);
        assert_close!(r.p_two_sided, 0.28908048400942027, 1e-12);
        assert_close!(r.p_less, 0.8554597579952898, 1e-12);
        assert_close!(r.p_greater, 0.14454024200471013, 1e-12);
        // Degenerate inputs: constant non-zero data gives t = ∞, p = 0 (as scipy); n < 2 NaN.
        let r = ttest_1samp(&[0.3; 5], 0.0);
        assert!(r.t.is_infinite() && r.p_two_sided == 0.0 && r.p_greater == 0.0);
        assert!(ttest_1samp(&[1.0], 0.0).p_two_sided.is_nan());
        assert!(ttest_1samp(&[0.0; 4], 0.0).p_less.is_nan());
    }

    #[test]
    fn confidence_intervals_match_scipy() {
        // scipy.stats.t.interval(0.95, n-1, loc=mean, scale=sem).
        for (values, mean, lo, hi) in [
            (
                &[1.0, 2.0, 4.0][..],
                2.3333333333333335,
                -1.461249700263426,
                6.1279163669300925,
            ),
            (
                &[0.5, -0.25, 1.5, 0.75, 2.0][..],
                0.9,
                -0.18867099766627426,
                1.9886709976662744,
            ),
            (
                &[3.1, 2.7, 3.4, 2.9, 3.0, 3.3, 2.8, 3.2, 2.6, 3.5][..],
                3.0500000000000003,
                2.8334149410331833,
                3.2665850589668173,
            ),
            (&X[..], -0.275, -0.7388651689757928, 0.18886516897579275),
        ] {
            let (m, l, h) = mean_ci(values, 0.95);
            assert_close!(m, mean, 1e-14);
            assert_close!(l, lo, 1e-11);
            assert_close!(h, hi, 1e-11);
        }
        let (_, l, h) = mean_ci(&X, 0.90);
        assert_close!(l, -0.6466569447327746, 1e-11);
        assert_close!(h, 0.09665694473277442, 1e-11);
        let (m, l, h) = mean_ci(&[2.0], 0.95);
        assert!(m == 2.0 && l.is_nan() && h.is_nan());
        assert_close!(cohen_dz(&X), -1.4018549196608265 / 8f64.sqrt(), 1e-12);
    }

    #[test]
    fn tost_matches_scipy() {
        // p_lower = ttest_1samp(X, -1, alternative='greater').pvalue,
        // p_upper = ttest_1samp(X, +1, alternative='less').pvalue.
        let r = tost(&X, 1.0, 0.05);
        assert_close!(r.p_lower, 0.0038487489313425863, 1e-10);
        assert_close!(r.p_upper, 0.00016714381767139085, 1e-10);
        assert_close!(r.p, 0.0038487489313425863, 1e-10);
        assert_close!(r.ci.0, -0.6466569447327746, 1e-11);
        assert_close!(r.ci.1, 0.09665694473277442, 1e-11);
        assert!(r.equivalent);
        // Margin inside the 90% CI: not equivalent, and p ≥ α agrees with the CI.
        let r = tost(&X, 0.6, 0.05);
        assert!(!r.equivalent && r.p > 0.05 && r.ci.0 < -0.6);
        // All Δ identical and inside the margin: equivalent (se = 0).
        assert!(tost(&[0.0; 5], 1.0, 0.05).equivalent);
        assert!(!tost(&[0.1], 1.0, 0.05).equivalent);
    }

    #[test]
    fn wilcoxon_exact_without_ties_matches_scipy() {
        // scipy.stats.wilcoxon(W, alternative=...) (method 'auto' → exact).
        const W: [f64; 10] = [-1.3, -0.7, 0.25, -2.1, -0.45, 0.9, -1.75, -0.15, -3.05, 0.6];
        let r = wilcoxon(&W);
        assert_eq!(r.method, WilcoxonMethod::Exact);
        assert!(!r.ties && r.n == 10 && r.zeros == 0);
        assert_eq!((r.w_plus, r.w_minus, r.statistic), (12.0, 43.0, 12.0));
        assert_close!(r.p_two_sided, 0.130859375, 1e-14);
        assert_close!(r.p_less, 0.0654296875, 1e-14);
        assert_close!(r.p_greater, 0.947265625, 1e-14);
        // n = 40 (still exact in scipy ≥ 1.9 and here); statistic 262 for every alternative.
        const W40: [f64; 40] = [
            0.046, 0.522, 0.03, -1.603, 0.605, 0.146, -0.837, 0.281, 0.065, -0.006, -0.272, 0.247,
            -1.036, -0.463, -0.782, 0.299, -0.26, -0.592, -1.082, -0.557, -0.292, -0.576, 0.994,
            0.707, -3.011, -2.189, -0.475, -0.722, -0.086, -0.083, 1.818, -1.412, -0.678, 1.743,
            0.347, 0.363, -0.814, -1.948, -0.133, -0.191,
        ];
        let r = wilcoxon(&W40);
        assert_eq!(r.method, WilcoxonMethod::Exact);
        assert_eq!((r.w_plus, r.statistic), (262.0, 262.0));
        assert_close!(r.p_two_sided, 0.046610625882749446, 1e-12);
        assert_close!(r.p_less, 0.023305312941374723, 1e-12);
        assert_close!(r.p_greater, 0.9774509076332834, 1e-12);
    }

    #[test]
    fn wilcoxon_exact_with_ties_and_zero_matches_scipy() {
        // scipy.stats.wilcoxon(WT, alternative=...) (method 'auto' → exact permutation test
        // for n ≤ 13 with ties/zeros; identical with method=PermutationMethod(n_resamples=inf)).
        const WT: [f64; 12] = [
            -1.0, -0.5, 0.5, -2.0, 0.0, -1.0, 1.0, -1.5, -0.5, -3.0, 0.25, -1.0,
        ];
        let r = wilcoxon(&WT);
        assert_eq!(r.method, WilcoxonMethod::Exact);
        assert!(r.ties && r.n == 11 && r.zeros == 1);
        assert_eq!((r.w_plus, r.statistic), (10.5, 10.5));
        assert_eq!(r.w_minus, 55.5);
        assert_close!(r.p_two_sided, 0.0498046875, 1e-14);
        assert_close!(r.p_less, 0.02490234375, 1e-14);
        assert_close!(r.p_greater, 0.98095703125, 1e-14);
        // No non-zero difference: no evidence either way (scipy: statistic 0, p 1).
        let r = wilcoxon(&[0.0; 6]);
        assert_eq!((r.statistic, r.p_two_sided, r.p_less), (0.0, 1.0, 1.0));
    }

    #[test]
    fn wilcoxon_normal_approximation_matches_scipy() {
        // scipy.stats.wilcoxon(W60, alternative=..., method='asymptotic', correction=True):
        // 60 values, 2 zeros, many ties.
        const W60: [f64; 60] = [
            0.3, 0.5, -0.0, -0.6, -0.2, -0.7, 0.3, 1.6, -0.2, -0.4, 0.7, 0.6, 0.4, -0.7, 0.2, 0.9,
            -1.1, -0.2, -1.7, -1.0, -1.6, 0.0, -1.0, 0.5, 0.4, 0.1, -2.3, -0.3, 0.2, 0.4, -1.3,
            -0.2, -0.7, -0.6, 1.3, -0.6, 0.2, 1.1, -0.3, 0.1, 0.4, 0.3, -1.0, 0.3, 1.6, -1.3, 1.1,
            0.4, -0.4, 2.3, 1.0, -0.9, 0.3, 0.8, 0.1, 0.9, 0.2, 0.9, 1.7, -0.4,
        ];
        let r = wilcoxon(&W60);
        assert_eq!(r.method, WilcoxonMethod::Normal);
        assert!(r.ties && r.n == 58 && r.zeros == 2);
        assert_eq!((r.w_plus, r.statistic), (905.5, 805.5));
        assert_close!(r.p_two_sided, 0.7012354942201124, 1e-12);
        assert_close!(r.p_less, 0.6522506017532319, 1e-12);
        assert_close!(r.p_greater, 0.3506177471100562, 1e-12);
    }

    #[test]
    fn wilcoxon_exact_ties_agree_with_brute_force() {
        // Exact permutation distribution of signed average ranks vs enumeration of 2^n signs.
        let d = [0.5, -0.5, 1.0, -2.0, 2.0, 2.0, -0.25, 3.0, -3.0, 0.5, 4.0];
        let r = wilcoxon(&d);
        let mut abs: Vec<f64> = d.iter().map(|v: &f64| v.abs()).collect();
        abs.sort_by(f64::total_cmp);
        let rank = |v: f64| {
            let first = abs.iter().position(|a| *a == v.abs()).unwrap() + 1;
            let last = abs.iter().rposition(|a| *a == v.abs()).unwrap() + 1;
            (first + last) as f64 / 2.0
        };
        let ranks: Vec<f64> = d.iter().map(|v| rank(*v)).collect();
        let w: f64 = d
            .iter()
            .zip(&ranks)
            .filter(|(v, _)| **v > 0.0)
            .map(|(_, r)| r)
            .sum();
        assert_eq!(w, r.w_plus);
        let (mut le, mut ge) = (0u32, 0u32);
        for mask in 0u32..1 << d.len() {
            let s: f64 = (0..d.len())
                .filter(|i| mask >> i & 1 == 1)
                .map(|i| ranks[i])
                .sum();
            le += u32::from(s <= w);
            ge += u32::from(s >= w);
        }
        assert_eq!(r.p_less, le as f64 / 2048.0);
        assert_eq!(r.p_greater, ge as f64 / 2048.0);
    }

    #[test]
    fn sign_flip_matches_scipy() {
        // scipy.stats.permutation_test((d,), np.mean, permutation_type='samples',
        //                              alternative=..., n_resamples=np.inf).
        let r = sign_flip_test(&X, 0);
        assert!(r.exact && r.patterns == 256);
        assert_close!(r.p_two_sided, 0.2265625, 1e-14);
        assert_close!(r.p_less, 0.11328125, 1e-14);
        assert_close!(r.p_greater, 0.91015625, 1e-14);
        let w = [-1.3, -0.7, 0.25, -2.1, -0.45, 0.9, -1.75, -0.15, -3.05, 0.6];
        let r = sign_flip_test(&w, 0);
        assert_close!(r.p_two_sided, 0.09375, 1e-14);
        assert_close!(r.p_less, 0.046875, 1e-14);
        assert_close!(r.p_greater, 0.958984375, 1e-14);
        // methods.md §4.3: smallest attainable two-sided p = 2/2^n.
        assert_eq!(
            sign_flip_test(&[-1.0, -2.0, -3.0, -4.0, -5.0], 0).p_two_sided,
            0.0625
        );
        assert_eq!(sign_flip_test(&[-1.0; 6], 0).p_two_sided, 0.03125);
        // Monte Carlo above 20: reproducible and close to the t-test for a clear effect.
        let mut rng = Streams::new(3).stream("test/stats/sign_flip");
        let d: Vec<f64> = (0..24)
            .map(|_| sample_standard_normal(&mut rng) - 0.3)
            .collect();
        let (a, b) = (sign_flip_test(&d, 1), sign_flip_test(&d, 1));
        assert!(!a.exact && a.patterns == SIGN_FLIP_RESAMPLES);
        assert_eq!(a, b);
        let t = ttest_1samp(&d, 0.0);
        assert!(
            (a.p_two_sided - t.p_two_sided).abs() < 0.03,
            "{a:?} vs {t:?}"
        );
    }

    #[test]
    fn sign_flip_exact_agrees_with_brute_force() {
        // Sums that tie only up to rounding (0.1 + 0.2 vs 0.3) must count as ties.
        let d = [
            0.1, 0.2, -0.3, 0.3, -0.1, 0.7, -0.2, 0.4, -0.6, 0.5, 0.3, -0.9, 0.2,
        ];
        let r = sign_flip_test(&d, 0);
        let observed: f64 = d.iter().sum();
        let (mut le, mut ge) = (0u32, 0u32);
        for mask in 0u32..1 << d.len() {
            let s: f64 = d
                .iter()
                .enumerate()
                .map(|(i, v)| if mask >> i & 1 == 1 { -v } else { *v })
                .sum();
            le += u32::from(s <= observed + 1e-9);
            ge += u32::from(s >= observed - 1e-9);
        }
        assert_eq!(r.p_less, le as f64 / 8192.0);
        assert_eq!(r.p_greater, ge as f64 / 8192.0);
    }

    #[test]
    fn holm_matches_methods_md_check() {
        // methods.md §4.4: p = (0.01, 0.04, 0.03, 0.20) → sorted (0.01, 0.03, 0.04, 0.20),
        // adjusted (0.04, 0.09, 0.09, 0.20) in sorted order, only the first rejected.
        let h = holm(&[0.01, 0.04, 0.03, 0.20], 0.05);
        let want = [0.04, 0.09, 0.09, 0.20]; // original order: 0.01, 0.04, 0.03, 0.20
        for (got, want) in h.adjusted.iter().zip(want) {
            assert_close!(*got, want, 1e-12);
        }
        assert_eq!(h.rejected, [true, false, false, false]);
        // Step-down stops at the first failure, adjusted values are capped at 1, NaN sorts
        // last and counts in m.
        let h = holm(&[0.001, 0.011, 0.6, f64::NAN], 0.05);
        assert_eq!(h.rejected, [true, true, false, false]);
        assert_close!(h.adjusted[0], 0.004, 1e-12);
        assert_close!(h.adjusted[1], 0.033, 1e-12);
        assert_close!(h.adjusted[2], 1.0, 1e-12);
        assert!(h.adjusted[3].is_nan());
        assert_eq!(
            holm(&[], 0.05),
            Holm {
                adjusted: vec![],
                rejected: vec![]
            }
        );
    }

    /// 2,000 repetitions of n = 10 paired differences Δ = effect + N(0, 1).
    fn rejection_rates(effect: f64, purpose: &str) -> (f64, f64, f64, f64) {
        let mut rng = Streams::new(11).stream(purpose);
        let reps = 2_000;
        let (mut t_two, mut t_less, mut w_two, mut w_less) = (0, 0, 0, 0);
        let mut orig = [0.0; 10];
        let mut checked = [0.0; 10];
        for _ in 0..reps {
            for (o, c) in orig.iter_mut().zip(&mut checked) {
                *o = 90.0 + sample_standard_normal(&mut rng);
                *c = *o + effect + sample_standard_normal(&mut rng);
            }
            let t = ttest_rel(&checked, &orig);
            let d: Vec<f64> = checked.iter().zip(&orig).map(|(c, o)| c - o).collect();
            let w = wilcoxon(&d);
            t_two += usize::from(t.p_two_sided <= 0.05);
            t_less += usize::from(t.p_less <= 0.05);
            w_two += usize::from(w.p_two_sided <= 0.05);
            w_less += usize::from(w.p_less <= 0.05);
        }
        let f = |k: usize| k as f64 / reps as f64;
        (f(t_two), f(t_less), f(w_two), f(w_less))
    }

    #[test]
    fn false_positive_rates_and_power() {
        let (t_two, t_less, w_two, w_less) = rejection_rates(0.0, "test/stats/null");
        assert!((0.03..=0.07).contains(&t_two), "t two-sided FPR {t_two}");
        assert!((0.03..=0.07).contains(&t_less), "t one-sided FPR {t_less}");
        assert!(
            w_two <= 0.06 && w_less <= 0.06,
            "Wilcoxon FPR {w_two}, {w_less}"
        );
        // Mean Δ = −1 sd at n = 10: one-sided power ≈ 0.90, two-sided ≈ 0.80.
        let (t_two, t_less, _, w_less) = rejection_rates(-1.0, "test/stats/effect");
        assert!(t_less > 0.7 && t_two > 0.7, "power {t_less}, {t_two}");
        assert!(w_less > 0.7, "Wilcoxon power {w_less}");
    }

    fn pairs(deltas: &[f64]) -> Vec<(f64, f64)> {
        deltas
            .iter()
            .enumerate()
            .map(|(i, d)| (90.0 + 0.5 * i as f64, 90.0 + 0.5 * i as f64 + d))
            .collect()
    }

    #[test]
    fn paired_summary_fields() {
        let s =
            PairedSummary::from_pairs(&ORIG.iter().copied().zip(CHECKED).collect::<Vec<_>>(), 1.0);
        assert_eq!(s.n, 10);
        assert_close!(s.mean, -1.08, 1e-12);
        assert_close!(s.mean_original, 91.05, 1e-14);
        assert_close!(s.mean_checked, 89.97, 1e-14);
        assert_close!(s.t, -10.164784043238095, 1e-10);
        assert_close!(s.p_worse, 1.5612967228230263e-06, 1e-9);
        assert_close!(s.p_two_sided, 3.1225934456460526e-06, 1e-9);
        assert_close!(s.d_z, s.mean / s.sd, 1e-15);
        assert!(s.ci95.0 < s.mean && s.mean < s.ci95.1 && s.ci95.1 < 0.0);
        // All ten Δ negative: exact one-sided p = 2^−10 for both distribution-free tests.
        assert_eq!(s.wilcoxon_p_worse, 1.0 / 1024.0);
        assert_eq!(s.sign_flip_p_worse, 1.0 / 1024.0);
        assert_eq!(s.wilcoxon_p_two_sided, 2.0 / 1024.0);
        assert!(s.tost_p > 0.5);
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            json.contains("\"p_worse\":") && json.contains("\"ci95\":["),
            "{json}"
        );
    }

    #[test]
    fn verdicts() {
        let delta = 1.0;
        let drop = pairs(&[-3.1, -2.8, -3.4, -2.9, -3.0, -3.3, -2.7, -3.2]);
        let flat = pairs(&[0.1, -0.2, 0.05, 0.15, -0.1, 0.0, -0.05, 0.1]);
        let noisy = pairs(&[2.5, -3.0, 1.0, -2.0, 0.5, -1.5]);
        let too_few = pairs(&[-5.0, -5.1, -4.9, -5.2]);
        // Significant drop, but the CI reaches below −δ while the mean is above it.
        let medium_drop = pairs(&[-0.2, -1.4, -0.5, -1.1, -0.3, -1.3]);
        // Significant drop lying entirely inside the margin: by §3.3 this is Insensitive
        // (δ is the smallest drop that counts), never Sensitive.
        let small_drop = pairs(&[-0.6, -0.9, -0.7, -0.5, -0.8, -0.6, -0.9, -0.7, -0.5, -0.8]);
        let table: Vec<PairedSummary> = [&drop, &flat, &noisy, &too_few, &medium_drop, &small_drop]
            .iter()
            .map(|p| PairedSummary::from_pairs(p, delta))
            .collect();
        let j = judge_table(&table, delta, 0.05);
        let v: Vec<Verdict> = j.iter().map(|j| j.verdict).collect();
        assert_eq!(
            v,
            [
                Verdict::Sensitive,
                Verdict::Insensitive,
                Verdict::Inconclusive,
                Verdict::InsufficientSeeds,
                Verdict::Inconclusive,
                Verdict::Insensitive,
            ]
        );
        assert!(j[3].p_worse_holm.is_none() && j[3].tost_p.is_none());
        // Holm over the 5 judged cells: the adjusted p of the drop is ≥ its raw p.
        assert!(j[0].p_worse_holm.unwrap() >= table[0].p_worse);
        assert!(j[4].p_worse_holm.unwrap() < 0.05 && table[4].mean > -delta);
        assert!(j[5].p_worse_holm.unwrap() < 0.001);
        // Identical results at every seed (e.g. a check that cannot change the mask): ≈.
        let same = vec![PairedSummary::from_pairs(&pairs(&[0.0; 5]), delta)];
        assert_eq!(
            judge_table(&same, delta, 0.05)[0].verdict,
            Verdict::Insensitive
        );
        // Holm across a large family can turn a lone significant drop inconclusive.
        let mut big = vec![PairedSummary::from_pairs(
            &pairs(&[-1.2, -1.5, 0.3, -2.0, -1.1]),
            delta,
        )];
        assert!(big[0].p_worse < 0.05 && big[0].mean <= -delta);
        assert_eq!(
            judge_table(&big, delta, 0.05)[0].verdict,
            Verdict::Sensitive
        );
        big.extend(std::iter::repeat_n(table[2].clone(), 9));
        assert_eq!(
            judge_table(&big, delta, 0.05)[0].verdict,
            Verdict::Inconclusive
        );
        assert_eq!(
            serde_json::to_string(&Verdict::InsufficientSeeds).unwrap(),
            "\"insufficient_seeds\""
        );
    }
}
