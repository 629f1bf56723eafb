/**
 * The hand-off from a poller's commit to the in-process dispatcher.
 *
 * A sink whose loop has caught up with the outbox (its last claim found nothing more due) need not
 * claim what a poll writes next: its new outbox rows are written already claimed by this process,
 * leased as a claim would leave them, in the same transaction as the events and the cursor
 * (Store.enqueue with a Claimer). Once that transaction commits, handOver() gives the rows to the
 * sinks' queues in memory, which saves a claim transaction and a read of each body. Nothing is lost
 * if the process dies in between: the rows are durable and their lease runs out like any claim's.
 * A row that had to stay queued (no room, an older row waiting) marks its sink as behind, so that
 * nothing skips the queue until a claim catches up.
 *
 *   const h = backend.handoff();
 *   store.write(() => store.enqueue(rows, opts, now, h ?? undefined));
 *   h?.handOver();
 */
import type { ClaimedDelivery, Claimer } from '../store/index.js';

/** What the dispatcher offers a hand-off. */
export interface HandoffTarget {
  /** Only rows of this origin (null: any). */
  readonly claimOrigin: string | null;
  /** How many new rows this sink takes directly now; 0 or less: none. */
  roomFor(sink: string): number;
  /** The lease a row of this sink gets when claimed now (ms); null: not a sink of this dispatcher. */
  leaseFor(sink: string): number | null;
  /** New rows of this sink stayed queued: until a claim catches up, nothing skips the queue. */
  fellBehind(sink: string): void;
  /** Rows written claimed by a committed hand-off. */
  accept(rows: ClaimedDelivery[]): void;
}

/** One write transaction's hand-off: asks the dispatcher once per sink, hands over after the commit. */
export class Handoff implements Claimer {
  readonly origin: string | null;
  private readonly rows: ClaimedDelivery[] = [];
  private readonly room = new Map<string, number>();

  constructor(private readonly target: HandoffTarget) {
    this.origin = target.claimOrigin;
  }

  leaseUntil(sink: string, now: number): number | null {
    let room = this.room.get(sink);
    if (room === undefined) this.room.set(sink, (room = this.target.roomFor(sink)));
    if (room <= 0) return null;
    const lease = this.target.leaseFor(sink);
    return lease === null ? null : now + lease;
  }

  claimed(row: ClaimedDelivery): void {
    this.rows.push(row);
    this.room.set(row.sink, (this.room.get(row.sink) ?? 1) - 1);
  }

  queued(sink: string): void {
    this.room.set(sink, 0);
    this.target.fellBehind(sink);
  }

  /** After the transaction committed: the rows it wrote claimed go to their sinks. */
  handOver(): void {
    if (this.rows.length) this.target.accept(this.rows);
  }
}
