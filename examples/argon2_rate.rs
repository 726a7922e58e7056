//! The raw argon2id hash rate with Berth's own parameters, for `bench/run.sh`: what login
//! throughput is measured against. Not part of the product.
//!
//! `cargo run --release --example argon2_rate -- [--threads N] [--seconds S]`
//! N defaults to the number of cores, which is also how many hashes Berth runs at once by default.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use argon2::Block;
use argon2::password_hash::rand_core::{OsRng, RngCore};

fn main() -> anyhow::Result<()> {
    let mut threads = thread::available_parallelism().map_or(1, |n| n.get());
    let mut seconds = 8.0_f64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--threads" => threads = value.parse().context("--threads")?,
            "--seconds" => seconds = value.parse().context("--seconds")?,
            _ => bail!("unknown argument {arg}; use --threads N, --seconds S"),
        }
    }
    let run_for = Duration::from_secs_f64(seconds);

    let start = Instant::now();
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            thread::spawn(move || {
                let argon2 = berth::auth::password::argon2();
                // The hash alone: its memory allocated once, as Berth's hashing threads keep theirs.
                let mut memory = vec![Block::default(); argon2.params().block_count()];
                let (mut salt, mut out) = ([0u8; 16], [0u8; 32]);
                let mut done = 0u64;
                while start.elapsed() < run_for {
                    OsRng.fill_bytes(&mut salt);
                    argon2
                        .hash_password_into_with_memory(
                            b"correct horse battery staple",
                            &salt,
                            &mut out,
                            &mut memory,
                        )
                        .expect("hashing");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let hashes: u64 = workers.into_iter().map(|w| w.join().expect("hashing thread")).sum();
    let elapsed = start.elapsed().as_secs_f64();

    use berth::auth::password::{M_COST_KIB, P_COST, T_COST};
    println!(
        "argon2id m={M_COST_KIB} t={T_COST} p={P_COST} threads={threads} hashes={hashes} \
         seconds={elapsed:.2} rate={:.1}",
        hashes as f64 / elapsed
    );
    Ok(())
}
