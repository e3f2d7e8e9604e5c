//! Domain types, validation and gate rules. No I/O here.
mod access;
mod contact;
mod contact_info;
mod copy;
mod events;
mod gate;
mod name;
mod notices;
mod portal_user;
mod recipients;
mod support;
mod verification;

pub use access::{Action, PortalRole, Principal, ReadView, Scope, Scopes, partner_segment};
pub use contact::{
    Contact, DisplayName, Email, LanguageCode, MAX_CONTACTS_PER_FIELD, PhoneNumber,
    email_key_borrowed, email_key_of_stored, warm_up_validation,
};
pub use contact_info::{ContactFields, ContactInfo, Field, FieldSet, Revision, Update, now_micros};
pub use copy::{RevisionName, check_copy_source, copied_fields};
pub use events::{Event, EventKind, save_events, user_event};
pub use gate::{Finding, FindingReason, GateFacts, GatePolicy, GateResult, Requirement};
pub use name::{ContactInfoName, Environment, PartnerId};
pub use notices::{AddressChange, address_changes};
pub use portal_user::{
    EMAIL_KEY_SCHEME, PortalUser, PortalUserChange, PortalUserEmails, PortalUserName, RekeyReport,
    Rekeyed, StoredUserKey, alert_contacts_not_users, change_role, grant, parse_partner_parent,
    rekey, require_portal_users, revoke, user_exists,
};
pub use recipients::{Purpose, Resolution, resolve, resolve_with, window_open_at};
pub use support::{
    LocalTime, MAX_SUPPORT_WINDOWS, OperationalSupport, SupportWindow, TimeZoneName, Weekday,
};
pub use verification::{
    PartnerVerifications, ToVerify, Verification, VerificationFacts, VerificationPolicy,
    VerificationState, addresses, challenge_expiry, challenge_hash, is_challenge_shaped,
    to_challenge,
};
