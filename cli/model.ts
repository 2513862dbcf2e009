// `srlm init-model`, `srlm generate`, `srlm logprobs`: the model engine from the command line.
import type { Config } from "../config/schema.ts";
import { selectBackend } from "../model/backend.ts";

export async function initModelCommand(
  cfg: Config,
  out: string,
  preset: string,
  seed: number,
): Promise<void> {
  await selectBackend(cfg.model.backend);
  const { initModel } = await import("../model/api.ts");
  const { saveCheckpoint } = await import("../model/checkpoint.ts");
  const { CharTokenizer } = await import("../model/tokenizer.ts");
  const tokenizer = new CharTokenizer();
  const model = initModel(preset, tokenizer, { seed });
  saveCheckpoint(out, model, tokenizer);
  process.stdout.write(
    `${JSON.stringify({ out, preset, parameters: model.numParams(), config: model.config })}\n`,
  );
}

export async function generateCommand(cfg: Config, flags: Record<string, string | string[]>): Promise<void> {
  await selectBackend(cfg.model.backend);
  const { generateText } = await import("../model/api.ts");
  const num = (key: string) => {
    const value = Number(flags[key]);
    if (!Number.isFinite(value))
      throw new Error(
        `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be a number, got ${flags[key]}`,
      );
    return value;
  };
  const result = generateText(String(flags.model), String(flags.prompt), {
    maxNewTokens: num("maxNewTokens"),
    temperature: num("temperature"),
    topP: num("topP"),
    topK: num("topK"),
    seed: num("seed"),
    stop: flags.stop as string[] | undefined,
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

export async function logprobsCommand(
  cfg: Config,
  flags: { model: string; prompt: string; response: string },
): Promise<void> {
  await selectBackend(cfg.model.backend);
  const { logprobsOf } = await import("../model/api.ts");
  process.stdout.write(`${JSON.stringify(logprobsOf(flags.model, flags.prompt, flags.response))}\n`);
}
