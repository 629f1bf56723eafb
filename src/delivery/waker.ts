/**
 * A sleep that new work can cut short: loops idle with `sleep(ms)`, writers call `wake()`. A wake
 * that comes while nobody sleeps is kept, so the next sleep returns at once instead of missing it.
 */
export class Waker {
  private readonly sleepers = new Set<() => void>();
  private pending = false;

  wake(): void {
    if (this.sleepers.size === 0) this.pending = true;
    for (const w of this.sleepers) w();
  }

  /** Sleeps for ms, or until woken, or until `until` settles (whichever is first). */
  sleep(ms: number, until?: Promise<unknown>): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.sleepers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.sleepers.add(done);
      until?.then(done, done);
    });
  }
}
