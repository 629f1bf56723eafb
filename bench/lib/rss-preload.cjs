// Loaded with `node --require` into benchmarked children: reports the process's peak RSS and the CPU
// time of all its threads (main, GC, libuv), and on Linux the bytes it caused to be written to disk, on exit.
process.on('exit', () => {
  try {
    const fs = require('node:fs');
    const u = process.resourceUsage();
    let written = '';
    try {
      written = `BENCH_WRITE_BYTES ${/write_bytes: (\d+)/.exec(fs.readFileSync('/proc/self/io', 'utf8'))[1]}\n`;
    } catch {
      /* not Linux */
    }
    fs.writeSync(2, `\nBENCH_MAXRSS_KB ${u.maxRSS}\nBENCH_CPU_US ${u.userCPUTime + u.systemCPUTime}\n${written}`);
  } catch {
    /* stderr closed: nothing to report */
  }
});
