// What the actors need from the model engine, in the loop's own terms: a policy is a model, its
// tokenizer and the weight version it came from; it answers prompts, scores responses, and travels
// through the object store as one blob. Every actor touches model/ through this file only.
import { decode, encode } from "../bus/codec.ts";
import type { PromptFormat } from "../bus/messages.ts";
import { chatCompletionIds, chatPromptIds, stopIds, textCompletionIds } from "../model/chat.ts";
import { modelFromBytes, weightsToBytes } from "../model/checkpoint.ts";
import { generate } from "../model/generate.ts";
import type { Llama } from "../model/llama.ts";
import { responseLogProbs } from "../model/score.ts";
import { CharTokenizer, HfTokenizer, type Tokenizer } from "../model/tokenizer.ts";
import { cutAtEnd, END, policyInput } from "../tasks/format.ts";

export interface Policy {
  version: number;
  model: Llama;
  tokenizer: Tokenizer;
}

export interface Sampling {
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  seed: number;
}

export interface Sample {
  text: string;
  tokens: Int32Array<ArrayBuffer>;
  logProbs: Float32Array<ArrayBuffer>;
  finishReason: string;
}

export function policyToBlob(policy: Policy): Uint8Array {
  return encode({
    version: policy.version,
    tokenizer: policy.tokenizer.toJSON(),
    tokenizerConfig: policy.tokenizer.configJSON(),
    weights: weightsToBytes(policy.model),
  });
}

export function policyFromBlob(bytes: Uint8Array): Policy {
  const blob = decode(bytes) as {
    version: number;
    tokenizer: unknown;
    tokenizerConfig: object;
    weights: Uint8Array;
  };
  const model = modelFromBytes(blob.weights);
  const config = blob.tokenizerConfig as { chat_template?: string };
  const tokenizer =
    CharTokenizer.fromJSON(blob.tokenizer, config.chat_template ?? null) ??
    new HfTokenizer(blob.tokenizer as object, config, {
      bos: model.config.bos_token_id ?? undefined,
      eos: model.eosIds[0],
      pad: model.config.pad_token_id ?? undefined,
    });
  return { version: blob.version, model, tokenizer };
}

export function disposePolicy(policy: Policy): void {
  policy.model.dispose();
}

/**
 * Token ids the policy is conditioned on for a prompt. `plain`: BOS, the prompt, the end marker.
 * `chat`: the prompt as a user turn through the tokenizer's chat template, with the assistant's
 * header (the template writes BOS itself where the model wants one).
 */
export function promptIds(tokenizer: Tokenizer, prompt: string, format: PromptFormat = "plain"): number[] {
  if (format === "plain") return [tokenizer.bosId, ...tokenizer.encode(policyInput(prompt))];
  return chatPromptIds(tokenizer, [{ role: "user", content: prompt }]);
}

/**
 * A training row as token ids: the prompt as the policy is conditioned on it, and the completion
 * with its end (the end marker in plain format, plus EOS for a brought tokenizer; the template's
 * end of the assistant turn in chat format), so a trained model stops where generation stops.
 */
export function trainingRow(
  tokenizer: Tokenizer,
  prompt: string,
  completion: string,
  format: PromptFormat = "plain",
): { prompt: number[]; response: number[] } {
  if (format === "plain")
    return { prompt: promptIds(tokenizer, prompt), response: textCompletionIds(tokenizer, completion, END) };
  const messages = [{ role: "user" as const, content: prompt }];
  return {
    prompt: chatPromptIds(tokenizer, messages),
    response: chatCompletionIds(tokenizer, messages, completion),
  };
}

export interface PromptSamples {
  /** The ids the policy was conditioned on. */
  promptTokens: Int32Array<ArrayBuffer>;
  samples: Sample[];
}

/** `n` samples for each prompt: text cut at the end marker, ids exactly as sampled. `forced[p]`
 * (optional) holds tokens every sample of prompt p writes at given new-token indices instead of
 * sampling them (model/generate.ts). */
export function samplePolicy(
  policy: Policy,
  prompts: string[],
  n: number,
  sampling: Sampling,
  format: PromptFormat = "plain",
  forced?: readonly (ReadonlyMap<number, number> | undefined)[],
  forcedUntil?: number,
): PromptSamples[] {
  const { model, tokenizer } = policy;
  const rendered = prompts.map((p) => promptIds(tokenizer, p, format));
  const inputs: number[][] = [];
  for (const ids of rendered) for (let i = 0; i < n; i++) inputs.push(ids);
  if (forced && forced.length !== prompts.length)
    throw new Error(
      `samplePolicy: forced tokens for ${forced.length} prompts, but ${prompts.length} prompts`,
    );
  const outputs = generate(model, tokenizer, inputs, {
    temperature: sampling.temperature,
    topP: sampling.topP,
    topK: sampling.topK,
    maxNewTokens: sampling.maxNewTokens,
    seed: sampling.seed,
    ...(format === "plain" ? { stop: [END] } : { eosIds: stopIds(model, tokenizer) }),
    ...(forced ? { forced: forced.flatMap((m) => Array.from({ length: n }, () => m)) } : {}),
    ...(forcedUntil !== undefined ? { forcedUntil } : {}),
  });
  const out: PromptSamples[] = rendered.map((ids) => ({ promptTokens: Int32Array.from(ids), samples: [] }));
  outputs.forEach((o, i) => {
    const { text, complete } = format === "plain" ? cutAtEnd(o.text) : { text: o.text, complete: false };
    out[Math.floor(i / n)].samples.push({
      text,
      tokens: Int32Array.from(o.ids),
      logProbs: Float32Array.from(o.logProbs),
      finishReason: complete ? "stop" : o.finishReason,
    });
  });
  return out;
}

/** Summed log-prob of each completion given its prompt, both as token ids (what DPO uses). */
export function completionLogProbs(
  policy: Policy,
  items: { prompt: ArrayLike<number>; completion: ArrayLike<number> }[],
): Float64Array {
  const batch = items.map((it) => ({ prompt: Array.from(it.prompt), response: Array.from(it.completion) }));
  return Float64Array.from(responseLogProbs(policy.model, batch).sum);
}

/** Each completion token's log-prob given its prompt and the tokens before it (PPO's KL penalty). */
export function completionTokenLogProbs(
  policy: Policy,
  items: { prompt: ArrayLike<number>; completion: ArrayLike<number> }[],
): Float32Array<ArrayBuffer>[] {
  const batch = items.map((it) => ({ prompt: Array.from(it.prompt), response: Array.from(it.completion) }));
  return responseLogProbs(policy.model, batch).perToken.map((row) => Float32Array.from(row));
}
