//! One module per verb, each short: parse the flags (the core's typed
//! arguments, plus how to print), call `backup_core::ops`, print.

pub(crate) mod backup;
pub(crate) mod doctor;
pub(crate) mod init;
pub(crate) mod list;
pub(crate) mod mirror;
pub(crate) mod prune;
pub(crate) mod restore;
pub(crate) mod schedule;
pub(crate) mod status;
pub(crate) mod verify;
pub(crate) mod wal;

pub(crate) fn print_json(value: &impl serde::Serialize) {
    let text = serde_json::to_string_pretty(value).expect("serializable");
    println!("{}", backup_core::redact::text(&text));
}
