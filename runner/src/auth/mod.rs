//! Authentication and authorisation: credentials, principals, roles.

pub mod secrets;
