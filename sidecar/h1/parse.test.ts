// The HTTP/1.1 head parser and body scanner: examples, hostile input, property tests that split
// random valid messages at every byte boundary, and a differential test against node:http's own
// parser (llhttp) over a real socket.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import fc from 'fast-check';
import {
  BodyScanner,
  emptyLinesBefore,
  findHeadEnd,
  H1ParseError,
  MAX_HEAD_BYTES,
  MAX_HEADERS,
  parseRequestHead,
  parseResponseHead,
  requestBodyKind,
  responseBodyKind,
  type BodyKind,
  type RequestHead,
  type ResponseHead,
} from './parse.ts';

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

function request(text: string): RequestHead {
  const buf = latin1(text);
  const end = findHeadEnd(buf);
  assert.notEqual(end, -1, 'the head is complete');
  return parseRequestHead(buf, end);
}

function response(text: string): ResponseHead {
  const buf = latin1(text);
  const end = findHeadEnd(buf);
  assert.notEqual(end, -1, 'the head is complete');
  return parseResponseHead(buf, end);
}

/** Asserts that `fn` throws an H1ParseError with `status` (and a message matching `message`). */
function refused(fn: () => unknown, status: number, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof H1ParseError, `an H1ParseError, got ${String(err)}`);
    assert.equal(err.status, status, err.message);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  });
}

/** Runs a whole body through a fresh scanner; returns the end offset (or -1) and the payload. */
function scan(kind: BodyKind, body: string, length = 0): { end: number; payload: number; done: boolean } {
  const s = new BodyScanner();
  s.reset(kind, length);
  const end = s.feed(latin1(body), 0);
  return { end, payload: s.payload, done: s.done };
}

void describe('findHeadEnd', () => {
  void it('returns -1 until the blank line arrives, then the offset after it', () => {
    assert.equal(findHeadEnd(latin1('GET / HTTP/1.1\r\nHost: b\r\n')), -1);
    assert.equal(findHeadEnd(latin1('GET / HTTP/1.1\r\nHost: b\r\n\r')), -1);
    const head = 'GET / HTTP/1.1\r\nHost: b\r\n\r\n';
    assert.equal(findHeadEnd(latin1(head + 'body')), head.length);
  });

  void it('finds a blank line split across searches when resumed from where it stopped', () => {
    const text = 'GET / HTTP/1.1\r\nHost: b\r\n\r\n';
    for (let cut = 1; cut < text.length; cut++) {
      const first = latin1(text.slice(0, cut));
      const from = findHeadEnd(first) === -1 ? first.length : 0;
      assert.equal(findHeadEnd(latin1(text), from), text.length, `cut at ${cut}`);
    }
  });

  void it(`accepts a head of exactly ${MAX_HEAD_BYTES} bytes and refuses a longer one with 431`, () => {
    const prefix = 'GET / HTTP/1.1\r\nx-pad: ';
    const pad = MAX_HEAD_BYTES - prefix.length - 4;
    const exact = latin1(prefix + 'a'.repeat(pad) + '\r\n\r\n');
    assert.equal(findHeadEnd(exact), MAX_HEAD_BYTES);
    refused(() => findHeadEnd(latin1(prefix + 'a'.repeat(pad + 1) + '\r\n\r\n')), 431);
    // No blank line yet and already too long: refused without waiting for more.
    refused(() => findHeadEnd(latin1(prefix + 'a'.repeat(MAX_HEAD_BYTES))), 431);
  });
});

void describe('emptyLinesBefore', () => {
  void it('counts the CRLFs before a request line, and asks for more on a lone CR', () => {
    assert.equal(emptyLinesBefore(latin1('GET / HTTP/1.1\r\n')), 0);
    assert.equal(emptyLinesBefore(latin1('\r\nGET')), 2);
    assert.equal(emptyLinesBefore(latin1('\r\n\r\n')), 4);
    assert.equal(emptyLinesBefore(latin1('\r\n\r')), -1);
    assert.equal(emptyLinesBefore(latin1('\rX')), 0, 'a CR without LF is no empty line (the request line check refuses it)');
    assert.equal(emptyLinesBefore(latin1('\nGET')), 0, 'a bare LF is no empty line');
  });
});

void describe('parseRequestHead', () => {
  void it('reads the request line, the fields in order and the framing facts', () => {
    const h = request('POST /a/b?c=d HTTP/1.1\r\nHost: b:8080\r\nX-Thing:  spaced value \t\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n');
    assert.equal(h.method, 'POST');
    assert.equal(h.target, '/a/b?c=d');
    assert.equal(h.minor, 1);
    assert.deepEqual(h.rawNames, ['Host', 'X-Thing', 'Content-Length', 'Expect']);
    assert.deepEqual(h.names, ['host', 'x-thing', 'content-length', 'expect']);
    assert.deepEqual(h.values, ['b:8080', 'spaced value', '5', '100-Continue']);
    assert.equal(h.host, 'b:8080');
    assert.equal(h.contentLength, 5);
    assert.equal(h.chunked, false);
    assert.equal(h.transferEncoding, false);
    assert.equal(h.expectContinue, true);
    assert.equal(h.close, false);
    assert.equal(h.upgrade, false);
    assert.equal(requestBodyKind(h), 'length');
  });

  void it('keeps an empty value and a value of only whitespace as empty', () => {
    const h = request('GET / HTTP/1.1\r\nHost: b\r\nX-Empty:\r\nX-Blank: \t \r\n\r\n');
    assert.deepEqual(h.values, ['b', '', '']);
  });

  void it('accepts obs-text (bytes 0x80-0xff) in a value', () => {
    const h = request('GET / HTTP/1.1\r\nX-Latin: caf\xe9 \xff\r\n\r\n');
    assert.equal(h.values[0], 'caf\xe9 \xff');
  });

  void it('reads chunked requests, with Transfer-Encoding split over several lines', () => {
    const one = request('POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n');
    assert.equal(one.chunked, true);
    assert.equal(requestBodyKind(one), 'chunked');
    const two = request('POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\ntransfer-encoding:  Chunked \r\n\r\n');
    assert.equal(two.chunked, true);
  });

  void it('a request without Content-Length or Transfer-Encoding has no body, and neither has Content-Length: 0', () => {
    assert.equal(requestBodyKind(request('POST / HTTP/1.1\r\n\r\n')), 'none');
    assert.equal(requestBodyKind(request('POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n')), 'none');
  });

  void it('accepts repeated identical Content-Length headers', () => {
    assert.equal(request('POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n').contentLength, 3);
  });

  void it('reads Connection: close, keep-alive, upgrade and the extra names it lists', () => {
    const h = request('GET / HTTP/1.1\r\nConnection: Close, X-Hop , ,keep-alive\r\nconnection: X-Other\r\n\r\n');
    assert.equal(h.close, true);
    assert.deepEqual(h.connectionNames, ['x-hop', 'x-other']);
    const up = request('GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    assert.equal(up.upgrade, true);
    assert.equal(request('GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n').upgrade, false, 'Upgrade without Connection: upgrade is no upgrade');
    assert.equal(request('GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n').upgrade, false);
  });

  void it('never lets Connection nominate the headers that frame or route the message', () => {
    // Dropping them on the hop would leave the body unframed for the upstream (request smuggling).
    const h = request('POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\nConnection: content-length, Transfer-Encoding, host, x-hop\r\n\r\n');
    assert.deepEqual(h.connectionNames, ['x-hop']);
    const r = response('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding, Content-Length\r\n\r\n');
    assert.equal(r.connectionNames, undefined);
  });

  void it('HTTP/1.0 closes unless it asks for keep-alive', () => {
    const h = request('GET / HTTP/1.0\r\n\r\n');
    assert.equal(h.minor, 0);
    assert.equal(h.close, true);
    assert.equal(request('GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n').close, false);
  });

  void it('accepts absolute-form, authority-form and asterisk-form targets', () => {
    assert.equal(request('GET http://b:80/x?y HTTP/1.1\r\n\r\n').target, 'http://b:80/x?y');
    assert.equal(request('CONNECT b:443 HTTP/1.1\r\n\r\n').target, 'b:443');
    assert.equal(request('OPTIONS * HTTP/1.1\r\n\r\n').target, '*');
  });

  void it(`accepts ${MAX_HEADERS} fields and refuses one more with 431`, () => {
    const fields = (n: number): string => Array.from({ length: n }, (_, i) => `x-${i}: ${i}\r\n`).join('');
    assert.equal(request(`GET / HTTP/1.1\r\n${fields(MAX_HEADERS)}\r\n`).names.length, MAX_HEADERS);
    refused(() => request(`GET / HTTP/1.1\r\n${fields(MAX_HEADERS + 1)}\r\n`), 431);
  });

  const hostile: Array<[string, string, number, RegExp?]> = [
    ['Content-Length with Transfer-Encoding', 'POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n', 400, /smuggling/],
    ['Transfer-Encoding before Content-Length', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n', 400],
    ['conflicting Content-Length headers', 'POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n', 400, /conflicting/],
    ['a Content-Length list', 'POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n', 400],
    ['a negative Content-Length', 'POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n', 400],
    ['a signed Content-Length', 'POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n', 400],
    ['a hex Content-Length', 'POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n', 400],
    ['an empty Content-Length', 'POST / HTTP/1.1\r\nContent-Length:\r\n\r\n', 400],
    ['a Content-Length of 16 digits', 'POST / HTTP/1.1\r\nContent-Length: 1000000000000000\r\n\r\n', 400],
    ['obs-fold', 'GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n', 400, /folding/],
    ['obs-fold with a tab', 'GET / HTTP/1.1\r\nX-A: one\r\n\ttwo\r\n\r\n', 400, /folding/],
    ['obs-fold on the first field line', 'GET / HTTP/1.1\r\n X-A: one\r\n\r\n', 400],
    ['whitespace before the colon', 'GET / HTTP/1.1\r\nHost : b\r\n\r\n', 400],
    ['a tab before the colon', 'GET / HTTP/1.1\r\nContent-Length\t: 3\r\n\r\n', 400],
    ['a line without a colon', 'GET / HTTP/1.1\r\nbad header\r\n\r\n', 400],
    ['an empty field name', 'GET / HTTP/1.1\r\n: value\r\n\r\n', 400],
    ['a non-token field name', 'GET / HTTP/1.1\r\nX(A): 1\r\n\r\n', 400],
    ['Transfer-Encoding gzip only', 'POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n', 400, /end in chunked/],
    ['Transfer-Encoding chunked then gzip', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 400, /end in chunked/],
    ['Transfer-Encoding lines ending in gzip', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n', 400],
    ['Transfer-Encoding: xchunked', 'POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n', 400],
    ['NUL in a value', 'GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n', 400, /invalid character/],
    ['0x01 in a value', 'GET / HTTP/1.1\r\nX-A: \x01\r\n\r\n', 400],
    ['DEL in a value', 'GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n', 400],
    ['a bare CR in a value', 'GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n', 400],
    ['a bare LF in a value', 'GET / HTTP/1.1\r\nX-A: a\nX-B: b\r\n\r\n', 400],
    ['a bare LF ending the request line', 'GET / HTTP/1.1\nHost: b\r\n\r\n', 400],
    ['a control character in the target', 'GET /a\x01b HTTP/1.1\r\n\r\n', 400],
    ['DEL in the target', 'GET /a\x7f HTTP/1.1\r\n\r\n', 400],
    ['a space in the target', 'GET /a b HTTP/1.1\r\n\r\n', 400],
    ['two spaces after the method', 'GET  / HTTP/1.1\r\n\r\n', 400],
    ['a control character in the method', 'G\x01T / HTTP/1.1\r\n\r\n', 400],
    ['a control character in a field name', 'GET / HTTP/1.1\r\nX\x01A: 1\r\n\r\n', 400],
    ['no target', 'GET HTTP/1.1\r\n\r\n', 400],
    ['no version', 'GET /\r\n\r\n', 400],
    ['a lower-case version', 'GET / http/1.1\r\n\r\n', 400],
    ['a version with junk', 'GET / HTTP/1.1x\r\n\r\n', 400],
    ['HTTP/2.0 in a request line', 'GET / HTTP/2.0\r\n\r\n', 505],
    ['HTTP/0.9 in a request line', 'GET / HTTP/0.9\r\n\r\n', 505],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400, /Host/],
  ];
  for (const [what, text, status, message] of hostile) {
    void it(`refuses ${what} with ${status}`, () => refused(() => request(text), status, message));
  }
});

void describe('parseResponseHead and responseBodyKind', () => {
  void it('reads the status line, with and without a reason', () => {
    const r = response('HTTP/1.1 404 Not Found Here\r\nContent-Length: 3\r\n\r\n');
    assert.equal(r.status, 404);
    assert.equal(r.reason, 'Not Found Here');
    assert.equal(r.minor, 1);
    assert.equal(r.contentLength, 3);
    const bare = response('HTTP/1.1 200\r\n\r\n');
    assert.equal(bare.status, 200);
    assert.equal(bare.reason, '');
    assert.equal(response('HTTP/1.0 200 OK\r\n\r\n').close, true);
  });

  void it('frames bodies as RFC 9112 §6.3 says', () => {
    const kind = (method: string, text: string): BodyKind => responseBodyKind(method, response(text));
    assert.equal(kind('GET', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n'), 'length');
    assert.equal(kind('GET', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), 'none');
    assert.equal(kind('GET', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), 'chunked');
    assert.equal(kind('GET', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n'), 'close');
    assert.equal(kind('GET', 'HTTP/1.1 200 OK\r\n\r\n'), 'close');
    assert.equal(kind('HEAD', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n'), 'none');
    assert.equal(kind('HEAD', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), 'none');
    assert.equal(kind('GET', 'HTTP/1.1 204 No Content\r\n\r\n'), 'none');
    assert.equal(kind('GET', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n'), 'none');
    assert.equal(kind('GET', 'HTTP/1.1 100 Continue\r\n\r\n'), 'none');
    assert.equal(kind('GET', 'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n'), 'none');
  });

  const hostile: Array<[string, string]> = [
    ['no space after the version', 'HTTP/1.1\r\n\r\n'],
    ['a two-digit status', 'HTTP/1.1 20 OK\r\n\r\n'],
    ['a status starting with 0', 'HTTP/1.1 099 X\r\n\r\n'],
    ['a status glued to its reason', 'HTTP/1.1 200OK\r\n\r\n'],
    ['a status that is not a number', 'HTTP/1.1 abc OK\r\n\r\n'],
    ['a bad version', 'HTTP/1.x 200 OK\r\n\r\n'],
    ['HTTP/2.0', 'HTTP/2.0 200 OK\r\n\r\n'],
    ['garbage', 'garbage\r\n\r\n'],
    ['Content-Length with Transfer-Encoding', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['conflicting Content-Length headers', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\n\r\n'],
    ['whitespace before the colon', 'HTTP/1.1 200 OK\r\nX-A : one\r\n\r\n'],
    ['a control character in a value', 'HTTP/1.1 200 OK\r\nX-A: \x00\r\n\r\n'],
  ];
  for (const [what, text] of hostile) {
    // The proxy answers an unusable upstream response with 502 (UPSTREAM_RESET).
    void it(`refuses ${what} with 502`, () => refused(() => response(text), 502));
  }
});

void describe('BodyScanner', () => {
  void it('ends a Content-Length body after exactly that many bytes, across feeds', () => {
    const s = new BodyScanner();
    s.reset('length', 10);
    assert.equal(s.done, false);
    assert.equal(s.feed(latin1('0123'), 0), -1);
    assert.equal(s.feed(latin1('xx4567'), 2), -1);
    assert.equal(s.feed(latin1('89GET'), 0), 2);
    assert.equal(s.done, true);
    assert.equal(s.payload, 10);
    assert.equal(s.feed(latin1('more'), 1), 1, 'a finished body takes nothing');
  });

  void it('is done at once for no body and for a zero length', () => {
    const s = new BodyScanner();
    s.reset('none');
    assert.equal(s.done, true);
    s.reset('length', 0);
    assert.equal(s.done, true);
    assert.equal(s.feed(latin1('abc'), 0), 0);
  });

  void it('never ends a body framed by the connection close', () => {
    assert.deepEqual(scan('close', 'everything\r\n0\r\n\r\n'), { end: -1, payload: 17, done: false });
  });

  void it('reads chunks with extensions, in any hex case, and a trailer section', () => {
    const body = '5;name=value;other="quoted ; string"\r\nhello\r\nA \t;x\r\n0123456789\r\n00000\r\nExpires: never\r\nX-Sum: 15\r\n\r\n';
    assert.deepEqual(scan('chunked', body + 'NEXT'), { end: body.length, payload: 15, done: true });
    const upper = 'aB\r\n' + 'z'.repeat(0xab) + '\r\n0\r\n\r\n';
    assert.deepEqual(scan('chunked', upper), { end: upper.length, payload: 0xab, done: true });
  });

  void it('ends a chunked body with no chunks and no trailers', () => {
    assert.deepEqual(scan('chunked', '0\r\n\r\n'), { end: 5, payload: 0, done: true });
  });

  void it('accepts leading zeros in a chunk size, as node:http does', () => {
    const body = '000000000000000000001\r\nx\r\n0000\r\n\r\n';
    assert.deepEqual(scan('chunked', body), { end: body.length, payload: 1, done: true });
  });

  void it('accepts the largest chunk size (12 hex digits) and obs-text and tabs in trailer values', () => {
    const s = new BodyScanner();
    s.reset('chunked');
    assert.equal(s.feed(latin1('ffffffffffff\r\nabc'), 0), -1);
    assert.equal(s.payload, 3);
    const trailers = '0\r\nX-A: caf\xe9\tok\r\nx-b:\r\n\r\n';
    assert.deepEqual(scan('chunked', trailers), { end: trailers.length, payload: 0, done: true });
  });

  const bad: Array<[string, string]> = [
    ['no chunk size', '\r\n'],
    ['a chunk size that is not hex', 'zz\r\n'],
    ['a negative chunk size', '-1\r\nx\r\n0\r\n\r\n'],
    ['whitespace before the chunk size', ' 5\r\nhello\r\n0\r\n\r\n'],
    ['a 0x prefix', '0x5\r\nhello\r\n0\r\n\r\n'],
    ['a bare LF after the chunk size', '5\nhello\r\n0\r\n\r\n'],
    ['a CR without LF after the chunk size', '5\rhello\r\n0\r\n\r\n'],
    ['a chunk size of 13 hex digits', '1000000000000\r\n'],
    ['a bare LF in an extension', '5;a\nhello\r\n0\r\n\r\n'],
    ['a chunk longer than its size', '3\r\nhello\r\n0\r\n\r\n'],
    ['a bare LF after chunk data', '5\r\nhello\n0\r\n\r\n'],
    ['a bare LF in a trailer line', '0\r\nX-A: 1\nX-B: 2\r\n\r\n'],
    ['a CR without LF ending a trailer line', '0\r\nX-A: 1\rX\r\n\r\n'],
    ['a bare LF ending the trailer section', '0\r\n\n'],
    ['a bare LF starting the trailer section', '0\r\n\nGET /smuggled HTTP/1.1\r\n\r\n'],
    ['obs-fold in the trailer section', '0\r\nX-A: 1\r\n 2\r\n\r\n'],
    ['a trailer line without a colon', '0\r\nbad trailer\r\n\r\n'],
    ['whitespace before a trailer colon', '0\r\nX-A : 1\r\n\r\n'],
    ['a control character in a trailer value', '0\r\nX-A: \x01\r\n\r\n'],
    ['a control character in an extension', '5;a=\x01\r\nhello\r\n0\r\n\r\n'],
    ['a chunk-size line of 5000 zeros', '0'.repeat(5000) + '1\r\nx\r\n0\r\n\r\n'],
    ['a CR without LF ending the body', '0\r\n\rX'],
    ['an overlong extension', '5;' + 'e'.repeat(5000) + '\r\nhello\r\n0\r\n\r\n'],
  ];
  for (const [what, body] of bad) {
    void it(`refuses ${what} with 400`, () => refused(() => scan('chunked', body), 400));
  }
});

// --- property tests ----------------------------------------------------------------------------

const TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const chars = (s: string): string[] => [...s];
const token = (max = 16): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...chars(TCHAR)), minLength: 1, maxLength: max });
/** Field names the generator adds itself (framing, routing); random names never collide with them. */
const RESERVED = new Set(['content-length', 'transfer-encoding', 'host', 'connection', 'upgrade', 'expect']);
const fieldName = token(20).filter((n) => !RESERVED.has(n.toLowerCase()));
const VCHAR = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i));
const OBS_TEXT = Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(0x80 + i));
/** A field value without its surrounding whitespace: visible characters, obs-text, inner SP/HTAB. */
const fieldValue = fc
  .string({ unit: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...VCHAR) }, { weight: 1, arbitrary: fc.constantFrom(...OBS_TEXT) }, { weight: 2, arbitrary: fc.constantFrom(' ', '\t') }), maxLength: 40 })
  .map((v) => v.replace(/^[ \t]+|[ \t]+$/g, ''));
const ows = fc.string({ unit: fc.constantFrom(' ', '\t'), maxLength: 3 });
const field = fc.record({ name: fieldName, value: fieldValue, before: ows, after: ows });
const PCHAR = chars("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/%");
const target = fc
  .tuple(fc.string({ unit: fc.constantFrom(...PCHAR), maxLength: 30 }), fc.option(fc.string({ unit: fc.constantFrom(...PCHAR, '?'), maxLength: 20 }), { nil: undefined }))
  .map(([path, query]) => `/${path}${query === undefined ? '' : `?${query}`}`);
const bodyBytes = fc.string({ unit: fc.constantFrom(...chars('abcxyz0123456789\r\n \x00\xff'), ...OBS_TEXT.slice(0, 4)), maxLength: 60 });
const chunkExt = fc.constantFrom('', ';a', ';a=b', ';name="quoted value"', ' ;x=1', '\t;a=1;b=2', ';q="semi;colon"');
const chunk = fc.record({ data: bodyBytes.filter((d) => d.length > 0), ext: chunkExt, upper: fc.boolean(), zeros: fc.integer({ min: 0, max: 2 }) });
const trailer = fc.record({ name: fieldName, value: fieldValue });

interface ChunkSpec {
  readonly data: string;
  readonly ext: string;
  readonly upper: boolean;
  /** Leading zeros of the size. */
  readonly zeros: number;
}
type Framing = { kind: 'none' } | { kind: 'length'; body: string } | { kind: 'chunked'; chunks: ChunkSpec[]; lastExt: string; trailers: Array<{ name: string; value: string }> };

const framing: fc.Arbitrary<Framing> = fc.oneof(
  fc.constant<Framing>({ kind: 'none' }),
  bodyBytes.map((body): Framing => ({ kind: 'length', body })),
  fc.record({ chunks: fc.array(chunk, { maxLength: 5 }), lastExt: chunkExt, trailers: fc.array(trailer, { maxLength: 3 }) }).map((c): Framing => ({ kind: 'chunked', ...c })),
);

/** The encoded body and its payload size. */
function encodeBody(f: Framing): { wire: string; payload: number } {
  if (f.kind === 'none') return { wire: '', payload: 0 };
  if (f.kind === 'length') return { wire: f.body, payload: f.body.length };
  let wire = '';
  let payload = 0;
  for (const c of f.chunks) {
    const hex = c.data.length.toString(16);
    wire += `${'0'.repeat(c.zeros)}${c.upper ? hex.toUpperCase() : hex}${c.ext}\r\n${c.data}\r\n`;
    payload += c.data.length;
  }
  wire += `0${f.lastExt}\r\n`;
  for (const t of f.trailers) wire += `${t.name}: ${t.value}\r\n`;
  return { wire: wire + '\r\n', payload };
}

function framingFields(f: Framing, lengthName: string, teName: string): Array<[string, string]> {
  if (f.kind === 'length') return [[lengthName, String(f.body.length)]];
  if (f.kind === 'chunked') return [[teName, 'chunked']];
  return [];
}

interface Message {
  readonly bytes: Buffer;
  readonly headEnd: number;
  /** Where the body ends; -1 for a body framed by the connection close. */
  readonly bodyEnd: number;
  readonly payload: number;
  readonly names: string[];
  readonly values: string[];
}

const requestArb = fc
  .record({
    method: token(10),
    target,
    minor: fc.constantFrom(0, 1),
    host: fc.option(fc.string({ unit: fc.constantFrom(...chars('abcdefghijklmnopqrstuvwxyz0123456789.-:')), minLength: 1, maxLength: 20 }), { nil: undefined }),
    fields: fc.array(field, { maxLength: 8 }),
    framing,
    lengthName: fc.constantFrom('Content-Length', 'content-length', 'CONTENT-LENGTH'),
    teName: fc.constantFrom('Transfer-Encoding', 'transfer-encoding'),
    at: fc.nat(),
    next: fc.constantFrom('', 'GET /next HTTP/1.1\r\n\r\n', '\r\n'),
  })
  .map((r): Message & { method: string; target: string; minor: number; host: string } => {
    const all: Array<[string, string, string, string]> = r.fields.map((f) => [f.name, f.value, f.before, f.after]);
    const extra: Array<[string, string]> = [...framingFields(r.framing, r.lengthName, r.teName)];
    if (r.host !== undefined) extra.push(['Host', r.host]);
    // Framing and Host go somewhere among the random fields.
    for (const [n, v] of extra) all.splice(all.length === 0 ? 0 : r.at % (all.length + 1), 0, [n, v, ' ', '']);
    const head = `${r.method} ${r.target} HTTP/1.${r.minor}\r\n${all.map(([n, v, b, a]) => `${n}:${b}${v}${a}\r\n`).join('')}\r\n`;
    const { wire, payload } = encodeBody(r.framing);
    const bytes = latin1(head + wire + r.next);
    return {
      bytes,
      headEnd: head.length,
      bodyEnd: head.length + wire.length,
      payload,
      names: all.map(([n]) => n),
      values: all.map(([, v]) => v),
      method: r.method,
      target: r.target,
      minor: r.minor,
      host: r.host ?? '',
    };
  });

const responseArb = fc
  .record({
    status: fc.oneof(fc.integer({ min: 200, max: 599 }), fc.constantFrom(204, 304)),
    reason: fc.string({ unit: fc.constantFrom(...chars('OK Not Found abcxyz')), maxLength: 20 }),
    head: fc.boolean(),
    fields: fc.array(field, { maxLength: 8 }),
    framing: fc.oneof(framing, fc.constant<'close'>('close')),
    closeBody: bodyBytes,
    next: fc.constantFrom('', 'HTTP/1.1 200 OK\r\n\r\n'),
  })
  .map((r): Message & { status: number; kind: BodyKind; method: string } => {
    const f: Framing = r.framing === 'close' ? { kind: 'none' } : r.framing;
    const all: Array<[string, string, string, string]> = [...framingFields(f, 'Content-Length', 'Transfer-Encoding').map(([n, v]): [string, string, string, string] => [n, v, ' ', '']), ...r.fields.map((x): [string, string, string, string] => [x.name, x.value, x.before, x.after])];
    const head = `HTTP/1.1 ${r.status} ${r.reason}\r\n${all.map(([n, v, b, a]) => `${n}:${b}${v}${a}\r\n`).join('')}\r\n`;
    const method = r.head ? 'HEAD' : 'GET';
    const noBody = r.head || r.status === 204 || r.status === 304;
    if (noBody) {
      // No body whatever the framing headers say: what follows the head is the next response.
      return { bytes: latin1(head + r.next), headEnd: head.length, bodyEnd: head.length, payload: 0, names: all.map(([n]) => n), values: all.map(([, v]) => v), status: r.status, kind: 'none', method };
    }
    if (r.framing === 'close') {
      const bytes = latin1(head + r.closeBody);
      return { bytes, headEnd: head.length, bodyEnd: -1, payload: r.closeBody.length, names: all.map(([n]) => n), values: all.map(([, v]) => v), status: r.status, kind: 'close', method };
    }
    const { wire, payload } = encodeBody(f);
    const kind: BodyKind = f.kind === 'none' ? 'close' : f.kind === 'length' && f.body.length === 0 ? 'none' : f.kind;
    // A response without framing headers is framed by the close: all that follows is its body.
    const bodyEnd = kind === 'close' ? -1 : head.length + wire.length;
    const tail = kind === 'close' ? r.closeBody : wire + r.next;
    return { bytes: latin1(head + tail), headEnd: head.length, bodyEnd, payload: kind === 'close' ? r.closeBody.length : payload, names: all.map(([n]) => n), values: all.map(([, v]) => v), status: r.status, kind, method };
  });

interface Parsed<H> {
  head: H;
  headEnd: number;
  bodyEnd: number;
  payload: number;
}

/**
 * Feeds `pieces` as the engine does: the head is searched incrementally and parsed once it is
 * complete, then every later byte goes through the body scanner. Offsets are into the whole
 * stream.
 */
function parseIncrementally<H extends RequestHead | ResponseHead>(pieces: Buffer[], parseHead: (buf: Buffer, end: number) => H, kindOf: (head: H) => BodyKind): Parsed<H> {
  let buf = Buffer.alloc(0);
  let searched = 0;
  let parsed: { head: H; headEnd: number } | undefined;
  const body = new BodyScanner();
  let offset = 0; // bytes of the stream before the current piece, once the head is parsed
  for (const piece of pieces) {
    if (parsed === undefined) {
      buf = Buffer.concat([buf, piece]);
      const end = findHeadEnd(buf, searched);
      if (end === -1) {
        searched = buf.length;
        continue;
      }
      const head = parseHead(buf, end);
      parsed = { head, headEnd: end };
      body.reset(kindOf(head), head.contentLength);
      const bodyEnd = body.feed(buf, end);
      if (bodyEnd !== -1) return { ...parsed, bodyEnd, payload: body.payload };
      offset = buf.length;
      continue;
    }
    const at = body.feed(piece, 0);
    if (at !== -1) return { ...parsed, bodyEnd: offset + at, payload: body.payload };
    offset += piece.length;
  }
  assert.ok(parsed !== undefined, 'the head was found');
  return { ...parsed, bodyEnd: -1, payload: body.payload };
}

/** Every way of cutting `bytes` that the property checks: whole, each single cut, byte by byte, and `cuts`. */
function splittings(bytes: Buffer, cuts: number[]): Buffer[][] {
  const out: Buffer[][] = [[bytes]];
  for (let i = 1; i < bytes.length; i++) out.push([bytes.subarray(0, i), bytes.subarray(i)]);
  out.push(Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1)));
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    pieces.push(bytes.subarray(prev, p)); // empty pieces included: a feed of nothing must be harmless
    prev = p;
  }
  out.push(pieces);
  return out;
}

const cutsArb = fc.array(fc.nat(), { maxLength: 8 });

void describe('property: messages split anywhere', () => {
  void it('a valid request gives the same head and body end however its bytes arrive', () => {
    fc.assert(
      fc.property(requestArb, cutsArb, (m, cuts) => {
        for (const pieces of splittings(m.bytes, cuts)) {
          const p = parseIncrementally(pieces, parseRequestHead, requestBodyKind);
          assert.equal(p.headEnd, m.headEnd);
          assert.equal(p.bodyEnd, m.bodyEnd);
          assert.equal(p.payload, m.payload);
          assert.equal(p.head.method, m.method);
          assert.equal(p.head.target, m.target);
          assert.equal(p.head.minor, m.minor);
          assert.equal(p.head.host, m.host);
          assert.deepEqual(p.head.rawNames, m.names);
          assert.deepEqual(p.head.values, m.values);
          assert.equal(p.head.headBytes, m.headEnd);
        }
      }),
      { numRuns: 150 },
    );
  });

  void it('a valid response gives the same head and body end however its bytes arrive', () => {
    fc.assert(
      fc.property(responseArb, cutsArb, (m, cuts) => {
        for (const pieces of splittings(m.bytes, cuts)) {
          const p = parseIncrementally(pieces, parseResponseHead, (h) => responseBodyKind(m.method, h));
          assert.equal(p.head.status, m.status);
          assert.equal(responseBodyKind(m.method, p.head), m.kind);
          assert.equal(p.headEnd, m.headEnd);
          assert.equal(p.bodyEnd, m.bodyEnd);
          assert.equal(p.payload, m.payload);
          assert.deepEqual(p.head.rawNames, m.names);
          assert.deepEqual(p.head.values, m.values);
        }
      }),
      { numRuns: 150 },
    );
  });

  void it('a chunked body scanned in two parts ends where it ends when scanned whole', () => {
    // Independent of the head: random chunk sizes up to a few KiB, random cut.
    const big = fc.array(fc.record({ size: fc.integer({ min: 1, max: 5000 }), ext: chunkExt }), { maxLength: 6 });
    fc.assert(
      fc.property(big, fc.nat(), (chunks, cut) => {
        let wire = '';
        let payload = 0;
        for (const c of chunks) {
          wire += `${c.size.toString(16)}${c.ext}\r\n${'d'.repeat(c.size)}\r\n`;
          payload += c.size;
        }
        wire += '0\r\n\r\n';
        const bytes = latin1(wire + 'tail');
        const at = cut % (wire.length + 1);
        const s = new BodyScanner();
        s.reset('chunked');
        const first = s.feed(bytes.subarray(0, at), 0);
        const end = first !== -1 ? first : at + s.feed(bytes.subarray(at), 0);
        assert.equal(end, wire.length);
        assert.equal(s.payload, payload);
      }),
      { numRuns: 200 },
    );
  });
});

// --- differential test against node:http ------------------------------------------------------

/** Methods llhttp knows (it refuses any other token). */
const NODE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'PROPFIND', 'REPORT'];

interface Seen {
  method: string;
  url: string;
  httpVersion: string;
  rawHeaders: string[];
  body: Buffer;
}

void describe('differential: parseRequestHead against node:http', () => {
  let server: Server;
  let port: number;
  const seen: Seen[] = [];

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', httpVersion: req.httpVersion, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) });
        res.writeHead(200, { 'content-length': '2', connection: 'close' });
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** Sends `bytes` on a new connection; resolves with what node:http saw, or undefined when it refused. */
  function sendToNode(bytes: Buffer): Promise<{ status: string; seen: Seen | undefined }> {
    const before = seen.length;
    return new Promise((resolve, reject) => {
      const sock = connect(port, '127.0.0.1');
      let out = '';
      sock.on('data', (d: Buffer) => (out += d.toString('latin1')));
      sock.on('error', reject);
      sock.on('close', () => resolve({ status: out.slice(0, 12), seen: seen.length > before ? seen[before] : undefined }));
      sock.end(bytes);
    });
  }

  // llhttp refuses the whitespace RFC 9112 allows around an extension's ';' (this parser takes it).
  const nodeChunkExt = fc.constantFrom('', ';a', ';a=b', ';name="quoted value"', ';a=1;b=2', ';q="semi;colon"');
  const nodeChunk = fc.record({ data: bodyBytes.filter((d) => d.length > 0), ext: nodeChunkExt, upper: fc.boolean(), zeros: fc.integer({ min: 0, max: 2 }) });
  const nodeRequest = fc
    .record({
      method: fc.constantFrom(...NODE_METHODS),
      target,
      minor: fc.constantFrom(0, 1),
      host: fc.string({ unit: fc.constantFrom(...chars('abcdefghijklmnopqrstuvwxyz0123456789.-')), minLength: 1, maxLength: 20 }),
      fields: fc.array(field, { maxLength: 8 }),
      framing: fc.oneof(
        fc.constant<Framing>({ kind: 'none' }),
        bodyBytes.map((body): Framing => ({ kind: 'length', body })),
        fc.record({ chunks: fc.array(nodeChunk, { maxLength: 4 }), lastExt: nodeChunkExt, trailers: fc.array(trailer, { maxLength: 2 }) }).map((c): Framing => ({ kind: 'chunked', ...c })),
      ),
    })
    .map((r) => {
      const all: Array<[string, string, string, string]> = [['Host', r.host, ' ', ''], ...framingFields(r.framing, 'Content-Length', 'Transfer-Encoding').map(([n, v]): [string, string, string, string] => [n, v, ' ', '']), ...r.fields.map((f): [string, string, string, string] => [f.name, f.value, f.before, f.after])];
      const head = `${r.method} ${r.target} HTTP/1.${r.minor}\r\n${all.map(([n, v, b, a]) => `${n}:${b}${v}${a}\r\n`).join('')}\r\n`;
      const { wire, payload } = encodeBody(r.framing);
      return { bytes: latin1(head + wire), head: head.length, bodyEnd: head.length + wire.length, payload, body: r.framing };
    });

  void it('both parsers read the same method, target, version, header names and values and body', async () => {
    await fc.assert(
      fc.asyncProperty(nodeRequest, async (m) => {
        const ours = parseIncrementally([m.bytes], parseRequestHead, requestBodyKind);
        assert.equal(ours.headEnd, m.head);
        assert.equal(ours.bodyEnd, m.bodyEnd);
        const node = await sendToNode(m.bytes);
        assert.ok(node.seen !== undefined, `node:http accepted the request (it answered ${JSON.stringify(node.status)})`);
        assert.equal(ours.head.method, node.seen.method);
        assert.equal(ours.head.target, node.seen.url);
        assert.equal(`1.${ours.head.minor}`, node.seen.httpVersion);
        const names = node.seen.rawHeaders.filter((_, i) => i % 2 === 0);
        const values = node.seen.rawHeaders.filter((_, i) => i % 2 === 1);
        assert.deepEqual(ours.head.rawNames, names);
        assert.deepEqual(ours.head.values, values);
        assert.equal(ours.payload, node.seen.body.length);
      }),
      { numRuns: 120 },
    );
  });
});
