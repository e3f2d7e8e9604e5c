//! Bytes as a resource name; the checks live in `partner_contacts::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| partner_contacts::fuzzing::resource_name(data));
