//! The hostile-input suite (issue "One address, one mailbox"): for each rule,
//! the attack as a hostile caller would send it and the answer the service
//! must give, on SQLite and PostgreSQL where storage is involved.
mod addresses;
mod cache_fail_fast;
mod canonical_forms;
mod display_names;
mod help_secrets;
mod request_ids;
mod stored_keys;
mod timestamps;
mod token_lifetime;
