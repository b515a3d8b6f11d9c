// The framing of one write-ahead-log record, and a scanner that reads a segment back, skipping
// (and counting) what a crash or a bad disk left behind.
//
//   offset  size  field
//   0       4     magic 0x544d5752 ("TMWR"), big-endian
//   4       4     payload length (bytes), little-endian
//   8       4     CRC-32 of bytes 12 .. end of payload
//   12      1     schema version of the payload (what the rows mean; see wal/README.md)
//   13      1     kind: which queue the record belongs to (1 spans, 2 logs)
//   14      2     reserved, 0
//   16      4     item count (spans or log records in the payload)
//   20      …     payload
//
// A torn tail (a record cut short by a crash) and a record whose CRC does not match are
// skipped; the scanner resynchronises on the next magic whose record checks out.

import { crc32 } from 'node:zlib';

export const RECORD_MAGIC = 0x544d5752;
export const HEADER_BYTES = 20;
/** Larger payloads are refused on append and taken for corruption on replay. */
export const MAX_PAYLOAD_BYTES = 512 * 1024 * 1024;

export interface WalRecord {
  readonly version: number;
  readonly kind: number;
  readonly count: number;
  readonly payload: Uint8Array;
}

/**
 * The header of a record whose payload follows it: the frame is `[header, payload]`, written
 * with one writev, so the payload (a request's rows, megabytes) is never copied. The CRC runs
 * over the header's tail and then the payload, as if they were one buffer.
 */
export function encodeRecordHeader(version: number, kind: number, count: number, payload: Uint8Array): Buffer {
  if (payload.length > MAX_PAYLOAD_BYTES) throw new RangeError(`a WAL record holds at most ${MAX_PAYLOAD_BYTES} bytes, got ${payload.length}`);
  const out = Buffer.allocUnsafe(HEADER_BYTES);
  out.writeUInt32BE(RECORD_MAGIC, 0);
  out.writeUInt32LE(payload.length, 4);
  out[12] = version;
  out[13] = kind;
  out.writeUInt16LE(0, 14);
  out.writeUInt32LE(count, 16);
  out.writeUInt32LE(crc32(payload, crc32(out.subarray(12))), 8);
  return out;
}

/** The record as one buffer, header and payload (tests, tools). */
export function encodeRecord(version: number, kind: number, count: number, payload: Uint8Array): Buffer {
  return Buffer.concat([encodeRecordHeader(version, kind, count, payload), payload]);
}

export interface ScanResult {
  readonly records: WalRecord[];
  /** For each record, the offset just past it in the segment. */
  readonly ends: number[];
  /** Records (or runs of bytes) whose checksum failed and were skipped. */
  readonly corrupt: number;
  /** True when the segment ends in a record cut short (a torn write). */
  readonly tornTail: boolean;
}

/** Every intact record of a segment, in order. Never throws on bad content. */
export function scanSegment(bytes: Buffer): ScanResult {
  const records: WalRecord[] = [];
  const ends: number[] = [];
  let corrupt = 0;
  let tornTail = false;
  let pos = 0;
  // True while skipping over bytes after a bad record: a run of garbage counts once.
  let skipping = false;
  while (pos + HEADER_BYTES <= bytes.length) {
    if (bytes.readUInt32BE(pos) !== RECORD_MAGIC) {
      if (!skipping) corrupt++;
      skipping = true;
      pos = nextMagic(bytes, pos + 1);
      continue;
    }
    const length = bytes.readUInt32LE(pos + 4);
    const end = pos + HEADER_BYTES + length;
    if (length > MAX_PAYLOAD_BYTES || end > bytes.length) {
      // Either the last record, cut short, or a corrupt length. A later intact record tells
      // the two apart: if there is one, this was corruption.
      const next = nextMagic(bytes, pos + 1);
      if (next >= bytes.length) {
        tornTail = true;
        break;
      }
      if (!skipping) corrupt++;
      skipping = true;
      pos = next;
      continue;
    }
    if (crc32(bytes.subarray(pos + 12, end)) !== bytes.readUInt32LE(pos + 8)) {
      if (!skipping) corrupt++;
      skipping = true;
      pos = nextMagic(bytes, pos + 1);
      continue;
    }
    skipping = false;
    records.push({
      version: bytes[pos + 12]!,
      kind: bytes[pos + 13]!,
      count: bytes.readUInt32LE(pos + 16),
      // A copy: the segment's buffer is dropped after the scan.
      payload: Uint8Array.prototype.slice.call(bytes, pos + HEADER_BYTES, end),
    });
    ends.push(end);
    pos = end;
  }
  if (pos < bytes.length && pos + HEADER_BYTES > bytes.length && !tornTail) tornTail = true;
  return { records, ends, corrupt, tornTail };
}

function nextMagic(bytes: Buffer, from: number): number {
  const magic = Buffer.from([0x54, 0x4d, 0x57, 0x52]);
  const i = bytes.indexOf(magic, from);
  return i < 0 ? bytes.length : i;
}
