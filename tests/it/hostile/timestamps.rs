//! Timestamps a caller controls never reach a database outside the range a
//! protobuf Timestamp may hold (PostgreSQL answered INTERNAL, SQLSTATE 22008).
use partner_contacts::pb;
use tonic::Code;

use crate::api::{PROD, assert_invalid, complete_info, expect_code, put, save, server};
use crate::common::Backend;
use crate::on_both_backends;

/// Just outside 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z, and
/// far outside (chrono holds years up to ±262143, PostgreSQL fewer).
fn out_of_range() -> Vec<prost_types::Timestamp> {
    let t = |seconds, nanos| prost_types::Timestamp { seconds, nanos };
    vec![
        t(-300_000_000_000, 0),
        t(-62_135_596_801, 999_999_999),
        t(253_402_300_800, 0),
        t(9_000_000_000_000, 0),
        t(0, -1),
        t(0, 1_000_000_000),
    ]
}

async fn read_time_out_of_range_is_invalid(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    save(&mut c, put(complete_info(PROD))).await;
    for t in out_of_range() {
        assert_invalid(
            c.get_contacts(pb::GetContactsRequest {
                name: PROD.to_owned(),
                read_time: Some(t),
            })
            .await,
            &["read_time"],
        );
    }
    // The edges themselves are times: before the first save there was nothing.
    for edge in [
        prost_types::Timestamp {
            seconds: -62_135_596_800,
            nanos: 0,
        },
        prost_types::Timestamp {
            seconds: 253_402_300_799,
            nanos: 999_999_999,
        },
    ] {
        let found = c
            .get_contacts(pb::GetContactsRequest {
                name: PROD.to_owned(),
                read_time: Some(edge),
            })
            .await;
        if edge.seconds < 0 {
            expect_code(found, Code::NotFound);
        } else {
            assert_eq!(found.expect("latest revision").into_inner().name, PROD);
        }
    }
}

async fn at_time_out_of_range_is_invalid_and_not_echoed(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    save(&mut c, put(complete_info(PROD))).await;
    for t in out_of_range() {
        assert_invalid(
            c.resolve_recipients(pb::ResolveRecipientsRequest {
                name: PROD.to_owned(),
                purpose: pb::Purpose::UserSupport as i32,
                at_time: Some(t),
            })
            .await,
            &["at_time"],
        );
    }
}

/// A ListPortalUsers token is opaque but not signed: hex of
/// `users|{parent}|{micros}|{id}`. One forged with a cursor in year -251000
/// must be refused like any other foreign token.
async fn forged_page_token_cursor_is_invalid(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    for micros in [
        "-7983187200000000000",
        "253402300800000000",
        "9223372036854775807",
    ] {
        let token: String = format!("users|partners/acme|{micros}|{}", uuid::Uuid::nil())
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_invalid(
            c.list_portal_users(pb::ListPortalUsersRequest {
                parent: "partners/acme".to_owned(),
                page_size: 1,
                page_token: token,
            })
            .await,
            &["page_token"],
        );
    }
}

on_both_backends!(
    read_time_out_of_range_is_invalid,
    at_time_out_of_range_is_invalid_and_not_echoed,
    forged_page_token_cursor_is_invalid,
);
