//! Bytes as an UpdateContactsRequest; the checks live in `partner_contacts::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| partner_contacts::fuzzing::update_request(data));
