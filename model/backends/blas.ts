// The "blas" tfjs backend: the cpu backend's tensors and kernels, with the kernels that
// dominate training and generation (matmul, elementwise, softmax, reductions, transpose)
// replaced by native loops and OpenBLAS sgemm from native/srlm_blas.node.

import * as tf from "@tensorflow/tfjs";
import { BlasBackend } from "../../native/backend.ts";
import { loadBlasAddon } from "../../native/index.ts";
import { blasKernels } from "../../native/kernels.ts";

export const BLAS_BACKEND = "blas";

let registered: Promise<{ ok: true } | { ok: false; reason: string }> | undefined;

/**
 * Registers the "blas" backend (it does not activate it: call tf.setBackend("blas")).
 * Safe to call many times; resolves { ok: false, reason } when the addon is not built.
 */
export function registerBlasBackend(): Promise<{ ok: true } | { ok: false; reason: string }> {
  registered ??= Promise.resolve().then(register);
  return registered;
}

function register(): { ok: true } | { ok: false; reason: string } {
  const loaded = loadBlasAddon();
  if (!loaded.ok) return loaded;
  if (tf.findBackendFactory(BLAS_BACKEND)) return { ok: true };
  loaded.addon.tuneAllocator();
  // Priority below cpu's: an explicit setBackend picks blas, tfjs's own default never does.
  tf.registerBackend(BLAS_BACKEND, () => new BlasBackend(), 0);
  const overrides = blasKernels(loaded.addon);
  const native = new Set(overrides.map((k) => k.kernelName));
  for (const kernel of tf.getKernelsForBackend("cpu")) {
    if (native.has(kernel.kernelName)) continue;
    tf.registerKernel({ ...kernel, backendName: BLAS_BACKEND });
  }
  for (const kernel of overrides) tf.registerKernel(kernel);
  return { ok: true };
}

/** Names of the kernels the blas backend runs natively (the rest are the cpu backend's). */
export function nativeKernelNames(): string[] {
  const loaded = loadBlasAddon();
  return loaded.ok ? blasKernels(loaded.addon).map((k) => k.kernelName) : [];
}
