// The OpenAI-compatible request bodies `srlm serve` accepts, checked field by field, and its error
// shape. A field srlm cannot honour (tools, logit_bias, penalties, echo, …) is refused with a 400
// naming it rather than ignored: a client that asked for it would otherwise get answers that look
// right and are not what it asked for. Fields that do not change the answer (user, metadata, …)
// pass through unread.
import { z } from "zod";

export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "not_found_error"
  | "rate_limit_error"
  | "server_error";

/** An error as OpenAI's API returns it: `{error: {message, type, param, code}}` with an HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: ErrorType,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  body(): { error: { message: string; type: ErrorType; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, "invalid_request_error", param, code);

/** The most completions one request may ask for (n × prompts); bounds the work behind one call. */
export const MAX_CHOICES = 64;
const MAX_STOPS = 4;
export const MAX_TOP_LOGPROBS = 20;

const stop = z
  .union([z.string(), z.array(z.string()).max(MAX_STOPS)])
  .nullish()
  .transform((s) => (s == null ? [] : typeof s === "string" ? [s] : s).filter((x) => x.length > 0));

// Shared by both endpoints. `top_k` is not OpenAI's, but vLLM and others take it, and srlm's
// jobs carry a top-k, so the openai judge can pass it through.
const sampling = {
  model: z.string().min(1),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  top_k: z.number().int().min(-1).nullish(),
  n: z.number().int().min(1).max(MAX_CHOICES).nullish(),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullish(),
  stop,
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
};

const textPart = z.object({ type: z.literal("text"), text: z.string() });
const message = z.object({
  role: z.enum(["system", "developer", "user", "assistant"]),
  content: z.union([z.string(), z.array(textPart).min(1)]),
});

export const completionRequest = z.object({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.string()).min(1)]),
  max_tokens: z.number().int().min(0).nullish(),
  logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
});
export type CompletionRequest = z.output<typeof completionRequest>;

export const chatRequest = z.object({
  ...sampling,
  messages: z.array(message).min(1),
  max_tokens: z.number().int().min(0).nullish(),
  max_completion_tokens: z.number().int().min(0).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
});
export type ChatRequest = z.output<typeof chatRequest>;

// Fields that would change what the client gets, and why srlm refuses each; accepted only at
// their neutral value.
const UNSUPPORTED: Record<string, { neutral: (v: unknown) => boolean; why: string }> = {
  tools: { neutral: (v) => v == null || (Array.isArray(v) && v.length === 0), why: "tool calls" },
  tool_choice: { neutral: (v) => v == null || v === "none", why: "tool calls" },
  functions: { neutral: (v) => v == null || (Array.isArray(v) && v.length === 0), why: "function calls" },
  function_call: { neutral: (v) => v == null || v === "none", why: "function calls" },
  response_format: {
    neutral: (v) => v == null || (v as { type?: unknown }).type === "text",
    why: "structured output",
  },
  logit_bias: {
    neutral: (v) => v == null || (typeof v === "object" && Object.keys(v as object).length === 0),
    why: "logit bias",
  },
  presence_penalty: { neutral: (v) => v == null || v === 0, why: "presence penalties" },
  frequency_penalty: { neutral: (v) => v == null || v === 0, why: "frequency penalties" },
  echo: { neutral: (v) => v == null || v === false, why: "echoing the prompt" },
  suffix: { neutral: (v) => v == null || v === "", why: "insertion (suffix)" },
  best_of: { neutral: (v) => v == null || v === 1, why: "best_of" },
};

/** The body as `schema` reads it, or a 400 naming the first wrong field. */
export function parseRequest<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw badRequest("the request body must be a JSON object");
  }
  for (const [field, rule] of Object.entries(UNSUPPORTED)) {
    const value = (body as Record<string, unknown>)[field];
    if (!rule.neutral(value)) {
      throw badRequest(`${field}: srlm serve does not support ${rule.why}`, field, "unsupported_parameter");
    }
  }
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const param = issue.path.map(String).join(".") || null;
  throw badRequest(`${param ?? "body"}: ${issue.message}`, param);
}

/** Text of a message's content, whether a string or a list of text parts. */
export function contentText(content: ChatRequest["messages"][number]["content"]): string {
  return typeof content === "string" ? content : content.map((p) => p.text).join("");
}
