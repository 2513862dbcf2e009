// The one text format every model sample uses: the prompt, a newline, the completion, a newline.
// The model is conditioned on `prompt + "\n"` and generation stops at the next newline. Task,
// judge and prompt-writing samples all share it, so one sampler serves the three roles.

export const END = "\n";

/** What the model is conditioned on. */
export function policyInput(prompt: string): string {
  return prompt + END;
}

/** A whole training sample: prompt, completion and the end marker. */
export function formatSample(prompt: string, completion: string): string {
  return prompt + END + completion + END;
}

/** A generated continuation cut at the end marker; `complete` is false when the marker never came. */
export function cutAtEnd(generated: string): { text: string; complete: boolean } {
  const i = generated.indexOf(END);
  return i < 0 ? { text: generated, complete: false } : { text: generated.slice(0, i), complete: true };
}

/**
 * Every character srlm's own data uses, so a character tokenizer built from it covers all
 * seed data, judge prompts and targets. ('?' stands in for unprintable characters of responses;
 * '.', '*' and '!' are the marks of the constraint judge's worked check.)
 */
export const DOMAIN_CHARSET = "\n abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:|+-?.*!";
