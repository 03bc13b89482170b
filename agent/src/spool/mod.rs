//! A disk spool for stream sinks: records a collector could not take wait here, in order, and
//! survive a restart.
//!
//! Layout: a directory of segment files `NNNNNNNNNNNNNNNNNNNN.seg` (ids increase) and one
//! `ack` file. A segment is a sequence of frames:
//!
//! ```text
//! len: u32 LE | crc32: u32 LE (of ts and payload) | ts_us: u64 LE | payload: len bytes
//! ```
//!
//! Invariants:
//! - Appends go to the newest segment; a segment past `segment_bytes` is closed and a new one
//!   started. The total stays under `max_bytes`: at the limit the **oldest** segment is
//!   deleted, read or not, and its records counted as dropped (`full`).
//! - `ack` holds the position (segment id, offset) up to which the consumer confirmed
//!   delivery; it is replaced atomically (write a temporary file, rename). Segments wholly
//!   before it are deleted. After a restart reading resumes at the ack: records read but not
//!   acknowledged are read again (at least once), records acknowledged are never read again.
//! - Opening scans every segment from the ack on. A frame whose length runs past the end of
//!   the file, or whose checksum does not match, ends its segment: the file is truncated
//!   there (a torn tail after `kill -9`), every whole record before it is kept, and what was
//!   cut is reported in [`Recovery`] and logged.
//!
//! The spool does no I/O on its own: the owner calls [`Spool::append`], [`Spool::read`],
//! [`Spool::ack`] and [`Spool::sync`]. Data is durable after `sync` (fdatasync).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Bytes of a frame header.
pub const FRAME_HEADER: usize = 16;

/// Largest payload a frame may carry (a HEP packet is at most 65535 bytes).
pub const MAX_PAYLOAD: usize = 1 << 20;

const ACK_FILE: &str = "ack";
const ACK_TMP: &str = "ack.tmp";
const SEGMENT_EXT: &str = "seg";

/// Why the spool failed.
#[derive(Debug, Error)]
pub enum SpoolError {
    /// A filesystem call failed.
    #[error("spool {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A record larger than [`MAX_PAYLOAD`] or than the spool itself.
    #[error("record of {len} bytes does not fit the spool")]
    TooLarge { len: usize },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Sizes of a spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Bytes on disk at most (all segments).
    pub max_bytes: u64,
    /// A segment is closed once it reaches this many bytes.
    pub segment_bytes: u64,
}

impl SpoolConfig {
    /// `max_bytes` with segments of an eighth of it (at least 64 KiB, at most 64 MiB).
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        SpoolConfig {
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(64 << 10, 64 << 20),
        }
    }
}

/// What opening found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segments found.
    pub segments: usize,
    /// Records waiting (after the ack position).
    pub records: u64,
    /// Bytes cut from segment tails: torn or corrupt frames.
    pub discarded_bytes: u64,
    /// Segments whose tail was cut.
    pub torn_segments: usize,
}

/// A position in the spool: segment id and byte offset within it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    bytes: u64,
    records: u64,
    /// Timestamp of its first record, microseconds.
    first_ts: Option<u64>,
}

/// One spooled record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spooled {
    pub ts_us: u64,
    pub payload: Vec<u8>,
    /// Position just after this record: acknowledge it to confirm this and every earlier one.
    pub end: Position,
}

/// Counters of a spool, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Records not yet acknowledged.
    pub records: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Timestamp of the oldest record on disk, microseconds.
    pub oldest_ts_us: Option<u64>,
    /// Records deleted unread because the spool was full.
    pub dropped_full: u64,
}

/// The spool of one sink.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    config: SpoolConfig,
    segments: VecDeque<Segment>,
    writer: Option<BufWriter<File>>,
    /// Where the next read starts.
    read: Position,
    /// Open segment being read, and the offset its buffered reader is at.
    reader: Option<(u64, u64, BufReader<File>)>,
    ack: Position,
    /// Records after `ack`.
    pending: u64,
    /// End positions of the records read but not acknowledged, oldest first.
    in_flight: VecDeque<Position>,
    dropped_full: u64,
    scratch: Vec<u8>,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, repairing torn tails.
    pub fn open(dir: &Path, config: SpoolConfig) -> Result<(Spool, Recovery), SpoolError> {
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let mut ids = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
            let entry = entry.map_err(io_err("list", dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name
                .strip_suffix(".seg")
                .and_then(|n| n.parse::<u64>().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let ack = read_ack(dir).unwrap_or_default();

        let mut recovery = Recovery {
            segments: ids.len(),
            ..Recovery::default()
        };
        let mut segments = VecDeque::new();
        let mut pending = 0;
        for id in ids {
            let path = segment_path(dir, id);
            if id < ack.segment {
                // Wholly acknowledged: a deletion the last run did not finish.
                let _ = fs::remove_file(&path);
                continue;
            }
            let scan = scan_segment(&path)?;
            if scan.valid_len < scan.file_len {
                recovery.discarded_bytes += scan.file_len - scan.valid_len;
                recovery.torn_segments += 1;
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err("open", &path))?;
                file.set_len(scan.valid_len)
                    .map_err(io_err("truncate", &path))?;
                file.sync_data().map_err(io_err("sync", &path))?;
                tracing::warn!(
                    segment = id,
                    discarded_bytes = scan.file_len - scan.valid_len,
                    kept_records = scan.records,
                    "spool: torn or corrupt tail cut"
                );
            }
            if scan.valid_len == 0 {
                // Nothing whole in it: a segment started just before a crash.
                let _ = fs::remove_file(&path);
                continue;
            }
            pending += if id == ack.segment {
                scan.ends.iter().filter(|&&end| end > ack.offset).count() as u64
            } else {
                scan.records
            };
            segments.push_back(Segment {
                id,
                bytes: scan.valid_len,
                records: scan.records,
                first_ts: scan.first_ts,
            });
        }
        recovery.records = pending;

        // Reading starts at the ack, or at the first segment when the ack's is gone.
        let read = match segments.front() {
            Some(first) if first.id > ack.segment => Position {
                segment: first.id,
                offset: 0,
            },
            _ => ack,
        };
        let spool = Spool {
            dir: dir.to_path_buf(),
            config,
            segments,
            writer: None,
            read,
            reader: None,
            ack: read,
            pending,
            in_flight: VecDeque::new(),
            dropped_full: 0,
            scratch: Vec::new(),
        };
        if recovery.records > 0 || recovery.discarded_bytes > 0 {
            tracing::info!(
                records = recovery.records,
                discarded_bytes = recovery.discarded_bytes,
                "spool: resuming"
            );
        }
        Ok((spool, recovery))
    }

    /// Appends one record. The oldest segments go when the spool is full.
    pub fn append(&mut self, ts_us: u64, payload: &[u8]) -> Result<(), SpoolError> {
        let frame_len = (FRAME_HEADER + payload.len()) as u64;
        if payload.len() > MAX_PAYLOAD || frame_len > self.config.max_bytes {
            return Err(SpoolError::TooLarge { len: payload.len() });
        }
        let rotate = match self.segments.back() {
            None => true,
            Some(last) => last.bytes > 0 && last.bytes + frame_len > self.config.segment_bytes,
        };
        if rotate || self.writer.is_none() {
            self.open_writer(rotate)?;
        }
        while self.bytes() + frame_len > self.config.max_bytes && self.segments.len() > 1 {
            self.evict_oldest()?;
        }

        let mut header = [0u8; FRAME_HEADER];
        let ts = ts_us.to_le_bytes();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&ts);
        crc.update(payload);
        header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
        header[8..].copy_from_slice(&ts);
        let id = self.segments.back().map(|s| s.id).unwrap_or_default();
        let writer = self
            .writer
            .as_mut()
            .ok_or(SpoolError::TooLarge { len: 0 })?;
        let path = segment_path(&self.dir, id);
        writer
            .write_all(&header)
            .and_then(|()| writer.write_all(payload))
            .map_err(io_err("write", &path))?;
        if let Some(last) = self.segments.back_mut() {
            last.bytes += frame_len;
            last.records += 1;
            last.first_ts.get_or_insert(ts_us);
        }
        self.pending += 1;
        Ok(())
    }

    /// Flushes appended records to the file system and to disk (fdatasync).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if let Some(w) = self.writer.as_mut() {
            let path = self.dir.clone();
            w.flush().map_err(io_err("flush", &path))?;
            w.get_ref().sync_data().map_err(io_err("sync", &path))?;
        }
        Ok(())
    }

    /// Reads up to `max` records after the last one read, in append order.
    pub fn read(&mut self, max: usize) -> Result<Vec<Spooled>, SpoolError> {
        if let Some(w) = self.writer.as_mut() {
            let dir = self.dir.clone();
            w.flush().map_err(io_err("flush", &dir))?;
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some(seg) = self.segments.iter().find(|s| s.id >= self.read.segment) else {
                break;
            };
            let (seg_id, seg_bytes) = (seg.id, seg.bytes);
            if seg_id != self.read.segment {
                self.read = Position {
                    segment: seg_id,
                    offset: 0,
                };
            }
            if self.read.offset >= seg_bytes {
                match self.segments.iter().find(|s| s.id > seg_id) {
                    Some(next) => {
                        self.read = Position {
                            segment: next.id,
                            offset: 0,
                        };
                        continue;
                    }
                    None => break,
                }
            }
            let record = match self.read_one(seg_id) {
                Ok(r) => r,
                Err(e) => {
                    // The reader's position is unknown now: reopen on the next read.
                    self.reader = None;
                    return Err(e);
                }
            };
            self.read.offset = record.end.offset;
            self.in_flight.push_back(record.end);
            out.push(record);
        }
        Ok(out)
    }

    fn read_one(&mut self, seg_id: u64) -> Result<Spooled, SpoolError> {
        let path = segment_path(&self.dir, seg_id);
        if self.reader.as_ref().is_none_or(|(id, _, _)| *id != seg_id) {
            let file = File::open(&path).map_err(io_err("open", &path))?;
            self.reader = Some((seg_id, 0, BufReader::with_capacity(256 << 10, file)));
        }
        let Some((_, at, file)) = self.reader.as_mut() else {
            return Err(SpoolError::TooLarge { len: 0 });
        };
        if *at != self.read.offset {
            file.seek(SeekFrom::Start(self.read.offset))
                .map_err(io_err("seek", &path))?;
        }
        let mut header = [0u8; FRAME_HEADER];
        file.read_exact(&mut header)
            .map_err(io_err("read", &path))?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let ts_us = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
        self.scratch.resize(len, 0);
        file.read_exact(&mut self.scratch)
            .map_err(io_err("read", &path))?;
        *at = self.read.offset + (FRAME_HEADER + len) as u64;
        Ok(Spooled {
            ts_us,
            payload: self.scratch.clone(),
            end: Position {
                segment: seg_id,
                offset: self.read.offset + (FRAME_HEADER + len) as u64,
            },
        })
    }

    /// Confirms delivery of every record read up to `upto` (a [`Spooled::end`]): they are
    /// never read again, and segments wholly before it are deleted.
    pub fn ack(&mut self, upto: Position) -> Result<(), SpoolError> {
        let mut acked = 0;
        while self.in_flight.front().is_some_and(|&end| end <= upto) {
            self.in_flight.pop_front();
            acked += 1;
        }
        if acked == 0 || upto <= self.ack {
            return Ok(());
        }
        self.pending = self.pending.saturating_sub(acked);
        self.ack = upto;
        write_ack(&self.dir, upto)?;
        while let Some(first) = self.segments.front() {
            // The newest segment stays while it is written to.
            let done = self.segments.len() > 1
                && (first.id < upto.segment
                    || (first.id == upto.segment && upto.offset >= first.bytes));
            if !done {
                break;
            }
            let id = first.id;
            self.segments.pop_front();
            self.remove_segment(id)?;
        }
        Ok(())
    }

    /// Forgets what was read but not acknowledged: the next read starts at the ack again
    /// (a connection was lost with those records in flight).
    pub fn rewind(&mut self) {
        self.read = self.ack;
        self.in_flight.clear();
    }

    /// True when every record was read (acknowledged or not).
    pub fn is_drained(&self) -> bool {
        self.pending == self.in_flight.len() as u64
    }

    /// Counters for metrics.
    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            records: self.pending,
            bytes: self.bytes(),
            oldest_ts_us: self.segments.iter().find_map(|s| s.first_ts),
            dropped_full: self.dropped_full,
        }
    }

    fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    fn open_writer(&mut self, new_segment: bool) -> Result<(), SpoolError> {
        if let Some(mut w) = self.writer.take() {
            let _ = w.flush();
        }
        let id = match (new_segment, self.segments.back()) {
            (false, Some(last)) => last.id,
            (_, Some(last)) => last.id + 1,
            // A fresh segment never reuses the acknowledged one's id.
            (_, None) => self.ack.segment.max(self.read.segment) + 1,
        };
        let path = segment_path(&self.dir, id);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        if self.segments.back().is_none_or(|s| s.id != id) {
            self.segments.push_back(Segment {
                id,
                bytes: 0,
                records: 0,
                first_ts: None,
            });
        }
        self.writer = Some(BufWriter::with_capacity(1 << 20, file));
        Ok(())
    }

    fn evict_oldest(&mut self) -> Result<(), SpoolError> {
        let Some(first) = self.segments.pop_front() else {
            return Ok(());
        };
        // Records of it not yet acknowledged are lost.
        let unacked = if first.id == self.ack.segment {
            self.count_after(&first, self.ack.offset)
        } else if first.id > self.ack.segment {
            first.records
        } else {
            0
        };
        self.dropped_full += unacked;
        self.pending = self.pending.saturating_sub(unacked);
        self.in_flight.retain(|p| p.segment != first.id);
        let next = self.segments.front().map(|s| s.id).unwrap_or(first.id + 1);
        let next_pos = Position {
            segment: next,
            offset: 0,
        };
        if self.read < next_pos {
            self.read = next_pos;
        }
        if self.ack < next_pos {
            self.ack = next_pos;
            write_ack(&self.dir, next_pos)?;
        }
        tracing::warn!(
            segment = first.id,
            records = unacked,
            "spool full: oldest segment deleted"
        );
        self.remove_segment(first.id)
    }

    /// Records of `seg` that end after `offset`.
    fn count_after(&self, seg: &Segment, offset: u64) -> u64 {
        if offset == 0 {
            return seg.records;
        }
        scan_segment(&segment_path(&self.dir, seg.id))
            .map(|s| s.ends.iter().filter(|&&e| e > offset).count() as u64)
            .unwrap_or(0)
    }

    fn remove_segment(&mut self, id: u64) -> Result<(), SpoolError> {
        if self.reader.as_ref().is_some_and(|(r, _, _)| *r == id) {
            self.reader = None;
        }
        let path = segment_path(&self.dir, id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }

    /// Path of the segment holding the newest records (tests cut its tail).
    pub fn newest_segment_path(&self) -> Option<PathBuf> {
        self.segments.back().map(|s| segment_path(&self.dir, s.id))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(w) = self.writer.as_mut() {
            let _ = w.flush();
        }
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.{SEGMENT_EXT}"))
}

/// What a segment file holds.
struct Scan {
    file_len: u64,
    /// Bytes of whole, valid frames from the start.
    valid_len: u64,
    records: u64,
    first_ts: Option<u64>,
    /// End offset of each valid frame.
    ends: Vec<u64>,
}

fn scan_segment(path: &Path) -> Result<Scan, SpoolError> {
    let data = fs::read(path).map_err(io_err("read", path))?;
    let mut at = 0usize;
    let mut ends = Vec::new();
    let mut first_ts = None;
    while let Some(header) = data.get(at..at + FRAME_HEADER) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_PAYLOAD {
            break;
        }
        let Some(payload) = data.get(at + FRAME_HEADER..at + FRAME_HEADER + len) else {
            break;
        };
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[8..16]);
        hasher.update(payload);
        if hasher.finalize() != crc {
            break;
        }
        first_ts.get_or_insert(u64::from_le_bytes(
            header[8..16].try_into().unwrap_or_default(),
        ));
        at += FRAME_HEADER + len;
        ends.push(at as u64);
    }
    Ok(Scan {
        file_len: data.len() as u64,
        valid_len: at as u64,
        records: ends.len() as u64,
        first_ts,
        ends,
    })
}

fn read_ack(dir: &Path) -> Option<Position> {
    let data = fs::read(dir.join(ACK_FILE)).ok()?;
    let bytes: [u8; 20] = data.get(..20)?.try_into().ok()?;
    let crc = u32::from_le_bytes(bytes[16..20].try_into().ok()?);
    if crc32fast::hash(&bytes[..16]) != crc {
        return None;
    }
    Some(Position {
        segment: u64::from_le_bytes(bytes[..8].try_into().ok()?),
        offset: u64::from_le_bytes(bytes[8..16].try_into().ok()?),
    })
}

fn write_ack(dir: &Path, pos: Position) -> Result<(), SpoolError> {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&pos.segment.to_le_bytes());
    bytes[8..16].copy_from_slice(&pos.offset.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..16]);
    bytes[16..].copy_from_slice(&crc.to_le_bytes());
    let tmp = dir.join(ACK_TMP);
    fs::write(&tmp, bytes).map_err(io_err("write", &tmp))?;
    let path = dir.join(ACK_FILE);
    fs::rename(&tmp, &path).map_err(io_err("rename", &path))
}

#[cfg(test)]
mod tests;
