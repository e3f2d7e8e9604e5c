//! Copying one environment's contact information onto another's
//! (CopyContactInfo): which fields travel, and which source a copy may name.
use std::fmt;

use super::{ContactInfo, ContactInfoName, Environment, Field, FieldSet, Update};
use crate::error::FieldViolation;

/// One saved revision of a contact info, by name: what a copy records as its
/// source, so the history says which state was copied, not only from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionName {
    pub name: ContactInfoName,
    pub revision: i64,
}

impl fmt::Display for RevisionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/revisions/{}", self.name, self.revision)
    }
}

impl Field {
    /// Whether the field exists in `environment`: alert contacts are
    /// production's alone (the seed page: "can only be set in production").
    pub fn exists_in(self, environment: Environment) -> bool {
        self != Self::AlertContacts || environment == Environment::Production
    }
}

/// The fields a copy from `from` to `to` carries: those that exist in both.
pub fn copied_fields(from: Environment, to: Environment) -> FieldSet {
    Field::ALL
        .into_iter()
        .filter(|f| f.exists_in(from) && f.exists_in(to))
        .collect()
}

/// A copy reads the same partner's other environment: across partners it
/// would let a caller allowed on one partner read another's contacts, and
/// onto itself it would change nothing.
pub fn check_copy_source(
    target: &ContactInfoName,
    source: &ContactInfoName,
) -> Result<(), FieldViolation> {
    if source.partner != target.partner {
        return Err(FieldViolation::new(
            "source",
            "must name the same partner as `name`",
        ));
    }
    if source.environment == target.environment {
        return Err(FieldViolation::new(
            "source",
            "must name the partner's other environment, not the one of `name`",
        ));
    }
    Ok(())
}

impl Update {
    /// The update that copies `source` onto `target`: every field both
    /// environments have, as the source holds it (an empty one clears the
    /// target's); the others keep their stored value.
    pub fn copy_of(
        source: &ContactInfo,
        target: ContactInfoName,
        expected_etag: Option<String>,
    ) -> Self {
        let mask = copied_fields(source.name.environment, target.environment);
        let mut patch = source.fields.clone();
        for field in Field::ALL.into_iter().filter(|f| !mask.contains(*f)) {
            patch.clear(field);
        }
        Self {
            name: target,
            patch,
            mask,
            expected_etag,
            copied_from: Some(RevisionName {
                name: source.name.clone(),
                revision: source.revision,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::contact::contact;
    use crate::domain::{ContactFields, OperationalSupport};

    fn name(partner: &str, environment: &str) -> ContactInfoName {
        ContactInfoName::parse(&format!(
            "partners/{partner}/environments/{environment}/contactInfo"
        ))
        .expect("test name")
    }

    fn saved(name: ContactInfoName, fields: ContactFields, revision: i64) -> ContactInfo {
        let t = Utc
            .with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
            .single()
            .expect("time");
        ContactInfo {
            name,
            fields,
            revision,
            etag: "W/0001".into(),
            create_time: t,
            update_time: t,
        }
    }

    #[test]
    fn sandbox_to_production_copies_every_shared_field_and_leaves_alert_contacts() {
        let sandbox = saved(
            name("acme", "sandbox"),
            ContactFields {
                technical_emergency_contacts: vec![contact("pager@acme.example")],
                user_facing_operational_contacts: vec![contact("help@acme.example")],
                operational_support: Some(OperationalSupport::AlwaysOpen),
                ..ContactFields::default()
            },
            7,
        );
        let production = saved(
            name("acme", "production"),
            ContactFields {
                alert_contacts: vec![contact("ops@acme.example")],
                merchant_issues_contacts: vec![contact("old@acme.example")],
                ..ContactFields::default()
            },
            3,
        );
        let update = Update::copy_of(&sandbox, production.name.clone(), None);
        assert!(!update.mask.contains(Field::AlertContacts));
        assert_eq!(update.mask.iter().count(), 6);
        assert_eq!(
            update
                .copied_from
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("partners/acme/environments/sandbox/contactInfo/revisions/7")
        );
        let fields = update.merge_onto(Some(&production)).expect("merge");
        assert_eq!(fields.alert_contacts, production.fields.alert_contacts);
        // Empty in the source: cleared in the target.
        assert!(fields.merchant_issues_contacts.is_empty());
        assert_eq!(
            fields.technical_emergency_contacts,
            sandbox.fields.technical_emergency_contacts
        );
        assert_eq!(
            fields.operational_support,
            sandbox.fields.operational_support
        );
        assert_eq!(
            fields.user_facing_operational_contacts,
            sandbox.fields.user_facing_operational_contacts
        );
    }

    #[test]
    fn production_to_sandbox_never_carries_alert_contacts() {
        let production = saved(
            name("acme", "production"),
            ContactFields {
                alert_contacts: vec![contact("ops@acme.example")],
                ..ContactFields::default()
            },
            2,
        );
        let update = Update::copy_of(&production, name("acme", "sandbox"), None);
        assert!(!update.mask.contains(Field::AlertContacts));
        assert!(update.patch.alert_contacts.is_empty());
    }

    #[test]
    fn a_source_must_be_the_same_partners_other_environment() {
        let target = name("acme", "production");
        assert!(check_copy_source(&target, &name("acme", "sandbox")).is_ok());
        let other = check_copy_source(&target, &name("globex", "sandbox")).unwrap_err();
        assert_eq!(other.field, "source");
        assert!(other.description.contains("same partner"));
        let same = check_copy_source(&target, &name("acme", "production")).unwrap_err();
        assert!(same.description.contains("other environment"));
    }
}
