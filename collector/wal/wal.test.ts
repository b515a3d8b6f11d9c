import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { eventually } from '../../test/support/clickhouse.ts';
import { encodeRecord, HEADER_BYTES, scanSegment } from './record.ts';
import { WriteAheadLog, type WalOptions } from './wal.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function options(overrides: Partial<WalOptions> = {}): WalOptions {
  const dir = mkdtempSync(join(tmpdir(), 'tm-wal-'));
  dirs.push(dir);
  return { dir, maxBytes: 1 << 20, segmentBytes: 4096, fsync: 'always', fsyncIntervalMs: 1000, ...overrides };
}

const payload = (n: number, size = 100): Uint8Array => new Uint8Array(size).fill(n % 256);
const segments = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.wal')).sort();

void describe('WAL records', () => {
  void it('round-trips and skips a corrupt record and a torn tail, counting both', () => {
    const a = encodeRecord(1, 1, 3, payload(1));
    const b = encodeRecord(1, 1, 4, payload(2));
    const c = encodeRecord(1, 2, 5, payload(3));
    const bad = Buffer.from(b);
    bad[HEADER_BYTES + 10] = 99; // payload byte flipped: the CRC no longer matches
    const torn = c.subarray(0, c.length - 7);
    const scan = scanSegment(Buffer.concat([a, bad, c, torn]));
    assert.deepEqual(scan.records.map((r) => [r.kind, r.count]), [[1, 3], [2, 5]]);
    assert.equal(scan.corrupt, 1);
    assert.equal(scan.tornTail, true);
    assert.deepEqual([...scan.records[1]!.payload], [...payload(3)]);
  });

  void it('survives garbage of any kind without throwing', () => {
    for (let i = 0; i < 200; i++) {
      const junk = Buffer.from(Array.from({ length: i * 7 }, (_, k) => (k * 31 + i) % 256));
      const scan = scanSegment(Buffer.concat([junk, encodeRecord(1, 1, 1, payload(i)), junk.subarray(0, i)]));
      assert.ok(scan.records.length >= 1);
    }
  });
});

void describe('WriteAheadLog', () => {
  void it('replays exactly the unreleased records in order after a restart, and deletes a segment once all its records are released', async () => {
    const o = options();
    let { wal, replayed } = WriteAheadLog.open(o);
    assert.equal(replayed.length, 0);
    const tickets = await Promise.all(Array.from({ length: 100 }, (_, i) => wal.append(1, 1, i, payload(i))));
    assert.ok(tickets.every((t) => t !== 'full'));
    assert.ok(segments(o.dir).length > 1, 'records spread over several segments');
    // Release the first 60: the segments holding only those go away.
    for (const t of tickets.slice(0, 60)) wal.release(t as Exclude<typeof t, 'full'>);
    await wal.close();
    ({ wal, replayed } = WriteAheadLog.open(o));
    // Exactly the unreleased ones: whole segments went, and the checkpoint covers the rest.
    assert.deepEqual(replayed.map((r) => r.record.count), Array.from({ length: 40 }, (_, i) => 60 + i));
    for (const r of replayed) wal.release(r.ticket);
    await eventually(async () => segments(o.dir).length, (n) => n === 0, 5_000, 'replayed segments to be deleted');
    await wal.close();
  });

  void it('refuses appends beyond its byte bound, and takes them again once space is released', async () => {
    const o = options({ maxBytes: 1000, segmentBytes: 300 });
    const { wal } = WriteAheadLog.open(o);
    const held = [];
    let full = 0;
    for (let i = 0; i < 20; i++) {
      const t = await wal.append(1, 1, 1, payload(i));
      if (t === 'full') full++;
      else held.push(t);
    }
    assert.ok(full > 0 && held.length > 0);
    assert.ok(wal.bytes <= 1000);
    for (const t of held) wal.release(t);
    await eventually(async () => wal.append(1, 1, 1, payload(1)), (t) => t !== 'full', 5_000, 'room after release');
    await wal.close();
  });

  void it('starts over a corrupt and a torn segment, skipping and counting what is damaged', async () => {
    const o = options();
    const { wal } = WriteAheadLog.open(o);
    for (let i = 0; i < 3; i++) await wal.append(1, 1, i, payload(i));
    await wal.close();
    const [seg] = segments(o.dir);
    const path = join(o.dir, seg!);
    const bytes = readFileSync(path);
    bytes[HEADER_BYTES + 5] = bytes[HEADER_BYTES + 5]! ^ 0xff; // first record's payload
    writeFileSync(path, bytes);
    appendFileSync(path, encodeRecord(1, 1, 9, payload(9)).subarray(0, 30)); // torn tail
    const reopened = WriteAheadLog.open(o);
    assert.deepEqual(reopened.replayed.map((r) => r.record.count), [1, 2]);
    assert.equal(reopened.stats.corrupt, 1);
    assert.equal(reopened.stats.tornTails, 1);
    // New records go to a new segment, after the damaged one.
    const t = await reopened.wal.append(1, 1, 7, payload(7));
    assert.notEqual(t, 'full');
    await reopened.wal.close();
    assert.deepEqual(WriteAheadLog.open(o).replayed.map((r) => r.record.count), [1, 2, 7]);
  });

  void it('is held by one log at a time', () => {
    const o = options();
    const { wal } = WriteAheadLog.open(o);
    assert.throws(() => WriteAheadLog.open(o), /already open in this process/);
    void wal.close();
  });

  void it('group-commits concurrent appends under every fsync policy', async () => {
    for (const fsync of ['always', 'interval', 'never'] as const) {
      const o = options({ fsync, segmentBytes: 1 << 20 });
      const { wal } = WriteAheadLog.open(o);
      const all = await Promise.all(Array.from({ length: 50 }, (_, i) => wal.append(1, 1, i, payload(i, 10))));
      // One commit for all of them when they arrive together: they share a ticket (segment).
      assert.equal(new Set(all.map((t) => (t === 'full' ? 'full' : t.segment))).size, 1);
      await wal.close();
      assert.equal(WriteAheadLog.open(o).replayed.length, 50);
    }
  });
});
