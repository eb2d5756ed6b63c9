#![no_main]
// Any bytes: the npy feature reader returns a matrix or an error, never panics.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    crane::fuzzing::npy_reader(data);
});
