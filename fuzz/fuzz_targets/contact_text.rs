//! Bytes as an email address and as a display name; the checks live in `partner_contacts::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| partner_contacts::fuzzing::contact_text(data));
