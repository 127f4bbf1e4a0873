//! Builds a certified strong ticket for the Circle target and prints its certificate.
//!
//! `cargo run -p ticketbench-planted --release --example strong_plant -- [depth] [seed]`

use ticketbench_core::Streams;
use ticketbench_planted::{SubsetSumConfig, plant_subset_sum, tasks};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let depth: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    let seed: u64 = args.next().map_or(Ok(0), |a| a.parse())?;
    let task = tasks::build("circle", &Default::default())?;
    let target = task.target(depth)?;
    let (planted, certificate) =
        plant_subset_sum(&target, &SubsetSumConfig::default(), &Streams::new(seed))?;
    println!("host widths {:?}", planted.host.widths());
    println!("{}", serde_json::to_string_pretty(&certificate)?);
    Ok(())
}
