//! Point-in-time recovery's mechanisms (issue 18): the WAL follower that reads a live server's
//! `-wal` read-only, the order-independent database checksum, and the segment format of a
//! chain (docs/archive-format.md, "Point-in-time chain"). The operations on chains (follow,
//! rebuild at a time, verify) are in `ops::replicate`.

pub mod compact;
pub mod digest;
pub mod fstype;
pub mod segment;
pub mod wal;
