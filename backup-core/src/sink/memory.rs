//! The in-memory sink is [`ObjectStoreSink::memory`](super::ObjectStoreSink::memory):
//! `object_store`'s `InMemory` behind the common implementation. For unit
//! tests and examples only; nothing survives the process.
