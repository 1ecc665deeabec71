//! What a file PostgreSQL hands to `archive_command` is: its name (a
//! segment, a timeline history file, a backup history file, a partial
//! segment) and, for segments, the long page header at its start, which
//! names the cluster (system identifier) and the WAL format (page magic).

use std::fmt;

/// The kind of a file in `pg_wal` that PostgreSQL archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalFileKind {
    /// `TTTTTTTTXXXXXXXXYYYYYYYY`: a WAL segment.
    Segment,
    /// `TTTTTTTTXXXXXXXXYYYYYYYY.partial`: the last, incomplete segment of
    /// a timeline, archived at promotion.
    Partial,
    /// `TTTTTTTT.history`: a timeline history file.
    History,
    /// `TTTTTTTTXXXXXXXXYYYYYYYY.XXXXXXXX.backup`: a backup history file.
    Backup,
}

/// A WAL file name, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalFileName {
    name: String,
    kind: WalFileKind,
    timeline: u32,
    /// `(log, seg)` of a segment, partial segment or backup file.
    position: Option<(u32, u32)>,
}

/// Eight upper-case hex digits, as PostgreSQL writes them (a lower-case
/// name is not one of its files, and would be a second key for one).
fn hex8(s: &str) -> Option<u32> {
    (s.len() == 8
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)))
    .then(|| u32::from_str_radix(s, 16).ok())
    .flatten()
}

impl WalFileName {
    /// Parse a file name as PostgreSQL writes it (`%f`); `None` for
    /// anything else (so a path, `..`, or a stray file is refused).
    pub fn parse(name: &str) -> Option<Self> {
        let segment = |s: &str| -> Option<(u32, u32, u32)> {
            if s.len() != 24 {
                return None;
            }
            Some((hex8(&s[0..8])?, hex8(&s[8..16])?, hex8(&s[16..24])?))
        };
        let (kind, tli, position) = if let Some(t) = name.strip_suffix(".history") {
            (WalFileKind::History, hex8(t)?, None)
        } else if let Some(s) = name.strip_suffix(".partial") {
            let (t, log, seg) = segment(s)?;
            (WalFileKind::Partial, t, Some((log, seg)))
        } else if let Some(s) = name.strip_suffix(".backup") {
            let (seg_part, offset) = s.split_once('.')?;
            hex8(offset)?;
            let (t, log, seg) = segment(seg_part)?;
            (WalFileKind::Backup, t, Some((log, seg)))
        } else {
            let (t, log, seg) = segment(name)?;
            (WalFileKind::Segment, t, Some((log, seg)))
        };
        Some(Self {
            name: name.to_string(),
            kind,
            timeline: tli,
            position,
        })
    }

    /// The name itself.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// What kind of file it is.
    pub fn kind(&self) -> WalFileKind {
        self.kind
    }

    /// The timeline in its name.
    pub fn timeline(&self) -> u32 {
        self.timeline
    }

    /// Whether the file starts with a WAL page header (segments and partial
    /// segments).
    pub fn has_header(&self) -> bool {
        matches!(self.kind, WalFileKind::Segment | WalFileKind::Partial)
    }

    /// The segment number its name says, for a segment size of
    /// `segment_size` bytes (`log * (4 GiB / size) + seg`).
    pub fn segment_number(&self, segment_size: u32) -> Option<u64> {
        let (log, seg) = self.position?;
        let per_log = 0x1_0000_0000u64 / u64::from(segment_size.max(1));
        Some(u64::from(log) * per_log + u64::from(seg))
    }
}

impl fmt::Display for WalFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// `XLP_LONG_HEADER` in `xlp_info`: the first page of a segment has the
/// long header.
const XLP_LONG_HEADER: u16 = 0x0002;
/// The long page header's size: the standard header (magic u16, info u16,
/// timeline u32, page address u64, remaining length u32, padded to 24),
/// then system identifier u64, segment size u32, block size u32.
pub const LONG_HEADER_LEN: usize = 40;

/// The long page header at the start of a WAL segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalHeader {
    /// `xlp_magic`: the WAL format, which changes with each major version
    /// (0xD110 for 15, 0xD113 for 16, 0xD116 for 17).
    pub magic: u16,
    /// `xlp_tli`: the timeline of the first page.
    pub timeline: u32,
    /// `xlp_pageaddr`: the WAL position of the first page.
    pub page_address: u64,
    /// `xlp_sysid`: the cluster's system identifier (from `initdb`).
    pub system_identifier: u64,
    /// `xlp_seg_size`.
    pub segment_size: u32,
    /// `xlp_xlog_blcksz`.
    pub block_size: u32,
}

impl WalHeader {
    /// Read the long header from the first bytes of a segment (native byte
    /// order: WAL is written in the server's). Errors say what is wrong.
    pub fn parse(first: &[u8]) -> Result<Self, String> {
        if first.len() < LONG_HEADER_LEN {
            return Err(format!(
                "too short for a WAL segment ({} bytes)",
                first.len()
            ));
        }
        let u16_at = |i: usize| u16::from_ne_bytes([first[i], first[i + 1]]);
        let u32_at = |i: usize| u32::from_ne_bytes(first[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_ne_bytes(first[i..i + 8].try_into().expect("8 bytes"));
        let magic = u16_at(0);
        let info = u16_at(2);
        if magic & 0xFF00 != 0xD100 {
            return Err(format!(
                "not a WAL segment: page magic {magic:#06x} is not a PostgreSQL WAL format"
            ));
        }
        if info & XLP_LONG_HEADER == 0 {
            return Err("not the start of a WAL segment: its first page has no long header".into());
        }
        let h = Self {
            magic,
            timeline: u32_at(4),
            page_address: u64_at(8),
            system_identifier: u64_at(24),
            segment_size: u32_at(32),
            block_size: u32_at(36),
        };
        if !h.segment_size.is_power_of_two()
            || !(1 << 20..=1 << 30).contains(&h.segment_size)
            || !h.block_size.is_power_of_two()
        {
            return Err(format!(
                "not a WAL segment: segment size {} / block size {} are not PostgreSQL's",
                h.segment_size, h.block_size
            ));
        }
        Ok(h)
    }

    /// Check that the header belongs to the file its name says: the page
    /// address is the start of that segment.
    pub fn check_name(&self, name: &WalFileName) -> Result<(), String> {
        let Some(segno) = name.segment_number(self.segment_size) else {
            return Ok(());
        };
        let expected = segno * u64::from(self.segment_size);
        if self.page_address != expected {
            return Err(format!(
                "{name} starts at WAL position {:X}/{:08X}, not at {:X}/{:08X} as its name says",
                self.page_address >> 32,
                self.page_address as u32,
                expected >> 32,
                expected as u32
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_file_names_parse_by_kind_and_refuse_anything_else() {
        let s = WalFileName::parse("0000000200000001000000A3").unwrap();
        assert_eq!((s.kind(), s.timeline()), (WalFileKind::Segment, 2));
        assert_eq!(s.segment_number(16 << 20), Some(256 + 0xA3));
        let p = WalFileName::parse("0000000200000001000000A3.partial").unwrap();
        assert_eq!((p.kind(), p.has_header()), (WalFileKind::Partial, true));
        let h = WalFileName::parse("0000000A.history").unwrap();
        assert_eq!(
            (h.kind(), h.timeline(), h.has_header()),
            (WalFileKind::History, 10, false)
        );
        let b = WalFileName::parse("000000010000000000000002.00000028.backup").unwrap();
        assert_eq!(b.kind(), WalFileKind::Backup);
        for bad in [
            "",
            "00000001000000000000000",
            "0000000100000000000000001",
            "00000001000000000000000g",
            "0000000100000000000000ab",
            "../00000001000000000000000A",
            "pg_wal/000000010000000000000001",
            "1.history",
            "000000010000000000000002.backup",
            "000000010000000000000002.0000002.backup",
            "archive_status",
        ] {
            assert_eq!(WalFileName::parse(bad), None, "{bad:?}");
        }
    }

    fn header(magic: u16, info: u16, pageaddr: u64, sysid: u64) -> Vec<u8> {
        let mut b = vec![0u8; 8192];
        b[0..2].copy_from_slice(&magic.to_ne_bytes());
        b[2..4].copy_from_slice(&info.to_ne_bytes());
        b[4..8].copy_from_slice(&1u32.to_ne_bytes());
        b[8..16].copy_from_slice(&pageaddr.to_ne_bytes());
        b[24..32].copy_from_slice(&sysid.to_ne_bytes());
        b[32..36].copy_from_slice(&(16u32 << 20).to_ne_bytes());
        b[36..40].copy_from_slice(&8192u32.to_ne_bytes());
        b
    }

    #[test]
    fn headers_name_the_cluster_and_must_match_the_file_name() {
        let name = WalFileName::parse("000000010000000100000002").unwrap();
        let at = (256 + 2) * (16u64 << 20);
        let h = WalHeader::parse(&header(0xD110, 0x0006, at, 7_300_000_000_000_000_001)).unwrap();
        assert_eq!(h.system_identifier, 7_300_000_000_000_000_001);
        assert_eq!(
            (h.magic, h.segment_size, h.block_size),
            (0xD110, 16 << 20, 8192)
        );
        h.check_name(&name).unwrap();
        let other = WalFileName::parse("000000010000000100000003").unwrap();
        let e = h.check_name(&other).unwrap_err();
        assert!(e.contains("not at 1/03000000"), "{e}");

        assert!(
            WalHeader::parse(&header(0x1234, 2, at, 1))
                .unwrap_err()
                .contains("magic")
        );
        assert!(
            WalHeader::parse(&header(0xD110, 0, at, 1))
                .unwrap_err()
                .contains("long header")
        );
        assert!(
            WalHeader::parse(&[0u8; 10])
                .unwrap_err()
                .contains("too short")
        );
        let mut odd = header(0xD110, 2, at, 1);
        odd[32..36].copy_from_slice(&12345u32.to_ne_bytes());
        assert!(WalHeader::parse(&odd).unwrap_err().contains("segment size"));
    }
}
