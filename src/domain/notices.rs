//! Which saves change who is reached: the per-field address changes a change
//! notice is about (issue 14's `contacts.changed`), decided from the fields
//! before and after a save, mailboxes compared as `Contact.email` says.
use std::collections::BTreeSet;

use super::{ContactFields, Email, Field};

/// One contact field whose set of mailboxes a save changed: whoever was
/// reached before and whoever is reached now both hear of it, so a
/// replaced on-call person learns that the pager moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressChange {
    pub field: Field,
    /// The field's addresses before the save, in their saved order.
    pub before: Vec<Email>,
    /// The field's addresses after the save, in their saved order.
    pub after: Vec<Email>,
}

impl AddressChange {
    /// Everyone to notify, each mailbox once (the first spelling seen,
    /// previous addresses first).
    pub fn recipients(&self) -> Vec<&Email> {
        let mut seen = BTreeSet::new();
        self.before
            .iter()
            .chain(&self.after)
            .filter(|e| seen.insert(e.comparison_key()))
            .collect()
    }
}

/// The contact fields whose mailboxes differ between `before` (nothing
/// saved yet: `None`) and `after`, in proto order. Reordering contacts,
/// editing a display name or phone number, or re-spelling an address as the
/// same mailbox (`Ops@Acme.example` for `ops@acme.example`) changes no one's
/// reach and is not a change here.
pub fn address_changes(
    before: Option<&ContactFields>,
    after: &ContactFields,
) -> Vec<AddressChange> {
    let empty = ContactFields::default();
    let before = before.unwrap_or(&empty);
    Field::ALL
        .into_iter()
        .filter_map(|field| {
            let (old, new) = (before.contacts(field)?, after.contacts(field)?);
            let keys = |cs: &[super::Contact]| -> BTreeSet<String> {
                cs.iter().map(|c| c.email.comparison_key()).collect()
            };
            (keys(old) != keys(new)).then(|| AddressChange {
                field,
                before: old.iter().map(|c| c.email.clone()).collect(),
                after: new.iter().map(|c| c.email.clone()).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DisplayName;
    use crate::domain::contact::contact;

    fn emails(list: &[&Email]) -> Vec<String> {
        list.iter().map(|e| e.as_str().to_owned()).collect()
    }

    #[test]
    fn a_replaced_pager_reaches_the_old_and_the_new_address() {
        let before = ContactFields {
            technical_emergency_contacts: vec![contact("pager@acme.example")],
            user_facing_operational_contacts: vec![contact("help@acme.example")],
            ..ContactFields::default()
        };
        let after = ContactFields {
            technical_emergency_contacts: vec![contact("attacker@evil.example")],
            ..before.clone()
        };
        let changes = address_changes(Some(&before), &after);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].field, Field::TechnicalEmergencyContacts);
        assert_eq!(
            emails(&changes[0].recipients()),
            ["pager@acme.example", "attacker@evil.example"]
        );
    }

    #[test]
    fn additions_removals_and_a_first_save_are_changes() {
        let first = ContactFields {
            alert_contacts: vec![contact("a@acme.example")],
            ..ContactFields::default()
        };
        let created = address_changes(None, &first);
        assert_eq!(created.len(), 1);
        assert!(created[0].before.is_empty());

        let added = ContactFields {
            alert_contacts: vec![contact("a@acme.example"), contact("b@acme.example")],
            ..ContactFields::default()
        };
        let changes = address_changes(Some(&first), &added);
        assert_eq!(
            emails(&changes[0].recipients()),
            ["a@acme.example", "b@acme.example"]
        );
        let removed = address_changes(Some(&added), &ContactFields::default());
        assert_eq!(removed[0].after, Vec::<Email>::new());
        assert_eq!(removed[0].recipients().len(), 2);
    }

    #[test]
    fn order_names_and_spelling_of_the_same_mailbox_are_not_changes() {
        let before = ContactFields {
            platform_operational_contacts: vec![
                contact("ops@acme.example"),
                contact("esc@acme.example"),
            ],
            ..ContactFields::default()
        };
        let mut renamed = contact("OPS@acme.example");
        renamed.display_name = Some(DisplayName::parse("Ops").expect("name"));
        let after = ContactFields {
            platform_operational_contacts: vec![contact("esc@acme.example"), renamed],
            ..ContactFields::default()
        };
        assert!(address_changes(Some(&before), &after).is_empty());
        // Support hours hold no addresses.
        let hours = ContactFields {
            operational_support: Some(crate::domain::OperationalSupport::AlwaysOpen),
            ..before.clone()
        };
        assert!(address_changes(Some(&before), &hours).is_empty());
    }
}
