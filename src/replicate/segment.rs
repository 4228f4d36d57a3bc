//! The segment file of a point-in-time chain (docs/archive-format.md, "Segment file"): a
//! header, whole committed transactions, and the SHA-256 of everything before it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::digest::Sum;
use super::wal::Pos;

pub const MAGIC: &[u8; 8] = b"KFSEG\x00\x00\x01";
pub const EXT: &str = "kfseg";
/// Segments per directory.
pub const PER_DIR: u64 = 4096;

/// Commits seen after `from_us` and before `to_us` may be missing: no point strictly between
/// them can be restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub from_us: u64,
    pub to_us: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub chain: String,
    pub seq: u64,
    pub prev: String,
    /// "wal" or "repair".
    pub kind: String,
    pub txn_first: u64,
    pub txn_last: u64,
    pub commits: u64,
    pub page_size: u32,
    pub checksum_before: String,
    pub checksum_after: String,
    pub first_time_us: u64,
    pub last_time_us: u64,
    pub wal: Option<Pos>,
    pub gap: Option<Gap>,
    pub compression: String,
    pub encryption: String,
    /// A merged segment (`kind` "merged", written by compaction): it replaces segments `seq`
    /// to `seq_last`, whose last one's hash was `end_hash` (the next segment's `prev`), and
    /// its records are the points kept, with these transaction counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_last: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txns: Option<Vec<u64>>,
}

/// One committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub time_us: u64,
    pub db_pages: u32,
    pub checksum: Sum,
    pub pages: Vec<(u32, Vec<u8>)>,
}

/// The segment's bytes, its hash last.
pub fn encode(h: &Header, records: &[Record]) -> Vec<u8> {
    let json = serde_json::to_vec(h).expect("a header serializes");
    let body: usize = records.iter().map(|r| 48 + r.pages.len() * (4 + h.page_size as usize)).sum();
    let mut out = Vec::with_capacity(8 + 4 + json.len() + body + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    for r in records {
        out.extend_from_slice(&r.time_us.to_le_bytes());
        out.extend_from_slice(&r.db_pages.to_le_bytes());
        out.extend_from_slice(&(r.pages.len() as u32).to_le_bytes());
        out.extend_from_slice(&r.checksum.bytes());
        for (pgno, page) in &r.pages {
            out.extend_from_slice(&pgno.to_le_bytes());
            out.extend_from_slice(page);
        }
    }
    let hash = Sha256::digest(&out);
    out.extend_from_slice(&hash);
    out
}

/// A segment read back: header, records, and its hash (hex).
pub struct Decoded {
    pub header: Header,
    pub records: Vec<Record>,
    pub hash: String,
}

/// Parse and check a segment's bytes; Err says what is wrong with it.
pub fn decode(b: &[u8]) -> std::result::Result<Decoded, String> {
    if b.len() < 8 + 4 + 32 || &b[..8] != MAGIC {
        return Err("not a kfadmin segment (bad magic number or too short)".into());
    }
    let (body, hash) = b.split_at(b.len() - 32);
    if Sha256::digest(body).as_slice() != hash {
        return Err("its SHA-256 does not match its content: it is damaged".into());
    }
    let hlen = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes")) as usize;
    let json = body.get(12..12 + hlen).ok_or("its header is cut short")?;
    let header: Header =
        serde_json::from_slice(json).map_err(|e| format!("its header cannot be read: {e}"))?;
    if header.compression != "none" || header.encryption != "none" {
        return Err(format!(
            "it is written with compression {:?} and encryption {:?}, which this kfadmin cannot read",
            header.compression, header.encryption
        ));
    }
    let ps = header.page_size as usize;
    let mut at = 12 + hlen;
    let mut records = Vec::new();
    let take = |at: &mut usize, n: usize| -> std::result::Result<&[u8], String> {
        let s = body.get(*at..*at + n).ok_or("a record is cut short")?;
        *at += n;
        Ok(s)
    };
    while at < body.len() {
        let time_us = u64::from_le_bytes(take(&mut at, 8)?.try_into().expect("8"));
        let db_pages = u32::from_le_bytes(take(&mut at, 4)?.try_into().expect("4"));
        let k = u32::from_le_bytes(take(&mut at, 4)?.try_into().expect("4")) as usize;
        let checksum = Sum::from_bytes(take(&mut at, 32)?.try_into().expect("32"));
        let mut pages = Vec::with_capacity(k);
        for _ in 0..k {
            let pgno = u32::from_le_bytes(take(&mut at, 4)?.try_into().expect("4"));
            if pgno == 0 {
                return Err("a record names page 0".into());
            }
            pages.push((pgno, take(&mut at, ps)?.to_vec()));
        }
        records.push(Record { time_us, db_pages, checksum, pages });
    }
    if records.len() as u64 != header.commits {
        return Err(format!("its header says {} commits, it holds {}", header.commits, records.len()));
    }
    Ok(Decoded { header, records, hash: crate::fsutil::hex(hash) })
}

/// The file name of segment `seq`, relative to the chain's `seg/` directory.
pub fn rel_path(seq: u64) -> String {
    format!("{:06}/{seq:020}.{EXT}", seq / PER_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_reads_back_and_any_flipped_byte_is_found() {
        let h = Header {
            chain: "c".into(),
            seq: 1,
            prev: "00".into(),
            kind: "wal".into(),
            txn_first: 1,
            txn_last: 2,
            commits: 2,
            page_size: 512,
            checksum_before: String::new(),
            checksum_after: String::new(),
            first_time_us: 1,
            last_time_us: 2,
            wal: None,
            gap: None,
            compression: "none".into(),
            encryption: "none".into(),
            seq_last: None,
            end_hash: None,
            txns: None,
        };
        let recs = vec![
            Record { time_us: 1, db_pages: 2, checksum: Sum::default(), pages: vec![(1, vec![1; 512])] },
            Record {
                time_us: 2,
                db_pages: 3,
                checksum: Sum::default(),
                pages: vec![(3, vec![3; 512]), (2, vec![2; 512])],
            },
        ];
        let b = encode(&h, &recs);
        let d = decode(&b).unwrap();
        assert_eq!(d.records, recs);
        assert_eq!(d.hash, crate::fsutil::hex(&b[b.len() - 32..]));
        for i in [0, 9, 40, b.len() - 600, b.len() - 1] {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert!(decode(&bad).is_err(), "byte {i}");
        }
        assert!(decode(&b[..b.len() - 1]).is_err());
        assert_eq!(rel_path(4097), "000001/00000000000000004097.kfseg");
    }
}
