//! Proto <-> domain conversion, one module per resource and direction.
//! Requests are validated on the way in, every violation reported at once
//! under its field path; responses go out through the caller's audience view.
mod contact;
mod contact_info;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod gate;
mod name;
mod support;
mod time;
mod update;

pub use contact_info::{contact_info_to_pb, preview_to_pb, revision_to_pb};
#[cfg(test)]
pub use gate::gate_to_pb;
pub use name::{parse_copy_names, parse_gate_name, parse_name};
pub use time::{
    MAX_TIMESTAMP_SECONDS, MIN_TIMESTAMP_SECONDS, TIMESTAMP_HINT, in_timestamp_range, parse_time,
    time_of, timestamp,
};
pub use update::parse_update;
