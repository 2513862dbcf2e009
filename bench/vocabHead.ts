// What the LM head costs at a real vocabulary: one SFT-style forward+backward over rows with long
// prompts and short responses (chat-template rows), scoring only the response positions through
// the head (model/score.ts) against computing the head over every position first, in one process,
// alternating, on the same random-weight Llama 3-vocabulary model. Prints a line per shape and
// one JSON object last. Never asserts on time.
//
//   node --import tsx bench/vocabHead.ts [--vocab 128256 --hidden 64 --batch 8 --prompt 48 --response 8 --reps 3]
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../model/backend.ts";
import { parseLlamaConfig } from "../model/config.ts";
import { targetLogProbs } from "../model/fused.ts";
import { Llama } from "../model/llama.ts";
import { responseLogProbsTensor } from "../model/score.ts";

const { values: opt } = parseArgs({
  options: {
    vocab: { type: "string", default: "128256" },
    hidden: { type: "string", default: "64" },
    batch: { type: "string", default: "8" },
    prompt: { type: "string", default: "48" },
    response: { type: "string", default: "8" },
    reps: { type: "string", default: "3" },
  },
});
const [V, d, B, P, R, reps] = [opt.vocab, opt.hidden, opt.batch, opt.prompt, opt.response, opt.reps].map(
  Number,
);
const backend = await selectBackend("auto", { info() {} });
const config = parseLlamaConfig({
  model_type: "llama",
  vocab_size: V,
  hidden_size: d,
  intermediate_size: 2 * d,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  max_position_embeddings: 1024,
  tie_word_embeddings: true,
});
const model = Llama.init(config, { seed: 1 });
const rows = Array.from({ length: B }, (_, b) => ({
  prompt: Array.from({ length: P }, (_, i) => (b * 131 + i * 17) % V),
  response: Array.from({ length: R }, (_, i) => (b * 71 + i * 29 + 5) % V),
}));
const vars = [...model.params.values()];

/** The earlier way: logits at every position, then the response targets picked from them. */
function everyPositionLoss(): tf.Scalar {
  const L = P + R - 1;
  const inputs = rows.map((r) => [...r.prompt, ...r.response].slice(0, L));
  const targets = rows.flatMap((r) => [...r.prompt, ...r.response].slice(1, L + 1));
  const { logits } = model.forward(tf.tensor2d(inputs, [B, L], "int32"), { training: true });
  const picked = targetLogProbs(logits.reshape([B * L, V]), tf.tensor1d(targets, "int32")).reshape([B, L]);
  return picked
    .slice([0, P - 1], [-1, R])
    .mean()
    .neg() as tf.Scalar;
}

const responseOnlyLoss = () =>
  responseLogProbsTensor(model, rows, { training: true }).logProbs.mean().neg() as tf.Scalar;

function time(loss: () => tf.Scalar): number {
  const start = performance.now();
  const { value, grads } = tf.variableGrads(loss, vars);
  value.dataSync();
  tf.dispose([value, ...Object.values(grads)]);
  return (performance.now() - start) / 1000;
}

time(responseOnlyLoss);
time(everyPositionLoss);
const a: number[] = [];
const b: number[] = [];
for (let i = 0; i < reps; i++) {
  a.push(time(responseOnlyLoss));
  b.push(time(everyPositionLoss));
}
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const fig = {
  bench: "vocabHead",
  backend: backend.name,
  vocab: V,
  hidden: d,
  batch: B,
  promptTokens: P,
  responseTokens: R,
  responseOnlySeconds: median(a),
  everyPositionSeconds: median(b),
  speedup: median(b) / median(a),
};
console.log(
  `V ${V} d ${d} B ${B} prompt ${P} response ${R} (${backend.name}): response positions ${fig.responseOnlySeconds.toFixed(3)} s, every position ${fig.everyPositionSeconds.toFixed(3)} s per forward+backward, ${fig.speedup.toFixed(1)}x`,
);
console.log(JSON.stringify(fig));
