//! See `costlayer::__fuzz::ledger_lines` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    costlayer::__fuzz::ledger_lines(data);
});
