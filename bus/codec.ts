// Every message body on the bus is standard MessagePack, written and read by msgpackr.
//
// msgpackr is configured so that nothing msgpackr-specific reaches the wire:
// - `useRecords: false`: no record extension; maps are plain MessagePack maps.
// - `skipValues: [undefined]`: object properties that are undefined are left out rather than
//   written as msgpackr's private "undefined" extension.
// - numeric typed arrays use the ext type below instead of msgpackr's native-endian 0x74 extension
//   (or, without `moreTypes`, a bare `bin` that loses the element type).
//
// Typed-array extension (any MessagePack library can decode it):
//   ext type 0x54 ("T"); ext data = 1 byte dtype code, then the elements as little-endian bytes.
//   dtype codes: 1 int8, 3 int16, 4 uint16, 5 int32, 6 uint32, 7 float32, 8 float64
//   (2 is reserved for uint8, which travels as plain `bin`).
//   Element bytes are copied, never converted through JS numbers, so NaN payloads, -0 and
//   subnormals round-trip bit-exact.
// Uint8Array (and Node Buffer) is written as MessagePack `bin` and decodes to a Uint8Array.
import { endianness } from "node:os";
import { addExtension, C1, Packr } from "msgpackr";

export const TYPED_ARRAY_EXT = 0x54;

type NumericArrayCtor =
  | Int8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor;

const DTYPES: ReadonlyArray<{ code: number; name: string; ctor: NumericArrayCtor }> = [
  { code: 1, name: "int8", ctor: Int8Array },
  { code: 3, name: "int16", ctor: Int16Array },
  { code: 4, name: "uint16", ctor: Uint16Array },
  { code: 5, name: "int32", ctor: Int32Array },
  { code: 6, name: "uint32", ctor: Uint32Array },
  { code: 7, name: "float32", ctor: Float32Array },
  { code: 8, name: "float64", ctor: Float64Array },
];

const HOST_IS_LE = endianness() === "LE";

/** Bytes of a view in little-endian element order (a copy on big-endian hosts only). */
function littleEndianBytes(view: ArrayBufferView & { BYTES_PER_ELEMENT: number }): Uint8Array {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  return HOST_IS_LE ? bytes : swapElementBytes(bytes, view.BYTES_PER_ELEMENT);
}

function swapElementBytes(bytes: Uint8Array, width: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += width) {
    for (let j = 0; j < width; j++) out[i + j] = bytes[i + width - 1 - j];
  }
  return out;
}

for (const { code, ctor } of DTYPES) {
  // addExtension is process-wide in msgpackr; registering it here, once, makes this module the
  // single owner of how typed arrays travel.
  addExtension({
    Class: ctor,
    type: TYPED_ARRAY_EXT,
    pack(value: InstanceType<NumericArrayCtor>): Uint8Array {
      const body = littleEndianBytes(value);
      const out = new Uint8Array(1 + body.byteLength);
      out[0] = code;
      out.set(body, 1);
      return out;
    },
    unpack(data: Uint8Array): InstanceType<NumericArrayCtor> {
      return decodeTypedArray(data);
    },
  });
}

function decodeTypedArray(data: Uint8Array): InstanceType<NumericArrayCtor> {
  const entry = DTYPES.find((d) => d.code === data[0]);
  if (!entry) throw new Error(`codec: typed-array extension has unknown dtype code ${data[0]}`);
  const width = entry.ctor.BYTES_PER_ELEMENT;
  const byteLength = data.byteLength - 1;
  if (byteLength % width !== 0) {
    throw new Error(`codec: ${entry.name} payload of ${byteLength} bytes is not a multiple of ${width}`);
  }
  // slice() copies into a fresh, aligned ArrayBuffer.
  const bytes = HOST_IS_LE ? data.slice(1) : swapElementBytes(data.subarray(1), width);
  return new entry.ctor(bytes.buffer as ArrayBuffer, 0, byteLength / width);
}

const packr = new Packr({
  useRecords: false,
  skipValues: [undefined],
  copyBuffers: true,
} as ConstructorParameters<typeof Packr>[0]);

export function encode(value: unknown): Uint8Array {
  const buf = packr.pack(value);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Throws on bytes that are not one complete MessagePack value. */
export function decode(bytes: Uint8Array): unknown {
  // A plain Uint8Array view makes decoded `bin` values plain Uint8Arrays rather than Buffers.
  const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const value = packr.unpack(view);
  // msgpackr turns the reserved byte 0xc1 into a marker object instead of failing.
  if (value === C1) throw new Error("codec: 0xc1 is reserved in MessagePack and is not a value");
  return value;
}

/** dtype name of a numeric typed array, for logs and taps. */
export function dtypeOf(value: unknown): string | undefined {
  if (value instanceof Uint8Array) return "uint8";
  for (const d of DTYPES) if (value instanceof d.ctor) return d.name;
  return undefined;
}
