//! See `costlayer::__fuzz::sse_stream` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    costlayer::__fuzz::sse_stream(data);
});
