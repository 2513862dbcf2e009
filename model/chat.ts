// Chat-formatted training rows and stop tokens for a brought model. A Hugging Face chat model is
// trained on conversations rendered by its tokenizer_config.json chat_template (Jinja); a row
// for srlm is the rendered prompt up to the assistant's turn, and the assistant's turn through
// the token that closes it, so the model learns to end its answers and generation stops where
// the template would. For plain-text rows (no template), HF tokenizers get EOS appended for the
// same reason; srlm's own character tokenizer keeps its newline-terminated rows.
import { Template } from "@huggingface/jinja";
import type { Llama } from "./llama.ts";
import { CharTokenizer, type Tokenizer } from "./tokenizer.ts";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface RenderOptions {
  /** End with the header of an assistant turn, ready for the model to answer. Default false, as
   * in transformers. */
  addGenerationPrompt?: boolean;
  /** Further template variables (e.g. enable_thinking: false for Qwen3). */
  variables?: Record<string, unknown>;
}

type SpecialToken = string | { content: string } | null | undefined;

function tokenText(t: SpecialToken): string | undefined {
  if (t == null) return undefined;
  return typeof t === "string" ? t : t.content;
}

// Parsing a long template costs more than rendering it, and rows are rendered one by one.
const compiled = new Map<string, Template>();

function template(tokenizer: Tokenizer): Template {
  const source = tokenizer.chatTemplate;
  if (!source) throw new Error("renderChat: the tokenizer has no chat_template (tokenizer_config.json)");
  let t = compiled.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (err) {
      throw new Error(`renderChat: chat_template does not parse (${(err as Error).message})`);
    }
    compiled.set(source, t);
  }
  return t;
}

/** The conversation as text, rendered by the tokenizer's chat_template with the special-token
 * variables transformers passes (bos_token, eos_token, pad_token, unk_token). */
export function renderChat(tokenizer: Tokenizer, messages: ChatMessage[], opts: RenderOptions = {}): string {
  const cfg = tokenizer.configJSON() as Record<string, SpecialToken>;
  const specials: Record<string, string> = {};
  for (const name of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
    const text = tokenText(cfg[name]);
    if (text !== undefined) specials[name] = text;
  }
  return template(tokenizer).render({
    ...specials,
    ...opts.variables,
    messages,
    add_generation_prompt: opts.addGenerationPrompt ?? false,
  });
}

/** Ids the model is conditioned on to answer the conversation's last user turn. Special-token
 * text the template writes (e.g. Llama 3's <|begin_of_text|>) encodes to its own id. */
export function chatPromptIds(
  tokenizer: Tokenizer,
  messages: ChatMessage[],
  variables?: Record<string, unknown>,
): number[] {
  const ids = tokenizer.encode(renderChat(tokenizer, messages, { addGenerationPrompt: true, variables }));
  if (ids.length === 0) throw new Error("chatPromptIds: the chat template rendered an empty prompt");
  return ids;
}

const PROBE = "srlmprobe";
const turnEnds = new WeakMap<Tokenizer, number | null>();

/**
 * The special token the template closes an assistant turn with (<|eot_id|> for Llama 3,
 * <|im_end|> for Qwen), found by rendering a probe answer and reading the first token after it;
 * null when the template puts no special token there.
 */
export function chatTurnEndId(tokenizer: Tokenizer): number | null {
  if (turnEnds.has(tokenizer)) return turnEnds.get(tokenizer)!;
  const text = renderChat(tokenizer, [
    { role: "user", content: "q" },
    { role: "assistant", content: PROBE },
  ]);
  const at = text.lastIndexOf(PROBE);
  const [first] = at < 0 ? [] : tokenizer.encode(text.slice(at + PROBE.length));
  // Special tokens decode to nothing (decode skips them); ordinary text never does.
  const end = first !== undefined && tokenizer.decode([first]) === "" ? first : null;
  turnEnds.set(tokenizer, end);
  return end;
}

/**
 * Ids of the assistant's answer to `messages` as the template renders it, through the token that
 * closes the turn (or with EOS appended when the template closes it with none). Prompt ids from
 * chatPromptIds followed by these are the training row, and what generation produces.
 */
export function chatCompletionIds(
  tokenizer: Tokenizer,
  messages: ChatMessage[],
  completion: string,
  variables?: Record<string, unknown>,
): number[] {
  const prompt = renderChat(tokenizer, messages, { addGenerationPrompt: true, variables });
  const full = renderChat(tokenizer, [...messages, { role: "assistant", content: completion }], {
    variables,
  });
  if (!full.startsWith(prompt)) {
    throw new Error(
      "chatCompletionIds: the chat template renders the conversation with its answer so that it does not begin with the rendered prompt; the answer cannot be split off as a training row",
    );
  }
  const ids = tokenizer.encode(full.slice(prompt.length));
  const end = chatTurnEndId(tokenizer);
  const at = end === null ? -1 : ids.indexOf(end);
  return at >= 0 ? ids.slice(0, at + 1) : [...ids, tokenizer.eosId];
}

/** Every id that should end generation: the model's eos_token_id(s) (with generation_config.json's),
 * the tokenizer's eos_token, and the chat template's turn end when it has one. */
export function stopIds(model: Llama, tokenizer: Tokenizer): number[] {
  const ids = new Set([...model.eosIds, tokenizer.eosId]);
  if (tokenizer.chatTemplate) {
    const end = chatTurnEndId(tokenizer);
    if (end !== null) ids.add(end);
  }
  return [...ids];
}

/**
 * Ids of a plain-text completion as trained: its text (with `end`, e.g. the task format's end
 * marker), then EOS for Hugging Face tokenizers, so a brought model learns to stop; srlm's
 * character tokenizer stops at the end marker and gets no EOS, as its rows always had.
 */
export function textCompletionIds(tokenizer: Tokenizer, completion: string, end = ""): number[] {
  const ids = tokenizer.encode(completion + end);
  return tokenizer instanceof CharTokenizer ? ids : [...ids, tokenizer.eosId];
}
