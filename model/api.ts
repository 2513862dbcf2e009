// Small entry points for the CLI and actors: JSON-able in, JSON-able out.

import { loadCheckpoint } from "./checkpoint.ts";
import { type LlamaConfigInput, type PresetName, presetConfig } from "./config.ts";
import { type FinishReason, type GenerateOptions, generate } from "./generate.ts";
import { Llama } from "./llama.ts";
import { responseLogProbs } from "./score.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** The project's convention for prompts: BOS, then the text's tokens. Responses are the text's
 * tokens alone (training targets append EOS). */
export function encodePrompt(tokenizer: Tokenizer, text: string): number[] {
  return [tokenizer.bosId, ...tokenizer.encode(text)];
}

/** A freshly initialised model of a named shape preset, sized to the tokenizer's vocabulary: the
 * one way srlm makes its own M0 (both trainers, bench/m1Stability.ts, `srlm model init`). */
export function initModel(
  presetName: PresetName | string,
  tokenizer: Tokenizer,
  opts: { seed?: number; valueHead?: boolean; tieEmbeddings?: boolean; maxPositions?: number } = {},
): Llama {
  const overrides: Partial<LlamaConfigInput> = {};
  if (opts.tieEmbeddings !== undefined) overrides.tie_word_embeddings = opts.tieEmbeddings;
  if (opts.maxPositions !== undefined) overrides.max_position_embeddings = opts.maxPositions;
  const config = presetConfig(presetName, tokenizer, overrides);
  return Llama.init(config, { seed: opts.seed, valueHead: opts.valueHead });
}

const loaded = new Map<string, { model: Llama; tokenizer: Tokenizer }>();

function open(dir: string): { model: Llama; tokenizer: Tokenizer } {
  let entry = loaded.get(dir);
  if (!entry) {
    entry = loadCheckpoint(dir);
    loaded.set(dir, entry);
  }
  return entry;
}

/** Frees models that generateText / logprobsOf loaded. */
export function closeCheckpoints(): void {
  for (const { model } of loaded.values()) model.dispose();
  loaded.clear();
}

export interface TokenLogProb {
  id: number;
  text: string;
  logProb: number;
}

export interface GeneratedText {
  prompt: string;
  text: string;
  finishReason: FinishReason;
  tokens: TokenLogProb[];
}

export function generateText(
  dir: string,
  prompt: string,
  opts: Partial<GenerateOptions> = {},
): GeneratedText {
  const { model, tokenizer } = open(dir);
  const [g] = generate(model, tokenizer, [encodePrompt(tokenizer, prompt)], { maxNewTokens: 64, ...opts });
  return {
    prompt,
    text: g.text,
    finishReason: g.finishReason,
    tokens: g.ids.map((id, i) => ({ id, text: tokenizer.decode([id]), logProb: g.logProbs[i] })),
  };
}

export interface ResponseLogProbsJson {
  prompt: string;
  response: string;
  tokens: TokenLogProb[];
  sum: number;
}

export function logprobsOf(dir: string, prompt: string, response: string): ResponseLogProbsJson {
  const { model, tokenizer } = open(dir);
  const ids = tokenizer.encode(response);
  const scored = responseLogProbs(model, [{ prompt: encodePrompt(tokenizer, prompt), response: ids }]);
  return {
    prompt,
    response,
    tokens: ids.map((id, i) => ({ id, text: tokenizer.decode([id]), logProb: scored.perToken[0][i] })),
    sum: scored.sum[0],
  };
}
