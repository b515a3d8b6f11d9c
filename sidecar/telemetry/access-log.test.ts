import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FdLineSink } from './access-log.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempFile(): Promise<{ path: string; fd: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'tracemesh-accesslog-'));
  dirs.push(dir);
  const path = join(dir, 'access.log');
  return { path, fd: openSync(path, 'w') };
}

void describe('FdLineSink', () => {
  void it('writes every line, in order, one per line', async () => {
    const { path, fd } = await tempFile();
    const sink = new FdLineSink(fd);
    for (let i = 0; i < 5000; i++) sink.write(JSON.stringify({ i }));
    await sink.drain();
    sink.write('{"last":true}');
    await sink.drain();
    closeSync(fd);
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 5001);
    assert.deepEqual(JSON.parse(lines[4999] ?? ''), { i: 4999 });
    assert.equal(lines[5000], '{"last":true}');
    assert.equal(sink.dropped, 0);
  });

  void it('drops and counts lines beyond its buffer instead of growing without bound', async () => {
    const { path, fd } = await tempFile();
    const sink = new FdLineSink(fd, 100);
    for (let i = 0; i < 50; i++) sink.write('0123456789');
    await sink.drain();
    closeSync(fd);
    const written = readFileSync(path, 'utf8').trimEnd().split('\n').length;
    assert.ok(sink.dropped > 0);
    assert.equal(written + sink.dropped, 50);
  });

  void it('drain() resolves at once when idle', async () => {
    await new FdLineSink(1).drain();
  });
});
