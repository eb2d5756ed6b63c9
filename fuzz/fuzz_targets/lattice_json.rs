#![no_main]
// Any bytes: the LATTICE JSON split and mapping parsers return rows or an error, never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    crane::fuzzing::lattice_json(data);
});
