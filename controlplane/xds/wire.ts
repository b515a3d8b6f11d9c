// The ADS server's response encoding. A resource (an Any) is encoded once per version and
// its bytes are reused in every response that carries it: at 2,000 clients × 1,000 clusters,
// protobufjs re-encoding the same ClusterLoadAssignments for every stream was a fifth of the
// control plane's CPU in bench/xds (see bench/README.md). The response is then the
// concatenation of those cached fields and the few per-response ones (version, nonce), which
// protobuf allows: a message is the sequence of its fields, in any order.

import { hash } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import {
  AggregatedDiscoveryServiceClient,
  protoType,
  type AnyMessage,
  type DiscoveryRequest,
  type DiscoveryResponse,
  type NodeMessage,
  type StatusMessage,
} from '../../common/xds/protos.ts';

// DiscoveryResponse field numbers (envoy/service/discovery/v3/discovery.proto).
const VERSION_INFO = 1;
const RESOURCES = 2;
const TYPE_URL = 4;
const NONCE = 5;
const CONTROL_PLANE = 6;
// google.protobuf.Any and envoy.config.core.v3.ControlPlane.
const ANY_TYPE_URL = 1;
const ANY_VALUE = 2;
const IDENTIFIER = 1;

function varint(n: number, out: number[]): void {
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
}

/** One length-delimited field: key, length, bytes. */
function lengthDelimited(field: number, bytes: Uint8Array): Buffer {
  const head: number[] = [];
  varint((field << 3) | 2, head);
  varint(bytes.length, head);
  return Buffer.concat([Buffer.from(head), bytes]);
}

function stringField(field: number, s: string): Buffer {
  return lengthDelimited(field, Buffer.from(s, 'utf8'));
}

/** Any → its encoding as field 2 of a DiscoveryResponse; Any objects are immutable once cached. */
const encodedResources = new WeakMap<AnyMessage, Buffer>();

function resourceField(any: AnyMessage): Buffer {
  let field = encodedResources.get(any);
  if (field === undefined) {
    field = lengthDelimited(RESOURCES, Buffer.concat([stringField(ANY_TYPE_URL, any.type_url), lengthDelimited(ANY_VALUE, any.value)]));
    encodedResources.set(any, field);
  }
  return field;
}

/** Encodes a response; its resources' bytes come from the per-resource cache. */
export function encodeResponse(response: DiscoveryResponse): Buffer {
  const parts: Buffer[] = [stringField(VERSION_INFO, response.version_info)];
  for (const any of response.resources) parts.push(resourceField(any));
  parts.push(stringField(TYPE_URL, response.type_url), stringField(NONCE, response.nonce));
  if (response.control_plane !== undefined) parts.push(lengthDelimited(CONTROL_PLANE, stringField(IDENTIFIER, response.control_plane.identifier)));
  return Buffer.concat(parts);
}

/**
 * The ADS service definition for the server: the same as the client's, except that a
 * response may be handed over already encoded (a Buffer from `encodeResponse`) and that
 * state-of-the-world requests are read by `decodeRequest`.
 */
export function adsServerDefinition(): grpc.ServiceDefinition {
  const base = AggregatedDiscoveryServiceClient.service;
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(base)) {
    const serialize = method.responseSerialize as (value: unknown) => Buffer;
    out[name] = {
      ...method,
      responseSerialize: (value: unknown) => (Buffer.isBuffer(value) ? value : serialize(value)),
      ...(name === 'StreamAggregatedResources' ? { requestDeserialize: decodeRequest } : {}),
    };
  }
  return out;
}

/**
 * A DiscoveryRequest as the server reads it. `resource_names` is decoded on first use:
 * most requests are ACKs that name what the stream already subscribes to, and `namesDigest`
 * (a hash of the encoded names) tells that without decoding a thousand strings.
 */
export interface ServerRequest extends DiscoveryRequest {
  readonly namesDigest: string;
  /** How many names, and the longest one's length in bytes, without decoding them. */
  readonly namesCount: number;
  readonly longestNameBytes: number;
}

const nodeType = (): protobuf.Type => protoType('envoy.config.core.v3.Node');
const statusType = (): protobuf.Type => protoType('google.rpc.Status');
// proto-loader's object shape, which the rest of the server (and structToJson) reads.
const OBJECT_OPTIONS: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true, oneofs: true, arrays: true };

/** Reads a varint at `pos`; returns [value, next position]. Throws past the end or beyond 32 bits of length. */
function readVarint(buf: Buffer, pos: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++] as number;
    if (shift < 28) value |= (b & 0x7f) << shift;
    else if (shift < 49) value += (b & 0x7f) * 2 ** shift;
    else throw new Error('varint too long');
    if ((b & 0x80) === 0) return [value, pos];
    shift += 7;
  }
}

/** Decodes a DiscoveryRequest from its wire bytes; throws on bytes that are not one. */
export function decodeRequest(buf: Buffer): ServerRequest {
  let version = '';
  let typeUrl = '';
  let nonce = '';
  let node: NodeMessage | null = null;
  let errorDetail: StatusMessage | null = null;
  const names: Array<[number, number, number]> = [];
  let namesStart = -1;
  let namesEnd = -1;
  let contiguous = true;
  let pos = 0;
  while (pos < buf.length) {
    const fieldStart = pos;
    const [key, afterKey] = readVarint(buf, pos);
    const field = key >>> 3;
    const wire = key & 7;
    pos = afterKey;
    if (wire === 0) {
      pos = readVarint(buf, pos)[1];
      continue;
    }
    if (wire === 1 || wire === 5) {
      pos += wire === 1 ? 8 : 4;
      if (pos > buf.length) throw new Error('truncated fixed-width field');
      continue;
    }
    if (wire !== 2) throw new Error(`unsupported wire type ${wire} for field ${field}`);
    const [len, start] = readVarint(buf, pos);
    const end = start + len;
    if (end > buf.length) throw new Error(`field ${field} runs past the end of the message`);
    pos = end;
    switch (field) {
      case 1:
        version = buf.toString('utf8', start, end);
        break;
      case 2:
        node = nodeType().toObject(nodeType().decode(buf.subarray(start, end)), OBJECT_OPTIONS) as NodeMessage;
        break;
      case 3:
        if (names.length === 0) namesStart = fieldStart;
        else if (namesEnd !== fieldStart) contiguous = false;
        namesEnd = end;
        names.push([fieldStart, start, end]);
        break;
      case 4:
        typeUrl = buf.toString('utf8', start, end);
        break;
      case 5:
        nonce = buf.toString('utf8', start, end);
        break;
      case 6:
        errorDetail = statusType().toObject(statusType().decode(buf.subarray(start, end)), OBJECT_OPTIONS) as StatusMessage;
        break;
      default:
        break; // unknown fields are skipped, as protobuf says
    }
  }
  const digest =
    names.length === 0
      ? ''
      : contiguous
        ? hash('sha1', buf.subarray(namesStart, namesEnd), 'base64')
        : hash('sha1', Buffer.concat(names.map(([f, , e]) => buf.subarray(f, e))), 'base64');
  let decoded: string[] | undefined;
  return {
    version_info: version,
    node,
    type_url: typeUrl,
    response_nonce: nonce,
    error_detail: errorDetail,
    namesDigest: digest,
    namesCount: names.length,
    longestNameBytes: names.reduce((m, [, s, e]) => Math.max(m, e - s), 0),
    get resource_names(): string[] {
      decoded ??= names.map(([, s, e]) => buf.toString('utf8', s, e));
      return decoded;
    },
  };
}
