/**
 * Heap growth for a long-running process with a small live heap. During a backfill the bridge keeps
 * about 25 MB alive, but under constant load V8 lets the heap grow to four times that before a full
 * collection, which alone puts peak RSS past 200 MB. Letting it grow to twice the live size keeps RSS
 * flat for a little more collection work. A heap flag given by the user (NODE_OPTIONS or node's own
 * command line) wins.
 */
import v8 from 'node:v8';

const HEAP_FLAGS = /--(heap-growing-percent|max-old-space-size|max-semi-space-size)\b/;

export function boundHeapGrowth(env: NodeJS.ProcessEnv = process.env, execArgv: string[] = process.execArgv): boolean {
  if (HEAP_FLAGS.test(`${env.NODE_OPTIONS ?? ''} ${execArgv.join(' ')}`)) return false;
  v8.setFlagsFromString('--heap-growing-percent=100');
  return true;
}
