// Reading a judge's text back into a score. Judges are told which parser a task uses by name (in
// the job), so a judge process needs no task knowledge to score.
//   first-line  srlm's synthetic judge: the first line ends in `Score: N`, N an integer 0..5;
//   last-score  the paper's: the last `Score: N` anywhere in the text, decimals allowed, clamped to 0..5.
import { SCORE_PARSERS } from "../bus/messages.ts";

export type ScoreParserName = (typeof SCORE_PARSERS)[number];
export { SCORE_PARSERS };

export const MAX_SCORE = 5;

export type Judgement = { ok: true; score: number } | { ok: false; reason: string };

const snippet = (s: string) => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

function firstLine(text: string): Judgement {
  const line = text.split("\n", 1)[0].trimEnd();
  const m = /Score:\s*(\d+)$/.exec(line);
  if (m === null) return { ok: false, reason: `no final 'Score: N' in ${snippet(line)}` };
  const score = Number(m[1]);
  if (score > MAX_SCORE) return { ok: false, reason: `score ${score} is outside 0..${MAX_SCORE}` };
  return { ok: true, score };
}

function lastScore(text: string): Judgement {
  const all = [...text.matchAll(/Score:\s*\**\s*(-?\d+(?:\.\d+)?)/gi)];
  if (all.length === 0) return { ok: false, reason: `no 'Score: N' in ${snippet(text.trim())}` };
  const score = Number(all[all.length - 1][1]);
  return { ok: true, score: Math.min(MAX_SCORE, Math.max(0, score)) };
}

const PARSERS: Record<ScoreParserName, (text: string) => Judgement> = {
  "first-line": firstLine,
  "last-score": lastScore,
};

export function parseScore(parser: ScoreParserName, text: string): Judgement {
  return PARSERS[parser](text);
}

export interface JudgementSummary {
  /** Mean of the parsed scores; null when none parsed. */
  mean: number | null;
  scores: number[];
  failures: string[];
}

/** Averages several judge samples of one candidate (the paper uses 3), counting parse failures. */
export function summariseJudgements(
  texts: readonly string[],
  parser: ScoreParserName = "first-line",
): JudgementSummary {
  const scores: number[] = [];
  const failures: string[] = [];
  for (const text of texts) {
    const j = parseScore(parser, text);
    if (j.ok) scores.push(j.score);
    else failures.push(j.reason);
  }
  const mean = scores.length === 0 ? null : scores.reduce((s, x) => s + x, 0) / scores.length;
  return { mean, scores, failures };
}
