/**
 * What the sources hand to change detection: Langfuse objects of either API generation, reduced to
 * the fields events need. Sources fill these leniently; detection never sees raw API bodies.
 */
import type { Level, ScoreData } from './types.js';

export interface ObservationRecord {
  id: string;
  traceId: string;
  type: string;
  name: string | null;
  level: Level;
  statusMessage: string | null;
  startTime: string;
  endTime: string | null;
  model: string | null;
  promptTokens: number | null;
  completionTokens: number | null;
  totalTokens: number | null;
  usageDetails: Record<string, number> | null;
  costDetails: Record<string, number> | null;
  totalCost: number | null;
  /** Legacy servers only: v4 observations are immutable. */
  updatedAt: string | null;
  environment: string | null;
  userId: string | null;
  sessionId: string | null;
  traceName: string | null;
  tags: string[] | null;
  isRoot: boolean;
  input?: unknown;
  output?: unknown;
}

/** Legacy servers list traces themselves; v4 knows a trace only through its observations. */
export interface TraceRecord {
  id: string;
  timestamp: string;
  name: string | null;
  userId: string | null;
  sessionId: string | null;
  environment: string | null;
  tags: string[];
  /** The ids of its observations, when the list gives them (legacy servers do). */
  observationIds?: string[] | null;
}

/** A score as events carry it (ScoreData), plus what change detection needs. */
export type ScoreRecord = Omit<ScoreData, 'projectId' | 'scoreId'> & {
  id: string;
  timestamp: string;
  updatedAt: string | null;
};

export interface PromptVersionRecord {
  name: string;
  version: number;
  labels: string[];
  tags: string[];
  createdAt: string | null;
  updatedAt: string | null;
  /** The prompt object as Langfuse returns it (the webhook's `prompt`). */
  prompt: Record<string, unknown>;
}

export const LEVELS: Level[] = ['DEBUG', 'DEFAULT', 'WARNING', 'ERROR'];
export function levelRank(level: string | null | undefined): number {
  const i = LEVELS.indexOf((level ?? 'DEFAULT') as Level);
  return i < 0 ? 1 : i;
}
export function levelOf(rank: number): Level {
  return LEVELS[Math.max(0, Math.min(3, rank))] ?? 'DEFAULT';
}
