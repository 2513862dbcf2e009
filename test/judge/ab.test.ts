// A/B judging with any two judges: the verifier's exact scores beside an HTTP judge's (its
// endpoint faked by an injected fetch), both in one result that names the HTTP judge's model.
import assert from "node:assert/strict";
import { test } from "node:test";
import { abPair, answerJudge } from "../../actors/judge/main.ts";
import { OpenAIJudge } from "../../actors/judge/openai.ts";
import type { JudgeJobBody } from "../../bus/messages.ts";
import { judgePrompt, trueScore } from "../../tasks/index.ts";

const prompt = "Reverse: garden";
const candidates = ["nedrag", "garden", ""];
const job: JudgeJobBody = {
  iteration: 1,
  purpose: "eval",
  task: "synthetic",
  prompt,
  candidates,
  judgePrompts: candidates.map((c) => judgePrompt(prompt, c)),
  format: "plain",
  parser: "first-line",
  samples: 2,
  weights: { version: 1, bucket: "b", name: "v1", digest: `sha256:${"0".repeat(64)}` },
  sampling: { temperature: 1, topP: 1, topK: 0, maxNewTokens: 16, seed: 0 },
};

const settings = {
  baseUrl: "http://judge.example:8000/v1",
  model: "judge-model",
  apiKeyEnv: "",
  maxConcurrency: 2,
  timeoutMs: 1000,
  retries: 0,
  backoffMs: 1,
};

test("ab verifier,openai: verifier scores train, the HTTP judge's means are the secondary", async () => {
  const urls: string[] = [];
  // The fake endpoint gives candidate c the score c + 1 (its index is in the prompt order).
  const fakeFetch = (async (url: string, init: RequestInit) => {
    urls.push(url);
    const body = JSON.parse(String(init.body)) as { n: number; messages: { content: string }[] };
    const c = job.judgePrompts.indexOf(body.messages[0].content);
    const choices = Array.from({ length: body.n }, (_, index) => ({
      index,
      message: { role: "assistant", content: `Checked. Score: ${c + 1}` },
    }));
    return new Response(JSON.stringify({ choices }), { status: 200 });
  }) as typeof fetch;
  const openai = new OpenAIJudge(settings, { fetch: fakeFetch });
  const noPolicy = async () => assert.fail("no judge of this pair needs the policy");
  const { body } = await answerJudge("ab", job, "j0", noPolicy, { openai, ab: abPair("verifier,openai") });
  assert.equal(body.judge.impl, "ab:verifier+openai");
  assert.equal(body.judge.model, "judge-model");
  assert.equal(body.judge.endpoint, "judge.example:8000");
  const truth = candidates.map((c) => trueScore(prompt, c).score);
  assert.deepEqual(
    body.scores,
    truth.map((s) => [s, s]),
  );
  assert.deepEqual(body.secondary, { impl: "openai", means: [1, 2, 3] });
  assert.deepEqual(new Set(urls), new Set(["http://judge.example:8000/v1/chat/completions"]));
});

test("judge.ab must name two different known judges", () => {
  assert.deepEqual(abPair("self, openai"), ["self", "openai"]);
  assert.throws(() => abPair("self,self"), /two different judges/);
  assert.throws(() => abPair("self,gpt"), /judge.ab "self,gpt"/);
  assert.throws(() => abPair("self"), /expected two/);
});

test("an openai judge without a base URL, model or key says which setting is missing", () => {
  assert.throws(() => new OpenAIJudge({ ...settings, baseUrl: "" }), /judge.openai.baseUrl is empty/);
  assert.throws(() => new OpenAIJudge({ ...settings, model: "" }), /judge.openai.model is empty/);
  assert.throws(
    () => new OpenAIJudge({ ...settings, apiKeyEnv: "NO_SUCH_KEY_VAR" }, { env: {} }),
    /NO_SUCH_KEY_VAR, but that environment variable is empty or unset/,
  );
  assert.throws(() => new OpenAIJudge({ ...settings, baseUrl: "http://u:p@host/v1" }), /carries credentials/);
});
