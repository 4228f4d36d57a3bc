//! One block of the archive as one gzip member, encoded page by page by what the page holds.
//!
//! A Keyfount database is mostly encrypted vault bytes, which deflate cannot shrink, only spend
//! time on, mixed page by page with text (the audit log, hex ids) that it shrinks well. Each
//! 4 KiB page (on the database file's own page grid, when the writer knows where the file
//! starts) is looked at once, and:
//!
//! - text (under 6.5 bits of entropy per byte), and pages holding long runs of bytes that also
//!   occur in the 32 KiB before them, go through zlib's match search at the chosen level, each
//!   run of such pages as one piece. Cell copies that B-tree page splits leave behind look
//!   random byte by byte but repeat: a piece with such repeats gets the bytes before it as its
//!   dictionary, so that deflate finds them;
//! - the other pages (random bytes) are written as stored deflate blocks, and their runs of one
//!   byte value (the unused space of SQLite pages) as one literal and copies at distance 1 in a
//!   fixed-Huffman block: no match search, no Huffman coding of random bytes.
//!
//! The pieces are raw deflate, each ended on a byte boundary (zlib's sync flush), so they join
//! into one deflate stream, which ends with an empty final stored block; then the CRC-32 and
//! length of the block (RFC 1951, RFC 1952). Level 9 sends every page through the match search.

use std::io;

use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Method, Strategy};

/// The page size this classifies by: SQLite's default, Keyfount's.
pub const PAGE: usize = 4096;
/// Below this many bits per byte a page is text.
const TEXT_BITS: f64 = 6.5;
/// A page with at least this many bytes in repeats of its 32 KiB past needs the match search.
const REPEATED: usize = PAGE / 16;
/// Runs of one byte value at least this long are coded as copies; shorter ones are stored.
const MIN_RUN: usize = 32;
/// Deflate's window.
const WINDOW: usize = 32 * 1024;
/// gzip header: magic, deflate, no flags, no time, no extra flags, Unix.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

/// Random 64-bit values per byte for the gear hash, fixed at compile time (xorshift).
const GEAR: [u64; 256] = gear();

const fn gear() -> [u64; 256] {
    let mut g = [0u64; 256];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut i = 0;
    while i < 256 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        g[i] = x;
        i += 1;
    }
    g
}

/// Anchor slots: a gear hash (it covers the 64 bytes before a position) and where it was seen.
const SLOTS: usize = 4096;

/// Encodes blocks; one per compression thread (it holds zlib's state, about 300 KiB).
pub struct Encoder {
    level: u32,
    zlib: Deflate,
    anchors: Vec<(u64, u32)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Random bytes: stored, runs coded as copies.
    Plain,
    /// Text: zlib's match search.
    Text,
    /// Repeats of the bytes before it: zlib's match search with them as the dictionary.
    Repeats,
}

impl Encoder {
    pub fn new(level: u32) -> Self {
        let config = DeflateConfig {
            level: level.clamp(1, 9) as i32,
            method: Method::Deflated,
            window_bits: -15,
            mem_level: 8,
            strategy: Strategy::Default,
        };
        Encoder { level, zlib: Deflate::new_with_config(config), anchors: vec![(0, 0); SLOTS] }
    }

    /// `block` as one gzip member; its pages start at `phase` (the first page may be partial).
    #[cfg(test)]
    pub fn encode(&mut self, block: &[u8], phase: usize) -> io::Result<Vec<u8>> {
        self.encode_into(block, phase, Vec::with_capacity(block.len() + block.len() / 64 + 64))
    }

    /// [`Encoder::encode`] into `out` (cleared first): a buffer from the pipeline's pool.
    pub fn encode_into(&mut self, block: &[u8], phase: usize, mut out: Vec<u8>) -> io::Result<Vec<u8>> {
        out.clear();
        let mut bits = Bits { out, acc: 0, n: 0 };
        bits.out.extend_from_slice(&GZIP_HEADER);
        self.anchors.fill((0, 0));
        let pages = pages(block.len(), phase);
        let kinds: Vec<Kind> = pages.iter().map(|&(s, e)| self.kind(&block[s..e], s)).collect();
        let mut i = 0;
        while i < pages.len() {
            // A run of plain pages, or of pages for the match search.
            let plain_run = kinds[i] == Kind::Plain;
            let j = (i..pages.len()).find(|&j| (kinds[j] == Kind::Plain) != plain_run).unwrap_or(pages.len());
            let (start, end) = (pages[i].0, pages[j - 1].1);
            if plain_run {
                plain(&block[start..end], &mut bits);
            } else {
                let repeats = kinds[i..j].contains(&Kind::Repeats);
                let dict = if repeats { &block[start.saturating_sub(WINDOW)..start] } else { &[][..] };
                self.piece(&block[start..end], dict, &mut bits)?;
            }
            i = j;
        }
        // An empty final stored block ends the deflate stream.
        bits.put(1, 1);
        bits.put(0, 2);
        bits.align();
        bits.out.extend_from_slice(&[0, 0, 0xff, 0xff]);
        bits.out.extend_from_slice(&zlib_rs::crc32::crc32(0, block).to_le_bytes());
        bits.out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        Ok(bits.out)
    }

    /// What a page holds; `at` is its offset in the block (the anchors remember positions).
    fn kind(&mut self, page: &[u8], at: usize) -> Kind {
        if self.level >= 9 {
            return Kind::Text;
        }
        let (hist, repeated) = self.scan(page, at);
        if repeated >= REPEATED {
            Kind::Repeats
        } else if entropy(&hist, page.len()) < TEXT_BITS {
            Kind::Text
        } else {
            Kind::Plain
        }
    }

    /// One pass over a page: its byte histogram, and how many of its bytes repeat bytes of the
    /// 32 KiB before them.
    fn scan(&mut self, page: &[u8], at: usize) -> ([u32; 256], usize) {
        let mut hist = [0u32; 256];
        let mut h: u64 = 0;
        let (mut repeated, mut last) = (0, 0);
        for (i, &b) in page.iter().enumerate() {
            hist[usize::from(b)] += 1;
            h = (h << 1).wrapping_add(GEAR[usize::from(b)]);
            // About one position in 64 is an anchor; a copy of 64 bytes or more has the same
            // anchors, with the same hashes, as its original.
            if h >> 58 == 0 {
                repeated += self.anchor(h, at + i, i, &mut last);
            }
        }
        (hist, repeated)
    }

    /// Remember an anchor at block offset `pos` (offset `i` in its page, whose previous anchor
    /// was at `last`); the bytes since that one when the same hash was seen in the window.
    fn anchor(&mut self, h: u64, pos: usize, i: usize, last: &mut usize) -> usize {
        let pos = pos as u32 + 1;
        let slot = &mut self.anchors[h as usize % SLOTS];
        let seen = slot.0 == h && slot.1 != 0 && pos.checked_sub(slot.1).is_some_and(|d| d <= WINDOW as u32);
        *slot = (h, pos);
        // The first 64 bytes of a page have no full context: their hashes say nothing.
        let span = if seen && i >= 64 { i - *last } else { 0 };
        *last = i;
        span
    }

    /// `data` through zlib as raw deflate (with `dict` as its past), ended with a sync flush.
    fn piece(&mut self, data: &[u8], dict: &[u8], bits: &mut Bits) -> io::Result<()> {
        if bits.n > 0 {
            // zlib's output starts on a byte boundary: an empty stored block gets there.
            bits.stored(&[]);
        }
        self.zlib.reset();
        if !dict.is_empty() {
            self.zlib.set_dictionary(dict).map_err(zlib_err)?;
        }
        let mut input = data;
        loop {
            let at = bits.out.len();
            let room = input.len() + input.len() / 8 + 1024;
            bits.out.resize(at + room, 0);
            let (read0, wrote0) = (self.zlib.total_in(), self.zlib.total_out());
            self.zlib.compress(input, &mut bits.out[at..], DeflateFlush::SyncFlush).map_err(zlib_err)?;
            let wrote = (self.zlib.total_out() - wrote0) as usize;
            bits.out.truncate(at + wrote);
            input = &input[(self.zlib.total_in() - read0) as usize..];
            // Done when all input is in and the flush did not run out of room.
            if input.is_empty() && wrote < room {
                return Ok(());
            }
        }
    }
}

/// Bits per byte of a page with this byte histogram (order-0 entropy).
fn entropy(hist: &[u32; 256], n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    let sum: f64 = hist.iter().filter(|&&c| c > 0).map(|&c| f64::from(c) * f64::from(c).log2()).sum();
    n.log2() - sum / n
}

fn zlib_err(e: zlib_rs::DeflateError) -> io::Error {
    io::Error::other(format!("deflate failed: {}", e.as_str()))
}

/// The pages of a block of `len` bytes whose first page boundary is at `phase`.
fn pages(len: usize, phase: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(len / PAGE + 2);
    let mut start = 0;
    let mut end = match phase % PAGE {
        0 => PAGE,
        p => p,
    };
    while start < len {
        out.push((start, end.min(len)));
        start = end;
        end += PAGE;
    }
    out
}

/// Random bytes: stored blocks, and runs of one byte value as copies.
fn plain(data: &[u8], bits: &mut Bits) {
    let mut from = 0;
    while let Some((start, len)) = next_run(data, from) {
        if start > from {
            bits.stored(&data[from..start]);
        }
        bits.run(data[start], len);
        from = start + len;
    }
    if from < data.len() {
        bits.stored(&data[from..]);
    }
}

/// The next run of at least [`MIN_RUN`] equal bytes at or after `from`: (start, length).
fn next_run(data: &[u8], from: usize) -> Option<(usize, usize)> {
    const W: usize = 8;
    // A run of MIN_RUN bytes covers at least three whole aligned 8-byte words: look at every
    // second word for one made of a single byte value, then measure the run around it.
    let mut w = from.div_ceil(W) * W;
    while w + W <= data.len() {
        let v = data[w];
        let word = u64::from_ne_bytes(data[w..w + W].try_into().unwrap_or_default());
        if word != u64::from(v) * 0x0101_0101_0101_0101 {
            w += 2 * W;
            continue;
        }
        let start = w - data[from..w].iter().rev().take_while(|&&b| b == v).count();
        let end = w + data[w..].iter().take_while(|&&b| b == v).count();
        if end - start >= MIN_RUN {
            return Some((start, end - start));
        }
        w = end.div_ceil(W) * W;
    }
    None
}

/// Deflate's bit order: values least significant bit first, Huffman codes most significant
/// bit first (RFC 1951 §3.1.1).
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

/// Lengths 3 to 258: the base of each length code (257 + index) and its extra bits.
const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195,
    227, 258,
];
const LEN_EXTRA: [u32; 29] =
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];

impl Bits {
    fn put(&mut self, value: u32, bits: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    fn code(&mut self, code: u32, len: u32) {
        self.put(code.reverse_bits() >> (32 - len), len);
    }

    fn align(&mut self) {
        if self.n > 0 {
            self.out.push(self.acc as u8);
            self.acc = 0;
            self.n = 0;
        }
    }

    /// Non-final stored blocks of at most 65,535 bytes each (one, empty, for no data).
    fn stored(&mut self, data: &[u8]) {
        let mut rest = data;
        loop {
            let (now, later) = rest.split_at(rest.len().min(65_535));
            self.put(0, 3);
            self.align();
            let len = now.len() as u16;
            self.out.extend_from_slice(&len.to_le_bytes());
            self.out.extend_from_slice(&(!len).to_le_bytes());
            self.out.extend_from_slice(now);
            rest = later;
            if rest.is_empty() {
                return;
            }
        }
    }

    /// A fixed-Huffman literal/length symbol.
    fn symbol(&mut self, s: u32) {
        match s {
            0..=143 => self.code(0x30 + s, 8),
            144..=255 => self.code(0x190 + s - 144, 9),
            256..=279 => self.code(s - 256, 7),
            _ => self.code(0xc0 + s - 280, 8),
        }
    }

    /// A copy of `len` (3 to 258) bytes from distance 1.
    fn copy(&mut self, len: usize) {
        let i = LEN_BASE.iter().rposition(|&b| usize::from(b) <= len).unwrap_or(0);
        self.symbol(257 + i as u32);
        self.put((len - usize::from(LEN_BASE[i])) as u32, LEN_EXTRA[i]);
        self.code(0, 5);
    }

    /// `len` (at least 1) bytes of value `v`: a non-final fixed-Huffman block.
    fn run(&mut self, v: u8, len: usize) {
        self.put(0, 1);
        self.put(1, 2);
        self.symbol(u32::from(v));
        let mut left = len - 1;
        while left > 0 {
            if left < 3 {
                for _ in 0..left {
                    self.symbol(u32::from(v));
                }
                break;
            }
            // Never leave 1 or 2 bytes for the last copy.
            let n = if left > 258 && left - 258 < 3 { left - 3 } else { left.min(258) };
            self.copy(n);
            left -= n;
        }
        self.symbol(256);
    }
}

#[cfg(test)]
mod tests {
    use super::{pages, Encoder, PAGE};
    use proptest::prelude::*;
    use std::io::Read;

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(gz).read_to_end(&mut back).unwrap();
        back
    }

    fn random(rng: &mut u64, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                *rng ^= *rng << 13;
                *rng ^= *rng >> 7;
                *rng ^= *rng << 17;
                (*rng >> 24) as u8
            })
            .collect()
    }

    fn text(rng: &mut u64, n: usize) -> Vec<u8> {
        let mut t = Vec::new();
        while t.len() < n {
            let id: String = random(rng, 16).iter().map(|b| format!("{b:02x}")).collect();
            t.extend_from_slice(
                format!(r#"{{"kind":"sync.push","device":"{id}","ua":"Keyfount/3.2.1"}}"#).as_bytes(),
            );
        }
        t.truncate(n);
        t
    }

    /// A page of random bytes whose last `free` bytes are zero, as SQLite leaves them.
    fn random_page(rng: &mut u64, free: usize) -> Vec<u8> {
        let mut p = random(rng, PAGE);
        p[PAGE - free..].fill(0);
        p
    }

    fn level6(data: &[u8]) -> usize {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        std::io::Write::write_all(&mut gz, data).unwrap();
        gz.finish().unwrap().len()
    }

    #[test]
    fn runs_of_every_length_round_trip() {
        let mut rng = 7;
        for len in [1, 2, 3, 4, 31, 32, 33, 258, 259, 260, 261, 262, 516, 517, 518, 519, 4096, 70_000] {
            for v in [0u8, 0x8f, 0xff] {
                let mut data = random(&mut rng, 100);
                data.extend(std::iter::repeat_n(v, len));
                data.extend(random(&mut rng, 50));
                let gz = Encoder::new(6).encode(&data, 0).unwrap();
                assert_eq!(gunzip(&gz), data, "a run of {len} bytes {v:#x}");
            }
        }
    }

    #[test]
    fn pages_follow_the_grid() {
        assert_eq!(pages(0, 0), vec![]);
        assert_eq!(pages(10_000, 0), vec![(0, 4096), (4096, 8192), (8192, 10_000)]);
        assert_eq!(pages(5000, 1536), vec![(0, 1536), (1536, 5000)]);
        assert_eq!(pages(100, 1536), vec![(0, 100)]);
    }

    #[test]
    fn random_pages_are_stored_and_their_zeros_coded() {
        let mut rng = 11;
        let data: Vec<u8> = (0..64).flat_map(|i| random_page(&mut rng, 100 + i * 20)).collect();
        let zeros: usize = (0..64).map(|i| 100 + i * 20).sum();
        let gz = Encoder::new(6).encode(&data, 0).unwrap();
        assert_eq!(gunzip(&gz), data);
        // Stored bytes, a few bytes per run and per stored block: nothing like a Huffman
        // pass over random bytes, which would not shrink them anyway.
        assert!(
            gz.len() < data.len() - zeros + 64 * 16,
            "{} bytes for {} random",
            gz.len(),
            data.len() - zeros
        );
        assert!(gz.len() <= level6(&data) * 101 / 100, "{} vs level 6: {}", gz.len(), level6(&data));
    }

    #[test]
    fn text_between_random_pages_is_compressed_as_well_as_by_gzip() {
        let mut rng = 13;
        let mut data = Vec::new();
        for i in 0..96 {
            let page = if i % 3 == 1 { text(&mut rng, PAGE) } else { random_page(&mut rng, 300) };
            data.extend(page);
        }
        let gz = Encoder::new(6).encode(&data, 0).unwrap();
        assert_eq!(gunzip(&gz), data);
        assert!(gz.len() <= level6(&data) * 102 / 100, "{} vs level 6: {}", gz.len(), level6(&data));
    }

    #[test]
    fn stale_copies_of_random_cells_are_found() {
        // Random pages, each ending with a copy of 1,500 bytes of the page before it: random
        // byte by byte, but repeated within deflate's window.
        let mut rng = 17;
        let mut data: Vec<u8> = random(&mut rng, PAGE);
        for _ in 0..60 {
            let copy = data[data.len() - 3000..data.len() - 1500].to_vec();
            data.extend(random(&mut rng, PAGE - 1500));
            data.extend(copy);
        }
        let gz = Encoder::new(6).encode(&data, 0).unwrap();
        assert_eq!(gunzip(&gz), data);
        assert!(gz.len() < data.len() * 70 / 100, "{} of {}", gz.len(), data.len());
        assert!(gz.len() <= level6(&data) * 102 / 100, "{} vs level 6: {}", gz.len(), level6(&data));
    }

    #[test]
    fn the_system_gzip_reads_a_member() {
        let mut rng = 19;
        let mut data = text(&mut rng, 3000);
        data.extend(random_page(&mut rng, 1000));
        data.extend(std::iter::repeat_n(0u8, 5000));
        let gz = Encoder::new(6).encode(&data, 512).unwrap();
        assert_eq!(crate::archive::pargz::tests::system_gunzip(gz), data);
    }

    /// A block made of random, text, run and repeated pieces of any length.
    fn block() -> impl Strategy<Value = Vec<u8>> {
        let piece = (0u8..4, 0usize..9000, any::<u64>(), any::<u8>()).prop_map(|(kind, len, seed, v)| {
            let mut rng = seed | 1;
            match kind {
                0 => random(&mut rng, len),
                1 => text(&mut rng, len),
                2 => vec![v; len],
                _ => {
                    let r = random(&mut rng, len.min(3000));
                    [r.clone(), random(&mut rng, len % 700), r].concat()
                }
            }
        });
        proptest::collection::vec(piece, 0..40).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_block_round_trips(data in block(), phase in 0usize..PAGE, level in 1u32..=9) {
            let gz = Encoder::new(level).encode(&data, phase).unwrap();
            prop_assert_eq!(gunzip(&gz), data);
        }
    }
}
