// What the actors need from the model engine, in the loop's own terms: a policy is a model, its
// tokenizer and the weight version it came from; it answers prompts, scores responses, and travels
// through the object store as one blob. Every actor touches model/ through this file only.
import { decode, encode } from "../bus/codec.ts";
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
  logProbs: Float32Array;
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

/** Token ids the policy is conditioned on for a prompt: BOS, the prompt, the end marker. */
export function promptIds(tokenizer: Tokenizer, prompt: string): number[] {
  return [tokenizer.bosId, ...tokenizer.encode(policyInput(prompt))];
}

/** Token ids of a completion as trained: its text, then the end marker. */
export function completionIds(tokenizer: Tokenizer, completion: string): number[] {
  return tokenizer.encode(completion + END);
}

/** `n` samples for each prompt, cut at the end marker. */
export function samplePolicy(policy: Policy, prompts: string[], n: number, sampling: Sampling): Sample[][] {
  const inputs: number[][] = [];
  for (const prompt of prompts) for (let i = 0; i < n; i++) inputs.push(promptIds(policy.tokenizer, prompt));
  const outputs = generate(policy.model, policy.tokenizer, inputs, {
    temperature: sampling.temperature,
    topP: sampling.topP,
    topK: sampling.topK,
    maxNewTokens: sampling.maxNewTokens,
    seed: sampling.seed,
    stop: [END],
  });
  const out: Sample[][] = prompts.map(() => []);
  outputs.forEach((o, i) => {
    const { text, complete } = cutAtEnd(o.text);
    out[Math.floor(i / n)].push({
      text,
      logProbs: Float32Array.from(o.logProbs),
      finishReason: complete ? "stop" : o.finishReason,
    });
  });
  return out;
}

/** Summed log-prob of each completion given its prompt (the sequence log-prob DPO uses). */
export function completionLogProbs(
  policy: Policy,
  items: { prompt: string; completion: string }[],
): Float64Array {
  const batch = items.map((it) => ({
    prompt: promptIds(policy.tokenizer, it.prompt),
    response: completionIds(policy.tokenizer, it.completion),
  }));
  return Float64Array.from(responseLogProbs(policy.model, batch).sum);
}
