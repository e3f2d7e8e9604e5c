//! UpdateContacts: create on first save, full and masked updates, etags,
//! concurrency, request ids and validate_only.
use std::collections::HashSet;

use tonic::Code;

use super::*;
use crate::common::{Backend, TestServer};
use crate::on_both_backends;

async fn first_update_creates(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();

    // Output-only times in the request are ignored.
    let epoch = Some(prost_types::Timestamp {
        seconds: 0,
        nanos: 0,
    });
    let sent = pb::ContactInfo {
        create_time: epoch,
        update_time: epoch,
        ..complete_info(PROD)
    };
    let saved = save(&mut c, put(sent)).await;
    assert_eq!(saved.name, PROD);
    assert!(!saved.etag.is_empty());
    assert!(saved.create_time.is_some());
    assert_ne!(saved.create_time, epoch);
    assert_eq!(saved.create_time, saved.update_time);
    assert_eq!(fetch(&mut c, PROD).await, saved);
}

async fn complete_example_round_trips(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();

    let mut sent = complete_info(PROD);
    sent.technical_emergency_contacts = vec![
        full_contact(
            "Ops.Team+Alerts@Example.CO.uk",
            "Ops Team — 日本",
            "+1 (650) 253-0000",
            "pt-BR",
        ),
        full_contact("zurich@example.com", "Zürich", "+41 44 668 18 00", "de-CH"),
    ];
    sent.operational_support = windows(vec![
        window(
            "America/Los_Angeles",
            &[pb::DayOfWeek::Monday, pb::DayOfWeek::Friday],
            "22:00",
            "02:00",
        ),
        window("Europe/Zurich", &[pb::DayOfWeek::Sunday], "00:00", "24:00"),
    ]);
    let saved = save(&mut c, put(sent.clone())).await;

    let mut want = sent;
    want.technical_emergency_contacts[0].phone_number = "+16502530000".to_owned();
    want.technical_emergency_contacts[1].phone_number = "+41446681800".to_owned();
    assert_eq!(editable(saved.clone()), want);
    assert_eq!(
        saved.technical_emergency_contacts[0].email, "Ops.Team+Alerts@Example.CO.uk",
        "emails are kept as given"
    );
    assert_eq!(fetch(&mut c, PROD).await, saved);
}

async fn full_replace_clears_fields_not_given(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let only_emergency = pb::ContactInfo {
        technical_emergency_contacts: vec![contact("new-pager@example.com")],
        ..named(PROD)
    };
    for full_mask in [None, Some(vec!["*"])] {
        save(&mut c, put(complete_info(PROD))).await;
        let req = match &full_mask {
            None => put(only_emergency.clone()),
            Some(paths) => put_masked(only_emergency.clone(), paths),
        };
        let saved = save(&mut c, req).await;
        assert_eq!(
            editable(saved.clone()),
            only_emergency,
            "mask {full_mask:?}"
        );
        assert_eq!(fetch(&mut c, PROD).await, saved);
    }
}

async fn masked_update_keeps_untouched_fields(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let before = save(&mut c, put(complete_info(PROD))).await;

    // Fields outside the mask differ in the request and must be ignored.
    let change = pb::ContactInfo {
        alert_contacts: vec![contact("ignored@example.com")],
        technical_non_emergency_contacts: vec![
            contact("dev2@example.com"),
            contact("dev3@example.com"),
        ],
        operational_support: always_open(),
        ..named(PROD)
    };
    let saved = save(
        &mut c,
        put_masked(
            change.clone(),
            &["technical_non_emergency_contacts", "operational_support"],
        ),
    )
    .await;

    let mut want = editable(before.clone());
    want.technical_non_emergency_contacts = change.technical_non_emergency_contacts;
    want.operational_support = always_open();
    assert_eq!(editable(saved.clone()), want);
    assert_eq!(saved.create_time, before.create_time);
    assert_ne!(saved.etag, before.etag);
    assert_eq!(fetch(&mut c, PROD).await, saved);
}

async fn masked_field_left_empty_is_cleared(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let before = save(&mut c, put(complete_info(PROD))).await;

    let saved = save(
        &mut c,
        put_masked(named(PROD), &["alert_contacts", "operational_support"]),
    )
    .await;
    let mut want = editable(before);
    want.alert_contacts.clear();
    want.operational_support = None;
    assert_eq!(editable(saved.clone()), want);
    assert_eq!(fetch(&mut c, PROD).await, saved);
}

async fn every_mask_path_is_accepted(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let complete = complete_info(PROD);
    for (i, path) in ALL_FIELDS.iter().enumerate() {
        let saved = save(&mut c, put_masked(complete.clone(), &[path])).await;
        // Field by field the resource fills up, the rest still empty.
        let mut want = named(PROD);
        for p in &ALL_FIELDS[..=i] {
            copy_field(&mut want, &complete, p);
        }
        assert_eq!(editable(saved), want, "after {path}");
    }
}

fn copy_field(to: &mut pb::ContactInfo, from: &pb::ContactInfo, path: &str) {
    match path {
        "alert_contacts" => to.alert_contacts.clone_from(&from.alert_contacts),
        "technical_emergency_contacts" => to
            .technical_emergency_contacts
            .clone_from(&from.technical_emergency_contacts),
        "technical_non_emergency_contacts" => to
            .technical_non_emergency_contacts
            .clone_from(&from.technical_non_emergency_contacts),
        "merchant_issues_contacts" => to
            .merchant_issues_contacts
            .clone_from(&from.merchant_issues_contacts),
        "platform_operational_contacts" => to
            .platform_operational_contacts
            .clone_from(&from.platform_operational_contacts),
        "user_facing_operational_contacts" => to
            .user_facing_operational_contacts
            .clone_from(&from.user_facing_operational_contacts),
        "operational_support" => to.operational_support.clone_from(&from.operational_support),
        other => panic!("not a field: {other}"),
    }
}

async fn bad_mask_paths_are_invalid(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let info = complete_info(PROD);

    assert_invalid(
        update(
            &mut c,
            put_masked(
                info.clone(),
                &[
                    "technical_emergency_contacts",
                    "bogus",
                    "etag",
                    "update_time",
                ],
            ),
        )
        .await,
        &[
            "update_mask.paths[1]",
            "update_mask.paths[2]",
            "update_mask.paths[3]",
        ],
    );
    for paths in [
        vec!["name"],
        vec!["create_time"],
        vec!["etag"],
        vec!["update_time"],
        vec!["Alert_Contacts"],
        vec!["operational_support.always_open"],
        vec!["technical_emergency_contacts[0]"],
        vec![""],
    ] {
        assert_invalid(
            update(&mut c, put_masked(info.clone(), &paths)).await,
            &["update_mask.paths[0]"],
        );
    }
    // "*" must stand alone; a path given twice is a mistake too.
    assert_invalid(
        update(&mut c, put_masked(info.clone(), &["alert_contacts", "*"])).await,
        &["update_mask.paths[1]"],
    );
    assert_invalid(
        update(
            &mut c,
            put_masked(info.clone(), &["alert_contacts", "alert_contacts"]),
        )
        .await,
        &["update_mask.paths[1]"],
    );
    // Nothing was saved by any of them.
    expect_code(get(&mut c, PROD).await, Code::NotFound);
}

async fn missing_contact_info_or_bad_name_is_invalid(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    assert_invalid(
        update(&mut c, pb::UpdateContactsRequest::default()).await,
        &["contact_info"],
    );
    for name in super::get::bad_names() {
        assert_invalid(
            update(&mut c, put(complete_info(&name))).await,
            &["contact_info.name"],
        );
    }
    // The mask is checked beside the missing resource: one round trip.
    assert_invalid(
        update(
            &mut c,
            pb::UpdateContactsRequest {
                contact_info: None,
                ..put_masked(named(PROD), &["bogus"])
            },
        )
        .await,
        &["contact_info", "update_mask.paths[0]"],
    );
}

async fn stale_etag_is_aborted_and_changes_nothing(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let first = save(&mut c, put(complete_info(PROD))).await;
    let second = save(&mut c, put_if(complete_info(PROD), &first.etag)).await;
    assert_ne!(second.etag, first.etag);

    let stale = pb::ContactInfo {
        technical_emergency_contacts: vec![contact("late@example.com")],
        ..complete_info(PROD)
    };
    let s = expect_code(
        update(&mut c, put_if(stale.clone(), &first.etag)).await,
        Code::Aborted,
    );
    assert_eq!(error_reason(&s), "ETAG_MISMATCH");
    assert_eq!(fetch(&mut c, PROD).await, second);

    // With a request id too, and its retry: nothing was recorded as saved.
    let with_id = pb::UpdateContactsRequest {
        request_id: new_request_id(),
        ..put_if(stale.clone(), &first.etag)
    };
    for _ in 0..2 {
        let s = expect_code(update(&mut c, with_id.clone()).await, Code::Aborted);
        assert_eq!(error_reason(&s), "ETAG_MISMATCH");
    }
    assert_eq!(fetch(&mut c, PROD).await, second);

    // A made-up etag is just as stale; a masked update too.
    let mut masked = put_masked(stale.clone(), &["technical_emergency_contacts"]);
    masked.contact_info.as_mut().expect("info").etag = "W/not-an-etag".to_owned();
    let s = expect_code(update(&mut c, masked).await, Code::Aborted);
    assert_eq!(error_reason(&s), "ETAG_MISMATCH");
    assert_eq!(fetch(&mut c, PROD).await, second);

    // The current etag succeeds.
    let third = save(&mut c, put_if(stale, &second.etag)).await;
    assert_ne!(third.etag, second.etag);
    assert_eq!(fetch(&mut c, PROD).await, third);
}

async fn etag_on_nothing_stored_is_aborted(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let s = expect_code(
        update(&mut c, put_if(complete_info(PROD), "W/0123456789abcdef")).await,
        Code::Aborted,
    );
    assert_eq!(error_reason(&s), "ETAG_MISMATCH");
    expect_code(get(&mut c, PROD).await, Code::NotFound);

    // Another resource's etag does not fit either.
    let other = save(&mut c, put(complete_info(SANDBOX))).await;
    expect_code(
        update(&mut c, put_if(complete_info(PROD), &other.etag)).await,
        Code::Aborted,
    );
    expect_code(get(&mut c, PROD).await, Code::NotFound);
}

async fn etag_changes_on_every_save(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let mut etags = HashSet::new();
    let mut previous: Option<pb::ContactInfo> = None;
    for _ in 0..5 {
        // The same body, unconditional: every save is a new revision.
        let saved = save(&mut c, put(complete_info(PROD))).await;
        assert!(
            etags.insert(saved.etag.clone()),
            "etag repeated: {}",
            saved.etag
        );
        if let Some(p) = &previous {
            assert_eq!(saved.create_time, p.create_time);
            let (a, b) = (
                p.update_time.expect("update_time"),
                saved.update_time.expect("update_time"),
            );
            assert!(
                (b.seconds, b.nanos) >= (a.seconds, a.nanos),
                "update_time went back"
            );
        }
        previous = Some(saved);
    }
    // Sandbox and production never share an etag either.
    let sandbox = save(&mut c, put(complete_info(SANDBOX))).await;
    assert!(!etags.contains(&sandbox.etag));
}

async fn empty_etag_updates_unconditionally(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let first = save(&mut c, put(complete_info(PROD))).await;
    // Someone else saves in between; an empty etag does not care.
    save(&mut c, put_if(complete_info(PROD), &first.etag)).await;
    let mine = pb::ContactInfo {
        user_facing_operational_contacts: vec![contact("help@example.com")],
        ..complete_info(PROD)
    };
    let saved = save(&mut c, put(mine.clone())).await;
    assert_eq!(editable(saved.clone()), mine);
    assert_eq!(fetch(&mut c, PROD).await, saved);
}

async fn concurrent_updates_with_one_etag_one_wins(backend: Backend) {
    let server = server(backend).await;
    let base = save(&mut server.client.clone(), put(complete_info(PROD))).await;

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let mut c = server.client.clone();
            let info = pb::ContactInfo {
                technical_emergency_contacts: vec![contact(&format!("racer{i}@example.com"))],
                ..complete_info(PROD)
            };
            let req = put_if(info, &base.etag);
            tokio::spawn(async move { update(&mut c, req).await })
        })
        .collect();
    let mut winners = Vec::new();
    let mut aborted = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(info) => winners.push(info),
            Err(s) if s.code() == Code::Aborted => {
                assert_eq!(error_reason(&s), "ETAG_MISMATCH");
                aborted += 1;
            }
            Err(s) => panic!("unexpected status: {s:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(aborted, 19);
    let stored = fetch(&mut server.client.clone(), PROD).await;
    assert_eq!(stored, winners[0]);
    assert_ne!(stored.etag, base.etag);
}

async fn concurrent_unconditional_updates_all_save(backend: Backend) {
    let server = TestServer::start(backend).await;
    // No resource yet: the first ones race to create it.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let mut c = server.client.clone();
            let info = pb::ContactInfo {
                technical_emergency_contacts: vec![contact(&format!("racer{i}@example.com"))],
                ..named(PROD)
            };
            tokio::spawn(async move { update(&mut c, put(info)).await })
        })
        .collect();
    let mut saved = Vec::new();
    for t in tasks {
        saved.push(t.await.expect("task").expect("unconditional update"));
    }
    let etags: HashSet<_> = saved.iter().map(|s| s.etag.clone()).collect();
    assert_eq!(etags.len(), 20, "every save gets its own etag");
    let create_times: HashSet<_> = saved
        .iter()
        .map(|s| {
            s.create_time.expect("create_time").seconds * 1_000_000_000
                + i64::from(s.create_time.expect("create_time").nanos)
        })
        .collect();
    assert_eq!(create_times.len(), 1, "created once: {saved:?}");
    let stored = fetch(&mut server.client.clone(), PROD).await;
    assert!(saved.contains(&stored), "stored state is one of the saves");
}

async fn retry_with_request_id_returns_first_result(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let id = new_request_id();
    let first_req = pb::UpdateContactsRequest {
        request_id: id.clone(),
        ..put(complete_info(PROD))
    };
    let first = save(&mut c, first_req.clone()).await;
    let retry = save(&mut c, first_req.clone()).await;
    assert_eq!(retry, first, "same etag, same update_time");
    assert_eq!(fetch(&mut c, PROD).await, first, "not saved again");

    // Another update in between; the retry still answers the first result
    // and does not overwrite the newer state.
    let between = pb::ContactInfo {
        technical_emergency_contacts: vec![contact("between@example.com")],
        ..complete_info(PROD)
    };
    let between = save(&mut c, put(between)).await;
    assert_ne!(between.etag, first.etag);
    let late_retry = save(&mut c, first_req).await;
    assert_eq!(late_retry, first);
    assert_eq!(fetch(&mut c, PROD).await, between);
}

async fn retry_of_conditional_update_returns_first_result(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let base = save(&mut c, put(complete_info(PROD))).await;
    let req = pb::UpdateContactsRequest {
        request_id: new_request_id(),
        ..put_if(
            pb::ContactInfo {
                merchant_issues_contacts: vec![],
                ..complete_info(PROD)
            },
            &base.etag,
        )
    };
    let first = save(&mut c, req.clone()).await;
    // The etag in the retry is now stale, but it is a retry: same answer.
    assert_eq!(save(&mut c, req).await, first);
    assert_eq!(fetch(&mut c, PROD).await, first);
}

async fn concurrent_retries_save_once(backend: Backend) {
    let server = server(backend).await;
    let req = pb::UpdateContactsRequest {
        request_id: new_request_id(),
        ..put(complete_info(PROD))
    };
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let mut c = server.client.clone();
            let req = req.clone();
            tokio::spawn(async move { update(&mut c, req).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task").expect("retry succeeds"));
    }
    assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
    let stored = fetch(&mut server.client.clone(), PROD).await;
    assert_eq!(stored, results[0]);
    assert_eq!(stored.create_time, stored.update_time, "saved exactly once");
}

async fn request_id_reused_for_another_request_is_invalid(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let id = new_request_id();
    let first_req = pb::UpdateContactsRequest {
        request_id: id.clone(),
        ..put(complete_info(PROD))
    };
    let first = save(&mut c, first_req.clone()).await;

    let other_body = pb::UpdateContactsRequest {
        request_id: id.clone(),
        ..put(pb::ContactInfo {
            technical_emergency_contacts: vec![contact("other@example.com")],
            ..complete_info(PROD)
        })
    };
    let other_mask = pb::UpdateContactsRequest {
        request_id: id.clone(),
        ..put_masked(complete_info(PROD), &["technical_emergency_contacts"])
    };
    let other_etag = pb::UpdateContactsRequest {
        request_id: id.clone(),
        ..put_if(complete_info(PROD), &first.etag)
    };
    for req in [other_body, other_mask, other_etag] {
        assert_invalid_because(
            update(&mut c, req).await,
            "REQUEST_ID_REUSED",
            &["request_id"],
        );
    }
    assert_eq!(fetch(&mut c, PROD).await, first);
    // The original retry still works afterwards.
    assert_eq!(save(&mut c, first_req).await, first);
}

async fn request_id_reused_for_another_resource_is_invalid(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let id = new_request_id();
    let first = save(
        &mut c,
        pb::UpdateContactsRequest {
            request_id: id.clone(),
            ..put(complete_info(SANDBOX))
        },
    )
    .await;
    // Within the partner an id names one request; another partner's use of
    // the same id is a request of its own (tests/it/hostile/request_ids.rs).
    for name in [PROD] {
        assert_invalid_because(
            update(
                &mut c,
                pb::UpdateContactsRequest {
                    request_id: id.clone(),
                    ..put(complete_info(name))
                },
            )
            .await,
            "REQUEST_ID_REUSED",
            &["request_id"],
        );
        expect_code(get(&mut c, name).await, Code::NotFound);
    }
    let other = "partners/other/environments/sandbox/contactInfo";
    let theirs = save(
        &mut c,
        pb::UpdateContactsRequest {
            request_id: id.clone(),
            ..put(complete_info(other))
        },
    )
    .await;
    assert_eq!(theirs.name, other);
    assert_eq!(fetch(&mut c, SANDBOX).await, first);
}

async fn malformed_request_id_is_invalid(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    for id in [
        "not-a-uuid",
        "12345",
        "2f1e9a9c-2d43-4b0e-9a4e-8c1f3b7d5e6",
        // Other UUID spellings are refused so one id has one spelling.
        "2f1e9a9c2d434b0e9a4e8c1f3b7d5e60",
        "{2f1e9a9c-2d43-4b0e-9a4e-8c1f3b7d5e60}",
        "urn:uuid:2f1e9a9c-2d43-4b0e-9a4e-8c1f3b7d5e60",
    ] {
        assert_invalid(
            update(
                &mut c,
                pb::UpdateContactsRequest {
                    request_id: id.to_owned(),
                    ..put(complete_info(PROD))
                },
            )
            .await,
            &["request_id"],
        );
    }
    // Reported beside the body's own violations, in one BadRequest.
    let bad_body = pb::ContactInfo {
        technical_emergency_contacts: vec![contact("not an email")],
        ..complete_info(PROD)
    };
    assert_invalid(
        update(
            &mut c,
            pb::UpdateContactsRequest {
                request_id: "not-a-uuid".to_owned(),
                ..put(bad_body)
            },
        )
        .await,
        &[
            "request_id",
            "contact_info.technical_emergency_contacts[0].email",
        ],
    );
    expect_code(get(&mut c, PROD).await, Code::NotFound);
}

async fn validate_only_saves_nothing(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();

    // Before anything is stored: the would-be resource, no output fields.
    let id = new_request_id();
    let preview = save(
        &mut c,
        pb::UpdateContactsRequest {
            validate_only: true,
            request_id: id.clone(),
            ..put(complete_info(PROD))
        },
    )
    .await;
    assert_eq!(preview, complete_info(PROD));
    expect_code(get(&mut c, PROD).await, Code::NotFound);
    assert!(!check(&mut c, PROD, "").await.open);

    // request_id is ignored under validate_only: the real call may use it.
    let stored = save(
        &mut c,
        pb::UpdateContactsRequest {
            request_id: id,
            ..put(complete_info(PROD))
        },
    )
    .await;

    // A masked change, previewed: merged fields, the stored output fields.
    let change = pb::ContactInfo {
        technical_emergency_contacts: vec![contact("preview@example.com")],
        etag: stored.etag.clone(),
        ..named(PROD)
    };
    let preview = save(
        &mut c,
        pb::UpdateContactsRequest {
            validate_only: true,
            ..put_masked(change.clone(), &["technical_emergency_contacts"])
        },
    )
    .await;
    let mut want = stored.clone();
    want.technical_emergency_contacts = change.technical_emergency_contacts;
    assert_eq!(preview, want);
    assert_eq!(preview.etag, stored.etag);
    assert_eq!(preview.update_time, stored.update_time);
    assert_eq!(fetch(&mut c, PROD).await, stored);
}

async fn validate_only_still_reports_violations_and_stale_etags(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let validate = |req: pb::UpdateContactsRequest| pb::UpdateContactsRequest {
        validate_only: true,
        ..req
    };

    // An etag with nothing stored.
    expect_code(
        update(&mut c, validate(put_if(complete_info(PROD), "W/abc"))).await,
        Code::Aborted,
    );
    let bad = pb::ContactInfo {
        technical_emergency_contacts: vec![contact("nope")],
        ..complete_info(PROD)
    };
    assert_invalid(
        update(&mut c, validate(put(bad.clone()))).await,
        &["contact_info.technical_emergency_contacts[0].email"],
    );
    assert_invalid(
        update(&mut c, validate(put_masked(complete_info(PROD), &["etag"]))).await,
        &["update_mask.paths[0]"],
    );

    let first = save(&mut c, put(complete_info(PROD))).await;
    let second = save(&mut c, put(complete_info(PROD))).await;
    let s = expect_code(
        update(&mut c, validate(put_if(complete_info(PROD), &first.etag))).await,
        Code::Aborted,
    );
    assert_eq!(error_reason(&s), "ETAG_MISMATCH");
    assert_invalid(
        update(&mut c, validate(put_if(bad, &second.etag))).await,
        &["contact_info.technical_emergency_contacts[0].email"],
    );
    assert_eq!(fetch(&mut c, PROD).await, second);
}

async fn drafts_are_allowed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let draft = pb::ContactInfo {
        technical_emergency_contacts: vec![contact("pager@example.com")],
        ..named(PROD)
    };
    let saved = save(&mut c, put(draft.clone())).await;
    assert_eq!(editable(saved.clone()), draft);
    assert_eq!(fetch(&mut c, PROD).await, saved);
    // Even an entirely empty resource is a valid draft.
    let empty = save(&mut c, put(named(SANDBOX))).await;
    assert_eq!(editable(empty), named(SANDBOX));
}

on_both_backends!(
    request_id_retry_ignores_letter_case,
    first_update_creates,
    complete_example_round_trips,
    full_replace_clears_fields_not_given,
    masked_update_keeps_untouched_fields,
    masked_field_left_empty_is_cleared,
    every_mask_path_is_accepted,
    bad_mask_paths_are_invalid,
    missing_contact_info_or_bad_name_is_invalid,
    stale_etag_is_aborted_and_changes_nothing,
    etag_on_nothing_stored_is_aborted,
    etag_changes_on_every_save,
    empty_etag_updates_unconditionally,
    concurrent_updates_with_one_etag_one_wins,
    concurrent_unconditional_updates_all_save,
    retry_with_request_id_returns_first_result,
    retry_of_conditional_update_returns_first_result,
    concurrent_retries_save_once,
    request_id_reused_for_another_request_is_invalid,
    request_id_reused_for_another_resource_is_invalid,
    malformed_request_id_is_invalid,
    validate_only_saves_nothing,
    validate_only_still_reports_violations_and_stale_etags,
    drafts_are_allowed,
);

async fn request_id_retry_ignores_letter_case(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let id = new_request_id();
    let first = save(
        &mut c,
        pb::UpdateContactsRequest {
            request_id: id.to_lowercase(),
            ..put(complete_info(PROD))
        },
    )
    .await;
    let retry = save(
        &mut c,
        pb::UpdateContactsRequest {
            request_id: id.to_uppercase(),
            ..put(complete_info(PROD))
        },
    )
    .await;
    assert_eq!(
        retry, first,
        "the same id in upper case is a retry, not a new request"
    );
}
