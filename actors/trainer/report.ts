// The run's report: report.json (machine-readable) and summary.txt (the table `srlm run` prints).
import type { JudgeAgreement } from "../../tasks/agreement.ts";
import type { JudgeUse } from "./judgeUse.ts";
import type { DpoSummary } from "./loops.ts";

/** Jobs of each stage and the ones that failed, by reason. */
export type StageFailures = Record<string, { jobs: number; failed: number; reasons: Record<string, number> }>;

export interface ModelEval {
  /** Exact accuracy on the held-out prompts, where the task has a verifier (else null). */
  heldOutAccuracy: number | null;
  heldOutAccuracyCi95: [number, number] | null;
  heldOutMeanScore: number | null;
  /** Held-out prompts answered (a prompt whose job failed is left out and counted in failures). */
  heldOutN: number;
  /** Exact-match accuracy per task family. */
  heldOutByFamily: Record<string, number>;
  /** Without a verifier: the judge's mean score of the held-out answers (normal 95% interval). */
  heldOutJudgeScore: {
    mean: number;
    ci95: [number, number];
    n: number;
    judge: string;
    parseFailureRate: number;
  } | null;
  /** Against the previous model's answers: by the verifier's scores, or head to head by the judge. */
  winRateVsPrevious: {
    win: number;
    loss: number;
    tie: number;
    ci95: [number, number];
    n: number;
    judgedBy: string;
  } | null;
  /** Held-out accuracy minus the first evaluated model's (M1), paired by prompt; null for M1. */
  gainOverFirst: { model: string; gain: number; ci95: [number, number]; n: number } | null;
  /** The judge against true scores; nulls where the task has no verifier. */
  judge: {
    impl: string;
    pairwiseAccuracy: number | null;
    spearman: number | null;
    parseFailureRate: number | null;
    /** A/B judging on the same judge set: the secondary taken as the truth (its ties dropped, the
     * primary's counted half), and the two judges' agreement with ties counted as verdicts. */
    ab?: { secondary: string; pairwiseAgreement: number; agreement: JudgeAgreement };
  };
  /** A few held-out answers, to read what the model writes. */
  samples: { prompt: string; response: string }[];
}

export interface OwnEftSummary {
  answers: number;
  rightShare: number;
  loss: { first: number; last: number; steps: number };
}

export interface IterationReport extends ModelEval {
  model: string;
  prompts: number;
  candidates: number;
  pairs: number;
  droppedTies?: number;
  droppedTooFewScores?: number;
  /** With `selfReward.greedyRejectGap`: pairs dropped for rejecting the greedy answer on a smaller
   * judged gap than that. */
  droppedUnsureGreedyRejections?: number;
  /** With `selfReward.greedyRejectConfirm`: prompts whose greedy answer was judged again, and the
   * pairs dropped for rejecting it when a further verdict did not leave the gap. */
  confirmedPrompts?: number;
  droppedUnconfirmedGreedyRejections?: number;
  /** With `selfReward.quoteCheck`: verdicts read, those set aside for misquoting the response,
   * candidates judged again for having none left, and candidates still without one (no pair). */
  quoteCheck?: { verdicts: number; misquoted: number; judgedAgain: number; unquoted: number };
  /** With `selfReward.anchorTies`: greedy answers of prompts tied at the full mark that DPO's NLL
   * term kept, beside the pairs (not counted in `pairs`). */
  anchors?: number;
  /** Mean true (verifier) score gap between chosen and rejected: how right the self-judge's pairs are. */
  pairsTrueScoreGap?: number;
  /** Shares of the pairs whose chosen answer is truly better, truly as good, truly worse than the
   * rejected one (by the verifier): the judge's pairwise accuracy on the policy's own answers. */
  pairsTrueOrder?: { better: number; same: number; worse: number };
  /** The same split by the judge's scores of the pair ("5>4": chosen judged 5, rejected 4), with
   * each bucket's count: which verdicts carry signal on the policy's own answers. */
  pairsTrueOrderByScores?: Record<string, { pairs: number; better: number; same: number; worse: number }>;
  /** With `selfReward.greedyCandidate`: shares of the pairs whose rejected answer is the greedy one
   * and truly wrong (what can move the greedy answers the evaluation scores) and truly right (a
   * right greedy answer pushed down). */
  pairsRejectingGreedy?: { wrong: number; right: number };
  /** Mean judge score of the chosen and of the rejected answers. */
  pairsJudgeScores?: { chosenMean: number; rejectedMean: number };
  droppedStale?: number;
  failures: StageFailures;
  /** Who answered this row's judging jobs (counts per judge identity) and, for A/B judging, how
   * far the two judges agreed; absent in reports written before it was recorded. */
  judges?: JudgeUse;
  dpo: DpoSummary | null;
  /** M1 only, when SFT ran (not reused): its loss at the start and at the end. */
  sftLoss?: { first: number; last: number; steps: number };
  /** M1 only, when `train.ownEft` ran (not reused): how many of its own answers it was trained to
   * judge, the share of them that were right, and the phase's loss. */
  ownEft?: OwnEftSummary;
  staleness: { max: number; mean: number } | null;
  wallSeconds: number;
  stageSeconds: Record<string, number>;
}

export interface ActorUsage {
  actor: string;
  impl: string;
  instance: string;
  processed: number;
  failed: number;
  idleSeconds: number;
  uptimeSeconds: number;
}

/** What the bus refused or lost over a run: nothing of it is dropped without a count. */
export interface BusCounts {
  /** Dead letters by the role that sent them (bad messages, refused results, exhausted jobs). */
  deadLetters: Record<string, number>;
  timedOutJobs: number;
  droppedUnknownResults: number;
}

export interface RunReport {
  method: "self-rewarding";
  preset: string;
  task: string;
  /** Whether the task has a verifier (exact accuracy) or is measured by its judge alone. */
  verifier: boolean;
  /** Set when an operator stopped the run (`srlm control stop`): the iterations that finished. */
  stopped?: boolean;
  backend: string;
  run: string;
  mode: string;
  /** The prompts every `heldOut…` figure, gain and win rate was measured on: the held-out test
   * set, or the dev set while settings are chosen (absent in reports from before the dev split:
   * held-out). The judge figures are always from the judge set. */
  evalSplit?: "heldOut" | "dev";
  /** Where DPO's reference log-probs came from: the reference actor, or the sampler's own. */
  reference: string;
  wallSeconds: number;
  /** Seconds the trainer computed; wallSeconds minus this is the time it waited on the other actors. */
  trainerBusySeconds: number;
  actors: ActorUsage[];
  /** Null when the loop ran in-process. */
  bus: BusCounts | null;
  iterations: IterationReport[];
}

const pct = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? "–" : `${(100 * x).toFixed(1)}%`;
const signedPts = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}`;
const num = (x: number | undefined | null, digits = 3) =>
  x === undefined || x === null || !Number.isFinite(x) ? "–" : x.toFixed(digits);

function heldOutCell(it: IterationReport): string {
  if (it.heldOutAccuracy !== null && it.heldOutAccuracyCi95 !== null)
    return `${pct(it.heldOutAccuracy)} (${pct(it.heldOutAccuracyCi95[0])}–${pct(it.heldOutAccuracyCi95[1])})`;
  const j = it.heldOutJudgeScore;
  return j ? `${num(j.mean, 2)} (${num(j.ci95[0], 2)}–${num(j.ci95[1], 2)})` : "–";
}

/** Failed jobs of an iteration, summed over its stages. */
function failedJobs(it: IterationReport): number {
  return Object.values(it.failures).reduce((a, f) => a + f.failed, 0);
}

function identityLine(it: IterationReport): string | null {
  const ids = it.judges?.identities ?? [];
  if (ids.length === 0) return null;
  const each = ids.map((j) => {
    const what = [j.impl, j.model, j.endpoint && `at ${j.endpoint}`].filter(Boolean).join(" ");
    return `${what} ${j.results} jobs (${j.instances.join(", ")})`;
  });
  return `judges ${it.model}: ${each.join("; ")}`;
}

function agreementLines(it: IterationReport): string[] {
  return (it.judges?.ab ?? []).flatMap((ab) =>
    Object.entries(ab.byStage).map(([stage, a]) => {
      const c = a.confusion;
      return (
        `A/B ${ab.primary} vs ${ab.secondary}, ${it.model} ${stage}: ${a.agreed} of ${a.decided} ordered pairs agree (${pct(a.agreement)}), ` +
        `one tied ${a.oneTied}, both tied ${a.bothTied}, unjudged ${a.unjudged}; spearman ${num(a.spearman, 2)} (n ${a.spearmanN}); ` +
        `primary a/b/tie × secondary a/b/tie ${c.a.a} ${c.a.b} ${c.a.tie} | ${c.b.a} ${c.b.b} ${c.b.tie} | ${c.tie.a} ${c.tie.b} ${c.tie.tie}`
      );
    }),
  );
}

export function summaryTable(report: RunReport): string {
  const split = report.evalSplit === "dev" ? "dev" : "held-out";
  const header = [
    "model",
    report.verifier ? `${split} acc (95% CI)` : `${split} judge score (95% CI)`,
    "gain vs M1 (95% CI)",
    "win/loss/tie vs prev",
    "judge pairwise",
    "spearman",
    "parse fail",
    "pairs",
    "dpo loss",
    "pref acc",
    "reward chosen/rejected",
    "failed jobs",
    "wall s",
  ];
  const rows = report.iterations.map((it) => [
    it.model,
    heldOutCell(it),
    it.gainOverFirst
      ? `${signedPts(it.gainOverFirst.gain)} (${signedPts(it.gainOverFirst.ci95[0])} to ${signedPts(it.gainOverFirst.ci95[1])})`
      : "–",
    it.winRateVsPrevious
      ? `${pct(it.winRateVsPrevious.win)}/${pct(it.winRateVsPrevious.loss)}/${pct(it.winRateVsPrevious.tie)}`
      : "–",
    pct(it.judge.pairwiseAccuracy),
    num(it.judge.spearman, 2),
    pct(it.judge.parseFailureRate),
    String(it.pairs),
    num(it.dpo?.loss),
    it.dpo ? pct(it.dpo.preferenceAccuracy) : "–",
    it.dpo ? `${num(it.dpo.chosenReward, 2)}/${num(it.dpo.rejectedReward, 2)}` : "–",
    String(failedJobs(it)),
    it.wallSeconds.toFixed(0),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  return [
    `srlm self-rewarding run ${report.run} (task ${report.task}, preset ${report.preset}, backend ${report.backend}, ${report.mode})${report.stopped ? ", stopped by the operator" : ""}: ${report.wallSeconds.toFixed(0)} s`,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    `${split === "dev" ? "dev prompts (settings are chosen on them)" : "held-out test prompts"}: ${report.iterations[0]?.heldOutN ?? 0}; judge pairwise and spearman: on the judge set, against true scores`,
    ...report.iterations.flatMap((it) => {
      const own = it.ownEft;
      return own
        ? [
            `${it.model}'s judge trained on ${own.answers} of its own answers, ${pct(own.rightShare)} of them right (loss ${num(own.loss.first)} → ${num(own.loss.last)} in ${own.loss.steps} steps)`,
          ]
        : [];
    }),
    ...report.iterations.flatMap((it) => {
      const q = it.quoteCheck;
      return q
        ? [
            `${it.model}'s verdicts: ${q.misquoted} of ${q.verdicts} misquoted the answer and were set aside; ${q.judgedAgain} answers judged again, ${q.unquoted} left with no verdict (no pair)`,
          ]
        : [];
    }),
    ...report.iterations.flatMap((it) =>
      it.anchors !== undefined
        ? [`${it.model}'s anchors: ${it.anchors} greedy answers tied at the full mark, kept by the NLL term`]
        : [],
    ),
    ...report.iterations.flatMap((it) => {
      const o = it.pairsTrueOrder;
      const g = it.pairsRejectingGreedy;
      const unsure = it.droppedUnsureGreedyRejections;
      const greedy = g
        ? `; rejecting a wrong greedy answer ${pct(g.wrong)}, a right one ${pct(g.right)}` +
          (unsure !== undefined ? ` (${unsure} rejecting it on too small a judged gap dropped)` : "") +
          (it.droppedUnconfirmedGreedyRejections !== undefined
            ? ` (${it.droppedUnconfirmedGreedyRejections} rejecting it dropped when judged again, ${it.confirmedPrompts ?? 0} greedy answers judged again)`
            : "")
        : "";
      return o
        ? [
            `${it.model}'s pairs by the verifier: chosen truly better ${pct(o.better)}, as good ${pct(o.same)}, worse ${pct(o.worse)}${greedy}`,
          ]
        : [];
    }),
    "",
    ...report.iterations.flatMap((it) => [identityLine(it), ...agreementLines(it)].filter((l) => l !== null)),
    `trainer busy ${report.trainerBusySeconds.toFixed(0)} s of ${report.wallSeconds.toFixed(0)} s; ` +
      report.actors
        .map(
          (a) =>
            `${a.actor}/${a.instance} idle ${a.idleSeconds.toFixed(0)} of ${a.uptimeSeconds.toFixed(0)} s (${a.processed} jobs)`,
        )
        .join("; "),
    ...(report.bus
      ? [
          `dead letters ${
            Object.entries(report.bus.deadLetters)
              .map(([role, n]) => `${role} ${n}`)
              .join(", ") || "0"
          }; jobs timed out ${report.bus.timedOutJobs}; results for unknown jobs dropped ${report.bus.droppedUnknownResults}`,
        ]
      : []),
    "",
  ].join("\n");
}
