// Which judges answered an iteration's judging jobs, and, where they judged A/B, how far the two
// judges agreed. The trainer never picks its judge (whoever consumes the queue answers), so after a
// swap mid-run only the results themselves can say who scored what; the report keeps that count.
import type { ScoresResultBody } from "../../bus/messages.ts";
import { type JudgeAgreement, judgeAgreement } from "../../tasks/agreement.ts";
import { meanScore } from "./pairs.ts";

/** Results of one judge identity (impl, and for an HTTP judge its model and endpoint). */
export interface JudgeIdentityCount {
  impl: string;
  model?: string;
  endpoint?: string;
  /** The processes that answered as this judge. */
  instances: string[];
  /** Jobs answered, all stages together and by stage (`judge` is training, `eval Mk` evaluation). */
  results: number;
  byStage: Record<string, number>;
  judgements: number;
  parseFailures: number;
}

/** Two judges' agreement on the candidates both scored, by stage. */
export interface AbAgreement {
  primary: string;
  secondary: string;
  byStage: Record<string, JudgeAgreement>;
}

export interface JudgeUse {
  identities: JudgeIdentityCount[];
  /** One entry per A/B pair of judges that answered (usually one; two after swapping the secondary). */
  ab: AbAgreement[];
}

/** `ab:self+openai` → self; a single judge's impl is its own primary. */
function primaryOf(impl: string): string {
  return impl.startsWith("ab:") ? impl.slice(3).split("+")[0] : impl;
}

export class JudgeTally {
  private identities = new Map<string, JudgeIdentityCount>();
  private ab = new Map<string, { primary: string; secondary: string; stages: Map<string, Scored> }>();

  record(stage: string, results: readonly ScoresResultBody[]): void {
    for (const r of results) {
      const { impl, model, endpoint, instance } = r.judge;
      const key = JSON.stringify([impl, model ?? null, endpoint ?? null]);
      let id = this.identities.get(key);
      if (!id) {
        id = {
          impl,
          ...(model ? { model } : {}),
          ...(endpoint ? { endpoint } : {}),
          instances: [],
          results: 0,
          byStage: {},
          judgements: 0,
          parseFailures: 0,
        };
        this.identities.set(key, id);
      }
      if (!id.instances.includes(instance)) id.instances.push(instance);
      id.results++;
      id.byStage[stage] = (id.byStage[stage] ?? 0) + 1;
      id.judgements += r.judgements;
      id.parseFailures += r.parseFailures;
      if (!r.secondary) continue;
      const primary = primaryOf(impl);
      const abKey = `${primary}\u0000${r.secondary.impl}`;
      let pair = this.ab.get(abKey);
      if (!pair) {
        pair = { primary, secondary: r.secondary.impl, stages: new Map() };
        this.ab.set(abKey, pair);
      }
      let scored = pair.stages.get(stage);
      if (!scored) {
        scored = { primary: [], secondary: [] };
        pair.stages.set(stage, scored);
      }
      // A result whose two sides disagree on the number of candidates is malformed; left out
      // rather than failing the iteration's report.
      if (r.secondary.means.length !== r.scores.length) continue;
      scored.primary.push(r.scores.map(meanScore));
      scored.secondary.push(r.secondary.means);
    }
  }

  /** What was recorded since the last take (one report row), and a fresh start. */
  take(): JudgeUse {
    const use: JudgeUse = {
      identities: [...this.identities.values()],
      ab: [...this.ab.values()].map((p) => ({
        primary: p.primary,
        secondary: p.secondary,
        byStage: Object.fromEntries(
          [...p.stages].map(([stage, s]) => [stage, judgeAgreement(s.primary, s.secondary)]),
        ),
      })),
    };
    this.identities.clear();
    this.ab.clear();
    return use;
  }
}

interface Scored {
  primary: (number | null)[][];
  secondary: (number | null)[][];
}
