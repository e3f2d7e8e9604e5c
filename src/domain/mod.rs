//! Domain types, validation and gate rules. No I/O here.
mod contact;
mod contact_info;
mod gate;
mod name;
mod support;

pub use contact::{Contact, DisplayName, Email, LanguageCode, MAX_CONTACTS_PER_FIELD, PhoneNumber};
pub use contact_info::{ContactFields, ContactInfo, Field, FieldSet, Update, now_micros};
pub use gate::{Finding, FindingReason, GatePolicy, GateResult};
pub use name::{ContactInfoName, Environment, PartnerId};
pub use support::{LocalTime, MAX_SUPPORT_WINDOWS, OperationalSupport, SupportWindow, Weekday};
