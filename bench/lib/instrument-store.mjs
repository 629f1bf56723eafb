// Wraps Store methods to count calls and wall time per method (the idle benchmark and the diagnostics).
export function instrumentStore(Store, methods = ['claim', 'settle', 'enqueue', 'counts', 'pending', 'getSeen', 'putSeen', 'putCursor', 'getCursor', 'nextDueAt', 'recoverStalled', 'write']) {
  const stats = new Map();
  for (const name of methods) {
    const orig = Store.prototype[name];
    if (typeof orig !== 'function') continue;
    Store.prototype[name] = function (...args) {
      const t = performance.now();
      try {
        return orig.apply(this, args);
      } finally {
        const s = stats.get(name) ?? { calls: 0, ms: 0 };
        s.calls++;
        s.ms += performance.now() - t;
        stats.set(name, s);
      }
    };
  }
  return {
    stats,
    report() {
      return [...stats.entries()]
        .sort((a, b) => b[1].ms - a[1].ms)
        .map(([k, s]) => `Store.${k.padEnd(16)} ${String(s.calls).padStart(8)} calls ${s.ms.toFixed(0).padStart(8)} ms  ${(s.ms / s.calls).toFixed(3).padStart(9)} ms/call`)
        .join('\n');
    },
  };
}
