//! The API's messages as bytes: a saved contact info encoded once (its ready
//! form, which the stores keep and the cache holds), read back in place, and
//! sent as it is through a tonic codec. Below the API and the stores, above
//! the domain; the only place besides the API that knows the proto's field
//! numbers.
mod answer;
mod codec;
mod ready;
mod view;

pub use answer::{RecipientOut, ResolutionOut, gate_answer};
pub use codec::{Encoded, EncodedCodec};
pub use ready::{Ready, STORED_FORMAT_V1};
pub use view::{ContactInfoView, ContactView, Malformed, SupportView, WindowView};

use crate::domain::Field;

/// The `ContactInfo` field number of a top-level field.
pub fn field_number(field: Field) -> u32 {
    match field {
        Field::AlertContacts => 2,
        Field::TechnicalEmergencyContacts => 3,
        Field::TechnicalNonEmergencyContacts => 4,
        Field::MerchantIssuesContacts => 5,
        Field::PlatformOperationalContacts => 6,
        Field::UserFacingOperationalContacts => 7,
        Field::OperationalSupport => 8,
    }
}

/// The top-level field a `ContactInfo` field number is, if it is one of the
/// editable fields (name, etag and times are not).
pub fn field_of(number: u32) -> Option<Field> {
    Field::ALL.into_iter().find(|f| field_number(*f) == number)
}
