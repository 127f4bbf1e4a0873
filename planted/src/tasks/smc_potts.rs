use super::smc_facts::checked_size;
use super::{Task, TaskError, TaskInfo, parse_params};
use crate::{Dataset, OutputKind, Targets, TaskData};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use ticketbench_core::{Streams, sample_index, sample_standard_normal};

/// SMC-lite T3 "potts", pairwise stability energy of sequences (planting.md §6.2, a
/// synthetic analogue of SMC-Bench's protein-thermostability tasks). Sequences `x` of
/// `length` tokens iid uniform over `alphabet` (train from stream `task/smc-potts/train/seq`,
/// test from `task/smc-potts/test/seq`); contacts = the `length − 1` chain pairs `(i, i+1)`
/// plus `long_range` distinct pairs with `|i − j| ≥ min_separation`, rejection-sampled from
/// stream `task/smc-potts/contacts`; fields `h_i[a] ~ N(0, 0.5²)` then couplings
/// `J_p[a, b] ~ N(0, 1)` per contact, from stream `task/smc-potts/couplings` (the spec's
/// `smc/potts/…` streams renamed to the `task/<name>/…` convention). Energy
/// `E(x) = Σ_i h_i[x_i] + Σ_{(i,j)} J_ij[x_i, x_j]` (f64), standardised by the mean and
/// (population) standard deviation over all drawn sequences, train and test together.
/// Input one-hot (`length·alphabet` dims, position-major). Target `energy`: regression on
/// the standardised `E` (metric test R²); `stable`: class `1[E < 0]` of the standardised `E`
/// (metric accuracy), as HotProtein's stable/unstable labels.
/// Liu et al. 2023, Sparsity May Cry, arXiv 2303.02141.
pub struct SmcPotts {
    params: SmcPottsParams,
}

/// What an `smc-potts` example's target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PottsTarget {
    /// The standardised energy, one regression output.
    Energy,
    /// `1[E < 0]` of the standardised energy, two classes.
    Stable,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SmcPottsParams {
    length: usize,
    alphabet: usize,
    long_range: usize,
    min_separation: usize,
    n_train: usize,
    n_test: usize,
    target: PottsTarget,
}

impl Default for SmcPottsParams {
    fn default() -> Self {
        SmcPottsParams {
            length: 24,
            alphabet: 8,
            long_range: 24,
            min_separation: 4,
            n_train: 100_000,
            n_test: 10_000,
            target: PottsTarget::Energy,
        }
    }
}

pub(super) const INFO: TaskInfo = TaskInfo {
    name: "smc-potts",
    summary: "SMC-lite T3: standardised Potts energy of random one-hot sequences (regression, or `stable` classes)",
    citation: "Liu et al. 2023, Sparsity May Cry (SMC-Bench), arXiv 2303.02141; synthetic analogue, planting.md §6.2",
    paths: &[],
    build: |p| {
        let params: SmcPottsParams = parse_params(INFO.name, p)?;
        let invalid = |message: String| TaskError::InvalidParams {
            task: INFO.name,
            message,
        };
        let (l, m, k) = (params.length, params.min_separation, params.long_range);
        if l < 2 {
            return Err(invalid(format!("length {l} must be ≥ 2")));
        }
        if params.alphabet < 2 {
            return Err(invalid(format!("alphabet {} must be ≥ 2", params.alphabet)));
        }
        if m < 2 {
            return Err(invalid(format!(
                "min_separation {m} must be ≥ 2 (separation 1 is the chain)"
            )));
        }
        if k > 0 && m >= l {
            return Err(invalid(format!(
                "min_separation {m} ≥ length {l} leaves no long-range pair for long_range {k}"
            )));
        }
        let available = long_range_pairs(l, m);
        if k > available {
            return Err(invalid(format!(
                "long_range {k} exceeds the {available} distinct pairs with |i − j| ≥ {m} at length {l}"
            )));
        }
        if params.n_train == 0 || params.n_test == 0 {
            return Err(invalid(format!(
                "n_train {} and n_test {} must both be ≥ 1",
                params.n_train, params.n_test
            )));
        }
        let input_dim = l
            .checked_mul(params.alphabet)
            .ok_or_else(|| invalid("length × alphabet overflows".into()))?;
        checked_size(
            INFO.name,
            Some(params.n_train.max(params.n_test)),
            input_dim,
        )?;
        Ok(Box::new(SmcPotts { params }))
    },
};

/// Number of position pairs `i < j < length` with `j − i ≥ min_separation`.
fn long_range_pairs(length: usize, min_separation: usize) -> usize {
    let free = length.saturating_sub(min_separation);
    free * (free + 1) / 2
}

/// The Potts model of one seed: contacts, fields and couplings.
#[derive(Debug, Clone, PartialEq)]
pub struct PottsModel {
    pub length: usize,
    pub alphabet: usize,
    /// `(i, j)` with `i < j`: the `length − 1` chain pairs first, then the long-range ones
    /// in drawn order.
    pub contacts: Vec<(usize, usize)>,
    /// `h_i[a]` at `i·alphabet + a`.
    pub fields: Vec<f64>,
    /// `J_p[a, b]` of contact `p` at `(p·alphabet + a)·alphabet + b`.
    pub couplings: Vec<f64>,
}

impl PottsModel {
    /// Raw (unstandardised) energy `Σ_i h_i[x_i] + Σ_{(i,j)} J_ij[x_i, x_j]` of tokens `x`.
    pub fn energy(&self, x: &[usize]) -> f64 {
        let a_n = self.alphabet;
        let fields: f64 = x
            .iter()
            .enumerate()
            .map(|(i, &a)| self.fields[i * a_n + a])
            .sum();
        let pairs: f64 = self
            .contacts
            .iter()
            .enumerate()
            .map(|(p, &(i, j))| self.couplings[(p * a_n + x[i]) * a_n + x[j]])
            .sum();
        fields + pairs
    }
}

impl SmcPotts {
    /// The contacts, fields and couplings of seed `streams`.
    pub fn model(&self, streams: &Streams) -> PottsModel {
        let p = &self.params;
        let (l, a_n) = (p.length, p.alphabet);
        let mut contacts: Vec<(usize, usize)> = (0..l - 1).map(|i| (i, i + 1)).collect();
        let mut rc = streams.stream(&format!("task/{}/contacts", INFO.name));
        let mut seen = HashSet::new();
        while seen.len() < p.long_range {
            let (i, j) = (sample_index(&mut rc, l), sample_index(&mut rc, l));
            let pair = (i.min(j), i.max(j));
            if pair.1 - pair.0 >= p.min_separation && seen.insert(pair) {
                contacts.push(pair);
            }
        }
        let mut rj = streams.stream(&format!("task/{}/couplings", INFO.name));
        let fields = (0..l * a_n)
            .map(|_| 0.5 * sample_standard_normal(&mut rj))
            .collect();
        let couplings = (0..contacts.len() * a_n * a_n)
            .map(|_| sample_standard_normal(&mut rj))
            .collect();
        PottsModel {
            length: l,
            alphabet: a_n,
            contacts,
            fields,
            couplings,
        }
    }
}

impl Task for SmcPotts {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).expect("plain struct")
    }
    fn samples(&self) -> usize {
        self.params.n_train + self.params.n_test
    }
    fn input_dim(&self) -> usize {
        self.params.length * self.params.alphabet
    }
    fn output(&self) -> OutputKind {
        match self.params.target {
            PottsTarget::Energy => OutputKind::Regression(1),
            PottsTarget::Stable => OutputKind::Classes(2),
        }
    }
    fn generate(&self, streams: &Streams) -> TaskData {
        let p = &self.params;
        let model = self.model(streams);
        let dim = self.input_dim();
        // One-hot inputs and raw energies of one split.
        let draw = |split: &str, n: usize| {
            let mut rs = streams.stream(&format!("task/{}/{split}/seq", INFO.name));
            let mut inputs = vec![0.0f32; n * dim];
            let mut tokens = vec![0usize; p.length];
            let energies: Vec<f64> = inputs
                .chunks_mut(dim)
                .map(|x| {
                    for (i, t) in tokens.iter_mut().enumerate() {
                        *t = sample_index(&mut rs, p.alphabet);
                        x[i * p.alphabet + *t] = 1.0;
                    }
                    model.energy(&tokens)
                })
                .collect();
            (inputs, energies)
        };
        let (train_x, train_e) = draw("train", p.n_train);
        let (test_x, test_e) = draw("test", p.n_test);
        let all = || train_e.iter().chain(&test_e);
        let n = (p.n_train + p.n_test) as f64;
        let mean = all().sum::<f64>() / n;
        let sd = (all().map(|e| (e - mean).powi(2)).sum::<f64>() / n).sqrt();
        let scale = if sd > 0.0 { 1.0 / sd } else { 1.0 };
        let dataset = |inputs: Vec<f32>, energies: &[f64]| {
            let z = energies.iter().map(|e| (e - mean) * scale);
            let targets = match p.target {
                PottsTarget::Energy => Targets::Values {
                    values: z.map(|v| v as f32).collect(),
                    dim: 1,
                },
                PottsTarget::Stable => Targets::Classes(z.map(|v| u32::from(v < 0.0)).collect()),
            };
            Dataset {
                inputs,
                input_dim: dim,
                targets,
            }
        };
        TaskData {
            output: self.output(),
            train: dataset(train_x, &train_e),
            test: dataset(test_x, &test_e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{Params, build};

    fn params(pairs: &[(&str, serde_json::Value)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn potts(pairs: &[(&str, serde_json::Value)]) -> SmcPotts {
        let params: SmcPottsParams = parse_params(INFO.name, &params(pairs)).unwrap();
        SmcPotts { params }
    }

    fn values(d: &Dataset) -> &[f32] {
        match &d.targets {
            Targets::Values { values, dim: 1 } => values,
            other => panic!("not one regression output: {other:?}"),
        }
    }

    /// Tokens of each row, asserting exactly one 1 per position block and 0 elsewhere.
    fn decode(d: &Dataset, alphabet: usize) -> Vec<Vec<usize>> {
        d.inputs
            .chunks(d.input_dim)
            .map(|x| {
                assert!(x.iter().all(|&v| v == 0.0 || v == 1.0));
                x.chunks(alphabet)
                    .map(|block| {
                        assert_eq!(block.iter().filter(|&&v| v == 1.0).count(), 1);
                        block.iter().position(|&v| v == 1.0).unwrap()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn default_shapes_one_hot_and_standardisation() {
        let task = build("smc-potts", &Params::new()).unwrap();
        assert_eq!(task.input_dim(), 192);
        assert_eq!(task.output(), OutputKind::Regression(1));
        assert_eq!(task.samples(), 110_000);
        let data = task.generate(&Streams::new(4));
        assert_eq!((data.train.len(), data.test.len()), (100_000, 10_000));
        assert_eq!(data.train.input_dim, 192);
        let tokens = decode(&data.test, 8);
        assert_eq!(tokens[0].len(), 24);
        let all: Vec<f64> = values(&data.train)
            .iter()
            .chain(values(&data.test))
            .map(|&v| v as f64)
            .collect();
        let n = all.len() as f64;
        let mean = all.iter().sum::<f64>() / n;
        let sd = (all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 1e-3, "mean {mean}");
        assert!((sd - 1.0).abs() < 1e-3, "sd {sd}");
        // Tokens iid uniform: each letter ≈ 1/8 of the test positions.
        let count0 = tokens.iter().flatten().filter(|&&t| t == 0).count() as f64;
        assert!((count0 / 240_000.0 - 0.125).abs() < 0.005, "{count0}");
    }

    #[test]
    fn default_contacts_fields_and_couplings() {
        let task = potts(&[]);
        let model = task.model(&Streams::new(1));
        assert_eq!(model.contacts.len(), 23 + 24);
        let chain: Vec<(usize, usize)> = (0..23).map(|i| (i, i + 1)).collect();
        assert_eq!(model.contacts[..23], chain[..]);
        let long = &model.contacts[23..];
        assert!(
            long.iter().all(|&(i, j)| i < j && j < 24 && j - i >= 4),
            "{long:?}"
        );
        let distinct: HashSet<_> = long.iter().collect();
        assert_eq!(distinct.len(), 24, "long-range pairs are distinct");
        assert_eq!(model.fields.len(), 24 * 8);
        assert_eq!(model.couplings.len(), 47 * 64);
        let sd = |v: &[f64]| (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt();
        assert!(
            (sd(&model.fields) - 0.5).abs() < 0.06,
            "{}",
            sd(&model.fields)
        );
        assert!((sd(&model.couplings) - 1.0).abs() < 0.05);
        let other = task.model(&Streams::new(2));
        assert_ne!(
            model.contacts, other.contacts,
            "contacts depend on the seed"
        );
    }

    #[test]
    fn hand_checked_energy_of_a_short_chain() {
        let spec = [
            ("length", serde_json::json!(3)),
            ("alphabet", serde_json::json!(2)),
            ("long_range", serde_json::json!(0)),
            ("min_separation", serde_json::json!(2)),
            ("n_train", serde_json::json!(20)),
            ("n_test", serde_json::json!(5)),
        ];
        let task = potts(&spec);
        let streams = Streams::new(11);
        let m = task.model(&streams);
        assert_eq!(m.contacts, vec![(0, 1), (1, 2)]);
        let built = build("smc-potts", &params(&spec)).unwrap();
        assert_eq!(built.input_dim(), 6);
        assert_eq!(built.samples(), 25);
        let data = built.generate(&streams);
        assert_eq!((data.train.len(), data.test.len()), (20, 5));
        let raw = |x: &[usize]| {
            let (h, j) = (&m.fields, &m.couplings);
            // h_0[x0] + h_1[x1] + h_2[x2] + J_01[x0, x1] + J_12[x1, x2]
            h[x[0]] + h[2 + x[1]] + h[4 + x[2]] + j[2 * x[0] + x[1]] + j[4 + 2 * x[1] + x[2]]
        };
        let rows: Vec<Vec<usize>> = [decode(&data.train, 2), decode(&data.test, 2)].concat();
        let e: Vec<f64> = rows.iter().map(|x| raw(x)).collect();
        for (x, &ei) in rows.iter().zip(&e) {
            assert!((m.energy(x) - ei).abs() < 1e-12);
        }
        let mean = e.iter().sum::<f64>() / 25.0;
        let sd = (e.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 25.0).sqrt();
        let stored: Vec<f32> = [values(&data.train), values(&data.test)].concat();
        for (&got, &ei) in stored.iter().zip(&e) {
            let want = (ei - mean) / sd;
            assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
        }
    }

    #[test]
    fn stable_labels_are_negative_energy() {
        let base = [
            ("n_train", serde_json::json!(2000)),
            ("n_test", serde_json::json!(500)),
        ];
        let energy = build("smc-potts", &params(&base)).unwrap();
        let mut p = params(&base);
        p.insert("target".into(), serde_json::json!("stable"));
        let stable = build("smc-potts", &p).unwrap();
        assert_eq!(stable.output(), OutputKind::Classes(2));
        assert_eq!(stable.params()["target"], "stable");
        assert_eq!(energy.params()["target"], "energy");
        let streams = Streams::new(6);
        let (e, s) = (energy.generate(&streams), stable.generate(&streams));
        assert_eq!(e.train.inputs, s.train.inputs);
        for (de, ds) in [(&e.train, &s.train), (&e.test, &s.test)] {
            let Targets::Classes(y) = &ds.targets else {
                unreachable!()
            };
            let want: Vec<u32> = values(de).iter().map(|&v| u32::from(v < 0.0)).collect();
            assert_eq!(y, &want);
            let ones = y.iter().filter(|&&c| c == 1).count() as f64 / y.len() as f64;
            assert!((0.3..0.7).contains(&ones), "stable fraction {ones}");
        }
    }

    #[test]
    fn bad_and_unknown_params_are_clear_errors() {
        let err = |pairs: &[(&str, serde_json::Value)]| {
            build("smc-potts", &params(pairs))
                .err()
                .expect("should be rejected")
                .to_string()
        };
        let e = err(&[("min_separation", serde_json::json!(24))]);
        assert!(e.contains("min_separation 24 ≥ length 24"), "{e}");
        let e = err(&[("long_range", serde_json::json!(211))]);
        assert!(e.contains("exceeds the 210 distinct pairs"), "{e}");
        assert!(
            build(
                "smc-potts",
                &params(&[("long_range", serde_json::json!(210))])
            )
            .is_ok()
        );
        let e = err(&[("alphabet", serde_json::json!(0))]);
        assert!(e.contains("alphabet 0 must be ≥ 2"), "{e}");
        let e = err(&[("min_separation", serde_json::json!(1))]);
        assert!(e.contains("min_separation 1 must be ≥ 2"), "{e}");
        let e = err(&[("n_test", serde_json::json!(0))]);
        assert!(e.contains("n_test 0"), "{e}");
        let e = err(&[("target", serde_json::json!("stabel"))]);
        assert!(e.contains("stabel") && e.contains("energy"), "{e}");
        let e = err(&[("seq_len", serde_json::json!(10))]);
        assert!(e.contains("seq_len") && e.contains("length"), "{e}");
        let e = err(&[("n_train", serde_json::json!(usize::MAX / 2))]);
        assert!(e.contains("too large"), "{e}");
    }
}
