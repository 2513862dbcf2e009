// JSONL import and export in the shapes users already have: SFT pairs, preference pairs and
// question/answer sets. Every error names the file and the 1-based line it is about.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

export interface JsonlShapes {
  "prompt-response": { prompt: string; response: string };
  preference: { prompt: string; chosen: string; rejected: string };
  qa: { question: string; answer: string };
}
export type JsonlShape = keyof JsonlShapes;

const FIELDS: { [S in JsonlShape]: readonly (keyof JsonlShapes[S])[] } = {
  "prompt-response": ["prompt", "response"],
  preference: ["prompt", "chosen", "rejected"],
  qa: ["question", "answer"],
};

export const JSONL_SHAPES = Object.keys(FIELDS) as JsonlShape[];

export class JsonlError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | null,
    problem: string,
  ) {
    super(line === null ? `${file}: ${problem}` : `${file}:${line}: ${problem}`);
    this.name = "JsonlError";
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/**
 * Rows of `text` in the given shape; `file` only names the source in errors. Blank lines are
 * skipped; extra fields are dropped, so rows carry exactly the shape's fields.
 */
export function parseJsonl<S extends JsonlShape>(text: string, shape: S, file: string): JsonlShapes[S][] {
  const fields = FIELDS[shape] as readonly string[];
  const rows: JsonlShapes[S][] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw === "") continue;
    const lineNo = i + 1;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      throw new JsonlError(file, lineNo, `bad JSON (${(err as Error).message})`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new JsonlError(
        file,
        lineNo,
        `expected a JSON object with ${fields.join(", ")}, got ${describe(value)}`,
      );
    }
    const record = value as Record<string, unknown>;
    const row: Record<string, string> = {};
    for (const field of fields) {
      if (!(field in record)) {
        throw new JsonlError(
          file,
          lineNo,
          `missing field "${field}" (a ${shape} row needs ${fields.join(", ")})`,
        );
      }
      const v = record[field];
      if (typeof v !== "string") {
        throw new JsonlError(file, lineNo, `field "${field}" must be a string, got ${describe(v)}`);
      }
      row[field] = v;
    }
    rows.push(row as JsonlShapes[S]);
  }
  if (rows.length === 0) throw new JsonlError(file, null, `empty file: no ${shape} rows`);
  return rows;
}

export async function readJsonl<S extends JsonlShape>(path: string, shape: S): Promise<JsonlShapes[S][]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new JsonlError(path, null, `cannot read (${(err as Error).message})`);
  }
  return parseJsonl(text, shape, path);
}

/** One JSON object per line, newline-terminated; creates the parent folder. */
export async function writeJsonl(path: string, rows: readonly object[]): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, rows.map((r) => JSON.stringify(r) + "\n").join(""), "utf8");
}
