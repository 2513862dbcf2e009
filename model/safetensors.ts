// The safetensors format: an 8-byte little-endian header length, a JSON header mapping each
// tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets into the data section), then
// the raw little-endian data. We write F32 and read F32, F16 and BF16 (upcast to float32).
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import type { HostTensor } from "./llama.ts";

export type SafetensorsDType = "F32" | "F16" | "BF16";

export interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

const BYTES_PER: Record<SafetensorsDType, number> = { F32: 4, F16: 2, BF16: 2 };

/** Serialises float32 tensors, sorted by name; metadata values must be strings (the format says so). */
export function encodeSafetensors(
  tensors: Map<string, HostTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new Error(`encodeSafetensors: "${name}" has ${t.data.length} values for shape [${t.shape}]`);
    }
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + count * 4] };
    offset += count * 4;
  }
  // Pad the header with spaces so the data section starts 8-byte aligned, as the reference writer does.
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  const dataStart = 8 + headerBytes.length;
  for (const name of names) {
    const t = tensors.get(name)!;
    const [begin] = (header[name] as HeaderEntry).data_offsets;
    for (let i = 0; i < t.data.length; i++) view.setFloat32(dataStart + begin + i * 4, t.data[i], true);
  }
  return out;
}

export interface ParsedHeader {
  entries: Map<string, HeaderEntry>;
  metadata: Record<string, string>;
  dataStart: number;
}

// The reference implementation refuses headers above 100 MB; a larger length is a corrupt file.
const MAX_HEADER_BYTES = 100_000_000;

function checkHeaderLength(headerLen: number, fileLen: number, where: string): void {
  if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > fileLen) {
    throw new Error(`${where}: header length ${headerLen} runs past the end of the file (${fileLen} bytes)`);
  }
}

/** Header entries from the header's JSON bytes, each checked against a data section of dataLen bytes. */
function parseHeaderJson(json: Uint8Array, dataLen: number, where: string): Omit<ParsedHeader, "dataStart"> {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(new TextDecoder().decode(json));
  } catch (err) {
    throw new Error(`${where}: header is not valid JSON (${(err as Error).message})`);
  }
  const entries = new Map<string, HeaderEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (name === "__metadata__") {
      metadata = (value ?? {}) as Record<string, string>;
      continue;
    }
    const e = value as HeaderEntry;
    if (!e || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets) || typeof e.dtype !== "string") {
      throw new Error(`${where}: tensor "${name}" has a malformed header entry`);
    }
    const [begin, end] = e.data_offsets;
    if (!(begin >= 0 && end >= begin && end <= dataLen)) {
      throw new Error(
        `${where}: tensor "${name}" offsets [${begin}, ${end}] outside the data (${dataLen} bytes)`,
      );
    }
    if (!(e.dtype in BYTES_PER)) {
      throw new Error(
        `${where}: tensor "${name}" has dtype ${e.dtype}; only F32, F16 and BF16 are supported`,
      );
    }
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * BYTES_PER[e.dtype as SafetensorsDType]) {
      throw new Error(`${where}: tensor "${name}" has ${end - begin} bytes for ${e.dtype}[${e.shape}]`);
    }
    entries.set(name, e);
  }
  return { entries, metadata };
}

export function parseSafetensorsHeader(bytes: Uint8Array, where = "safetensors"): ParsedHeader {
  if (bytes.length < 8)
    throw new Error(`${where}: ${bytes.length} bytes is too short for a safetensors file`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  checkHeaderLength(headerLen, bytes.length, where);
  const dataStart = 8 + headerLen;
  const parsed = parseHeaderJson(bytes.subarray(8, dataStart), bytes.length - dataStart, where);
  return { ...parsed, dataStart };
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** One tensor's raw little-endian bytes as float32. */
function toFloat32(raw: Uint8Array, dtype: SafetensorsDType): Float32Array {
  const count = raw.length / BYTES_PER[dtype];
  const out = new Float32Array(count);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (dtype === "F32") {
    if (littleEndian) new Uint8Array(out.buffer).set(raw);
    else for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  } else if (dtype === "BF16") {
    // bfloat16 is the top half of a float32: shift the bits into place.
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = view.getUint16(i * 2, true) << 16;
  } else {
    for (let i = 0; i < count; i++) out[i] = f16ToF32(view.getUint16(i * 2, true));
  }
  return out;
}

export function decodeSafetensors(
  bytes: Uint8Array,
  where = "safetensors",
): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  const { entries, metadata, dataStart } = parseSafetensorsHeader(bytes, where);
  const tensors = new Map<string, HostTensor>();
  for (const [name, e] of entries) {
    const [begin, end] = e.data_offsets;
    const data = toFloat32(bytes.subarray(dataStart + begin, dataStart + end), e.dtype as SafetensorsDType);
    tensors.set(name, { shape: [...e.shape], data });
  }
  return { tensors, metadata };
}

/**
 * decodeSafetensors on a file, read one tensor at a time: the whole file never sits in memory
 * beside its float32 copy, and files above Node's 2 GiB readFileSync limit (a 1B-parameter
 * model in bf16 is one) load.
 */
export function readSafetensorsFile(path: string): {
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
} {
  const fd = openSync(path, "r");
  try {
    const fileLen = fstatSync(fd).size;
    const readAt = (length: number, position: number): Uint8Array => {
      const buf = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, buf, done, length - done, position + done);
        if (n === 0) throw new Error(`${path}: file ended at byte ${position + done} of ${fileLen}`);
        done += n;
      }
      return buf;
    };
    if (fileLen < 8) throw new Error(`${path}: ${fileLen} bytes is too short for a safetensors file`);
    const headerLen = Number(new DataView(readAt(8, 0).buffer).getBigUint64(0, true));
    checkHeaderLength(headerLen, fileLen, path);
    const dataStart = 8 + headerLen;
    const { entries, metadata } = parseHeaderJson(readAt(headerLen, 8), fileLen - dataStart, path);
    const tensors = new Map<string, HostTensor>();
    for (const [name, e] of entries) {
      const [begin, end] = e.data_offsets;
      const data = toFloat32(readAt(end - begin, dataStart + begin), e.dtype as SafetensorsDType);
      tensors.set(name, { shape: [...e.shape], data });
    }
    return { tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
