// HTTP/1.1 message heads and body framing for the raw-socket engine (sidecar/h1/engine.ts).
//
// Why hand-written: `npm run bench -- --profile` showed node:http's server, ClientRequest and
// Agent taking most of a sidecar's CPU. A pair of minimal proxies on node:http (plus TLS) cost
// 0.22-0.30 CPU-s per 1000 requests per process at 1000 req/s, a raw socket relay 0.08-0.12,
// and the throughput was 9.2k req/s against 29k (bench/README.md, "Why the sidecar parses
// HTTP/1.1 itself"). The proxy only needs the head: the body is relayed byte for byte, chunked
// framing included, and only scanned to find where the message ends.
//
// Strict where smuggling lives (RFC 9112 §6.3, §11.2): CRLF line ends only, no obs-fold, no
// whitespace before the colon, Content-Length and Transfer-Encoding together are refused, a
// request's Transfer-Encoding must end in chunked, conflicting Content-Lengths are refused,
// Connection cannot make the framing fields hop-by-hop, and chunked trailers are checked like
// header fields.

/** A head that cannot be relayed; `status` is what the proxy answers (400, 431, 501, 505). */
export class H1ParseError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'H1ParseError';
    this.status = status;
  }
}

/** Largest request or response head accepted (Node's default is 16 KiB; Envoy's 60 KiB). */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Most header fields in one head (Node: 2000; Envoy: 100). */
export const MAX_HEADERS = 200;

/** Fields common to request and response heads. */
interface HeadFields {
  /** Header names as received, in order. */
  readonly rawNames: string[];
  /** The same names in lower case. */
  readonly names: string[];
  /** Values with surrounding whitespace removed. */
  readonly values: string[];
  /** Content-Length, or -1 when absent. */
  contentLength: number;
  /** Transfer-Encoding ends in chunked. */
  chunked: boolean;
  /** A Transfer-Encoding header was present (chunked or not). */
  transferEncoding: boolean;
  /** `Connection: close` (or HTTP/1.0 without keep-alive). */
  close: boolean;
  /** Extra hop-by-hop names listed in Connection (beyond close/keep-alive/upgrade), lower case. */
  connectionNames: string[] | undefined;
  /** An upgrade was asked for: an Upgrade header with `Connection: upgrade`. */
  upgrade: boolean;
  /** Bytes of the head, including the blank line. */
  readonly headBytes: number;
}

export interface RequestHead extends HeadFields {
  readonly method: string;
  readonly target: string;
  /** 1 for HTTP/1.1, 0 for HTTP/1.0. */
  readonly minor: number;
  /** The Host value ('' when absent). */
  host: string;
  /** `Expect: 100-continue`. */
  expectContinue: boolean;
}

export interface ResponseHead extends HeadFields {
  readonly status: number;
  readonly reason: string;
  readonly minor: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Control characters other than HTAB are not allowed in a field value (RFC 9110 §5.5). */
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
/** request-target: no whitespace or controls (RFC 9112 §3.2). */
const BAD_TARGET = /[\x00-\x20\x7f]/;
const CRLFCRLF = '\r\n\r\n';
/** Names a Connection header may list without effect (see parseFields). */
const NEVER_HOP_BY_HOP = new Set(['content-length', 'transfer-encoding', 'host']);

/**
 * Where the head that starts at `buf[0]` ends (the offset after its blank line), or -1 when
 * more bytes are needed. `from` is where the previous search stopped, to avoid rescanning.
 * Throws 431 when no end is found within MAX_HEAD_BYTES.
 */
export function findHeadEnd(buf: Buffer, from = 0): number {
  const i = buf.indexOf(CRLFCRLF, Math.max(0, from - 3), 'latin1');
  if (i !== -1) {
    if (i + 4 > MAX_HEAD_BYTES) throw new H1ParseError(431, `the message head is larger than ${MAX_HEAD_BYTES} bytes`);
    return i + 4;
  }
  if (buf.length > MAX_HEAD_BYTES) throw new H1ParseError(431, `the message head is larger than ${MAX_HEAD_BYTES} bytes`);
  return -1;
}

/**
 * Bytes of empty lines (CRLF) at the start of `buf`, which a server ignores before a request
 * line (RFC 9112 §2.2); -1 when `buf` ends in the middle of one.
 */
export function emptyLinesBefore(buf: Buffer): number {
  let i = 0;
  while (buf[i] === 0x0d) {
    if (i + 1 === buf.length) return -1;
    if (buf[i + 1] !== 0x0a) break;
    i += 2;
  }
  return i;
}

function parseVersion(v: string, what: string): number {
  if (v === 'HTTP/1.1') return 1;
  if (v === 'HTTP/1.0') return 0;
  if (/^HTTP\/\d\.\d$/.test(v)) throw new H1ParseError(505, `${what} speaks ${v}; this listener speaks HTTP/1.1 (and HTTP/2 with prior knowledge)`);
  throw new H1ParseError(400, `malformed ${what} line: bad HTTP version`);
}

/** Parses the header lines of `text` from `start` into `f`; returns nothing, throws on bad input. */
function parseFields(text: string, start: number, f: HeadFields, minor: number): void {
  const { rawNames, names, values } = f;
  let keepAlive = false;
  let upgradeHeader = false;
  let connectionUpgrade = false;
  let pos = start;
  const end = text.length - 2; // the final CRLF of the blank line
  while (pos < end) {
    let eol = text.indexOf('\r\n', pos);
    if (eol === -1 || eol > end) eol = end;
    if (names.length >= MAX_HEADERS) throw new H1ParseError(431, `more than ${MAX_HEADERS} header fields`);
    const c0 = text.charCodeAt(pos);
    if (c0 === 0x20 || c0 === 0x09) throw new H1ParseError(400, 'obsolete line folding in a header field is not accepted');
    const colon = text.indexOf(':', pos);
    if (colon === -1 || colon >= eol) throw new H1ParseError(400, `malformed header line "${text.slice(pos, Math.min(eol, pos + 64))}"`);
    const rawName = text.slice(pos, colon);
    if (!TOKEN.test(rawName)) throw new H1ParseError(400, `invalid header name "${rawName.slice(0, 64)}"`);
    let vs = colon + 1;
    let ve = eol;
    while (vs < ve && (text.charCodeAt(vs) === 0x20 || text.charCodeAt(vs) === 0x09)) vs++;
    while (ve > vs && (text.charCodeAt(ve - 1) === 0x20 || text.charCodeAt(ve - 1) === 0x09)) ve--;
    const value = text.slice(vs, ve);
    if (BAD_VALUE.test(value)) throw new H1ParseError(400, `invalid character in the value of header "${rawName}"`);
    const name = rawName.toLowerCase();
    rawNames.push(rawName);
    names.push(name);
    values.push(value);
    switch (name) {
      case 'content-length': {
        if (!/^\d{1,15}$/.test(value)) throw new H1ParseError(400, `invalid Content-Length "${value.slice(0, 32)}"`);
        const n = Number(value);
        if (f.contentLength !== -1 && f.contentLength !== n) throw new H1ParseError(400, 'conflicting Content-Length headers');
        f.contentLength = n;
        break;
      }
      case 'transfer-encoding': {
        f.transferEncoding = true;
        const last = value.slice(value.lastIndexOf(',') + 1).trim().toLowerCase();
        f.chunked = last === 'chunked';
        break;
      }
      case 'connection': {
        for (const t of value.split(',')) {
          const tok = t.trim().toLowerCase();
          if (tok === 'close') f.close = true;
          else if (tok === 'keep-alive') keepAlive = true;
          else if (tok === 'upgrade') connectionUpgrade = true;
          // The framing and routing fields are never hop-by-hop: dropping them on the hop would
          // leave the body unframed for the next parser (request smuggling, response desync).
          else if (tok !== '' && !NEVER_HOP_BY_HOP.has(tok)) (f.connectionNames ??= []).push(tok);
        }
        break;
      }
      case 'upgrade':
        upgradeHeader = true;
        break;
      default:
        break;
    }
    pos = eol + 2;
  }
  if (minor === 0 && !keepAlive) f.close = true;
  f.upgrade = upgradeHeader && connectionUpgrade;
  if (f.transferEncoding && f.contentLength !== -1) {
    throw new H1ParseError(400, 'both Transfer-Encoding and Content-Length are present (refused: request smuggling risk)');
  }
}

/** Parses a request head: `buf[0, end)` as found by findHeadEnd. */
export function parseRequestHead(buf: Buffer, end: number): RequestHead {
  const text = buf.toString('latin1', 0, end);
  const eol = text.indexOf('\r\n');
  const line = text.slice(0, eol);
  const sp1 = line.indexOf(' ');
  const sp2 = line.lastIndexOf(' ');
  if (sp1 <= 0 || sp2 <= sp1 + 1) throw new H1ParseError(400, `malformed request line "${line.slice(0, 80)}"`);
  const method = line.slice(0, sp1);
  const target = line.slice(sp1 + 1, sp2);
  if (!TOKEN.test(method)) throw new H1ParseError(400, `invalid method "${method.slice(0, 32)}"`);
  if (BAD_TARGET.test(target)) throw new H1ParseError(400, 'invalid character in the request target');
  const minor = parseVersion(line.slice(sp2 + 1), 'request');
  const head: RequestHead = {
    method,
    target,
    minor,
    host: '',
    expectContinue: false,
    rawNames: [],
    names: [],
    values: [],
    contentLength: -1,
    chunked: false,
    transferEncoding: false,
    close: false,
    connectionNames: undefined,
    upgrade: false,
    headBytes: end,
  };
  parseFields(text, eol + 2, head, minor);
  if (head.transferEncoding && !head.chunked) throw new H1ParseError(400, 'a request Transfer-Encoding must end in chunked');
  let hosts = 0;
  for (let i = 0; i < head.names.length; i++) {
    const n = head.names[i] as string;
    if (n === 'host') {
      hosts++;
      head.host = head.values[i] as string;
    } else if (n === 'expect' && (head.values[i] as string).toLowerCase() === '100-continue') {
      head.expectContinue = true;
    }
  }
  if (hosts > 1) throw new H1ParseError(400, 'more than one Host header');
  return head;
}

/** Parses a response head: `buf[0, end)` as found by findHeadEnd. */
export function parseResponseHead(buf: Buffer, end: number): ResponseHead {
  const text = buf.toString('latin1', 0, end);
  const eol = text.indexOf('\r\n');
  const line = text.slice(0, eol);
  const sp1 = line.indexOf(' ');
  if (sp1 === -1) throw new H1ParseError(502, `malformed status line "${line.slice(0, 80)}"`);
  let minor: number;
  try {
    minor = parseVersion(line.slice(0, sp1), 'status');
  } catch (err) {
    throw new H1ParseError(502, (err as Error).message);
  }
  const code = line.slice(sp1 + 1, sp1 + 4);
  if (!/^[1-9]\d\d$/.test(code) || (line.length > sp1 + 4 && line.charCodeAt(sp1 + 4) !== 0x20)) {
    throw new H1ParseError(502, `malformed status line "${line.slice(0, 80)}"`);
  }
  const head: ResponseHead = {
    status: Number(code),
    reason: line.slice(sp1 + 5),
    minor,
    rawNames: [],
    names: [],
    values: [],
    contentLength: -1,
    chunked: false,
    transferEncoding: false,
    close: false,
    connectionNames: undefined,
    upgrade: false,
    headBytes: end,
  };
  try {
    parseFields(text, eol + 2, head, minor);
  } catch (err) {
    throw new H1ParseError(502, (err as Error).message);
  }
  return head;
}

/** How a message body ends. */
export type BodyKind = 'none' | 'length' | 'chunked' | 'close';

/** RFC 9112 §6.3 for a response to `method`. */
export function responseBodyKind(method: string, res: ResponseHead): BodyKind {
  if (method === 'HEAD' || res.status < 200 || res.status === 204 || res.status === 304) return 'none';
  if (res.transferEncoding) return res.chunked ? 'chunked' : 'close';
  if (res.contentLength >= 0) return res.contentLength === 0 ? 'none' : 'length';
  return 'close';
}

export function requestBodyKind(req: RequestHead): BodyKind {
  if (req.chunked) return 'chunked';
  return req.contentLength > 0 ? 'length' : 'none';
}

/** States of the chunked-body scanner. */
const Chunk = {
  Size: 0,
  Ext: 1,
  SizeLf: 2,
  Data: 3,
  DataCr: 4,
  DataLf: 5,
  TrailerStart: 6,
  TrailerName: 7,
  TrailerValue: 8,
  TrailerLineLf: 9,
  EndLf: 10,
} as const;
type ChunkState = (typeof Chunk)[keyof typeof Chunk];

/** Longest chunk-size line accepted (size plus extensions). */
const MAX_CHUNK_LINE = 4096;
/** Largest chunk size before its next hex digit: sizes stay below 16^12 (and exact in a double). */
const MAX_CHUNK_SIZE_BEFORE_DIGIT = 16 ** 11;

/** tchar (RFC 9110 §5.6.2), by byte. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;

/** A control character other than HTAB (not allowed in field values or chunk extensions). */
function isCtl(c: number): boolean {
  return (c < 0x20 && c !== 0x09) || c === 0x7f;
}

/**
 * Finds where a body ends without copying it: fed the bytes as they come, it says how many of
 * them belong to the body. Chunked framing is scanned (RFC 9112 §7.1) but not removed.
 */
export class BodyScanner {
  kind: BodyKind = 'none';
  private remaining = 0;
  private state: ChunkState = Chunk.Size;
  private digits = 0;
  private lineBytes = 0;
  /** The whole body has been seen. */
  done = true;
  /** Body bytes seen so far, without chunked framing (`http.*.body.size`). */
  payload = 0;

  reset(kind: BodyKind, length = 0): void {
    this.kind = kind;
    this.remaining = kind === 'length' ? length : 0;
    this.state = Chunk.Size;
    this.digits = 0;
    this.lineBytes = 0;
    this.done = kind === 'none' || (kind === 'length' && length === 0);
    this.payload = 0;
  }

  /**
   * Consumes body bytes from `buf[start..]`; returns the offset just after the body's last byte
   * when the body ended within this buffer, or -1 when all of it belonged to the body. Throws
   * H1ParseError on malformed chunked framing.
   */
  feed(buf: Buffer, start: number): number {
    if (this.done) return start;
    const len = buf.length;
    if (this.kind === 'length') {
      const avail = len - start;
      if (avail < this.remaining) {
        this.remaining -= avail;
        this.payload += avail;
        return -1;
      }
      const end = start + this.remaining;
      this.payload += this.remaining;
      this.remaining = 0;
      this.done = true;
      return end;
    }
    if (this.kind === 'close') {
      this.payload += len - start;
      return -1;
    }
    let i = start;
    while (i < len) {
      switch (this.state) {
        case Chunk.Data: {
          const take = Math.min(this.remaining, len - i);
          this.remaining -= take;
          this.payload += take;
          i += take;
          if (this.remaining === 0) this.state = Chunk.DataCr;
          continue;
        }
        case Chunk.Size: {
          const c = buf[i] as number;
          const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
          if (d >= 0) {
            // Leading zeros are allowed (as llhttp allows them); the line length bounds them.
            if (this.remaining >= MAX_CHUNK_SIZE_BEFORE_DIGIT) throw new H1ParseError(400, 'chunk size too large');
            if (++this.lineBytes > MAX_CHUNK_LINE) throw new H1ParseError(400, 'malformed chunked body: chunk-size line too long');
            this.remaining = this.remaining * 16 + d;
            this.digits++;
          } else if (this.digits === 0) {
            throw new H1ParseError(400, 'malformed chunked body: expected a chunk size');
          } else if (c === 0x0d) {
            this.state = Chunk.SizeLf;
          } else if (c === 0x3b || c === 0x20 || c === 0x09) {
            this.state = Chunk.Ext;
          } else {
            throw new H1ParseError(400, 'malformed chunked body: bad chunk size');
          }
          break;
        }
        case Chunk.Ext: {
          const c = buf[i] as number;
          if (c === 0x0d) this.state = Chunk.SizeLf;
          else if (isCtl(c) || ++this.lineBytes > MAX_CHUNK_LINE) throw new H1ParseError(400, 'malformed chunked body: bad chunk extension');
          break;
        }
        case Chunk.SizeLf:
          if (buf[i] !== 0x0a) throw new H1ParseError(400, 'malformed chunked body: expected LF after the chunk size');
          this.digits = 0;
          this.lineBytes = 0;
          this.state = this.remaining === 0 ? Chunk.TrailerStart : Chunk.Data;
          break;
        case Chunk.DataCr:
          if (buf[i] !== 0x0d) throw new H1ParseError(400, 'malformed chunked body: chunk longer than its size');
          this.state = Chunk.DataLf;
          break;
        case Chunk.DataLf:
          if (buf[i] !== 0x0a) throw new H1ParseError(400, 'malformed chunked body: expected CRLF after chunk data');
          this.state = Chunk.Size;
          break;
        // Trailer fields are checked like header fields: the upstream parses them again, and a
        // line that it ends elsewhere (a bare LF, say) would make it see the body end elsewhere.
        case Chunk.TrailerStart: {
          const c = buf[i] as number;
          if (c === 0x0d) this.state = Chunk.EndLf;
          else if (TCHAR[c] === 1) {
            this.lineBytes = 1;
            this.state = Chunk.TrailerName;
          } else throw new H1ParseError(400, 'malformed chunked body: bad trailer line');
          break;
        }
        case Chunk.TrailerName: {
          const c = buf[i] as number;
          if (c === 0x3a) this.state = Chunk.TrailerValue;
          else if (TCHAR[c] !== 1) throw new H1ParseError(400, 'malformed chunked body: bad trailer field name');
          if (++this.lineBytes > MAX_HEAD_BYTES) throw new H1ParseError(400, 'malformed chunked body: trailer line too long');
          break;
        }
        case Chunk.TrailerValue: {
          const c = buf[i] as number;
          if (c === 0x0d) this.state = Chunk.TrailerLineLf;
          else if (isCtl(c) || ++this.lineBytes > MAX_HEAD_BYTES) throw new H1ParseError(400, 'malformed chunked body: bad trailer field value');
          break;
        }
        case Chunk.TrailerLineLf:
          if (buf[i] !== 0x0a) throw new H1ParseError(400, 'malformed chunked body: expected LF in the trailer section');
          this.state = Chunk.TrailerStart;
          break;
        case Chunk.EndLf:
          if (buf[i] !== 0x0a) throw new H1ParseError(400, 'malformed chunked body: expected LF at its end');
          this.done = true;
          return i + 1;
      }
      i++;
    }
    return -1;
  }
}
