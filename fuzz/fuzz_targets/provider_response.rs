//! See `costlayer::__fuzz::provider_response` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    costlayer::__fuzz::provider_response(data);
});
