/**
 * Backfill slices: a backfill reads [from, to) in time slices on a fixed grid (an hour, its halves and
 * doubles), and holds a slice's rows in memory until it commits. The slice length adapts to the data so
 * that a slice holds about SLICE_TARGET_ROWS rows, whatever the backfill's size and density.
 */
export const FIRST_SLICE_MS = 3_600_000;
export const SLICE_TARGET_ROWS = 8_000;
export const MIN_SLICE_MS = 1_000;
const MAX_SLICE_MS = 86_400_000;

/**
 * The next slice's length after one of `windowMs` that held `rows`. More than the target: at once down
 * to the length that would have held at most the target at this rate (halving one step a slice let
 * dense data keep slices of 1.5× the target and more in memory, next to the one being read ahead).
 * Under a quarter of it: doubled.
 */
export function nextSliceMs(sliceMs: number, rows: number, windowMs: number, target = SLICE_TARGET_ROWS): number {
  if (rows > target) {
    const perMs = rows / Math.max(1, windowMs);
    let next = Math.max(MIN_SLICE_MS, Math.floor(sliceMs / 2));
    while (next > MIN_SLICE_MS && perMs * next > target) next = Math.max(MIN_SLICE_MS, Math.floor(next / 2));
    return next;
  }
  if (rows < target / 4) return Math.min(MAX_SLICE_MS, sliceMs * 2);
  return sliceMs;
}
