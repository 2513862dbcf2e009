// The one place that loads configuration: defaults < preset < file (JSON or YAML) < SRLM_*
// environment variables < command-line flags. Errors name the field, the value and what is allowed.
import { readFileSync } from "node:fs";
import { extname } from "node:path";
import YAML from "yaml";
import type { z } from "zod";
import { presets } from "./presets.ts";
import { type Config, configSchema } from "./schema.ts";

type Tree = Record<string, unknown>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  // Dotted paths to values, e.g. { "selfReward.iterations": "3" } from `--set` or named flags.
  flags?: Record<string, unknown>;
  preset?: string;
}

// Environment: SRLM_<SECTION>__<FIELD> in upper snake case, e.g. SRLM_SELF_REWARD__ITERATIONS=3,
// plus SRLM_NATS_URL, SRLM_PRESET, SRLM_RUN, SRLM_OUT and SRLM_LOG_LEVEL for the common ones.
const envAliases: Record<string, string> = {
  SRLM_NATS_URL: "nats.url",
  SRLM_PRESET: "preset",
  SRLM_RUN: "run",
  SRLM_OUT: "out",
  SRLM_LOG_LEVEL: "log.level",
  SRLM_BACKEND: "model.backend",
};

const camel = (s: string) => s.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

export function envToFlags(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined || !key.startsWith("SRLM_")) continue;
    if (key in envAliases) out[envAliases[key]] = value;
    else if (key.includes("__")) out[key.slice(5).split("__").map(camel).join(".")] = value;
  }
  return out;
}

function readFile(path: string): Tree {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`config file ${path}: cannot read it (${(err as Error).message})`);
  }
  try {
    const parsed = extname(path) === ".json" ? JSON.parse(text) : YAML.parse(text);
    if (parsed === null || parsed === undefined) return {};
    if (typeof parsed !== "object" || Array.isArray(parsed))
      throw new Error("the top level must be a mapping");
    return parsed as Tree;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`config file ${path}: ${(err as Error).message}`);
  }
}

// Strings from the environment and flags become numbers/booleans where they look like one; the
// schema then says whether that type is allowed for the field.
function coerce(value: unknown): unknown {
  if (typeof value !== "string") return value;
  if (value === "true") return true;
  if (value === "false") return false;
  if (value.trim() !== "" && Number.isFinite(Number(value))) return Number(value);
  return value;
}

// Every nats field but replicas is a string (a URL, a name, a secret, a path): a password of
// digits stays one.
const coerceAt = (path: string, value: unknown) =>
  path.startsWith("nats.") && path !== "nats.replicas" ? value : coerce(value);

function setPath(tree: Tree, path: string, value: unknown): void {
  const keys = path.split(".");
  let node = tree;
  for (const key of keys.slice(0, -1)) {
    if (typeof node[key] !== "object" || node[key] === null) node[key] = {};
    node = node[key] as Tree;
  }
  node[keys[keys.length - 1]] = value;
}

function merge(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    const bothTrees =
      typeof value === "object" &&
      value !== null &&
      !Array.isArray(value) &&
      typeof prev === "object" &&
      prev !== null;
    out[key] = bothTrees ? merge(prev as Tree, value as Tree) : value;
  }
  return out;
}

function valueAt(tree: unknown, path: PropertyKey[]): unknown {
  let node = tree;
  for (const key of path) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

function describeIssue(issue: z.core.$ZodIssue, input: unknown, sources: string): string {
  const field = issue.path.join(".") || "(top level)";
  if (issue.code === "unrecognized_keys") {
    const where = issue.path.length ? `${field}.` : "";
    return `unknown field ${issue.keys.map((k) => `${where}${k}`).join(", ")} (from ${sources})`;
  }
  const value = JSON.stringify(valueAt(input, issue.path));
  let allowed = issue.message;
  if (issue.code === "invalid_value")
    allowed = `one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
  return `field ${field} = ${value}: ${allowed} (from ${sources})`;
}

export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const fileTree = options.file ? readFile(options.file) : {};
  const envFlags = envToFlags(env);
  const flagTree: Tree = {};
  for (const [path, value] of Object.entries(options.flags ?? {})) {
    if (value !== undefined) setPath(flagTree, path, coerceAt(path, value));
  }
  const envTree: Tree = {};
  for (const [path, value] of Object.entries(envFlags)) setPath(envTree, path, coerceAt(path, value));

  const presetName = String(
    options.preset ??
      flagTree.preset ??
      envTree.preset ??
      (fileTree.preset as string | undefined) ??
      "default",
  );
  const preset = presets[presetName];
  if (!preset) {
    throw new ConfigError(
      `field preset = ${JSON.stringify(presetName)}: one of ${Object.keys(presets).join(", ")}`,
    );
  }
  // Layers merge field by field over the full defaults, so `--set train.dpo.steps=40` keeps
  // the other dpo fields instead of replacing the whole section.
  const defaults = configSchema.parse({}) as Tree;
  let merged = [preset as Tree, fileTree, envTree, flagTree].reduce(merge, defaults);
  merged = { ...merged, preset: presetName };
  if (merged.out === undefined && merged.run !== undefined) merged.out = `runs/${merged.run}`;

  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const sources = ["defaults", `preset ${presetName}`, options.file ?? "", "SRLM_* environment", "flags"]
      .filter(Boolean)
      .join(" < ");
    const lines = parsed.error.issues.map((issue) => describeIssue(issue, merged, sources));
    throw new ConfigError(`invalid config:\n  ${lines.join("\n  ")}`);
  }
  return parsed.data;
}
