//! The fuzz targets' checks (`costlayer::__fuzz`), run on stable Rust as
//! property loops over the committed seed corpus (`fuzz/corpus/<target>/`)
//! and deterministic mutations of it, so CI exercises them without
//! nightly or libFuzzer. A crash found by `fuzz/run.sh` is added to the
//! corpus and replayed here from then on.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// A deterministic xorshift generator: the same mutations on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes a JSON or TOML parser cares about.
const INTERESTING: &[u8] = b"-0 9\"\\{}[],:.\x0c\r\ne+\xff\x00#=";

/// `seed` and mutations of it: single-byte edits at up to `positions`
/// evenly spread positions, then `rounds` random multi-byte edits and
/// splices.
fn mutations(seed: &[u8], positions: usize, rounds: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = vec![seed.to_vec()];
    let step = (seed.len() / positions.max(1)).max(1);
    for i in (0..seed.len()).step_by(step) {
        let mut cut = seed.to_vec();
        cut.remove(i);
        out.push(cut);
        out.push(seed[..i].to_vec());
        let mut v = seed.to_vec();
        v[i] = INTERESTING[rng.below(INTERESTING.len())];
        out.push(v);
    }
    for _ in 0..rounds {
        let mut v = seed.to_vec();
        for _ in 0..=rng.below(4) {
            if v.is_empty() {
                break;
            }
            let i = rng.below(v.len());
            match rng.below(4) {
                0 => v[i] = INTERESTING[rng.below(INTERESTING.len())],
                1 => v.insert(i, INTERESTING[rng.below(INTERESTING.len())]),
                2 => {
                    let j = rng.below(v.len());
                    let (a, b) = (i.min(j), i.max(j));
                    let chunk = v[a..b].to_vec();
                    v.splice(i..i, chunk);
                }
                _ => {
                    v.remove(i);
                }
            }
        }
        out.push(v);
    }
    out
}

#[test]
fn ledger_line_parsers_agree_on_every_seed_and_mutation() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut n = 0;
    for (_, seed) in seeds("ledger_line") {
        for input in mutations(&seed, 600, 600, &mut rng) {
            costlayer::__fuzz::ledger_lines(&input);
            n += 1;
        }
    }
    assert!(n > 5_000, "{n}");
}

#[test]
fn price_file_loaders_never_panic_on_seeds_and_mutations() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for (_, seed) in seeds("price_file") {
        for mut input in mutations(&seed, 60, 40, &mut rng) {
            for selector in [0u8, 1] {
                if let Some(first) = input.first_mut() {
                    *first = selector;
                }
                costlayer::__fuzz::price_file(&input);
            }
        }
    }
}

#[test]
fn provider_decoders_never_panic_on_seeds_and_mutations() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for (_, seed) in seeds("provider_response") {
        let body = &seed[1..];
        // Every provider, status and header combination on the seed.
        for selector in 0..=255u8 {
            let mut input = vec![selector];
            input.extend_from_slice(body);
            costlayer::__fuzz::provider_response(&input);
        }
        for input in mutations(&seed, 200, 100, &mut rng) {
            costlayer::__fuzz::provider_response(&input);
        }
    }
}

#[test]
fn sse_parser_and_stream_decoders_agree_across_reads_on_seeds_and_mutations() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for (_, seed) in seeds("sse_stream") {
        let body = &seed[1..];
        // Every decoder and read seed on the seed body.
        for selector in 0..=15u8 {
            let mut input = vec![selector];
            input.extend_from_slice(body);
            costlayer::__fuzz::sse_stream(&input);
        }
        for input in mutations(&seed, 100, 100, &mut rng) {
            costlayer::__fuzz::sse_stream(&input);
        }
    }
}
