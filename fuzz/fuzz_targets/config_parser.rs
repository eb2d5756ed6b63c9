#![no_main]
// Any bytes: the TOML training config resolves or errors, never panics.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    crane::fuzzing::config_parser(data);
});
