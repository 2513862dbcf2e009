// The run's task, from the one config: srlm's synthetic families, or instruction data from JSONL.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config/schema.ts";
import { familyByName } from "./families.ts";
import { instructionTask } from "./instructions.ts";
import { makeRng } from "./random.ts";
import { syntheticTask } from "./synthetic.ts";
import type { PromptFormat, Task } from "./task.ts";

/** chat where the base checkpoint's tokenizer has a chat template (data.format auto), else plain. */
export function promptFormat(cfg: Config): PromptFormat {
  if (cfg.data.format !== "auto") return cfg.data.format;
  if (!cfg.model.base) return "plain";
  const file = join(cfg.model.base, "tokenizer_config.json");
  if (!existsSync(file)) return "plain";
  const config = JSON.parse(readFileSync(file, "utf8")) as { chat_template?: unknown };
  return typeof config.chat_template === "string" ? "chat" : "plain";
}

function readTemplate(path: string, field: string): string | undefined {
  if (!path) return undefined;
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`${field}: cannot read ${path} (${(err as Error).message})`);
  }
}

export function taskFromConfig(cfg: Config): Task {
  const d = cfg.data;
  if (d.task === "synthetic") {
    if (d.format === "chat")
      throw new Error('data.format: the synthetic task is plain text; use "plain" or "auto"');
    return syntheticTask({ ...d, fewShot: cfg.selfReward.fewShot });
  }
  return instructionTask({
    files: d.jsonl,
    format: promptFormat(cfg),
    seed: d.seed,
    heldOutSize: d.heldOutSize,
    devSize: d.devSize,
    judgeTemplate: readTemplate(cfg.judge.promptTemplate, "judge.promptTemplate"),
    selfInstructTemplate: readTemplate(cfg.selfInstruct.template, "selfInstruct.template"),
    maxOverlap: cfg.selfInstruct.maxOverlap,
    maxPromptChars: cfg.selfInstruct.maxPromptChars,
  });
}

/**
 * `count` prompts drawn fresh from the config's synthetic families, its held-out set left out, so
 * that a bench choosing settings on them never looks at the prompts that report the result.
 */
export function freshPrompts(cfg: Config, count: number, seed: number): string[] {
  const heldOut = new Set(taskFromConfig(cfg).data.heldOut.map((h) => h.prompt));
  const rng = makeRng(seed);
  const prompts: string[] = [];
  while (prompts.length < count) {
    const prompt = familyByName(rng.pick(cfg.data.families)).makeInstance(rng).prompt;
    if (!heldOut.has(prompt)) prompts.push(prompt);
  }
  return prompts;
}
