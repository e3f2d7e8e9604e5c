//! The hostile-input suite (issue "One address, one mailbox"): for each rule,
//! the attack as a hostile caller would send it and the answer the service
//! must give, on SQLite and PostgreSQL where storage is involved.
mod help_secrets;
mod token_lifetime;
