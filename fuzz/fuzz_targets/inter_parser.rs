#![no_main]
// Any bytes: the .inter parser returns rows or an error, never panics.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    crane::fuzzing::inter_parser(data);
});
