/** Who holds a claim or a lock: this process's name, and whether another holder is gone. */
import os from 'node:os';

/** Who holds a claim: host, pid and start time, so a restarted process can tell a dead owner. */
export const OWNER = `${os.hostname()}:${process.pid}:${Date.now().toString(36)}`;

export function ownerIsDead(owner: string): boolean {
  const [host, pid] = owner.split(':');
  if (host !== os.hostname() || !pid) return false;
  // This process's pid but another start: a restarted container reuses its pid (1, say), so the
  // owner before it is gone.
  if (owner !== OWNER && Number(pid) === process.pid) return true;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
