/**
 * The AWS JSON 1.1 wire protocol as KMS speaks it: `POST /` with `X-Amz-Target:
 * TrentService.<Op>`, JSON bodies with base64 blobs, errors as `{"__type", "message"}`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export const JSON_11 = 'application/x-amz-json-1.1';
export const TARGET_PREFIX = 'TrentService.';
/** Requests larger than this are refused before parsing (KMS plaintexts are at most 4 KiB). */
export const MAX_BODY_BYTES = 1 << 20;

/** An error KMS would answer with: the SDK turns `type` into the exception class name. */
export class KmsError extends Error {
  readonly type: string;
  readonly status: number;
  constructor(type: string, message: string, status = 400) {
    super(message);
    this.name = 'KmsError';
    this.type = type;
    this.status = status;
  }
}

export const notFound = (message: string) => new KmsError('NotFoundException', message);
export const validation = (message: string) => new KmsError('ValidationException', message);
export const invalidCiphertext = (message: string) => new KmsError('InvalidCiphertextException', message);

export type JsonObject = Record<string, unknown>;

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new KmsError('ValidationException', `request body exceeds ${MAX_BODY_BYTES} bytes`, 413);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export function parseJsonObject(body: Buffer): JsonObject {
  if (body.length === 0) return {};
  let o: unknown;
  try {
    o = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new KmsError('SerializationException', `request body is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) {
    throw new KmsError('SerializationException', 'request body must be a JSON object');
  }
  return o as JsonObject;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, contentType = JSON_11): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendKmsError(res: ServerResponse, err: KmsError): void {
  // The SDK reads the error code from x-amzn-errortype or __type; send both, like AWS does.
  res.setHeader('x-amzn-errortype', err.type);
  sendJson(res, err.status, { __type: err.type, message: err.message });
}

// ---- typed field readers: one clear message per bad field, naming it and what was expected ----

export function optionalString(body: JsonObject, field: string): string | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw validation(`${field} must be a string, got ${typeof v}`);
  return v;
}

export function requiredString(body: JsonObject, field: string): string {
  const v = optionalString(body, field);
  if (v === undefined || v === '') throw validation(`${field} is required and must be a non-empty string`);
  return v;
}

export function optionalInteger(body: JsonObject, field: string): number | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw validation(`${field} must be an integer`);
  return v;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function optionalBlob(body: JsonObject, field: string): Buffer | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !BASE64.test(v)) throw new KmsError('SerializationException', `${field} must be a base64 string`);
  return Buffer.from(v, 'base64');
}

export function requiredBlob(body: JsonObject, field: string, min: number, max: number): Buffer {
  const b = optionalBlob(body, field);
  if (b === undefined) throw validation(`${field} is required`);
  if (b.length < min || b.length > max) {
    throw validation(`${field} must be ${min} to ${max} bytes long, got ${b.length}`);
  }
  return b;
}

export function optionalContext(body: JsonObject, field: string): Record<string, string> {
  const v = body[field];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw validation(`${field} must be a map of string to string`);
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'string') throw validation(`${field}[${JSON.stringify(k)}] must be a string, got ${typeof x}`);
  }
  return v as Record<string, string>;
}

export function optionalBoolean(body: JsonObject, field: string): boolean | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw validation(`${field} must be a boolean`);
  return v;
}

/** JSON 1.1 timestamps are epoch seconds (a number). */
export const epochSeconds = (ms: number): number => ms / 1000;
