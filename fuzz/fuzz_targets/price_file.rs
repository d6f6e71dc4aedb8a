//! See `costlayer::__fuzz::price_file` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    costlayer::__fuzz::price_file(data);
});
