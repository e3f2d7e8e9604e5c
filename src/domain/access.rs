//! Who is calling, what they may do, and which contact fields they may see.
use super::{ContactFields, PartnerId};
use crate::error::Error;

/// What a platform service may do, granted by token scopes or mTLS identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read every contact field.
    ContactsRead,
    /// Read only what end users may see (user-facing contacts, support hours).
    ContactsReadUserFacing,
    ContactsWrite,
    GateCheck,
    UsersManage,
    HistoryRead,
    /// List a partner's events (ListEvents).
    EventsRead,
    /// Confirm an address with its challenge (ConfirmContact): the page a
    /// verification link opens.
    ContactsVerify,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Self::ContactsRead,
        Self::ContactsReadUserFacing,
        Self::ContactsWrite,
        Self::GateCheck,
        Self::UsersManage,
        Self::HistoryRead,
        Self::EventsRead,
        Self::ContactsVerify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContactsRead => "contacts.read",
            Self::ContactsReadUserFacing => "contacts.read_user_facing",
            Self::ContactsWrite => "contacts.write",
            Self::GateCheck => "gate.check",
            Self::UsersManage => "users.manage",
            Self::HistoryRead => "history.read",
            Self::EventsRead => "events.read",
            Self::ContactsVerify => "contacts.verify",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Scopes(u8);

impl Scopes {
    pub fn contains(self, s: Scope) -> bool {
        self.0 & s.bit() != 0
    }

    pub fn insert(&mut self, s: Scope) {
        self.0 |= s.bit();
    }

    /// Parses a space-separated `scope` claim; unknown scopes are ignored so
    /// an issuer can add scopes for other services to the same token.
    pub fn parse_claim(claim: &str) -> Self {
        claim
            .split_ascii_whitespace()
            .filter_map(Scope::parse)
            .collect()
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut out = Self::default();
        for s in iter {
            out.insert(s);
        }
        out
    }
}

/// A portal user's role within their partner account.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PortalRole {
    /// Read, update contacts, manage portal users.
    Administrator,
    /// Read and update contacts.
    Editor,
    /// Read.
    ReadOnly,
}

impl PortalRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Administrator => "ADMINISTRATOR",
            Self::Editor => "EDITOR",
            Self::ReadOnly => "READ_ONLY",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Administrator, Self::Editor, Self::ReadOnly]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// The authenticated caller of one RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No authentication is configured (loopback-only development mode):
    /// full access.
    Developer,
    /// A platform service, by token `sub` or mTLS SPIFFE ID.
    Service { sub: String, scopes: Scopes },
    /// A partner's portal user, confined to that partner.
    PortalUser {
        sub: String,
        partner: PartnerId,
        role: PortalRole,
    },
}

/// What an RPC does, for authorisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ReadContacts,
    /// Revisions, and contacts as they were at a past `read_time`.
    ReadHistory,
    UpdateContacts,
    CheckGate,
    ListPortalUsers,
    ManagePortalUsers,
    /// Events name every contact and portal user of the partner.
    ListEvents,
    /// The challenge is the proof; the caller only needs to be allowed to
    /// present challenges for the partner.
    ConfirmContact,
}

/// Which contact fields a caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadView {
    Full,
    /// Only `user_facing_operational_contacts` and `operational_support`.
    UserFacing,
}

impl ReadView {
    /// THE audience filter: every read path sends contact fields through it.
    pub fn apply(self, fields: &mut ContactFields) {
        if self == Self::UserFacing {
            *fields = ContactFields {
                user_facing_operational_contacts: std::mem::take(
                    &mut fields.user_facing_operational_contacts,
                ),
                operational_support: fields.operational_support.take(),
                ..ContactFields::default()
            };
        }
    }

    /// [`Self::apply`] on a borrowed value: copies only when something is
    /// hidden, so the full view of a cached contact info costs nothing.
    pub fn filter(self, fields: &ContactFields) -> std::borrow::Cow<'_, ContactFields> {
        match self {
            Self::Full => std::borrow::Cow::Borrowed(fields),
            Self::UserFacing => {
                let mut owned = ContactFields {
                    user_facing_operational_contacts: fields
                        .user_facing_operational_contacts
                        .clone(),
                    operational_support: fields.operational_support.clone(),
                    ..ContactFields::default()
                };
                self.apply(&mut owned);
                std::borrow::Cow::Owned(owned)
            }
        }
    }

    /// Whether a top-level field survives the filter.
    pub fn shows(self, field: super::Field) -> bool {
        self == Self::Full
            || matches!(
                field,
                super::Field::UserFacingOperationalContacts | super::Field::OperationalSupport
            )
    }
}

/// The message every denial carries: it must not tell whether the resource
/// exists, nor which rule refused.
const DENIED: &str = "the caller may not do this on this resource";

/// The `{partner}` segment of a `partners/{partner}/...` name, unvalidated:
/// authorisation runs before validation (AIP-211).
pub fn partner_segment(name: &str) -> Option<&str> {
    name.strip_prefix("partners/")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
}

impl Principal {
    /// The actor recorded in revisions.
    pub fn actor(&self) -> &str {
        match self {
            Self::Developer => "developer",
            Self::Service { sub, .. } | Self::PortalUser { sub, .. } => sub,
        }
    }

    /// Allows `action` on the partner named by `partner` (the raw segment of
    /// the request's resource name), or refuses with PERMISSION_DENIED.
    pub fn authorize(&self, action: Action, partner: Option<&str>) -> Result<(), Error> {
        let allowed = match self {
            Self::Developer => true,
            Self::Service { scopes, .. } => match action {
                Action::ReadContacts => {
                    scopes.contains(Scope::ContactsRead)
                        || scopes.contains(Scope::ContactsReadUserFacing)
                }
                Action::ReadHistory => {
                    scopes.contains(Scope::HistoryRead)
                        && (scopes.contains(Scope::ContactsRead)
                            || scopes.contains(Scope::ContactsReadUserFacing))
                }
                Action::UpdateContacts => scopes.contains(Scope::ContactsWrite),
                Action::CheckGate => scopes.contains(Scope::GateCheck),
                Action::ListPortalUsers | Action::ManagePortalUsers => {
                    scopes.contains(Scope::UsersManage)
                }
                Action::ListEvents => scopes.contains(Scope::EventsRead),
                Action::ConfirmContact => scopes.contains(Scope::ContactsVerify),
            },
            Self::PortalUser {
                partner: own, role, ..
            } => {
                partner == Some(own.as_str())
                    && match action {
                        Action::ReadContacts
                        | Action::ReadHistory
                        | Action::CheckGate
                        | Action::ListPortalUsers
                        | Action::ConfirmContact => true,
                        Action::UpdateContacts => {
                            matches!(role, PortalRole::Administrator | PortalRole::Editor)
                        }
                        Action::ManagePortalUsers | Action::ListEvents => {
                            *role == PortalRole::Administrator
                        }
                    }
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(Error::PermissionDenied {
                message: DENIED.to_owned(),
            })
        }
    }

    /// Which contact fields this caller may read.
    pub fn read_view(&self) -> ReadView {
        match self {
            Self::Developer | Self::PortalUser { .. } => ReadView::Full,
            Self::Service { scopes, .. } if scopes.contains(Scope::ContactsRead) => ReadView::Full,
            Self::Service { .. } => ReadView::UserFacing,
        }
    }
}
