// The safetensors format: an 8-byte little-endian header length, a JSON header mapping each
// tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets into the data section), then
// the raw little-endian data. We write F32 and read F32, F16 and BF16 (upcast to float32).
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

export function parseSafetensorsHeader(bytes: Uint8Array, where = "safetensors"): ParsedHeader {
  if (bytes.length < 8)
    throw new Error(`${where}: ${bytes.length} bytes is too short for a safetensors file`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (8 + headerLen > bytes.length) {
    throw new Error(
      `${where}: header length ${headerLen} runs past the end of the file (${bytes.length} bytes)`,
    );
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  } catch (err) {
    throw new Error(`${where}: header is not valid JSON (${(err as Error).message})`);
  }
  const entries = new Map<string, HeaderEntry>();
  let metadata: Record<string, string> = {};
  const dataLen = bytes.length - 8 - headerLen;
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
    entries.set(name, e);
  }
  return { entries, metadata, dataStart: 8 + headerLen };
}

export function decodeSafetensors(
  bytes: Uint8Array,
  where = "safetensors",
): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  const { entries, metadata, dataStart } = parseSafetensorsHeader(bytes, where);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tensors = new Map<string, HostTensor>();
  for (const [name, e] of entries) {
    if (!(e.dtype in BYTES_PER)) {
      throw new Error(
        `${where}: tensor "${name}" has dtype ${e.dtype}; only F32, F16 and BF16 are supported`,
      );
    }
    const dtype = e.dtype as SafetensorsDType;
    const count = e.shape.reduce((a, b) => a * b, 1);
    const [begin, end] = e.data_offsets;
    if (end - begin !== count * BYTES_PER[dtype]) {
      throw new Error(`${where}: tensor "${name}" has ${end - begin} bytes for ${dtype}[${e.shape}]`);
    }
    const data = new Float32Array(count);
    const at = dataStart + begin;
    if (dtype === "F32") for (let i = 0; i < count; i++) data[i] = view.getFloat32(at + i * 4, true);
    else if (dtype === "F16")
      for (let i = 0; i < count; i++) data[i] = f16ToF32(view.getUint16(at + i * 2, true));
    else for (let i = 0; i < count; i++) data[i] = bf16ToF32(view.getUint16(at + i * 2, true));
    tensors.set(name, { shape: [...e.shape], data });
  }
  return { tensors, metadata };
}

const scratch = new DataView(new ArrayBuffer(4));

/** bfloat16 is the top half of a float32. */
export function bf16ToF32(bits: number): number {
  scratch.setUint32(0, bits << 16);
  return scratch.getFloat32(0);
}

export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
