//! `trainyard-synth SIZE OUT_DIR [SEED]`: writes the synthetic B2B dataset (tiny | small | large)
//! and prints the popularity baseline recall@100 of its time-split test set.

use std::path::PathBuf;
use std::process::ExitCode;

use trainyard_synth::{generate, popularity_recall_at_k, SynthConfig};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(size), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: trainyard-synth tiny|small|large OUT_DIR [SEED]");
        return ExitCode::from(2);
    };
    let Some(mut cfg) = SynthConfig::named(size) else {
        eprintln!(
            "unknown size {size:?}: use one of {}",
            SynthConfig::SIZES.join(", ")
        );
        return ExitCode::from(2);
    };
    if let Some(seed) = args.get(2) {
        match seed.parse() {
            Ok(s) => cfg.seed = s,
            Err(_) => {
                eprintln!("SEED must be an unsigned integer, got {seed:?}");
                return ExitCode::from(2);
            }
        }
    }
    let result = generate(&cfg).and_then(|d| {
        d.write_all(&PathBuf::from(out))?;
        let s = d.split(0.1, 0.1);
        Ok((
            d.transactions.len(),
            popularity_recall_at_k(s.train, s.test, 100),
        ))
    });
    match result {
        Ok((n, pop)) => {
            println!("wrote {n} transactions to {out}; popularity_recall_at_100={pop:.4}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
