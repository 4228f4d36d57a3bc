//! A gzip writer that compresses on every core: the input is cut into blocks, each block is
//! compressed on a worker thread into a complete gzip member, and the members are written in
//! order. A file of several members is one valid gzip stream (RFC 1952 §2.2) that `gzip -d`,
//! `tar xzf` and `flate2::read::MultiGzDecoder` read as a whole. Memory stays bounded: at most
//! two blocks per worker are in flight.
//!
//! Keyfount's vaults are encrypted, so most of a database is random bytes that deflate cannot
//! shrink, only spend time on. Within a block, runs of 64 KiB chunks whose byte entropy says
//! "mostly random" are deflated with the RLE strategy (no match search; zlib falls back to
//! stored blocks where coding does not pay), and the other runs with the default strategy at
//! the chosen level (level 9 uses the default strategy everywhere).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use zlib_rs::{compress_bound, compress_slice, DeflateConfig, Method, ReturnCode, Strategy};

/// 1 MiB blocks: each starts without a dictionary, which costs well under 0.1 % in size.
pub const BLOCK: usize = 1 << 20;

type Job = (Vec<u8>, SyncSender<Vec<u8>>);

pub struct ParGzWriter<W: Write> {
    inner: Option<W>,
    buf: Vec<u8>,
    pending: VecDeque<Receiver<Vec<u8>>>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    max_pending: usize,
    wrote_any: bool,
}

/// Above this many bits per byte a chunk is mostly random (encrypted vault bytes): deflate's
/// match search finds nothing there, so it gets the RLE strategy, which still catches the
/// zero padding of SQLite pages at a fraction of the cost.
const RANDOM_BITS: f64 = 7.0;
const CHUNK: usize = 64 * 1024;

fn entropy(chunk: &[u8]) -> f64 {
    let mut hist = [0u32; 256];
    for &b in chunk {
        hist[b as usize] += 1;
    }
    let n = chunk.len() as f64;
    hist.iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

fn strategy(chunk: &[u8], level: u32) -> Strategy {
    if level < 9 && chunk.len() >= 4096 && entropy(chunk) > RANDOM_BITS {
        Strategy::Rle
    } else {
        Strategy::Default
    }
}

/// One block as gzip members: one per run of chunks that take the same strategy.
fn compress_block(block: &[u8], level: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.len() + block.len() / 64 + 64);
    if block.is_empty() {
        member(block, level, Strategy::Default, &mut out);
        return out;
    }
    let kinds: Vec<Strategy> = block.chunks(CHUNK).map(|c| strategy(c, level)).collect();
    let mut start = 0;
    for (i, k) in kinds.iter().enumerate() {
        if i + 1 == kinds.len() || kinds[i + 1] != *k {
            let end = ((i + 1) * CHUNK).min(block.len());
            member(&block[start..end], level, *k, &mut out);
            start = end;
        }
    }
    out
}

/// A complete gzip member (window_bits 31: deflate with a gzip header and trailer).
fn member(data: &[u8], level: u32, strategy: Strategy, out: &mut Vec<u8>) {
    let config = DeflateConfig {
        level: level as i32,
        method: Method::Deflated,
        window_bits: 31,
        mem_level: 8,
        strategy,
    };
    let at = out.len();
    out.resize(at + compress_bound(data.len()) + 64, 0);
    let (written, rc) = compress_slice(&mut out[at..], data, config);
    assert_eq!(rc, ReturnCode::Ok, "deflate into a buffer of compress_bound bytes cannot fail");
    let n = written.len();
    out.truncate(at + n);
}

impl<W: Write> ParGzWriter<W> {
    pub fn new(inner: W, level: u32, threads: usize) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || loop {
                    let job = rx.lock().map(|r| r.recv());
                    let Ok(Ok((block, reply))) = job else { return };
                    let _ = reply.send(compress_block(&block, level));
                })
            })
            .collect();
        ParGzWriter {
            inner: Some(inner),
            buf: Vec::with_capacity(BLOCK),
            pending: VecDeque::new(),
            jobs: Some(tx),
            workers,
            max_pending: threads * 2,
            wrote_any: false,
        }
    }

    fn submit(&mut self) -> io::Result<()> {
        if self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
        let (reply, rx) = mpsc::sync_channel(1);
        self.jobs
            .as_ref()
            .expect("writer not finished")
            .send((block, reply))
            .map_err(|_| io::Error::other("a compression thread stopped"))?;
        self.pending.push_back(rx);
        self.wrote_any = true;
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let out = rx.recv().map_err(|_| io::Error::other("a compression thread stopped"))?;
            self.inner.as_mut().expect("writer not finished").write_all(&out)?;
        }
        Ok(())
    }

    /// Compress what is left, write every member, and hand back the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() || !self.wrote_any {
            self.submit()?;
        }
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        let mut inner = self.inner.take().expect("writer not finished");
        inner.flush()?;
        Ok(inner)
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = BLOCK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BLOCK {
            self.submit()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParGzWriter<W> {
    fn drop(&mut self) {
        self.jobs.take();
        self.pending.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn round_trips_through_a_multi_member_decoder() {
        let mut data = Vec::new();
        for i in 0..(3 * BLOCK + 12345) {
            data.push((i * 7 % 251) as u8);
        }
        let mut w = ParGzWriter::new(Vec::new(), 6, 2);
        for chunk in data.chunks(10_000) {
            w.write_all(chunk).unwrap();
        }
        let gz = w.finish().unwrap();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn random_and_text_runs_round_trip_and_text_shrinks() {
        let mut data = Vec::new();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for i in 0..(2 * BLOCK + 777) {
            // Alternate 200 KiB of noise with 100 KiB of text.
            if (i / (100 * 1024)) % 3 == 2 {
                data.push(b"keyfount audit row "[i % 19]);
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                data.push((x >> 24) as u8);
            }
        }
        let mut w = ParGzWriter::new(Vec::new(), 6, 2);
        w.write_all(&data).unwrap();
        let gz = w.finish().unwrap();
        assert!(
            gz.len() < data.len() * 75 / 100,
            "text runs were not compressed: {} of {}",
            gz.len(),
            data.len()
        );
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        // The system's gzip reads it too.
        let mut child = std::process::Command::new("gzip")
            .args(["-dc"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&gz).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, data);
    }

    #[test]
    fn empty_input_is_a_valid_gzip_stream() {
        let gz = ParGzWriter::new(Vec::new(), 6, 2).finish().unwrap();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
        assert!(back.is_empty());
    }
}
