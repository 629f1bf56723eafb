/** A sleep that new work can cut short: loops idle with `sleep(ms)`, writers call `wake()`. */
export class Waker {
  private readonly sleepers = new Set<() => void>();

  wake(): void {
    for (const w of this.sleepers) w();
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.sleepers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }
}
