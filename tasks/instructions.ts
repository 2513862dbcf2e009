// An open-ended instruction task from the user's JSONL files, as the paper runs it: IFT and EFT
// seed data, seed prompts for self-instruct, held-out prompts, the additive 5-point
// LLM-as-a-Judge prompt, and no verifier (the report then gives what the judge can measure).
import { readFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";
import type { PromptResponse } from "./data.ts";
import { JsonlError } from "./jsonl.ts";
import { deriveSeed, makeRng } from "./random.ts";
import type { PromptFormat, Task, WrittenPrompt } from "./task.ts";

export const INSTRUCTIONS_TASK = "jsonl";

/** The paper's additive rubric, in srlm's words: one point per criterion met, then `Score: N`. */
export const DEFAULT_JUDGE_TEMPLATE = `Rate how well the response below answers the user's request, from 0 to 5 points. Start at 0 and add one point for each of these that holds:
- The response is relevant to the request and gives some information about it, even if it is incomplete or includes some unrelated content.
- It addresses a substantial part of the request, though it may not resolve it fully or answer it directly.
- It answers the basic elements of the request in a useful way, even if it is not written the way an expert would.
- It is clearly written from an AI assistant's point of view, addresses the request directly and completely, and is well organised, even if it could be more concise or focused.
- It is impeccably tailored to the request: expert, engaging and insightful, with no extraneous content.

Request:
{{ prompt }}

Response:
{{ response }}

Justify your rating in a few sentences, then give it on the last line as "Score: <points>".`;

/** Few-shot self-instruct: shown some seed prompts, the model writes one new prompt. */
export const DEFAULT_SELF_INSTRUCT_TEMPLATE = `Here are some requests that users have sent to an AI assistant:
{% for p in examples %}
Request {{ loop.index }}:
{{ p }}
{% endfor %}
Write one new request, different from all of these, that a user could send. Reply with the request alone.`;

export interface InstructionFiles {
  ift: string;
  eft: string;
  prompts: string;
  heldOut: string;
}

export interface InstructionTaskOptions {
  files: InstructionFiles;
  format: PromptFormat;
  seed: number;
  /** Held-out prompts set aside from the seed prompts when no held-out file is given. */
  heldOutSize: number;
  /** Prompts set aside from the seed prompts for choosing settings (`selfReward.evalSplit: dev`). */
  devSize?: number;
  judgeTemplate?: string;
  selfInstructTemplate?: string;
  maxOverlap: number;
  maxPromptChars: number;
}

type Row = { line: number; record: Record<string, unknown> };

function readRows(file: string): Row[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new JsonlError(file, null, `cannot read (${(err as Error).message})`);
  }
  const rows: Row[] = [];
  text.split("\n").forEach((raw, i) => {
    if (raw.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      throw new JsonlError(file, i + 1, `bad JSON (${(err as Error).message})`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value))
      throw new JsonlError(file, i + 1, "expected a JSON object");
    rows.push({ line: i + 1, record: value as Record<string, unknown> });
  });
  if (rows.length === 0) throw new JsonlError(file, null, "empty file: no rows");
  return rows;
}

function text(file: string, row: Row, field: string): string {
  const v = row.record[field];
  if (typeof v !== "string") throw new JsonlError(file, row.line, `field "${field}" must be a string`);
  if (v.trim() === "") throw new JsonlError(file, row.line, `field "${field}" is empty`);
  return v;
}

/** `{prompt, response}`, or `{messages}` of one user turn and the reply. A system turn is refused,
 * not dropped: the loop's prompts are single user turns, and a lost instruction would be silent. */
function promptResponse(file: string, row: Row, responseField = "response"): PromptResponse {
  if (!("messages" in row.record))
    return { prompt: text(file, row, "prompt"), response: text(file, row, responseField) };
  const messages = row.record.messages;
  if (!Array.isArray(messages)) throw new JsonlError(file, row.line, `field "messages" must be an array`);
  const turns = messages.map((m, k) => {
    const role = (m as { role?: unknown })?.role;
    const content = (m as { content?: unknown })?.content;
    if (typeof role !== "string" || typeof content !== "string")
      throw new JsonlError(file, row.line, `messages[${k}] needs string "role" and "content"`);
    return { role, content };
  });
  if (turns.some((t) => t.role === "system"))
    throw new JsonlError(
      file,
      row.line,
      "messages hold a system turn, which srlm does not use yet; fold it into the user turn",
    );
  const chat = turns;
  if (chat.length !== 2 || chat[0].role !== "user" || chat[1].role !== "assistant")
    throw new JsonlError(
      file,
      row.line,
      `messages must be one user turn then one assistant turn (got ${chat.map((t) => t.role).join(", ") || "none"}); multi-turn rows are not supported`,
    );
  return { prompt: chat[0].content, response: chat[1].content };
}

const words = (s: string) => s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];

/** ROUGE-L F1 over words: the overlap measure self-instruct filters near-duplicate prompts with. */
export function rougeL(a: string, b: string): number {
  const x = words(a);
  const y = words(b);
  if (x.length === 0 || y.length === 0) return 0;
  let prev = new Array<number>(y.length + 1).fill(0);
  for (let i = 1; i <= x.length; i++) {
    const row = new Array<number>(y.length + 1).fill(0);
    for (let j = 1; j <= y.length; j++)
      row[j] = x[i - 1] === y[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], row[j - 1]);
    prev = row;
  }
  const lcs = prev[y.length];
  return lcs === 0 ? 0 : (2 * lcs) / (x.length + y.length);
}

function template(source: string, what: string): Template {
  try {
    return new Template(source);
  } catch (err) {
    throw new Error(`${what}: not a valid Jinja template (${(err as Error).message})`);
  }
}

export function instructionTask(opts: InstructionTaskOptions): Task {
  const { files } = opts;
  if (!files.ift)
    throw new Error("data.jsonl.ift: an instruction task needs an IFT file ({prompt, response} lines)");
  const ift = readRows(files.ift).map((r) => promptResponse(files.ift, r));
  const judge = template(opts.judgeTemplate ?? DEFAULT_JUDGE_TEMPLATE, "judge.promptTemplate");
  const write = template(
    opts.selfInstructTemplate ?? DEFAULT_SELF_INSTRUCT_TEMPLATE,
    "selfInstruct.template",
  );
  const judgePrompt = (prompt: string, response: string) => judge.render({ prompt, response }).trim();
  const eft = files.eft
    ? readRows(files.eft).map((r) =>
        "messages" in r.record
          ? promptResponse(files.eft, r)
          : {
              prompt: judgePrompt(text(files.eft, r, "prompt"), text(files.eft, r, "response")),
              response: text(files.eft, r, "judgement"),
            },
      )
    : [];
  const pool = files.prompts
    ? readRows(files.prompts).map((r) => text(files.prompts, r, "prompt"))
    : ift.map((x) => x.prompt);
  let seedPrompts = [...new Set(pool)];
  let heldOut: string[];
  if (files.heldOut) heldOut = readRows(files.heldOut).map((r) => text(files.heldOut, r, "prompt"));
  else {
    if (seedPrompts.length <= opts.heldOutSize)
      throw new Error(
        `data.heldOutSize ${opts.heldOutSize}: only ${seedPrompts.length} distinct seed prompts; give data.jsonl.heldOut or a smaller heldOutSize`,
      );
    const shuffled = makeRng(deriveSeed(opts.seed, "heldOut")).shuffle(seedPrompts);
    heldOut = shuffled.slice(0, opts.heldOutSize);
    seedPrompts = shuffled.slice(opts.heldOutSize);
  }
  const devSize = opts.devSize ?? 0;
  let dev: string[] = [];
  if (devSize > 0) {
    const rest = seedPrompts.filter((p) => !heldOut.includes(p));
    if (rest.length <= devSize)
      throw new Error(
        `data.devSize ${devSize}: only ${rest.length} distinct seed prompts outside held-out; give a smaller devSize`,
      );
    const shuffled = makeRng(deriveSeed(opts.seed, "dev")).shuffle(rest);
    dev = shuffled.slice(0, devSize);
    seedPrompts = shuffled.slice(devSize);
  }
  const held = new Set([...heldOut, ...dev]);
  return {
    name: INSTRUCTIONS_TASK,
    format: opts.format,
    scoreParser: "last-score",
    data: {
      pretrain: [],
      // Held-out and dev prompts are never trained on, whichever file they also appear in.
      ift: ift.filter((x) => !held.has(x.prompt)),
      eft,
      selfInstruct: [],
      seedPrompts: seedPrompts.filter((p) => !held.has(p)),
      heldOut: heldOut.map((prompt) => ({ prompt })),
      dev: dev.map((prompt) => ({ prompt })),
      judgeEval: [],
    },
    judgePrompt,
    groupOf: () => null,
    selfInstructPrompt: (examples) => write.render({ examples: [...examples] }).trim(),
    parseWrittenPrompt(answer): WrittenPrompt {
      // A label the model copied from the few-shot layout is not part of the request.
      const prompt = answer.replace(/^\s*(?:new\s+)?request(?:\s+\d+)?\s*:\s*/i, "").trim();
      if (prompt === "") return { ok: false, reason: "empty" };
      if (prompt.length > opts.maxPromptChars)
        return { ok: false, reason: `longer than ${opts.maxPromptChars} characters` };
      if (words(prompt).length < 3) return { ok: false, reason: "fewer than 3 words" };
      return { ok: true, prompt };
    },
    nearDuplicate: (prompt, seen) => {
      for (const p of seen) if (rougeL(prompt, p) >= opts.maxOverlap) return true;
      return false;
    },
  };
}
