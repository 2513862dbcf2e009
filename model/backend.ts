// The one place that decides which TensorFlow.js backend computes. Everything else in model/
// imports "@tensorflow/tfjs" (core ops) and never a node binding, so the same code runs on
// tfjs-node-gpu on a GPU host and on wasm or cpu on a laptop.
import * as tf from "@tensorflow/tfjs";

export type BackendName = "tfjs-node-gpu" | "tfjs-node" | "blas" | "wasm" | "cpu";
export type BackendPreference = "auto" | BackendName;

export interface BackendChoice {
  name: string;
  skipped: { name: string; reason: string }[];
}

export interface BackendLogger {
  info(obj: object, msg: string): void;
}

export const AUTO_ORDER: readonly BackendName[] = ["tfjs-node-gpu", "tfjs-node", "blas", "wasm", "cpu"];

type Attempt = { ok: true; tfName: string } | { ok: false; reason: string };

function reasonOf(err: unknown): string {
  if (err instanceof Error) return err.message.split("\n")[0];
  return String(err);
}

// Dynamic imports keep the optional packages optional: a missing module is a skip, not a crash.
// The specifiers go through a variable so bundlers and tsc do not insist that they exist.
async function importOptional(specifier: string): Promise<unknown> {
  return import(specifier);
}

async function activate(tfName: string): Promise<Attempt> {
  try {
    const ok = await tf.setBackend(tfName);
    if (!ok) return { ok: false, reason: `tf.setBackend("${tfName}") returned false` };
    await tf.ready();
    firstWriteQuietly();
    return { ok: true, tfName };
  } catch (err) {
    return { ok: false, reason: reasonOf(err) };
  }
}

/**
 * tfjs's cpu backend, and blas which is built on it, print an "install tfjs-node" banner on
 * their first tensor write in Node. Here the backend was chosen on purpose and selectBackend
 * logs which one and why the others were skipped, so the banner is only noise on every command's
 * stderr: the first write happens here with tfjs's warnings off (its PROD flag, which in tfjs 4
 * gates nothing but warn and log), and the flag is put back so later warnings still show.
 */
function firstWriteQuietly(): void {
  const env = tf.env();
  const prod = env.getBool("PROD");
  env.set("PROD", true);
  try {
    tf.tensor1d([0]).dispose();
  } finally {
    env.set("PROD", prod);
  }
}

async function tryBackend(name: BackendName): Promise<Attempt> {
  switch (name) {
    case "tfjs-node-gpu":
    case "tfjs-node": {
      try {
        await importOptional(
          name === "tfjs-node-gpu" ? "@tensorflow/tfjs-node-gpu" : "@tensorflow/tfjs-node",
        );
      } catch (err) {
        return { ok: false, reason: `@tensorflow/${name} not installed (${reasonOf(err)})` };
      }
      // Both bindings register themselves under the name "tensorflow".
      return activate("tensorflow");
    }
    case "blas": {
      let mod: { registerBlasBackend?: () => Promise<{ ok: true } | { ok: false; reason: string }> };
      try {
        mod = (await importOptional("./backends/blas.ts")) as typeof mod;
      } catch (err) {
        return { ok: false, reason: `model/backends/blas.ts could not be loaded (${reasonOf(err)})` };
      }
      if (typeof mod.registerBlasBackend !== "function") {
        return { ok: false, reason: "model/backends/blas.ts does not export registerBlasBackend()" };
      }
      try {
        const registered = await mod.registerBlasBackend();
        if (!registered.ok) return { ok: false, reason: registered.reason };
      } catch (err) {
        return { ok: false, reason: `registerBlasBackend() threw: ${reasonOf(err)}` };
      }
      return activate("blas");
    }
    case "wasm": {
      try {
        await import("@tensorflow/tfjs-backend-wasm");
      } catch (err) {
        return { ok: false, reason: `@tensorflow/tfjs-backend-wasm not loadable (${reasonOf(err)})` };
      }
      return activate("wasm");
    }
    case "cpu":
      return activate("cpu");
  }
}

let current: { preference: BackendPreference; choice: BackendChoice } | null = null;

const consoleLogger: BackendLogger = {
  info(obj, msg) {
    console.error(`${msg} ${JSON.stringify(obj)}`);
  },
};

/**
 * Picks and activates a backend. "auto" walks AUTO_ORDER and takes the first that works; a named
 * preference is tried alone and throws if it fails (asking for "wasm" and silently getting "cpu"
 * would make every figure a lie). Calling again with the same preference is a no-op.
 */
export async function selectBackend(
  preference: BackendPreference = "auto",
  logger: BackendLogger = consoleLogger,
): Promise<BackendChoice> {
  if (
    current &&
    current.preference === preference &&
    tf.getBackend() === backendTfName(current.choice.name)
  ) {
    return current.choice;
  }
  const candidates = preference === "auto" ? AUTO_ORDER : [preference];
  if (!AUTO_ORDER.includes(candidates[0])) {
    throw new Error(
      `selectBackend: unknown backend "${preference}" (expected auto or ${AUTO_ORDER.join(", ")})`,
    );
  }
  const skipped: { name: string; reason: string }[] = [];
  for (const name of candidates) {
    const attempt = await tryBackend(name);
    if (attempt.ok) {
      const choice = { name, skipped };
      current = { preference, choice };
      logger.info({ backend: name, preference, skipped }, `tfjs backend: ${name}`);
      return choice;
    }
    skipped.push({ name, reason: attempt.reason });
  }
  const why = skipped.map((s) => `${s.name}: ${s.reason}`).join("; ");
  throw new Error(`selectBackend(${preference}): no backend could be activated (${why})`);
}

function backendTfName(name: string): string {
  return name === "tfjs-node" || name === "tfjs-node-gpu" ? "tensorflow" : name;
}

/** The backend selectBackend chose last, or null before the first call. */
export function currentBackend(): BackendChoice | null {
  return current?.choice ?? null;
}
