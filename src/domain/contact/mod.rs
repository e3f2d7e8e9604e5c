//! A contact (email, name, phone, language) and the validated newtypes it is made of.
/// Serde for a newtype over `String` whose stored form is its text: read back
/// through `parse_stored` (today's rules or those it was saved under), never
/// around them.
macro_rules! stored_as_string {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = &'static str;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse_stored(s)
            }
        }

        impl From<$t> for String {
            fn from(v: $t) -> Self {
                v.0
            }
        }
    };
}
use stored_as_string;

mod display_name;
mod email;
mod language;
mod phone;

pub use display_name::DisplayName;
pub use email::{
    Email, key_of_stored as email_key_of_stored, key_of_stored_borrowed as email_key_borrowed,
};
pub use language::LanguageCode;
pub use phone::{PhoneNumber, warm_up_validation};
use serde::{Deserialize, Serialize};

pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;
pub const MAX_CONTACTS_PER_FIELD: usize = 20;

/// One person or alias to contact. Optional parts are `None` when not given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub email: Email,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<DisplayName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<PhoneNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<LanguageCode>,
}

/// A contact with an email alone: the domain's unit tests' fixture.
#[cfg(test)]
pub(crate) fn contact(email: &str) -> Contact {
    Contact {
        email: Email::parse(email).expect("test email"),
        display_name: None,
        phone_number: None,
        language_code: None,
    }
}
