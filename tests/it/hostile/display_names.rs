//! Display names show as text in the portal and in email headers: nothing in
//! them may hide, reorder or overlay what is shown.
use crate::api::{PROD, assert_invalid, full_contact, named, put_masked, save, update};
use crate::common::{Backend, TestServer};
use crate::on_both_backends;

async fn invisible_and_reordering_characters_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    for attack in [
        "Acme \u{202E}troppuS",   // RIGHT-TO-LEFT OVERRIDE
        "Acme \u{2067}x\u{2069}", // RIGHT-TO-LEFT ISOLATE
        "Ac\u{200B}me",           // ZERO WIDTH SPACE
        "Ac\u{200D}me",           // ZERO WIDTH JOINER
        "Ac\u{2060}me",           // WORD JOINER
        "Acme\u{2028}Bcc: x",     // LINE SEPARATOR
        "Acme\u{2029}Bcc: x",     // PARAGRAPH SEPARATOR
        "Acme\u{85}Bcc: x",       // NEXT LINE
        "Acme\r\nBcc: x",
        "Acme\u{3164}",  // HANGUL FILLER
        "Acme\u{E0041}", // TAG LATIN CAPITAL LETTER A
        "Acme\u{F8FF}",  // private use
    ] {
        let mut info = named(PROD);
        info.technical_emergency_contacts =
            vec![full_contact("pager@acme.example", attack, "", "")];
        assert_invalid(
            update(&mut c, put_masked(info, &["technical_emergency_contacts"])).await,
            &["contact_info.technical_emergency_contacts[0].display_name"],
        );
    }
    // Names in any script, with marks and emoji, stay welcome; stored in NFC.
    let mut info = named(PROD);
    info.technical_emergency_contacts = vec![
        full_contact("a@acme.example", "Zoe\u{308} Łukasz-Ōta (24/7) 🚨", "", ""),
        full_contact("b@acme.example", "山田 太郎", "", ""),
        full_contact("c@acme.example", "Tiếng Việt", "", ""),
    ];
    let saved = save(&mut c, put_masked(info, &["technical_emergency_contacts"])).await;
    assert_eq!(
        saved.technical_emergency_contacts[0].display_name,
        "Zoë Łukasz-Ōta (24/7) 🚨"
    );
}

on_both_backends!(invisible_and_reordering_characters_are_refused);
