//! The onboarding gate: which fields an integration type requires, and what is missing.
use std::collections::BTreeMap;

use serde::Deserialize;

use super::{
    ContactFields, Environment, Field, FieldSet, PortalUserEmails, alert_contacts_not_users,
};
use crate::error::{Error, FieldViolation, InvalidReason};

/// What the gate needs to know of a saved contact info: which fields hold
/// something, whether every alert contact is still a portal user, and which
/// fields hold an address that is not verified (only among the fields the
/// requirement asks to be verified: the others are not looked at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateFacts {
    pub provided: FieldSet,
    pub alert_contacts_are_users: bool,
    pub unverified: FieldSet,
}

impl GateFacts {
    /// The facts of domain fields, against the partner's portal users.
    pub fn of(fields: &ContactFields, users: &PortalUserEmails) -> Self {
        Self {
            provided: Field::ALL
                .into_iter()
                .filter(|f| fields.is_provided(*f))
                .collect(),
            alert_contacts_are_users: alert_contacts_not_users(fields, users).is_empty(),
            unverified: FieldSet::EMPTY,
        }
    }
}

/// Why a field keeps the gate closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingReason {
    RequiredFieldMissing,
    NotAPortalUser,
    NotVerified,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub field: Field,
    pub reason: FindingReason,
    pub message: String,
}

/// The verdict for one contact info and integration type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateResult<'p> {
    /// The policy's name for it (the default's when none was asked for).
    pub integration_type: &'p str,
    pub findings: Vec<Finding>,
}

impl GateResult<'_> {
    pub fn open(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Which fields each integration type requires, and which of them must
/// hold only verified addresses.
///
/// `alert_contacts` exist only in production, so they are never required in
/// the sandbox whatever the policy says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatePolicy {
    default_type: String,
    types: BTreeMap<String, TypePolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TypePolicy {
    required: FieldSet,
    verified: FieldSet,
}

/// The policy file's shape (TOML); see `deploy/gate-policy.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    default_integration_type: String,
    integration_types: BTreeMap<String, PolicyFileType>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFileType {
    required_fields: Vec<String>,
    /// Fields whose addresses must all be verified (SendVerification,
    /// ConfirmContact) for the gate to open; none by default.
    #[serde(default)]
    verified_fields: Vec<String>,
}

impl GatePolicy {
    /// Built in: `reservations-e2e` requires everything but merchant-issues
    /// contacts; `reservations-e2e-merchants` requires all seven fields.
    pub fn builtin() -> Self {
        let mut without_merchants = FieldSet::all();
        without_merchants.remove(Field::MerchantIssuesContacts);
        let required = |required| TypePolicy {
            required,
            verified: FieldSet::EMPTY,
        };
        Self {
            default_type: "reservations-e2e".to_owned(),
            types: BTreeMap::from([
                ("reservations-e2e".to_owned(), required(without_merchants)),
                (
                    "reservations-e2e-merchants".to_owned(),
                    required(FieldSet::all()),
                ),
            ]),
        }
    }

    /// Parses a policy file. Errors name the problem; they are meant for the
    /// operator starting the server.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut types = BTreeMap::new();
        for (name, t) in file.integration_types {
            if name.is_empty() {
                return Err("an integration type name is empty".to_owned());
            }
            let fields = |list: &[String], key: &str| -> Result<FieldSet, String> {
                let mut set = FieldSet::EMPTY;
                for f in list {
                    let field = Field::parse(f).ok_or_else(|| {
                        format!("integration type {name:?}: unknown field {f:?} in {key}")
                    })?;
                    set.insert(field);
                }
                Ok(set)
            };
            let required = fields(&t.required_fields, "required_fields")?;
            let verified = fields(&t.verified_fields, "verified_fields")?;
            if verified.contains(Field::OperationalSupport) {
                return Err(format!(
                    "integration type {name:?}: operational_support has no addresses to verify"
                ));
            }
            types.insert(name, TypePolicy { required, verified });
        }
        if !types.contains_key(&file.default_integration_type) {
            return Err(format!(
                "default_integration_type {:?} is not one of the integration_types",
                file.default_integration_type
            ));
        }
        Ok(Self {
            default_type: file.default_integration_type,
            types,
        })
    }

    pub fn default_type(&self) -> &str {
        &self.default_type
    }

    pub fn known_types(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// Checks that `integration_type` is empty (the default) or known.
    pub fn check_type(&self, integration_type: &str) -> Result<(), Error> {
        self.lookup(integration_type).map(|_| ())
    }

    /// The fields `integration_type` requires in `environment`. An empty type
    /// means the default; an unknown one is INVALID_ARGUMENT listing the known.
    pub fn required(
        &self,
        integration_type: &str,
        environment: Environment,
    ) -> Result<(&str, FieldSet), Error> {
        let (name, t) = self.lookup(integration_type)?;
        let mut set = t.required;
        if environment == Environment::Sandbox {
            set.remove(Field::AlertContacts);
        }
        Ok((name, set))
    }

    fn lookup(&self, integration_type: &str) -> Result<(&str, TypePolicy), Error> {
        let key = if integration_type.is_empty() {
            self.default_type.as_str()
        } else {
            integration_type
        };
        let Some((name, t)) = self.types.get_key_value(key) else {
            let known: Vec<&str> = self.known_types().collect();
            return Err(Error::InvalidArgument {
                reason: InvalidReason::UnknownIntegrationType,
                violations: vec![FieldViolation::new(
                    "integration_type",
                    format!(
                        "unknown integration type; known types: {}",
                        known.join(", ")
                    ),
                )],
            });
        };
        Ok((name.as_str(), *t))
    }

    /// Evaluates the gate. `facts` is `None` when nothing was saved yet.
    pub fn evaluate(
        &self,
        integration_type: &str,
        environment: Environment,
        facts: Option<&GateFacts>,
    ) -> Result<GateResult<'_>, Error> {
        Ok(self
            .requirement(integration_type, environment)?
            .evaluate(facts))
    }

    /// What `integration_type` requires in `environment`, looked up once:
    /// the gate checks the type before it reads anything, then evaluates.
    pub fn requirement(
        &self,
        integration_type: &str,
        environment: Environment,
    ) -> Result<Requirement<'_>, Error> {
        let (type_name, fields) = self.required(integration_type, environment)?;
        let (_, t) = self.lookup(integration_type)?;
        let mut verified = t.verified;
        if environment == Environment::Sandbox {
            verified.remove(Field::AlertContacts);
        }
        Ok(Requirement {
            type_name,
            fields,
            verified,
            environment,
        })
    }
}

/// An integration type's required fields in one environment.
#[derive(Debug, Clone, Copy)]
pub struct Requirement<'p> {
    type_name: &'p str,
    fields: FieldSet,
    /// Fields whose addresses must all be verified.
    verified: FieldSet,
    environment: Environment,
}

impl<'p> Requirement<'p> {
    /// The fields whose addresses the facts must say are verified (empty
    /// for most types: nothing then needs to be looked at).
    pub fn verified_fields(&self) -> FieldSet {
        self.verified
    }

    /// The verdict on what is saved; `facts` is `None` when nothing is.
    pub fn evaluate(self, facts: Option<&GateFacts>) -> GateResult<'p> {
        let Self {
            type_name,
            fields: required,
            verified,
            environment,
        } = self;
        let mut findings = Vec::new();
        for field in Field::ALL {
            let provided = facts.is_some_and(|f| f.provided.contains(field));
            if required.contains(field) && !provided {
                findings.push(Finding {
                    field,
                    reason: FindingReason::RequiredFieldMissing,
                    message: format!(
                        "{} is required for integration type {type_name} in {}",
                        field.as_str(),
                        environment.as_str()
                    ),
                });
            } else if field == Field::AlertContacts
                && environment == Environment::Production
                && facts.is_some_and(|f| !f.alert_contacts_are_users)
            {
                // Users revoked after being named keep their place in the
                // list (nothing is deleted silently) but block the gate.
                findings.push(Finding {
                    field,
                    reason: FindingReason::NotAPortalUser,
                    message: "an alert contact is not a portal user of the partner".to_owned(),
                });
            } else if verified.contains(field)
                && facts.is_some_and(|f| f.unverified.contains(field))
            {
                findings.push(Finding {
                    field,
                    reason: FindingReason::NotVerified,
                    message: format!(
                        "an address in {} is not verified; integration type {type_name} requires verified addresses there (SendVerification)",
                        field.as_str()
                    ),
                });
            }
        }
        GateResult {
            integration_type: type_name,
            findings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(r: &GateResult) -> Vec<Field> {
        r.findings.iter().map(|f| f.field).collect()
    }

    #[test]
    fn nothing_saved_lists_every_required_field() {
        let p = GatePolicy::builtin();
        let prod = p
            .evaluate("", Environment::Production, None)
            .expect("default type");
        assert_eq!(prod.integration_type, "reservations-e2e");
        assert!(!prod.open());
        assert_eq!(
            missing(&prod),
            vec![
                Field::AlertContacts,
                Field::TechnicalEmergencyContacts,
                Field::TechnicalNonEmergencyContacts,
                Field::PlatformOperationalContacts,
                Field::UserFacingOperationalContacts,
                Field::OperationalSupport,
            ]
        );
        let sandbox = p
            .evaluate("reservations-e2e-merchants", Environment::Sandbox, None)
            .expect("known type");
        assert!(!missing(&sandbox).contains(&Field::AlertContacts));
        assert!(missing(&sandbox).contains(&Field::MerchantIssuesContacts));
    }

    #[test]
    fn unknown_type_lists_known_ones() {
        let err = GatePolicy::builtin()
            .evaluate("nope", Environment::Sandbox, None)
            .expect_err("unknown");
        let text = err.to_string();
        assert!(text.contains("reservations-e2e"), "{text}");
        assert!(text.contains("reservations-e2e-merchants"), "{text}");
    }

    #[test]
    fn shipped_policy_file_equals_builtin() {
        let text = include_str!("../../deploy/gate-policy.toml");
        assert_eq!(GatePolicy::from_toml(text), Ok(GatePolicy::builtin()));
    }

    #[test]
    fn verified_fields_report_unverified_addresses() {
        let p = GatePolicy::from_toml(
            "default_integration_type = \"x\"\n[integration_types.x]\nrequired_fields = [\"technical_emergency_contacts\"]\nverified_fields = [\"alert_contacts\", \"technical_emergency_contacts\"]\n",
        )
        .expect("valid");
        let prod = p.requirement("x", Environment::Production).expect("known");
        assert_eq!(
            prod.verified_fields(),
            [Field::AlertContacts, Field::TechnicalEmergencyContacts]
                .into_iter()
                .collect()
        );
        let sandbox = p.requirement("x", Environment::Sandbox).expect("known");
        assert_eq!(
            sandbox.verified_fields(),
            [Field::TechnicalEmergencyContacts].into_iter().collect()
        );
        let facts = GateFacts {
            provided: [Field::TechnicalEmergencyContacts, Field::AlertContacts]
                .into_iter()
                .collect(),
            alert_contacts_are_users: true,
            unverified: [Field::TechnicalEmergencyContacts].into_iter().collect(),
        };
        let r = prod.evaluate(Some(&facts));
        assert_eq!(
            r.findings
                .iter()
                .map(|f| (f.field, f.reason))
                .collect::<Vec<_>>(),
            [(
                Field::TechnicalEmergencyContacts,
                FindingReason::NotVerified
            )]
        );
        let verified = GateFacts {
            unverified: FieldSet::EMPTY,
            ..facts
        };
        assert!(prod.evaluate(Some(&verified)).open());
        assert!(
            GatePolicy::from_toml(
                "default_integration_type = \"x\"\n[integration_types.x]\nrequired_fields = []\nverified_fields = [\"operational_support\"]\n"
            )
            .is_err()
        );
    }

    #[test]
    fn bad_policy_files_are_refused() {
        assert!(
            GatePolicy::from_toml(
                "default_integration_type = \"x\"\n[integration_types.y]\nrequired_fields = []\n"
            )
            .is_err()
        );
        assert!(GatePolicy::from_toml("default_integration_type = \"x\"\n[integration_types.x]\nrequired_fields = [\"etag\"]\n").is_err());
        assert!(
            GatePolicy::from_toml(
                "default_integration_type = \"x\"\n[integration_types.x]\nrequired = []\n"
            )
            .is_err()
        );
        let custom = GatePolicy::from_toml(
            "default_integration_type = \"x\"\n[integration_types.x]\nrequired_fields = [\"technical_emergency_contacts\"]\n",
        )
        .expect("valid");
        let r = custom
            .evaluate("x", Environment::Production, None)
            .expect("known");
        assert_eq!(missing(&r), vec![Field::TechnicalEmergencyContacts]);
    }
}
