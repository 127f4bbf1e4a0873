use super::smc_facts::memorisation_data;
use super::{Task, TaskError, TaskInfo, parse_params};
use crate::{OutputKind, TaskData};
use serde::{Deserialize, Serialize};
use ticketbench_core::Streams;

/// SMC-lite T2 "modchain", multi-step modular arithmetic (planting.md §6.2, a synthetic
/// analogue of SMC-Bench's arithmetic-reasoning tasks): every triple `(a, b, c) ∈ ℤ_p³`,
/// input `one-hot(a) ⊕ one-hot(b) ⊕ one-hot(c)` (`3p` dims), class `y = (a·b + c) mod p`,
/// cross-entropy over `p` logits; metric accuracy over the full table. Memorisation of a
/// structured table, no held-out split by design (the spec found an 80/20 split unlearnable
/// for the dense MLP): train is all `p³` rows in a seeded order (stream
/// `task/smc-modchain/perm`, Fisher–Yates), test is the same full table (identical rows). The
/// table itself is deterministic; only the row order depends on the seed.
/// Liu et al. 2023, Sparsity May Cry, arXiv 2303.02141.
pub struct SmcModchain {
    params: SmcModchainParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SmcModchainParams {
    modulus: usize,
}

impl Default for SmcModchainParams {
    fn default() -> Self {
        SmcModchainParams { modulus: 17 }
    }
}

pub(super) const INFO: TaskInfo = TaskInfo {
    name: "smc-modchain",
    summary: "SMC-lite T2: memorise (a·b + c) mod p over all triples, one-hot inputs (classification)",
    citation: "Liu et al. 2023, Sparsity May Cry (SMC-Bench), arXiv 2303.02141; synthetic analogue, planting.md §6.2",
    paths: &[],
    build: |p| {
        let params: SmcModchainParams = parse_params(INFO.name, p)?;
        if !(2..=64).contains(&params.modulus) {
            return Err(TaskError::InvalidParams {
                task: INFO.name,
                message: format!("modulus {} must be in 2..=64", params.modulus),
            });
        }
        Ok(Box::new(SmcModchain { params }))
    },
};

/// The class of triple `(a, b, c)` modulo `p`.
fn label(a: usize, b: usize, c: usize, p: usize) -> u32 {
    ((a * b + c) % p) as u32
}

impl Task for SmcModchain {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).expect("plain struct")
    }
    fn samples(&self) -> usize {
        2 * self.params.modulus.pow(3)
    }
    fn input_dim(&self) -> usize {
        3 * self.params.modulus
    }
    fn output(&self) -> OutputKind {
        OutputKind::Classes(self.params.modulus)
    }
    fn generate(&self, streams: &Streams) -> TaskData {
        let p = self.params.modulus;
        memorisation_data(
            INFO.name,
            streams,
            p * p * p,
            self.input_dim(),
            self.output(),
            |i, x| {
                let (a, b, c) = (i / (p * p), i / p % p, i % p);
                x[a] = 1.0;
                x[p + b] = 1.0;
                x[2 * p + c] = 1.0;
                label(a, b, c, p)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{Params, build};
    use crate::{Dataset, Targets};
    use std::collections::HashSet;

    fn with_modulus(p: usize) -> Params {
        let mut params = Params::new();
        params.insert("modulus".into(), serde_json::json!(p));
        params
    }

    /// `(a, b, c, y)` of each row, asserting exactly one 1 per block and 0 elsewhere.
    fn decode(d: &Dataset, p: usize) -> Vec<(usize, usize, usize, u32)> {
        let Targets::Classes(y) = &d.targets else {
            unreachable!()
        };
        d.inputs
            .chunks(d.input_dim)
            .zip(y)
            .map(|(x, &y)| {
                assert!(x.iter().all(|&v| v == 0.0 || v == 1.0));
                let hot: Vec<usize> = x
                    .chunks(p)
                    .map(|block| {
                        assert_eq!(block.iter().filter(|&&v| v == 1.0).count(), 1);
                        block.iter().position(|&v| v == 1.0).unwrap()
                    })
                    .collect();
                (hot[0], hot[1], hot[2], y)
            })
            .collect()
    }

    #[test]
    fn worked_example() {
        assert_eq!(label(3, 5, 2, 17), 0); // 15 + 2 = 17 ≡ 0
        assert_eq!(label(4, 4, 3, 17), 2); // 16 + 3 = 19 ≡ 2
        assert_eq!(label(16, 16, 16, 17), 0); // 256 + 16 = 272 = 16·17
    }

    #[test]
    fn default_table_is_complete_one_hot_and_correct() {
        let task = build("smc-modchain", &Params::new()).unwrap();
        assert_eq!(task.input_dim(), 51);
        assert_eq!(task.output(), OutputKind::Classes(17));
        assert_eq!(task.samples(), 2 * 4913);
        let data = task.generate(&Streams::new(1));
        assert_eq!((data.train.len(), data.test.len()), (4913, 4913));
        assert_eq!(
            data.train, data.test,
            "memorisation: test is the full table"
        );
        let rows = decode(&data.train, 17);
        let mut seen = HashSet::new();
        for &(a, b, c, y) in &rows {
            assert_eq!(y as usize, (a * b + c) % 17, "({a}, {b}, {c})");
            assert!(seen.insert((a, b, c)), "({a}, {b}, {c}) twice");
        }
        assert_eq!(seen.len(), 4913, "every triple exactly once");
        assert!(rows.contains(&(3, 5, 2, 0)));
    }

    #[test]
    fn seed_changes_order_not_table() {
        let task = build("smc-modchain", &with_modulus(5)).unwrap();
        assert_eq!(task.input_dim(), 15);
        assert_eq!(task.output(), OutputKind::Classes(5));
        let a = decode(&task.generate(&Streams::new(1)).train, 5);
        let b = decode(&task.generate(&Streams::new(2)).train, 5);
        assert_eq!(a.len(), 125);
        assert_ne!(a, b, "the order depends on the seed");
        let (mut a_sorted, mut b_sorted) = (a.clone(), b.clone());
        a_sorted.sort();
        b_sorted.sort();
        assert_eq!(a_sorted, b_sorted, "the set of rows does not");
    }

    #[test]
    fn bad_and_unknown_params_are_rejected() {
        for p in [0, 1, 65] {
            let e = build("smc-modchain", &with_modulus(p))
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("2..=64"), "{e}");
        }
        assert!(build("smc-modchain", &with_modulus(64)).is_ok());
        let mut p = Params::new();
        p.insert("mod".into(), serde_json::json!(5));
        let e = build("smc-modchain", &p).err().unwrap().to_string();
        assert!(e.contains("mod") && e.contains("modulus"), "{e}");
    }
}
