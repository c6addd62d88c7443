//! Escape attempts against the real sandbox, each with a control that shows it can fail.

mod attempts;
mod cross_run;
mod network;
mod resources;
mod support;
