// Loaded with `node --require` into benchmarked children: reports the process's peak RSS and the CPU
// time of all its threads (main, GC, libuv) on exit.
process.on('exit', () => {
  try {
    const u = process.resourceUsage();
    require('node:fs').writeSync(2, `\nBENCH_MAXRSS_KB ${u.maxRSS}\nBENCH_CPU_US ${u.userCPUTime + u.systemCPUTime}\n`);
  } catch {
    /* stderr closed: nothing to report */
  }
});
