use super::{Task, TaskError, TaskInfo, parse_params};
use crate::{Dataset, OutputKind, Targets, TaskData};
use serde::{Deserialize, Serialize};
use ticketbench_core::{Streams, sample_index};

/// SMC-lite T1 "facts", knowledge recall (planting.md §6.2, a synthetic analogue of
/// SMC-Bench's commonsense tasks): a table `T[s, r]` iid uniform on `{0..C−1}` for `S`
/// subjects and `R` relations (`S·R` draws in subject-major order from stream
/// `task/smc-facts/table`; the spec's `smc/facts/table` renamed to the `task/<name>/…`
/// convention of [`Task::generate`]). Input `one-hot(s) ⊕ one-hot(r)` (`S + R` dims), class
/// `T[s, r]`, cross-entropy over `C` logits; metric recall accuracy over all pairs.
/// Closed-book recall, no held-out split by design: train is all `S·R` pairs in a seeded
/// order (stream `task/smc-facts/perm`, Fisher–Yates), test is the same full table
/// (identical rows). Liu et al. 2023, Sparsity May Cry, arXiv 2303.02141.
pub struct SmcFacts {
    params: SmcFactsParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SmcFactsParams {
    subjects: usize,
    relations: usize,
    objects: usize,
}

impl Default for SmcFactsParams {
    fn default() -> Self {
        SmcFactsParams {
            subjects: 1024,
            relations: 16,
            objects: 16,
        }
    }
}

/// Largest input matrix one split of a memorisation task may hold (2²⁸ f32 = 1 GiB).
pub(super) const MAX_VALUES: usize = 1 << 28;

/// `rows × input_dim` when it fits in [`MAX_VALUES`], else a clear error.
pub(super) fn checked_size(
    task: &'static str,
    rows: Option<usize>,
    input_dim: usize,
) -> Result<usize, TaskError> {
    match rows.and_then(|n| n.checked_mul(input_dim)) {
        Some(v) if v <= MAX_VALUES => Ok(v),
        _ => Err(TaskError::InvalidParams {
            task,
            message: format!(
                "the table is too large: rows × {input_dim} inputs exceeds {MAX_VALUES} values per split"
            ),
        }),
    }
}

pub(super) const INFO: TaskInfo = TaskInfo {
    name: "smc-facts",
    summary: "SMC-lite T1: recall a random subject×relation→object table, one-hot inputs (memorisation, classification)",
    citation: "Liu et al. 2023, Sparsity May Cry (SMC-Bench), arXiv 2303.02141; synthetic analogue, planting.md §6.2",
    paths: &[],
    build: |p| {
        let params: SmcFactsParams = parse_params(INFO.name, p)?;
        if params.subjects == 0 || params.relations == 0 || params.objects < 2 {
            return Err(TaskError::InvalidParams {
                task: INFO.name,
                message: format!(
                    "needs subjects ≥ 1, relations ≥ 1 and objects ≥ 2; got {}, {}, {}",
                    params.subjects, params.relations, params.objects
                ),
            });
        }
        checked_size(
            INFO.name,
            params.subjects.checked_mul(params.relations),
            params.subjects + params.relations,
        )?;
        Ok(Box::new(SmcFacts { params }))
    },
};

impl SmcFacts {
    /// The table `T`, row-major `subjects × relations` (entry `s·R + r`), of seed `streams`.
    pub fn table(&self, streams: &Streams) -> Vec<u32> {
        let p = &self.params;
        let mut rng = streams.stream(&format!("task/{}/table", INFO.name));
        (0..p.subjects * p.relations)
            .map(|_| sample_index(&mut rng, p.objects) as u32)
            .collect()
    }
}

/// A memorisation task's data: rows `0..n` (row `i` written by `row(i, x)` into a zeroed
/// input `x`, returning its class) in the order of a Fisher–Yates shuffle from stream
/// `task/<task>/perm`; test is the same rows, identical to train.
pub(super) fn memorisation_data<F>(
    task: &str,
    streams: &Streams,
    n: usize,
    input_dim: usize,
    output: OutputKind,
    row: F,
) -> TaskData
where
    F: Fn(usize, &mut [f32]) -> u32,
{
    let mut rp = streams.stream(&format!("task/{task}/perm"));
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, sample_index(&mut rp, i + 1));
    }
    let mut inputs = vec![0.0f32; n * input_dim];
    let labels = order
        .iter()
        .zip(inputs.chunks_mut(input_dim.max(1)))
        .map(|(&i, x)| row(i, x))
        .collect();
    let train = Dataset {
        inputs,
        input_dim,
        targets: Targets::Classes(labels),
    };
    TaskData {
        output,
        test: train.clone(),
        train,
    }
}

impl Task for SmcFacts {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).expect("plain struct")
    }
    fn samples(&self) -> usize {
        2 * self.params.subjects * self.params.relations
    }
    fn input_dim(&self) -> usize {
        self.params.subjects + self.params.relations
    }
    fn output(&self) -> OutputKind {
        OutputKind::Classes(self.params.objects)
    }
    fn generate(&self, streams: &Streams) -> TaskData {
        let (s_n, r_n) = (self.params.subjects, self.params.relations);
        let table = self.table(streams);
        memorisation_data(
            INFO.name,
            streams,
            s_n * r_n,
            self.input_dim(),
            self.output(),
            |i, x| {
                let (s, r) = (i / r_n, i % r_n);
                x[s] = 1.0;
                x[s_n + r] = 1.0;
                table[i]
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{Params, build};
    use std::collections::HashMap;

    fn small() -> Params {
        let mut p = Params::new();
        p.insert("subjects".into(), serde_json::json!(50));
        p.insert("relations".into(), serde_json::json!(4));
        p.insert("objects".into(), serde_json::json!(5));
        p
    }

    fn labels(d: &Dataset) -> &[u32] {
        match &d.targets {
            Targets::Classes(y) => y,
            Targets::Values { .. } => unreachable!(),
        }
    }

    /// `(s, r)` of each row, asserting exactly one 1 per block and 0 elsewhere.
    fn decode(d: &Dataset, subjects: usize) -> Vec<(usize, usize)> {
        d.inputs
            .chunks(d.input_dim)
            .map(|x| {
                assert!(x.iter().all(|&v| v == 0.0 || v == 1.0));
                let (xs, xr) = x.split_at(subjects);
                assert_eq!(xs.iter().filter(|&&v| v == 1.0).count(), 1);
                assert_eq!(xr.iter().filter(|&&v| v == 1.0).count(), 1);
                let s = xs.iter().position(|&v| v == 1.0).unwrap();
                let r = xr.iter().position(|&v| v == 1.0).unwrap();
                (s, r)
            })
            .collect()
    }

    #[test]
    fn default_shapes_and_output() {
        let task = build("smc-facts", &Params::new()).unwrap();
        assert_eq!(task.input_dim(), 1040);
        assert_eq!(task.output(), OutputKind::Classes(16));
        assert_eq!(task.samples(), 2 * 16_384);
        let data = task.generate(&Streams::new(0));
        assert_eq!((data.train.len(), data.test.len()), (16_384, 16_384));
        assert_eq!(data.train.input_dim, 1040);
        assert_eq!(data.train.len() + data.test.len(), task.samples());
    }

    #[test]
    fn small_table_is_one_hot_complete_and_consistent() {
        let task = build("smc-facts", &small()).unwrap();
        assert_eq!(task.input_dim(), 54);
        assert_eq!(task.output(), OutputKind::Classes(5));
        assert_eq!(task.samples(), 400);
        let data = task.generate(&Streams::new(5));
        assert_eq!(data.train, data.test, "closed-book: test is the full table");
        let pairs = decode(&data.train, 50);
        assert_eq!(pairs.len(), 200);
        let mut seen: HashMap<(usize, usize), u32> = HashMap::new();
        for (pair, &y) in pairs.iter().zip(labels(&data.train)) {
            assert!(y < 5);
            assert!(seen.insert(*pair, y).is_none(), "{pair:?} twice");
        }
        assert_eq!(seen.len(), 200, "every (s, r) pair once");
        let shuffled = pairs != (0..200).map(|i| (i / 4, i % 4)).collect::<Vec<_>>();
        assert!(shuffled, "train order is shuffled");
    }

    #[test]
    fn labels_follow_the_table_and_are_roughly_uniform() {
        let task = build("smc-facts", &Params::new()).unwrap();
        let streams = Streams::new(9);
        let facts = SmcFacts {
            params: SmcFactsParams::default(),
        };
        let table = facts.table(&streams);
        let data = task.generate(&streams);
        let mut counts = [0usize; 16];
        for ((s, r), &y) in decode(&data.train, 1024).iter().zip(labels(&data.train)) {
            assert_eq!(y, table[s * 16 + r], "row ({s}, {r})");
            counts[y as usize] += 1;
        }
        // 16 384 draws over 16 classes: expected 1024 each, sd ≈ 31.
        for (c, &n) in counts.iter().enumerate() {
            assert!((880..1170).contains(&n), "class {c}: {n}");
        }
        let other = facts.table(&Streams::new(10));
        let same = table.iter().zip(&other).filter(|(a, b)| a == b).count();
        assert!(
            same < 16_384 / 8,
            "another seed draws another table ({same} equal)"
        );
    }

    #[test]
    fn bad_and_unknown_params_are_rejected() {
        let mut p = small();
        p.insert("objects".into(), serde_json::json!(1));
        let e = build("smc-facts", &p).err().unwrap().to_string();
        assert!(e.contains("objects ≥ 2"), "{e}");
        let mut p = small();
        p.insert("subjects".into(), serde_json::json!(0));
        assert!(build("smc-facts", &p).is_err());
        let mut p = small();
        p.insert("subjects".into(), serde_json::json!(1_000_000));
        let e = build("smc-facts", &p).err().unwrap().to_string();
        assert!(e.contains("too large"), "{e}");
        let mut p = small();
        p.insert("subject".into(), serde_json::json!(3));
        let e = build("smc-facts", &p).err().unwrap().to_string();
        assert!(e.contains("subject") && e.contains("relations"), "{e}");
    }
}
