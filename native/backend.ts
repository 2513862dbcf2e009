// The cpu backend plus recycling of the float32 buffers the native kernels allocate.
//
// A disposed tensor's memory otherwise waits for V8's garbage collector, so every new output
// lands on fresh pages and pays a page fault per 4 KiB on first write; a training step reuses
// the same shapes over and over, so handing a disposed buffer to the next kernel of that size
// removes most of that cost. A buffer is recycled only when nothing else can still see it:
// it came from `take`, was registered to exactly one tensor as a whole array (no views), and
// was never handed out by readSync/read (which give callers the backend's own array).

import type { backend_util, DataId, DataType } from "@tensorflow/tfjs";
import { MathBackendCPU } from "@tensorflow/tfjs-backend-cpu";

/** Buffers smaller than this come from V8's ordinary allocator and are not recycled. */
const MIN_POOLED = 4096;
/** Upper bound on idle pooled memory, so a burst of large tensors does not stay resident. */
const MAX_POOLED_BYTES = 512 * 1024 * 1024;

function uninitialised(n: number): Float32Array {
  if (n < MIN_POOLED) return new Float32Array(n);
  const bytes = Buffer.allocUnsafeSlow(n * 4);
  return new Float32Array(bytes.buffer, bytes.byteOffset, n);
}

export class BlasBackend extends MathBackendCPU {
  private readonly free = new Map<number, Float32Array[]>();
  private pooledBytes = 0;
  /** Buffers from take(): candidates for recycling. */
  private readonly owned = new WeakSet<ArrayBufferLike>();
  /** Owned buffers currently backing exactly one tensor. */
  private readonly live = new WeakSet<ArrayBufferLike>();
  /** Owned buffers that escaped (read by a caller, shared, or viewed): never recycled. */
  private readonly pinned = new WeakSet<ArrayBufferLike>();

  /** An output buffer of n floats with arbitrary contents: the kernel must write every element. */
  take(n: number): Float32Array {
    const reused = this.free.get(n)?.pop();
    if (reused) {
      this.pooledBytes -= reused.byteLength;
      return reused;
    }
    const fresh = uninitialised(n);
    if (n >= MIN_POOLED) this.owned.add(fresh.buffer);
    return fresh;
  }

  /** Floats waiting in the pool (for tests and diagnostics). */
  pooledFloats(): number {
    return this.pooledBytes / 4;
  }

  private track(values: backend_util.BackendValues | null | undefined): void {
    if (!ArrayBuffer.isView(values) || !this.owned.has(values.buffer)) return;
    const whole = values.byteOffset === 0 && values.byteLength === values.buffer.byteLength;
    if (!whole || this.live.has(values.buffer)) this.pinned.add(values.buffer);
    else this.live.add(values.buffer);
  }

  private pin(values: unknown): void {
    if (ArrayBuffer.isView(values)) this.pinned.add(values.buffer);
  }

  override write(values: backend_util.BackendValues, shape: number[], dtype: DataType): DataId {
    this.track(values);
    return super.write(values, shape, dtype);
  }

  override move(
    dataId: DataId,
    values: backend_util.BackendValues,
    shape: number[],
    dtype: DataType,
    refCount: number,
  ): void {
    this.track(values);
    super.move(dataId, values, shape, dtype, refCount);
  }

  override readSync(dataId: DataId): backend_util.BackendValues {
    const values = super.readSync(dataId);
    this.pin(values);
    return values;
  }

  override async read(dataId: DataId): Promise<backend_util.BackendValues> {
    this.pin(this.data.get(dataId)?.values);
    return super.read(dataId);
  }

  override disposeData(dataId: DataId, force = false): boolean {
    const values = this.data.get(dataId)?.values;
    const released = super.disposeData(dataId, force);
    if (!(values instanceof Float32Array) || this.data.has(dataId)) return released;
    const buffer = values.buffer;
    if (!this.owned.has(buffer) || this.pinned.has(buffer) || !this.live.has(buffer)) return released;
    this.live.delete(buffer);
    if (this.pooledBytes + values.byteLength > MAX_POOLED_BYTES) return released;
    const list = this.free.get(values.length);
    if (list) list.push(values);
    else this.free.set(values.length, [values]);
    this.pooledBytes += values.byteLength;
    return released;
  }

  override dispose(): void {
    this.free.clear();
    this.pooledBytes = 0;
    super.dispose();
  }
}
